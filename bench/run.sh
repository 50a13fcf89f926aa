#!/usr/bin/env bash
# The end-to-end benchmarks, one command each (method, targets, results: bench/REPORT.md).
#   bench/run.sh b1|..|b9|all         builds build-release/, starts kore-sim and the gateway (B2:
#                                     and baseline_server; B7: three gateways and a
#                                     redis-server), repeats each measurement BENCH_RUNS
#                                     times (default 5), prints medians, writes
#                                     bench/results/<b>_raw.tsv, <b>_summary.tsv, bench/*.png
#   bench/run.sh before-after DIR     B1 (batch 1000), B2 (1 per message), B3, B4 and B5 with the gateway
#                                     of DIR (a Release build of an older commit) and this one,
#                                     alternating in every run: a change's before and after
#   bench/run.sh smoke BUILD_DIR      CTest's check of the harness: small runs, every contact
#                                     checked, the baseline's messages compared with the
#                                     gateway's, no timing
# Environment: BENCH_RUNS (default 5), BENCH_BUILD_DIR (default build-release), BENCH_B1_CONTACTS
#   (B1's list size, default 1000000; B2's is a fifth), BENCH_B4_RATE (600/min), BENCH_B4_SECONDS
#   (20), BENCH_B5_STREAMS (10000), BENCH_B8_RATE (60 requests per BENCH_B8_WINDOW, 6 s),
#   BENCH_B8_WINDOWS (4 per run), BENCH_B8_BUDGET_PCT (99, the gateway's budget as a share of
#   kore-sim's rate): smaller values for a quick check on a busy machine.
#   BENCH_BASELINE=1  for a gateway without the rate budget and page cache flags: run without
#                     them. Otherwise every benchmark needs them (all but B4's budget part run with
#                     --rate-limit 0) and a gateway lacking one fails at once, naming it. (B2's
#                     baseline_server is another baseline: gRPC alone.)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
runs=${BENCH_RUNS:-5}
results=$root/bench/results
work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true  # B5 holds thousands of upstream connections

say() { echo "bench: $*" >&2; }
die() { say "$*"; exit 1; }

binaries() {  # binaries BUILD_DIR
  sim=$1/tools/kore-sim/kore-sim gw=$1/server/contacts-gateway
  client=$1/bench/load_client parser=$1/bench/parser_bench base=$1/bench/baseline_server
  fleetb=$1/bench/fleet_bench
}

build() {
  local dir=${BENCH_BUILD_DIR:-$root/build-release}
  "$root/scripts/deps.sh" --bench
  [[ -f $dir/build.ninja ]] || cmake -S "$root" -B "$dir" -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
  cmake --build "$dir" -j2 --target contacts-gateway kore-sim load_client parser_bench \
    baseline_server fleet_bench >/dev/null
  binaries "$dir"
}

port_of() {  # waits for "listening on HOST:PORT" in file $1
  for _ in $(seq 400); do
    if grep -q 'listening on' "$1" 2>/dev/null; then
      sed -n 's/.*listening on [^ ]*:\([0-9]*\).*/\1/p' "$1"; return
    fi
    sleep 0.05
  done
  cat "${1%.out}.err" >&2
  die "no ready line in $1"
}

stop() {  # stop PID: ends one process this script started
  kill "$1" 2>/dev/null || true
  wait "$1" 2>/dev/null || true
  local kept=() p
  for p in "${pids[@]}"; do [[ $p == "$1" ]] || kept+=("$p"); done
  pids=("${kept[@]}")
}

start_sim() {  # start_sim KORE_SIM_FLAGS...: kore-sim serving its pages from its page cache
  rm -f "$work/sim.out"  # not the ready line of the last one (the child truncates it too late)
  "$sim" --listen 127.0.0.1:0 --quiet --threads 2 --app cs-bench=bench-secret-4d2 \
    --max-limit 10000 --page-cache-mib 1024 "$@" >"$work/sim.out" 2>"$work/sim.err" &
  sim_pid=$!
  pids+=("$sim_pid")
  sim_port=$(port_of "$work/sim.out")
}

# The resume token key the gateway and baseline_server share, so that their messages (each with a
# signed resume_token) are the same bytes.
printf 'bench-resume-token-key-0123456789abcdef\n' >"$work/resume.key"

start_gw() {  # start_gw GATEWAY_FLAGS...
  rm -f "$work/gw.out"
  printf 'bench-secret-4d2\n' >"$work/secret"
  local keys=()  # builds from before signed resume tokens have no key file
  ! has_flag --resume-token-key-file || keys=(--resume-token-key-file "$work/resume.key")
  env "${gw_env[@]}" "$gw" --listen 127.0.0.1:0 --upstream "http://127.0.0.1:$sim_port" --upstream-allow-plain-http \
    --client-id cs-bench --client-secret-file "$work/secret" --allow-unauthenticated-callers \
    --admin-listen 127.0.0.1:0 --max-page-size 10000 \
    --max-batch-size 100000 --log-level warning "${keys[@]}" "$@" >"$work/gw.out" 2>"$work/gw.err" &
  gw_pid=$!
  pids+=("$gw_pid")
  gw_port=$(port_of "$work/gw.out")
}

start_baseline() {  # start_baseline LIST...: baseline_server with those cl-sim-N lists' messages
  rm -f "$work/base.out"
  local lists=() l
  for l; do lists+=(--list "$l"); done
  "$base" --listen 127.0.0.1:0 --resume-token-key-file "$work/resume.key" "${lists[@]}" \
    >"$work/base.out" 2>"$work/base.err" &
  base_pid=$!
  pids+=("$base_pid")
  base_port=$(port_of "$work/base.out")
}

