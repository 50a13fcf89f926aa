#!/usr/bin/env bash
# Builds the container image (Dockerfile) offline with podman and tests it: the base is Debian 12
# made with debootstrap (no container registry is reachable here; Debian mirrors are), cached in
# ~/.cache/contacts-gateway/image. Then kore-sim and the gateway run as two containers of the
# image (read-only root, no capabilities, host network); the host's contacts-cli streams a list
# through them and its ids are compared with kore-sim's; `podman stop` (SIGTERM) must drain the
# gateway to exit code 0. Then two gateway containers share one Redis container (deploy/redis/,
# Debian's redis-server on the same base, with a password): two streams of one account, one
# through each, stay within kore-sim's limit together. Prints the image sizes. Then the rendered
# dev overlay (deploy/k8s) runs with `podman kube play`: the host's contacts-cli streams a list
# through it and a gRPC health check from the host asks its plaintext probe port (podman 4.3
# drops gRPC probes, see below); its gateway shares through its Redis.
#   scripts/image-test.sh [BUILD_DIR]   BUILD_DIR holds the host's contacts-cli (default build)
#   scripts/image-test.sh --prepare     only the base and the build stage's packages (mostly
#                                       downloads: scripts/test.sh runs it while it compiles)
set -euo pipefail
cd "$(dirname "$0")/.."
build_dir=${1:-build}
scripts/deps.sh --image
# kubectl, npm yaml (the kube play step) and python3-grpcio (its health check), unless preparing.
[[ $build_dir == --prepare ]] || scripts/deps.sh --test
node_dir=${CONTACTS_NODE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/contacts-gateway/node}
cache=${XDG_CACHE_HOME:-$HOME/.cache}/contacts-gateway/image
base=localhost/contacts-gateway-base:bookworm
image=localhost/contacts-gateway:test
redis_image=localhost/contacts-redis:test
podman=(podman --runtime runc)
limits=(--ulimit nofile=4096:4096 --ulimit nproc=4096:4096)  # within the host's hard limits
mkdir -p "$cache"
timed() {  # timed LABEL COMMAND...: runs it and prints how long it took
  local label=$1 start=$SECONDS
  shift
  "$@"
  echo "image-test: $label took $((SECONDS - start)) s" >&2
}

