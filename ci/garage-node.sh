# garage-node.sh - shell functions shared by ci/start-garage.sh (one node) and
# ci/start-garage-cluster.sh (several): sourced, not run. Each node lives in its own
# directory NODEDIR holding garage.toml, meta/, data/, garage.log and pid.
#
#   garage_install                       install garage unless it is there (or GARAGE_NO_INSTALL=1)
#   garage_free_port                     a free TCP port on 127.0.0.1
#   garage_write_config NODEDIR RF SECRET    write NODEDIR/garage.toml on free ports; sets
#                                        GN_RPC GN_S3 GN_WEB GN_ADMIN
#   garage_port CONF SECTION KEY         the port of an address in CONF (e.g. s3_api api_bind_addr)
#   garage_spawn NODEDIR [CONF]          start `garage server` in the background; sets GN_PID
#   garage_wait_id NODEDIR [CONF]        wait until the node answers `node id`; sets GN_ID (id@addr)
#   garage_retry NODEDIR CMD…            run CMD (quietly) until it succeeds, up to 30 s
#   garage_wait_web PORT                 wait until a web endpoint answers HTTP
#
# Errors go through `garage_fail`, which prints the node's log tail and exits; a caller
# may define `garage_cleanup` to stop what it started before that.

GARAGE_LOG_PREFIX=${GARAGE_LOG_PREFIX:-garage}

garage_fail() {   # NODEDIR MESSAGE…
    local dir=$1; shift
    echo "$GARAGE_LOG_PREFIX: $*" >&2
    [ -f "$dir/garage.log" ] && tail -20 "$dir/garage.log" >&2
    if declare -F garage_cleanup >/dev/null; then garage_cleanup; fi
    exit 1
}

garage_install() {
    export PATH="$HOME/.cargo/bin:$PATH"
    command -v garage >/dev/null 2>&1 && return 0
    if [ "${GARAGE_NO_INSTALL:-}" = 1 ]; then
        echo "$GARAGE_LOG_PREFIX: garage is not installed; run: cargo install garage --locked" >&2
        exit 3
    fi
    echo "$GARAGE_LOG_PREFIX: installing garage (cargo install garage --locked, ~20 min cold)" >&2
    nice -n 10 cargo install garage --locked >&2
}

garage_free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

garage_write_config() {   # NODEDIR RF SECRET
    local dir=$1 rf=$2 secret=$3 consistency=""
    GN_RPC=$(garage_free_port); GN_S3=$(garage_free_port)
    GN_WEB=$(garage_free_port); GN_ADMIN=$(garage_free_port)
    # Several nodes: say the (default) consistency mode, so that a test can restart one
    # node alone with another mode by editing this line in a copy of the file.
    [ "$rf" -gt 1 ] && consistency='consistency_mode = "consistent"'
    mkdir -p "$dir"
    cat > "$dir/garage.toml" <<TOML
metadata_dir = "$dir/meta"
data_dir = "$dir/data"
db_engine = "sqlite"
replication_factor = $rf
$consistency
rpc_bind_addr = "127.0.0.1:$GN_RPC"
rpc_public_addr = "127.0.0.1:$GN_RPC"
rpc_secret = "$secret"

[s3_api]
s3_region = "garage"
api_bind_addr = "127.0.0.1:$GN_S3"
root_domain = ".s3.garage.localhost"

[s3_web]
bind_addr = "127.0.0.1:$GN_WEB"
root_domain = ".web.garage.localhost"
index = "index.html"

[admin]
api_bind_addr = "127.0.0.1:$GN_ADMIN"
TOML
}

garage_port() {   # CONF SECTION KEY
    awk -v sec="[$2]" -v key="$3" '
        /^\[/ { in_sec = ($0 == sec) }
        in_sec && $1 == key { gsub(/"/, "", $3); n = split($3, a, ":"); print a[n]; exit }
    ' "$1"
}

garage_spawn() {   # NODEDIR [CONF]
    local dir=$1 conf=${2:-$1/garage.toml}
    # setsid: its own session, so that a terminal's ^C or a killed test harness's
    # process group does not take it down before stop-garage.sh does.
    setsid garage -c "$conf" server >> "$dir/garage.log" 2>&1 < /dev/null &
    GN_PID=$!
    echo "$GN_PID" > "$dir/pid"
}

garage_wait_id() {   # NODEDIR [CONF]
    local dir=$1 conf=${2:-$1/garage.toml} pid
    pid=$(cat "$dir/pid")
    GN_ID=
    for _ in $(seq 100); do
        kill -0 "$pid" 2>/dev/null || garage_fail "$dir" "garage exited"
        GN_ID=$(garage -c "$conf" node id -q 2>/dev/null) && [ -n "$GN_ID" ] && return 0
        sleep 0.2
    done
    garage_fail "$dir" "garage did not answer within 20 s"
}

# `node id` reads the key from disk; the RPC port may not listen yet. Callers wait with
# this until the CLI can talk to the server before changing the layout.
garage_retry() {   # NODEDIR CMD…
    local dir=$1 pid; shift
    pid=$(cat "$dir/pid")
    for _ in $(seq 150); do
        kill -0 "$pid" 2>/dev/null || garage_fail "$dir" "garage exited"
        "$@" > /dev/null 2>"$dir/last-error" && return 0
        sleep 0.2
    done
    garage_fail "$dir" "'$*' kept failing for 30 s: $(cat "$dir/last-error")"
}

garage_wait_web() {   # PORT
    local code
    for _ in $(seq 50); do
        code=$(curl -s -o /dev/null -w '%{http_code}' "http://localhost:$1/" || true)
        [ "$code" != 000 ] && return 0
        sleep 0.2
    done
    return 1
}