budget_flags() {  # sets no_limit: the gateway flags that turn the request budget off
  no_limit=()
  [[ -z ${BENCH_BASELINE:-} ]] || return 0
  local f
  for f in --rate-limit --rate-limit-burst --page-cache-bytes; do
    has_flag $f || die "contacts-gateway has no $f flag: this build lacks the rate budget and page cache (BENCH_BASELINE=1 measures the baseline without them)"
  done
  no_limit=(--rate-limit 0)
}

measure() {  # measure CONDITION RUN load|pager FLAGS...: one run, recorded; a failed run ends all
  local condition=$1 run=$2 line
  shift 2
  line=$("$@")
  record "$condition" "$run" "$line"
}

load() {  # load LOAD_CLIENT_FLAGS...: one load_client run against the gateway; prints its line
  load_from "$gw_port" --gateway-pid "$gw_pid" --upstream-pid "$sim_pid" "$@"
}
load_baseline() {  # the same against baseline_server (its CPU time as gw_cpu_ns_per_contact)
  load_from "$base_port" --gateway-pid "$base_pid" "$@"
}
load_from() {  # load_from PORT LOAD_CLIENT_FLAGS...
  local port=$1
  shift
  "$client" --target "127.0.0.1:$port" "$@" 2>"$work/client.err" ||
    { cat "$work/client.err" >&2; die "load_client failed (lost, reordered or failed contacts?)"; }
}

messages_digest() {  # messages_digest PORT LIST: "COUNT SHA256" of one call's messages, one contact each
  /usr/bin/python3 -c '
import grpc, hashlib, sys
def varint(v):
    out = b""
    while True:
        out += bytes([v & 0x7F | (0x80 if v > 0x7F else 0)])
        v >>= 7
        if not v:
            return out
def text(field, s):
    return bytes([field << 3 | 2]) + varint(len(s)) + s.encode()
request = (text(1, "st-bench") + text(2, sys.argv[2]) + text(3, "acct-bench")
           + bytes([4 << 3]) + varint(1000) + bytes([5 << 3]) + varint(1))
call = grpc.insecure_channel(sys.argv[1]).unary_stream("/contacts.v1.ContactService/StreamContacts")
digest, count = hashlib.sha256(), 0
for message in call(request, timeout=60):
    digest.update(len(message).to_bytes(4, "big") + message)
    count += 1
print(count, digest.hexdigest())' "127.0.0.1:$1" "$2"
}

pager() {  # pager B6_PAGER_FLAGS...
  /usr/bin/python3 "$root/bench/b6_pager.py" --base "http://127.0.0.1:$sim_port" \
    --client-id cs-bench --secret-file "$work/secret" "$@"
}

