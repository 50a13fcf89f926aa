#!/usr/bin/env bash
# End to end with real processes: kore-sim, the contacts-gateway binary, contacts-cli and buf
# (proto lint, reflection listing, health checks and a StreamContacts call, as grpcurl would).
# Usage: e2e_test.sh KORE_SIM GATEWAY CLI SOURCE_DIR
set -euo pipefail
sim_bin=$1 gateway_bin=$2 cli_bin=$3 src=$4
work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT
[[ -n ${E2E_KEEP:-} ]] && trap "for p in \${pids[@]}; do kill \$p 2>/dev/null; done; echo kept \$work" EXIT
failures=0
check() {  # check NAME CONDITION...
  local name=$1; shift
  if "$@"; then echo "ok   $name"; else echo "FAIL $name"; failures=$((failures + 1)); fi
}
port_of() {  # waits for "listening on HOST:PORT" in file $1
  for _ in $(seq 200); do
    if grep -q 'listening on' "$1" 2>/dev/null; then sed -n 's/.*listening on [^ ]*:\([0-9]*\).*/\1/p' "$1"; return; fi
    sleep 0.05
  done
  echo "no ready line in $1" >&2; return 1
}
http_get() { /usr/bin/python3 -c 'import sys,urllib.request; sys.stdout.write(urllib.request.urlopen(sys.argv[1]).read().decode())' "$1"; }

"$sim_bin" --listen 127.0.0.1:0 --quiet --app cs-e2e=e2e-secret-5b1d >"$work/sim.out" 2>"$work/sim.err" &
pids+=($!)
sim_port=$(port_of "$work/sim.out")
printf 'e2e-secret-5b1d\n' >"$work/secret"
# Every gateway of this test signs resume tokens with one key, as replicas share one Secret: a
# token of the gateway before a restart is good with the one after.
printf 'e2e-resume-token-key-0123456789abcdef\n' >"$work/resume.key"
"$gateway_bin" --listen 127.0.0.1:0 --admin-listen 127.0.0.1:0 --upstream "http://127.0.0.1:$sim_port" --upstream-allow-plain-http \
  --client-id cs-e2e --client-secret-file "$work/secret" --allow-unauthenticated-callers --rate-limit 0 \
  --resume-token-key-file "$work/resume.key" >"$work/gw.out" 2>"$work/gw.err" &
gateway_pid=$!
pids+=($gateway_pid)
gw_port=$(port_of "$work/gw.out")
target=127.0.0.1:$gw_port
list=(--stream-id st-e2e --account-id acct-e2e)

# contacts-cli: CSV of 10,000 contacts, every id in kore-sim's order.
"$cli_bin" --target "$target" "${list[@]}" --list-id cl-sim-10000 --format csv --output "$work/out.csv" \
  2>"$work/cli.err"
http_get "http://127.0.0.1:$sim_port/_sim/lists/cl-sim-10000/ids" >"$work/expected.txt"
check "cli csv has header + 10000 rows" test "$(wc -l <"$work/out.csv")" -eq 10001
check "cli ids equal kore-sim's list, in order" \
  cmp -s <(tail -n +2 "$work/out.csv" | cut -d, -f1) "$work/expected.txt"
check "cli summary names the count" grep -q '10000 contacts' "$work/cli.err"

# JSON lines, and a failing call exits with the gRPC code (5 = NOT_FOUND) and its message.
"$cli_bin" --target "$target" "${list[@]}" --list-id cl-sim-25 --quiet >"$work/out.jsonl"
check "cli jsonl has 25 lines" test "$(wc -l <"$work/out.jsonl")" -eq 25
check "cli jsonl line is a contact" grep -q '^{"id":"c-[0-9a-f]*-00000000","phone_number":"+1' "$work/out.jsonl"
set +e
"$cli_bin" --target "$target" "${list[@]}" --list-id cl-missing --quiet >/dev/null 2>"$work/missing.err"
code=$?
set -e
check "cli exits 5 on NOT_FOUND" test "$code" -eq 5
check "cli prints the status" grep -q 'NOT_FOUND' "$work/missing.err"

# buf: lint, reflection, health, and a call described by reflection alone.
check "buf lint (STANDARD) is clean" buf lint "$src"
curl_=(buf curl --protocol grpc --http2-prior-knowledge)
"${curl_[@]}" --list-services "http://$target" >"$work/services"
for s in contacts.v1.ContactService grpc.health.v1.Health grpc.reflection.v1alpha.ServerReflection; do
  check "reflection lists $s" grep -qx "$s" "$work/services"
done
"${curl_[@]}" --list-methods "http://$target" >"$work/methods"
for m in contacts.v1.ContactService/StreamContacts grpc.health.v1.Health/Check grpc.health.v1.Health/Watch; do
  check "reflection describes $m" grep -qx "$m" "$work/methods"
done
for s in "" contacts.v1.ContactService; do
  check "health of '$s' is SERVING" \
    grep -q SERVING <("${curl_[@]}" -d "{\"service\":\"$s\"}" "http://$target/grpc.health.v1.Health/Check")
