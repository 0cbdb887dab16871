#!/bin/bash
# bench-delta.sh - arbor's static-delta generator against `ostree static-delta generate`
# on the corpus (v1 -> v2, and from scratch to v2), in one run, on the same repository:
# wall time, delta bytes (part files + fallback objects) and peak RSS (/usr/bin/time -v),
# with ratios arbor/ostree.
#
# usage: ci/bench-delta.sh [CORPUS_DIR] [WORKDIR]
#   CORPUS_DIR  rpm-md repos v1/ v2/ (default $CORPUS, else $CORPUS_OUT, else /var/tmp/corpus)
#   WORKDIR     trees, repo, logs (default $WORK, else /var/tmp/arbor-bench-delta). The
#               unpacked trees are kept there and reused (rebuilt when they came from
#               another corpus); BENCH_FRESH=1 rebuilds them.
# environment:
#   ARBOR       arbor binary (default: target/release/arbor, built with cargo --release)
#   BENCH_SCRATCH=0   skip the from-scratch delta
#   BENCH_TSV=FILE    also append a row per generator and delta to FILE (see ci/bench-lib.sh)
# Needs root (rpm --root keeps the files' owners), ostree, rpm, /usr/bin/time.
# Goals checked and printed: arbor >= 3x faster, size <= 1.05x, peak RSS <= ostree's.
set -euo pipefail
corpus_stats() { [ -f "${1}/STATS.txt" ] && sed "s|^|corpus ${1}: |" "${1}/STATS.txt" || echo "corpus ${1}: no STATS.txt"; }
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
# shellcheck source=ci/bench-lib.sh
. "$HERE/bench-lib.sh"
CORPUS=$(cd "${1:-${CORPUS:-${CORPUS_OUT:-/var/tmp/corpus}}}" && pwd)
WORK=${2:-${WORK:-/var/tmp/arbor-bench-delta}}
corpus_stats "$CORPUS"
REF=corpus/bookworm/x86_64/minimal
SHARED_CORPUS=${SHARED_CORPUS:-$ROOT/../shared/corpus}

for t in ostree rpm /usr/bin/time; do
    command -v "$t" >/dev/null || { echo "bench-delta: missing $t (run ci/install-deps.sh)" >&2; exit 1; }
done
[ "$(id -u)" = 0 ] || { echo "bench-delta: run as root (rpm --root)" >&2; exit 1; }

if [ -z "${ARBOR:-}" ]; then
    (cd "$ROOT" && cargo build --release -q -p arbor)
    ARBOR=${CARGO_TARGET_DIR:-$ROOT/target}/release/arbor
fi

mkdir -p "$WORK/logs"
[ "${BENCH_FRESH:-0}" = 1 ] && rm -rf "$WORK/trees"
# Trees of another corpus (the corpus they came from is in trees/corpus) are rebuilt.
if [ -d "$WORK/trees" ] && [ -f "$WORK/trees/corpus" ] && [ "$(cat "$WORK/trees/corpus")" != "$CORPUS" ]; then
    echo "bench-delta: the trees in $WORK/trees are of $(cat "$WORK/trees/corpus"); rebuilding" >&2
    rm -rf "$WORK/trees"
fi
mkdir -p "$WORK/trees"
[ -f "$WORK/trees/corpus" ] || echo "$CORPUS" > "$WORK/trees/corpus"

