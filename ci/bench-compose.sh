#!/bin/bash
# bench-compose.sh - cold `arbor compose` of corpus v1 vs the stock-tools pipeline
# (dnf resolve + rpm -i --root + postprocess + ostree commit, i.e. what
# ../shared/corpus/baseline-ostree.sh times), in one run; then v2 after v1 (cached
# imports) vs cold. Prints wall times, ratios and peak RSS.
#   WORK=/var/tmp/arbor-bench-compose  CORPUS=/var/tmp/corpus  ARBOR=target/release/arbor
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
SHARED=${ARBOR_SHARED:-$ROOT/../shared}
CORPUS=${CORPUS:-/var/tmp/corpus}
WORK=${WORK:-/var/tmp/arbor-bench-compose}
[ -f "$CORPUS/v1.yaml" ] || bash "$SHARED/corpus/make-corpus.sh" "$CORPUS"
if [ -z "${ARBOR:-}" ]; then
    (cd "$ROOT" && cargo build --release -q -p arbor)
    ARBOR=${CARGO_TARGET_DIR:-$ROOT/target}/release/arbor
fi
rm -rf "$WORK"; mkdir -p "$WORK"
timed() {  # label cmd... -> prints "wall rss"
    local label=$1; shift
    /usr/bin/time -v -o "$WORK/$label.time" "$@" > "$WORK/$label.out" 2> "$WORK/$label.err" || {
        echo "$label failed:" >&2; tail -20 "$WORK/$label.err" >&2; exit 1; }
    awk -F': ' '/Elapsed \(wall clock\)/ {n=split($2,a,":"); s=0; for(i=1;i<=n;i++) s=s*60+a[i]; w=s}
                /Maximum resident set size/ {r=$2} END {print w, r}' "$WORK/$label.time"
}
sync
# Stock pipeline, cold: resolve with dnf, unpack with rpm, post-process, ostree commit.
ostree --repo="$WORK/ostree-repo" init --mode=archive
read -r s_resolve r1 < <(timed stock-resolve "$SHARED/corpus/verify-with-dnf.sh" "$CORPUS/v1.yaml")
read -r s_unpack r2 < <(timed stock-unpack bash "$HERE/corpus-tree.sh" v1 "$WORK/tree")
read -r s_commit r3 < <(timed stock-commit ostree --repo="$WORK/ostree-repo" commit -b bench --tree=dir="$WORK/tree")
stock=$(awk -v a="$s_resolve" -v b="$s_unpack" -v c="$s_commit" 'BEGIN {print a+b+c}')
stock_rss=$(printf '%s\n' "$r1" "$r2" "$r3" | sort -n | tail -1)
rm -rf "$WORK/tree"
# arbor, cold (empty repo and cache), then v2 after v1 (warm import cache).
"$ARBOR" init --repo "$WORK/arbor-repo"
sync
read -r a_v1 a_rss1 < <(timed arbor-v1 "$ARBOR" compose --repo "$WORK/arbor-repo" --cachedir "$WORK/cache" \
    --write-composejson-to "$WORK/v1.json" "$CORPUS/v1.yaml")
read -r a_v2 a_rss2 < <(timed arbor-v2 "$ARBOR" compose --repo "$WORK/arbor-repo" --cachedir "$WORK/cache" \
    --write-composejson-to "$WORK/v2.json" "$CORPUS/v2.yaml")
read -r a_noop _ < <(timed arbor-noop "$ARBOR" compose --repo "$WORK/arbor-repo" --cachedir "$WORK/cache" "$CORPUS/v2.yaml")
echo "corpus v1: $(wc -l < "$CORPUS/resolved-v1.txt") packages; $(nproc) cores"
printf '%-40s %9s %12s\n' step wall_s peak_rss_kb
printf '%-40s %9s %12s\n' "stock: dnf resolve" "$s_resolve" "$r1"
printf '%-40s %9s %12s\n' "stock: rpm -i --root + postprocess" "$s_unpack" "$r2"
printf '%-40s %9s %12s\n' "stock: ostree commit" "$s_commit" "$r3"
printf '%-40s %9s %12s\n' "stock total (cold)" "$stock" "$stock_rss"
printf '%-40s %9s %12s\n' "arbor compose v1 (cold)" "$a_v1" "$a_rss1"
printf '%-40s %9s %12s\n' "arbor compose v2 after v1 (cached)" "$a_v2" "$a_rss2"
printf '%-40s %9s\n' "arbor compose v2 again (no change)" "$a_noop"
awk -v s="$stock" -v a="$a_v1" -v b="$a_v2" 'BEGIN {
    printf "cold compose speedup vs stock: %.2fx\nv2-after-v1 vs cold v1: %.2fx faster\n", s/a, a/b }'
python3 -c "import json,sys; d=json.load(open(sys.argv[1])); print('v2 imports:', d['arbor-packages-imported'], 'new,', d['arbor-import-cache-hits'], 'cache hits; timings', d['arbor-timings'])" "$WORK/v2.json"