done
"${curl_[@]}" -d '{"streamId":"st-e2e","contactListId":"cl-sim-120","accountId":"acct-e2e","maxBatchSize":50}' \
  "http://$target/contacts.v1.ContactService/StreamContacts" >"$work/buf-stream.json"
check "buf curl streams 120 contacts" test "$(grep -c '"id":' "$work/buf-stream.json")" -eq 120

# Configuration errors: exit 2 with one clear line; --help explains every flag.
set +e
"$gateway_bin" --prefetch-pages=0 2>"$work/bad.err"
code=$?
set -e
check "bad config exits 2" test "$code" -eq 2
check "bad config names the flag" grep -q -- '--prefetch-pages' "$work/bad.err"
check "help lists env names" grep -q CONTACTS_GATEWAY_UPSTREAM_CA_FILE <("$gateway_bin" --help)

# The admin port: Prometheus metrics of the calls above; every log line is one JSON object.
admin_port=$(sed -n 's/.*admin on [^ ]*:\([0-9]*\).*/\1/p' "$work/gw.out")
http_get "http://127.0.0.1:$admin_port/metrics" >"$work/metrics.txt"
check "metrics count the OK streams" grep -q '^grpc_server_handled_total{grpc_type="server_stream",grpc_service="contacts.v1.ContactService",grpc_method="StreamContacts",grpc_code="OK"} [1-9]' "$work/metrics.txt"
check "metrics count the contacts" grep -q '^contacts_gateway_contacts_streamed_total [1-9]' "$work/metrics.txt"
check "gateway stdout is JSON lines" /usr/bin/python3 -c 'import json,sys; [json.loads(l) for l in open(sys.argv[1])]' "$work/gw.out"

# The secret never shows in the gateway's output.
check "secret absent from gateway logs" bash -c "! grep -q e2e-secret-5b1d '$work/gw.out' '$work/gw.err'"

# A gateway restart mid-stream: SIGTERM drains (0.3 s here), the stream ends UNAVAILABLE with a
# resume token, a new gateway starts on the same port, and contacts-cli resumes by itself. The list
# is long enough (240 pages of 50 at 20 ms, 4 in parallel) to be still running at the SIGTERM.
http_post() { /usr/bin/python3 -c 'import sys,urllib.request; urllib.request.urlopen(urllib.request.Request(sys.argv[1], method="POST")).read()' "$1"; }
http_post "http://127.0.0.1:$sim_port/_sim/faults?kind=latency&ms=20&count=-1"
start_gateway() {
  "$gateway_bin" --listen "127.0.0.1:$gw_port" --admin-listen 127.0.0.1:0 --upstream "http://127.0.0.1:$sim_port" \
    --upstream-allow-plain-http --client-id cs-e2e --client-secret-file "$work/secret" --allow-unauthenticated-callers --drain-timeout 0.3s --rate-limit 0 --page-size 50 \
    --resume-token-key-file "$work/resume.key" >"$work/gw$1.out" 2>"$work/gw$1.err" &
  gateway_pid=$!
  pids+=($gateway_pid)
  port_of "$work/gw$1.out" >/dev/null
}
kill -TERM "$gateway_pid"
set +e
wait "$gateway_pid"
code=$?
set -e
check "gateway exits 0 on SIGTERM" test "$code" -eq 0
start_gateway 2
"$cli_bin" --target "$target" "${list[@]}" --list-id cl-sim-12000 --format csv --output "$work/restart.csv" \
  2>"$work/restart.err" &
cli_pid=$!
sleep 0.4
begin=$(date +%s%N)
kill -TERM "$gateway_pid"
set +e
wait "$gateway_pid"
code=$?
set -e
drained_ms=$(( ($(date +%s%N) - begin) / 1000000 ))
check "draining gateway exits 0" test "$code" -eq 0
check "drain took under 0.3 s + 1 s margin (${drained_ms} ms)" test "$drained_ms" -lt 1300
# Where the time went, if it was long: the gateway's log from the signal on ("stopped" is logged
# once Shutdown returned; what follows it is the process's exit).
if ((drained_ms >= 1300)); then sed -n '/"signal /,$p' "$work/gw2.out" "$work/gw2.err" | cut -c1-300; fi
start_gateway 3
set +e
wait "$cli_pid"
code=$?
set -e
check "cli survives the restart" test "$code" -eq 0
http_get "http://127.0.0.1:$sim_port/_sim/lists/cl-sim-12000/ids" >"$work/expected_restart.txt"
check "cli resumed: every id once, in order" \
  cmp -s <(tail -n +2 "$work/restart.csv" | cut -d, -f1) "$work/expected_restart.txt"
check "cli noted the resume" grep -Eq '(^|[^0-9])[1-9][0-9]* resumes?' "$work/restart.err"
check "second gateway log shows a resumed stream" grep -q '"msg":"stream ended' "$work/gw3.out"

if ((failures)); then echo "e2e: $failures check(s) failed"; exit 1; fi
echo "e2e: all checks passed"
