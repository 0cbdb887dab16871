//! Static delta integration tests against the real ostree client.

mod util {
    pub use arbor_tests::*;
}

use std::fs;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Path, PathBuf};

use util::{
    arbor, edge_case_tree, ostree, set_xattr, system_python, tempdir, Client, HttpServer, TempDir,
};

const REF: &str = "main";

/// Deterministic pseudo-random bytes (xorshift), so fixtures are reproducible.
fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut s = seed | 1;
    (0..len)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s >> 24) as u8
        })
        .collect()
}

fn write(path: &Path, data: &[u8], mode: u32) {
    if let Some(p) = path.parent() {
        fs::create_dir_all(p).unwrap();
    }
    fs::write(path, data).unwrap();
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
}

/// Tree A: the shared edge-case tree plus files the B tree changes in every way a
/// delta must handle.
fn tree_a(root: &Path) {
    edge_case_tree(root);
    write(&root.join("rename-me.txt"), b"I will move\n", 0o644);
    write(&root.join("remove-me"), b"gone in B\n", 0o644);
    symlink("hello.txt", root.join("sym2file")).unwrap();
    write(&root.join("file2sym"), b"becomes a symlink\n", 0o644);
    write(&root.join("xattr-change"), b"same content\n", 0o644);
    set_xattr(&root.join("xattr-change"), "user.k", b"v1");
    write(&root.join("mode-change"), b"#!/bin/sh\n", 0o644);
    write(&root.join("big/huge.bin"), &noise(2_500_000, 1), 0o644);
    let mut lib = noise(200_000, 2);
    lib.extend_from_slice(&[0u8; 100_000]);
    write(&root.join("usr/lib/libthing.so.1"), &lib, 0o755);
}

/// Tree B: A with files added, removed, renamed, symlink↔file swaps, xattr-only and
/// mode-only changes, small edits to binaries (bsdiff) and a new directory.
fn tree_b(root: &Path) {
    tree_a(root);
    fs::rename(root.join("rename-me.txt"), root.join("renamed.txt")).unwrap();
    fs::remove_file(root.join("remove-me")).unwrap();
    fs::remove_file(root.join("sym2file")).unwrap();
    write(&root.join("sym2file"), b"now a file\n", 0o644);
    fs::remove_file(root.join("file2sym")).unwrap();
    symlink("sub/deeper", root.join("file2sym")).unwrap();
    set_xattr(&root.join("xattr-change"), "user.k", b"v2");
    fs::set_permissions(root.join("mode-change"), fs::Permissions::from_mode(0o755)).unwrap();
    let mut huge = fs::read(root.join("big/huge.bin")).unwrap();
    huge[1000] ^= 0xff;
    huge.extend_from_slice(b"appended");
    write(&root.join("big/huge.bin"), &huge, 0o644);
    let mut data = fs::read(root.join("sub/data.bin")).unwrap();
    data[5] = 42;
    data.truncate(250_000);
    write(&root.join("sub/data.bin"), &data, 0o644);
    // A new soname: matched to libthing.so.1 by basename (fuzzy) and size.
    let mut lib = fs::read(root.join("usr/lib/libthing.so.1")).unwrap();
    fs::remove_file(root.join("usr/lib/libthing.so.1")).unwrap();
    lib[77] ^= 1;
    write(&root.join("usr/lib/libthing.so.2"), &lib, 0o755);
    write(&root.join("added.txt"), b"new in B\n", 0o644);
    write(&root.join("newdir/nested/file"), b"nested\n", 0o600);
    write(&root.join("empty-too"), b"", 0o644);
}

struct Fixture {
    _tmp: TempDir,
    dir: PathBuf,
    repo: PathBuf,
    a: String,
    b: String,
    tree_b: PathBuf,
}

impl Fixture {
    fn repo(&self) -> &str {
        self.repo.to_str().unwrap()
    }
    fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }
}

fn commit(repo: &str, tree: &Path, day: u32) -> String {
    arbor(&[
        "commit",
        "--repo",
        repo,
        "-b",
        REF,
        "--timestamp",
        &format!("2020-01-{day:02}T00:00:00Z"),
        "-s",
        &format!("day {day}"),
        tree.to_str().unwrap(),
    ])
    .ok()
    .trim()
    .to_string()
}

