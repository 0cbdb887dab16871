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
    skopeo umoci podman runc docker-registry    # container oracles: inspect/copy, unpack, run, a registry
    libostree-dev libglib2.0-dev libssl-dev libzstd-dev   # ci/build-ostree-ext.sh (ostree-ext 0.15.3)
)
missing=()
for p in "${PKGS[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
    echo "install-deps: all packages present"
else
    echo "install-deps: installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q
    apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

# The container tests start registries speaking plain HTTP on 127.0.0.1 at free ports.
# skopeo and podman take --tls-verify=false and ostree-ext's imports
# --insecure-skip-tls-verification, but `ostree-ext container encapsulate` to a registry
# has no such switch and skopeo 1.9.3 ignores CONTAINERS_REGISTRIES_CONF, so plain HTTP to
# loopback is allowed system-wide, and the tests need no per-tool flags. A location
# without a port matches every port of that host (tested with skopeo 1.9.3 and podman
# 4.3.1: "127.0.0.1" covers 127.0.0.1:5077 but not 127.0.0.10:5077).
REGCONF=/etc/containers/registries.conf.d/arbor-tests.conf
REGTEXT='# ci/install-deps.sh: arbor'"'"'s container tests run registries on 127.0.0.1 over HTTP.
[[registry]]
location = "127.0.0.1"
insecure = true'
if [ "$(cat "$REGCONF" 2>/dev/null)" != "$REGTEXT" ]; then
    mkdir -p "$(dirname "$REGCONF")"
    printf '%s\n' "$REGTEXT" > "$REGCONF"
    echo "install-deps: wrote $REGCONF"
fi
