#!/bin/bash
# corpus-tree.sh VERSION DEST - unpack the resolved RPMs of corpus VERSION (v1, v2) into a
# directory tree the way ../shared/corpus/baseline-ostree.sh does (rpm --root -i, then the
# rpm-ostree conventions), building the corpus first if needed. Used by the benchmarks.
#   CORPUS   corpus output directory (default /var/tmp/corpus)
#   STOCK_INITRAMFS=0      skip the initramfs (depmod + the tree's mkinitramfs/dracut)
#   STOCK_INSTALL=rpm|dnf   rpm --root -i --noscripts (default), or dnf --installroot
#            with the packages' scriptlets (the stock pipeline for the fedora corpus)
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
SHARED=${ARBOR_SHARED:-$HERE/../../shared}
CORPUS=${CORPUS:-/var/tmp/corpus}
ver=${1:?usage: corpus-tree.sh v1|v2 DEST}
dest=${2:?usage: corpus-tree.sh v1|v2 DEST}
if [ ! -f "$CORPUS/resolved-$ver.txt" ]; then
    echo "corpus-tree: building the corpus in $CORPUS (~2 min cold)" >&2
    bash "$SHARED/corpus/make-corpus.sh" "$CORPUS" >&2
fi
rm -rf "$dest"; mkdir -p "$dest"
# resolved-*.txt holds NEVRAs (name-[epoch:]version-release.arch); file names carry no epoch.
mapfile -t rpms < <(sed "s|-[0-9]*:|-|; s|^|$CORPUS/$ver/Packages/|; s|\$|.rpm|" "$CORPUS/resolved-$ver.txt")
if [ "${STOCK_INSTALL:-rpm}" = dnf ]; then
    mapfile -t nevras < "$CORPUS/resolved-$ver.txt"
    dnf --installroot="$dest" --setopt=reposdir=/dev/null --setopt=cachedir="$dest.dnfcache" \
        --releasever=12 --forcearch=x86_64 --setopt=install_weak_deps=False --disableplugin='*' \
        --repofrompath="r0,file://$CORPUS/$ver" --setopt=r0.gpgcheck=0 -y -q install "${nevras[@]}" >&2
    rm -rf "$dest.dnfcache"
else
    rpm --root "$dest" -i --nodeps --noscripts --notriggers --nosignature --nodigest --ignorearch "${rpms[@]}" 2>&1 | { grep -v -e "^warning:" -e "Alien" -e "assuming you know" >&2 || true; }
fi
r=$dest
# The initramfs, as rpm-ostree makes one: depmod, then the tree's own generator
# (mkinitramfs finds the kernel's config through /boot, as on Debian).
for kdir in "$r"/usr/lib/modules/*/; do
    kver=$(basename "$kdir"); [ -f "$kdir/vmlinuz" ] || continue
    [ "${STOCK_INITRAMFS:-1}" = 1 ] || continue
    mkdir -p "$r/boot"
    for f in config System.map vmlinuz; do
        [ -e "$kdir/$f" ] && ln -sf "/usr/lib/modules/$kver/$f" "$r/boot/$f-$kver"
    done
    chroot "$r" /usr/sbin/depmod -a "$kver"
    if [ -x "$r/usr/bin/dracut" ]; then
        chroot "$r" /usr/bin/dracut --no-hostonly --reproducible -f "/usr/lib/modules/$kver/initramfs.img" "$kver" >&2
    elif [ -x "$r/usr/sbin/mkinitramfs" ]; then
        chroot "$r" /usr/sbin/mkinitramfs -o "/usr/lib/modules/$kver/initramfs.img" "$kver" >&2
    fi
done
mkdir -p "$r/usr/lib/sysimage"
[ -d "$r/var/lib/rpm" ] && mv "$r/var/lib/rpm" "$r/usr/lib/sysimage/rpm"
mv "$r/etc" "$r/usr/etc"
rm -rf "$r/var" "$r/boot" "$r/home" "$r/root" "$r/srv" "$r/opt" "$r/mnt" "$r/media" \
    "$r/tmp" "$r/run" "$r/usr/local" "$r/proc" "$r/sys" "$r/dev"
mkdir -p "$r/var" "$r/boot" "$r/proc" "$r/sys" "$r/dev" "$r/run" "$r/sysroot"
ln -s var/home "$r/home"; ln -s var/roothome "$r/root"; ln -s var/srv "$r/srv"
ln -s var/opt "$r/opt"; ln -s var/mnt "$r/mnt"; ln -s run/media "$r/media"
ln -s sysroot/tmp "$r/tmp"; ln -s ../var/usrlocal "$r/usr/local"; ln -s sysroot/ostree "$r/ostree"
echo "corpus-tree: $ver -> $dest ($(find "$dest" | wc -l) paths, $(du -sh --apparent-size "$dest" | cut -f1))" >&2