/// An archive repo with commits A and B (made by `arbor commit`).
fn fixture() -> Fixture {
    let tmp = tempdir();
    let dir = tmp.path().to_path_buf();
    let repo = dir.join("repo");
    let (ta, tb) = (dir.join("tree-a"), dir.join("tree-b"));
    tree_a(&ta);
    tree_b(&tb);
    let r = repo.to_str().unwrap();
    arbor(&["init", "--repo", r]).ok();
    let a = commit(r, &ta, 1);
    let b = commit(r, &tb, 2);
    assert_ne!(a, b);
    Fixture {
        _tmp: tmp,
        dir,
        repo,
        a,
        b,
        tree_b: tb,
    }
}

fn generate(repo: &str, args: &[&str]) -> serde_json::Value {
    let mut full = vec!["delta", "generate", "--repo", repo, "--json"];
    full.extend_from_slice(args);
    let out = arbor(&full);
    let line = out.ok().lines().next().expect("one JSON line").to_string();
    serde_json::from_str(&line).expect("generate --json output")
}

/// Files, symlinks and directories of a tree: (path, kind, content or target). Modes
/// and owners are left out (a bare-user `checkout -U` cannot reproduce them).
fn content_listing(root: &Path) -> Vec<String> {
    fn walk(root: &Path, rel: &Path, out: &mut Vec<String>) {
        for e in fs::read_dir(root.join(rel)).unwrap() {
            let e = e.unwrap();
            let r = rel.join(e.file_name());
            let p = root.join(&r);
            let m = fs::symlink_metadata(&p).unwrap();
            if m.file_type().is_symlink() {
                out.push(format!(
                    "l {} -> {}",
                    r.display(),
                    fs::read_link(&p).unwrap().display()
                ));
            } else if m.is_dir() {
                out.push(format!("d {}", r.display()));
                walk(root, &r, out);
            } else {
                let data = fs::read(&p).unwrap();
                let h = data.iter().fold(0xcbf29ce484222325u64, |h, b| {
                    (h ^ u64::from(*b)).wrapping_mul(0x100000001b3)
                });
                out.push(format!("- {} {} {h:016x}", r.display(), data.len()));
            }
        }
    }
    let mut out = Vec::new();
    walk(root, Path::new(""), &mut out);
    out.sort();
    out
}

/// A bare-user client repo with `origin` pointing at `url`, holding `have` if given.
fn client(f: &Fixture, name: &str, url: &str, have: Option<&str>) -> Client {
    let c = Client::host(&f.path(name), url);
    if let Some(commit) = have {
        c.ostree(&["pull-local", f.repo(), commit]).ok();
    }
    c
}

/// `arbor delta show --json NAME` in the fixture's repository.
fn show_json(f: &Fixture, name: &str) -> serde_json::Value {
    let show = arbor(&["delta", "show", "--repo", f.repo(), "--json", name]);
    serde_json::from_str(show.ok().trim()).unwrap()
}

/// Pull `rev` from origin with --require-static-deltas; it must use delta parts and
/// leave a repository that passes fsck.
fn pull_with_deltas(c: &Client, rev: &str) {
    let pull = c.ostree(&["pull", "--require-static-deltas", "origin", rev]);
    pull.ok();
    let all = format!("{}{}", pull.stdout, pull.stderr);
    assert!(
        all.contains("delta part"),
        "pull of {rev} did not use delta parts:\n{all}"
    );
    c.ostree(&["fsck"]).ok();
}

/// Pull `main` with --require-static-deltas, fsck, check out and compare with tree B.
fn pull_and_check(f: &Fixture, c: &Client) {
    pull_with_deltas(c, REF);
    let head = c.ostree(&["rev-parse", &format!("origin:{REF}")]);
    assert_eq!(head.ok().trim(), f.b);
    let co = PathBuf::from(format!("{}-checkout", c.path().display()));
    c.ostree(&["checkout", "-U", &f.b, co.to_str().unwrap()])
        .ok();
    assert_eq!(content_listing(&co), content_listing(&f.tree_b));
}

