//! Unit tests of the importer on RPMs built in memory with the `rpm` crate's builder:
//! every kind of entry, path translations, hardlinks, capabilities, docs, the cache,
//! and bad input (escaping paths, device nodes, corrupt and truncated files).

use std::fs;
use std::path::{Path, PathBuf};

use arbor_repo::tree::{MutableTree, TreeEntry};
use arbor_repo::{FileHeader, Repo};
use rpm::{BuildConfig, CompressionWithLevel, FileOptions, PackageBuilder};

use super::*;

const BIG: usize = (content::SPOOL_THRESHOLD + 12345) as usize;

pub(super) fn builder(name: &str, compression: CompressionWithLevel) -> PackageBuilder {
    let mut b = PackageBuilder::new(name, "1.0", "MIT", "x86_64", "test package");
    b.using_config(
        BuildConfig::default()
            .compression(compression)
            .source_date(1_700_000_000),
    );
    b.release("1");
    b
}

pub(super) fn write_rpm(dir: &Path, b: &mut PackageBuilder) -> PathBuf {
    let pkg = b.build().unwrap();
    let path = dir.join(format!("{}.rpm", pkg.metadata.get_name().unwrap()));
    pkg.write_file(&path).unwrap();
    path
}

/// A package with one of everything the importer handles.
pub(super) fn everything(dir: &Path, compression: CompressionWithLevel) -> PathBuf {
    let big: Vec<u8> = (0..BIG).map(|i| (i % 251) as u8).collect();
    let mut b = builder("everything", compression);
    b.epoch(3)
        .with_file_contents(
            "#!/bin/sh\n",
            FileOptions::new("/usr/bin/tool").permissions(0o755),
        )
        .unwrap()
        .with_file_contents(
            "x",
            FileOptions::new("/usr/bin/suid")
                .permissions(0o4755)
                .user("nobody-here"),
        )
        .unwrap()
        .with_file_contents(
            "y",
            FileOptions::new("/usr/bin/sgid")
                .permissions(0o2755)
                .group("shadow"),
        )
        .unwrap()
        .with_file_contents(
            "cap",
            FileOptions::new("/usr/bin/ping")
                .permissions(0o755)
                .caps("cap_net_raw=ep")
                .unwrap(),
        )
        .unwrap()
        .with_symlink(FileOptions::symlink("/usr/bin/tool-link", "tool"))
        .unwrap()
        .with_dir_entry(FileOptions::dir("/usr/libexec/private").permissions(0o700))
        .unwrap()
        .with_file_contents("h", FileOptions::new("/usr/libexec/private/helper"))
        .unwrap()
        .with_file_contents(
            "linked\n",
            FileOptions::new("/usr/share/e/a").hardlink("ab"),
        )
        .unwrap()
        .with_file_contents(
            "linked\n",
            FileOptions::new("/usr/share/e/b").hardlink("ab"),
        )
        .unwrap()
        .with_file_contents(big, FileOptions::new("/usr/share/e/big"))
        .unwrap()
        .with_file_contents("", FileOptions::new("/usr/share/e/empty"))
        .unwrap()
        .with_file_contents(
            "doc\n",
            FileOptions::new("/usr/share/doc/everything/README").doc(),
        )
        .unwrap()
        .with_file_contents(
            "MIT\n",
            FileOptions::new("/usr/share/licenses/everything/COPYING").license(),
        )
        .unwrap()
        .with_file_contents("a=1\n", FileOptions::new("/etc/everything.conf").config())
        .unwrap()
        .with_file_contents("kernel", FileOptions::new("/boot/vmlinuz-1"))
        .unwrap()
        .with_dir_entry(
            FileOptions::dir("/var/lib/everything")
                .permissions(0o2775)
                .group("shadow"),
        )
        .unwrap()
        .with_file_contents("state", FileOptions::new("/var/lib/everything/state"))
        .unwrap()
        .with_symlink(FileOptions::symlink(
            "/var/run/everything",
            "../run/everything",
        ))
        .unwrap()
        .with_dir_entry(FileOptions::dir("/run/everything dir"))
        .unwrap()
        .with_ghost(FileOptions::ghost("/usr/share/e/ghost"))
        .unwrap()
        .with_ghost(FileOptions::ghost_dir("/var/cache/everything"))
        .unwrap()
        .post_install_script("echo hi")
        .pre_trans_script("true");
    write_rpm(dir, &mut b)
}

