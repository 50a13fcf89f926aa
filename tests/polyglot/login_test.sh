#!/usr/bin/env bash
# Every shipped client logs in to a gateway that serves TLS and authorizes its callers (the rules
# of make_pki, no --allow-unauthenticated-callers): contacts-cli and the Python, Node and Go
# examples each stream a list with the bearer token from --token-file, with it from
# $CONTACTS_TOKEN, and with an mTLS client certificate (ids exactly kore-sim's); without credentials
# and with a wrong token each gets UNAUTHENTICATED (exit 16) and no contact. Neither token shows in
# any client's output or the gateway's.
# Usage: login_test.sh KORE_SIM GATEWAY CLI SOURCE_DIR PYTHON_STUBS_DIR GO_EXAMPLE
set -euo pipefail
sim_bin=$1 gateway_bin=$2 cli_bin=$3 src=$4 stubs=$5 go_bin=$6
source "$(dirname "$0")/common.sh"
unset CONTACTS_TOKEN

start_sim "$sim_bin"
make_pki
gw_auth=("${secure_gateway[@]}")
start_gateway "$gateway_bin" 1
wrong_token=poly-wrong-token-d41f7a03
printf '%s\n' "$wrong_token" >"$work/wrong.token"
list=cl-sim-250

login() {  # login LANG OUT [FLAGS...]: streams $list over TLS (trusting ca.pem) with FLAGS
  local lang=$1 out=$2
  shift 2
  run_client "$lang" "$out" --target "127.0.0.1:$gw_port" --ca-file "$work/ca.pem" --stream-id st-login \
    --account-id acct-login --list-id "$list" --page-size 100 "$@"
}
refused() {  # refused OUT CODE: exit code 16 (UNAUTHENTICATED), said so, no contact printed
  [[ $2 -eq 16 && ! -s $work/$1.jsonl ]] && grep -q UNAUTHENTICATED "$work/$1.err"
}

for lang in cli python node go; do
  code=0
  login "$lang" "$lang-token" --token-file "$work/caller.token" || code=$?
  check "$lang: --token-file: exit 0" test "$code" -eq 0
  check "$lang: --token-file: ids exactly kore-sim's" ids_exact "$lang-token" "$list"
  code=0
  CONTACTS_TOKEN=$caller_token login "$lang" "$lang-env" || code=$?
  check "$lang: \$CONTACTS_TOKEN: exit 0" test "$code" -eq 0
  check "$lang: \$CONTACTS_TOKEN: ids exactly kore-sim's" ids_exact "$lang-env" "$list"
  code=0
  login "$lang" "$lang-mtls" --cert-file "$work/client.pem" --key-file "$work/client.key" || code=$?
  check "$lang: client certificate: exit 0" test "$code" -eq 0
  check "$lang: client certificate: ids exactly kore-sim's" ids_exact "$lang-mtls" "$list"
  code=0
  login "$lang" "$lang-anonymous" || code=$?
  check "$lang: no credentials: UNAUTHENTICATED" refused "$lang-anonymous" "$code"
  code=0
  login "$lang" "$lang-wrong" --token-file "$work/wrong.token" || code=$?
  check "$lang: a wrong token: UNAUTHENTICATED" refused "$lang-wrong" "$code"
done
outputs=("$work"/*.jsonl "$work"/*.err "$work"/gw1.out "$work"/gw1.err)
check "the wrong token shows in no output" bash -c '! grep -qF "$0" "$@"' "$wrong_token" "${outputs[@]}"
check "the right token shows in no output" bash -c '! grep -qF "$0" "$@"' "$caller_token" "${outputs[@]}"

if ((failures)); then for f in "$work"/*.err; do echo "--- $f"; tail -3 "$f"; done; fi
finish login