#[test]
fn from_to_delta_pulls_over_http_into_bare_user() {
    let f = fixture();
    let r = generate(f.repo(), &["--from", &f.a, "--to", &f.b]);
    assert_eq!(r["name"], format!("{}-{}", f.a, f.b));
    assert!(r["bsdiff_objects"].as_u64().unwrap() >= 3, "{r}");
    assert!(r["parts"].as_u64().unwrap() >= 1);
    // Every object checks out, and the delta is complete.
    arbor(&[
        "delta",
        "verify",
        "--repo",
        f.repo(),
        &format!("{}-{}", f.a, f.b),
    ])
    .ok();
    // Deterministic: regenerating (here one job at a time) gives the same superblock.
    let digests = || {
        arbor(&["delta", "list", "--repo", f.repo(), "--json"])
            .ok()
            .to_string()
    };
    let before = digests();
    generate(
        f.repo(),
        &["--from", &f.a, "--to", &f.b, "--memory-limit", "1K"],
    );
    assert_eq!(digests(), before);
    let server = HttpServer::start(&f.repo);
    let c = client(&f, "client", &server.url(), Some(&f.a));
    pull_and_check(&f, &c);
}

#[test]
fn fallbacks_and_bsdiff_limit_over_http() {
    let f = fixture();
    // huge.bin (2.5 MB) exceeds the 1 MB bsdiff limit and the 1 MB fallback size.
    let r = generate(
        f.repo(),
        &[
            "--from",
            &f.a,
            "--to",
            &f.b,
            "--max-bsdiff-size",
            "1",
            "--min-fallback-size",
            "1",
            "--max-chunk-size",
            "1",
        ],
    );
    assert_eq!(r["fallbacks"], 1, "{r}");
    assert!(r["parts"].as_u64().unwrap() >= 1);
    let info = show_json(&f, r["name"].as_str().unwrap());
    assert_eq!(info["fallbacks"][0]["usize"], 2_500_008);
    assert!(info["parts"]
        .as_array()
        .unwrap()
        .iter()
        .all(|p| p["compression"] == "x"));
    let server = HttpServer::start(&f.repo);
    let c = client(&f, "client", &server.url(), Some(&f.a));
    pull_and_check(&f, &c);
}

#[test]
fn scratch_delta_pulls_into_empty_repo() {
    let f = fixture();
    let r = generate(
        f.repo(),
        &["--empty", "--to", &f.b, "--max-chunk-size", "1"],
    );
    assert_eq!(r["name"], f.b);
    assert!(
        r["parts"].as_u64().unwrap() >= 2,
        "small chunk size gives several parts: {r}"
    );
    assert_eq!(r["bsdiff_objects"], 0);
    arbor(&["delta", "verify", "--repo", f.repo(), &f.b]).ok();
    let server = HttpServer::start(&f.repo);
    let c = client(&f, "client", &server.url(), None);
    pull_and_check(&f, &c);
}

#[test]
fn ostree_shows_and_applies_arbor_deltas_offline() {
    let f = fixture();
    let name = format!("{}-{}", f.a, f.b);
    // apply-offline refuses fallbacks: keep everything in parts.
    let r = generate(
        f.repo(),
        &["--from", &f.a, "--to", &f.b, "--min-fallback-size", "0"],
    );
    let show = ostree(&[
        &format!("--repo={}", f.repo()),
        "static-delta",
        "show",
        &name,
    ]);
    let text = show.ok();
    assert!(text.contains(&format!("To: {}", f.b)), "{text}");
    assert!(text.contains("bspatch="), "{text}");
    assert!(!text.contains("bspatch=0"), "{text}");
    let list = ostree(&[&format!("--repo={}", f.repo()), "static-delta", "list"]);
    assert!(list.ok().contains(&name));
    let c = client(&f, "offline", "http://127.0.0.1:9/", Some(&f.a));
    let dir = PathBuf::from(r["path"].as_str().unwrap());
    c.ostree(&["static-delta", "apply-offline", dir.to_str().unwrap()])
        .ok();
    c.ostree(&["fsck"]).ok();
    let co = f.path("offline-co");
    c.ostree(&["checkout", "-U", &f.b, co.to_str().unwrap()])
        .ok();
    assert_eq!(content_listing(&co), content_listing(&f.tree_b));

    // Inline parts: a single-file delta, applied from its superblock.
    let r = generate(
        f.repo(),
        &[
            "--from",
            &f.a,
            "--to",
            &f.b,
            "--min-fallback-size",
            "0",
            "--inline-parts",
        ],
    );
    let sb = PathBuf::from(r["path"].as_str().unwrap()).join("superblock");
    assert!(
        !sb.with_file_name("0").exists(),
        "inline delta left a part file"
    );
    let c2 = client(&f, "offline-inline", "http://127.0.0.1:9/", Some(&f.a));
    c2.ostree(&["static-delta", "apply-offline", sb.to_str().unwrap()])
        .ok();
    c2.ostree(&["fsck"]).ok();
    arbor(&["delta", "verify", "--repo", f.repo(), &name]).ok();
}

