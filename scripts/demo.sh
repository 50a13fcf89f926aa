#!/usr/bin/env bash
# The main job on the embedded default: builds, starts kore-sim (the bundled simulated Kore.ai
# upstream) and contacts-gateway, streams a 25,000-contact list through contacts-cli, shows the
# first contacts and the summary, and stops both. Installs what is missing first (Debian 12).
#   scripts/demo.sh [LIST_ID]      e.g. cl-sim-100000 for a bigger list
#   scripts/demo.sh --serve        keeps kore-sim on 127.0.0.1:8080 and the gateway on
#                                  127.0.0.1:50051 (admin 127.0.0.1:9090) running until Ctrl-C,
#                                  for README's examples (grpcurl, Python, Node, contacts-cli)
set -euo pipefail
cd "$(dirname "$0")/.."
serve=0
if [[ ${1:-} == --serve ]]; then serve=1; shift; fi
list_id=${1:-cl-sim-25000}
scripts/deps.sh
build=${BUILD_DIR:-build}
cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$build" --target kore-sim contacts-gateway contacts-cli

work=$(mktemp -d)
pids=()
trap 'kill "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$work"' EXIT
port_of() {
  for _ in $(seq 200); do
    grep -q 'listening on' "$1" 2>/dev/null && { sed -n 's/.*listening on [^ ]*:\([0-9]*\).*/\1/p' "$1"; return; }
    sleep 0.05
  done
  echo "demo: $2 did not start; its output:" >&2; cat "$1" "${1%.out}.err" >&2; exit 1
}

# The simulator knows the demo app's secret; the gateway reads it from a file, as in production.
# Known ports with --serve (loopback only: the demo lets unauthenticated callers in), else any.
sim_listen=127.0.0.1:0 gw_listen=127.0.0.1:0 admin_listen=127.0.0.1:0
((serve)) && sim_listen=127.0.0.1:8080 gw_listen=127.0.0.1:50051 admin_listen=127.0.0.1:9090
"$build/tools/kore-sim/kore-sim" --listen "$sim_listen" --quiet --app cs-demo=demo-secret \
  >"$work/sim.out" 2>"$work/sim.err" &
pids+=($!)
sim_port=$(port_of "$work/sim.out" kore-sim)
printf 'demo-secret\n' >"$work/secret"
"$build/server/contacts-gateway" --listen "$gw_listen" --admin-listen "$admin_listen" --upstream "http://127.0.0.1:$sim_port" \
  --upstream-allow-plain-http --client-id cs-demo --client-secret-file "$work/secret" --allow-unauthenticated-callers \
  --rate-limit 0 \
  >"$work/gw.out" 2>"$work/gw.err" &
pids+=($!)
gw_port=$(port_of "$work/gw.out" contacts-gateway)
echo "demo: kore-sim on 127.0.0.1:$sim_port, contacts-gateway on 127.0.0.1:$gw_port"
if ((serve)); then
  cat <<TEXT
demo: serving until Ctrl-C: gRPC localhost:$gw_port (plaintext), admin http://localhost:9090/metrics,
      kore-sim http://127.0.0.1:$sim_port (lists cl-sim-<N>, app cs-demo / demo-secret, account acct-demo)
      e.g. $build/client/contacts-cli --target localhost:$gw_port --stream-id st-demo --account-id acct-demo --list-id cl-sim-120
TEXT
  wait -n "${pids[@]}" || true  # until Ctrl-C (the EXIT trap stops both) or one of them ends
  echo "demo: a process ended; its output:" >&2
  cat "$work"/*.err >&2
  exit 1
fi
echo "demo: streaming $list_id through contacts-cli (JSON lines to $work/contacts.jsonl)"

"$build/client/contacts-cli" --target "127.0.0.1:$gw_port" --stream-id st-demo --account-id acct-demo \
  --list-id "$list_id" --page-size 1000 --output "$work/contacts.jsonl"
echo "demo: first contacts:"
head -n 3 "$work/contacts.jsonl"
echo "demo: $(wc -l <"$work/contacts.jsonl") contacts written; stopping"
