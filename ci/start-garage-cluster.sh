#!/bin/bash
# start-garage-cluster.sh DIR [N] - start an N-node garage cluster (default 3, at least 3)
# on 127.0.0.1 for tests: N `garage server` processes on free ports, one shared
# rpc_secret, replication_factor 3 with the default (consistent) consistency mode, each
# node with its own DIR/nodeK/{garage.toml,meta,data,garage.log,pid}; connected to node
# 1, one zone per node (dcK, capacity 1G), then a bucket named `localhost` (its website
# enabled: http://localhost:<web-port>/ on any node) and a key allowed to read and write
# it, as ci/start-garage.sh does for one node.
#
# Installs garage first when `command -v garage` fails, unless GARAGE_NO_INSTALL=1.
#
# Prints the path of an env file to source (stdout, last line): what ci/start-garage.sh
# writes, pointing at node 1 (AWS_ENDPOINT_URL, GARAGE_WEB_URL, GARAGE_PID,
# GARAGE_CONFIG, GARAGE_ADMIN_URL; GARAGE_DIR=DIR), plus GARAGE_NODES=N and per node K:
#   GARAGE_NODE<K>_PID GARAGE_NODE<K>_S3_URL GARAGE_NODE<K>_WEB_URL GARAGE_NODE<K>_CONFIG
#   GARAGE_NODE<K>_DIR GARAGE_NODE<K>_ID
#
# start-garage-cluster.sh --restart DIR K [CONFIG] - start node K again (after it was
# killed or stopped) with its own config, or with CONFIG (e.g. a copy with another
# consistency_mode; same meta and data dirs); reconnects it with the running nodes (both
# ways), waits until its web endpoint listens, updates GARAGE_NODE<K>_PID in DIR/env and
# prints the new pid.
#
# Stop every node with ci/stop-garage.sh DIR (DIR stays, with data and logs).
set -euo pipefail
GARAGE_LOG_PREFIX=start-garage-cluster
. "$(dirname "${BASH_SOURCE[0]}")/garage-node.sh"
usage() {
    echo "usage: start-garage-cluster.sh DIR [N] | start-garage-cluster.sh --restart DIR K [CONFIG]" >&2
    exit 2
}

