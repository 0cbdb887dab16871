#!/bin/bash
# bench-sign.sh - what signing adds: `arbor sign` of a commit with each backend vs the
# signer's own time (`gpg --detach-sign` of the same .commit bytes), and `arbor publish`
# with and without `--sign-with` (summary signed at the destination). Medians of RUNS.
#   RUNS=7  WORK=/var/tmp/arbor-bench-sign  ARBOR=target/release/arbor
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
RUNS=${RUNS:-7}
WORK=${WORK:-/var/tmp/arbor-bench-sign}
if [ -z "${ARBOR:-}" ]; then
    (cd "$ROOT" && cargo build --release -q -p arbor)
    ARBOR=${CARGO_TARGET_DIR:-$ROOT/target}/release/arbor
fi
rm -rf "$WORK"; mkdir -p "$WORK/gnupg" "$WORK/tree/usr/share"; chmod 700 "$WORK/gnupg"
G="gpg --homedir $WORK/gnupg --batch --no-tty"
$G --passphrase '' --quick-gen-key 'Bench <bench@example.invalid>' rsa3072 sign never 2>/dev/null
$G --passphrase '' --quick-gen-key 'Bench Ed <ed@example.invalid>' ed25519 sign never 2>/dev/null
K=$($G --with-colons --list-keys 'Bench <' | awk -F: '/^fpr/{print $10; exit}')
KE=$($G --with-colons --list-keys 'Bench Ed' | awk -F: '/^fpr/{print $10; exit}')
$G --armor --export-secret-keys "$KE" > "$WORK/ed.sec.asc"
openssl genpkey -algorithm ed25519 -out "$WORK/ed25519.pem" 2>/dev/null
echo "load: $(cut -d' ' -f1-3 /proc/loadavg); $(nproc) cores; $(date -u +%FT%TZ)"

ms() { # command... -> wall milliseconds
    local s e; s=$(date +%s%N); "$@" >/dev/null 2>&1; e=$(date +%s%N); echo $(( (e - s) / 1000000 ))
}
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

"$ARBOR" init --repo "$WORK/repo" >/dev/null
i=0
commit() { i=$((i+1)); echo "$i" > "$WORK/tree/usr/share/v"
    "$ARBOR" commit --repo "$WORK/repo" -b b -s "$i" "$WORK/tree" 2>/dev/null; }
row() { printf '%-42s %6s ms\n' "$1" "$2"; }

C=$(commit); F=$WORK/repo/objects/${C:0:2}/${C:2}.commit
row "gpg --detach-sign (RSA-3072) alone" "$(for _ in $(seq "$RUNS"); do ms sh -c "$G --local-user $K --detach-sign --output - - < $F"; done | median)"
row "arbor sign, no-op (already signed; startup)" "$( "$ARBOR" sign --repo "$WORK/repo" "$C" --sign-with "gpg:$K" --gpg-homedir "$WORK/gnupg" >/dev/null 2>&1
    for _ in $(seq "$RUNS"); do ms "$ARBOR" sign --repo "$WORK/repo" "$C" --sign-with "gpg:$K" --gpg-homedir "$WORK/gnupg"; done | median)"
for spec in "gpg:$K" "exec:$G --local-user $K --detach-sign --output - -" "openpgp:$WORK/ed.sec.asc" "ed25519:$WORK/ed25519.pem"; do
    extra=(); case $spec in gpg:*) extra=(--gpg-homedir "$WORK/gnupg");; exec:*) $G --armor --export "$K" > "$WORK/k.asc"; extra=(--signer-key "$WORK/k.asc");; esac
    t=$(for _ in $(seq "$RUNS"); do c=$(commit); ms "$ARBOR" sign --repo "$WORK/repo" "$c" --sign-with "$spec" "${extra[@]}"; done | median)
    row "arbor sign NEW commit, ${spec%%:*}" "$t"
done
pub() { "$ARBOR" publish --repo "$WORK/repo" --to "file://$WORK/pub-$1" "${@:2}"; }
row "arbor publish (summary rewritten), unsigned" "$(for r in $(seq "$RUNS"); do commit >/dev/null; ms pub u; done | median)"
row "arbor publish, --sign-with gpg (RSA)" "$(for r in $(seq "$RUNS"); do commit >/dev/null; ms pub s --sign-with "gpg:$K" --gpg-homedir "$WORK/gnupg"; done | median)"
$G --armor --export "$K" > "$WORK/k.asc"
"$ARBOR" verify --repo "$WORK/pub-s" --summary --keyring "$WORK/k.asc" | tail -1
gpgconf --homedir "$WORK/gnupg" --kill all
