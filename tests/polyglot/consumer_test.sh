#!/usr/bin/env bash
# The installed C++ client library: `cmake --install` into a temporary prefix, tests/consumer (a
# separate project: find_package(ContactsClient CONFIG), contacts::client) configured and built
# against it, and the program run against a real gateway (ids exactly kore-sim's, in order).
# The consumer is compiled like the build it links (same compiler and flags: sanitizer builds too).
# Usage: consumer_test.sh BUILD_DIR SOURCE_DIR KORE_SIM GATEWAY CXX CXX_FLAGS EXE_LINKER_FLAGS
set -euo pipefail
build=$1 src=$2 sim_bin=$3 gateway_bin=$4 cxx=$5 cxx_flags=$6 linker_flags=$7
source "$(dirname "$0")/common.sh"
prefix=$work/prefix

cmake --install "$build" --prefix "$prefix" >"$work/install.log"
config=$(find "$prefix" -name ContactsClientConfig.cmake)
check "the package config is installed" test -n "$config"
for header in client/contacts_client.h client/contact_format.h contacts/v1/contacts.pb.h contacts/v1/contacts.grpc.pb.h; do
  check "$header is installed" test -f "$prefix/include/$header"
done
check "in-tree-only grpc.health.v1 stubs are not installed" test ! -e "$prefix/include/grpc"
check "google.rpc's library is installed (the client links it), its headers are not" \
  bash -c "[[ -n \$(find '$prefix' -name 'libgoogleapis_rpc_proto.a') && ! -e '$prefix/include/google' ]]"

if cmake -S "$src/tests/consumer" -B "$work/consumer" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
     -DCMAKE_PREFIX_PATH="$prefix" -DCMAKE_CXX_COMPILER="$cxx" -DCMAKE_CXX_FLAGS="$cxx_flags" \
     -DCMAKE_EXE_LINKER_FLAGS="$linker_flags" >"$work/configure.log" 2>&1 &&
   cmake --build "$work/consumer" >"$work/build.log" 2>&1; then
  built=1
else
  built=0
  cat "$work/configure.log" "$work/build.log"
fi
check "the consumer project configures and builds against the installed package" test "$built" -eq 1
((built)) || finish consumer
check "it found the package in the prefix" grep -q "^ContactsClient_DIR:PATH=$prefix/" "$work/consumer/CMakeCache.txt"

start_sim "$sim_bin"
start_gateway "$gateway_bin" 1
code=0
"$work/consumer/consumer" "127.0.0.1:$gw_port" st-poly cl-sim-2500 acct-poly >"$work/consumer.ids" \
  2>"$work/consumer.err" || code=$?
check "the consumer exits 0" test "$code" -eq 0
ids_of cl-sim-2500
check "the consumer printed kore-sim's 2500 ids, in order" cmp -s "$work/consumer.ids" "$work/cl-sim-2500.ids"
check "the consumer counted 2500 contacts" grep -qx '2500 contacts' "$work/consumer.err"
finish consumer
