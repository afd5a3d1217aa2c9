#!/usr/bin/env bash
# End-to-end tests of the qstore Docker volume plugin against a real Docker engine, driven
# through the docker CLI. Installs Debian's docker.io if it is missing, starts dockerd if none
# runs (and stops it afterwards), builds a local busybox image (no registry is reachable),
# runs the plugin, and cleans up its volumes, containers and mounts whatever happens. With the
# cluster of scripts/cluster.sh running (test-all.sh), two more plugin instances share one
# s3:// repository, as two hosts would: a volume snapshotted on one is cloned on the other.
set -euo pipefail
cd "$(dirname "$0")/.."
QSTORE=${QSTORE_BIN:-$PWD/target/debug/qstore}
SOCK=/run/docker/plugins/qstore.sock
IMG=qstore-busybox:test
work=$(mktemp -d /tmp/qstore-docker-XXXXXX)
started_dockerd=0
plugin_pid=""
VOLS="scratch1 ckpt clone1 v1 v2 bad shared hostvol hostclone"
host_pids=""

log() { echo "test-docker: $*"; }
fail() {
    echo "test-docker: FAIL: $*" >&2
    [ -f "$work/plugin.log" ] && tail -20 "$work/plugin.log" >&2
    exit 1
}

cleanup() {
    set +e
    docker ps -aq --filter label=qstore-test=1 | xargs -r docker rm -f >/dev/null 2>&1
    for v in $VOLS; do docker volume rm -f "$v" >/dev/null 2>&1; done
    [ -n "$plugin_pid" ] && kill "$plugin_pid" 2>/dev/null && wait "$plugin_pid" 2>/dev/null
    for p in $host_pids; do kill "$p" 2>/dev/null && wait "$p" 2>/dev/null; done
    rm -f /run/docker/plugins/qstore-h1.sock /run/docker/plugins/qstore-h2.sock
    grep " $work/" /proc/self/mountinfo | awk '{print $5}' | sort -r | xargs -r -n1 umount -l 2>/dev/null
    if [ "$started_dockerd" = 1 ]; then
        pkill -x dockerd
        for _ in $(seq 50); do pgrep -x dockerd >/dev/null || break; sleep 0.2; done
    fi
    rm -f "$SOCK"
    rm -rf "$work"
}
trap cleanup EXIT

wait_for() { # wait_for SECONDS COMMAND...
    local t=$1; shift
    for _ in $(seq $((t * 10))); do "$@" >/dev/null 2>&1 && return 0; sleep 0.1; done
    return 1
}

# 1. A Docker engine.
if ! command -v dockerd >/dev/null || ! command -v mkfs.ext4 >/dev/null || ! command -v busybox >/dev/null; then
    log "installing docker.io, e2fsprogs and busybox-static"
    apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker.io e2fsprogs busybox-static >/dev/null
fi
start_dockerd() {
    (dockerd >>"$work/dockerd.log" 2>&1 &)
    wait_for 60 docker info || fail "dockerd did not start"
}
if ! docker info >/dev/null 2>&1; then
    log "starting dockerd"
    start_dockerd
    started_dockerd=1
fi

# 2. A local image (busybox-static root file system).
if ! docker image inspect "$IMG" >/dev/null 2>&1; then
    mkdir -p "$work/rootfs/bin"
    cp "$(command -v busybox)" "$work/rootfs/bin/busybox"
    for c in sh ls cat echo dd df mkdir rm sleep test grep; do ln -sf busybox "$work/rootfs/bin/$c"; done
    tar -C "$work/rootfs" -c . | docker import - "$IMG" >/dev/null
fi
run() { docker run --rm --network none --label qstore-test=1 "$@"; }

# 3. The plugin.
start_plugin() {
    QSTORE_VOLUME_FAIL_MOUNT=bad "$QSTORE" --repo "$work/repo" volume-plugin --root "$work/root" \
        --socket "$SOCK" --reconcile-every 1s >>"$work/plugin.log" 2>&1 &
    plugin_pid=$!
    wait_for 30 "$QSTORE" volume --socket "$SOCK" ls || fail "the plugin did not start"
}
start_plugin
# The mount count the plugin holds for volume $1.
mounts() {
    "$QSTORE" volume --socket "$SOCK" ls |
        awk -v n="$1" '$1 == n { for (i = 2; i <= NF; i++) if ($i ~ /^mounts=/) print substr($i, 8) }'
}