if [ "${1:-}" = --restart ]; then
    [ $# -ge 3 ] || usage
    DIR=$(cd "$2" && pwd); K=$3; NODEDIR=$DIR/node$K
    CONF=${4:-$NODEDIR/garage.toml}
    [ -f "$NODEDIR/garage.toml" ] || { echo "start-garage-cluster: no node $K in $DIR" >&2; exit 1; }
    [ -f "$CONF" ] || { echo "start-garage-cluster: no config $CONF" >&2; exit 1; }
    garage_install
    if [ -f "$NODEDIR/pid" ] && kill -0 "$(cat "$NODEDIR/pid")" 2>/dev/null; then
        echo "start-garage-cluster: node $K is running (pid $(cat "$NODEDIR/pid")); stop it first" >&2
        exit 1
    fi
    echo "---- restarted with $CONF" >> "$NODEDIR/garage.log"
    garage_spawn "$NODEDIR" "$CONF"
    PID=$GN_PID
    garage_cleanup() { kill "$PID" 2>/dev/null || true; }
    garage_wait_id "$NODEDIR" "$CONF"
    garage_retry "$NODEDIR" garage -c "$CONF" status
    # Reconnect with every running node, both ways: the others gave up calling the dead
    # node after a retry or two (with a growing back-off), and a node does not dial its
    # old peers when it starts, so without this it comes back cut off from the cluster
    # (`Not connected`) for minutes, and nothing syncs.
    ID_K=$GN_ID
    for OTHER in "$DIR"/node*; do
        [ "$OTHER" != "$NODEDIR" ] && [ -f "$OTHER/pid" ] && kill -0 "$(cat "$OTHER/pid")" 2>/dev/null || continue
        ID_J=$(garage -c "$OTHER/garage.toml" node id -q 2>/dev/null) || continue
        garage_retry "$NODEDIR" garage -c "$CONF" node connect "$ID_J"
        garage_retry "$OTHER" garage -c "$OTHER/garage.toml" node connect "$ID_K"
    done
    garage_wait_web "$(garage_port "$CONF" s3_web bind_addr)" ||
        garage_fail "$NODEDIR" "node $K's web endpoint does not answer"
    [ -f "$DIR/env" ] && sed -i "s/^export GARAGE_NODE${K}_PID=.*/export GARAGE_NODE${K}_PID=$PID/" "$DIR/env"
    echo "start-garage-cluster: node $K restarted, pid $PID" >&2
    echo "$PID"
    exit 0
fi

[ $# -ge 1 ] || usage
DIR=$1; N=${2:-3}
[ "$N" -ge 3 ] 2>/dev/null || { echo "start-garage-cluster: replication factor 3 needs at least 3 nodes, not $N" >&2; exit 2; }
mkdir -p "$DIR"
DIR=$(cd "$DIR" && pwd)
garage_install

SECRET=$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')
declare -a PIDS S3 WEB ADMIN IDS
garage_cleanup() { local p; for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; }
for K in $(seq "$N"); do
    garage_write_config "$DIR/node$K" 3 "$SECRET"
    S3[K]=$GN_S3; WEB[K]=$GN_WEB; ADMIN[K]=$GN_ADMIN
    garage_spawn "$DIR/node$K"
    PIDS[K]=$GN_PID
done
for K in $(seq "$N"); do
    garage_wait_id "$DIR/node$K"
    IDS[K]=$GN_ID
done

N1=$DIR/node1
g1() { garage -c "$N1/garage.toml" "$@"; }
garage_retry "$N1" g1 status
for K in $(seq 2 "$N"); do
    garage_retry "$N1" g1 node connect "${IDS[K]}"
done
for K in $(seq "$N"); do
    garage_retry "$N1" g1 layout assign -z "dc$K" -c 1G "${IDS[K]%%@*}"
done
garage_retry "$N1" g1 layout apply --version 1
# Every node must have the layout before the bucket is created (its writes need a quorum).
for K in $(seq 2 "$N"); do
    garage_retry "$DIR/node$K" bash -c "garage -c '$DIR/node$K/garage.toml' layout show | grep -qi 'version: 1'"
done
garage_retry "$N1" g1 bucket create localhost
g1 bucket info localhost > /dev/null || garage_fail "$N1" "could not create the bucket"
KEYINFO=$(g1 key create arbor-key)
KEY_ID=$(echo "$KEYINFO" | awk -F': *' '/Key ID/ {print $2; exit}')
KEY_SECRET=$(echo "$KEYINFO" | awk -F': *' '/Secret key/ {print $2; exit}')
[ -n "$KEY_ID" ] && [ -n "$KEY_SECRET" ] || garage_fail "$N1" "could not parse the key: $KEYINFO"
g1 bucket allow --read --write --owner localhost --key arbor-key > /dev/null
g1 bucket website --allow localhost > /dev/null

# Every node must know the key and the bucket (S3 listing with the key answers 200) and
# serve HTTP on its web endpoint before anyone relies on it.
EMPTY_SHA256=e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855
s3_ready() {   # PORT
    [ "$(curl -s -o /dev/null -w '%{http_code}' --aws-sigv4 'aws:amz:garage:s3' \
        --user "$KEY_ID:$KEY_SECRET" -H "x-amz-content-sha256: $EMPTY_SHA256" \
        "http://127.0.0.1:$1/localhost?list-type=2")" = 200 ]
}
for K in $(seq "$N"); do
    garage_retry "$DIR/node$K" s3_ready "${S3[K]}"
    garage_wait_web "${WEB[K]}" || garage_fail "$DIR/node$K" "node $K's web endpoint does not answer"
done

{
    cat <<ENV
export AWS_ENDPOINT_URL=http://127.0.0.1:${S3[1]}
export AWS_REGION=garage
export AWS_DEFAULT_REGION=garage
export AWS_ACCESS_KEY_ID=$KEY_ID
export AWS_SECRET_ACCESS_KEY=$KEY_SECRET
export AWS_ALLOW_HTTP=true
export GARAGE_WEB_URL=http://localhost:${WEB[1]}/
export GARAGE_BUCKET=localhost
export GARAGE_PID=${PIDS[1]}
export GARAGE_DIR=$DIR
export GARAGE_CONFIG=$N1/garage.toml
export GARAGE_ADMIN_URL=http://127.0.0.1:${ADMIN[1]}
export GARAGE_NODES=$N
ENV
    for K in $(seq "$N"); do
        cat <<ENV
export GARAGE_NODE${K}_PID=${PIDS[K]}
export GARAGE_NODE${K}_S3_URL=http://127.0.0.1:${S3[K]}
export GARAGE_NODE${K}_WEB_URL=http://localhost:${WEB[K]}/
export GARAGE_NODE${K}_CONFIG=$DIR/node$K/garage.toml
export GARAGE_NODE${K}_DIR=$DIR/node$K
export GARAGE_NODE${K}_ID=${IDS[K]%%@*}
ENV
    done
} > "$DIR/env"
echo "start-garage-cluster: $N nodes (pids ${PIDS[*]}), S3 http://127.0.0.1:${S3[1]} (node 1), bucket localhost" >&2
echo "$DIR/env"
