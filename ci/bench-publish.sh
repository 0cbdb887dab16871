#!/bin/bash
# bench-publish.sh [CORPUS_DIR] - publish the corpus v1 repository to garage with `arbor publish`, and
# upload the same repository directory with `aws s3 sync` (awscli from PyPI), in one run
# against one garage. Reports wall time and S3 requests (counted by garage itself, from
# its /metrics endpoint, so both tools are measured the same way), for the first upload
# and for a second run with nothing new. Goal: arbor ≥ 2× faster on the first upload.
#   WORK=/var/tmp/arbor-bench-publish  ARBOR=target/release/arbor  JOBS=16  TREE=$WORK/tree-v1
#   CORPUS_DIR: the corpus whose v1 tree (ci/corpus-tree.sh v1) is committed (default $CORPUS,
#   else /var/tmp/corpus); the tree and repository are rebuilt when they came from another.
#   MIRROR=1: then copy the published repository back over HTTP (garage's web endpoint) with
#   `arbor mirror` and with `ostree pull --mirror`, timed the same way.
#   BENCH_TSV=FILE: also append a row per tool and run to FILE (see ci/bench-lib.sh); the
#   wall time is the one printed, CPU and peak RSS come from /usr/bin/time.
set -euo pipefail
corpus_stats() { [ -f "${1}/STATS.txt" ] && sed "s|^|corpus ${1}: |" "${1}/STATS.txt" || echo "corpus ${1}: no STATS.txt"; }
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
# shellcheck source=ci/bench-lib.sh
. "$HERE/bench-lib.sh"
CORPUS=$(cd "${1:-${CORPUS:-/var/tmp/corpus}}" && pwd)
WORK=${WORK:-/var/tmp/arbor-bench-publish}
JOBS=${JOBS:-16}
mkdir -p "$WORK"
if [ -z "${ARBOR:-}" ]; then
    (cd "$ROOT" && cargo build --release -q -p arbor)
    ARBOR=${CARGO_TARGET_DIR:-$ROOT/target}/release/arbor
fi
command -v aws > /dev/null || pip install -q awscli
TREE=${TREE:-$WORK/tree-v1}
bench_corpus_tree "$CORPUS" "$TREE"
REPO=$WORK/repo-v1
# The repository is made again when its tree was (re)built by the scripts after it
# ($REPO.tree names the tree it was committed from).
if [ ! -f "$REPO/refs/heads/bench" ] || { [ -f "$TREE.corpus" ] &&
    { [ ! -f "$REPO.tree" ] || [ "$TREE.corpus" -nt "$REPO.tree" ] || [ "$(cat "$REPO.tree")" != "$TREE" ]; }; }; then
    rm -rf "$REPO"
    "$ARBOR" init --repo "$REPO"
    "$ARBOR" commit --repo "$REPO" -b bench --timestamp 2024-01-01T00:00:00Z -s bench "$TREE" > /dev/null
    "$ARBOR" summary --repo "$REPO" -u > /dev/null
    echo "$TREE" > "$REPO.tree"
fi
files=$(find "$REPO" -type f | wc -l); bytes=$(du -sb --apparent-size "$REPO" | cut -f1)
corpus_stats "$CORPUS"
echo "repository: $REPO ($files files, $bytes bytes); $(nproc) cores; arbor --jobs $JOBS"

GDIR=$WORK/garage
rm -rf "$GDIR" "$WORK/mirror-arbor" "$WORK/mirror-ostree"
ENV=$(bash "$HERE/start-garage.sh" "$GDIR")
trap 'bash "$HERE/stop-garage.sh" "$GDIR" || true' EXIT
# shellcheck disable=SC1090
source "$ENV"

