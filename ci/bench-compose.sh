#!/bin/bash
# bench-compose.sh [CORPUS_DIR] - cold `arbor compose` of corpus v1 vs the stock-tools pipeline
# (dnf resolve + rpm -i --root + postprocess + ostree commit, i.e. what
# ../shared/corpus/baseline-ostree.sh times), in the same run; then v2 after v1 (cached
# imports) vs cold, and an unchanged re-compose. Medians of RUNS runs; wall, CPU, peak RSS.
#   RUNS=3  WORK=/var/tmp/arbor-bench-compose  CORPUS=/var/tmp/corpus  ARBOR=target/release/arbor
#   CORPUS_DIR (the argument) overrides CORPUS. BENCH_TSV=FILE: also append one row per
#   step to FILE (medians; see ci/bench-lib.sh for the columns).
#
# No tree or repository is deleted between the timed steps (what the timed tools delete
# themselves stays in). On ext4 without a journal (this machine's disk) the kernel skips
# inodes freed in the last 60 s (360 s while dirty) one by one when it allocates new ones
# (ialloc.c recently_deleted()): a cold compose started right after `rm -rf` of a
# 13,000-file tree took 8.7 s instead of 4.8-6.4 s. So an old $WORK is removed first and
# followed by a 61 s pause (after a sync); each run works in its own directory.
set -euo pipefail
corpus_stats() { [ -f "${1}/STATS.txt" ] && sed "s|^|corpus ${1}: |" "${1}/STATS.txt" || echo "corpus ${1}: no STATS.txt"; }
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
# shellcheck source=ci/bench-lib.sh
. "$HERE/bench-lib.sh"
SHARED=${ARBOR_SHARED:-$ROOT/../shared}
CORPUS=${1:-${CORPUS:-/var/tmp/corpus}}
WORK=${WORK:-/var/tmp/arbor-bench-compose}
RUNS=${RUNS:-3}
export CORPUS STOCK_INSTALL="${STOCK_INSTALL:-rpm}"
[ -f "$CORPUS/v1.yaml" ] || bash "$SHARED/corpus/make-corpus.sh" "$CORPUS"
if [ -z "${ARBOR:-}" ]; then
    (cd "$ROOT" && cargo build --release -q -p arbor)
    ARBOR=${CARGO_TARGET_DIR:-$ROOT/target}/release/arbor
fi
if [ -e "$WORK" ]; then
    rm -rf "$WORK"; sync
    echo "removed the previous $WORK; waiting 61 s so that its freed inodes do not slow the runs" >&2
    sleep 61