log "create, write, read, size limits"
docker volume create -d qstore --opt tier=memory --opt size=2m scratch1 >/dev/null
docker volume create -d qstore --opt tier=disk --opt size=32m --opt snapshot=on-unmount ckpt >/dev/null
[ "$(docker volume ls -q --filter driver=qstore | sort | tr '\n' ' ')" = "ckpt scratch1 " ] || fail "docker volume ls"
run -v scratch1:/scratch -v ckpt:/ckpt "$IMG" sh -c 'echo state-17 > /ckpt/psi.txt && mkdir /ckpt/run && echo x > /ckpt/run/a && echo tmp > /scratch/t && cat /scratch/t' | grep -q tmp || fail "write and read"
out=$(run -v scratch1:/scratch "$IMG" sh -c 'dd if=/dev/zero of=/scratch/big bs=1M count=4 2>&1; echo rc=$?') || true
echo "$out" | grep -q "No space left" || fail "memory tier size limit: $out"
out=$(run -v ckpt:/ckpt "$IMG" sh -c 'dd if=/dev/zero of=/ckpt/big bs=1M count=64 2>&1; rm -f /ckpt/big') || true
echo "$out" | grep -q "No space left" || fail "disk tier size limit: $out"

log "bad options are refused with the reason"
for opts in "--opt tier=ssd --opt size=1g" "--opt tier=memory" "--opt size=1g --opt from=main:volumes/none"; do
    # shellcheck disable=SC2086
    err=$(docker volume create -d qstore $opts badvol 2>&1) && fail "created with $opts"
    echo "$err" | grep -qE "tier=ssd|size is required|from=main" || fail "message for $opts: $err"
done
err=$(docker volume create -d qstore --opt size=1g a..b 2>&1) && fail "created a..b"

log "snapshot on the last unmount, clone, qstore volume snapshot"
"$QSTORE" --repo "$work/repo" get volumes/ckpt/psi.txt -o "$work/psi.txt" >/dev/null 2>&1 || true
"$QSTORE" --repo "$work/repo" ls volumes/ckpt | grep -q "volumes/ckpt/run/a" || fail "snapshot on unmount"
docker volume create -d qstore --opt tier=memory --opt size=8m --opt from=main:volumes/ckpt clone1 >/dev/null
run -v clone1:/c "$IMG" cat /c/psi.txt | grep -q state-17 || fail "clone from the snapshot"
"$QSTORE" volume --socket "$SOCK" snapshot ckpt -m "after run 17" | grep -q commit || fail "qstore volume snapshot"

log "two containers sharing a volume"
docker volume create -d qstore --opt tier=memory --opt size=4m shared >/dev/null
docker run -d --network none --label qstore-test=1 --name qs-writer -v shared:/s "$IMG" sh -c 'echo hello > /s/msg; sleep 600' >/dev/null
wait_for 20 sh -c "docker exec qs-writer cat /s/msg"
run -v shared:/s "$IMG" cat /s/msg | grep -q hello || fail "the second container reads the first one's file"
[ "$(mounts shared)" = 1 ] || fail "shared mounts while one container runs: $(mounts shared)"
err=$("$QSTORE" volume --socket "$SOCK" rm shared 2>&1) && fail "removed a mounted volume"
echo "$err" | grep -q "in use" || fail "message: $err"

log "a container whose third volume fails to mount leaves no mount behind"
docker volume create -d qstore --opt tier=memory --opt size=1m v1 >/dev/null
docker volume create -d qstore --opt tier=memory --opt size=1m v2 >/dev/null
docker volume create -d qstore --opt tier=memory --opt size=1m bad >/dev/null
run -v v1:/a -v v2:/b -v bad:/c "$IMG" true 2>/dev/null && fail "the failing mount was accepted"
all_unmounted() { [ "$(mounts v1)$(mounts v2)$(mounts bad)" = 000 ]; }
wait_for 10 all_unmounted || fail "mounts left: v1=$(mounts v1) v2=$(mounts v2) bad=$(mounts bad)"