sim_stat() {  # sim_stat KEY: a number from kore-sim's /_sim/stats (KEY "429": that status count)
  /usr/bin/python3 -c '
import json, sys, urllib.request
s = json.load(urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}/_sim/stats"))
print(s["by_status"].get(sys.argv[2], 0) if sys.argv[2].isdigit() else s[sys.argv[2]])' \
    "$sim_port" "$1"
}
sim_post() { /usr/bin/python3 -c 'import sys, urllib.request
urllib.request.urlopen(urllib.request.Request(sys.argv[1], method="POST"))' \
  "http://127.0.0.1:$sim_port/_sim/$1" >/dev/null; }  # sim_post PATH: e.g. reset, config?max_limit=N
sim_reset() { sim_post reset; }

parse_only() {  # parse-only ns per contact of 1000-contact kore-sim pages (parser_bench, one run)
  "$parser" --benchmark_filter='BM_KoreSimPages/1000$' --benchmark_format=json 2>/dev/null |
    /usr/bin/python3 -c 'import json, sys
print("%g" % (json.load(sys.stdin)["benchmarks"][0]["cpu_time"] / 1000))'
}

has_flag() { grep -q -- "$1[ =]" <("$gw" --help); }  # not a pipe: grep -q would SIGPIPE --help
features() {
  if has_flag --rate-limit; then echo "rate budget + page cache"; else echo "baseline (no rate budget or page cache)"; fi
}

begin() {  # begin NAME: starts bench/results/NAME_raw.tsv
  raw=$results/$1_raw.tsv
  mkdir -p "$results"
  {
    echo "# $1 $(date -u +%FT%TZ) commit $(git -C "$root" rev-parse --short HEAD) gateway: $(features)"
    echo "# $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg), runs $runs"
  } >"$raw"
}
record() { printf '%s\t%s\t%s\n' "$1" "$2" "$3" >>"$raw"; }  # record CONDITION RUN LINE
summarize() {  # summarize NAME: bench/results/NAME_summary.tsv from the raw file
  "$root/bench/stats.py" "$raw" >"$results/$1_summary.tsv"
}
median() {  # median NAME CONDITION KEY
  awk -F'\t' -v c="$2" -v k="$3" '$1 == c && $2 == k { print $3 }' "$results/$1_summary.tsv"
}
spread() {  # spread NAME CONDITION KEY: "min–max"
  awk -F'\t' -v c="$2" -v k="$3" '$1 == c && $2 == k { print $4 "–" $5 }' "$results/$1_summary.tsv"
}
kv() { tr ' ' '\n' | sed -n "s/^$1=//p"; }  # kv KEY: KEY's value in the key=value line on stdin
cpu_budget() {  # cpu_budget NAME CONDITION TARGET: where the CPU of one contact goes, what it allows
  local gw client up b=${1,,}  # NAME B1 reads bench/results/b1_summary.tsv
  gw=$(median "$b" "$2" gw_cpu_ns_per_contact) client=$(median "$b" "$2" client_cpu_ns_per_contact)
  up=$(median "$b" "$2" upstream_cpu_ns_per_contact)
  awk -v name="$1" -v g="$gw" -v c="$client" -v u="$up" -v n="$(nproc)" -v t="$3" 'BEGIN {
    printf "%s CPU ns per contact: gateway %d + client %d + kore-sim %d = %d; %d cores carry at most %d contacts/s; %d/s leaves %d ns for all three\n",
      name, g, c, u, g + c + u, n, n * 1e9 / (g + c + u), t, n * 1e9 / t }'
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", (b > 0 ? a / b : 0) }'; }

chart() {  # chart PNG TITLE XLABEL YLABEL DATA [logx]: one series, points and lines
  gnuplot <<EOF
set terminal pngcairo size 800,480 font ",10"
set output "$root/bench/$1"
set title "$2 — $(features)"
set xlabel "$3"; set ylabel "$4"
set grid; set key off; set yrange [0:*]
${6:+set logscale x}
plot "$5" using 1:2 with linespoints pt 7
EOF
}

# --- B1: throughput against batch size; gateway CPU per contact against parse-only -----------
b1() {
  begin b1
  start_sim
  # No page cache: repeated runs would be served from the gateway's memory instead of parsed.
  start_gw "${no_limit[@]}" --page-cache-bytes 0
  local n=${BENCH_B1_CONTACTS:-1000000} run batch list
  load --list cl-sim-$n --page-size 1000 --batch-size 1000 >/dev/null  # fills kore-sim's page cache
  load --list cl-sim-$((n / 5)) --page-size 1000 --batch-size 1000 >/dev/null
  # The machine's speed drifts by tens of percent within minutes (a shared VM): each run measures
  # parse-only right after the gateway's batch-1000 run and records their ratio.
  local gw_ns parse_ns
  for run in $(seq "$runs"); do
    for batch in 1 10 100 1000 10000; do
      list=cl-sim-$n
      ((batch > 1)) || list=cl-sim-$((n / 5))  # one contact per message is slower: a shorter list
      measure "batch=$batch" "$run" load --list $list --page-size 1000 --batch-size $batch
      ((batch == 1000)) || continue
      gw_ns=$(awk -F'\t' -v r="$run" '$1 == "batch=1000" && $2 == r' "$raw" | kv gw_cpu_ns_per_contact)
      parse_ns=$(parse_only)
      record parse_only "$run" "parse_ns_per_contact=$parse_ns gw_to_parse=$(ratio "$gw_ns" "$parse_ns")"
    done
  done
  summarize b1
  awk -F'\t' '$2 == "contacts_per_s" { sub("batch=", "", $1); print $1, $3 }' \
    "$results/b1_summary.tsv" >"$results/b1_batch_series.dat"
  chart b1_batch.png "B1: contacts/s against batch size (1000-contact pages)" \
    "contacts per message" "contacts/s (median)" "$results/b1_batch_series.dat" logx
  local c=batch=1000
  echo "B1 contacts/s (batch 1000): $(median b1 $c contacts_per_s) [$(spread b1 $c contacts_per_s)]  target >= 3000000"
  echo "B1 gateway CPU ns/contact: $(median b1 $c gw_cpu_ns_per_contact) [$(spread b1 $c gw_cpu_ns_per_contact)], parse-only $(median b1 parse_only parse_ns_per_contact) [$(spread b1 parse_only parse_ns_per_contact)], ratio $(median b1 parse_only gw_to_parse) [$(spread b1 parse_only gw_to_parse)]  target <= 2.0"
  cpu_budget B1 $c 3000000
  stop "$gw_pid"; stop "$sim_pid"
}

# --- B2: one contact per message, the gateway against gRPC alone (baseline_server) -----------
b2() {
  begin b2
  local n=$((${BENCH_B1_CONTACTS:-1000000} / 5)) run c line gw_cps base_cps
  start_sim
  start_gw "${no_limit[@]}" --page-cache-bytes 0  # as B1: every run fetches and parses its pages
  start_baseline cl-sim-$n
  load --list cl-sim-$n --page-size 1000 --batch-size 1000 >/dev/null  # fills kore-sim's page cache
  load_baseline --list cl-sim-$n >/dev/null
  for run in $(seq "$runs"); do
    # The same caller and list for both, one after the other; which goes first alternates.
    local order=(gateway baseline)
    ((run % 2)) || order=(baseline gateway)
    for c in "${order[@]}"; do
      if [[ $c == gateway ]]; then
        line=$(load --list cl-sim-$n --page-size 1000 --batch-size 1)
        gw_cps=$(kv contacts_per_s <<<"$line")
      else
        line=$(load_baseline --list cl-sim-$n --batch-size 1)
        base_cps=$(kv contacts_per_s <<<"$line")
      fi
      record "$c" "$run" "$line"
    done
    record share "$run" "gateway_to_baseline=$(ratio "$gw_cps" "$base_cps")"
  done
  summarize b2
  echo "B2 gateway contacts/s (1 contact per message): $(median b2 gateway contacts_per_s) [$(spread b2 gateway contacts_per_s)]  target >= 500000"
  echo "B2 baseline_server contacts/s (gRPC alone, same caller): $(median b2 baseline contacts_per_s) [$(spread b2 baseline contacts_per_s)]"
  echo "B2 gateway / baseline: $(median b2 share gateway_to_baseline) [$(spread b2 share gateway_to_baseline)]  target >= 0.8"
  cpu_budget B2 gateway 500000
  echo "B2 baseline CPU ns per message: baseline_server $(median b2 baseline gw_cpu_ns_per_contact) + client $(median b2 baseline client_cpu_ns_per_contact)"
  stop "$base_pid"; stop "$gw_pid"; stop "$sim_pid"
}

# --- B3: latency hiding: 500 pages at 20 ms, stream time against the prefetch window --------
b3() {
  begin b3
  start_sim --fault 'kind=latency&ms=20&count=-1'
  local run w
  for run in $(seq "$runs"); do
    for w in 1 2 4 8 16; do
      # Windows 1 and 8 are the targets (all runs); the others draw the series (3 runs).
      ((run <= 3 || w == 1 || w == 8)) || continue
      start_gw "${no_limit[@]}" --prefetch-pages $w
      measure "window=$w" "$run" load --list cl-sim-50000 --page-size 100 --batch-size 100
      stop "$gw_pid"
    done
    # The upstream's own first-page latency, as a plain HTTP client on a new connection sees it.
    measure upstream "$run" pager --list cl-sim-50000 --page-size 100 --pages 1
  done
  summarize b3
  awk -F'\t' '$2 == "stream_s_median" { sub("window=", "", $1); print $1, $3 }' \
    "$results/b3_summary.tsv" >"$results/b3_window_series.dat"
  chart b3_window.png "B3: time to stream 500 pages at 20 ms upstream latency" \
    "prefetch window (pages)" "stream time, s (median)" "$results/b3_window_series.dat"
  local t1 t8
  t1=$(median b3 window=1 stream_s_median) t8=$(median b3 window=8 stream_s_median)
  echo "B3 stream time window 1: ${t1}s [$(spread b3 window=1 stream_s_median)], window 8: ${t8}s [$(spread b3 window=8 stream_s_median)], speed-up $(ratio "$t1" "$t8")  target >= 7"
  local first upstream
  first=$(median b3 window=8 ttfm_ms_median) upstream=$(median b3 upstream ttfm_ms_median)
  echo "B3 time to first contact (window 8): $first ms [$(spread b3 window=8 ttfm_ms_median)], upstream first page $upstream ms [$(spread b3 upstream ttfm_ms_median)]: +$(awk -v a="$first" -v b="$upstream" 'BEGIN { printf "%.1f", a - b }') ms  target <= +2 ms"
  stop "$sim_pid"
}

# --- B4: the request budget: 429s, budget used, coalescing of concurrent callers ---------------
# B4's two measurements (b4 and before-after), against the kore-sim running.
b4_budget() {  # b4_budget CONDITION RUN RATE SECONDS GATEWAY_FLAGS...: demand beyond the budget
  # One stream of 10,000 pages for SECONDS s against kore-sim's limit of RATE a minute.
  local condition=$1 run=$2 rate=$3 seconds=$4 admitted
  shift 4
  sim_reset
  start_gw "$@"
  load --list cl-sim-1000000 --page-size 100 --batch-size 100 --cancel-after-s "$seconds" >/dev/null
  admitted=$(sim_stat 200)
  record "$condition" "$run" "upstream_200=$admitted upstream_429=$(sim_stat 429) budget_used_pct=$(
    awk -v a="$admitted" -v r="$rate" -v s="$seconds" 'BEGIN { printf "%.1f", 100 * a / (r * s / 60) }')"
  stop "$gw_pid"
}
b4_callers() {  # b4_callers CONDITION RUN K: coalescing, K concurrent callers of one 100-page list
  start_gw "${no_limit[@]}"  # instant upstream, no limit
  sim_reset
  load --list cl-sim-100000 --page-size 1000 --batch-size 1000 --streams "$3" >/dev/null
  record "$1" "$2" "upstream_requests=$(sim_stat list_requests)"
  stop "$gw_pid"
}

