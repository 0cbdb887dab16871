#!/bin/bash
# build-ostree-ext.sh - build the ostree-ext 0.15.3 CLI (ci/ostree-ext/, a dev-only test
# oracle for arbor's container images) into a cache outside the clone, reusing it while
# ci/ostree-ext is unchanged, and print the binary's path (stdout, last line). ci/test.sh
# exports it as ARBOR_OSTREE_EXT for the tests.
#
#   ARBOR_ORACLE_CACHE   cache directory (default /var/tmp/arbor-oracles); the binary is
#                        $ARBOR_ORACLE_CACHE/ostree-ext-<key>/ostree-ext, the key a hash of
#                        ci/ostree-ext/{Cargo.toml,Cargo.lock,src/main.rs}
#
# Needs libostree-dev libglib2.0-dev libssl-dev libzstd-dev pkg-config (ci/install-deps.sh).
# Cost on 2 cores: ~1.5 min with the crates already downloaded (an unoptimised build
# without debuginfo: the work is done by C libraries, so a release build, ~4.5 min,
# would buy nothing); nothing when cached.
set -euo pipefail
SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")/ostree-ext" && pwd)
CACHE=${ARBOR_ORACLE_CACHE:-/var/tmp/arbor-oracles}
KEY=$(cat "$SRC/Cargo.toml" "$SRC/Cargo.lock" "$SRC/src/main.rs" | sha256sum | cut -c1-16)
DEST=$CACHE/ostree-ext-$KEY
BIN=$DEST/ostree-ext

if [ -x "$BIN" ]; then
    echo "build-ostree-ext: cached" >&2
    echo "$BIN"
    exit 0
fi

mkdir -p "$CACHE"
# One target directory for every key, so a change to main.rs rebuilds only the wrapper.
TARGET=$CACHE/target
START=$(date +%s)
echo "build-ostree-ext: building ostree-ext 0.15.3 (~1.5 min on 2 cores) into $DEST" >&2
cargo build --locked -q --manifest-path "$SRC/Cargo.toml" --target-dir "$TARGET" >&2
BUILT=$TARGET/debug/ostree-ext
"$BUILT" --help > /dev/null || { echo "build-ostree-ext: $BUILT does not run" >&2; exit 1; }
mkdir -p "$DEST"
cp "$BUILT" "$BIN.tmp.$$"
mv "$BIN.tmp.$$" "$BIN"
echo "build-ostree-ext: built in $(( $(date +%s) - START )) s" >&2
echo "$BIN"