# Total S3 API requests garage has served so far.
requests() {
    curl -sf "$GARAGE_ADMIN_URL/metrics" | awk '/^api_s3_request_counter[{ ]/ {s += $NF} END {printf "%d\n", s}'
}
now() { date +%s.%N; }
measure() {  # label cmd... : prints "seconds requests cpu_seconds peak_rss_kb"
    local label=$1; shift
    local r0 t0 t1 r1
    r0=$(requests); t0=$(now)
    /usr/bin/time -f '%U %S %M' -o "$WORK/$label.time" "$@" > "$WORK/$label.out" 2> "$WORK/$label.err" || {
        echo "$label failed:" >&2; cat "$WORK/$label.err" >&2; exit 1; }
    t1=$(now); r1=$(requests)
    echo "$(awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.3f", b - a}') $((r1 - r0))" \
        "$(awk '{printf "%.2f %d", $1 + $2, $3}' "$WORK/$label.time")"
}
sync
read -r a_s a_r a_c a_m < <(measure arbor-first "$ARBOR" publish --repo "$REPO" --to s3://localhost/arbor --jobs "$JOBS" --json)
read -r w_s w_r w_c w_m < <(measure aws-first aws --endpoint-url "$AWS_ENDPOINT_URL" s3 sync --quiet "$REPO" s3://localhost/awscli)
read -r a2_s a2_r a2_c a2_m < <(measure arbor-again "$ARBOR" publish --repo "$REPO" --to s3://localhost/arbor --jobs "$JOBS" --json)
read -r w2_s w2_r w2_c w2_m < <(measure aws-again aws --endpoint-url "$AWS_ENDPOINT_URL" s3 sync --quiet "$REPO" s3://localhost/awscli)
own=$(python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(d["requests"]["total"], d["objects_uploaded"], d["bytes_uploaded"])' "$WORK/arbor-first.out")
own2=$(python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(d["requests"]["total"], d["objects_uploaded"])' "$WORK/arbor-again.out")
echo
printf '%-22s %10s %12s\n' run seconds s3_requests
printf '%-22s %10.2f %12s\n' "arbor publish" "$a_s" "$a_r"
printf '%-22s %10.2f %12s\n' "aws s3 sync" "$w_s" "$w_r"
printf '%-22s %10.2f %12s\n' "arbor publish (again)" "$a2_s" "$a2_r"
printf '%-22s %10.2f %12s\n' "aws s3 sync (again)" "$w2_s" "$w2_r"
echo "arbor's own count (first): requests objects bytes = $own; again: requests objects = $own2"
echo "(aws s3 sync also uploads tmp/, state/, extensions/ entries if any, and nothing orders it for clients)"
awk -v a="$a_s" -v w="$w_s" 'BEGIN {printf "speedup, first upload: %.2fx (aws / arbor wall time)\n", w/a}'
awk -v a="$a2_s" -v w="$w2_s" 'BEGIN {printf "speedup, nothing new:  %.2fx\n", w/a}'
if [ "${MIRROR:-0}" = 1 ]; then
    # Both read what arbor published, over plain HTTP from garage's web endpoint (no S3
    # requests: the request column counts S3 API requests only).
    SRC=${GARAGE_WEB_URL}arbor
    ostree --repo="$WORK/mirror-ostree" init --mode=archive
    ostree --repo="$WORK/mirror-ostree" remote add --no-gpg-verify src "$SRC"
    sync
    read -r m_s _ m_c m_m < <(measure arbor-mirror "$ARBOR" mirror --from "$SRC" --to "file://$WORK/mirror-arbor" --jobs "$JOBS" --json)
    read -r o_s _ o_c o_m < <(measure ostree-mirror ostree --repo="$WORK/mirror-ostree" pull --mirror src bench)
    m_b=$(bench_bytes "$WORK/mirror-arbor"); o_b=$(bench_bytes "$WORK/mirror-ostree")
    printf '%-22s %10.2f %12s\n' "arbor mirror (HTTP)" "$m_s" "-"
    printf '%-22s %10.2f %12s\n' "ostree pull --mirror" "$o_s" "-"
    echo "mirrored bytes: arbor $m_b, ostree $o_b"
    awk -v a="$m_s" -v o="$o_s" 'BEGIN {printf "speedup, mirror: %.2fx (ostree / arbor wall time)\n", o/a}'
fi
if [ -n "${BENCH_TSV:-}" ]; then
    read -r _ _ own_b <<< "$own"
    own2_b=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["bytes_uploaded"])' "$WORK/arbor-again.out")
    bench_tsv "$CORPUS" arbor "publish first" "$a_s" "$a_c" "$a_m" "$own_b" 1 "arbor publish --jobs $JOBS; $a_r S3 requests; output = bytes uploaded"
    bench_tsv "$CORPUS" stock "publish first" "$w_s" "$w_c" "$w_m" "$bytes" 1 "aws s3 sync; $w_r S3 requests; output = the repository's bytes"
    bench_tsv "$CORPUS" arbor "publish unchanged" "$a2_s" "$a2_c" "$a2_m" "$own2_b" 1 "arbor publish; $a2_r S3 requests; output = bytes uploaded"
    bench_tsv "$CORPUS" stock "publish unchanged" "$w2_s" "$w2_c" "$w2_m" "" 1 "aws s3 sync; $w2_r S3 requests"
    if [ "${MIRROR:-0}" = 1 ]; then
        bench_tsv "$CORPUS" arbor "mirror over HTTP" "$m_s" "$m_c" "$m_m" "$m_b" 1 "arbor mirror from garage's web endpoint to file://; output = the copy"
        bench_tsv "$CORPUS" stock "mirror over HTTP" "$o_s" "$o_c" "$o_m" "$o_b" 1 "ostree pull --mirror from garage's web endpoint; output = the copy"
    fi
    echo "appended rows to $BENCH_TSV"
fi
