#!/bin/bash
# start-garage.sh [DIR] - start a single-node garage S3 server on 127.0.0.1 for tests and
# benchmarks, with a fresh data dir, free ports, a bucket named `localhost` (also served
# over plain HTTP by the web endpoint at http://localhost:<web-port>/, so `ostree pull`
# can read what was published) and a key allowed to read and write it.
#
# Installs garage first (`cargo install garage --locked`, ~20 min cold on 2 cores) when
# `command -v garage` fails, unless GARAGE_NO_INSTALL=1.
#
# Prints the path of an env file to source (stdout, last line):
#   AWS_ENDPOINT_URL AWS_REGION AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY AWS_ALLOW_HTTP
#   GARAGE_WEB_URL GARAGE_BUCKET GARAGE_PID GARAGE_DIR GARAGE_CONFIG GARAGE_ADMIN_URL
# Stop it with ci/stop-garage.sh DIR.
set -euo pipefail
export PATH="$HOME/.cargo/bin:$PATH"
DIR=${1:-${GARAGE_DIR:-}}
[ -n "$DIR" ] || DIR=$(mktemp -d /var/tmp/arbor-garage.XXXXXX)
mkdir -p "$DIR"
DIR=$(cd "$DIR" && pwd)

if ! command -v garage >/dev/null 2>&1; then
    if [ "${GARAGE_NO_INSTALL:-}" = 1 ]; then
        echo "start-garage: garage is not installed; run: cargo install garage --locked" >&2
        exit 3
    fi
    echo "start-garage: installing garage (cargo install garage --locked, ~20 min cold)" >&2
    nice -n 10 cargo install garage --locked >&2
fi

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
RPC=$(free_port); S3=$(free_port); WEB=$(free_port); ADMIN=$(free_port)
SECRET=$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')
CONF=$DIR/garage.toml
cat > "$CONF" <<TOML
metadata_dir = "$DIR/meta"
data_dir = "$DIR/data"
db_engine = "sqlite"
replication_factor = 1
rpc_bind_addr = "127.0.0.1:$RPC"
rpc_public_addr = "127.0.0.1:$RPC"
rpc_secret = "$SECRET"

[s3_api]
s3_region = "garage"
api_bind_addr = "127.0.0.1:$S3"
root_domain = ".s3.garage.localhost"

[s3_web]
bind_addr = "127.0.0.1:$WEB"
root_domain = ".web.garage.localhost"
index = "index.html"

[admin]
api_bind_addr = "127.0.0.1:$ADMIN"
TOML

setsid garage -c "$CONF" server > "$DIR/garage.log" 2>&1 < /dev/null &
PID=$!
echo "$PID" > "$DIR/pid"
g() { garage -c "$CONF" "$@"; }
fail() { echo "start-garage: $*" >&2; tail -20 "$DIR/garage.log" >&2; kill "$PID" 2>/dev/null || true; exit 1; }

for _ in $(seq 100); do
    kill -0 "$PID" 2>/dev/null || fail "garage exited"
    NODE=$(g node id -q 2>/dev/null | cut -d@ -f1) && [ -n "$NODE" ] && break
    sleep 0.2
done
[ -n "${NODE:-}" ] || fail "garage did not answer within 20 s"
# `node id` reads the key from disk; the RPC port may not listen yet. Wait until the CLI
# can talk to the server before changing the layout.
retry() {
    local i
    for i in $(seq 150); do
        kill -0 "$PID" 2>/dev/null || fail "garage exited"
        "$@" > /dev/null 2>"$DIR/last-error" && return 0
        sleep 0.2
    done
    fail "'$*' kept failing for 30 s: $(cat "$DIR/last-error")"
}
retry g status
retry g layout assign -z dc1 -c 1G "$NODE"
retry g layout apply --version 1
retry g bucket create localhost
g bucket info localhost > /dev/null || fail "could not create the bucket"
KEYINFO=$(g key create arbor-key)
KEY_ID=$(echo "$KEYINFO" | awk -F': *' '/Key ID/ {print $2; exit}')
KEY_SECRET=$(echo "$KEYINFO" | awk -F': *' '/Secret key/ {print $2; exit}')
[ -n "$KEY_ID" ] && [ -n "$KEY_SECRET" ] || fail "could not parse the key: $KEYINFO"
g bucket allow --read --write --owner localhost --key arbor-key > /dev/null
g bucket website --allow localhost > /dev/null

cat > "$DIR/env" <<ENV
export AWS_ENDPOINT_URL=http://127.0.0.1:$S3
export AWS_REGION=garage
export AWS_DEFAULT_REGION=garage
export AWS_ACCESS_KEY_ID=$KEY_ID
export AWS_SECRET_ACCESS_KEY=$KEY_SECRET
export AWS_ALLOW_HTTP=true
export GARAGE_WEB_URL=http://localhost:$WEB/
export GARAGE_BUCKET=localhost
export GARAGE_PID=$PID
export GARAGE_DIR=$DIR
export GARAGE_CONFIG=$CONF
export GARAGE_ADMIN_URL=http://127.0.0.1:$ADMIN
ENV
# The web endpoint must serve the bucket before anyone relies on it.
for _ in $(seq 50); do
    code=$(curl -s -o /dev/null -w '%{http_code}' "http://localhost:$WEB/" || true)
    [ "$code" != 000 ] && break
    sleep 0.2
done
echo "start-garage: garage pid $PID, S3 http://127.0.0.1:$S3, web http://localhost:$WEB/ (bucket localhost)" >&2
echo "$DIR/env"
