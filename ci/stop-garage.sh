#!/bin/bash
# stop-garage.sh DIR - stop the garage started by ci/start-garage.sh DIR (by its pid).
# Leaves DIR in place (data and log); remove it yourself when done.
set -euo pipefail
DIR=${1:-${GARAGE_DIR:?usage: stop-garage.sh DIR}}
[ -f "$DIR/pid" ] || { echo "stop-garage: no $DIR/pid" >&2; exit 1; }
PID=$(cat "$DIR/pid")
if kill "$PID" 2>/dev/null; then
    for _ in $(seq 50); do
        kill -0 "$PID" 2>/dev/null || break
        sleep 0.1
    done
    kill -9 "$PID" 2>/dev/null || true
fi
rm -f "$DIR/pid"
echo "stop-garage: stopped garage pid $PID" >&2
