#!/usr/bin/env bash
# Real cluster services for qstore's tests and benchmarks, on loopback only:
# a 3-node Garage 2.5.0 cluster (S3, replication factor 3) and a 3-member etcd cluster.
#
#   scripts/cluster.sh install          build/install what is missing (Garage from crates.io
#                                       into ~/.cache/qstore, once; etcd from Debian)
#   scripts/cluster.sh start DIR        start both clusters with state under DIR; writes DIR/env
#   scripts/cluster.sh stop DIR         stop everything started under DIR
#   scripts/cluster.sh kill-garage DIR N / start-garage DIR N   (N = 1..3; kill -9)
#   scripts/cluster.sh kill-etcd DIR N   / start-etcd DIR N
#
# DIR/env exports AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_REGION, QSTORE_TEST_S3_ENDPOINT,
# QSTORE_TEST_BUCKET and QSTORE_TEST_ETCD (comma-separated HOST:PORT of the members).
set -euo pipefail

GARAGE_VERSION=2.5.0
CACHE="${QSTORE_TOOL_CACHE:-$HOME/.cache/qstore}"
GARAGE="$CACHE/garage-$GARAGE_VERSION/bin/garage"
BASE_PORT="${QSTORE_CLUSTER_PORT:-39000}"
KEY_ID=GK0123456789abcdef01234567
SECRET=0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef
RPC_SECRET=4f2b6c3e9d8a7b1c0e5f4a3b2c1d0e9f8a7b6c5d4e3f2a1b0c9d8e7f6a5b4c3d

install() {
    if [ ! -x "$GARAGE" ]; then
        echo "building Garage $GARAGE_VERSION from crates.io into $CACHE (once, ~25 min on 2 cores)" >&2
        mkdir -p "$CACHE"
        CARGO_TARGET_DIR="$CACHE/garage-build" cargo install --locked --quiet garage \
            --version "$GARAGE_VERSION" --root "$CACHE/garage-$GARAGE_VERSION"
        rm -rf "$CACHE/garage-build"
    fi
    if ! command -v etcd >/dev/null || ! command -v etcdctl >/dev/null; then
        apt-get update -qq >/dev/null
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq etcd-server etcd-client >/dev/null
    fi
}

gport() { echo $((BASE_PORT + 10 * $1 + $2)); }   # node N: +0 s3, +1 rpc, +3 admin
eport() { echo $((BASE_PORT + 100 + 10 * $1 + $2)); } # member N: +0 client, +1 peer

garage_config() {
    local dir=$1 n=$2 peers=""
    for m in 1 2 3; do
        [ "$m" = "$n" ] && continue
        [ -f "$dir/garage/id$m" ] && peers="$peers\"$(cat "$dir/garage/id$m")@127.0.0.1:$(gport $m 1)\","
    done
    cat > "$dir/garage/n$n.toml" <<TOML
metadata_dir = "$dir/garage/n$n/meta"
data_dir = "$dir/garage/n$n/data"
db_engine = "lmdb"
replication_factor = 3
rpc_bind_addr = "127.0.0.1:$(gport $n 1)"
rpc_public_addr = "127.0.0.1:$(gport $n 1)"
rpc_secret = "$RPC_SECRET"
bootstrap_peers = [${peers%,}]
[s3_api]
s3_region = "garage"
api_bind_addr = "127.0.0.1:$(gport $n 0)"
root_domain = ".s3.garage.localhost"
[admin]
api_bind_addr = "127.0.0.1:$(gport $n 3)"
admin_token = "qstore-test-admin"
TOML
}

start_garage() {
    local dir=$1 n=$2
    mkdir -p "$dir/garage/n$n"
    garage_config "$dir" "$n"
    nohup "$GARAGE" -c "$dir/garage/n$n.toml" server >"$dir/garage/n$n.log" 2>&1 &
    echo $! > "$dir/garage/n$n.pid"
    for _ in $(seq 100); do
        "$GARAGE" -c "$dir/garage/n$n.toml" status >/dev/null 2>&1 && return 0
        sleep 0.1
    done
    echo "garage node $n did not start; see $dir/garage/n$n.log" >&2
    return 1
}

etcd_cluster() {
    local c=""
    for m in 1 2 3; do c="${c}m$m=http://127.0.0.1:$(eport $m 1),"; done
    echo "${c%,}"
}