#[test]
fn python_reference_verifier_accepts_arbor_delta() {
    let f = fixture();
    generate(
        f.repo(),
        &["--from", &f.a, "--to", &f.b, "--min-fallback-size", "0"],
    );
    let tool = util::workspace_root().join("../shared/spec/tools/verify_delta.py");
    let out = util::run(
        system_python(),
        &[tool.to_str().unwrap(), f.repo(), &f.a, &f.b],
    );
    let text = out.ok();
    assert!(
        text.contains("superblock reencode identical: True"),
        "{text}"
    );
    assert!(
        text.contains("embedded commit sha256 == to: True"),
        "{text}"
    );
    assert!(
        !text.contains("False"),
        "reference verifier found a problem:\n{text}"
    );
    assert!(
        text.contains("c -> csum ok True"),
        "no bsdiff object was checked:\n{text}"
    );
}

#[test]
fn unchanged_tree_gives_an_empty_delta_that_pulls() {
    let tmp = tempdir();
    let dir = tmp.path();
    let tree = dir.join("tree");
    tree_a(&tree);
    let repo = dir.join("repo");
    let r = repo.to_str().unwrap();
    arbor(&["init", "--repo", r]).ok();
    let a = commit(r, &tree, 1);
    let b = commit(r, &tree, 2);
    let g = generate(r, &["--from", &a, "--to", &b]);
    assert_eq!(g["objects"], 0, "{g}");
    arbor(&["delta", "verify", "--repo", r, &format!("{a}-{b}")]).ok();
    let server = HttpServer::start(&repo);
    let c = Client::host(&dir.join("client"), &server.url());
    c.ostree(&["pull-local", r, &a]).ok();
    c.ostree(&["pull", "--require-static-deltas", "origin", REF])
        .ok();
    assert_eq!(c.ostree(&["rev-parse", "origin:main"]).ok().trim(), b);
    c.ostree(&["fsck"]).ok();
}