b4() {
  local rate=${BENCH_B4_RATE:-600} seconds=${BENCH_B4_SECONDS:-20} limit=()
  [[ -n ${BENCH_BASELINE:-} ]] || limit=(--rate-limit "$rate")
  begin b4
  local run k
  start_sim --rate-limit "$rate"
  for run in $(seq "$runs"); do
    b4_budget budget "$run" "$rate" "$seconds" "${limit[@]}"
  done
  stop "$sim_pid"
  start_sim
  for run in $(seq "$runs"); do
    for k in 1 2 3 4 5 6 7 8 9 10; do
      b4_callers "callers=$k" "$run" "$k"
    done
  done
  stop "$sim_pid"
  summarize b4
  awk -F'\t' '$2 == "upstream_requests" { sub("callers=", "", $1); print $1, $3 }' \
    "$results/b4_summary.tsv" >"$results/b4_callers_series.dat"
  chart b4_callers.png "B4: upstream requests for K concurrent streams of one 100-page list" \
    "concurrent callers K" "upstream requests (median)" "$results/b4_callers_series.dat"
  echo "B4 upstream 429s (rate $rate/min, ${seconds}s): $(median b4 budget upstream_429) [$(spread b4 budget upstream_429)]  target 0"
  echo "B4 budget used: $(median b4 budget budget_used_pct)% [$(spread b4 budget budget_used_pct)]  target >= 95%"
  echo "B4 requests K=10 / K=1: $(ratio "$(median b4 callers=10 upstream_requests)" "$(median b4 callers=1 upstream_requests)")  target <= 1.1"
}

