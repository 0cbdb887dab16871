//! RPM import integration tests: `arbor import-rpms` against the oracle
//! `rpm -i --root DIR --nodeps --noscripts …` of the same RPMs after rpm-ostree's path
//! translations, checked out with the real `ostree` client and compared entry by entry
//! (type, mode, owner, size, content, symlink target, `security.capability`).
//!
//! Needs the corpus (`../shared/corpus/make-corpus.sh` → `/var/tmp/corpus`, or
//! `ARBOR_CORPUS`), `rpm`, `ostree`, and root (owners, setuid bits and capabilities).

mod util {
    pub use arbor_tests::*;
}

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use arbor_repo::Checksum;
use util::{arbor, ostree, run, tempdir};

fn corpus() -> PathBuf {
    let dir =
        PathBuf::from(std::env::var("ARBOR_CORPUS").unwrap_or_else(|_| "/var/tmp/corpus".into()));
    assert!(
        dir.join("tiny/Packages").is_dir(),
        "corpus not found at {}: build it with ../shared/corpus/make-corpus.sh or set ARBOR_CORPUS",
        dir.display()
    );
    dir
}

/// The one RPM of package `name` in corpus repo `repo` (`tiny`, `v1`, `v2`).
fn rpm_of(repo: &str, name: &str) -> PathBuf {
    corpus();
    util::corpus::rpm_path(repo, name)
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// `rpm -i` of `rpms` into a fresh root, then what rpm-ostree does to paths: `etc` →
/// `usr/etc`, `boot` → `usr/lib/ostree-boot`, no `var` or `run`. With `etc` (a dir
/// holding passwd and group), those are installed first so rpm resolves owners.
fn oracle(rpms: &[PathBuf], etc: Option<&Path>, excludedocs: bool) -> util::TempDir {
    let root = tempdir();
    let r = root.path();
    if let Some(etc) = etc {
        fs::create_dir_all(r.join("etc")).unwrap();
        for f in ["passwd", "group"] {
            fs::copy(etc.join(f), r.join("etc").join(f)).unwrap();
        }
    }
    let rpms: Vec<&Path> = rpms.iter().map(PathBuf::as_path).collect();
    let extra: &[&str] = if excludedocs { &["--excludedocs"] } else { &[] };
    util::rpm_install(r, &rpms, extra);
    fs::create_dir_all(r.join("usr/lib")).unwrap();
    for (from, to) in [("etc", "usr/etc"), ("boot", "usr/lib/ostree-boot")] {
        if r.join(from).exists() {
            fs::rename(r.join(from), r.join(to)).unwrap();
        }
    }
    for gone in ["var", "run"] {
        if r.join(gone).exists() {
            fs::remove_dir_all(r.join(gone)).unwrap();
        }
    }
    root
}

/// One line per entry: type, mode, uid, gid, size, content hash or link target, and
/// the `security.capability` xattr; `usr/lib/rpm-ostree` (tmpfiles.d) left out.
fn dump(root: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for e in fs::read_dir(&dir).unwrap() {
            let p = e.unwrap().path();
            let rel = p.strip_prefix(root).unwrap().display().to_string();
            if rel == "usr/lib/rpm-ostree" {
                continue;
            }
            let m = fs::symlink_metadata(&p).unwrap();
            let mut caps = vec![0u8; 64];
            let caps = match rustix::fs::lgetxattr(&p, "security.capability", &mut caps) {
                Ok(n) => caps[..n].iter().map(|b| format!("{b:02x}")).collect(),
                Err(_) => "-".to_string(),
            };
            let what = if m.file_type().is_symlink() {
                format!("-> {}", fs::read_link(&p).unwrap().display())
            } else if m.is_dir() {
                stack.push(p.clone());
                String::new()
            } else {
                format!("{} {}", m.len(), Checksum::of(&fs::read(&p).unwrap()))
            };
            let mode = if m.file_type().is_symlink() {
                0o120777
            } else {
                m.mode()
            };
            out.push(format!(
                "/{rel} {mode:o} {}:{} {caps} {what}",
                m.uid(),
                m.gid()
            ));
        }
    }
    out.sort();
    out
}

/// Lines only in `a`, lines only in `b` (for readable assertion messages).
fn diff(a: &[String], b: &[String]) -> String {
    let only = |x: &[String], y: &[String]| -> Vec<String> {
        x.iter()
            .filter(|l| y.binary_search(l).is_err())
            .take(20)
            .cloned()
            .collect()
    };
    format!(
        "only in rpm -i:\n{}\nonly in arbor:\n{}",
        only(a, b).join("\n"),
        only(b, a).join("\n")
    )
}

