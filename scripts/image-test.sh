#!/usr/bin/env bash
# Builds the container image (Dockerfile) offline with podman and tests it: the base is Debian 12
# made with debootstrap (no container registry is reachable here; Debian mirrors are), cached in
# ~/.cache/contacts-gateway/image. Then kore-sim and the gateway run as two containers of the
# image (read-only root, no capabilities, host network); the host's contacts-cli streams a list
# through them and its ids are compared with kore-sim's; `podman stop` (SIGTERM) must drain the
# gateway to exit code 0. Prints the image size.
#   scripts/image-test.sh [BUILD_DIR]   BUILD_DIR holds the host's contacts-cli (default build)
#   scripts/image-test.sh --prepare     only the base and the build stage's packages (mostly
#                                       downloads: scripts/test.sh runs it while it compiles)
set -euo pipefail
cd "$(dirname "$0")/.."
build_dir=${1:-build}
scripts/deps.sh --image
cache=${XDG_CACHE_HOME:-$HOME/.cache}/contacts-gateway/image
base=localhost/contacts-gateway-base:bookworm
image=localhost/contacts-gateway:test
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

work=$(mktemp -d)
names=(cg-sim-$$ cg-gateway-$$)
cleanup() { "${podman[@]}" rm -f "${names[@]}" >/dev/null 2>&1 || true; rm -rf "$work"; }
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

size=$("${podman[@]}" image inspect --format '{{.Size}}' "$image")
echo "image-test: $image is $((size / 1000000)) MB ($size bytes)"
echo "image-test: $passed passed, $failed failed"
exit $((failed > 0))
