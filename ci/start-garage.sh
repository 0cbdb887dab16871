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
# Stop it with ci/stop-garage.sh DIR. Several nodes: ci/start-garage-cluster.sh.
set -euo pipefail
GARAGE_LOG_PREFIX=start-garage
. "$(dirname "${BASH_SOURCE[0]}")/garage-node.sh"
DIR=${1:-${GARAGE_DIR:-}}
[ -n "$DIR" ] || DIR=$(mktemp -d /var/tmp/arbor-garage.XXXXXX)
mkdir -p "$DIR"
DIR=$(cd "$DIR" && pwd)

garage_install
SECRET=$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')
garage_write_config "$DIR" 1 "$SECRET"
CONF=$DIR/garage.toml
garage_spawn "$DIR"
PID=$GN_PID
garage_cleanup() { kill "$PID" 2>/dev/null || true; }
g() { garage -c "$CONF" "$@"; }
fail() { garage_fail "$DIR" "$@"; }

garage_wait_id "$DIR"
NODE=${GN_ID%%@*}
garage_retry "$DIR" g status
garage_retry "$DIR" g layout assign -z dc1 -c 1G "$NODE"
garage_retry "$DIR" g layout apply --version 1
garage_retry "$DIR" g bucket create localhost
g bucket info localhost > /dev/null || fail "could not create the bucket"
KEYINFO=$(g key create arbor-key)
KEY_ID=$(echo "$KEYINFO" | awk -F': *' '/Key ID/ {print $2; exit}')
KEY_SECRET=$(echo "$KEYINFO" | awk -F': *' '/Secret key/ {print $2; exit}')
[ -n "$KEY_ID" ] && [ -n "$KEY_SECRET" ] || fail "could not parse the key: $KEYINFO"
g bucket allow --read --write --owner localhost --key arbor-key > /dev/null
g bucket website --allow localhost > /dev/null

cat > "$DIR/env" <<ENV
export AWS_ENDPOINT_URL=http://127.0.0.1:$GN_S3
export AWS_REGION=garage
export AWS_DEFAULT_REGION=garage
export AWS_ACCESS_KEY_ID=$KEY_ID
export AWS_SECRET_ACCESS_KEY=$KEY_SECRET
export AWS_ALLOW_HTTP=true
export GARAGE_WEB_URL=http://localhost:$GN_WEB/
export GARAGE_BUCKET=localhost
export GARAGE_PID=$PID
export GARAGE_DIR=$DIR
export GARAGE_CONFIG=$CONF
export GARAGE_ADMIN_URL=http://127.0.0.1:$GN_ADMIN
ENV
# The web endpoint must serve the bucket before anyone relies on it.
garage_wait_web "$GN_WEB" || true
echo "start-garage: garage pid $PID, S3 http://127.0.0.1:$GN_S3, web http://localhost:$GN_WEB/ (bucket localhost)" >&2
echo "$DIR/env"