# --- B5: 10,000 slow streams in one gateway, 64 fast streams beside them ----------------------
b5_run() {  # b5_run CONDITION RUN [SLOW]: 64 fast streams once SLOW (BENCH_B5_STREAMS) slow ones hold
  measure "$1" "$2" load --list cl-sim-2000 --slow-list cl-sim-1000000 --page-size 50 \
    --batch-size 50 --slow-streams "${3:-${BENCH_B5_STREAMS:-10000}}" --ramp 500 --streams 64 --channels 128
}
b5() {
  local slow=${BENCH_B5_STREAMS:-10000} run
  begin b5
  start_sim --threads 2
  # The gateway takes 100 calls at once per connection (--max-concurrent-streams): 128
  # connections carry the streams, as many callers would. The same 64 fast streams with no slow
  # ones, in a fresh gateway, are the reference: what the held streams add to their times.
  for run in $(seq "$runs"); do
    start_gw "${no_limit[@]}"
    b5_run "slow=$slow" "$run"
    stop "$gw_pid"
    start_gw "${no_limit[@]}"
    b5_run "slow=0" "$run" 0
    stop "$gw_pid"
  done
  stop "$sim_pid"
  summarize b5
  local c=slow=$slow
  echo "B5 gateway RSS per slow stream: $(median b5 $c rss_kib_per_slow_stream) KiB [$(spread b5 $c rss_kib_per_slow_stream)]  target <= 64"
  echo "B5 fast streams max/median time to first message: $(b5_ttfm $c)  target <= 1.3"
  echo "B5 the same with no slow streams: $(b5_ttfm slow=0)"
}
b5_ttfm() {  # b5_ttfm CONDITION: the fast streams' max/median time to first message, and both times
  echo "$(median b5 "$1" ttfm_max_over_median) [$(spread b5 "$1" ttfm_max_over_median)] (max $(median b5 "$1" ttfm_ms_max) ms, median $(median b5 "$1" ttfm_ms_median) ms)"
}

# --- B6: a sequential urllib pager against the gateway, B1 and B3 conditions -----------------
b6() {
  begin b6
  local run
  start_sim
  start_gw "${no_limit[@]}" --page-cache-bytes 0  # every run fetches, as the pager does
  load --list cl-sim-200000 --page-size 1000 --batch-size 1000 >/dev/null  # fills kore-sim's cache
  for run in $(seq "$runs"); do
    measure b1_pager "$run" pager --list cl-sim-200000 --page-size 1000
    measure b1_gateway "$run" load --list cl-sim-200000 --page-size 1000 --batch-size 1000
  done
  stop "$gw_pid"; stop "$sim_pid"
  start_sim --fault 'kind=latency&ms=20&count=-1'
  start_gw "${no_limit[@]}" --prefetch-pages 8 --page-cache-bytes 0
  for run in $(seq "$runs"); do
    measure b3_pager "$run" pager --list cl-sim-50000 --page-size 100
    measure b3_gateway "$run" load --list cl-sim-50000 --page-size 100 --batch-size 100
  done
  stop "$gw_pid"; stop "$sim_pid"
  summarize b6
  local c
  for c in b1 b3; do
    echo "B6 $c conditions: pager $(median b6 ${c}_pager wall_s)s, gateway $(median b6 ${c}_gateway wall_s)s: gateway $(ratio "$(median b6 ${c}_pager wall_s)" "$(median b6 ${c}_gateway wall_s)")x faster"
  done
}

# --- B8: budget-bound throughput: contacts per rate window against the limit R x C -----------
b8() {
  local rate=${BENCH_B8_RATE:-60} window=${BENCH_B8_WINDOW:-6} windows=${BENCH_B8_WINDOWS:-4}
  local budget_pct=${BENCH_B8_BUDGET_PCT:-99} seconds run c kind cap line contacts per_minute
  seconds=$((window * windows))
  per_minute=$((rate * 60 * budget_pct / (window * 100)))
  begin b8
  # kore-sim admits R requests per sliding window of W s per account and caps pages at C silently
  # (cap) or refuses larger ones with 400 (reject). The gateway's budget is a hair under R (99%:
  # a budget of exactly R draws a 429 whenever a request reaches kore-sim later than the one R
  # requests after it, a new connection suffices), burst 1. Each run: a fresh gateway (nothing
  # learned), one caller that sets no page size, cancelled after `windows` windows. page50 is the
  # same caller with --page-size 50, the old default, for comparison.
  start_sim --rate-limit "$rate" --rate-window "$window"
  for run in $(seq "$runs"); do
    for c in cap-100 reject-100 page50-100 cap-1000 reject-1000 page50-1000; do
      kind=${c%-*} cap=${c##*-}
      sim_reset
      if [[ $kind == reject ]]; then sim_post "config?reject_limit_above=$cap"; else sim_post "config?max_limit=$cap"; fi
      local flags=(--rate-limit "$per_minute")
      [[ $kind != page50 ]] || flags+=(--page-size 50)
      start_gw "${flags[@]}"
      line=$(load --list cl-sim-1000000 --batch-size 1000 --cancel-after-s "$seconds")
      contacts=$(kv contacts <<<"$line")
      record "$c" "$run" "$(awk -v n="$contacts" -v s="$seconds" -v w="$window" -v r="$rate" -v c="$cap" 'BEGIN {
        printf "contacts=%d contacts_per_window=%.0f share_of_limit_pct=%.1f", n, n * w / s, 100 * n * w / s / (r * c) }') wasted_requests=$(sim_stat 400) upstream_429=$(sim_stat 429) upstream_requests=$(sim_stat list_requests)"
      stop "$gw_pid"
    done
  done
  stop "$sim_pid"
  summarize b8
  echo "B8 kore-sim R = $rate requests per ${window}s window, gateway --rate-limit $per_minute/min (${budget_pct}%), ${seconds}s per run; contacts per window against R x C:"
  for c in cap-100 reject-100 cap-1000 reject-1000 page50-100 page50-1000; do
    echo "B8 $c: $(median b8 "$c" contacts_per_window) [$(spread b8 "$c" contacts_per_window)] = $(median b8 "$c" share_of_limit_pct)% of $rate x ${c##*-} [$(spread b8 "$c" share_of_limit_pct)], wasted requests $(median b8 "$c" wasted_requests) [$(spread b8 "$c" wasted_requests)], 429s $(median b8 "$c" upstream_429) [$(spread b8 "$c" upstream_429)]$([[ $c == page50-* ]] && echo "  (the old default, for comparison)" || echo "  target >= 97%, wasted <= 3")"
  done
}

