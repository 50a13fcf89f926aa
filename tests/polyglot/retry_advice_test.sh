#!/usr/bin/env bash
# Every shipped client (contacts-cli, the Python, Node and Go examples) honours the gateway's retry
# advice. fake_contact_service.py ends the first call of each list RESOURCE_EXHAUSTED after 300 of
# its 1,000 contacts, with RetryInfo (1.5 s) and ErrorInfo (resume_token err-300) in
# grpc-status-details-bin. Each client, all four at once, must resume exactly once, from err-300,
# no sooner than 1.5 s after the failure (as the fake measures it), and print c-0 .. c-999 in order;
# their JSON lines must be byte for byte the same, and right (the fake's contacts carry quotes,
# control characters, non-ASCII text, unset and pre-1970 times, sub-millisecond nanos).
# Usage: retry_advice_test.sh CLI SOURCE_DIR PYTHON_STUBS_DIR GO_EXAMPLE
set -euo pipefail
cli_bin=$1 src=$2 stubs=$3 go_bin=$4
source "$(dirname "$0")/common.sh"
langs=(cli python node go)

PYTHONPATH=$stubs env -u LD_PRELOAD /usr/bin/python3 "$src/tests/polyglot/fake_contact_service.py" --delay 1.5 \
  >"$work/fake.out" 2>"$work/fake.err" &
pids+=($!)
target=127.0.0.1:$(port_of "$work/fake.out")

declare -A client_pid
for lang in "${langs[@]}"; do
  run_client "$lang" "$lang" --target "$target" --stream-id st-retry --account-id acct-retry \
    --list-id "cl-retry-$lang" &
  client_pid[$lang]=$!
done
seq -f 'c-%g' 0 999 >"$work/expected.ids"
for lang in "${langs[@]}"; do
  code=0
  wait "${client_pid[$lang]}" || code=$?
  check "$lang: exit 0" test "$code" -eq 0
  sed -n 's/^{"id":"\([^"]*\)".*/\1/p' "$work/$lang.jsonl" >"$work/$lang.ids"
  check "$lang: ids c-0 .. c-999, in order, each once" cmp -s "$work/$lang.ids" "$work/expected.ids"
  check "$lang: two calls, the second from ErrorInfo's token err-300" \
    test "$(grep "^call list=cl-retry-$lang " "$work/fake.out" | cut -d' ' -f3-4 | tr '\n' ' ')" = \
    "n=1 token=- n=2 token=err-300 "
  gap=$(sed -n "s/^call list=cl-retry-$lang n=2 .* gap=//p" "$work/fake.out")
  check "$lang: resumed 1.5 s or more after the failure, as advised (${gap:-never} s)" \
    awk -v gap="${gap:--1}" 'BEGIN { exit !(gap >= 1.5 && gap < 10) }'
  if [[ $lang == cli ]]; then
    check "$lang: notes the advised wait with the reason" grep -q \
      '^contacts-cli: RESOURCE_EXHAUSTED (UPSTREAM_RATE_LIMITED): .*; resuming in 1.50 s (1 of 5)$' "$work/$lang.err"
    check "$lang: summary says 1000 contacts, 1 resume" grep -q '^contacts-cli: 1000 contacts .* 1 resumes$' \
      "$work/$lang.err"
  else
    check "$lang: notes the advised wait" grep -q '^resuming after RESOURCE_EXHAUSTED (.*) in 1.50s as advised, 300 contacts so far$' \
      "$work/$lang.err"
    check "$lang: summary says 1000 contacts, 1 resume" grep -qx '1000 contacts, 1 resumes' "$work/$lang.err"
  fi
done
for lang in python node go; do
  check "$lang prints the same bytes as contacts-cli" cmp -s "$work/cli.jsonl" "$work/$lang.jsonl"
done
# And those bytes are right: JSON that reads back as the fake's contacts.
check "the awkward contacts read back exactly" /usr/bin/python3 -c '
import json, sys
lines = [json.loads(line) for line in open(sys.argv[1], encoding="utf-8")]
want = {
    0: ("+15550000000", "2023-11-14T22:13:20.000Z", "2024-03-09T16:00:00.000Z"),
    1: ("quote \" backslash \\ tab \t nl \n cr \r bs \b ff \f ctl \x01 \x1f del \x7f", "2023-11-14T22:13:21.919Z",
        "2024-03-09T16:00:01.000Z"),
    2: ("Zo\u00eb \u260e \u2028 \u2029 \U0001f600", "2023-11-14T22:13:22.838Z", "2024-03-09T16:00:02.000Z"),
    3: ("+15550000003", None, None),
    4: ("+15550000004", "1969-12-31T23:59:59.500Z", "1970-01-01T00:00:00.000Z"),
    5: ("+15550000005", "1970-01-01T00:00:00.000Z", "1970-01-01T00:00:00.000Z"),
}
for i, (phone, created, updated) in want.items():
    got = lines[i]
    assert list(got) == ["id", "phone_number", "create_time", "update_time"], got
    assert (got["id"], got["phone_number"], got["create_time"], got["update_time"]) == (f"c-{i}", phone, created, updated), got
' "$work/cli.jsonl"

if ((failures)); then for f in "$work"/*.err "$work/fake.out"; do echo "--- $f"; tail -5 "$f"; done; fi
finish retry_advice
