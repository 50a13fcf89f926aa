#!/usr/bin/env bash
# Builds everything and runs every test (CTest): unit, integration (real kore-sim, TLS, gRPC),
# proto lint, reflection and health via buf curl, and the end-to-end CLI run.
# Installs what is missing first (Debian 12, apt + npm).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh --test
export PATH="${CONTACTS_NODE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/contacts-gateway/node}/node_modules/.bin:$PATH"

build=${BUILD_DIR:-build}
cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$build"
ctest --test-dir "$build" --output-on-failure --timeout 600 -j2 "$@"
