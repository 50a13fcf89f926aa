#!/usr/bin/env bash
# The main job on the embedded default: builds, starts kore-sim (the bundled simulated Kore.ai
# upstream) and contacts-gateway, streams a 25,000-contact list through contacts-cli, shows the
# first contacts and the summary, and stops both. Installs what is missing first (Debian 12).
#   scripts/demo.sh [LIST_ID]      e.g. cl-sim-100000 for a bigger list
set -euo pipefail
cd "$(dirname "$0")/.."
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
"$build/tools/kore-sim/kore-sim" --listen 127.0.0.1:0 --quiet --app cs-demo=demo-secret \
  >"$work/sim.out" 2>"$work/sim.err" &
pids+=($!)
sim_port=$(port_of "$work/sim.out" kore-sim)
printf 'demo-secret\n' >"$work/secret"
"$build/server/contacts-gateway" --listen 127.0.0.1:0 --admin-listen 127.0.0.1:0 --upstream "http://127.0.0.1:$sim_port" \
  --upstream-allow-plain-http --client-id cs-demo --client-secret-file "$work/secret" --allow-unauthenticated-callers \
  --rate-limit 0 \
  >"$work/gw.out" 2>"$work/gw.err" &
pids+=($!)
gw_port=$(port_of "$work/gw.out" contacts-gateway)
echo "demo: kore-sim on 127.0.0.1:$sim_port, contacts-gateway on 127.0.0.1:$gw_port"
echo "demo: streaming $list_id through contacts-cli (JSON lines to $work/contacts.jsonl)"

"$build/client/contacts-cli" --target "127.0.0.1:$gw_port" --stream-id st-demo --account-id acct-demo \
  --list-id "$list_id" --page-size 1000 --output "$work/contacts.jsonl"
echo "demo: first contacts:"
head -n 3 "$work/contacts.jsonl"
echo "demo: $(wc -l <"$work/contacts.jsonl") contacts written; stopping"
