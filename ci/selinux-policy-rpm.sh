#!/bin/bash
# selinux-policy-rpm.sh OUT - build tests/fixtures/selinux/selinux-policy-test.spec (the
# host's /etc/selinux/default, from Debian's selinux-policy-default, as an RPM) into the
# rpm-md repository OUT, and write OUT/selinux-test.repo naming it `selinux-test`.
# Used by the SELinux tests and ci/bench-compose.sh.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
OUT=${1:?usage: selinux-policy-rpm.sh OUT}
POLICY=${POLICY_DIR:-/etc/selinux/default}
[ -f "$POLICY/contexts/files/file_contexts" ] || {
    echo "selinux-policy-rpm: $POLICY/contexts/files/file_contexts missing (apt-get install selinux-policy-default; ci/install-deps.sh does)" >&2
    exit 1; }
mkdir -p "$OUT/Packages"; OUT=$(cd "$OUT" && pwd)
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
SOURCE_DATE_EPOCH=1704067200 rpmbuild -bb --quiet --define "_topdir $work" \
    --define "_rpmdir $OUT/Packages" --define "policy_dir $POLICY" \
    --define '_rpmfilename %%{NAME}-%%{VERSION}-%%{RELEASE}.%%{ARCH}.rpm' \
    "$ROOT/tests/fixtures/selinux/selinux-policy-test.spec" >&2
createrepo_c --quiet "$OUT" >&2
printf '[selinux-test]\nname=SELinux policy for tests\nbaseurl=file://%s\nenabled=1\n' "$OUT" > "$OUT/selinux-test.repo"
echo "$OUT"
