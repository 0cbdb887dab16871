#!/bin/bash
# demo.sh [OUT] - the README's first command: build arbor, commit the built-in demo tree
# (treefiles/demo-root) into an archive repository at OUT/repo (default ./demo-out),
# regenerate its summary, and prove it with the real ostree client: serve it over HTTP on
# 127.0.0.1, pull it into a fresh client repository, fsck, and list it.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
OUT=$(mkdir -p "${1:-$ROOT/demo-out}" && cd "${1:-$ROOT/demo-out}" && pwd)
command -v ostree >/dev/null || bash "$ROOT/ci/install-deps.sh"
(cd "$ROOT" && cargo build --release -q -p arbor)
ARBOR=$ROOT/target/release/arbor
REPO=$OUT/repo
[ -d "$REPO/objects" ] || "$ARBOR" init --repo "$REPO"
commit=$("$ARBOR" commit --repo "$REPO" -b demo/x86_64/stable -s "arbor demo" \
    --add-metadata-string version=1 --canonical-permissions --skip-if-unchanged "$ROOT/treefiles/demo-root")
"$ARBOR" summary --repo "$REPO" -u
echo "committed $commit to demo/x86_64/stable in $REPO"
"$ARBOR" ls --repo "$REPO" -R demo/x86_64/stable

port=$(/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
/usr/bin/python3 -m http.server "$port" --bind 127.0.0.1 --directory "$REPO" >/dev/null 2>&1 &
server=$!
trap 'kill $server 2>/dev/null || true' EXIT
for _ in $(seq 50); do (echo > /dev/tcp/127.0.0.1/$port) 2>/dev/null && break; sleep 0.1; done
CLIENT=$OUT/client
rm -rf "$CLIENT"
ostree --repo="$CLIENT" init --mode=bare-user
ostree --repo="$CLIENT" remote add --no-gpg-verify demo "http://127.0.0.1:$port/"
ostree --repo="$CLIENT" pull demo demo/x86_64/stable
ostree --repo="$CLIENT" fsck
echo
echo "The real ostree client pulled and verified $commit."
echo "Serve $REPO over HTTP (any static web server) and on a client run:"
echo "  ostree remote add --no-gpg-verify demo http://HOST:PORT/"
echo "  ostree pull demo demo/x86_64/stable"