struct Imported {
    dir: util::TempDir,
    repo: PathBuf,
}

/// `arbor import-rpms` into a fresh archive repo, checked out by the real ostree.
fn import(rpms: &[PathBuf], extra: &[&str]) -> (Imported, util::Run) {
    let dir = tempdir();
    let repo = dir.path().join("repo");
    ostree(&["init", "--mode=archive", &format!("--repo={}", s(&repo))]).ok();
    let mut args = vec!["import-rpms", "--repo", s(&repo), "-b", "test/import"];
    args.extend_from_slice(extra);
    args.extend(rpms.iter().map(|p| s(p)));
    let r = arbor(&args);
    (Imported { dir, repo }, r)
}

impl Imported {
    fn checkout(&self) -> PathBuf {
        let co = self.dir.path().join("co");
        ostree(&[
            &format!("--repo={}", s(&self.repo)),
            "checkout",
            "test/import",
            s(&co),
        ])
        .ok();
        co
    }

    fn fsck(&self) {
        ostree(&[&format!("--repo={}", s(&self.repo)), "fsck"]).ok();
    }
}

fn tiny() -> Vec<PathBuf> {
    ["tiny", "tiny-app", "tiny-extras", "tiny-libs"]
        .iter()
        .map(|n| rpm_of("tiny", n))
        .collect()
}

#[test]
fn tiny_matches_rpm_install() {
    let rpms = tiny();
    let (imp, r) = import(&rpms, &[]);
    r.ok();
    imp.fsck();
    let co = imp.checkout();
    let want = dump(oracle(&rpms, None, false).path());
    let got = dump(&co);
    assert_eq!(want, got, "{}", diff(&want, &got));

    // The edge cases, spelled out: caps, hardlinks, ghosts, setgid with an unknown group.
    let line = |p: &str| {
        got.iter()
            .find(|l| l.starts_with(&format!("{p} ")))
            .cloned()
    };
    let cap = line("/usr/libexec/tiny/cap-helper").unwrap();
    assert!(
        cap.contains(" 0100000200240000000000000000000000000000 "),
        "{cap}"
    );
    let multi: Vec<String> = (1..=5)
        .map(|i| {
            line(&format!("/usr/share/tiny/multi-{i}"))
                .unwrap()
                .split_once(' ')
                .unwrap()
                .1
                .to_string()
        })
        .collect();
    assert!(multi.iter().all(|m| m == &multi[0]), "{multi:?}");
    assert!(line("/usr/share/tiny/big-sparse.img")
        .unwrap()
        .contains(" 33554432 "));
    assert!(line("/var/log/tiny.log").is_none() && line("/usr/etc/tiny/tiny.conf").is_some());
    assert!(line("/usr/libexec/tiny/sgid-helper")
        .unwrap()
        .contains(" 100755 0:0 "));
    assert_eq!(
        fs::read_to_string(co.join("usr/lib/rpm-ostree/tmpfiles.d/tiny.conf")).unwrap(),
        "d /var/lib/tiny 2775 root tinygrp - -\nd /var/tmp/tiny-spool 1777 root root - -\n"
    );
    assert!(
        !co.join("usr/lib/rpm-ostree/tmpfiles.d/tiny-extras.conf")
            .exists(),
        "%ghost %dir"
    );
}

#[test]
fn tiny_without_docs_matches_rpm_excludedocs() {
    let rpms = tiny();
    let (imp, r) = import(&rpms, &["--no-docs"]);
    r.ok();
    let got = dump(&imp.checkout());
    let want = dump(oracle(&rpms, None, true).path());
    assert_eq!(want, got, "{}", diff(&want, &got));
    assert!(got
        .iter()
        .any(|l| l.starts_with("/usr/share/licenses/tiny-extras/LICENSE ")));
    assert!(!got
        .iter()
        .any(|l| l.starts_with("/usr/share/doc/tiny-extras/README ")));
}

/// The v1 packages with the hardest content: the kernel (big modules tree; its package
/// name changes with Debian's kernel ABI, so it is found by its files), systemd,
/// coreutils, setuid/setgid tools with the `shadow` group, tzdata (hundreds of
/// symlinks and hardlinks), perl (deep trees), and base-passwd/base-files themselves.
const V1_SAMPLE: &[&str] = &[
    "base-passwd",
    "base-files",
    "coreutils",
    "systemd",
    "libc6",
    "bash",
    "dash",
    "sudo",
    "passwd",
    "login",
    "util-linux",
    "mount",
    "tzdata",
    "perl-base",
    "openssh-server",
    "dbus",
    "iputils-ping",
];

