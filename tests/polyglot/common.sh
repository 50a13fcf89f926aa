# Shared by the tests/polyglot/*_test.sh scripts (sourced): checks, a work folder cleaned up on exit,
# and kore-sim + contacts-gateway started as real processes on ports they pick.
work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT
failures=0
check() {  # check NAME CONDITION...
  local name=$1; shift
  if "$@"; then echo "ok   $name"; else echo "FAIL $name"; failures=$((failures + 1)); fi
}
finish() {  # finish SUITE: the verdict line and exit code
  if ((failures)); then echo "$1: $failures check(s) failed"; exit 1; fi
  echo "$1: all checks passed"
}
port_of() {  # waits for "listening on HOST:PORT" in file $1
  for _ in $(seq 200); do
    if grep -q 'listening on' "$1" 2>/dev/null; then sed -n 's/.*listening on [^ ]*:\([0-9]*\).*/\1/p' "$1"; return; fi
    sleep 0.05
  done
  echo "no ready line in $1" >&2; return 1
}
http() {  # http METHOD URL: prints the body
  /usr/bin/python3 -c 'import sys,urllib.request
sys.stdout.write(urllib.request.urlopen(urllib.request.Request(sys.argv[2], method=sys.argv[1])).read().decode())' "$@"
}

# start_sim KORE_SIM: kore-sim knowing app cs-poly; sets $sim (its base URL).
app_id=cs-poly app_secret=poly-secret-93c1
start_sim() {
  "$1" --listen 127.0.0.1:0 --quiet --app "$app_id=$app_secret" >"$work/sim.out" 2>"$work/sim.err" &
  pids+=($!)
  sim=http://127.0.0.1:$(port_of "$work/sim.out")
  printf '%s\n' "$app_secret" >"$work/secret"
}
# start_gateway GATEWAY N [FLAGS...]: gateway number N on $gw_port (0 or unset = any port, then
# remembered), upstream kore-sim, holding the app's credentials; sets $gateway_pid and $gw_port.
start_gateway() {
  local bin=$1 n=$2
  shift 2
  "$bin" --listen "127.0.0.1:${gw_port:-0}" --upstream "$sim" --upstream-allow-plain-http \
    --client-id "$app_id" --client-secret-file "$work/secret" --allow-unauthenticated-callers \
    --admin-listen 127.0.0.1:0 --rate-limit 0 "$@" >"$work/gw$n.out" 2>"$work/gw$n.err" &
  gateway_pid=$!
  pids+=($gateway_pid)
  gw_port=$(port_of "$work/gw$n.out")
}
# ids_of LIST: kore-sim's ids of LIST, one a line, into $work/LIST.ids
ids_of() { http GET "$sim/_sim/lists/$1/ids" >"$work/$1.ids"; }