make_base() {  # a slim Debian 12 root file system, like debian:bookworm-slim
  local rootfs
  rootfs=$(mktemp -d)
  debootstrap --variant=minbase bookworm "$rootfs" http://deb.debian.org/debian >"$cache/debootstrap.log"
  cat >"$rootfs/etc/apt/sources.list" <<'LIST'
deb http://deb.debian.org/debian bookworm main
deb http://deb.debian.org/debian bookworm-updates main
deb http://deb.debian.org/debian-security bookworm-security main
LIST
  cat >"$rootfs/etc/dpkg/dpkg.cfg.d/slim" <<'CFG'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
CFG
  rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/cache/apt/*.bin "$rootfs"/var/lib/apt/lists/* \
    "$rootfs"/var/log/apt "$rootfs"/var/log/dpkg.log "$rootfs"/var/log/bootstrap.log "$rootfs"/usr/share/man/* \
    "$rootfs"/usr/share/info/* "$rootfs"/usr/share/locale/*
  find "$rootfs/usr/share/doc" -type f ! -name copyright -delete
  tar -C "$rootfs" -cf "$cache/bookworm.tar.tmp" . && mv "$cache/bookworm.tar.tmp" "$cache/bookworm.tar"
  rm -rf "$rootfs"
}
[[ -f $cache/bookworm.tar ]] || timed debootstrap make_base
"${podman[@]}" image exists "$base" || timed import "${podman[@]}" import -q "$cache/bookworm.tar" "$base" >/dev/null

if [[ $build_dir == --prepare ]]; then
  timed deps-stage "${podman[@]}" build -q --network host --build-arg BASE="$base" --target deps . >/dev/null
  exit 0
fi

old=$("${podman[@]}" image inspect --format '{{.Id}}' "$image" 2>/dev/null || true)
timed build "${podman[@]}" build -q --network host --build-arg BASE="$base" \
  --build-arg REVISION="$(git rev-parse HEAD 2>/dev/null || echo unknown)" -t "$image" . >/dev/null
new=$("${podman[@]}" image inspect --format '{{.Id}}' "$image")
[[ -z $old || $old == "$new" ]] || "${podman[@]}" rmi -f "$old" >/dev/null 2>&1 || true
timed redis-build "${podman[@]}" build -q --network host --build-arg BASE="$base" -t "$redis_image" \
  deploy/redis >/dev/null

work=$(mktemp -d)
names=(cg-sim-$$ cg-gateway-$$ cg-redis-$$ cg-sim2-$$ cg-fleet1-$$ cg-fleet2-$$)
played=() secrets=()
cleanup() {
  "${podman[@]}" rm -f "${names[@]}" >/dev/null 2>&1 || true
  if ((${#played[@]})); then podman kube down "${played[@]}" >/dev/null 2>&1 || true; fi
  if ((${#secrets[@]})); then  # and the volumes kube play made of them
    podman secret rm "${secrets[@]}" >/dev/null 2>&1 || true
    podman volume rm -f "${secrets[@]}" >/dev/null 2>&1 || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT
passed=0 failed=0
check() {  # check NAME CONDITION...
  local name=$1; shift
  if "$@"; then echo "ok   $name"; passed=$((passed + 1)); else echo "FAIL $name"; failed=$((failed + 1)); fi
}
port_of() {  # waits for "listening on HOST:PORT" in the logs of container $1
  for _ in $(seq 200); do
    local port
    port=$("${podman[@]}" logs "$1" 2>/dev/null | sed -n 's/.*listening on [^ ]*:\([0-9]*\).*/\1/p')
    if [[ -n $port ]]; then echo "$port"; return; fi
    sleep 0.1
  done
  echo "no ready line from $1" >&2; "${podman[@]}" logs "$1" >&2; return 1
}
run=("${podman[@]}" run -d --network host --read-only --cap-drop all --security-opt no-new-privileges
     "${limits[@]}")

"${run[@]}" --name "${names[0]}" --entrypoint kore-sim "$image" --listen 127.0.0.1:0 --quiet \
  --app cs-image=image-secret-2c7e >/dev/null
sim_port=$(port_of "${names[0]}")
"${run[@]}" --name "${names[1]}" -e CONTACTS_GATEWAY_CLIENT_SECRET=image-secret-2c7e "$image" \
  --listen 127.0.0.1:0 --admin-listen 127.0.0.1:0 --upstream "http://127.0.0.1:$sim_port" --upstream-allow-plain-http \
  --client-id cs-image --allow-unauthenticated-callers --rate-limit 0 >/dev/null
gw_port=$(port_of "${names[1]}")

"$build_dir/client/contacts-cli" --target "127.0.0.1:$gw_port" --stream-id st-image --account-id acct-image \
  --list-id cl-sim-20000 --format csv --output "$work/out.csv" 2>"$work/cli.err"
curl -fsS "http://127.0.0.1:$sim_port/_sim/lists/cl-sim-20000/ids" >"$work/expected.txt"
check "20000 contacts streamed through the image" test "$(tail -n +2 "$work/out.csv" | wc -l)" -eq 20000
check "ids equal kore-sim's list, in order" cmp -s <(tail -n +2 "$work/out.csv" | cut -d, -f1) "$work/expected.txt"
check "runs as uid 10001" test "$("${podman[@]}" exec "${names[1]}" id -u)" -eq 10001
check "contacts-cli is in the image" "${podman[@]}" exec "${names[1]}" contacts-cli --help >/dev/null

"${podman[@]}" stop -t 30 "${names[1]}" >/dev/null
check "SIGTERM drains the gateway to exit 0" \
  test "$("${podman[@]}" inspect --format '{{.State.ExitCode}}' "${names[1]}")" -eq 0
