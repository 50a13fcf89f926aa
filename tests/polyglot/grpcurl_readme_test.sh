#!/usr/bin/env bash
# The README's grpcurl calls ("### grpcurl"), each one run through reflection with buf curl against
# kore-sim and a real gateway: `list` → --list-services, `describe S` → --list-methods (buf curl's
# nearest), `-d`/`-H` as they are, `-cacert`/`-cert`/`-key` → --cacert/--cert/--key (the files
# make_pki makes, README's names), localhost:50051 → the test's gateway: a plaintext one for
# `-plaintext` calls, else one with TLS and caller authorization ($CONTACTS_TOKEN is a token its
# rules know, client.pem a certificate they name). Every call's answer is checked; a grpcurl call
# this script cannot translate or check fails the test.
# Usage: grpcurl_readme_test.sh KORE_SIM GATEWAY SOURCE_DIR   (buf on PATH)
set -euo pipefail
sim_bin=$1 gateway_bin=$2 src=$3
source "$(dirname "$0")/common.sh"

start_sim "$sim_bin"
start_gateway "$gateway_bin" 1
target=127.0.0.1:$gw_port
make_pki
gw_auth=("${secure_gateway[@]}") gw_port=0
start_gateway "$gateway_bin" 2
tls_target=127.0.0.1:$gw_port
CONTACTS_TOKEN=$caller_token
# The caller's own credentials, as the README's -H call sends them: an HS256 JWT of the app.
KORE_APP_ID=$app_id
KORE_JWT=$(/usr/bin/python3 -c 'import base64,hashlib,hmac,json,sys
b64 = lambda b: base64.urlsafe_b64encode(b).rstrip(b"=")
head = b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode()) + b"." + b64(json.dumps({"appId": sys.argv[1], "sub": "readme"}).encode())
print((head + b"." + b64(hmac.new(sys.argv[2].encode(), head, hashlib.sha256).digest())).decode())' "$app_id" "$app_secret")

# The indented lines of the section, continuation lines joined.
mapfile -t calls < <(awk '/^### grpcurl/ {on = 1; next} /^##/ {on = 0} on' "$src/README.md" |
  sed -n 's/^    //p' | sed -e ':a' -e '/\\$/N; s/\\\n *//; ta' | grep '^grpcurl ')
check "README shows 8 grpcurl calls" test "${#calls[@]}" -eq 8

curl_=(buf curl --protocol grpc --http2-prior-knowledge)
for i in "${!calls[@]}"; do
  call=${calls[$i]}
  eval "set -- ${call#grpcurl }"  # the README's own quoting; expands $KORE_JWT, $CONTACTS_TOKEN, ...
  args=() kind='' subject='' url=http://$target
  while (($#)); do
    case $1 in
      -plaintext) ;;
      -d | -H) args+=("$1" "$2"); shift ;;
      -cacert | -cert | -key) args+=("-$1" "$work/$2") url=https://$tls_target; shift ;;
      localhost:50051) ;;
      list) kind=list ;;
      describe) kind=describe subject=$2; shift ;;
      */*) kind=call subject=$1 ;;
      *) kind=unknown; break ;;
    esac
    shift
  done
  out=$work/call$i.json
  via=("${curl_[@]}")
  if [[ $url == https:* ]]; then via=(buf curl --protocol grpc); fi
  case $kind in
    list) "${via[@]}" --list-services "$url" >"$out" ;;
    describe) "${via[@]}" --list-methods "$url" | grep "^$subject/" >"$out" || true ;;
    call) "${via[@]}" "${args[@]}" "$url/$subject" >"$out" ;;
  esac
  name="README call $((i + 1)) ($kind${subject:+ $subject}, ${url%%:*})"
  case $kind:$subject in
    list:)
      check "$name lists the services" \
        test "$(sort "$out" | tr '\n' ' ')" = "contacts.v1.ContactService grpc.health.v1.Health grpc.reflection.v1alpha.ServerReflection " ;;
    describe:contacts.v1.ContactService)
      check "$name shows StreamContacts" grep -qx 'contacts.v1.ContactService/StreamContacts' "$out" ;;
    call:grpc.health.v1.Health/Check)
      check "$name is SERVING" grep -q '"status": "SERVING"' "$out" ;;
    call:contacts.v1.ContactService/StreamContacts)
      list=$(sed -n 's/.*"contactListId":"\([^"]*\)".*/\1/p' <<<"${args[*]}")
      ids_of "$list"
      check "$name streams $list: kore-sim's ids, in order" \
        cmp -s <(sed -n 's/^ *"id": "\([^"]*\)".*/\1/p' "$out") "$work/$list.ids" ;;
    *) check "$name is one this test knows" false ;;
  esac
done

# The -H call's metadata reaches the upstream: a JWT signed with another secret is refused there.
KORE_JWT=${KORE_JWT%.*}.c2lnbmVkLWVsc2V3aGVyZQ
set +e
"${curl_[@]}" -H "auth: $KORE_JWT" -H "iid: $KORE_APP_ID" \
  -d '{"streamId":"st-demo","contactListId":"cl-sim-120","accountId":"acct-demo"}' \
  "http://$target/contacts.v1.ContactService/StreamContacts" >"$work/bad-jwt.out" 2>&1
set -e
check "a forwarded bad JWT is UNAUTHENTICATED" grep -q unauthenticated "$work/bad-jwt.out"
# The TLS calls needed their token or certificate: without either, the gateway refuses.
set +e
buf curl --protocol grpc --cacert "$work/ca.pem" \
  -d '{"streamId":"st-demo","contactListId":"cl-sim-120","accountId":"acct-demo"}' \
  "https://$tls_target/contacts.v1.ContactService/StreamContacts" >"$work/anonymous.out" 2>&1
set -e
check "the TLS gateway refuses a caller without token or certificate" grep -q unauthenticated "$work/anonymous.out"
finish grpcurl_readme