fi
mkdir -p "$WORK"
LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
RESULTS=$WORK/results.txt
: > "$RESULTS"
timed() {  # run label cmd...  -> appends "label wall cpu rss" to $RESULTS
    local run=$1 label=$2; shift 2
    local t=$WORK/$run/$label
    /usr/bin/time -f '%e %U %S %M' -o "$t.time" "$@" > "$t.out" 2> "$t.err" || {
        echo "$label failed:" >&2; tail -20 "$t.err" >&2; exit 1; }
    read -r wall user sys rss < "$t.time"
    echo "$label $wall $(awk -v u="$user" -v s="$sys" 'BEGIN {print u+s}') $rss" >> "$RESULTS"
}
# With BENCH_TSV: what run 1's steps wrote ("label bytes" in $WORK/sizes.txt), measured
# after the timed step.
SIZES=$WORK/sizes.txt
: > "$SIZES"
size_of() {  # run label path [previous-label]: bytes of path, less previous-label's
    [ -n "${BENCH_TSV:-}" ] && [ "$1" = 1 ] || return 0
    local b prev=0
    b=$(bench_bytes "$3")
    [ -n "${4:-}" ] && prev=$(awk -v l="$4" '$1 == l {print $2}' "$SIZES" | tail -1)
    echo "$2 $b $((b - prev))" >> "$SIZES"
}
if [ "${LABELS:-0}" = 1 ]; then
    # SELinux labeling's cost: corpus v1 plus a real policy package (the host's
    # selinux-policy-default as an RPM), cold, without and with `selinux: true`, in the
    # same run; then an unchanged re-compose with labels.
    POLICY=$(bash "$HERE/selinux-policy-rpm.sh" "$WORK/selinux")
    mkdir -p "$WORK/tf"; cp "$CORPUS"/*.repo "$POLICY/selinux-test.repo" "$WORK/tf/"
    for mode in nolabel label; do
        sel=false; [ $mode = label ] && sel=true
        sed -e "s/^selinux: false/selinux: $sel/" -e 's/^repos:$/repos:\n  - selinux-test/' \
            -e '0,/^packages:$/s//packages:\n  - selinux-policy-test/' "$CORPUS/v1.yaml" > "$WORK/tf/v1-$mode.yaml"
    done
    for run in $(seq 1 "$RUNS"); do
        W=$WORK/$run; mkdir -p "$W"
        for mode in nolabel label; do
            "$ARBOR" init --repo "$W/repo-$mode" >/dev/null; sync
            timed "$run" "arbor-v1-$mode" "$ARBOR" compose --repo "$W/repo-$mode" --cachedir "$W/cache-$mode" \
                --write-composejson-to "$W/$mode.json" "$WORK/tf/v1-$mode.yaml"
        done
        timed "$run" arbor-label-noop "$ARBOR" compose --repo "$W/repo-label" --cachedir "$W/cache-label" "$WORK/tf/v1-label.yaml"
        echo "run $run of $RUNS done" >&2
    done
    corpus_stats "$CORPUS"
    python3 - "$RESULTS" "$WORK" <<'PY'
import json, statistics, sys
rows = {}
for line in open(sys.argv[1]):
    label, wall, cpu, rss = line.split()
    rows.setdefault(label, []).append((float(wall), float(cpu), int(rss)))
med = {k: (statistics.median(w for w, _, _ in v), statistics.median(c for _, c, _ in v), max(r for _, _, r in v)) for k, v in rows.items()}
for k in ("arbor-v1-nolabel", "arbor-v1-label", "arbor-label-noop"):
    w, c, r = med[k]
    print(f"{k:<22} wall {w:6.2f} s  cpu {c:6.2f} s  peak_rss {r} KB")
a, b = med["arbor-v1-nolabel"], med["arbor-v1-label"]
print(f"labeling adds {100 * (b[0] / a[0] - 1):.1f} % wall, {100 * (b[1] / a[1] - 1):.1f} % CPU to a cold compose (ratio of medians)")
# The two composes of one run follow each other; the VM's speed drifts between runs
# (writeback of the previous runs' data), so each run's own ratio says more.
pairs = list(zip(rows["arbor-v1-nolabel"], rows["arbor-v1-label"]))
rw = statistics.median(l[0] / n[0] for n, l in pairs)
rc = statistics.median(l[1] / n[1] for n, l in pairs)
print(f"labeling adds {100 * (rw - 1):.1f} % wall, {100 * (rc - 1):.1f} % CPU (median of the runs' own ratios)")
print("all runs (wall s):", {k: [w for w, _, _ in v] for k, v in rows.items()})
v = json.load(open(sys.argv[2] + "/1/label.json"))
print("labeled run timings (run 1):", {k: round(t, 2) for k, t in v["arbor-timings"].items()}, "relabeled", v.get("arbor-relabeled"))
PY
    exit 0
fi
for run in $(seq 1 "$RUNS"); do
    W=$WORK/$run; mkdir -p "$W"
    # Stock pipeline, cold: resolve with dnf, unpack with rpm, post-process, ostree commit.
    ostree --repo="$W/ostree-repo" init --mode=archive
    sync
    timed "$run" stock-resolve "$SHARED/corpus/verify-with-dnf.sh" "$CORPUS/v1.yaml"
    timed "$run" stock-unpack bash "$HERE/corpus-tree.sh" v1 "$W/tree"
    size_of "$run" stock-unpack "$W/tree"
    timed "$run" stock-commit ostree --repo="$W/ostree-repo" commit -b bench --tree=dir="$W/tree"
    size_of "$run" stock-commit "$W/ostree-repo"
    # arbor, cold (empty repo and cache), then v2 after v1 (warm import cache), then again.
    "$ARBOR" init --repo "$W/arbor-repo" >/dev/null
    sync
    prev=
    for step in v1 v2; do
        timed "$run" "arbor-$step" "$ARBOR" compose --repo "$W/arbor-repo" --cachedir "$W/cache" \
            --write-composejson-to "$W/$step.json" "$CORPUS/$step.yaml"
        size_of "$run" "arbor-$step" "$W/arbor-repo" $prev
        prev=arbor-$step
    done
    timed "$run" arbor-noop "$ARBOR" compose --repo "$W/arbor-repo" --cachedir "$W/cache" "$CORPUS/v2.yaml"
    size_of "$run" arbor-noop "$W/arbor-repo" arbor-v2
    echo "run $run of $RUNS done" >&2
done
corpus_stats "$CORPUS"
echo "corpus v1: $(wc -l < "$CORPUS/resolved-v1.txt") packages; $(nproc) cores; load before: $LOAD_BEFORE, after: $(cut -d' ' -f1-3 /proc/loadavg)"
BENCH_ROWS=${BENCH_TSV:+$WORK/tsv-rows.txt} python3 - "$RESULTS" "$WORK" <<'PY'
import json, statistics, sys
rows = {}
for line in open(sys.argv[1]):
    label, wall, cpu, rss = line.split()
    rows.setdefault(label, []).append((float(wall), float(cpu), int(rss)))
med = {k: (statistics.median(w for w, _, _ in v), statistics.median(c for _, c, _ in v),
           max(r for _, _, r in v)) for k, v in rows.items()}
stock = [med[k] for k in ("stock-resolve", "stock-unpack", "stock-commit")]
med["stock total (cold)"] = (sum(s[0] for s in stock), sum(s[1] for s in stock), max(s[2] for s in stock))
import os
install = "dnf --installroot (scriptlets)" if os.environ.get("STOCK_INSTALL") == "dnf" else "rpm -i --root"
names = [("stock-resolve", "stock: dnf resolve"), ("stock-unpack", f"stock: {install} + postprocess"),
         ("stock-commit", "stock: ostree commit"), ("stock total (cold)", "stock total (cold)"),
         ("arbor-v1", "arbor compose v1 (cold)"), ("arbor-v2", "arbor compose v2 after v1 (cached)"),
         ("arbor-noop", "arbor compose v2 again (no change)")]
print(f"{'step (median of %d)' % len(rows['arbor-v1']):<40} {'wall_s':>8} {'cpu_s':>8} {'peak_rss_kb':>12}")
for k, label in names:
    w, c, r = med[k]
    print(f"{label:<40} {w:>8.2f} {c:>8.2f} {r:>12}")
s, a, b = med["stock total (cold)"], med["arbor-v1"], med["arbor-v2"]
print(f"cold compose vs stock: {s[0] / a[0]:.2f}x faster (wall), {s[1] / a[1]:.2f}x less CPU")
print(f"v2 after v1 vs cold v1: {a[0] / b[0]:.2f}x faster (wall), {a[1] / b[1]:.2f}x less CPU")
print("all runs (wall s):", {k: [w for w, _, _ in v] for k, v in rows.items()})
w = sys.argv[2] + "/1"
v1, v2 = (json.load(open(f"{w}/{s}.json")) for s in ("v1", "v2"))
print(f"v2 imports {v2['arbor-packages-imported']} packages, {v2['arbor-import-cache-hits']} cache hits; "
      f"writes {v2['ostree-n-content-written']} content objects, "
      f"{v2['ostree-content-bytes-written'] / 1e6:.1f} MB "
      f"(v1: {v1['ostree-n-content-written']}, {v1['ostree-content-bytes-written'] / 1e6:.1f} MB)")
print("v2 timings (run 1):", {k: round(t, 2) for k, t in v2["arbor-timings"].items()})
print("v1 timings (run 1):", {k: round(t, 2) for k, t in v1["arbor-timings"].items()})
print(f"scriptlets run: v1 {len(v1.get('arbor-scriptlets', []))}, v2 {len(v2.get('arbor-scriptlets', []))}")
if os.environ.get("BENCH_ROWS"):
    # tool, step, wall, cpu, peak RSS KB, output bytes, runs, note: for bench_tsv (ci/bench-lib.sh)
    sizes = {}
    for line in open(sys.argv[2] + "/sizes.txt"):
        label, total, added = line.split()
        sizes[label] = int(added)
    n = len(rows["arbor-v1"])
    steps = [("stock", "stock-resolve", "compose cold v1: dnf resolve", "verify-with-dnf.sh"),
             ("stock", "stock-unpack", "compose cold v1: install + postprocess",
              f"{install} + postprocess + initramfs; output = the tree"),
             ("stock", "stock-commit", "compose cold v1: ostree commit", "ostree commit; output = the repository"),
             ("stock", "stock total (cold)", "compose cold v1",
              f"dnf resolve + {install} + postprocess + initramfs + ostree commit"),
             ("arbor", "arbor-v1", "compose cold v1",
              f"arbor compose; {v1['arbor-packages-imported']} imported; output = the repository"),
             ("arbor", "arbor-v2", "compose v2 after v1",
              f"arbor compose; {v2['arbor-packages-imported']} imported, {v2['arbor-import-cache-hits']} cache hits; "
              "output = what the repository grew by"),
             ("arbor", "arbor-noop", "compose unchanged", "arbor compose of v2 again")]
    sizes["stock total (cold)"] = sizes.get("stock-commit")
    with open(os.environ["BENCH_ROWS"], "w") as f:
        for tool, key, step, note in steps:
            w, c, r = med[key]
            out = sizes.get(key)
            f.write(f"{tool}\t{step}\t{w:.2f}\t{c:.2f}\t{r}\t{'-' if out is None else out}\t{n}\t{note}\n")
PY
if [ -n "${BENCH_TSV:-}" ]; then
    bench_tsv_lines "$CORPUS" < "$WORK/tsv-rows.txt"
    echo "appended $(wc -l < "$WORK/tsv-rows.txt") rows to $BENCH_TSV"
fi