check "the gateway logged its drain" grep -q 'draining' <("${podman[@]}" logs "${names[1]}" 2>&1)

# Two gateways, one Redis: each account's budget is spent by both together. kore-sim allows 30
# requests per 3 s per account; each gateway may send 570 a minute (95% of that). Two streams of
# one account, 30 pages each, one through each gateway: alone, each gateway would send its 30 at
# that rate, 57 per 3 s together, and draw 429s; sharing, they take ~6 s and draw none.
redis_port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
# The password in a config file, mounted over /etc/redis as Kubernetes mounts the Secret.
mkdir -m 755 "$work/redis"
printf 'requirepass image-redis-pw-6b1d\n' >"$work/redis/redis.conf"
chmod 644 "$work/redis/redis.conf"
"${run[@]}" --name "${names[2]}" -v "$work/redis:/etc/redis:ro,Z" "$redis_image" \
  /etc/redis/redis.conf --save "" --appendonly no --dir /tmp --bind 127.0.0.1 --port "$redis_port" >/dev/null
"${run[@]}" --name "${names[3]}" --entrypoint kore-sim "$image" --listen 127.0.0.1:0 --quiet \
  --app cs-image=image-secret-2c7e --rate-limit 30 --rate-window 3 >/dev/null
sim_port=$(port_of "${names[3]}")
fleet_ports=()
for name in "${names[4]}" "${names[5]}"; do
  "${run[@]}" --name "$name" -e CONTACTS_GATEWAY_CLIENT_SECRET=image-secret-2c7e \
    -e CONTACTS_GATEWAY_SHARED_STATE_PASSWORD=image-redis-pw-6b1d "$image" \
    --listen 127.0.0.1:0 --admin-listen 127.0.0.1:0 --upstream "http://127.0.0.1:$sim_port" \
    --upstream-allow-plain-http --client-id cs-image --allow-unauthenticated-callers --rate-limit 570 \
    --shared-state "redis://127.0.0.1:$redis_port/0" --shared-state-heartbeat 200ms >/dev/null
  fleet_ports+=("$(port_of "$name")")
done
admin_of() { "${podman[@]}" logs "$1" 2>/dev/null | sed -n 's/.*admin on [^ ]*:\([0-9]*\).*/\1/p' | head -n 1; }
sharing() {  # both gateways count two replicas sharing through Redis
  local gateway
  for gateway in "${names[4]}" "${names[5]}"; do
    curl -fsS "http://127.0.0.1:$(admin_of "$gateway")/metrics" |
      grep -q '^contacts_gateway_shared_state_replicas 2$' || return 1
  done
}
for _ in $(seq 100); do sharing && break; sleep 0.1; done
check "two gateways share through the Redis container" sharing
start=$SECONDS
pids=()
for i in 0 1; do
  "$build_dir/client/contacts-cli" --target "127.0.0.1:${fleet_ports[$i]}" --stream-id "st-fleet-$i" \
    --account-id acct-fleet --list-id "cl-sim-300$i" --page-size 100 --format csv \
    --output "$work/fleet-$i.csv" 2>"$work/fleet-$i.err" &
  pids+=($!)
done
for pid in "${pids[@]}"; do wait "$pid"; done
took=$((SECONDS - start))
for i in 0 1; do
  curl -fsS "http://127.0.0.1:$sim_port/_sim/lists/cl-sim-300$i/ids" >"$work/fleet-expected-$i.txt"
  check "stream $i through gateway $i: ids equal kore-sim's list" \
    cmp -s <(tail -n +2 "$work/fleet-$i.csv" | cut -d, -f1) "$work/fleet-expected-$i.txt"
done
stats=$(curl -fsS "http://127.0.0.1:$sim_port/_sim/stats")
account() { python3 -c 'import json,sys; print(json.load(sys.stdin)["accounts"]["acct-fleet"][sys.argv[1]])' "$1" <<<"$stats"; }
echo "image-test: 2 gateways, 1 account: $(account requests) requests in ${took} s, most in 3 s: $(account max_in_window) (limit 30), 429s: $(account rate_limited)"
check "no 429 for the account the two gateways share" test "$(account rate_limited)" -eq 0
check "no 3 s window above kore-sim's limit" test "$(account max_in_window)" -le 30
check "the two gateways paced the account together (>= 5 s for 60 requests)" test "$took" -ge 5

