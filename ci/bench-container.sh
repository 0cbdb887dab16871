#!/bin/bash
# bench-container.sh - `arbor container encapsulate` against ostree-ext's `container
# encapsulate` (the code rpm-ostree and bootc use) on the same commit, in one run: wall,
# CPU, peak RSS, image bytes; then what an update v1 -> v2 downloads as a chunked image,
# next to the static delta and a single-layer image.
#
# usage: ci/bench-container.sh [CORPUS_DIR] [WORKDIR]
#   CORPUS_DIR  the corpus (default $CORPUS_OUT or /var/tmp/corpus)
#   WORKDIR     repository, images, logs (default /var/tmp/arbor-bench-container)
# environment:
#   ARBOR             arbor binary (default: target/release/arbor, built with cargo --release)
#   ARBOR_OSTREE_EXT  ostree-ext CLI (default: built by ci/build-ostree-ext.sh)
# Goal checked and printed: arbor >= 2x faster than ostree-ext on the same commit.
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
CORPUS=$(cd "${1:-${CORPUS_OUT:-/var/tmp/corpus}}" && pwd)
WORK=${2:-/var/tmp/arbor-bench-container}
[ -f "$CORPUS/STATS.txt" ] && sed "s|^|corpus $CORPUS: |" "$CORPUS/STATS.txt"

for t in /usr/bin/time python3; do
    command -v "$t" >/dev/null || { echo "bench-container: missing $t (run ci/install-deps.sh)" >&2; exit 1; }
done
if [ -z "${ARBOR:-}" ]; then
    (cd "$ROOT" && cargo build --release -q -p arbor)
    ARBOR=${CARGO_TARGET_DIR:-$ROOT/target}/release/arbor
fi
OXT=${ARBOR_OSTREE_EXT:-$(bash "$HERE/build-ostree-ext.sh" | tail -1)}
[ -x "$OXT" ] || { echo "bench-container: no ostree-ext CLI at $OXT" >&2; exit 1; }

rm -rf "$WORK"; mkdir -p "$WORK/logs"
REPO=$WORK/repo
"$ARBOR" init --repo "$REPO" >/dev/null
for v in v1 v2; do
    "$ARBOR" compose --repo "$REPO" --progress=none "$CORPUS/$v.yaml" > /dev/null 2> "$WORK/logs/compose-$v.err"
done
REF=$("$ARBOR" refs --repo "$REPO" | head -1)
V2=$(ostree --repo="$REPO" rev-parse "$REF")
V1=$(ostree --repo="$REPO" rev-parse "$REF^")
echo "bench-container: v1 $V1, v2 $V2 ($REF)"

RES=$WORK/results.tsv
printf 'tool\tcase\twall_s\tcpu_s\tmax_rss_kb\tbytes\tlayers\n' > "$RES"
measure() {   # label command...
    local label=$1; shift
    local tv=$WORK/logs/$label.time
    /usr/bin/time -v -o "$tv" "$@" > "$WORK/logs/$label.out" 2> "$WORK/logs/$label.err" || {
        echo "bench-container: $label failed:" >&2; tail -20 "$WORK/logs/$label.err" >&2; exit 1; }
    WALL=$(awk -F': ' '/Elapsed \(wall clock\)/ {n=split($2,a,":"); s=0; for(i=1;i<=n;i++) s=s*60+a[i]; printf "%.2f", s}' "$tv")
    RSS=$(awk -F': ' '/Maximum resident set size/ {print $2}' "$tv")
    CPU=$(awk -F': ' '/User time \(seconds\)|System time \(seconds\)/ {s+=$2} END {printf "%.2f", s}' "$tv")
}
image_stats() {   # oci:DIR:TAG -> "bytes layers"
    skopeo inspect --raw "$1" | python3 -c 'import json,sys; m=json.load(sys.stdin); print(sum(l["size"] for l in m["layers"]), len(m["layers"]))'
}
row() {   # tool case image
    read -r bytes layers <<< "$(image_stats "$3")"
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$1" "$2" "$WALL" "$CPU" "$RSS" "$bytes" "$layers" >> "$RES"
    echo "$1 $2: ${WALL}s wall, ${CPU}s CPU, ${RSS} KB peak, $bytes bytes in $layers layers"
}