#[test]
fn v1_sample_matches_rpm_install() {
    let kernel = util::corpus::kernel("v1").pkg.name;
    let rpms: Vec<PathBuf> = V1_SAMPLE
        .iter()
        .copied()
        .chain([kernel.as_str()])
        .map(|n| rpm_of("v1", n))
        .collect();
    let etc = tempdir();
    let base = tempdir();
    let cpio = format!(
        "rpm2cpio {} | (cd {} && cpio -idm --quiet ./etc/passwd ./etc/group)",
        s(&rpm_of("v1", "base-passwd")),
        s(base.path())
    );
    run("sh", &["-c", &cpio]).ok();
    for f in ["passwd", "group"] {
        fs::copy(base.path().join("etc").join(f), etc.path().join(f)).unwrap();
    }
    let passwd = etc.path().join("passwd");
    let group = etc.path().join("group");
    let (imp, r) = import(&rpms, &["--passwd", s(&passwd), "--group", s(&group)]);
    r.ok();
    imp.fsck();
    let got = dump(&imp.checkout());
    let want = dump(oracle(&rpms, Some(etc.path()), false).path());
    assert_eq!(want, got, "{}", diff(&want, &got));
    // Owners really were mapped: chage is root:shadow 2755 in Debian.
    let chage = got
        .iter()
        .find(|l| l.starts_with("/usr/bin/chage "))
        .unwrap();
    assert!(chage.contains(" 102755 0:42 "), "{chage}");
}

#[test]
fn reimport_uses_the_cache() {
    let rpms = tiny();
    let dir = tempdir();
    let repo = dir.path().join("repo");
    let cache = dir.path().join("cache");
    arbor(&["init", "--repo", s(&repo)]).ok();
    let go = || {
        let mut args = vec![
            "import-rpms",
            "--repo",
            s(&repo),
            "-b",
            "t",
            "--cachedir",
            s(&cache),
        ];
        args.extend(rpms.iter().map(|p| s(p)));
        arbor(&args)
    };
    let cold = go();
    cold.ok();
    assert!(cold.stderr.contains("(0 cache hits"), "{}", cold.stderr);
    let first = arbor(&["ls", "--repo", s(&repo), "-R", "t"]);
    let warm = go();
    warm.ok();
    assert!(warm.stderr.contains("(4 cache hits"), "{}", warm.stderr);
    assert_ne!(cold.stdout, warm.stdout, "a second commit");
    assert_eq!(
        first.ok(),
        arbor(&["ls", "--repo", s(&repo), "-R", "t"]).ok(),
        "same tree"
    );
    arbor(&["fsck", "--repo", s(&repo)]).ok();
}

#[test]
fn corrupt_and_truncated_rpms_fail_cleanly() {
    let dir = tempdir();
    let repo = dir.path().join("repo");
    arbor(&["init", "--repo", s(&repo)]).ok();
    let good = fs::read(rpm_of("tiny", "tiny")).unwrap();
    let bad = dir.path().join("broken-tiny.rpm");
    let mut cases: Vec<(String, Vec<u8>)> = vec![
        (
            "truncated in the header".into(),
            good[..3000.min(good.len() / 2)].to_vec(),
        ),
        (
            "truncated in the payload".into(),
            good[..good.len() - 5000].to_vec(),
        ),
        ("not an rpm".into(), b"hello\n".to_vec()),
    ];
    let mut flipped = good.clone();
    let at = good.len() - 4000;
    flipped[at] ^= 0x20;
    cases.push(("a flipped payload bit".into(), flipped));
    for (what, data) in cases {
        fs::write(&bad, &data).unwrap();
        let r = arbor(&["import-rpms", "--repo", s(&repo), "-b", "t", s(&bad)]);
        r.fails_with("broken-tiny.rpm");
        assert!(!r.stderr.contains("panicked"), "{what}: {}", r.stderr);
    }
    assert!(
        arbor(&["refs", "--repo", s(&repo)]).ok().trim().is_empty(),
        "no commit"
    );
}

#[test]
fn conflicting_files_name_both_packages() {
    // A package the corpus updates between v1 and v2 whose two builds ship a path with
    // different content (found through rpm's file digests): importing both conflicts.
    corpus();
    let (old, new, path) = util::corpus::conflicting_upgrade();
    let (_imp, r) = import(&[rpm_of("v1", &old.name), rpm_of("v2", &new.name)], &[]);
    r.fails_with("file conflict at /");
    for nevra in [&old.nevra, &new.nevra] {
        assert!(
            r.stderr.contains(nevra.as_str()),
            "{nevra} not named: {}",
            r.stderr
        );
    }
    eprintln!("conflict on {path} between {} and {}", old.nevra, new.nevra);
}