pub(super) fn users() -> Users {
    Users::parse("root:x:0:0::/:/bin/sh\n", "root:x:0:\nshadow:x:42:\n").unwrap()
}

fn file<'a>(t: &'a MutableTree, p: &str) -> &'a arbor_repo::Checksum {
    match t.lookup(p) {
        Some(TreeEntry::File(c)) => c,
        other => panic!("{p}: {other:?}"),
    }
}

fn header(repo: &Repo, t: &MutableTree, p: &str) -> (FileHeader, Vec<u8>) {
    repo.read_file(file(t, p)).unwrap()
}

fn dir_mode(t: &MutableTree, p: &str) -> (u32, u32, u32) {
    match t.lookup(p) {
        Some(TreeEntry::Dir(d)) => (d.meta.mode, d.meta.uid, d.meta.gid),
        other => panic!("{p}: {other:?}"),
    }
}

pub(super) fn setup() -> (tempfile::TempDir, Repo) {
    let tmp = tempfile::tempdir().unwrap();
    let repo = Repo::init(&tmp.path().join("repo")).unwrap();
    (tmp, repo)
}

#[test]
fn imports_every_kind_of_entry() {
    for compression in [
        CompressionWithLevel::Zstd(3),
        CompressionWithLevel::Gzip(6),
        CompressionWithLevel::Xz(1),
        CompressionWithLevel::None,
    ] {
        let (tmp, repo) = setup();
        let rpm = everything(tmp.path(), compression);
        let (pkg, hit) = import_rpm(&repo, &rpm, &ImportOpts::default(), &users(), None).unwrap();
        assert!(!hit);
        assert_eq!(pkg.nevra, "everything-3:1.0-1.x86_64");
        assert_eq!(pkg.scriptlets, ["%pretrans", "%post"]);
        let t = &pkg.tree;

        let (h, c) = header(&repo, t, "usr/bin/tool");
        assert_eq!(
            (h.mode, h.uid, h.gid, c.as_slice()),
            (0o100755, 0, 0, &b"#!/bin/sh\n"[..])
        );
        // Unknown user: root, and the setuid bit goes (as rpm does).
        assert_eq!(header(&repo, t, "usr/bin/suid").0.mode, 0o100755);
        let (h, _) = header(&repo, t, "usr/bin/sgid");
        assert_eq!((h.mode, h.gid), (0o102755, 42));
        let (h, _) = header(&repo, t, "usr/bin/ping");
        assert_eq!(
            h.xattrs.entries(),
            [(
                b"security.capability".to_vec(),
                caps::text_to_xattr("cap_net_raw=ep").unwrap()
            )]
        );
        let (h, _) = header(&repo, t, "usr/bin/tool-link");
        assert_eq!((h.mode, h.symlink_target.as_str()), (0o120777, "tool"));
        assert_eq!(dir_mode(t, "usr/libexec/private"), (0o40700, 0, 0));
        assert!(pkg.owned_dirs.contains("usr/libexec/private"));
        assert!(!pkg.owned_dirs.contains("usr/libexec"));
        assert_eq!(file(t, "usr/share/e/a"), file(t, "usr/share/e/b"));
        assert_eq!(header(&repo, t, "usr/share/e/a").1, b"linked\n");
        let (_, big) = header(&repo, t, "usr/share/e/big");
        assert_eq!(big.len(), BIG);
        assert!(big.iter().enumerate().all(|(i, b)| *b == (i % 251) as u8));
        assert!(header(&repo, t, "usr/share/e/empty").1.is_empty());
        assert!(t.lookup("usr/share/e/ghost").is_none());
        assert!(t.lookup("usr/share/doc/everything/README").is_some());
        assert!(t.lookup("usr/etc/everything.conf").is_some());
        assert!(t.lookup("etc").is_none());
        assert!(t.lookup("usr/lib/ostree-boot/vmlinuz-1").is_some());
        assert!(
            t.lookup("var").is_none() && t.lookup("run").is_none() && t.lookup("boot").is_none()
        );
        let (h, conf) = header(&repo, t, "usr/lib/rpm-ostree/tmpfiles.d/everything.conf");
        assert_eq!(h.mode, 0o100644);
        assert_eq!(
            String::from_utf8(conf).unwrap(),
            "d '/run/everything dir' 0755 root root - -\n\
             d /var/lib/everything 2775 root shadow - -\n\
             L /run/everything - - - - ../run/everything\n"
        );
        assert_eq!(pkg.files, 15);
        assert_eq!(
            pkg.bytes,
            (10 + 1 + 1 + 3 + 1 + 7 + 7 + BIG + 4 + 4 + 4 + 6 + conf_len(&repo, t)) as u64
        );
        let leftovers: Vec<_> = fs::read_dir(repo.path().join("tmp")).unwrap().collect();
        assert!(leftovers.is_empty(), "spool files left: {leftovers:?}");
    }
}

