#!/bin/bash
# fuzz.sh TARGET|all SECONDS [LIBFUZZER-ARGS...] - run a fuzz target (fuzz/fuzz_targets/)
# for SECONDS, or every target for SECONDS each, one at a time, on one core. Installs
# cargo-fuzz when missing; builds with the stable toolchain (RUSTC_BOOTSTRAP=1: cargo-fuzz
# needs nightly-only flags). The committed seeds (fuzz/corpus/TARGET) are copied to a
# scratch corpus, so a run never grows them. Exits non-zero on a crash, timeout or OOM
# (RSS over 512 MB), and says where the reproducer is. FUZZING.md has the details.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
[ $# -ge 2 ] || { echo "usage: $0 TARGET|all SECONDS [LIBFUZZER-ARGS...]" >&2; exit 2; }
TARGET=$1 SECONDS_EACH=$2
shift 2
EXTRA=("$@")
export PATH="$HOME/.cargo/bin:$PATH" RUSTC_BOOTSTRAP=1
cargo fuzz --version >/dev/null 2>&1 || cargo install cargo-fuzz --locked
cd "$ROOT/fuzz"
# Coverage only, no sanitizer: the code is safe Rust, and ASan halves the speed.
# Debug assertions (overflow checks) stay on, as cargo-fuzz does by default.
# Its own target directory (FUZZ_TARGET_DIR), never a CARGO_TARGET_DIR shared with the
# main workspace: the instrumented builds would evict each other.
TARGET_DIR=${FUZZ_TARGET_DIR:-$ROOT/fuzz/target}
BUILD=(--sanitizer none --release --debug-assertions --target-dir "$TARGET_DIR")
cargo fuzz build "${BUILD[@]}"
BIN=$TARGET_DIR/x86_64-unknown-linux-gnu/release

# Longest input per target: a few times the largest seed.
max_len() {
    case $1 in
        repo_file) echo 8192 ;;
        treefile | repomd | gvariant_objects | summary) echo 16384 ;;
        *) echo 65536 ;;
    esac
}

run() {
    local t=$1 work
    # On /dev/shm when there is one: the treefile target writes its files per input.
    work=$(mktemp -d "$( [ -d /dev/shm ] && echo /dev/shm || echo "${TMPDIR:-/tmp}")/fuzz-$t.XXXXXX")
    mkdir -p "$work/corpus" "$work/tmp" "$ROOT/fuzz/artifacts/$t"
    cp "$ROOT/fuzz/corpus/$t/"* "$work/corpus/"
    echo "== fuzz $t for ${SECONDS_EACH}s"
    local rc=0
    # One process (no -jobs: that forks a worker and hides its output in fuzz-N.log).
    TMPDIR=$work/tmp "$BIN/$t" "$work/corpus" -max_total_time="$SECONDS_EACH" \
        -rss_limit_mb=512 -timeout=10 -max_len="$(max_len "$t")" -print_final_stats=1 \
        -artifact_prefix="$ROOT/fuzz/artifacts/$t/" "${EXTRA[@]}" 2>"$work/log" || rc=$?
    grep -E '^#[0-9]+[[:space:]]+DONE|^stat::(number_of_executed_units|peak_rss_mb)|^Done' "$work/log" || true
    # FUZZ_LOG_DIR keeps each run's whole libFuzzer log (the figures in FUZZING.md).
    [ -z "${FUZZ_LOG_DIR:-}" ] || cp "$work/log" "$FUZZ_LOG_DIR/$t.log"
    if [ "$rc" != 0 ]; then
        tail -40 "$work/log"
        echo "fuzz $t FAILED (exit $rc); reproducer:" \
            "$(grep -oE "(crash|timeout|oom|leak|slow-unit)-[0-9a-f]+" "$work/log" | tail -1 |
                sed "s|^|$ROOT/fuzz/artifacts/$t/|")" >&2
        echo "re-run it with: $BIN/$t REPRODUCER" >&2
        rm -rf "$work"
        return 1
    fi
    rm -rf "$work"
}

if [ "$TARGET" = all ]; then
    failed=()
    for t in $(cargo fuzz list); do
        run "$t" || failed+=("$t")
    done
    [ ${#failed[@]} -eq 0 ] || { echo "fuzz: failed: ${failed[*]}" >&2; exit 1; }
else
    run "$TARGET"
fi