# --- B7: replicas sharing one budget (and their pages) through Redis --------------------------
start_redis() {  # a redis-server of this script's own on a free port, memory only
  redis_port=$(/usr/bin/python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  redis-server --port "$redis_port" --bind 127.0.0.1 --save "" --appendonly no --dir "$work" \
    --logfile "$work/redis.log" &
  redis_pid=$!
  pids+=("$redis_pid")
  for _ in $(seq 200); do
    [[ $(redis-cli -p "$redis_port" PING 2>/dev/null) == PONG ]] && return
    sleep 0.05
  done
  die "redis-server did not start"
}
start_replica() {  # start_replica N GATEWAY_FLAGS...: gateway N of a fleet (fleet_port[N] ...)
  local n=$1
  shift
  start_gw "$@"
  mv "$work/gw.out" "$work/gw$n.out"
  fleet_port[n]=$gw_port fleet_pid[n]=$gw_pid
  fleet_admin[n]=$(sed -n 's/.*admin on [^ ]*:\([0-9]*\).*/\1/p' "$work/gw$n.out")
}
redis_calls() {  # redis_calls PAGES: Redis's command counts since CONFIG RESETSTAT, as key=value
  # Scripts are called with EVALSHA (EVAL after NOSCRIPT), one round trip each; the commands they
  # run inside count too but cost no round trip. The heartbeat script is the only one with ZADD.
  redis-cli -p "$redis_port" INFO commandstats |
    sed -n 's/^cmdstat_\([a-z|]*\):calls=\([0-9]*\),.*/\1 \2/p' |
    awk -v pages="$1" '{ n[$1] = $2 } END {
      scripts = n["evalsha"] + n["eval"]; beats = n["zadd"]
      printf "upstream_pages=%d script_calls=%d heartbeats=%d round_trips_per_page=%.2f", pages,
        scripts, beats, (scripts - beats) / pages }'
}
# Per account of kore-sim's request log: the requests in its sliding window (t - 3 s, t] every
# 50 ms (bench/results/b7_window_ACCOUNT.dat), and a key=value line of kore-sim's counts and the
# share of the budget used between the first request and the last.
window_series() {  # window_series PER_MINUTE WINDOW_S
  /usr/bin/python3 - "$sim_port" "$results" "$1" "$2" <<'PY'
import json, sys, urllib.request
from datetime import datetime
port, results, per_minute, window = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
get = lambda path: json.load(urllib.request.urlopen(f"http://127.0.0.1:{port}{path}"))
log, stats = get("/_sim/requests")["requests"], get("/_sim/stats")["accounts"]
at = lambda r: datetime.fromisoformat(r["time"].rstrip("Z")).timestamp()
t0 = min(at(r) for r in log)
for account in sorted(stats):
    times = sorted(at(r) - t0 for r in log if r["account"] == account)
    with open(f"{results}/b7_window_{account}.dat", "w") as out:
        t, i, j = 0.0, 0, 0
        while t <= times[-1] + window:
            while j < len(times) and times[j] <= t: j += 1
            while i < j and times[i] <= t - window: i += 1
            print(f"{t:.2f} {j - i}", file=out)
            t += 0.05
    used = (len(times) - 1) * 60.0 / per_minute / (times[-1] - times[0])
    s = stats[account]
    print(account, f"requests={s['requests']} upstream_429={s['rate_limited']} "
          f"max_in_window={s['max_in_window']} budget_used_pct={100 * used:.1f}")
PY
}