fn conf_len(repo: &Repo, t: &MutableTree) -> usize {
    header(repo, t, "usr/lib/rpm-ostree/tmpfiles.d/everything.conf")
        .1
        .len()
}

#[test]
fn nodocs_and_remove_from() {
    let (tmp, repo) = setup();
    let rpm = everything(tmp.path(), CompressionWithLevel::Zstd(3));
    let opts = ImportOpts {
        documentation: false,
        remove_from: vec![
            regex::Regex::new("^/etc/every").unwrap(),
            regex::Regex::new("/private$").unwrap(),
        ],
        ..ImportOpts::default()
    };
    let (pkg, _) = import_rpm(&repo, &rpm, &opts, &users(), None).unwrap();
    let t = &pkg.tree;
    assert!(t.lookup("usr/share/doc/everything/README").is_none());
    assert!(t.lookup("usr/share/licenses/everything/COPYING").is_some());
    assert!(t.lookup("usr/etc/everything.conf").is_none());
    assert!(
        t.lookup("usr/libexec/private").is_none(),
        "a removed directory takes its content"
    );
    assert!(!pkg.owned_dirs.contains("usr/libexec/private"));
    assert!(t.lookup("usr/bin/tool").is_some());
}

#[test]
fn cache_hits_and_misses() {
    let (tmp, repo) = setup();
    let cache = tmp.path().join("cache");
    let rpm = everything(tmp.path(), CompressionWithLevel::Zstd(3));
    let opts = ImportOpts::default();
    let (first, hit) = import_rpm(&repo, &rpm, &opts, &users(), Some(&cache)).unwrap();
    assert!(!hit);
    let (second, hit) = import_rpm(&repo, &rpm, &opts, &users(), Some(&cache)).unwrap();
    assert!(hit);
    assert_eq!(first.tree, second.tree);
    assert_eq!(
        (
            first.nevra,
            first.scriptlets,
            first.files,
            first.bytes,
            first.owned_dirs
        ),
        (
            second.nevra,
            second.scriptlets,
            second.files,
            second.bytes,
            second.owned_dirs
        )
    );
    // Other options or users: another key.
    let nodocs = ImportOpts {
        documentation: false,
        ..ImportOpts::default()
    };
    assert!(
        !import_rpm(&repo, &rpm, &nodocs, &users(), Some(&cache))
            .unwrap()
            .1
    );
    assert!(
        !import_rpm(&repo, &rpm, &opts, &Users::root_only(), Some(&cache))
            .unwrap()
            .1
    );
    // A file object gone from the repository: a miss, and the import repairs it.
    let victim = *file(&second.tree, "usr/bin/tool");
    fs::remove_file(repo.object_path(&victim, arbor_repo::ObjectType::File)).unwrap();
    assert!(
        !import_rpm(&repo, &rpm, &opts, &users(), Some(&cache))
            .unwrap()
            .1
    );
    assert!(
        import_rpm(&repo, &rpm, &opts, &users(), Some(&cache))
            .unwrap()
            .1
    );
    // A garbled cache entry: a miss, not an error.
    for e in fs::read_dir(cache.join("imports")).unwrap() {
        fs::write(e.unwrap().path(), b"{not json").unwrap();
    }
    assert!(
        !import_rpm(&repo, &rpm, &opts, &users(), Some(&cache))
            .unwrap()
            .1
    );
}

