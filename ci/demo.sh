#!/bin/bash
# demo.sh [OUT] - the README's first command. Builds arbor, builds the demo RPMs from
# treefiles/demo/*.spec into an rpm-md repository, composes treefiles/demo.yaml into an
# archive repository at OUT/repo (default ./demo-out), regenerates its summary, then proves
# the result with the real ostree client: serve it on 127.0.0.1, pull, fsck, run a file.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
OUT=${1:-$ROOT/demo-out}
mkdir -p "$OUT"; OUT=$(cd "$OUT" && pwd)
for t in ostree rpmbuild createrepo_c; do
    command -v "$t" >/dev/null || { bash "$ROOT/ci/install-deps.sh"; break; }
done
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
cp "$ROOT/treefiles/demo.yaml" "$OUT/demo.yaml"
printf '[arbor-demo]\nname=arbor demo packages\nbaseurl=file://%s\nenabled=1\n' "$RPMS" > "$OUT/demo.repo"
ls "$RPMS/Packages"

echo "== composing"
REPO=$OUT/repo
[ -d "$REPO/objects" ] || "$ARBOR" init --repo "$REPO"
"$ARBOR" compose --repo "$REPO" --write-commitid-to "$OUT/commitid" "$OUT/demo.yaml"
"$ARBOR" summary --repo "$REPO" -u
ref=$("$ARBOR" compose --repo "$REPO" --print-only "$OUT/demo.yaml" | /usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin)["ref"])')
"$ARBOR" log --repo "$REPO" "$ref" | head -6

echo "== pulling with the real ostree client"
port=$(/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
/usr/bin/python3 -m http.server "$port" --bind 127.0.0.1 --directory "$REPO" >/dev/null 2>&1 &
server=$!
trap 'kill $server 2>/dev/null || true' EXIT
for _ in $(seq 50); do (echo > "/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.1; done
CLIENT=$OUT/client
rm -rf "$CLIENT"
ostree --repo="$CLIENT" init --mode=bare-user
ostree --repo="$CLIENT" remote add --no-gpg-verify demo "http://127.0.0.1:$port/"
ostree --repo="$CLIENT" pull demo "$ref"
ostree --repo="$CLIENT" fsck | tail -1
ostree --repo="$CLIENT" cat "demo:$ref" /usr/bin/demo-hello | sh
echo
echo "Composed $(cat "$OUT/commitid") ($ref) into $REPO; the real ostree client pulled and verified it."
echo "Serve $REPO with any static web server; on a client:"
echo "  ostree remote add --no-gpg-verify demo http://HOST:PORT/ && ostree pull demo $ref"
