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
# Anyone may call it, unless $gw_auth holds other flags (e.g. "${secure_gateway[@]}", see make_pki).
# Every gateway signs resume tokens with one key, as replicas share one Secret, so that clients
# resume across a restart.
gw_auth=(--allow-unauthenticated-callers)
printf 'polyglot-resume-token-key-0123456789abcdef\n' >"$work/resume.key"
start_gateway() {
  local bin=$1 n=$2
  shift 2
  "$bin" --listen "127.0.0.1:${gw_port:-0}" --upstream "$sim" --upstream-allow-plain-http \
    --client-id "$app_id" --client-secret-file "$work/secret" "${gw_auth[@]}" \
    --resume-token-key-file "$work/resume.key" \
    --admin-listen 127.0.0.1:0 --rate-limit 0 "$@" >"$work/gw$n.out" 2>"$work/gw$n.err" &
  gateway_pid=$!
  pids+=($gateway_pid)
  gw_port=$(port_of "$work/gw$n.out")
}
# ids_of LIST: kore-sim's ids of LIST, one a line, into $work/LIST.ids
ids_of() { http GET "$sim/_sim/lists/$1/ids" >"$work/$1.ids"; }

# make_pki: in $work, a test CA (ca.pem), the gateway's certificate for localhost and 127.0.0.1
# (server.pem, server.key), a client certificate with subject CN=svc-mtls (client.pem, client.key),
# the token $caller_token (token file caller.token) and caller rules (callers.json): svc-token (the
# token, by its SHA-256) and svc-mtls (the certificate's subject), any account. Sets secure_gateway:
# the gateway flags for TLS, client certificates and caller authorization by those rules.
caller_token=poly-caller-token-6e0b2c91
make_pki() {
  (
    cd "$work"
    openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=contacts-poly-ca -keyout ca.key -out ca.pem
    for name in server client; do
      local subject=/CN=localhost ext=subjectAltName=DNS:localhost,IP:127.0.0.1
      [[ $name == client ]] && subject=/CN=svc-mtls ext=extendedKeyUsage=clientAuth
      openssl req -newkey rsa:2048 -nodes -subj "$subject" -keyout "$name.key" -out "$name.csr"
      openssl x509 -req -in "$name.csr" -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 \
        -extfile <(echo "$ext") -out "$name.pem"
    done
  ) >"$work/openssl.log" 2>&1
  printf '%s\n' "$caller_token" >"$work/caller.token"
  cat >"$work/callers.json" <<JSON
{"callers": [{"name": "svc-token", "token_sha256": "$(printf %s "$caller_token" | sha256sum | cut -d' ' -f1)", "accounts": ["*"]},
             {"name": "svc-mtls", "mtls_subject": "CN=svc-mtls", "accounts": ["*"]}]}
JSON
  secure_gateway=(--tls-cert "$work/server.pem" --tls-key "$work/server.key" --tls-client-ca "$work/ca.pem"
    --credentials-file "$work/callers.json")
}

# run_client cli|python|node|go OUT [FLAGS...]: contacts-cli or an example client with FLAGS, stdout
# into $work/OUT.jsonl, stderr into $work/OUT.err; returns its exit code. Needs $cli_bin, $src,
# $stubs (the Python stubs) and $go_bin as the test's arguments set them.
node_modules=${CONTACTS_NODE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/contacts-gateway/node}/node_modules
run_client() {
  local lang=$1 out=$2
  shift 2
  # The examples are not ours to sanitize: no TSan absl shim in them (LD_PRELOAD of the tsan preset).
  case $lang in
    cli) "$cli_bin" "$@" ;;
    python) PYTHONPATH=$stubs env -u LD_PRELOAD /usr/bin/python3 "$src/examples/python/stream_contacts.py" "$@" ;;
    node) NODE_PATH=$node_modules env -u LD_PRELOAD node "$src/examples/node/stream_contacts.js" "$@" ;;
    go)
      if [[ ! -x $go_bin ]]; then
        echo "$go_bin is not built: scripts/deps.sh --test installs Go, then cmake builds it" >&2
        return 127
      fi
      env -u LD_PRELOAD "$go_bin" "$@" ;;
  esac >"$work/$out.jsonl" 2>"$work/$out.err"
}
# ids_exact OUT LIST: OUT's ids (its JSON lines') are kore-sim's ids of LIST, in order, each once.
ids_exact() {
  ids_of "$2"
  sed -n 's/^{"id":"\([^"]*\)".*/\1/p' "$work/$1.jsonl" >"$work/$1.ids"
  [[ -z $(sort "$work/$1.ids" | uniq -d) ]] && cmp -s "$work/$1.ids" "$work/$2.ids"
}
