#!/bin/bash
# bench-commit.sh [CORPUS_DIR | DIR] - `arbor commit` vs `ostree commit` of the same directory
# into a fresh archive repository, alternating, RUNS times each (default 5). Prints the median
# wall time of each, the ratio, peak RSS, and checks that both give the same commit.
# Default input: the corpus v1 tree (ci/corpus-tree.sh v1) of CORPUS_DIR (a directory with a
# v1.yaml; default $CORPUS or /var/tmp/corpus), kept at $TREE; any other DIR is committed as is.
#   RUNS=5  WORK=/var/tmp/arbor-bench-commit  ARBOR=target/release/arbor  TREE=$WORK/tree-v1
#   BENCH_TSV=FILE: also append a row per tool to FILE (see ci/bench-lib.sh)
set -euo pipefail
corpus_stats() { [ -f "${1}/STATS.txt" ] && sed "s|^|corpus ${1}: |" "${1}/STATS.txt" || echo "corpus ${1}: no STATS.txt"; }
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
# shellcheck source=ci/bench-lib.sh
. "$HERE/bench-lib.sh"
RUNS=${RUNS:-5}
WORK=${WORK:-/var/tmp/arbor-bench-commit}
mkdir -p "$WORK"
CORPUS=${CORPUS:-/var/tmp/corpus}
if [ -n "${1:-}" ] && [ ! -f "$1/v1.yaml" ]; then
    TREE=$1; FROM_CORPUS=0
else
    CORPUS=${1:-$CORPUS}; FROM_CORPUS=1
    TREE=${TREE:-$WORK/tree-v1}
    bench_corpus_tree "$CORPUS" "$TREE"
fi
if [ -z "${ARBOR:-}" ]; then
    (cd "$ROOT" && cargo build --release -q -p arbor)
    ARBOR=${CARGO_TARGET_DIR:-$ROOT/target}/release/arbor
fi
TS=2024-01-01T00:00:00Z
files=$(find "$TREE" -xdev | wc -l); bytes=$(du -sb --apparent-size "$TREE" | cut -f1)
[ "$FROM_CORPUS" = 1 ] && corpus_stats "$CORPUS"
echo "input: $TREE ($files paths, $bytes bytes); $RUNS runs each, alternating; $(nproc) cores"

measure() {  # label repo-cmd... ; appends "wall rss" to $WORK/$label.times, prints the commit
    local label=$1; shift
    local tv=$WORK/$label.time
    /usr/bin/time -v -o "$tv" "$@" > "$WORK/$label.out" 2> "$WORK/$label.err" || {
        echo "$label failed:" >&2; cat "$WORK/$label.err" >&2; exit 1; }
    awk -F': ' '/Elapsed \(wall clock\)/ {n=split($2,a,":"); s=0; for(i=1;i<=n;i++) s=s*60+a[i]; w=s}
                /User time \(seconds\)/ {u=$2} /System time \(seconds\)/ {y=$2}
                /Maximum resident set size/ {r=$2} END {print w, r, u+y}' "$tv" >> "$WORK/$label.times"
    tail -n1 "$WORK/$label.out"
}

rm -f "$WORK"/*.times
# No deletions right before a timed commit: on ext4 without a journal, inodes freed in
# the last minute are skipped one by one when new ones are allocated (see
# bench-compose.sh). Old repositories go first, then a pause; each run gets fresh ones.
if compgen -G "$WORK/run*" > /dev/null || [ -e "$WORK/repo-o" ] || [ -e "$WORK/repo-a" ]; then
    rm -rf "$WORK"/run* "$WORK/repo-o" "$WORK/repo-a"; sync
    echo "removed old repositories; waiting 61 s" >&2; sleep 61
fi
for i in $(seq "$RUNS"); do
    R=$WORK/run$i
    mkdir -p "$R"
    ostree --repo="$R/repo-o" init --mode=archive
    "$ARBOR" init --repo "$R/repo-a" >/dev/null
    sync
    if [ $((i % 2)) = 1 ]; then
        co=$(measure ostree ostree --repo="$R/repo-o" commit -b bench --timestamp=$TS -s bench --tree=dir="$TREE")
        ca=$(measure arbor "$ARBOR" commit --repo "$R/repo-a" -b bench --timestamp $TS -s bench "$TREE")
    else
        ca=$(measure arbor "$ARBOR" commit --repo "$R/repo-a" -b bench --timestamp $TS -s bench "$TREE")
        co=$(measure ostree ostree --repo="$R/repo-o" commit -b bench --timestamp=$TS -s bench --tree=dir="$TREE")
    fi
    [ "$co" = "$ca" ] || { echo "checksum mismatch: ostree $co arbor $ca" >&2; exit 1; }
    printf 'run %d: ostree %ss  arbor %ss  commit %s\n' "$i" "$(tail -n1 "$WORK/ostree.times" | cut -d' ' -f1)" \
        "$(tail -n1 "$WORK/arbor.times" | cut -d' ' -f1)" "$ca"
done
median() { sort -n | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
mo=$(cut -d' ' -f1 "$WORK/ostree.times" | median); ma=$(cut -d' ' -f1 "$WORK/arbor.times" | median)
ro=$(cut -d' ' -f2 "$WORK/ostree.times" | sort -n | tail -1); ra=$(cut -d' ' -f2 "$WORK/arbor.times" | sort -n | tail -1)
so=$(du -sb "$R/repo-o/objects" | cut -f1); sa=$(du -sb "$R/repo-a/objects" | cut -f1)
co_cpu=$(cut -d' ' -f3 "$WORK/ostree.times" | median); ca_cpu=$(cut -d' ' -f3 "$WORK/arbor.times" | median)
echo
printf '%-8s %10s %12s %14s %14s\n' tool median_s median_cpu_s peak_rss_kb objects_bytes
printf '%-8s %10s %12s %14s %14s\n' ostree "$mo" "$co_cpu" "$ro" "$so"
printf '%-8s %10s %12s %14s %14s\n' arbor "$ma" "$ca_cpu" "$ra" "$sa"
awk -v o="$mo" -v a="$ma" 'BEGIN {printf "speedup: %.2fx wall (ostree median / arbor median); same commit checksum in every run\n", o/a}'
awk -v o="$co_cpu" -v a="$ca_cpu" 'BEGIN {printf "CPU: arbor uses %.2fx less CPU time (user+sys)\n", o/a}'
echo "load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
if [ -n "${BENCH_TSV:-}" ]; then
    [ "$FROM_CORPUS" = 1 ] || echo "bench-commit: $TREE is no corpus tree; rows carry corpus $CORPUS" >&2
    bench_tsv "$CORPUS" stock "commit v1 tree" "$mo" "$co_cpu" "$ro" "$so" "$RUNS" \
        "ostree commit of $files paths, $bytes bytes; output = objects/"
    bench_tsv "$CORPUS" arbor "commit v1 tree" "$ma" "$ca_cpu" "$ra" "$sa" "$RUNS" \
        "arbor commit of $files paths, $bytes bytes; output = objects/"
    echo "appended 2 rows to $BENCH_TSV"
fi
