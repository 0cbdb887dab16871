#!/bin/bash
# bench-publish.sh - publish the corpus v1 repository to garage with `arbor publish`, and
# upload the same repository directory with `aws s3 sync` (awscli from PyPI), in one run
# against one garage. Reports wall time and S3 requests (counted by garage itself, from
# its /metrics endpoint, so both tools are measured the same way), for the first upload
# and for a second run with nothing new. Goal: arbor ≥ 2× faster on the first upload.
#   WORK=/var/tmp/arbor-bench-publish  ARBOR=target/release/arbor  JOBS=16
set -euo pipefail
corpus_stats() { [ -f "${1}/STATS.txt" ] && sed "s|^|corpus ${1}: |" "${1}/STATS.txt" || echo "corpus ${1}: no STATS.txt"; }
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
WORK=${WORK:-/var/tmp/arbor-bench-publish}
JOBS=${JOBS:-16}
mkdir -p "$WORK"
if [ -z "${ARBOR:-}" ]; then
    (cd "$ROOT" && cargo build --release -q -p arbor)
    ARBOR=${CARGO_TARGET_DIR:-$ROOT/target}/release/arbor
fi
command -v aws > /dev/null || pip install -q awscli
TREE=${TREE:-$WORK/tree-v1}
[ -d "$TREE/usr" ] || bash "$HERE/corpus-tree.sh" v1 "$TREE"
REPO=$WORK/repo-v1
if [ ! -f "$REPO/refs/heads/bench" ]; then
    rm -rf "$REPO"
    "$ARBOR" init --repo "$REPO"
    "$ARBOR" commit --repo "$REPO" -b bench --timestamp 2024-01-01T00:00:00Z -s bench "$TREE" > /dev/null
    "$ARBOR" summary --repo "$REPO" -u > /dev/null
fi
files=$(find "$REPO" -type f | wc -l); bytes=$(du -sb --apparent-size "$REPO" | cut -f1)
corpus_stats "${CORPUS:-/var/tmp/corpus}"
echo "repository: $REPO ($files files, $bytes bytes); $(nproc) cores; arbor --jobs $JOBS"

GDIR=$WORK/garage
rm -rf "$GDIR"
ENV=$(bash "$HERE/start-garage.sh" "$GDIR")
trap 'bash "$HERE/stop-garage.sh" "$GDIR" || true' EXIT
# shellcheck disable=SC1090
source "$ENV"

# Total S3 API requests garage has served so far.
requests() {
    curl -sf "$GARAGE_ADMIN_URL/metrics" | awk '/^api_s3_request_counter[{ ]/ {s += $NF} END {printf "%d\n", s}'
}
now() { date +%s.%N; }
measure() {  # label cmd... : prints "seconds requests"
    local label=$1; shift
    local r0 t0 t1 r1
    r0=$(requests); t0=$(now)
    "$@" > "$WORK/$label.out" 2> "$WORK/$label.err" || { echo "$label failed:" >&2; cat "$WORK/$label.err" >&2; exit 1; }
    t1=$(now); r1=$(requests)
    echo "$(awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.3f", b - a}') $((r1 - r0))"
}
sync
read -r a_s a_r < <(measure arbor-first "$ARBOR" publish --repo "$REPO" --to s3://localhost/arbor --jobs "$JOBS" --json)
read -r w_s w_r < <(measure aws-first aws --endpoint-url "$AWS_ENDPOINT_URL" s3 sync --quiet "$REPO" s3://localhost/awscli)
read -r a2_s a2_r < <(measure arbor-again "$ARBOR" publish --repo "$REPO" --to s3://localhost/arbor --jobs "$JOBS" --json)
read -r w2_s w2_r < <(measure aws-again aws --endpoint-url "$AWS_ENDPOINT_URL" s3 sync --quiet "$REPO" s3://localhost/awscli)
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
