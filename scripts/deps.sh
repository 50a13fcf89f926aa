#!/usr/bin/env bash
# Installs what building (and, with --test, testing) needs on Debian 12; skips what is there.
#   scripts/deps.sh          build and demo: compiler, CMake, gRPC, protobuf, Boost, OpenSSL, GoogleTest, ...
#   scripts/deps.sh --test   also the benchmark comparisons, Python gRPC, and buf + grpc-js (npm)
#   scripts/deps.sh --bench  also gnuplot, for bench/run.sh's charts
set -euo pipefail

packages=(cmake ninja-build g++ pkg-config ca-certificates openssl libgrpc++-dev protobuf-compiler-grpc
  libprotobuf-dev protobuf-compiler grpc-proto libboost-dev libssl-dev libabsl-dev libsimdjson-dev
  libgtest-dev libgmock-dev libbenchmark-dev)
if [[ ${1:-} == --test ]]; then
  packages+=(nlohmann-json3-dev rapidjson-dev python3
    python3-grpcio clang-14 libclang-rt-14-dev libfuzzer-14-dev)
  command -v npm >/dev/null || packages+=(nodejs npm)  # a machine may have Node from elsewhere
fi
if [[ ${1:-} == --bench ]]; then packages+=(gnuplot-nox); fi

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "deps: installing ${missing[*]}" >&2
  sudo=$([[ $(id -u) == 0 ]] || echo sudo)
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if [[ ${1:-} == --test ]]; then
  # buf (proto lint, reflection calls) and @grpc/grpc-js, kept out of the work tree.
  node_dir=${CONTACTS_NODE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/contacts-gateway/node}
  if [[ ! -x $node_dir/node_modules/.bin/buf || ! -d $node_dir/node_modules/@grpc/grpc-js ]]; then
    echo "deps: installing buf and @grpc/grpc-js into $node_dir" >&2
    mkdir -p "$node_dir"
    (cd "$node_dir" && npm install --silent --no-audit --no-fund --no-save \
      @bufbuild/buf@1 @grpc/grpc-js@1 @grpc/proto-loader@0 >/dev/null)
  fi
fi
