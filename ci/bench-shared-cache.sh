#!/bin/bash
# bench-shared-cache.sh - what a shared package cache (`--cachedir s3://…`) saves a CI
# runner that starts empty: `arbor compose` of corpus v1 into an empty repository with an
# empty local cache, RPMs served over HTTP (python http.server: the distribution's mirror),
# (1) cold without a shared cache (what an empty runner does without one), (2) cold
# filling an empty shared cache on garage (S3, 127.0.0.1), (3) warm: another empty runner
# with the cache (2) filled, (4) warm with another timestamp — the initramfs, which
# depends on SOURCE_DATE_EPOCH, is made again (what a runner gets with the default
# timestamp, "now"). Same run, medians of RUNS runs: wall, CPU, peak RSS, the compose's
# own phase timings, and a check that (1)-(3) made the same commit.
#   RUNS=3  WORK=/var/tmp/arbor-bench-shared  CORPUS=/var/tmp/corpus  ARBOR=target/release/arbor
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
SHARED=${ARBOR_SHARED:-$ROOT/../shared}
CORPUS=${CORPUS:-/var/tmp/corpus}
WORK=${WORK:-/var/tmp/arbor-bench-shared}
RUNS=${RUNS:-3}
TREEFILE=${TREEFILE:-v1.yaml}
[ -f "$CORPUS/v1.yaml" ] || bash "$SHARED/corpus/make-corpus.sh" "$CORPUS"
if [ -z "${ARBOR:-}" ]; then
    (cd "$ROOT" && cargo build --release -q -p arbor)
    ARBOR=${CARGO_TARGET_DIR:-$ROOT/target}/release/arbor
fi
if [ -e "$WORK" ]; then
    # See bench-compose.sh: freed inodes slow the next minute's allocations on ext4.
    rm -rf "$WORK"; sync
    echo "removed the previous $WORK; waiting 61 s" >&2
    sleep 61
fi
mkdir -p "$WORK/tf"
LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
ENV_FILE=$(bash "$HERE/start-garage.sh" "$WORK/garage" | tail -1)
# shellcheck disable=SC1090
source "$ENV_FILE"
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
python3 -m http.server "$PORT" --bind 127.0.0.1 --directory "$CORPUS" >/dev/null 2>&1 &
HTTP_PID=$!
cleanup() { kill "$HTTP_PID" 2>/dev/null || true; bash "$HERE/stop-garage.sh" "$WORK/garage" 2>/dev/null || true; }
trap cleanup EXIT
for _ in $(seq 50); do curl -s -o /dev/null "http://127.0.0.1:$PORT/" && break; sleep 0.1; done
cp "$CORPUS"/*.repo "$CORPUS/$TREEFILE" "$WORK/tf/"
sed -i "s|file://$CORPUS/|http://127.0.0.1:$PORT/|" "$WORK/tf/"*.repo
TF=$WORK/tf/$TREEFILE

RESULTS=$WORK/results.txt
: > "$RESULTS"
timed() {  # run label cmd...  -> appends "label wall cpu rss" to $RESULTS
    local run=$1 label=$2; shift 2
    local t=$WORK/$run/$label
    /usr/bin/time -f '%e %U %S %M' -o "$t.time" "$@" > "$t.json" 2> "$t.err" || {
        echo "$label failed:" >&2; tail -20 "$t.err" >&2; exit 1; }
    read -r wall user sys rss < "$t.time"
    echo "$label $wall $(awk -v u="$user" -v s="$sys" 'BEGIN {print u+s}') $rss" >> "$RESULTS"
}
compose() {  # run label repo [--cachedir X]   (TS: the commit timestamp)
    local run=$1 label=$2 repo=$3; shift 3
    "$ARBOR" init --repo "$repo" >/dev/null; sync
    timed "$run" "$label" "$ARBOR" compose --repo "$repo" --timestamp "${TS:-2024-01-01T00:00:00Z}" \
        "$@" --json "$TF"
}
for run in $(seq 1 "$RUNS"); do
    W=$WORK/$run; mkdir -p "$W"
    compose "$run" cold "$W/repo-cold"
    compose "$run" fill "$W/repo-fill" --cachedir "s3://localhost/pkgcache-$run"
    compose "$run" warm "$W/repo-warm" --cachedir "s3://localhost/pkgcache-$run"
    TS=2024-01-02T00:00:00Z compose "$run" warmts "$W/repo-warmts" \
        --cachedir "s3://localhost/pkgcache-$run"
    python3 - "$W" <<'PY'
import json, sys
w = sys.argv[1]
j = {k: json.load(open(f"{w}/{k}.json")) for k in ("cold", "fill", "warm", "warmts")}
commits = {k: v["ostree-commit"] for k, v in j.items() if k != "warmts"}
assert len(set(commits.values())) == 1, f"different commits: {commits}"
s = j["warm"]["arbor-shared-cache"]
n = j["warm"]["arbor-packages"]
assert s["rpms_fetched"] == n and s["imports_fetched"] == n and j["warm"]["arbor-packages-imported"] == 0, s
print(f"run {w}: commit {commits['cold'][:12]} x3; warm fetched {s['rpms_fetched']} RPMs + {s['imports_fetched']} imports = {s['bytes_fetched']/2**20:.1f} MiB from the shared cache")
for k, v in j.items():
    t = v["arbor-timings"]
    print(f"  {k:5} phases: " + ", ".join(f"{p} {t[p]:.2f}" for p in t))
PY
done
LOAD_AFTER=$(cut -d' ' -f1-3 /proc/loadavg)
echo "date $(date -u +%FT%TZ), load before $LOAD_BEFORE, after $LOAD_AFTER, $(nproc) cores; corpus $(head -1 "$CORPUS/STATS.txt" 2>/dev/null || echo ?); $TREEFILE"
python3 - "$RESULTS" <<'PY'
import statistics, sys
rows = {}
for line in open(sys.argv[1]):
    label, wall, cpu, rss = line.split()
    rows.setdefault(label, []).append((float(wall), float(cpu), int(rss)))
med = {k: [statistics.median(x[i] for x in v) for i in range(3)] for k, v in rows.items()}
for k in ("cold", "fill", "warm", "warmts"):
    w, c, r = med[k]
    print(f"{k:5} wall {w:6.2f} s  cpu {c:6.2f} s  rss {r/1024:6.1f} MiB  ({len(rows[k])} runs)")
cw, cc, _ = med["cold"]
for k in ("fill", "warm", "warmts"):
    w, c, _ = med[k]
    print(f"cold/{k}: wall {cw/w:.2f}x, cpu {cc/c:.2f}x")
PY
