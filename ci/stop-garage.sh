#!/bin/bash
# stop-garage.sh DIR - stop the garage started by ci/start-garage.sh DIR, or every node of
# the cluster started by ci/start-garage-cluster.sh DIR (by their pids: DIR/pid,
# DIR/node*/pid). Leaves DIR in place (data and logs); remove it yourself when done.
set -euo pipefail
DIR=${1:-${GARAGE_DIR:?usage: stop-garage.sh DIR}}
shopt -s nullglob
PIDFILES=()
[ -f "$DIR/pid" ] && PIDFILES+=("$DIR/pid")
PIDFILES+=("$DIR"/node*/pid)
[ ${#PIDFILES[@]} -gt 0 ] || { echo "stop-garage: no $DIR/pid nor $DIR/node*/pid" >&2; exit 1; }
# A process that exited but was not reaped (its parent is gone and init does not reap)
# counts as stopped.
alive() {
    local state
    state=$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f1)
    [ -n "$state" ] && [ "$state" != Z ] && [ "$state" != X ]
}
PIDS=()
for f in "${PIDFILES[@]}"; do
    PID=$(cat "$f")
    kill "$PID" 2>/dev/null && PIDS+=("$PID")
    rm -f "$f"
done
for PID in "${PIDS[@]}"; do
    for _ in $(seq 50); do
        alive "$PID" || break
        sleep 0.1
    done
    if alive "$PID"; then kill -9 "$PID" 2>/dev/null || true; fi
done
echo "stop-garage: stopped garage pid(s) ${PIDS[*]:-none running}" >&2
