#!/bin/bash
# install-deps.sh - install the Debian packages arbor's build and tests need.
# Idempotent: packages already present are skipped quickly by apt.
set -euo pipefail
PKGS=(
    ostree gir1.2-ostree-1.0 python3-gi         # the real client + GLib oracle for GVariant
    rpm rpm2cpio cpio createrepo-c dnf          # RPM tooling and the resolution oracle
    libsolv-dev libsolvext-dev libclang-dev clang pkg-config   # libsolv-sys bindings
    libselinux1-dev                             # compose/src/selinux.rs links -lselinux
    attr time curl xz-utils zstd e2fsprogs      # getfattr/setfattr, /usr/bin/time, chattr
    mmdebstrap                                  # builds the newer (2025.x) ostree client chroot
    bubblewrap                                  # the scriptlet sandbox
    busybox-static                              # the shell of the scriptlet test RPMs
    gnupg openssl                               # signing: gpg/gpg-agent signers, ed25519 oracle
    selinux-policy-default policycoreutils      # a real policy to label with; setfiles as the oracle
)
missing=()
for p in "${PKGS[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
    echo "install-deps: all packages present"
    exit 0
fi
echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -q
apt-get install -y -q --no-install-recommends "${missing[@]}"
