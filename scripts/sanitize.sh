#!/usr/bin/env bash
# Builds with a sanitizer preset (CMakePresets.json) and runs the whole unit + integration CTest
# suite under it; the integration tests start kore-sim, contacts-gateway and contacts-cli from the
# same sanitized build.
#   scripts/sanitize.sh asan [CTEST ARGS...]   AddressSanitizer + UndefinedBehaviorSanitizer, build-asan/
#   scripts/sanitize.sh tsan [CTEST ARGS...]   ThreadSanitizer, build-tsan/
# Every sanitized process (test binaries and the child processes they start, whose stderr the tests
# keep to themselves) writes its reports to build-<preset>/sanitizer-reports/; the run fails if a
# test fails or any report was written, and prints the reports. CTest's output is kept in
# build-<preset>/ctest-output.log (scripts/test.sh ends a failed run with its failed tests' last
# lines). Suppressions and why they exist: tests/sanitizers/README.md.
set -euo pipefail
cd "$(dirname "$0")/.."
preset=${1:-}
if [[ $preset != asan && $preset != tsan ]]; then
  echo "usage: scripts/sanitize.sh asan|tsan [ctest args...]" >&2
  exit 2
fi
shift
scripts/deps.sh --test
export PATH="${CONTACTS_NODE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/contacts-gateway/node}/node_modules/.bin:$PATH"

rm -f "build-$preset/ctest-output.log"
cmake --preset "$preset" >/dev/null
cmake --build --preset "$preset"

reports=$PWD/build-$preset/sanitizer-reports
rm -rf "$reports"
mkdir -p "$reports"
# Appended to the preset's ASAN/UBSAN/TSAN_OPTIONS (see the test presets).
export CONTACTS_SANITIZER_OPTIONS="log_path=$reports/$preset"

# TSan (clang 14) cannot map its shadow memory when the kernel randomizes more than 28 bits of
# mmap addresses; run without address randomization then.
run=()
if [[ $preset == tsan && $(cat /proc/sys/vm/mmap_rnd_bits 2>/dev/null || echo 28) -gt 28 ]]; then
  run=(setarch "$(uname -m)" -R)
fi

status=0
"${run[@]}" ctest --preset "$preset" "$@" 2>&1 | tee "build-$preset/ctest-output.log" ||
  status=${PIPESTATUS[0]}
# A file holding nothing but "Symbolizer buffer too small" (TSan symbolizing a suppressed report's
# long template names) is no report.
for f in "$reports"/*; do
  if [[ -f $f ]] && ! grep -qv 'WARNING: Symbolizer buffer too small' "$f"; then rm "$f"; fi
done
if compgen -G "$reports/*" >/dev/null; then
  echo "sanitize $preset: sanitizer reports:" >&2
  for f in "$reports"/*; do
    echo "----- $f" >&2
    cat "$f" >&2
  done
  status=1
fi
if ((status == 0)); then
  echo "sanitize $preset: clean"
else
  echo "sanitize $preset: FAILED" >&2
fi
exit "$status"