#[test]
fn errors_are_clear_and_do_not_panic() {
    let f = fixture();
    let missing = "0".repeat(64);
    arbor(&[
        "delta",
        "generate",
        "--repo",
        f.repo(),
        "--from",
        &missing,
        "--to",
        &f.b,
    ])
    .fails_with(&format!(
        "commit {missing}, the delta's from-commit, is not in repository"
    ));
    arbor(&["delta", "generate", "--repo", f.repo(), "--to", &f.b]).fails_with("--empty");
    arbor(&["delta", "show", "--repo", f.repo(), "not-a-delta"])
        .fails_with("neither an existing path nor a delta name");
    arbor(&["delta", "verify", "--repo", f.repo(), &f.b]).fails_with("no static delta");
    // A directory without a superblock: the OS error once, after the path it is about.
    let empty = f.path("empty-delta");
    fs::create_dir_all(&empty).unwrap();
    let r = arbor(&["delta", "show", "--repo", f.repo(), empty.to_str().unwrap()]);
    r.fails_with("superblock: No such file or directory");
    assert_eq!(r.stderr.matches("No such file").count(), 1, "{}", r.stderr);

    let r = generate(f.repo(), &["--from", &f.a, "--to", &f.b]);
    let name = r["name"].as_str().unwrap().to_string();
    let dir = PathBuf::from(r["path"].as_str().unwrap());

    // A client repo without the from-commit cannot apply it.
    let other = f.path("other");
    arbor(&["init", "--repo", other.to_str().unwrap()]).ok();
    arbor(&[
        "delta",
        "apply",
        "--repo",
        other.to_str().unwrap(),
        dir.to_str().unwrap(),
    ])
    .fails_with("the delta's from-commit, is not in repository");

    // Corrupt part: one byte flipped.
    let part = dir.join("0");
    let good = fs::read(&part).unwrap();
    let mut bad = good.clone();
    let mid = bad.len() / 2;
    bad[mid] ^= 0x55;
    fs::write(&part, &bad).unwrap();
    arbor(&["delta", "verify", "--repo", f.repo(), &name]).fails_with("part 0: checksum mismatch");
    arbor(&["delta", "show", "--repo", f.repo(), &name]).fails_with("part 0");
    // Truncated part.
    fs::write(&part, &good[..good.len() - 3]).unwrap();
    arbor(&["delta", "verify", "--repo", f.repo(), &name]).fails_with("truncated or replaced part");
    fs::remove_file(&part).unwrap();
    arbor(&["delta", "verify", "--repo", f.repo(), &name]).fails_with("part 0: cannot open");
    fs::write(&part, &good).unwrap();
    arbor(&["delta", "verify", "--repo", f.repo(), &name]).ok();

    // Truncated superblock.
    let sb = dir.join("superblock");
    let data = fs::read(&sb).unwrap();
    for cut in [0, 1, 7, data.len() / 2, data.len() - 1] {
        fs::write(&sb, &data[..cut]).unwrap();
        arbor(&["delta", "show", "--repo", f.repo(), &name]).fails_with("cannot parse");
        arbor(&["delta", "verify", "--repo", f.repo(), &name]).fails_with("superblock");
        arbor(&["delta", "apply", "--repo", f.repo(), dir.to_str().unwrap()])
            .fails_with("superblock");
    }
    // Garbage of the right size, the wrong delta's superblock.
    fs::write(&sb, vec![0xa5u8; data.len()]).unwrap();
    arbor(&["delta", "verify", "--repo", f.repo(), &name]).fails_with("superblock");
    fs::write(&sb, &data).unwrap();
    arbor(&["delta", "verify", "--repo", f.repo(), &name]).ok();
    // A part whose header allows more memory than arbor is given is refused before it
    // is decompressed; the superblock must be a regular file (a device never ends).
    for cmd in ["show", "verify"] {
        arbor(&[
            "delta",
            cmd,
            "--repo",
            f.repo(),
            "--memory-limit",
            "1K",
            &name,
        ])
        .fails_with("more than the memory limit of 1024 bytes");
    }
    arbor(&["delta", "show", "--repo", f.repo(), "/dev/zero"]).fails_with("not a regular file");
}

#[test]
fn reads_verifies_and_applies_stock_ostree_deltas() {
    let f = fixture();
    let name = format!("{}-{}", f.a, f.b);
    // Stock generator, default options (rollsum, bsdiff, S ops, big-file fallbacks).
    ostree(&[
        &format!("--repo={}", f.repo()),
        "static-delta",
        "generate",
        "--from",
        &f.a,
        "--to",
        &f.b,
    ])
    .ok();
    ostree(&[
        &format!("--repo={}", f.repo()),
        "static-delta",
        "generate",
        "--empty",
        "--to",
        &f.b,
    ])
    .ok();
    let list = arbor(&["delta", "list", "--repo", f.repo()]);
    assert!(list.ok().contains(&name));
    arbor(&["delta", "verify", "--repo", f.repo(), &name]).ok();
    arbor(&["delta", "verify", "--repo", f.repo(), &f.b]).ok();
    let info = show_json(&f, &name);
    assert_eq!(info["to"], f.b);

    // Apply into an archive repository holding only A, then compare with the source.
    let target = f.path("target");
    let t = target.to_str().unwrap();
    ostree(&[&format!("--repo={}", t), "init", "--mode=archive"]).ok();
    ostree(&[&format!("--repo={}", t), "pull-local", f.repo(), &f.a]).ok();
    // Stock deltas carry fallbacks for big files; offline they must already be present.
    let delta_dir = {
        for fb in info["fallbacks"].as_array().unwrap() {
            let c = fb["checksum"].as_str().unwrap();
            let rel = format!("objects/{}/{}.filez", &c[..2], &c[2..]);
            fs::create_dir_all(target.join(&rel).parent().unwrap()).unwrap();
            fs::copy(f.repo.join(&rel), target.join(&rel)).unwrap();
        }
        find_superblock_dir(&f.repo, &f.a, &f.b)
    };
    let applied = arbor(&["delta", "apply", "--repo", t, delta_dir.to_str().unwrap()]);
    assert_eq!(applied.ok().trim(), f.b);
    ostree(&[&format!("--repo={}", t), "fsck"]).ok();
    let ls = |repo: &str| {
        ostree(&[&format!("--repo={}", repo), "ls", "-R", "-C", "-X", &f.b])
            .ok()
            .to_string()
    };
    assert_eq!(ls(t), ls(f.repo()));

    // Big-endian sizes (--set-endianness=B) and an inline (single-file) stock delta.
    ostree(&[
        &format!("--repo={}", f.repo()),
        "static-delta",
        "generate",
        "--from",
        &f.a,
        "--to",
        &f.b,
        "--set-endianness=B",
        "--inline",
        "--min-fallback-size=0",
    ])
    .ok();
    let info = show_json(&f, &name);
    assert_eq!(info["endianness"], "B");
    assert!(info["parts"][0]["inline"].as_bool().unwrap());
    arbor(&["delta", "verify", "--repo", f.repo(), &name]).ok();
}

