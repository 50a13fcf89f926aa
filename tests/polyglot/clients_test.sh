#!/usr/bin/env bash
# The example clients (examples/: Python, Node, Go) against real processes: kore-sim and the gateway.
# Each streams a 4,000-contact list (ids exactly kore-sim's, in order, none twice), then resumes
# (a) after the gateway's upstream retries ran out on one page (kore-sim answers 503 twice, the
# gateway tries twice: the stream ends UNAVAILABLE mid-way) and (b) across a gateway restart
# (SIGTERM drain, a new gateway on the same port), all clients streaming at once.
# Their JSON lines are byte for byte contacts-cli's.
# Usage: clients_test.sh KORE_SIM GATEWAY CLI SOURCE_DIR PYTHON_STUBS_DIR GO_EXAMPLE
set -euo pipefail
sim_bin=$1 gateway_bin=$2 cli_bin=$3 src=$4 stubs=$5 go_bin=$6
source "$(dirname "$0")/common.sh"
langs=(python node go)
declare -A fault_list=([python]=cl-sim-3001 [node]=cl-sim-3002 [go]=cl-sim-3005)
declare -A restart_list=([python]=cl-sim-3003 [node]=cl-sim-3004 [go]=cl-sim-3006)

start_sim "$sim_bin"
# One page in flight, so that the two 503s below hit the same page request (not two pages fetched
# in parallel, which would each succeed on their retry).
gateway_flags=(--retry-attempts 2 --retry-initial-backoff 10ms --retry-max-backoff 20ms --drain-timeout 0.3s
  --prefetch-pages 1)
start_gateway "$gateway_bin" 1 "${gateway_flags[@]}"

client() {  # client LANG LIST OUT [FLAGS...]: streams LIST from the gateway (run_client)
  local lang=$1 list=$2 out=$3
  shift 3
  run_client "$lang" "$out" --target "127.0.0.1:$gw_port" --stream-id st-poly --account-id acct-poly \
    --list-id "$list" "$@"
}

for lang in "${langs[@]}"; do
  # A whole list, in pages of 100 and messages of at most 70.
  code=0
  client "$lang" cl-sim-4000 "$lang-full" --page-size 100 --batch-size 70 || code=$?
  check "$lang: exit 0" test "$code" -eq 0
  check "$lang: 4000 JSON lines" test "$(wc -l <"$work/$lang-full.jsonl")" -eq 4000
  check "$lang: ids exactly kore-sim's, in order, none twice" ids_exact "$lang-full" cl-sim-4000
  check "$lang: a line is a whole contact" \
    grep -qE '^\{"id":"c-[0-9a-f]+-[0-9]+","phone_number":"\+1[0-9]+","create_time":"[0-9T:.-]+Z","update_time":"' \
    "$work/$lang-full.jsonl"
  check "$lang: summary says 4000 contacts, 0 resumes" grep -q '^4000 contacts, 0 resumes' "$work/$lang-full.err"

  # Other statuses end the stream at once: the exit code is the gRPC code (5 = NOT_FOUND).
  code=0
  client "$lang" cl-missing "$lang-missing" || code=$?
  check "$lang: a missing list exits 5" test "$code" -eq 5
  check "$lang: and says NOT_FOUND, without resuming" \
    bash -c "grep -q '^stream ended: NOT_FOUND[ :]' '$work/$lang-missing.err' && ! grep -q resuming '$work/$lang-missing.err'"

  # The 11th page request of this list is answered 503 twice: the gateway gives up on it
  # (--retry-attempts 2), the stream ends UNAVAILABLE after 1,000 contacts, the client resumes.
  list=${fault_list[$lang]}
  n=${list#cl-sim-}
  http POST "$sim/_sim/faults?kind=status&code=503&count=2&after=10&list=$list" >/dev/null
  code=0
  client "$lang" "$list" "$lang-503" --page-size 100 || code=$?
  check "$lang: exit 0 after a failed page" test "$code" -eq 0
  check "$lang: resumed after UNAVAILABLE" grep -q '^resuming after UNAVAILABLE' "$work/$lang-503.err"
  check "$lang: summary says $n contacts, 1 resume" grep -q "^$n contacts, 1 resumes" "$work/$lang-503.err"
  check "$lang: resumed ids exactly kore-sim's, in order, none twice" ids_exact "$lang-503" "$list"
done

run_client cli cli-full --target "127.0.0.1:$gw_port" --stream-id st-poly --account-id acct-poly \
  --list-id cl-sim-4000 --page-size 100 --batch-size 70 --quiet
for lang in "${langs[@]}"; do
  check "$lang prints the same lines as contacts-cli" cmp -s "$work/cli-full.jsonl" "$work/$lang-full.jsonl"
done

# All clients streaming while the gateway restarts: it drains (0.3 s), the streams end UNAVAILABLE
# with a resume token, a new gateway takes the port and every client resumes on it.
http POST "$sim/_sim/faults?kind=latency&ms=30&count=-1" >/dev/null
declare -A client_pid
for lang in "${langs[@]}"; do
  client "$lang" "${restart_list[$lang]}" "$lang-restart" --page-size 50 &
  client_pid[$lang]=$!
done
for lang in "${langs[@]}"; do  # every stream is in flight
  for _ in $(seq 300); do
    [[ -s $work/$lang-restart.jsonl ]] && break
    sleep 0.05
  done
done
kill -TERM "$gateway_pid"
wait "$gateway_pid" || true
start_gateway "$gateway_bin" 2 "${gateway_flags[@]}"
for lang in "${langs[@]}"; do
  code=0
  wait "${client_pid[$lang]}" || code=$?
  check "$lang: exit 0 across a gateway restart" test "$code" -eq 0
  check "$lang: resumed after the drain" grep -q '^resuming after UNAVAILABLE (the gateway is shutting down' \
    "$work/$lang-restart.err"
  check "$lang: ids across the restart exactly kore-sim's, in order, none twice" \
    ids_exact "$lang-restart" "${restart_list[$lang]}"
done

if ((failures)); then for f in "$work"/*.err; do echo "--- $f"; tail -5 "$f"; done; fi
finish clients
