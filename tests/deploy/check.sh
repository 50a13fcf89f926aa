#!/usr/bin/env bash
# Checks of deploy/k8s and deploy/monitoring (scripts/deps.sh --test installs the tools):
#   check.sh kustomize            `kubectl kustomize` builds the base, every overlay and monitoring
#   check.sh yamllint             yamllint over deploy/ and these fixtures
#   check.sh schemas              every built object (and the Secret template) is valid for its kind
#   check.sh schemas-catch-broken the schema check rejects each object of broken-schema.yaml
#   check.sh rules                our rules (check_rules.mjs) hold for the base and every overlay
#   check.sh rules-catch-broken   the rules fail broken.yaml, each rule at least once
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
node_dir=${CONTACTS_NODE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/contacts-gateway/node}
export CONTACTS_NODE_MODULES=$node_dir/node_modules
kubectl=$node_dir/bin/kubectl
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

build() {  # builds every kustomization into $out/NAME.yaml
  for dir in "$root"/deploy/k8s/base "$root"/deploy/k8s/overlays/*/ "$root"/deploy/monitoring; do
    name=$(basename "$dir")
    "$kubectl" kustomize "$dir" >"$out/$name.yaml"
    echo "kustomize: $name: $(grep -c '^kind:' "$out/$name.yaml") objects"
  done
}

case ${1:-} in
  kustomize) build ;;
  yamllint) yamllint --strict -c "$here/yamllint.yaml" "$root/deploy" "$here" ;;
  schemas)
    build >/dev/null
    node "$here/validate_schemas.mjs" "$out"/*.yaml "$root/deploy/k8s/base/secret.template.yaml" ;;
  schemas-catch-broken)
    report=$(node "$here/validate_schemas.mjs" "$here/broken-schema.yaml" || true)
    echo "$report"
    [[ $report == *"4 objects, 4 invalid"* ]] ;;
  rules)
    build >/dev/null
    for built in "$out"/*.yaml; do
      echo "== $(basename "$built" .yaml)"
      node "$here/check_rules.mjs" "$built"
    done ;;
  rules-catch-broken)
    if node "$here/check_rules.mjs" "$here/broken.yaml" >"$out/report"; then
      echo "check_rules.mjs passed broken.yaml"; exit 1
    fi
    missed=$(node "$here/check_rules.mjs" --list | while read -r rule; do
      grep -q "^$rule " "$out/report" || echo "$rule"; done)
    if [[ -n $missed ]]; then echo "rules that did not fire on broken.yaml:" $missed; exit 1; fi
    echo "every rule fired: $(grep -c . "$out/report") lines" ;;
  *) echo "usage: $0 kustomize|yamllint|schemas|schemas-catch-broken|rules|rules-catch-broken" >&2; exit 2 ;;
esac