/// The delta directory of `from`-`to` under `repo` (found, not computed, so the test
/// does not depend on arbor's naming code).
fn find_superblock_dir(repo: &Path, from: &str, to: &str) -> PathBuf {
    let out = arbor(&["delta", "list", "--repo", repo.to_str().unwrap(), "--json"]);
    assert!(out.ok().contains(&format!("{from}-{to}")));
    for p in fs::read_dir(repo.join("deltas")).unwrap() {
        for d in fs::read_dir(p.unwrap().path()).unwrap() {
            let d = d.unwrap().path();
            if d.file_name().unwrap().to_str().unwrap().contains('-') {
                return d;
            }
        }
    }
    panic!("no from-to delta under {}", repo.display());
}

#[test]
fn reads_python_reference_deltas_big_endian_and_uncompressed_inline() {
    let tmp = tempdir();
    let tool = util::workspace_root().join("../shared/spec/tools/build_test_repo.py");
    for variant in ["a", "b"] {
        // a: from→to with 'B' endianness and xz parts; b: inline uncompressed parts.
        let repo = tmp.path().join(format!("py-{variant}"));
        let out = util::run(
            system_python(),
            &[tool.to_str().unwrap(), repo.to_str().unwrap(), variant],
        );
        let text = out.ok().to_string();
        let mut lines = text.lines();
        let (a, b) = (lines.next().unwrap().trim(), lines.next().unwrap().trim());
        let r = repo.to_str().unwrap();
        let v = arbor(&[
            "delta",
            "verify",
            "--repo",
            r,
            "--json",
            &format!("{a}-{b}"),
        ]);
        let j: serde_json::Value = serde_json::from_str(v.ok().trim()).unwrap();
        assert_eq!(j["ok"], true);
        // The reference delta uses rollsum-style ops too.
        assert!(j["ops"]["write"].as_u64().unwrap() > 0, "{j}");
        assert!(j["ops"]["bspatch"].as_u64().unwrap() > 0, "{j}");
        arbor(&["delta", "verify", "--repo", r, a]).ok();
        let show = arbor(&["delta", "show", "--repo", r, "--json", &format!("{a}-{b}")]);
        let s: serde_json::Value = serde_json::from_str(show.ok().trim()).unwrap();
        if variant == "a" {
            assert_eq!(s["endianness"], "B");
        } else {
            assert_eq!(s["parts"][0]["compression"], "none");
            assert_eq!(s["parts"][0]["inline"], true);
        }
        // Apply into an archive repo holding A (o/r ops work here, unlike in ostree).
        let target = tmp.path().join(format!("target-{variant}"));
        let t = target.to_str().unwrap();
        ostree(&[&format!("--repo={}", t), "init", "--mode=archive"]).ok();
        ostree(&[&format!("--repo={}", t), "pull-local", r, a]).ok();
        let dir = find_superblock_dir(&repo, a, b);
        assert_eq!(
            arbor(&["delta", "apply", "--repo", t, dir.to_str().unwrap()])
                .ok()
                .trim(),
            b
        );
        ostree(&[&format!("--repo={}", t), "fsck"]).ok();
        let ls = |repo: &str| {
            ostree(&[&format!("--repo={}", repo), "ls", "-R", "-C", "-X", b])
                .ok()
                .to_string()
        };
        assert_eq!(ls(t), ls(r));
    }
}

