#!/usr/bin/env bash
# Builds everything and runs every test (CTest): unit, integration (real kore-sim, TLS, gRPC),
# proto lint, reflection and health via buf curl, the end-to-end CLI run, the Kubernetes manifest
# checks; then the container image and the dev overlay under podman kube play (scripts/image-test.sh,
# about a minute once the image is cached), the same suite under AddressSanitizer +
# UBSan and under ThreadSanitizer, and 30 s of each fuzzer.
# Installs what is missing first (Debian 12, apt + npm). CTest arguments apply to the first step.
#   CONTACTS_TEST_QUICK=1 scripts/test.sh   only the first step (no image, sanitizers or fuzzing)
#   CONTACTS_FUZZ_SECONDS=N                 fuzzing time per target (default 30)
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh --test
export PATH="${CONTACTS_NODE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/contacts-gateway/node}/node_modules/.bin:$PATH"

summary=()
failed=0
step() {  # step NAME COMMAND...: runs a labelled step and records its outcome and duration
  local name=$1 start=$SECONDS rc=0
  shift
  echo "===== test.sh step: $name ($*)"
  "$@" || rc=$?
  local line
  local outcome=ok
  if ((rc != 0)); then
    outcome=FAILED
    failed=1
  fi
  line=$(printf '%-26s %-15s %4dm%02ds' "$name" "$outcome" \
    $(((SECONDS - start) / 60)) $(((SECONDS - start) % 60)))
  echo "===== test.sh step: $line"
  summary+=("$line")
}

suite() {
  local build=${BUILD_DIR:-build}
  rm -f "$build/ctest-output.log"
  cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCONTACTS_WERROR=ON >/dev/null
  cmake --build "$build"
  ctest --test-dir "$build" --output-on-failure --timeout 600 -j2 "$@" 2>&1 |
    tee "$build/ctest-output.log"
  return "${PIPESTATUS[0]}"
}

# Prints the last lines of each failed test's output from a CTest log (--output-on-failure), so
# that the end of a long run says what failed and why.
failures() {  # failures STEP LOG
  [[ -f $2 ]] || return 0
  awk -v step="$1" '
    /^ *[0-9]+\/[0-9]+ Test +#[0-9]+: / {
      flush(); if ($0 ~ /\*\*\*/) { name = $4; n = 0 } next }
    /^ +Start +[0-9]+: |^[0-9]+% tests passed/ { flush(); next }
    name != "" { lines[n++ % 20] = $0 }
    function flush(  i) {
      if (name == "") return
      print "----- " step ": " name " (its last lines)"
      for (i = (n > 20 ? n - 20 : 0); i < n; i++) print "  " lines[i % 20]
      name = ""
    }
    END { flush() }' "$2"
}

image() {  # the image step, after its downloads (started below) are done
  if ! wait "$prepare"; then
    cat "$prepare_log" >&2
    return 1
  fi
  scripts/image-test.sh "${BUILD_DIR:-build}"
}

total=$SECONDS
if [[ ${CONTACTS_TEST_QUICK:-0} != 1 ]]; then
  # The image's base system and build packages are mostly downloads: fetch them while step 1 runs.
  scripts/deps.sh --image
  prepare_log=$(mktemp)
  scripts/image-test.sh --prepare >"$prepare_log" 2>&1 &
  prepare=$!
fi
step "build + ctest" suite "$@"
if [[ ${CONTACTS_TEST_QUICK:-0} != 1 ]]; then
  step "image" image
  step "sanitize asan" scripts/sanitize.sh asan
  step "sanitize tsan" scripts/sanitize.sh tsan
  step "fuzz ${CONTACTS_FUZZ_SECONDS:-30}s" scripts/fuzz.sh "${CONTACTS_FUZZ_SECONDS:-30}"
fi
if ((failed)); then
  echo "===== test.sh failed tests"
  failures "build + ctest" "${BUILD_DIR:-build}/ctest-output.log"
  for preset in asan tsan; do
    [[ ${CONTACTS_TEST_QUICK:-0} == 1 ]] || failures "sanitize $preset" "build-$preset/ctest-output.log"
  done
fi
echo "===== test.sh summary"
printf '  %s\n' "${summary[@]}"
printf '  %-22s %-6s %4dm%02ds\n' total "$([[ $failed == 0 ]] && echo ok || echo FAILED)" \
  $(((SECONDS - total) / 60)) $(((SECONDS - total) % 60))
passed=0
for line in "${summary[@]}"; do
  if [[ $line == *" ok "* ]]; then passed=$((passed + 1)); fi
done
echo "test.sh steps: $passed passed, $((${#summary[@]} - passed)) failed"
exit "$failed"
