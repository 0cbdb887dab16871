#!/bin/bash
# make-seeds.sh - regenerate the seed corpora (fuzz/corpus/TARGET/) from data made here:
# RPMs built with rpmbuild from a spec in this script (every payload compression), an
# rpm-md repository from createrepo_c, an archive repository, its summary and static
# deltas from the real ostree client, and hand-written treefiles, .repo files and
# metalinks. Nothing is copied from elsewhere. Needs rpmbuild, createrepo_c, ostree,
# python3, xz, openssl (all in ci/install-deps.sh).
#
# Each target's input layout is described at the top of fuzz/fuzz_targets/TARGET.rs.
# Reproducible byte for byte except where ostree stamps the current time (the summary's
# last-modified, the delta superblocks' timestamp).
set -euo pipefail
FUZZ=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
C=$FUZZ/corpus
W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT
export SOURCE_DATE_EPOCH=1704067200 LC_ALL=C TZ=UTC
TARGETS=(treefile repo_file repomd rpm_header rpm_payload gvariant_objects summary
    delta_superblock delta_part import_pack)
rm -rf "$C"
for t in "${TARGETS[@]}"; do mkdir -p "$C/$t"; done

# seed TARGET NAME [PREFIX-BYTE]: stdin becomes the seed, after the selector byte.
seed() {
    local f=$C/$1/$2
    if [ $# -ge 3 ]; then printf "\\x$(printf %02x "$3")" > "$f"; else : > "$f"; fi
    cat >> "$f"
}

echo "== treefile, repo_file"
# treefile seeds are main.yaml NUL inc.yaml NUL common.json NUL r.repo.
{
    printf 'ref: fuzz/${basearch}/stable\nrepos: [fuzz]\nselinux: false\ncheck-passwd: {type: none}\ncheck-groups: {type: none}\npackages: [demo-hello]\n'
    printf '\0\0\0[fuzz]\nname=fuzz\nbaseurl=file:///srv/repo/$basearch/\nenabled=1\n'
} | seed treefile minimal
{
    cat <<'EOF'
# The main file: includes, variables, conditions.
ref: fuzz/${basearch}/${stream}
releasever: 40
variables:
  stream: stable
  minimal: false
include: inc.yaml
arch-include:
  x86_64: common.json
  aarch64: [common.json]
conditional-include:
  - if: releasever >= 39
    include:
      packages: [newer]
  - if: [stream == "stable", minimal == false]
    include: common.json
automatic-version-prefix: "${releasever}"
repos: [fuzz, updates]
repovars:
  mirror: example.invalid
recommends: false
documentation: false
add-commit-metadata:
  fuzz.seed: true
  fuzz.n: 3
packages:
  - demo-hello >= 1.0
  - "/usr/bin/sh"
exclude-packages: [bad]
repo-packages:
  - repo: updates
    packages: [demo-motd]
EOF
    printf '\0'
    cat <<'EOF'
edition: "2024"
boot-location: modules
tmp-is-dir: true
machineid-compat: false
etc-group-members: [wheel]
check-passwd: {type: none}
check-groups: {type: none}
selinux: false
postprocess:
  - |
    #!/bin/sh
    echo hi
remove-files: [etc/motd]
remove-from-packages:
  - [demo-hello, /usr/share/doc/.*]
units: [sshd.service]
default-target: multi-user.target
ignore-removed-users: [games]
EOF
    printf '\0'
    printf '{"packages": ["common"], "initramfs-args": ["--no-hostonly"], "container": false, "readonly-executables": true}'
    printf '\0'
    cat <<'EOF'
[fuzz]
name=fuzz $releasever
baseurl=https://$mirror/fedora/$releasever/$basearch/
  https://mirror2.invalid/${releasever_major}/
enabled=1
gpgcheck=0
priority=10
excludepkgs=foo*,bar

[updates]
metalink=https://mirrors.invalid/metalink?repo=updates-$releasever&arch=$basearch
enabled=0
includepkgs=demo-motd
EOF
} | seed treefile includes
{
    printf 'container: true\nref: c\npackages: [a]\nrepos: [r]\ninclude: [inc.yaml]\n'
    printf '\0arch-include: {x86_64: common.json}\nvariables: {releasever: 1}\n'
    printf '\0{"include": "main.yaml"}\0[r]\nmirrorlist=file:///m\n'
} | seed treefile loop
seed treefile demo < "$FUZZ/../treefiles/demo.yaml"

seed repo_file demo <<'EOF'
[arbor-demo]
name=arbor demo packages
baseurl=file:///srv/demo/rpms
enabled=1
EOF
seed repo_file fedora <<'EOF'
# A comment
; another
[fedora]
name=Fedora $releasever - $basearch
#baseurl=http://download.example/pub/fedora/linux/releases/$releasever/Everything/$basearch/os/
metalink=https://mirrors.fedoraproject.org/metalink?repo=fedora-$releasever&arch=$basearch
enabled=1
countme=1
metadata_expire=7d
repo_gpgcheck=0
type=rpm
gpgcheck=1
gpgkey=file:///etc/pki/rpm-gpg/RPM-GPG-KEY-fedora-$releasever-$basearch
skip_if_unavailable=False

[updates]
name=Fedora $releasever - $basearch - Updates
mirrorlist=https://mirrors.invalid/mirrorlist?repo=updates
enabled=true
priority=5
exclude=kernel* glibc
  systemd
includepkgs=a,b c
EOF
printf 'stray line\n[empty]\n[x]\nbaseurl = http://a/ , http://b/\nenabled=no\n=\nnoequals\n' |
    seed repo_file odd

echo "== RPMs"
mkdir -p "$W/rpms/Packages"
cat > "$W/fuzz.spec" <<'EOF'
%define _buildhost arbor-fuzz.invalid
%define use_source_date_epoch_as_buildtime 1
%define clamp_mtime_to_source_date_epoch 1
Name:       fuzz-seed
Epoch:      1
Version:    2.0
Release:    3
Summary:    Every kind of entry the importer handles
License:    MIT
BuildArch:  noarch
Provides:   seed(fuzz) = 2
Requires:   /bin/sh
AutoReqProv: no
%description
Seed for the fuzz targets.
%install
mkdir -p %{buildroot}/usr/bin %{buildroot}/usr/share/doc/fuzz-seed %{buildroot}/etc \
    %{buildroot}/var/lib/fuzz %{buildroot}/usr/lib/fuzz
printf '#!/bin/sh\necho fuzz\n' > %{buildroot}/usr/bin/fuzz
ln %{buildroot}/usr/bin/fuzz %{buildroot}/usr/bin/fuzz-hardlink
ln -s fuzz %{buildroot}/usr/bin/fuzz-link
printf 'doc\n' > %{buildroot}/usr/share/doc/fuzz-seed/README
printf 'x=1\n' > %{buildroot}/etc/fuzz.conf
seq 1 300 > %{buildroot}/usr/lib/fuzz/data
%pre
true
%post
true
%triggerin -- demo-hello
true
%files
%attr(0755,root,root) /usr/bin/fuzz
%attr(0755,root,root) /usr/bin/fuzz-hardlink
/usr/bin/fuzz-link
%caps(cap_net_raw=ep) /usr/lib/fuzz/data
%doc /usr/share/doc/fuzz-seed/README
%config(noreplace) %attr(0640,root,adm) /etc/fuzz.conf
%dir /var/lib/fuzz
%ghost /var/lib/fuzz/state
EOF
cp "$FUZZ"/../treefiles/demo/demo-hello.spec "$W/"
for comp in w9.gzdio w6.xzdio w19.zstdio w.ufdio; do
    for spec in fuzz demo-hello; do
        rpmbuild -bb --quiet --define "_topdir $W/rpmbuild" \
            --define "_rpmdir $W/out/$comp" --define "_binary_payload $comp" \
            --define '_rpmfilename %%{NAME}.rpm' "$W/$spec.spec" >/dev/null 2>&1
    done
done
cp "$W/out/w19.zstdio/"*.rpm "$W/rpms/Packages/"
touch -d "@$SOURCE_DATE_EPOCH" "$W/rpms/Packages/"*.rpm # primary.xml records file mtimes
# Split each RPM at its payload: lead (96) | signature header (padded to 8) | header.
split_rpm() {
    python3 - "$1" "$2" "$3" <<'EOF'
import struct, sys
data = open(sys.argv[1], "rb").read()
def header_len(off):
    n, s = struct.unpack(">II", data[off + 8:off + 16])
    return 16 + 16 * n + s
sig = header_len(96)
main = 96 + (sig + 7) // 8 * 8
end = main + header_len(main)
open(sys.argv[2], "wb").write(data[:end])
open(sys.argv[3], "wb").write(data[end:])
EOF
}
for comp in w9.gzdio w6.xzdio w19.zstdio w.ufdio; do
    for spec in fuzz-seed demo-hello; do
        split_rpm "$W/out/$comp/$spec.rpm" "$W/h" "$W/p"
        [ "$comp" = w19.zstdio ] && seed rpm_header "$spec" < "$W/h"
        seed rpm_payload "$spec.${comp#*.}" < "$W/p"
    done
done

echo "== repomd"
createrepo_c --quiet --revision 1 --set-timestamp-to-revision "$W/rpms" >/dev/null
seed repomd repomd.xml 0 < "$W/rpms/repodata/repomd.xml"
sha=$(sha256sum < "$W/rpms/repodata/repomd.xml" | cut -d' ' -f1)
size=$(stat -c %s "$W/rpms/repodata/repomd.xml")
seed repomd metalink 1 <<EOF
<?xml version="1.0" encoding="utf-8"?>
<metalink version="3.0" xmlns="http://www.metalinker.org/" xmlns:mm0="http://fedorahosted.org/mirrormanager">
 <files>
  <file name="repomd.xml">
   <mm0:timestamp>1704067200</mm0:timestamp>
   <size>$size</size>
   <verification>
    <hash type="md5">00000000000000000000000000000000</hash>
    <hash type="sha256">$sha</hash>
   </verification>
   <mm0:alternates>
    <mm0:alternate>
     <verification><hash type="sha512">00</hash></verification>
    </mm0:alternate>
   </mm0:alternates>
   <resources maxconnections="1">
    <url protocol="https" type="https" location="US" preference="100">https://a.invalid/fedora/repodata/repomd.xml</url>
    <url protocol="http" type="http" location="DE" preference="90">http://b.invalid/x/repodata/repomd.xml</url>
    <url protocol="rsync" type="rsync" preference="80">rsync://c.invalid/x/</url>
   </resources>
  </file>
 </files>
</metalink>
EOF
printf '# mirrorlist\nhttps://a.invalid/fedora/\n\n  http://b.invalid/x/  \n' | seed repomd mirrorlist 2

echo "== archive repository, summary, deltas"
R=$W/repo
ostree init --repo="$R" --mode=archive
mk_tree() {
    local t=$1 v=$2
    rm -rf "$t"; mkdir -p "$t/usr/bin" "$t/usr/lib/data" "$t/etc" "$t/usr/share/empty"
    printf '#!/bin/sh\necho version %s\n' "$v" > "$t/usr/bin/hello"
    chmod 0755 "$t/usr/bin/hello"
    ln -s hello "$t/usr/bin/hi"
    printf 'welcome %s\n' "$v" > "$t/etc/motd"
    # A file that changes a little between versions: bsdiff material.
    seq 1 12000 | sed "s/^5000\$/changed in $v/" > "$t/usr/lib/data/numbers"
    chmod 0600 "$t/etc/motd"
}
commit() {
    ostree commit --repo="$R" --branch="$1" --tree=dir="$2" --owner-uid=0 --owner-gid=0 \
        --no-xattrs --timestamp="@$SOURCE_DATE_EPOCH" --subject="seed $1" \
        --add-metadata-string=version="$3" --add-detached-metadata-string=note=seed "${@:4}"
}
mk_tree "$W/t1" 1
A=$(commit fuzz/a "$W/t1" 1)
mk_tree "$W/t2" 2
printf 'new\n' > "$W/t2/usr/bin/new"
B=$(commit fuzz/b "$W/t2" 2 --parent="$A" --add-detached-metadata-string=n=2)
ostree static-delta generate --repo="$R" --empty --to="$A" --inline >/dev/null 2>&1
ostree static-delta generate --repo="$R" --from="$A" --to="$B" --min-fallback-size=1 >/dev/null 2>&1
ostree static-delta generate --repo="$R" --empty --to="$B" --swap-endianness \
    --filename="$W/swapped" >/dev/null 2>&1
ostree static-delta generate --repo="$R" --empty --to="$B" --disable-bsdiff >/dev/null 2>&1
# A signed superblock (OSTSGNDT), with a throwaway ed25519 key.
if openssl genpkey -algorithm ed25519 -out "$W/key.pem" 2>/dev/null; then
    seed_b=$(openssl pkey -in "$W/key.pem" -outform DER | tail -c 32 | base64 -w0)
    pub_b=$(openssl pkey -in "$W/key.pem" -pubout -outform DER | tail -c 32 | base64 -w0)
    key=$( { echo "$seed_b" | base64 -d; echo "$pub_b" | base64 -d; } | base64 -w0)
    ostree static-delta generate --repo="$R" --empty --to="$B" --inline --sign-type=ed25519 \
        --sign="$key" --filename="$W/signed" >/dev/null 2>&1 && seed delta_superblock signed < "$W/signed"
fi
ostree summary --repo="$R" -u
seed summary summary < "$R/summary"
ostree summary --repo="$R" -u --add-metadata=fuzz.note="'seed'"
seed summary summary-metadata < "$R/summary"
seed delta_superblock swapped < "$W/swapped"
i=0
for sb in "$R"/deltas/*/*/superblock; do
    seed delta_superblock "repo-$i" < "$sb"
    i=$((i + 1))
done

# delta_part seeds: n | n object types | part file, from every part ostree wrote (the
# object types read from the superblock), as written (xz) and decompressed.
python3 - "$R" "$C/delta_part" <<'EOF'
import glob, lzma, os, struct, sys

def osize(n):
    return 1 if n <= 0xff else 2 if n <= 0xffff else 4 if n <= 0xffffffff else 8

def offsets(buf, count):
    w = osize(len(buf))
    return [int.from_bytes(buf[len(buf) - w * (count - i):len(buf) - w * (count - i - 1)], "little")
            for i in range(count)], w

def align(x, a):
    return (x + a - 1) // a * a

def tuple_members(buf, layout):
    """layout: (alignment, fixed size or None) per member; returns member slices."""
    w = osize(len(buf))
    nvar = sum(1 for _, s in layout[:-1] if s is None)
    ends = [int.from_bytes(buf[len(buf) - w * (i + 1):len(buf) - w * i], "little") for i in range(nvar)]
    out, pos, k = [], 0, 0
    for i, (a, s) in enumerate(layout):
        pos = align(pos, a)
        if s is not None:
            end = pos + s
        elif i == len(layout) - 1:
            end = len(buf) - w * nvar
        else:
            end = ends[k]; k += 1
        out.append(buf[pos:end]); pos = end
    return out

def var_array(buf):
    if not buf:
        return []
    w = osize(len(buf))
    last = int.from_bytes(buf[-w:], "little")
    n = (len(buf) - last) // w
    ends = [int.from_bytes(buf[last + w * i:last + w * (i + 1)], "little") for i in range(n)]
    out, pos = [], 0
    for e in ends:
        pos = align(pos, 8)
        out.append(buf[pos:e]); pos = e
    return out

repo, outdir = sys.argv[1:]
n = 0
for sb_path in sorted(glob.glob(os.path.join(repo, "deltas/*/*/superblock"))):
    sb = open(sb_path, "rb").read()
    # (a{sv} t ay ay (commit) ay a(uayttay) a(yaytt))
    m = tuple_members(sb, [(8, None), (8, 8), (1, None), (1, None), (8, None), (1, None),
                           (8, None), (8, None)])
    for i, part in enumerate(var_array(m[6])):
        f = tuple_members(part, [(4, 4), (1, None), (8, 8), (8, 8), (1, None)])
        types = bytes(f[4][j] for j in range(0, len(f[4]), 33))
        path = os.path.join(os.path.dirname(sb_path), str(i))
        if not os.path.exists(path) or len(types) > 15:
            continue
        raw = open(path, "rb").read()
        prefix = bytes([len(types)]) + types
        for name, body in (("xz", raw), ("plain", b"\0" + lzma.decompress(raw[1:]))):
            if len(body) < 60000:
                open(os.path.join(outdir, "part-%d-%s" % (n, name)), "wb").write(prefix + body)
        n += 1
if n == 0:
    sys.exit("no delta parts found")
EOF

# A hand-made part: one file object opened at 1 GiB, then closed (the interpreter once
# reserved the declared size up front; the fuzz allocator cap aborts on that).
python3 - "$C/delta_part/open-huge" <<'PY'
import struct, sys
modes = struct.pack(">III", 0, 0, 0o100644)
ops = b"o\x00\x00" + bytes([0x80, 0x80, 0x80, 0x80, 0x04]) + b"c"
# (a(uuu) aa(ayay) ay ay): members end at 12, 13, 13; 1-byte framing offsets, reversed.
payload = modes + b"\x00" + ops + bytes([13, 13, 12])
open(sys.argv[1], "wb").write(bytes([1, 0, 0]) + payload)
PY

# Another: the same open, then a bspatch against a read source (the patcher once
# reserved the object's remaining declared size before reading the patch).
python3 - "$C/delta_part/bspatch-huge" <<'PY'
import struct, sys
def varint(v):
    out = b""
    while True:
        b, v = v & 0x7f, v >> 7
        out += bytes([b | (0x80 if v else 0)])
        if not v:
            return out
modes = struct.pack(">III", 0, 0, 0o100644)
blob = bytes(range(32)) + bytes(24)  # a read-source checksum, a 24-byte patch
ops = b"o" + varint(0) + varint(0) + varint(1 << 30) + b"r" + varint(0) \
    + b"B" + varint(32) + varint(24) + b"c"
ends = [12, 13, 13 + len(blob)]
payload = modes + b"\x00" + blob + ops + bytes(reversed(ends))
open(sys.argv[1], "wb").write(bytes([1, 0, 0]) + payload)
PY

echo "== gvariant_objects"
objs=$R/objects
for ext in commit dirtree dirmeta commitmeta filez; do
    i=0
    for f in $(find "$objs" -name "*.$ext" -size -8k | sort); do
        case $ext in
            commit) sel=0 ;; dirtree) sel=1 ;; dirmeta) sel=2 ;; filez) sel=3 ;; commitmeta) sel=4 ;;
        esac
        seed gvariant_objects "$ext-$i" "$sel" < "$f"
        i=$((i + 1))
        [ $i -ge 4 ] && break
    done
