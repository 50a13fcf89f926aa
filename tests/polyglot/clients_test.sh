#!/usr/bin/env bash
# The Python and Node example clients (examples/) against real processes: kore-sim and the gateway.
# Each streams a 4,000-contact list (ids exactly kore-sim's, in order, none twice), then resumes
# (a) after the gateway's upstream retries ran out on one page (kore-sim answers 503 twice, the
# gateway tries twice: the stream ends UNAVAILABLE mid-way) and (b) across a gateway restart
# (SIGTERM drain, a new gateway on the same port), both clients streaming at once.
# Their JSON lines are byte for byte contacts-cli's.
# Usage: clients_test.sh KORE_SIM GATEWAY CLI SOURCE_DIR PYTHON_STUBS_DIR
set -euo pipefail
sim_bin=$1 gateway_bin=$2 cli_bin=$3 src=$4 stubs=$5
source "$(dirname "$0")/common.sh"
node_modules=${CONTACTS_NODE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/contacts-gateway/node}/node_modules

start_sim "$sim_bin"
# One page in flight, so that the two 503s below hit the same page request (not two pages fetched
# in parallel, which would each succeed on their retry).
gateway_flags=(--retry-attempts 2 --retry-initial-backoff 10ms --retry-max-backoff 20ms --drain-timeout 0.3s
  --prefetch-pages 1)
start_gateway "$gateway_bin" 1 "${gateway_flags[@]}"

client() {  # client python|node LIST OUT [FLAGS...]: streams LIST into OUT.jsonl, stderr in OUT.err
  local lang=$1 list=$2 out=$3
  shift 3
  local flags=(--target "127.0.0.1:$gw_port" --stream-id st-poly --account-id acct-poly --list-id "$list" "$@")
  # The clients are not ours to sanitize: no TSan absl shim in them (LD_PRELOAD of the tsan preset).
  case $lang in
    python) PYTHONPATH=$stubs env -u LD_PRELOAD /usr/bin/python3 "$src/examples/python/stream_contacts.py" "${flags[@]}" ;;
    node) NODE_PATH=$node_modules env -u LD_PRELOAD node "$src/examples/node/stream_contacts.js" "${flags[@]}" ;;
  esac >"$work/$out.jsonl" 2>"$work/$out.err"
}
ids_exact() {  # ids_exact OUT LIST: OUT's ids are LIST's, in order, each once
  ids_of "$2"
  sed -n 's/^{"id":"\([^"]*\)".*/\1/p' "$work/$1.jsonl" >"$work/$1.ids"
  [[ -z $(sort "$work/$1.ids" | uniq -d) ]] && cmp -s "$work/$1.ids" "$work/$2.ids"
}

for lang in python node; do
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
    bash -c "grep -q '^stream ended: NOT_FOUND: ' '$work/$lang-missing.err' && ! grep -q resuming '$work/$lang-missing.err'"

  # The 11th page request of this list is answered 503 twice: the gateway gives up on it
  # (--retry-attempts 2), the stream ends UNAVAILABLE after 1,000 contacts, the client resumes.
  n=$([[ $lang == python ]] && echo 3001 || echo 3002)
  list=cl-sim-$n
  http POST "$sim/_sim/faults?kind=status&code=503&count=2&after=10&list=$list" >/dev/null
  code=0
  client "$lang" "$list" "$lang-503" --page-size 100 || code=$?
  check "$lang: exit 0 after a failed page" test "$code" -eq 0
  check "$lang: resumed after UNAVAILABLE" grep -q '^resuming after UNAVAILABLE' "$work/$lang-503.err"
  check "$lang: summary says $n contacts, 1 resume" grep -q "^$n contacts, 1 resumes" "$work/$lang-503.err"
  check "$lang: resumed ids exactly kore-sim's, in order, none twice" ids_exact "$lang-503" "$list"
done

"$cli_bin" --target "127.0.0.1:$gw_port" --stream-id st-poly --account-id acct-poly --list-id cl-sim-4000 \
  --page-size 100 --batch-size 70 --quiet >"$work/cli-full.jsonl"
check "python and node print the same lines as contacts-cli" \
  bash -c "cmp -s '$work/cli-full.jsonl' '$work/python-full.jsonl' && cmp -s '$work/cli-full.jsonl' '$work/node-full.jsonl'"

# Both clients streaming while the gateway restarts: it drains (0.3 s), the streams end UNAVAILABLE
# with a resume token, a new gateway takes the port and both clients resume on it.
http POST "$sim/_sim/faults?kind=latency&ms=30&count=-1" >/dev/null
client python cl-sim-3003 python-restart --page-size 50 &
python_pid=$!
client node cl-sim-3004 node-restart --page-size 50 &
node_pid=$!
for out in python-restart node-restart; do  # both streams are in flight
  for _ in $(seq 300); do
    [[ -s $work/$out.jsonl ]] && break
    sleep 0.05
  done
done
kill -TERM "$gateway_pid"
wait "$gateway_pid" || true
start_gateway "$gateway_bin" 2 "${gateway_flags[@]}"
for lang in python node; do
  pid_var=${lang}_pid
  code=0
  wait "${!pid_var}" || code=$?
  list=cl-sim-300$([[ $lang == python ]] && echo 3 || echo 4)
  check "$lang: exit 0 across a gateway restart" test "$code" -eq 0
  check "$lang: resumed after the drain" grep -q '^resuming after UNAVAILABLE (the gateway is shutting down' \
    "$work/$lang-restart.err"
  check "$lang: ids across the restart exactly kore-sim's, in order, none twice" ids_exact "$lang-restart" "$list"
done

if ((failures)); then for f in "$work"/*.err; do echo "--- $f"; tail -5 "$f"; done; fi
finish clients