b7() {
  begin b7
  local a g run account line clients=()
  start_redis
  # 3 replicas x 3 accounts, one stream of each account on each replica, each its own 40-page
  # list, pages shared too: 120 requests an account against kore-sim's scaled Kore.ai limit (30
  # requests per 3 s per account); the replicas' budget is 570 a minute (95% of it).
  start_sim --rate-limit 30 --rate-window 3 --request-log 100000
  local fleet=(--rate-limit 570 --shared-state "redis://127.0.0.1:$redis_port/0"
               --shared-state-heartbeat 200ms --shared-state-pages)
  for g in 0 1 2; do start_replica $g "${fleet[@]}"; done
  for g in 0 1 2; do
    for _ in $(seq 200); do
      curl -fsS "http://127.0.0.1:${fleet_admin[g]}/metrics" |
        grep -q '^contacts_gateway_shared_state_replicas 3$' && break
      sleep 0.05
    done
  done
  redis-cli -p "$redis_port" CONFIG RESETSTAT >/dev/null
  for a in 0 1 2; do
    for g in 0 1 2; do
      load_from "${fleet_port[g]}" --list "cl-sim-$((4000 + 3 * a + g))" --account-id "acct-$a" \
        --stream-id "st-$a-$g" --page-size 100 --batch-size 100 >"$work/load-$a-$g.out" &
      clients+=($!)
    done
  done
  for p in "${clients[@]}"; do wait "$p" || die "a B7 stream failed"; done
  record fleet 1 "$(redis_calls "$(sim_stat list_requests)")"
  window_series 570 3 >"$work/b7_accounts.txt"
  while read -r account line; do record "$account" 1 "$line"; done <"$work/b7_accounts.txt"
  for g in 0 1 2; do stop "${fleet_pid[g]}"; done
  stop "$sim_pid"
  # The budget alone: how long a grant takes through Redis against in-process, one at a time;
  # and what one Redis serves, 3 replicas keeping 64 requests each of 1000 accounts waiting.
  for run in $(seq "$runs"); do
    measure latency "$run" "$fleetb" --redis "redis://127.0.0.1:$redis_port/0" --mode latency \
      --grants 2000
    measure throughput "$run" "$fleetb" --redis "redis://127.0.0.1:$redis_port/0" \
      --mode throughput --replicas 3 --accounts 1000 --in-flight 64 --seconds 5
  done
  summarize b7
  gnuplot <<EOF
set terminal pngcairo size 800,480 font ",10"
set output "$root/bench/b7_window.png"
set title "B7: 3 replicas sharing through Redis, 3 accounts — $(features)"
set xlabel "seconds"; set ylabel "requests in the last 3 s (kore-sim's sliding window)"
set grid; set key bottom right; set yrange [0:35]
plot "$results/b7_window_acct-0.dat" using 1:2 with lines title "acct-0", \
     "$results/b7_window_acct-1.dat" using 1:2 with lines title "acct-1", \
     "$results/b7_window_acct-2.dat" using 1:2 with lines title "acct-2", \
     30 with lines dashtype 2 lw 2 title "kore-sim's limit: 30 per 3 s", \
     28.5 with lines dashtype 3 title "the replicas' budget: 570/min"
EOF
  for a in 0 1 2; do
    echo "B7 acct-$a: 429s $(median b7 acct-$a upstream_429) (target 0), most in a 3 s window $(median b7 acct-$a max_in_window) (limit 30), budget used $(median b7 acct-$a budget_used_pct)% (target >= 95%)"
  done
  echo "B7 Redis round trips per upstream page, budget and pages shared: $(median b7 fleet round_trips_per_page) (a grant, a page claim, a page publish; besides, a heartbeat and a PING per replica and --shared-state-heartbeat)"
  echo "B7 added latency per grant, Redis vs in-process: p50 +$(median b7 latency added_p50_us) us [$(spread b7 latency added_p50_us)], p99 +$(median b7 latency added_p99_us) us [$(spread b7 latency added_p99_us)]; Redis calls per grant $(median b7 latency redis_calls_per_grant)"
  echo "B7 grants one Redis served: $(median b7 throughput grants_per_s)/s [$(spread b7 throughput grants_per_s)] using $(median b7 throughput redis_cpu_s_per_s) Redis CPU s/s: $(median b7 throughput grants_per_redis_cpu_s) grants per Redis CPU second"
}

# --- smoke: CTest's check that the harness runs and counts every contact (no timing) ----------
smoke() {
  binaries "$1"
  start_sim
  start_gw
  local line
  # Few upstream requests (5000-contact pages), well within any default request budget.
  line=$(load --list cl-sim-20000 --page-size 5000 --batch-size 100 --streams 3 --slow-streams 2 \
    --slow-list cl-sim-1000000)
  [[ $line == *"contacts=60000 "* && $line == *gw_cpu_ns_per_contact=* && $line == *rss_kib_per_slow_stream=* ]] ||
    die "unexpected load_client line: $line"
  line=$(pager --list cl-sim-2500 --page-size 1000)
  [[ $line == "contacts=2500 messages=3 "* ]] || die "unexpected b6_pager line: $line"
  # B2's baseline: every contact checked, and its messages the gateway's, byte for byte.
  start_baseline cl-sim-2000
  line=$(load_baseline --list cl-sim-2000 --batch-size 1 --streams 2)
  [[ $line == "contacts=4000 messages=4000 "* && $line == *gw_cpu_ns_per_contact=* ]] ||
    die "unexpected load_client line from baseline_server: $line"
  local gateway baseline
  gateway=$(messages_digest "$gw_port" cl-sim-2000) baseline=$(messages_digest "$base_port" cl-sim-2000)
  [[ $gateway == "2000 "* && $gateway == "$baseline" ]] ||
    die "baseline_server's messages differ from the gateway's: gateway $gateway, baseline $baseline"
  echo "bench smoke: ok"
}