/// The shared cache (`--cachedir s3://…`) gives an empty runner the import made by
/// another, with every object; a pack that fails verification (a flipped byte in a
/// content object, a truncated pack, another RPM's entry) is refused, the package is
/// imported as if missing, and the pack replaced.
#[test]
fn shared_cache_gives_an_empty_runner_the_import_and_refuses_bad_packs() {
    use crate::shared::testing::DirCache;
    use crate::shared::SharedCache;
    use std::sync::atomic::Ordering::Relaxed;
    use std::sync::Arc;

    let tmp = tempfile::tempdir().unwrap();
    let rpm = everything(tmp.path(), CompressionWithLevel::Zstd(3));
    let sha = Checksum::of(&fs::read(&rpm).unwrap());
    let runner = |name: &str, shared: &Arc<DirCache>| {
        fs::create_dir_all(tmp.path().join(name)).unwrap();
        let repo = Repo::init(&tmp.path().join(name).join("repo")).unwrap();
        let cache = tmp.path().join(name).join("cache");
        let opts = ImportOpts {
            shared: Some(shared.clone() as Arc<dyn SharedCache>),
            ..ImportOpts::default()
        };
        let (pkg, hit) =
            import_rpm_known(&repo, &rpm, &opts, &users(), Some(&cache), Some(&sha)).unwrap();
        (repo, pkg, hit)
    };
    let blobs = tmp.path().join("shared");
    let a = Arc::new(DirCache::new(&blobs));
    let (repo_a, pkg_a, hit) = runner("a", &a);
    assert!(!hit);
    assert_eq!(a.stats.imports_stored.load(Relaxed), 1);
    let key = cache::key(&sha, &ImportOpts::default(), &users());
    let pack_path = blobs.join(crate::shared::import_key(&key));
    let good = fs::read(&pack_path).unwrap();

    let b = Arc::new(DirCache::new(&blobs));
    let (repo_b, pkg_b, hit) = runner("b", &b);
    assert!(
        hit,
        "the empty runner takes the import from the shared cache"
    );
    assert_eq!(
        (
            b.stats.imports_fetched.load(Relaxed),
            b.stats.imports_stored.load(Relaxed)
        ),
        (1, 0)
    );
    assert_eq!(pkg_a.tree, pkg_b.tree);
    assert_eq!((pkg_a.files, pkg_a.bytes), (pkg_b.files, pkg_b.bytes));
    for (path, c) in pkg_b.tree.files_recursive() {
        let object = |r: &Repo| fs::read(r.object_path(&c, arbor_repo::ObjectType::File));
        assert_eq!(object(&repo_a).unwrap(), object(&repo_b).unwrap(), "{path}");
    }
    assert!(repo_b
        .fsck(&arbor_repo::progress::NoProgress)
        .unwrap()
        .errors
        .is_empty());

    // Bad packs: refused, imported instead, replaced by a good one.
    let flipped = {
        let mut p = good.clone();
        let at = p.len() - 100; // inside the last content object
        p[at] ^= 0x40;
        p
    };
    let other_rpm = {
        let mut p = good.clone();
        let hex = sha.to_hex();
        let text = String::from_utf8_lossy(&p[16..]).into_owned();
        let at = 16 + text.find(&hex).unwrap();
        p[at] = if p[at] == b'0' { b'1' } else { b'0' };
        p
    };
    let first_record = 16 + u64::from_le_bytes(good[8..16].try_into().unwrap()) as usize;
    let unknown_type = {
        let mut p = good.clone();
        p[first_record] = 9;
        p
    };
    let huge_length = {
        let mut p = good.clone();
        p[first_record + 33..first_record + 41].copy_from_slice(&u64::MAX.to_le_bytes());
        p
    };
    for (i, bad) in [
        flipped,
        good[..good.len() / 2].to_vec(),
        other_rpm,
        [good.clone(), vec![0]].concat(),
        unknown_type,
        huge_length,
        b"ARBORPK1".to_vec(),
    ]
    .into_iter()
    .enumerate()
    {
        fs::write(&pack_path, &bad).unwrap();
        let c = Arc::new(DirCache::new(&blobs));
        let (repo_c, pkg_c, hit) = runner(&format!("c{i}"), &c);
        assert!(!hit, "bad pack {i} was taken");
        assert_eq!(c.stats.rejected.load(Relaxed), 1, "bad pack {i}");
        assert_eq!(c.stats.imports_stored.load(Relaxed), 1, "bad pack {i}");
        assert_eq!(pkg_c.tree, pkg_a.tree);
        assert_eq!(fs::read(&pack_path).unwrap(), good, "bad pack {i} replaced");
        assert!(repo_c
            .fsck(&arbor_repo::progress::NoProgress)
            .unwrap()
            .errors
            .is_empty());
    }

    // Two empty directories share a dirtree, not their dirmeta: the pack carries both.
    let mut b = builder("twins", CompressionWithLevel::Zstd(3));
    b.with_dir_entry(FileOptions::dir("/srv/open").permissions(0o755))
        .unwrap()
        .with_dir_entry(FileOptions::dir("/srv/closed").permissions(0o700))
        .unwrap();
    let twins = write_rpm(tmp.path(), &mut b);
    let sha = Checksum::of(&fs::read(&twins).unwrap());
    let blobs = tmp.path().join("shared-twins");
    let mut trees = Vec::new();
    for name in ["t1", "t2"] {
        fs::create_dir_all(tmp.path().join(name)).unwrap();
        let repo = Repo::init(&tmp.path().join(name).join("repo")).unwrap();
        let sc = Arc::new(DirCache::new(&blobs));
        let opts = ImportOpts {
            shared: Some(sc.clone() as Arc<dyn SharedCache>),
            ..ImportOpts::default()
        };
        let cache = tmp.path().join(name).join("cache");
        let (pkg, hit) =
            import_rpm_known(&repo, &twins, &opts, &users(), Some(&cache), Some(&sha)).unwrap();
        assert_eq!(hit, name == "t2", "{name}: {:?}", sc.stats);
        assert_eq!(sc.stats.rejected.load(Relaxed), 0, "{name}");
        trees.push(pkg.tree);
    }
    assert_eq!(trees[0], trees[1]);
    assert_ne!(
        dir_mode(&trees[1], "srv/open"),
        dir_mode(&trees[1], "srv/closed")
    );
}

/// The import_pack fuzz target's seeds (made by fuzz/make-seeds.sh from a real archive
/// repository) are sound packs.
#[test]
fn fuzz_pack_seeds_unpack() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus/import_pack");
    for name in ["objects", "metadata", "empty"] {
        let bytes = fs::read(dir.join(name)).unwrap();
        fuzz::pack(&bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
    }
    // (A flipped byte is the test above's: here the objects are already in the
    // process's repository, and a pack's copy of an object present is not read.)
    assert!(fuzz::pack(b"ARBORPK1").is_err());
}
