#!/usr/bin/env bash
# The public API never breaks by accident: `buf breaking` (FILE rules, buf.yaml) of proto/ against
# the previous commit of main, or, on a branch, against the commit it forked from main. Then proof
# that the check can fail: a copy of proto/ with a field removed, or with another go_package, must
# be reported.
# Usage: buf_breaking_test.sh SOURCE_DIR   (buf on PATH; SOURCE_DIR a git checkout, shallow is fine)
set -euo pipefail
cd "$1"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
failures=0
check() {  # check NAME CONDITION...
  local name=$1; shift
  if "$@"; then echo "ok   $name"; else echo "FAIL $name"; failures=$((failures + 1)); fi
}

# A shallow clone (CI) may lack the parent commit: fetch one more commit of history.
if ! git rev-parse -q --verify HEAD~1 >/dev/null && [[ $(git rev-parse --is-shallow-repository) == true ]]; then
  git fetch -q --deepen=1 origin || true
fi
base=$(git merge-base HEAD main 2>/dev/null || true)
if [[ -z $base || $base == $(git rev-parse HEAD) ]]; then  # on main: its previous commit
  base=$(git rev-parse -q --verify HEAD~1 || git rev-parse HEAD)
fi
echo "buf breaking against $(git log -1 --format='%h %s' "$base")"
mkdir -p "$work/base"
git archive "$base" buf.yaml proto | tar -x -C "$work/base"
# go_package and java_package once were placeholders; their move to this project's names changed no
# wire format, so a base that still has them is read as having today's values. Any other change of
# either option is reported (see below).
declare -A placeholder=([go_package]='"contacts/v1;contactsv1"' [java_package]='"ai.kore.contacts.v1"')
for option in "${!placeholder[@]}"; do
  now=$(sed -n "s/^option $option = \(.*\);\$/\1/p" proto/contacts/v1/contacts.proto)
  sed -i "s|^option $option = ${placeholder[$option]};\$|option $option = $now;|" "$work/base/proto/contacts/v1/contacts.proto"
done
check "proto/ has no breaking change against ${base:0:12}" buf breaking --against "$work/base"

# The check can fail: StreamContactsResponse.list_changed removed in a copy.
for side in old new; do
  mkdir -p "$work/$side"
  cp -r buf.yaml proto "$work/$side/"
done
sed -i '/bool list_changed = 5;/d' "$work/new/proto/contacts/v1/contacts.proto"
set +e
(cd "$work/new" && buf breaking --against "$work/old") >"$work/breaking.out" 2>&1
code=$?
set -e
check "a removed field fails buf breaking (exit $code)" test "$code" -ne 0
check "the report names the removed field" grep -q '"list_changed" on message "StreamContactsResponse" was deleted' \
  "$work/breaking.out"
cp proto/contacts/v1/contacts.proto "$work/new/proto/contacts/v1/contacts.proto"
sed -i 's|^option go_package = .*|option go_package = "example.com/elsewhere/contactsv1";|' \
  "$work/new/proto/contacts/v1/contacts.proto"
set +e
(cd "$work/new" && buf breaking --against "$work/old") >"$work/go_package.out" 2>&1
code=$?
set -e
check "another go_package fails buf breaking (exit $code)" test "$code" -ne 0
check "the report names the option" grep -q 'File option "go_package" changed' "$work/go_package.out"

if ((failures)); then echo "buf breaking: $failures check(s) failed"; exit 1; fi
echo "buf breaking: all checks passed"
