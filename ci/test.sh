#!/bin/bash
# test.sh - the test command (README.md, .ci/run): install what the tests need, check
# formatting and lints, then run every unit and integration test against the real
# ostree clients (2022.7 from Debian, 2025.x in a chroot built on first use).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash ci/install-deps.sh
# The newer ostree client's chroot (mmdebstrap, ~20 s once); built here so a failure to
# build it shows up as such, not as a test failure.
ARBOR_OSTREE_NEWER_ROOT=${ARBOR_OSTREE_NEWER_ROOT:-/var/tmp/ostree-newer}
export ARBOR_OSTREE_NEWER_ROOT
bash ../shared/tools/ostree-newer.sh "$ARBOR_OSTREE_NEWER_ROOT" --version | head -2
# The RPM corpus the compose tests use (cached in ~/.cache/corpus; ~2 min cold).
ARBOR_CORPUS=${ARBOR_CORPUS:-/var/tmp/corpus}
export ARBOR_CORPUS
[ -f "$ARBOR_CORPUS/v2.yaml" ] || bash ../shared/corpus/make-corpus.sh "$ARBOR_CORPUS" | tail -3
# The same content with the scriptlets a Fedora build carries (users, presets, ldconfig,
# CA bundle), for the scriptlet tests; shares the .deb cache (~2 min more).
ARBOR_CORPUS_FEDORA=${ARBOR_CORPUS_FEDORA:-/var/tmp/corpus-fedora}
export ARBOR_CORPUS_FEDORA
[ -f "$ARBOR_CORPUS_FEDORA/v2.yaml" ] || CORPUS_SCRIPTLETS=fedora CORPUS_KEEP_STALE=1 \
    bash ../shared/corpus/make-corpus.sh "$ARBOR_CORPUS_FEDORA" | tail -3
# garage, the S3 server the publish tests start (one per test); ~20 min cold install.
export PATH="$HOME/.cargo/bin:$PATH"
command -v garage >/dev/null 2>&1 || cargo install garage --locked
# The ostree-ext 0.15.3 CLI, the container tests' oracle: built once into a cache outside
# the clone, keyed by ci/ostree-ext's contents (~1.5 min cold on 2 cores).
ARBOR_OSTREE_EXT=${ARBOR_OSTREE_EXT:-$(bash ci/build-ostree-ext.sh)}
export ARBOR_OSTREE_EXT
cargo fmt --all --check
cargo clippy --workspace --all-targets -q -- -D warnings
cargo test --workspace --no-fail-fast
# Every fuzz target briefly (FUZZING.md): ~6 min to build them cold on 2 cores, then 10 s each.
bash ci/fuzz.sh all 10