# --- 1. trees: rpm --root -i --nodeps --noscripts, then rpm-ostree style post-processing
#        (same steps as shared/corpus/baseline-ostree.sh)
postprocess() {
    local r=$1
    mkdir -p "$r/usr/lib/sysimage"
    [ -d "$r/var/lib/rpm" ] && mv "$r/var/lib/rpm" "$r/usr/lib/sysimage/rpm"
    mv "$r/etc" "$r/usr/etc"
    rm -rf "$r/var" "$r/boot" "$r/home" "$r/root" "$r/srv" "$r/opt" "$r/mnt" "$r/media" \
        "$r/tmp" "$r/run" "$r/usr/local" "$r/proc" "$r/sys" "$r/dev"
    mkdir -p "$r/var" "$r/boot" "$r/proc" "$r/sys" "$r/dev" "$r/run" "$r/sysroot"
    ln -s var/home "$r/home"; ln -s var/roothome "$r/root"; ln -s var/srv "$r/srv"
    ln -s var/opt "$r/opt"; ln -s var/mnt "$r/mnt"; ln -s run/media "$r/media"
    ln -s sysroot/tmp "$r/tmp" 2>/dev/null || true
    ln -s ../var/usrlocal "$r/usr/local"; ln -s sysroot/ostree "$r/ostree"
}
for v in v1 v2; do
    tree=$WORK/trees/$v
    [ -f "$WORK/trees/$v.done" ] && continue
    rm -rf "$tree"; mkdir -p "$tree"
    list=$WORK/trees/$v.list
    if [ -x "$SHARED_CORPUS/verify-with-dnf.sh" ] && \
        "$SHARED_CORPUS/verify-with-dnf.sh" --format path "$CORPUS/$v.yaml" > "$list" 2> "$WORK/logs/resolve-$v.err"; then
        :
    else
        echo "bench-delta: dnf resolution failed, installing every RPM of $v" >&2
        ls "$CORPUS/$v"/Packages/*.rpm > "$list"
    fi
    echo "bench-delta: unpacking $(wc -l < "$list") RPMs into $tree"
    # shellcheck disable=SC2046
    rpm --root "$tree" -i --nodeps --noscripts --notriggers --nosignature --nodigest \
        --ignorearch $(cat "$list") > "$WORK/logs/unpack-$v.log" 2>&1
    postprocess "$tree"
    touch "$WORK/trees/$v.done"
done

# --- 2. one archive repo: both trees committed by `ostree commit`, then by `arbor
#        commit` into a second repo; the checksums must agree (same objects)
REPO=$WORK/repo
rm -rf "$REPO" "$WORK/repo-arbor" "$WORK/deltas-ostree" "$WORK/deltas-arbor"
ostree --repo="$REPO" init --mode=archive
"$ARBOR" init --repo "$WORK/repo-arbor" >/dev/null
declare -A COMMIT
for v in v1 v2; do
    day=${v#v}
    common=(--subject="corpus $v" --timestamp="2024-01-0${day}T00:00:00Z")
    COMMIT[$v]=$(ostree --repo="$REPO" commit --branch="$REF" --tree=dir="$WORK/trees/$v" \
        --add-metadata-string=version="12.$day" "${common[@]}")
    a=$("$ARBOR" commit --repo "$WORK/repo-arbor" -b "$REF" --add-metadata-string=version="12.$day" \
        -s "corpus $v" --timestamp "2024-01-0${day}T00:00:00Z" "$WORK/trees/$v")
    if [ "$a" != "${COMMIT[$v]}" ]; then
        echo "bench-delta: arbor commit $a differs from ostree commit ${COMMIT[$v]} for $v" >&2
        exit 1
    fi
    echo "bench-delta: $v = ${COMMIT[$v]} (ostree and arbor agree)"
done
rm -rf "$WORK/repo-arbor"

# --- 3. the generators, same repo, same options (ostree's defaults), one at a time
RES=$WORK/results.tsv
printf 'generator\tdelta\twall_s\tcpu_s\tmax_rss_kb\tbytes\n' > "$RES"
measure() {   # label delta-label command...
    local label=$1 delta=$2; shift 2
    local tv=$WORK/logs/$label-$delta.time
    /usr/bin/time -v -o "$tv" "$@" > "$WORK/logs/$label-$delta.out" 2> "$WORK/logs/$label-$delta.err" || {
        echo "bench-delta: $label $delta failed:" >&2; tail -20 "$WORK/logs/$label-$delta.err" >&2; exit 1; }
    WALL=$(awk -F': ' '/Elapsed \(wall clock\)/ {n=split($2,a,":"); s=0; for(i=1;i<=n;i++) s=s*60+a[i]; printf "%.2f", s}' "$tv")
    RSS=$(awk -F': ' '/Maximum resident set size/ {print $2}' "$tv")
    # CPU seconds (user + system): a fairer measure than wall time on a shared machine.
    CPU=$(awk -F': ' '/User time \(seconds\)|System time \(seconds\)/ {s+=$2} END {printf "%.2f", s}' "$tv")
}
# Delta bytes = superblock + part files + fallback objects (what a client downloads),
# read back by `arbor delta show` for both generators' output.
delta_bytes() {   # name
    "$ARBOR" delta show --repo "$REPO" --json "$1" |
        /usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin)["total_bytes"])'
}
DELTAS=("v1-v2|--from=${COMMIT[v1]}|--from ${COMMIT[v1]}|${COMMIT[v1]}-${COMMIT[v2]}")
[ "${BENCH_SCRATCH:-1}" = 1 ] && DELTAS+=("empty-v2|--empty|--empty|${COMMIT[v2]}")
for d in "${DELTAS[@]}"; do
    IFS='|' read -r label ofrom afrom name <<< "$d"
    rm -rf "$REPO/deltas"
    measure ostree "$label" ostree --repo="$REPO" static-delta generate $ofrom --to="${COMMIT[v2]}"
    bytes=$(delta_bytes "$name")
    printf 'ostree\t%s\t%s\t%s\t%s\t%s\n' "$label" "$WALL" "$CPU" "$RSS" "$bytes" >> "$RES"
    bench_tsv "$CORPUS" stock "delta $label" "$WALL" "$CPU" "$RSS" "$bytes" 1 "ostree static-delta generate; output = delta bytes"
    echo "ostree $label: ${WALL}s wall, ${CPU}s CPU, ${RSS} KB peak, $bytes bytes"
    rm -rf "$WORK/deltas-ostree-$label"; mv "$REPO/deltas" "$WORK/deltas-ostree-$label"
    # shellcheck disable=SC2086
    measure arbor "$label" "$ARBOR" delta generate --repo "$REPO" $afrom --to "${COMMIT[v2]}" --json
    bytes=$(delta_bytes "$name")
    printf 'arbor\t%s\t%s\t%s\t%s\t%s\n' "$label" "$WALL" "$CPU" "$RSS" "$bytes" >> "$RES"
    bench_tsv "$CORPUS" arbor "delta $label" "$WALL" "$CPU" "$RSS" "$bytes" 1 "arbor delta generate; output = delta bytes"
    echo "arbor  $label: ${WALL}s wall, ${CPU}s CPU, ${RSS} KB peak, $bytes bytes"
    "$ARBOR" delta verify --repo "$REPO" "$name" 2> "$WORK/logs/verify-$label.err" ||
        { echo "bench-delta: arbor's $label delta does not verify" >&2; cat "$WORK/logs/verify-$label.err" >&2; exit 1; }
    rm -rf "$WORK/deltas-arbor-$label"; mv "$REPO/deltas" "$WORK/deltas-arbor-$label"
done

# --- 4. ratios and goals
echo
column -t -s $'\t' "$RES"
echo
/usr/bin/python3 - "$RES" <<'PY'
import csv, sys
rows = list(csv.DictReader(open(sys.argv[1]), delimiter='\t'))
ok = True
for delta in sorted({r['delta'] for r in rows}, key=lambda d: d != 'v1-v2'):
    o = next(r for r in rows if r['delta'] == delta and r['generator'] == 'ostree')
    a = next(r for r in rows if r['delta'] == delta and r['generator'] == 'arbor')
    speed = float(o['wall_s']) / max(float(a['wall_s']), 0.01)
    cpu = float(o['cpu_s']) / max(float(a['cpu_s']), 0.01)
    size = int(a['bytes']) / int(o['bytes'])
    rss = int(a['max_rss_kb']) / int(o['max_rss_kb'])
    goals = [speed >= 3, size <= 1.05, rss <= 1.0]
    ok &= all(goals)
    print(f"{delta:9} speed-up {speed:5.2f}x wall (goal >= 3), {cpu:5.2f}x CPU  size {size:5.3f}x (<= 1.05)  "
          f"peak RSS {rss:5.2f}x (<= 1)  {'OK' if all(goals) else 'MISSED'}")
print("all goals met" if ok else "some goals missed")
PY
