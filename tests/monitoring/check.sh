#!/usr/bin/env bash
# Checks of deploy/monitoring with Debian's prometheus package (scripts/deps.sh --test):
#   check.sh rules        promtool check rules on the PrometheusRule's spec
#   check.sh rules-unit   promtool test rules alerts.test.yaml: each alert fires and stays silent
#   check.sh metrics      promtool check metrics on a real scrape of a gateway that streamed
#   check.sh prometheus   a real Prometheus scrapes a gateway under load (kore-sim with 429s and
#                         5xx, resumed and budget-bound streams; the budget shared through a real
#                         redis-server); every alert expression and dashboard query must evaluate
#                         and every series they select must exist
# Usage: check.sh CHECK [KORE_SIM GATEWAY CLI]   (the last three for metrics and prometheus)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
node_dir=${CONTACTS_NODE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/contacts-gateway/node}
export CONTACTS_NODE_MODULES=$node_dir/node_modules
check_name=$1 sim_bin=${2:-} gateway_bin=${3:-} cli_bin=${4:-}
source "$root/tests/polyglot/common.sh"  # check, finish, port_of, http, start_sim, start_gateway

node "$here/monitoring.mjs" rules "$root/deploy/monitoring/prometheusrule.yaml" "$work/rules-full.yaml" \
  "$work/rules.yaml"
stream() {  # stream ACCOUNT LIST [CLI FLAGS...]: contacts-cli through the gateway, ids to a file
  local account=$1 list=$2
  shift 2
  "$cli_bin" --target "127.0.0.1:$gw_port" --stream-id st-mon --account-id "$account" --list-id "$list" \
    --format csv --output "$work/$account-$list.csv" "$@" 2>"$work/$account-$list.err"
}

case $check_name in
  rules) promtool check rules "$work/rules-full.yaml" ;;
  rules-unit)
    cp "$here/alerts.test.yaml" "$work/"
    promtool test rules "$work/alerts.test.yaml" ;;
  metrics)
    start_sim "$sim_bin"
    start_gateway "$gateway_bin" 1
    admin=$(sed -n 's/.*admin on [^ ]*:\([0-9]*\).*/\1/p' "$work/gw1.out")
    stream acct-m cl-sim-500
    http GET "http://127.0.0.1:$admin/metrics" >"$work/scrape.txt"
    check "the scrape counts the stream" grep -qx 'contacts_gateway_contacts_streamed_total 500' "$work/scrape.txt"
    check "promtool check metrics finds no problem" promtool check metrics <"$work/scrape.txt"
    finish monitoring.metrics ;;
  prometheus)
    start_sim "$sim_bin"
    # Retries and Retry-After short, two attempts per page; acct-budget limited to 10 requests/s;
    # pages at multiples of 50 (no seam overlap), so that a fault can name a page's skip.
    # The budget through a redis-server of its own (memory only), so that the shared-state series
    # exist.
    redis_port=$(/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    redis-server --port "$redis_port" --bind 127.0.0.1 --save "" --appendonly no --dir "$work" \
      --logfile "$work/redis.log" &
    pids+=($!)
    start_gateway "$gateway_bin" 1 --metrics-accounts 5 --retry-attempts 2 --retry-initial-backoff 10ms \
      --retry-after-cap 1s --account-rate-limit acct-budget=600 --page-size 50 --seam-overlap 0 \
      --shared-state "redis://127.0.0.1:$redis_port/0"
    admin=$(sed -n 's/.*admin on [^ ]*:\([0-9]*\).*/\1/p' "$work/gw1.out")
    prom_port=$(/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    cat >"$work/prometheus.yml" <<CONFIG
global: {scrape_interval: 1s, evaluation_interval: 1s}
rule_files: ["$work/rules-full.yaml"]
scrape_configs:
  - job_name: contacts-gateway
    static_configs: [{targets: ["127.0.0.1:$admin"]}]
CONFIG
    prometheus --config.file "$work/prometheus.yml" --storage.tsdb.path "$work/tsdb" \
      --web.listen-address "127.0.0.1:$prom_port" --log.level warn >"$work/prometheus.log" 2>&1 &
    pids+=($!)
    prom=http://127.0.0.1:$prom_port
    # Faults: one 429 for acct-a's list; two 503s at skip=150 of acct-b's list, past both attempts,
    # so that stream ends Unavailable after 150 contacts and contacts-cli resumes it.
    http POST "$sim/_sim/faults?kind=status&code=429&retry_after=0&count=1&list=cl-sim-600" >/dev/null
    http POST "$sim/_sim/faults?kind=status&code=503&count=2&list=cl-sim-700&skip=150" >/dev/null
    start=$SECONDS
    stream acct-a cl-sim-600 & a=$!
    stream acct-b cl-sim-700 & b=$!
    stream acct-budget cl-sim-1500 --page-size 100 & c=$!
    stream acct-c cl-sim-2000 & d=$!
    stream acct-c cl-sim-2000 & e=$!
    for p in $a $b $c $d $e; do wait "$p" || { echo "contacts-cli failed:"; cat "$work"/*.err; exit 1; }; done
    echo "load: 5 streams in $((SECONDS - start)) s"
    for list in cl-sim-600 cl-sim-700 cl-sim-1500 cl-sim-2000; do ids_of $list; done
    for f in acct-a:cl-sim-600 acct-b:cl-sim-700 acct-budget:cl-sim-1500 acct-c:cl-sim-2000; do
      check "${f%:*} ${f#*:}: kore-sim's ids, in order" \
        cmp -s <(tail -n +2 "$work/${f%:*}-${f#*:}.csv" | cut -d, -f1) "$work/${f#*:}.ids"
    done
    # Poll (no sleeping as synchronization): the target comes up after Prometheus's first
    # discovery (~5.5 s), then a scrape must have seen every contact of the load.
    seen=0
    for _ in $(seq 300); do
      seen=$(http GET "$prom/api/v1/query?query=sum(contacts_gateway_contacts_streamed_total)" 2>/dev/null |
        /usr/bin/python3 -c 'import json,sys; r=json.load(sys.stdin)["data"]["result"]; print(r[0]["value"][1] if r else 0)' || echo 0)
      [[ $seen == 6800 ]] && break
      sleep 0.1
    done
    check "Prometheus scraped all 6800 contacts of the load (saw $seen)" test "$seen" = 6800
    echo "prometheus: target scraped $((SECONDS - start)) s after the load began"
    check "every alert expression and dashboard query has its series" \
      node "$here/monitoring.mjs" live "$prom" "$work/rules-full.yaml" "$root/deploy/monitoring/dashboards/contacts-gateway.json"
    finish monitoring.prometheus ;;
  *) echo "usage: $0 rules|rules-unit|metrics|prometheus [KORE_SIM GATEWAY CLI]" >&2; exit 2 ;;
esac
