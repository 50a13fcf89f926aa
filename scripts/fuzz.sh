#!/usr/bin/env bash
# Builds the libFuzzer targets (preset `fuzz`: clang-14, ASan + UBSan, build-fuzz/) and fuzzes each
# for SECONDS (default 60) over a fresh copy of its committed corpus (tests/fuzz/corpus/<target>/);
# the targets run side by side, one process each. Prints the executions of every target (from
# libFuzzer's final stats) and fails if any target crashes, leaks, times out or trips a check.
#   scripts/fuzz.sh [SECONDS]
# A crashing input is kept in build-fuzz/artifacts/; replay it with
#   build-fuzz/tests/fuzz/<target> build-fuzz/artifacts/<target>-crash-…
# then add it as a unit test (tests/unit/) and, if useful, to the corpus.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-60}
[[ $seconds =~ ^[0-9]+$ ]] || { echo "usage: scripts/fuzz.sh [SECONDS]" >&2; exit 2; }
scripts/deps.sh --test

cmake --preset fuzz >/dev/null
cmake --build --preset fuzz

targets=(fuzz_page_parser fuzz_resume_token fuzz_request_validation fuzz_page_record fuzz_fleet_replies)
out=$PWD/build-fuzz/fuzz-run
artifacts=$PWD/build-fuzz/artifacts
rm -rf "$out"
mkdir -p "$out" "$artifacts"

declare -A pid
for t in "${targets[@]}"; do
  mkdir -p "$out/$t"
  cp -r "tests/fuzz/corpus/$t" "$out/$t/corpus"
  args=(-max_total_time="$seconds" -print_final_stats=1 -timeout=10 -rss_limit_mb=2048
        -artifact_prefix="$artifacts/$t-")
  [[ $t == fuzz_page_parser ]] && args+=(-dict=tests/fuzz/page.dict)
  "build-fuzz/tests/fuzz/$t" "${args[@]}" "$out/$t/corpus" >"$out/$t/log" 2>&1 &
  pid[$t]=$!
done

failed=0
for t in "${targets[@]}"; do
  rc=0
  wait "${pid[$t]}" || rc=$?
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$out/$t/log" | tail -n 1)
  corpus=$(find "$out/$t/corpus" -type f | wc -l)
  if ((rc == 0)); then
    printf 'fuzz %-24s ok    %10s executions in %ss, corpus %d files\n' "$t" "${execs:-?}" "$seconds" "$corpus"
  else
    printf 'fuzz %-24s FAIL  (exit %d) after %s executions; log: %s\n' "$t" "$rc" "${execs:-?}" "$out/$t/log" >&2
    grep -E 'ERROR|SUMMARY|Fail|runtime error|Test unit written|^fuzz_' "$out/$t/log" | head -n 20 >&2 || true
    failed=1
  fi
done
exit "$failed"