done
# Any type: "TYPE NUL value".
typed() { { printf '%s\0' "$1"; cat "$2"; } | seed gvariant_objects "typed-$3" 5; }
typed 'a{sv}' "$(find "$objs" -name '*.commitmeta' | sort | head -1)" commitmeta
typed '(a(say)a(sayay))' "$(find "$objs" -name '*.dirtree' | sort | head -1)" dirtree
typed '(a{sv}aya(say)sstayay)' "$(find "$objs" -name '*.commit' | sort | head -1)" commit
typed '(a(s(taya{sv}))a{sv})' "$R/summary" summary
printf 'mv\0\0' | seed gvariant_objects typed-maybe 5
printf '(ybnqiuxtdsogh)\0' | seed gvariant_objects typed-basic 5
printf 'a(ii)\0\1\0\0\0\2\0\0\0\3\0\0\0\4\0\0\0' | seed gvariant_objects typed-fixed-array 5

# import_pack seeds: shared-cache packs (compose/src/import/pack.rs) of the archive
# repository's own objects: metadata and small content objects; metadata only; none.
python3 - "$objs" "$C/import_pack" <<'PY'
import hashlib, json, os, struct, sys
objs, out = sys.argv[1], sys.argv[2]
types = {".filez": 1, ".dirtree": 2, ".dirmeta": 3}
found = []
for d, _, files in sorted(os.walk(objs)):
    for f in sorted(files):
        stem, ext = os.path.splitext(f)
        if ext in types:
            data = open(os.path.join(d, f), "rb").read()
            found.append((types[ext], bytes.fromhex(os.path.basename(d) + stem), data))
entry = json.dumps({"importer_version": 2, "rpm_sha256": "0" * 64, "nevra": "seed-1-1.noarch",
                    "name": "seed", "tree": "0" * 64, "meta": "0" * 64, "owned_dirs": [],
                    "deferred": [], "scriptlets": [], "files": 0, "bytes": 0}).encode()
def pack(records):
    b = b"ARBORPK1" + struct.pack("<Q", len(entry)) + entry
    for t, c, data in records:
        b += bytes([t]) + c + struct.pack("<Q", len(data)) + data
    return b + b"\0"
small = [r for r in found if r[0] != 1 or len(r[2]) < 2048][:40]
for name, records in [("objects", small), ("metadata", [r for r in found if r[0] != 1]), ("empty", [])]:
    open(os.path.join(out, name), "wb").write(pack(records)[:65536])
PY

du -sh "$C"/* | sed 's|'"$C"'/||'