# --- The dev overlay, as rendered, with podman kube play --------------------------------------
# podman 4.3 takes no --runtime or --ulimit for kube play: a containers.conf of this run says runc
# and the same ulimits. Its pause image is built locally from catatonit (deps.sh --image).
kube_start=$SECONDS
printf '[containers]\ndefault_ulimits = ["nofile=4096:4096", "nproc=4096:4096"]\n[engine]\nruntime = "runc"\n' \
  >"$work/containers.conf"
export CONTAINERS_CONF=$work/containers.conf
"$node_dir/bin/kubectl" kustomize deploy/k8s/overlays/dev >"$work/dev.yaml"
free_port() { /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
k_sim=$(free_port) k_grpc=$(free_port) k_probe=$(free_port) k_admin=$(free_port) k_redis=$(free_port)
CONTACTS_NODE_MODULES=$node_dir/node_modules node tests/deploy/podman_play.mjs "$work/dev.yaml" "$work" \
  "$k_sim" "$k_grpc" "$k_probe" "$k_admin" "$k_redis"
podman tag "$image" localhost/contacts-gateway:0.1.0  # the overlay's images, present: not pulled
podman tag "$redis_image" localhost/contacts-redis:0.1.0
while read -r secret; do
  podman secret create "$secret" "$work/secret-$secret.yaml" >/dev/null
  secrets+=("$secret")
done <"$work/secrets"
played=("$work/play.yaml")
podman kube play --network host "$work/play.yaml" >"$work/play.log" 2>&1 || { cat "$work/play.log"; exit 1; }
gw=contacts-gateway-pod-0-gateway sim=kore-sim-pod-0-kore-sim
for _ in $(seq 200); do
  podman logs "$gw" 2>/dev/null | grep -q 'listening on' && break
  sleep 0.1
done
ready=$(podman logs "$gw" 2>/dev/null | grep 'listening on' || true)
echo "image-test: kube play: $ready"
check "kube play: the gateway read its ConfigMap (ports, kore-sim upstream, probe port)" \
  grep -q "listening on \[::\]:$k_grpc (gRPC, plaintext), probe on \[::\]:$k_probe .*upstream http://127.0.0.1:$k_sim" <<<"$ready"
check "kube play: the gateway mints from the mounted credentials Secret" grep -q 'minting JWTs' <<<"$ready"
# The overlay keeps the upstream budget (60 requests a minute per account): 1000-contact pages.
"$build_dir/client/contacts-cli" --target "127.0.0.1:$k_grpc" --stream-id st-kube --account-id acct-demo \
  --list-id cl-sim-5000 --page-size 1000 --format csv --output "$work/kube.csv" 2>"$work/kube-cli.err" ||
  cat "$work/kube-cli.err"
curl -fsS "http://127.0.0.1:$k_sim/_sim/lists/cl-sim-5000/ids" >"$work/kube-expected.txt"
check "kube play: 5000 contacts streamed, kore-sim's ids in order" \
  cmp -s <(tail -n +2 "$work/kube.csv" | cut -d, -f1) "$work/kube-expected.txt"
health() {  # health TARGET SERVICE: a gRPC health check as kubelet makes it (plaintext)
  /usr/bin/python3 -c 'import grpc, sys
service = sys.argv[2].encode()
answer = grpc.insecure_channel(sys.argv[1]).unary_unary("/grpc.health.v1.Health/Check")(
    b"\n" + bytes([len(service)]) + service, timeout=5)
print({b"\x08\x01": "SERVING", b"\x08\x02": "NOT_SERVING"}.get(answer, answer.hex()))' "$@"
}
check "kube play: probe port answers readiness SERVING (IPv4)" \
  test "$(health "127.0.0.1:$k_probe" contacts.v1.ContactService)" = SERVING
check "kube play: probe port answers liveness SERVING (IPv6)" test "$(health "[::1]:$k_probe" liveness)" = SERVING
[[ $(podman inspect --format '{{.State.Status}}' redis-pod-0-redis) == running ]] ||
  { echo "image-test: the overlay's Redis is not running:" >&2; podman logs redis-pod-0-redis 2>&1 | tail -3 >&2; }
check "kube play: the overlay's Redis runs as 10002:10002 on a read-only root" \
  test "$(podman exec redis-pod-0-redis id -u):$(podman inspect --format '{{.HostConfig.ReadonlyRootfs}}' redis-pod-0-redis)" = 10002:true
for c in "$gw" "$sim"; do
  check "kube play: $c runs as 10001:10001" test "$(podman exec "$c" id -u):$(podman exec "$c" id -g)" = 10001:10001
  check "kube play: $c has a read-only root file system" \
    test "$(podman inspect --format '{{.HostConfig.ReadonlyRootfs}}' "$c")" = true
done
check "kube play: the credentials file is mounted" \
  podman exec "$gw" test -s /var/run/secrets/kore/credentials.json
# The overlay's Redis, its password from the generated Secret (Redis: a config file; the
# gateway: an environment variable).
for _ in $(seq 100); do
  curl -fsS "http://127.0.0.1:$k_admin/metrics" | grep -q '^contacts_gateway_shared_state_up 1$' && break
  sleep 0.1
done
check "kube play: the gateway shares through the overlay's Redis (with its password)" \
  grep -q '^contacts_gateway_shared_state_up 1$' <(curl -fsS "http://127.0.0.1:$k_admin/metrics")
# A budget key lives until the account's schedule is free again (seconds): stream again, then look.
"$build_dir/client/contacts-cli" --target "127.0.0.1:$k_grpc" --stream-id st-kube-2 --account-id acct-demo \
  --list-id cl-sim-2000 --page-size 1000 --format csv --output /dev/null 2>"$work/kube-cli2.err" ||
  cat "$work/kube-cli2.err"
check "kube play: the overlay's Redis holds the gateway's budget" \
  grep -q 'contacts-gateway:budget:{acct-demo}' <(podman exec redis-pod-0-redis redis-cli -p "$k_redis" \
    -a dev-redis-password --no-auth-warning --scan --pattern 'contacts-gateway:*')
# What podman 4.3 leaves out of the manifests (Kubernetes does not): gRPC probes are dropped
# without a word (no healthcheck), while kore-sim's httpGet liveness probe becomes one;
# readinessProbe is ignored; defaultMode is not applied to Secret files.
check "kube play: podman 4.3 drops the gateway's gRPC probes (no healthcheck)" \
  test "$(podman inspect --format '{{json .Config.Healthcheck}}' "$gw")" = null
check "kube play: ... but keeps kore-sim's httpGet liveness probe as a healthcheck" \
  test "$(podman inspect --format '{{json .Config.Healthcheck}}' "$sim")" != null
echo "image-test: kube play: Secret file mode under podman: $(podman exec "$gw" stat -c '%a %u:%g' \
  /var/run/secrets/kore/credentials.json) (Kubernetes: defaultMode 0400, group read for fsGroup)"
podman stop -t 30 "$gw" >/dev/null
check "kube play: SIGTERM drains the gateway to exit 0" \
  test "$(podman inspect --format '{{.State.ExitCode}}' "$gw")" -eq 0
echo "image-test: kube play step took $((SECONDS - kube_start)) s"

size=$("${podman[@]}" image inspect --format '{{.Size}}' "$image")
echo "image-test: $image is $((size / 1000000)) MB ($size bytes)"
redis_size=$("${podman[@]}" image inspect --format '{{.Size}}' "$redis_image")
echo "image-test: $redis_image is $((redis_size / 1000000)) MB ($redis_size bytes)"
echo "image-test: $passed passed, $failed failed"
exit $((failed > 0))