# The same commit, one layer each (ostree-ext's default without a content mapping), then
# arbor's default package chunking.
measure ostree-ext-single "$OXT" container encapsulate --repo "$REPO" "$V1" "oci:$WORK/oxt:v1"
row ostree-ext single "oci:$WORK/oxt:v1"
measure arbor-single "$ARBOR" container encapsulate --repo "$REPO" "$V1" --to "oci:$WORK/arbor-single:v1" --max-layers 1
row arbor single "oci:$WORK/arbor-single:v1"
measure arbor-chunked "$ARBOR" container encapsulate --repo "$REPO" "$V1" --to "oci:$WORK/arbor:v1"
row arbor chunked "oci:$WORK/arbor:v1"

# ostree-ext reads arbor's image back to the same commit (a sanity check of the run).
ostree --repo="$WORK/imp" init --mode=bare-user
got=$("$OXT" container unencapsulate --repo "$WORK/imp" "ostree-unverified-image:oci:$WORK/arbor:v1" 2>&1 | tail -1)
case "$got" in *"$V1"*) ;; *) echo "bench-container: ostree-ext imported '$got', not $V1" >&2; exit 1;; esac

# v1 -> v2: a chunked image, the static delta, a single-layer image.
"$ARBOR" container encapsulate --repo "$REPO" "$V2" --to "oci:$WORK/arbor:v2" > /dev/null 2>&1
"$ARBOR" container encapsulate --repo "$REPO" "$V2" --to "oci:$WORK/arbor-single:v2" --max-layers 1 > /dev/null 2>&1
"$ARBOR" delta generate --repo "$REPO" --from "$V1" --to "$V2" --progress=none > /dev/null 2>&1
DELTA=$("$ARBOR" delta show --repo "$REPO" --json "$V1-$V2" | python3 -c 'import json,sys; print(json.load(sys.stdin)["total_bytes"])')
FETCH=$("$ARBOR" container diff "oci:$WORK/arbor:v1" "oci:$WORK/arbor:v2" --json | python3 -c 'import json,sys; d=json.load(sys.stdin); print(d["bytes_fetched"], len(d["fetched"]), d["layers"])')
read -r FETCH_BYTES FETCH_LAYERS LAYERS <<< "$FETCH"
SINGLE=$(image_stats "oci:$WORK/arbor-single:v2" | cut -d' ' -f1)

echo
column -t -s $'\t' "$RES"
echo
python3 - "$RES" "$FETCH_BYTES" "$FETCH_LAYERS" "$LAYERS" "$DELTA" "$SINGLE" <<'PY'
import csv, sys
rows = list(csv.DictReader(open(sys.argv[1]), delimiter='\t'))
fetch, fl, layers, delta, single = (int(x) for x in sys.argv[2:7])
o = next(r for r in rows if r['tool'] == 'ostree-ext')
a = next(r for r in rows if r['tool'] == 'arbor' and r['case'] == 'single')
c = next(r for r in rows if r['tool'] == 'arbor' and r['case'] == 'chunked')
speed = float(o['wall_s']) / max(float(a['wall_s']), 0.01)
cpu = float(o['cpu_s']) / max(float(a['cpu_s']), 0.01)
chunked = float(o['wall_s']) / max(float(c['wall_s']), 0.01)
print(f"encapsulate v1, one layer: {speed:.2f}x wall, {cpu:.2f}x CPU (goal >= 2x wall) "
      f"{'OK' if speed >= 2 else 'MISSED'}; chunked ({c['layers']} layers) vs ostree-ext's one: {chunked:.2f}x")
print(f"peak RSS: arbor {int(a['max_rss_kb'])//1024} MB one layer, {int(c['max_rss_kb'])//1024} MB chunked; "
      f"ostree-ext {int(o['max_rss_kb'])//1024} MB")
print(f"v1 -> v2: chunked image fetch {fetch} bytes ({fl} of {layers} layers) = {fetch/delta:.2f}x the static "
      f"delta ({delta} bytes; goal <= 3x) {'OK' if fetch <= 3*delta else 'MISSED'}; single-layer image {single} bytes "
      f"= {single/delta:.2f}x")
PY
