#!/bin/bash
# demo.sh [OUT] - the README's first command, on a fresh machine. Builds arbor, builds the
# demo RPMs from treefiles/demo/*.spec into an rpm-md repository (OUT/rpms, default
# ./demo-out) and points treefiles/demo.repo at it, then runs the whole pipeline:
#
#   arbor release treefiles/demo.yaml --repo OUT/repo --to file://OUT/published --empty-delta
#
# (compose, a from-scratch static delta, publish), and proves the result with the real
# ostree client: pull from the published directory using the delta, fsck, run a file.
# A second release with unchanged inputs does nothing and says so.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
OUT=${1:-$ROOT/demo-out}
mkdir -p "$OUT"; OUT=$(cd "$OUT" && pwd)
for t in ostree rpmbuild createrepo_c; do
    command -v "$t" >/dev/null || { bash "$ROOT/ci/install-deps.sh"; break; }
done
echo "== building arbor (cargo build --release)"
(cd "$ROOT" && cargo build --release -q -p arbor)
ARBOR=${CARGO_TARGET_DIR:-$ROOT/target}/release/arbor

echo "== building the demo RPMs"
RPMS=$OUT/rpms
rm -rf "$RPMS"; mkdir -p "$RPMS/Packages"
for spec in "$ROOT"/treefiles/demo/*.spec; do
    SOURCE_DATE_EPOCH=1704067200 rpmbuild -bb --quiet \
        --define "_topdir $OUT/rpmbuild" --define "_rpmdir $RPMS/Packages" \
        --define '_rpmfilename %%{NAME}-%%{VERSION}-%%{RELEASE}.%%{ARCH}.rpm' "$spec" >/dev/null
done
rm -rf "$OUT/rpmbuild"
createrepo_c --quiet --revision 1 --set-timestamp-to-revision "$RPMS" >/dev/null
# The treefile's repos come from *.repo files next to it, as with rpm-ostree.
printf '[arbor-demo]\nname=arbor demo packages (built by ci/demo.sh)\nbaseurl=file://%s\nenabled=1\n' \
    "$RPMS" > "$ROOT/treefiles/demo.repo"
ls "$RPMS/Packages"

echo "== arbor release treefiles/demo.yaml"
PUB=$OUT/published
cd "$ROOT"
"$ARBOR" release treefiles/demo.yaml --repo "$OUT/repo" --to "file://$PUB" --empty-delta \
    --json > "$OUT/release.json"
read -r commit ref version < <(/usr/bin/python3 -c '
import json, sys
r = json.load(open(sys.argv[1]))
print(r["commit"], r["ref"], r["version"])' "$OUT/release.json")
echo "== again, with nothing changed"
"$ARBOR" release treefiles/demo.yaml --repo "$OUT/repo" --to "file://$PUB" --empty-delta \
    --unchanged-exit-77 > /dev/null && rc=0 || rc=$?
[ "$rc" = 77 ] || { echo "demo: the second release should have had nothing to do (exit $rc)" >&2; exit 1; }

echo "== pulling with the real ostree client (ostree $(ostree --version | awk '/Version/ {print $2}' | tr -d "'"))"
CLIENT=$OUT/client
rm -rf "$CLIENT"
ostree --repo="$CLIENT" init --mode=bare-user
ostree --repo="$CLIENT" remote add --no-gpg-verify demo "file://$PUB"
ostree --repo="$CLIENT" pull --require-static-deltas demo "$ref"
ostree --repo="$CLIENT" fsck | tail -1
ostree --repo="$CLIENT" cat "demo:$ref" /usr/bin/demo-hello | sh
echo
echo "Released $commit ($ref, version $version) to $PUB; the real ostree client pulled and verified it."
echo "Serve $PUB with any static web server (or publish with --to s3://BUCKET/PREFIX); on a client:"
echo "  ostree remote add --no-gpg-verify demo http://HOST:PORT/ && ostree pull demo $ref"
echo "or, from this machine:"
echo "  ostree --repo=/tmp/demo-client init --mode=bare-user && \\"
echo "  ostree --repo=/tmp/demo-client remote add --no-gpg-verify demo file://$PUB && \\"
echo "  ostree --repo=/tmp/demo-client pull demo $ref"