start_etcd() {
    local dir=$1 n=$2 state=new
    [ -d "$dir/etcd/m$n/member" ] && state=existing
    mkdir -p "$dir/etcd/m$n"
    nohup etcd --name "m$n" --data-dir "$dir/etcd/m$n" \
        --listen-client-urls "http://127.0.0.1:$(eport $n 0)" \
        --advertise-client-urls "http://127.0.0.1:$(eport $n 0)" \
        --listen-peer-urls "http://127.0.0.1:$(eport $n 1)" \
        --initial-advertise-peer-urls "http://127.0.0.1:$(eport $n 1)" \
        --initial-cluster "$(etcd_cluster)" --initial-cluster-state "$state" \
        --initial-cluster-token qstore-test \
        --heartbeat-interval 250 --election-timeout 2500 \
        >"$dir/etcd/m$n.log" 2>&1 &
    echo $! > "$dir/etcd/m$n.pid"
}

kill_pid() { [ -f "$1" ] && kill -9 "$(cat "$1")" 2>/dev/null || true; rm -f "$1"; }

start() {
    local dir=$1
    install
    stop "$dir" 2>/dev/null || true
    rm -rf "$dir/garage" "$dir/etcd"
    mkdir -p "$dir/garage" "$dir/etcd"
    for n in 1 2 3; do start_etcd "$dir" $n; done
    for n in 1 2 3; do
        start_garage "$dir" $n
        "$GARAGE" -c "$dir/garage/n$n.toml" node id -q 2>/dev/null | cut -d@ -f1 > "$dir/garage/id$n"
    done
    local g="$GARAGE -c $dir/garage/n1.toml"
    for n in 2 3; do $g node connect "$(cat "$dir/garage/id$n")@127.0.0.1:$(gport $n 1)" >/dev/null; done
    for n in 1 2 3; do garage_config "$dir" $n; done   # bootstrap_peers for restarts
    for n in 1 2 3; do $g layout assign -z dc1 -c 1G "$(cat "$dir/garage/id$n")" >/dev/null; done
    $g layout apply --version 1 >/dev/null
    $g key import --yes -n qstore-test "$KEY_ID" "$SECRET" >/dev/null
    $g bucket create qstore-test >/dev/null
    $g bucket allow --read --write --owner qstore-test --key qstore-test >/dev/null
    local eps="127.0.0.1:$(eport 1 0),127.0.0.1:$(eport 2 0),127.0.0.1:$(eport 3 0)"
    for _ in $(seq 100); do
        ETCDCTL_API=3 etcdctl --endpoints "$eps" endpoint health >/dev/null 2>&1 && break
        sleep 0.2
    done
    cat > "$dir/env" <<ENV
export AWS_ACCESS_KEY_ID=$KEY_ID
export AWS_SECRET_ACCESS_KEY=$SECRET
export AWS_REGION=garage
export QSTORE_TEST_S3_ENDPOINT=http://127.0.0.1:$(gport 1 0)
export QSTORE_TEST_S3_ENDPOINTS=http://127.0.0.1:$(gport 1 0),http://127.0.0.1:$(gport 2 0),http://127.0.0.1:$(gport 3 0)
export QSTORE_TEST_BUCKET=qstore-test
export QSTORE_TEST_ETCD=$eps
export QSTORE_TEST_CLUSTER_DIR=$dir
ENV
    # Wait until the bucket answers through every node.
    for n in 1 2 3; do
        for _ in $(seq 100); do
            curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$(gport $n 0)/qstore-test" | grep -q '^[1-5]' && break
            sleep 0.1
        done
    done
    echo "cluster up: S3 http://127.0.0.1:$(gport 1 0) (3 Garage nodes), etcd $eps" >&2
}

stop() {
    local dir=$1
    for n in 1 2 3; do kill_pid "$dir/garage/n$n.pid"; kill_pid "$dir/etcd/m$n.pid"; done
}

cmd=${1:-}
case "$cmd" in
    install) install ;;
    start) start "$2" ;;
    stop) stop "$2" ;;
    kill-garage) kill_pid "$2/garage/n$3.pid" ;;
    start-garage) start_garage "$2" "$3" ;;
    kill-etcd) kill_pid "$2/etcd/m$3.pid" ;;
    start-etcd) start_etcd "$2" "$3" ;;
    *) echo "usage: $0 install|start DIR|stop DIR|kill-garage DIR N|start-garage DIR N|kill-etcd DIR N|start-etcd DIR N" >&2; exit 2 ;;
esac