b9() {  # memory after a burst, and B1's throughput, for each allocator Debian offers
  begin b9
  start_sim
  local n=${BENCH_B1_CONTACTS:-1000000} run variant rss_idle rss_after flags
  load_with() { load_from "$gw_port" --gateway-pid "$gw_pid" "$@"; }
  for run in $(seq "$runs"); do
    for variant in glibc trimmer arena2 jemalloc tcmalloc; do
      gw_env=() flags=(--memory-trim-interval 0)
      case $variant in
        trimmer) flags=() ;;  # the gateway's default: --memory-trim-interval 10s
        arena2) gw_env=(MALLOC_ARENA_MAX=2) ;;
        jemalloc) gw_env=(LD_PRELOAD=/usr/lib/x86_64-linux-gnu/libjemalloc.so.2) ;;
        tcmalloc) gw_env=(LD_PRELOAD=/usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4) ;;
      esac
      start_gw "${no_limit[@]}" --page-cache-bytes 0 "${flags[@]}"
      load_with --list cl-sim-$n --page-size 1000 --batch-size 1000 >/dev/null  # warm
      measure "$variant" "$run" load_with --list cl-sim-$n --page-size 1000 --batch-size 1000
      rss_idle=$(awk '/VmRSS/ { print int($2 / 1024) }' "/proc/$gw_pid/status")
      # The burst: 1,000 streams at once over 16 connections.
      load_with --list cl-sim-20000 --streams 1000 --channels 16 --page-size 500 --batch-size 100 \
        >/dev/null
      sleep 12  # more than one trimmer interval
      rss_after=$(awk '/VmRSS/ { print int($2 / 1024) }' "/proc/$gw_pid/status")
      record "rss-$variant" "$run" "rss_mib_before=$rss_idle rss_mib_after=$rss_after"
      stop "$gw_pid"
    done
  done
  gw_env=()
  summarize b9
  local v
  for v in glibc trimmer arena2 jemalloc tcmalloc; do
    echo "B9 $v: RSS after the burst $(median b9 rss-$v rss_mib_after) MiB [$(spread b9 rss-$v rss_mib_after)] (before: $(median b9 rss-$v rss_mib_before)); B1 $(median b9 $v contacts_per_s) contacts/s [$(spread b9 $v contacts_per_s)], gateway $(median b9 $v gw_cpu_ns_per_contact) ns/contact"
  done
  stop "$sim_pid"
}

before_after() {  # before_after BUILD_DIR: B1 to B5 with an older gateway and this one, alternating
  local before=$1/server/contacts-gateway after=$gw run which w k gw_ns parse_ns list=cl-sim-${BENCH_B1_CONTACTS:-1000000}
  local rate=${BENCH_B4_RATE:-600} seconds=${BENCH_B4_SECONDS:-20}
  [[ -x $before ]] || die "no gateway at $before: build an older commit first (README of bench/REPORT.md)"
  begin before_after
  echo "# before: $before" >>"$raw"
  for run in $(seq "$runs"); do
    for which in before after; do
      gw=$after
      [[ $which == after ]] || gw=$before
      start_sim
      start_gw --rate-limit 0 --page-cache-bytes 0
      load --list "$list" --page-size 1000 --batch-size 1000 >/dev/null  # fills kore-sim's cache
      measure "b1-$which" "$run" load --list "$list" --page-size 1000 --batch-size 1000
      gw_ns=$(awk -F'\t' -v c="b1-$which" -v r="$run" '$1 == c && $2 == r' "$raw" | kv gw_cpu_ns_per_contact)
      parse_ns=$(parse_only)
      record "b1-$which" "$run" "parse_ns_per_contact=$parse_ns gw_to_parse=$(ratio "$gw_ns" "$parse_ns")"
      stop "$gw_pid"
      # B2's gateway side: one contact per message (a resume token and a write each).
      start_gw --rate-limit 0 --page-cache-bytes 0
      load --list cl-sim-200000 --page-size 1000 --batch-size 1 >/dev/null
      measure "b2-$which" "$run" load --list cl-sim-200000 --page-size 1000 --batch-size 1
      stop "$gw_pid"; stop "$sim_pid"
      # B4: the budget's use under demand beyond it, and coalescing of 10 callers of one list.
      start_sim --rate-limit "$rate"
      b4_budget "b4-$which" "$run" "$rate" "$seconds" --rate-limit "$rate"
      stop "$sim_pid"
      start_sim
      for k in 1 10; do b4_callers "b4-k$k-$which" "$run" "$k"; done
      stop "$sim_pid"
      start_sim --fault 'kind=latency&ms=20&count=-1'
      for w in 1 8; do
        start_gw --rate-limit 0 --prefetch-pages $w
        measure "b3-w$w-$which" "$run" load --list cl-sim-50000 --page-size 100 --batch-size 100
        stop "$gw_pid"
      done
      stop "$sim_pid"
      start_sim --threads 2
      start_gw --rate-limit 0
      b5_run "b5-$which" "$run"
      stop "$gw_pid"; stop "$sim_pid"
    done
  done
  gw=$after
  summarize before_after
  for k in "b1 contacts_per_s" "b1 gw_cpu_ns_per_contact" "b1 gw_to_parse" "b2 contacts_per_s" \
    "b2 gw_cpu_ns_per_contact" "b4 budget_used_pct" "b4 upstream_429" "b4-k1 upstream_requests" \
    "b4-k10 upstream_requests" "b3-w1 stream_s_median" "b3-w8 stream_s_median" \
    "b3-w8 ttfm_ms_median" "b5 rss_kib_per_slow_stream" "b5 ttfm_max_over_median"; do
    set -- $k
    echo "$1 $2: before $(median before_after "$1-before" "$2") [$(spread before_after "$1-before" "$2")], after $(median before_after "$1-after" "$2") [$(spread before_after "$1-after" "$2")]"
  done
}

gw_env=()
case ${1:-} in
  b1 | b2 | b3 | b4 | b5 | b6 | b7 | b8 | b9) build; budget_flags; "$1" ;;
  all) build; budget_flags; b1; b2; b3; b4; b5; b6; b7; b8; b9 ;;
  before-after) [[ -n ${2:-} ]] || die "usage: bench/run.sh before-after OLD_BUILD_DIR"
    build; budget_flags; before_after "$2" ;;
  smoke) [[ -n ${2:-} ]] || die "usage: bench/run.sh smoke BUILD_DIR"; smoke "$2" ;;
  *) die "usage: bench/run.sh b1|..|b9|all|before-after OLD_BUILD_DIR|smoke BUILD_DIR" ;;
esac