#[test]
fn policy_generates_missing_deltas_from_previous_commits() {
    let tmp = tempdir();
    let dir = tmp.path();
    let repo = dir.join("repo");
    let r = repo.to_str().unwrap();
    arbor(&["init", "--repo", r]).ok();
    let mut commits = Vec::new();
    for day in 1..=4u32 {
        let t = dir.join(format!("t{day}"));
        write(
            &t.join("file"),
            format!("version {day}\n").as_bytes(),
            0o644,
        );
        write(&t.join("bin"), &noise(50_000 + day as usize, 9), 0o755);
        commits.push(commit(r, &t, day));
    }
    let head = commits[3].clone();
    let out = arbor(&[
        "delta", "generate", "--repo", r, "--ref", REF, "--depth", "2", "--empty",
    ]);
    let names: Vec<String> = out.ok().lines().map(str::to_string).collect();
    assert_eq!(
        names,
        vec![
            format!("{}-{head}", commits[2]),
            format!("{}-{head}", commits[1]),
            head.clone()
        ]
    );
    // Second run: everything exists.
    let again = arbor(&[
        "delta", "generate", "--repo", r, "--ref", REF, "--depth", "2", "--empty",
    ]);
    assert_eq!(again.ok().trim(), "");
    // Deeper: only the new one is generated.
    let deeper = arbor(&[
        "delta", "generate", "--repo", r, "--ref", REF, "--depth", "5",
    ]);
    assert_eq!(deeper.ok().trim(), format!("{}-{head}", commits[0]));
    let list = arbor(&["delta", "list", "--repo", r]);
    assert_eq!(list.ok().lines().count(), 4);
    // The summary advertises them.
    let summary = ostree(&[&format!("--repo={}", r), "summary", "--view"]);
    let text = summary.ok();
    for c in &commits[..3] {
        assert!(
            text.contains(&format!("{c}-{head}")),
            "summary lacks delta from {c}:\n{text}"
        );
    }
    for n in list.ok().lines() {
        arbor(&["delta", "verify", "--repo", r, n]).ok();
    }
}

/// Modified base64 of a hex checksum (spec §5.1), by Python's base64.
fn mb64(hex: &str) -> String {
    run_python(&format!(
        "import base64\nprint(base64.b64encode(bytes.fromhex('{hex}')).decode().rstrip('=').replace('/', '_'))"
    ))
    .trim()
    .to_string()
}

/// `delta-indexes/T[0:2]/T[2:].index` as `ostree static-delta reindex` writes it.
fn index_path(repo: &Path, to: &str) -> PathBuf {
    let t = mb64(to);
    repo.join("delta-indexes")
        .join(&t[..2])
        .join(format!("{}.index", &t[2..]))
}

fn run_python(code: &str) -> String {
    util::run(system_python(), &["-c", code]).ok().to_string()
}

/// The `a{sv}` of an index file, unpacked by GLib (and checked to be in normal form).
fn glib_index(path: &Path) -> String {
    run_python(&format!(
        r#"
from gi.repository import GLib
data = open({path:?}, 'rb').read()
v = GLib.Variant.new_from_bytes(GLib.VariantType('a{{sv}}'), GLib.Bytes.new(data), False)
assert v.is_normal_form(), 'not in normal form'
d = v.unpack()
print(sorted((k, bytes(x).hex()) for k, x in d['ostree.static-deltas'].items()))
"#,
        path = path.to_str().unwrap()
    ))
}