log "kill -9 of the plugin: volumes, inspect and mounts unchanged, still usable"
before=$(docker volume ls -q --filter driver=qstore | sort | tr '\n' ' ')
kill -9 "$plugin_pid"; wait "$plugin_pid" 2>/dev/null || true
start_plugin
[ "$(docker volume ls -q --filter driver=qstore | sort | tr '\n' ' ')" = "$before" ] || fail "volumes after the plugin restart"
docker volume inspect shared >/dev/null || fail "inspect after the plugin restart"
[ "$(mounts shared)" = 1 ] || fail "mount count after the plugin restart: $(mounts shared)"
docker exec qs-writer sh -c 'echo again >> /s/msg' || fail "the running container lost its volume"

log "dockerd restart: the Unmount never comes, the plugin reconciles"
if [ "$started_dockerd" = 1 ]; then
    pkill -9 -x dockerd
    for _ in $(seq 50); do pgrep -x dockerd >/dev/null || break; sleep 0.2; done
    start_dockerd
    docker rm -f qs-writer >/dev/null 2>&1 || true
    shared_free() { [ "$(mounts shared)" = 0 ]; }
    wait_for 20 shared_free \
        || fail "mount count of shared not reconciled: $("$QSTORE" --json volume --socket "$SOCK" ls 2>&1)"
    docker volume ls -q --filter driver=qstore | grep -q shared || fail "volumes after the dockerd restart"
else
    log "(dockerd was already running before the tests: its restart is not exercised)"
    docker rm -f qs-writer >/dev/null
fi

log "two plugin instances (as on two hosts) on one shared s3:// repository"
if [ -n "${QSTORE_TEST_S3_ENDPOINT:-}" ] && [ -n "${QSTORE_TEST_ETCD:-}" ]; then
    prefix="docker-$$-$RANDOM"
    ep=$(printf %s "$QSTORE_TEST_S3_ENDPOINT" | sed 's/:/%3A/g; s#/#%2F#g')
    shared_repo="s3://$QSTORE_TEST_BUCKET/$prefix?endpoint=$ep&region=garage"
    shared_refs="etcd://$QSTORE_TEST_ETCD/$prefix"
    "$QSTORE" --repo "$shared_repo" --refs "$shared_refs" init >/dev/null || fail "init the shared repository"
    for h in h1 h2; do
        "$QSTORE" --repo "$shared_repo" --refs "$shared_refs" volume-plugin --root "$work/$h" \
            --socket "/run/docker/plugins/qstore-$h.sock" --reconcile-every 1s >>"$work/plugin-$h.log" 2>&1 &
        host_pids="$host_pids $!"
        wait_for 30 "$QSTORE" volume --socket "/run/docker/plugins/qstore-$h.sock" ls \
            || fail "plugin $h did not start: $(tail -5 "$work/plugin-$h.log")"
    done
    docker volume create -d qstore-h1 --opt tier=disk --opt size=32m --opt snapshot=on-unmount hostvol >/dev/null
    run -v hostvol:/d "$IMG" sh -c 'echo written-on-host-1 > /d/result.txt && mkdir /d/sub && echo 42 > /d/sub/n' \
        || fail "write on host 1"
    # The last unmount committed the files to the shared repository; the other host clones
    # them, without giving a size.
    docker volume create -d qstore-h2 --opt from=main:volumes/hostvol hostclone >/dev/null \
        || fail "clone on host 2: $(tail -5 "$work/plugin-h2.log")"
    run -v hostclone:/c "$IMG" sh -c 'cat /c/result.txt /c/sub/n' | tr '\n' ' ' | grep -q "written-on-host-1 42" \
        || fail "host 2 reads what host 1 wrote"
    size=$(docker volume inspect hostclone --format '{{ index .Status "size" }}')
    awk -v s="$size" 'BEGIN { exit !(s + 0 >= 64 * 1048576) }' || fail "default size of a clone: $size"
    docker volume rm hostvol hostclone >/dev/null || fail "remove the shared volumes"
else
    [ -n "${QSTORE_REQUIRE_CLUSTER:-}" ] && fail "QSTORE_REQUIRE_CLUSTER is set but the cluster is not running"
    log "(no cluster running: skipped; scripts/test-all.sh starts one)"
fi

log "remove"
for v in $VOLS; do docker volume rm "$v" >/dev/null 2>&1 || true; done
[ -z "$(docker volume ls -q --filter driver=qstore)" ] || fail "volumes left"
grep -q " $work/root/volumes/" /proc/self/mountinfo && fail "mounts left"
log "all passed"
