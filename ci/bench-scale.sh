#!/bin/bash
# bench-scale.sh CORPUS_DIR [CORPUS_DIR...] - issue #20: the benchmarks at several corpus
# sizes, arbor and the stock tool in the same run, into one TSV, then a chart.
#
# For each corpus directory (v1.yaml, v2.yaml, rpm-md repos v1/ v2/, STATS.txt; made by
# ../shared/corpus/make-corpus.sh), in this order:
#   resolve  `arbor resolve` vs dnf (verify-with-dnf.sh) of v1.yaml, RUNS runs alternating
#   compose  ci/bench-compose.sh: cold v1 vs the stock pipeline, v2 after v1, unchanged
#   commit   ci/bench-commit.sh: `arbor commit` vs `ostree commit` of the corpus's v1 tree
#   delta    ci/bench-delta.sh: v1->v2 and from scratch vs `ostree static-delta generate`
#   publish  ci/bench-publish.sh (MIRROR=1): publish to a local garage vs `aws s3 sync`,
#            again with nothing new, then mirror back over HTTP vs `ostree pull --mirror`
# Every step appends rows to $BENCH_TSV (columns: ci/bench-lib.sh); at the end
# ci/chart-scale.py draws $SCALE_WORK/scale.svg and prints a markdown table (also kept in
# $SCALE_WORK/scale.md).
#
# environment:
#   ARBOR       arbor binary (default: built once here with cargo --release)
#   SCALE_WORK  work directories, one per corpus (default /var/tmp/arbor-bench-scale)
#   BENCH_TSV   results (default $SCALE_WORK/results.tsv; rows are appended)
#   STEPS       which steps, in order (default "resolve compose commit delta publish")
#   RUNS        runs per step where the script takes medians (defaults: resolve 3,
#               compose 3, commit 5; delta and publish run once)
#   MIRROR=0    skip the mirror runs of the publish step
#   CLEAN=1     remove a corpus's trees and repositories once its steps are done (the logs
#               stay), then wait 61 s before the next corpus (see bench-compose.sh)
# Needs root (rpm --root, chroot for the initramfs), ostree, rpm, dnf (python3-dnf),
# /usr/bin/time; publish needs garage (ci/start-garage.sh starts its own on free ports,
# and installs it with cargo when missing) and awscli (pip-installed when missing).
# Disk: the work directories keep every run's trees and repositories: about 8 GB for the
# 350 MiB corpus with the default RUNS, about 6x that for the 2.1 GiB one (CLEAN=1).
set -uo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
# shellcheck source=ci/bench-lib.sh
. "$HERE/bench-lib.sh"
[ $# -ge 1 ] || { echo "usage: ci/bench-scale.sh CORPUS_DIR [CORPUS_DIR...]" >&2; exit 2; }
[ "$(id -u)" = 0 ] || { echo "bench-scale: run as root (rpm --root, chroot)" >&2; exit 1; }
SCALE=${SCALE_WORK:-/var/tmp/arbor-bench-scale}
mkdir -p "$SCALE"
SCALE=$(cd "$SCALE" && pwd)
BENCH_TSV=${BENCH_TSV:-$SCALE/results.tsv}
case $BENCH_TSV in /*) ;; *) BENCH_TSV=$PWD/$BENCH_TSV ;; esac
export BENCH_TSV
STEPS=${STEPS:-resolve compose commit delta publish}
if [ -z "${ARBOR:-}" ]; then
    (cd "$ROOT" && cargo build --release -q -p arbor) || exit 1
    ARBOR=${CARGO_TARGET_DIR:-$ROOT/target}/release/arbor
fi
ARBOR=$(cd "$(dirname "$ARBOR")" && pwd)/$(basename "$ARBOR")
export ARBOR
for c in "$@"; do
    if [ ! -f "$c/v1.yaml" ] || [ ! -f "$c/v2.yaml" ]; then
        echo "bench-scale: $c has no v1.yaml/v2.yaml (make-corpus.sh)" >&2; exit 1
    fi
done

# resolve CORPUS W: arbor resolve vs dnf, alternating, RUNS runs; one row per tool.
resolve_bench() {
    local c=$1 w=$2/resolve runs=${RUNS:-3} i tool order
    local -a cmd
    mkdir -p "$w"; rm -f "$w"/*.times
    for i in $(seq "$runs"); do
        order="arbor stock"; [ $((i % 2)) = 0 ] && order="stock arbor"
        for tool in $order; do
            if [ "$tool" = arbor ]; then
                cmd=("$ARBOR" resolve --progress none "$c/v1.yaml")
            else
                cmd=("${ARBOR_SHARED:-$ROOT/../shared}/corpus/verify-with-dnf.sh" "$c/v1.yaml")
            fi
            /usr/bin/time -f '%e %U %S %M' -o "$w/$tool.time" "${cmd[@]}" > "$w/$tool.out" 2> "$w/$tool.err" || {
                echo "resolve: $tool failed:" >&2; tail -20 "$w/$tool.err" >&2; return 1; }
            awk '{printf "%s %.2f %s\n", $1, $2 + $3, $4}' "$w/$tool.time" >> "$w/$tool.times"
        done
    done
    if ! diff <(sort "$w/arbor.out") <(sort "$w/stock.out") > "$w/diff.txt"; then
        echo "resolve: arbor and dnf differ ($w/diff.txt):" >&2; head "$w/diff.txt" >&2
    fi
    local n med cpu rss
    n=$(wc -l < "$w/arbor.out")
    printf '%-8s %8s %8s %12s\n' tool wall_s cpu_s peak_rss_kb
    for tool in arbor stock; do
        med=$(cut -d' ' -f1 "$w/$tool.times" | sort -n | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}')
        cpu=$(cut -d' ' -f2 "$w/$tool.times" | sort -n | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}')
        rss=$(cut -d' ' -f3 "$w/$tool.times" | sort -n | tail -1)
        printf '%-8s %8s %8s %12s\n' "$tool" "$med" "$cpu" "$rss"
        if [ "$tool" = arbor ]; then
            bench_tsv "$c" arbor "resolve v1" "$med" "$cpu" "$rss" "" "$runs" "arbor resolve: $n packages"
        else
            bench_tsv "$c" stock "resolve v1" "$med" "$cpu" "$rss" "" "$runs" "dnf (verify-with-dnf.sh): $(wc -l < "$w/stock.out") packages"
        fi
    done
}

FAILED=()
DURATIONS=$SCALE/durations.txt
START=$(date +%s)
for c in "$@"; do
    c=$(cd "$c" && pwd)
    name=$(basename "$c")
    W=$SCALE/$name
    mkdir -p "$W"
    echo "=== $c ($(bench_installed_bytes "$c") bytes installed) -> $W; load $(cut -d' ' -f1-3 /proc/loadavg)"
    for step in $STEPS; do
        t0=$(date +%s)
        echo "--- $name: $step ($(date -u +%H:%M:%S) UTC)"
        case $step in
            resolve) resolve_bench "$c" "$W" ;;
            compose) WORK=$W/compose bash "$HERE/bench-compose.sh" "$c" ;;
            commit)  WORK=$W/commit TREE=$W/tree-v1 bash "$HERE/bench-commit.sh" "$c" ;;
            delta)   bash "$HERE/bench-delta.sh" "$c" "$W/delta" ;;
            publish) WORK=$W/publish TREE=$W/tree-v1 MIRROR=${MIRROR:-1} bash "$HERE/bench-publish.sh" "$c" ;;
            *) echo "bench-scale: unknown step $step" >&2; false ;;
        esac 2>&1 | tee "$W/$step.log"
        rc=${PIPESTATUS[0]}
        [ "$rc" = 0 ] || FAILED+=("$name:$step")
        echo "$name $step $(( $(date +%s) - t0 )) s rc=$rc" | tee -a "$DURATIONS"
    done
    if [ "${CLEAN:-0}" = 1 ]; then
        rm -rf "$W/compose" "$W/commit" "$W/delta" "$W/publish" "$W/tree-v1" "$W/tree-v1.corpus"
        sync
        if [ "$c" != "$(cd "${!#}" && pwd)" ]; then
            echo "removed $name's trees and repositories; waiting 61 s (freed inodes)" >&2; sleep 61
        fi
    fi
done
echo "=== all done in $(( $(date +%s) - START )) s; results in $BENCH_TSV"
python3 "$HERE/chart-scale.py" "$BENCH_TSV" "$SCALE/scale.svg" | tee "$SCALE/scale.md"
echo "chart: $SCALE/scale.svg"
if [ ${#FAILED[@]} -gt 0 ]; then
    echo "bench-scale: failed: ${FAILED[*]} (logs: $SCALE/<corpus>/<step>.log)" >&2
    exit 1
fi