#[test]
fn delta_indexes_match_ostree_reindex_and_serve_pinned_pulls() {
    let f = fixture();
    generate(f.repo(), &["--from", &f.a, "--to", &f.b]);
    generate(f.repo(), &["--empty", "--to", &f.b]);
    generate(f.repo(), &["--empty", "--to", &f.a]);
    let ours_b = index_path(&f.repo, &f.b);
    let ours_a = index_path(&f.repo, &f.a);
    assert!(ours_b.is_file() && ours_a.is_file());
    let config = fs::read_to_string(f.repo.join("config")).unwrap();
    assert!(config.contains("indexed-deltas=true"), "{config}");
    // The same content as ostree's own reindex of the same deltas.
    let copy = f.path("repo-ostree");
    util::run("cp", &["-a", f.repo(), copy.to_str().unwrap()]).ok();
    fs::remove_dir_all(copy.join("delta-indexes")).unwrap();
    ostree(&[
        &format!("--repo={}", copy.display()),
        "static-delta",
        "reindex",
    ])
    .ok();
    for to in [&f.a, &f.b] {
        let (ours, theirs) = (
            glib_index(&index_path(&f.repo, to)),
            glib_index(&index_path(&copy, to)),
        );
        assert_eq!(ours, theirs);
    }
    assert!(glib_index(&ours_b).contains(&format!("{}-{}", f.a, f.b)));
    // A scratch delta removed: its target keeps an index without it; when a target
    // has no delta left, its index goes.
    let ta = mb64(&f.a);
    fs::remove_dir_all(f.repo.join("deltas").join(&ta[..2]).join(&ta[2..])).unwrap();
    generate(f.repo(), &["--from", &f.a, "--to", &f.b]);
    assert!(!ours_a.exists(), "stale index of a target without deltas");

    // A client pinning the commit needs no summary: it reads `config`, sees
    // indexed-deltas, and finds the delta through the index. Without the summary and
    // the index, --require-static-deltas must fail; with the index it pulls.
    fs::remove_file(f.repo.join("summary")).unwrap();
    let server = HttpServer::start(&f.repo);
    let c = client(&f, "client", &server.url(), Some(&f.a));
    let pinned = format!("{REF}@{}", f.b);
    let hidden = f.path("indexes-hidden");
    fs::rename(f.repo.join("delta-indexes"), &hidden).unwrap();
    c.ostree(&["pull", "--require-static-deltas", "origin", &pinned])
        .fails_with("delta");
    fs::rename(&hidden, f.repo.join("delta-indexes")).unwrap();
    pull_with_deltas(&c, &pinned);
    let co = f.path("client-co");
    c.ostree(&["checkout", "-U", &f.b, co.to_str().unwrap()])
        .ok();
    assert_eq!(content_listing(&co), content_listing(&f.tree_b));

    // The newer (2025.x) client, inside its chroot: pinned pulls of A (scratch-less:
    // objects) and then B through the index.
    let c = Client::newer("arbor-test-delta-index", &server.url());
    c.ostree(&["pull", "origin", &format!("{REF}@{}", f.a)])
        .ok();
    pull_with_deltas(&c, &pinned);
    let head = c.ostree(&["rev-parse", &format!("origin:{REF}")]);
    assert_eq!(head.ok().trim(), f.b);
}

#[test]
fn detached_metadata_travels_in_the_superblock() {
    let f = fixture();
    // Detached metadata on B (what a signature would be), written before the delta.
    let repo = arbor_repo::Repo::open(&f.repo).unwrap();
    let b = arbor_repo::Checksum::from_hex(&f.b).unwrap();
    let mut md = arbor_repo::gvariant::VarDict::new();
    md.insert(
        "arbor.test.detached",
        arbor_repo::gvariant::Value::str("carried by the delta"),
    );
    repo.write_commitmeta(&b, &md).unwrap();
    let r = generate(f.repo(), &["--from", &f.a, "--to", &f.b]);
    let info = show_json(&f, r["name"].as_str().unwrap());
    assert_eq!(info["commitmeta"], true, "{info}");
    // The server's loose .commitmeta is gone: the only copy is in the superblock.
    let meta = f
        .repo
        .join(format!("objects/{}/{}.commitmeta", &f.b[..2], &f.b[2..]));
    assert!(meta.is_file());
    fs::remove_file(&meta).unwrap();
    let server = HttpServer::start(&f.repo);
    let c = client(&f, "client", &server.url(), Some(&f.a));
    pull_and_check(&f, &c);
    let got = c.ostree(&[
        "show",
        "--print-detached-metadata-key=arbor.test.detached",
        &f.b,
    ]);
    assert_eq!(got.ok().trim(), "'carried by the delta'");
    let client_meta = c
        .path()
        .join(format!("objects/{}/{}.commitmeta", &f.b[..2], &f.b[2..]));
    assert!(client_meta.is_file(), "client has no .commitmeta");
}
