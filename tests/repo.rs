//! Integration tests: `arbor commit` and the repository it writes, judged by the real
//! ostree client (Debian's 2022.7, and the newer 2025.x client in a chroot).

mod util {
    pub use arbor_tests::*;
}

use std::fs;
use std::path::Path;

use util::{
    arbor, content_listing, dir_listing, edge_case_tree, ostree, tempdir, Client, HttpServer,
};

const TS: &str = "2020-01-01T00:00:00Z";

fn p(path: &Path) -> &str {
    path.to_str().expect("utf-8 path")
}

/// An arbor repo and an ostree repo with the edge-case tree committed by each, with the
/// same options. Returns (tmp, input dir, arbor repo, ostree repo, arbor commit, ostree commit).
fn both_commit(extra: &[&str]) -> (util::TempDir, String, String, String, String, String) {
    let tmp = tempdir();
    let input = tmp.path().join("input");
    edge_case_tree(&input);
    let a = tmp.path().join("arbor-repo");
    let o = tmp.path().join("ostree-repo");
    arbor(&["init", "--repo", p(&a)]).ok();
    ostree(&["init", &format!("--repo={}", p(&o)), "--mode=archive"]).ok();
    let mut aargs = vec![
        "commit",
        "--repo",
        p(&a),
        "-b",
        "test/main",
        "-s",
        "first commit",
        "--body",
        "line one\nline two",
        "--timestamp",
        TS,
        "--add-metadata-string",
        "version=1.0",
        "--add-metadata-string",
        "zz.key=é ☃",
    ];
    aargs.extend_from_slice(extra);
    aargs.push(p(&input));
    let ac = arbor(&aargs).ok().trim().to_string();
    let obranch = format!("--repo={}", p(&o));
    let tree = format!("--tree=dir={}", p(&input));
    let mut oargs = vec![
        "commit",
        &obranch,
        "-b",
        "test/main",
        "-s",
        "first commit",
        "--body",
        "line one\nline two",
        "--timestamp",
        TS,
        "--add-metadata-string=version=1.0",
        "--add-metadata-string=zz.key=é ☃",
    ];
    oargs.extend_from_slice(extra);
    oargs.push(&tree);
    let oc = ostree(&oargs).ok().trim().to_string();
    let (input, a, o) = (p(&input).to_string(), p(&a).to_string(), p(&o).to_string());
    (tmp, input, a, o, ac, oc)
}

#[test]
fn commit_checksums_equal_ostree() {
    let (_tmp, _input, a, _o, ac, oc) = both_commit(&[]);
    assert_eq!(ac.len(), 64, "commit prints the bare checksum: {ac:?}");
    assert_eq!(
        ac, oc,
        "same tree, subject, body, timestamp and metadata must give ostree's commit checksum"
    );
    // The xattrs really are in the tree (a filesystem without user xattrs would make the
    // comparison above weaker; fail loudly instead).
    let ls = arbor(&["ls", "--repo", &a, "-R", "test/main"])
        .ok()
        .to_string();
    assert!(
        ls.contains(
            "/xattr-file xattrs=user.alpha=\"first\",user.binary=000102ff,user.zeta=\"last\""
        ),
        "{ls}"
    );
    assert!(ls.contains("/sub xattrs=user.dirattr="), "{ls}");
    assert!(ls.contains("- 104755 "), "setuid bit recorded: {ls}");
}

#[test]
fn commit_options_match_ostree() {
    for extra in [
        &["--canonical-permissions"][..],
        &["--owner-uid=1234", "--owner-gid=42"],
        &["--no-xattrs", "--no-bindings"],
    ] {
        let (_tmp, _input, _a, _o, ac, oc) = both_commit(extra);
        assert_eq!(ac, oc, "options {extra:?}");
    }
}

#[test]
fn second_commit_has_parent_and_matches_ostree() {
    let (tmp, input, a, o, ac, oc) = both_commit(&[]);
    assert_eq!(ac, oc);
    fs::write(Path::new(&input).join("hello.txt"), "changed\n").unwrap();
    fs::remove_file(Path::new(&input).join("run.sh")).unwrap();
    let ac2 = arbor(&[
        "commit",
        "--repo",
        &a,
        "-b",
        "test/main",
        "-s",
        "second",
        "--timestamp",
        "1577923200",
        &input,
    ])
    .ok()
    .trim()
    .to_string();
    let oc2 = ostree(&[
        "commit",
        &format!("--repo={o}"),
        "-b",
        "test/main",
        "-s",
        "second",
        "--timestamp=2020-01-02T00:00:00Z",
        &format!("--tree=dir={input}"),
    ])
    .ok()
    .trim()
    .to_string();
    assert_eq!(ac2, oc2);
    let log = arbor(&["log", "--repo", &a, "test/main"]).ok().to_string();
    assert!(
        log.contains(&format!("commit {ac2}")) && log.contains(&format!("commit {ac}")),
        "{log}"
    );
    assert!(log.contains(&format!("Parent:  {ac}")), "{log}");
    let parent = arbor(&["show", "--repo", &a, "--json", "test/main^"])
        .ok()
        .to_string();
    let v: serde_json::Value = serde_json::from_str(&parent).unwrap();
    assert_eq!(v["commit"], ac.as_str());
    assert_eq!(v["metadata"]["version"], "1.0");
    assert_eq!(v["metadata"]["ostree.ref-binding"][0], "test/main");
    // --skip-if-unchanged prints the parent and adds no commit.
    let again = arbor(&[
        "commit",
        "--repo",
        &a,
        "-b",
        "test/main",
        "--skip-if-unchanged",
        &input,
    ])
    .ok()
    .trim()
    .to_string();
    assert_eq!(again, ac2);
    assert!(arbor(&["show", "--repo", &a, "--json", "test/main"])
        .ok()
        .contains(&ac2));
    drop(tmp);
}

#[test]
fn ostree_accepts_arbor_repo() {
    let (tmp, input, a, _o, ac, _oc) = both_commit(&[]);
    let repo = format!("--repo={a}");
    ostree(&[&repo, "fsck"]).ok();
    assert_eq!(ostree(&[&repo, "rev-parse", "test/main"]).ok().trim(), ac);
    let ls = ostree(&[&repo, "ls", "-R", "-X", "test/main"])
        .ok()
        .to_string();
    assert!(ls.contains("/wörld ☃ (copy).txt"), "{ls}");
    assert!(ls.contains("/sub/deeper/deepest/leaf"), "{ls}");
    for name in ["hello.txt", "wörld ☃ (copy).txt", "a.b", "B"] {
        let cat = util::run("ostree", &[&repo, "cat", "test/main", &format!("/{name}")]);
        assert_eq!(
            cat.stdout_bytes,
            fs::read(Path::new(&input).join(name)).unwrap(),
            "ostree cat /{name}"
        );
    }
    let big = util::run("ostree", &[&repo, "cat", "test/main", "/sub/big.dat"]);
    assert_eq!(
        big.stdout_bytes,
        fs::read(Path::new(&input).join("sub/big.dat")).unwrap()
    );
    assert_eq!(
        ostree(&[&repo, "show", "--print-metadata-key=version", "test/main"])
            .ok()
            .trim(),
        "'1.0'"
    );
    // A root checkout by ostree reproduces owners, modes, symlinks and contents.
    let co = tmp.path().join("ostree-checkout");
    ostree(&[&repo, "checkout", "test/main", p(&co)]).ok();
    assert_eq!(dir_listing(&co), dir_listing(Path::new(&input)));
}

#[test]
fn ostree_pulls_arbor_repo_over_http() {
    let (tmp, input, a, _o, ac, _oc) = both_commit(&[]);
    arbor(&["summary", "--repo", &a, "-u"]).ok();
    let server = HttpServer::start(Path::new(&a));
    let c = Client::host(&tmp.path().join("client"), &server.url());
    let summary = c.ostree(&["remote", "summary", "origin"]).ok().to_string();
    assert!(
        summary.contains("test/main") && summary.contains(&ac),
        "{summary}"
    );
    c.ostree(&["pull", "origin", "test/main"]).ok();
    c.ostree(&["fsck"]).ok();
    assert_eq!(c.ostree(&["rev-parse", "origin:test/main"]).ok().trim(), ac);
    let co = tmp.path().join("checkout");
    c.ostree(&["checkout", "-U", "origin:test/main", p(&co)])
        .ok();
    assert_eq!(content_listing(&co), content_listing(Path::new(&input)));
}

#[test]
fn newer_ostree_client_accepts_arbor_repo() {
    let (_tmp, _input, a, _o, ac, _oc) = both_commit(&[]);
    arbor(&["summary", "--repo", &a, "-u"]).ok();
    let server = HttpServer::start(Path::new(&a));
    let version = util::ostree_newer(&["--version"]).ok().to_string();
    assert!(
        !version.contains("2022.7"),
        "the newer client must not be 2022.7: {version}"
    );
    // The client repo lives inside the chroot.
    let c = Client::newer("arbor-test-client", &server.url());
    c.ostree(&["pull", "origin", "test/main"]).ok();
    c.ostree(&["fsck"]).ok();
    let result = c
        .ostree(&["rev-parse", "origin:test/main"])
        .ok()
        .trim()
        .to_string();
    assert_eq!(result, ac);
}

#[test]
fn arbor_reads_ostree_repo() {
    let (tmp, input, a, o, ac, oc) = both_commit(&[]);
    assert_eq!(ac, oc);
    arbor(&["fsck", "--repo", &o]).ok();
    // Same commit ⇒ the canonical dumps must be identical line for line.
    let from_ostree = arbor(&["ls", "--repo", &o, "-R", "test/main"])
        .ok()
        .to_string();
    let from_arbor = arbor(&["ls", "--repo", &a, "-R", "test/main"])
        .ok()
        .to_string();
    assert_eq!(from_ostree, from_arbor);
    assert!(from_ostree.lines().count() > 30);
    let co = tmp.path().join("arbor-checkout");
    arbor(&["checkout", "--repo", &o, "test/main", p(&co)]).ok();
    assert_eq!(dir_listing(&co), dir_listing(Path::new(&input)));
    let cat = util::run(
        util::arbor_bin(),
        &["cat", "--repo", &o, "test/main", "/sub/data.bin"],
    );
    assert_eq!(
        cat.stdout_bytes,
        fs::read(Path::new(&input).join("sub/data.bin")).unwrap()
    );
    // A summary written by ostree is read back.
    ostree(&[&format!("--repo={o}"), "summary", "-u"]).ok();
    let view = arbor(&["summary", "--repo", &o, "--view", "--json"])
        .ok()
        .to_string();
    let v: serde_json::Value = serde_json::from_str(&view).unwrap();
    assert_eq!(v["refs"]["test/main"]["commit"], oc.as_str());
    assert_eq!(v["metadata"]["ostree.summary.mode"], "archive-z2");
}

#[test]
fn arbor_checkout_round_trips_input() {
    let (tmp, input, a, _o, _ac, _oc) = both_commit(&[]);
    let co = tmp.path().join("co");
    arbor(&["checkout", "--repo", &a, "test/main", p(&co)]).ok();
    assert_eq!(dir_listing(&co), dir_listing(Path::new(&input)));
    // Committing the checkout again gives the same tree.
    let c2 = arbor(&[
        "commit",
        "--repo",
        &a,
        "-b",
        "again",
        "--timestamp",
        TS,
        "-s",
        "first commit",
        "--body",
        "line one\nline two",
        "--add-metadata-string",
        "version=1.0",
        "--add-metadata-string",
        "zz.key=é ☃",
        "--no-bindings",
        p(&co),
    ])
    .ok()
    .trim()
    .to_string();
    let t1 = arbor(&["show", "--repo", &a, "--json", "test/main"])
        .ok()
        .to_string();
    let t2 = arbor(&["show", "--repo", &a, "--json", &c2])
        .ok()
        .to_string();
    let (v1, v2): (serde_json::Value, serde_json::Value) = (
        serde_json::from_str(&t1).unwrap(),
        serde_json::from_str(&t2).unwrap(),
    );
    assert_eq!(v1["root_dirtree"], v2["root_dirtree"]);
    assert_eq!(v1["root_dirmeta"], v2["root_dirmeta"]);
    // Unchanged objects are not rewritten.
    let j = arbor(&["commit", "--repo", &a, "-b", "third", "--json", p(&co)])
        .ok()
        .to_string();
    let v: serde_json::Value = serde_json::from_str(&j).unwrap();
    assert_eq!(v["content_objects_written"], 0, "{j}");
    assert!(v["content_objects_total"].as_u64().unwrap() >= 30, "{j}");
}

/// Path of an object of type `ext` in `repo`, or the first one found.
fn find_object(repo: &Path, ext: &str, min_size: u64) -> std::path::PathBuf {
    for d in fs::read_dir(repo.join("objects")).unwrap() {
        for f in fs::read_dir(d.unwrap().path()).unwrap() {
            let f = f.unwrap().path();
            if f.extension().and_then(|e| e.to_str()) == Some(ext)
                && fs::metadata(&f).unwrap().len() >= min_size
            {
                return f;
            }
        }
    }
    panic!(
        "no .{ext} object of at least {min_size} bytes in {}",
        repo.display()
    );
}

fn object_name(path: &Path) -> String {
    let parent = path
        .parent()
        .unwrap()
        .file_name()
        .unwrap()
        .to_str()
        .unwrap();
    format!(
        "objects/{parent}/{}",
        path.file_name().unwrap().to_str().unwrap()
    )
}

#[test]
fn fsck_names_corrupt_objects() {
    type Corruption = fn(&Path) -> std::path::PathBuf;
    let cases: [(&str, u64, Corruption); 5] = [
        ("filez", 1000, |f| {
            let mut d = fs::read(f).unwrap();
            let i = d.len() / 2;
            d[i] ^= 0x40;
            fs::write(f, d).unwrap();
            f.to_path_buf()
        }),
        ("filez", 1000, |f| {
            let d = fs::read(f).unwrap();
            fs::write(f, &d[..d.len() - 7]).unwrap();
            f.to_path_buf()
        }),
        ("dirtree", 0, |f| {
            // Renamed: the content no longer matches the name.
            let name = f.file_name().unwrap().to_str().unwrap();
            let wrong = f.with_file_name(format!(
                "{}{}",
                if name.starts_with('0') { "1" } else { "0" },
                &name[1..]
            ));
            fs::rename(f, &wrong).unwrap();
            wrong
        }),
        ("dirmeta", 0, |f| {
            let mut d = fs::read(f).unwrap();
            d[0] ^= 1;
            fs::write(f, d).unwrap();
            f.to_path_buf()
        }),
        ("commit", 0, |f| {
            let d = fs::read(f).unwrap();
            fs::write(f, &d[..d.len() / 2]).unwrap();
            f.to_path_buf()
        }),
    ];
    for (ext, min, corrupt) in cases {
        let (_tmp, _input, a, _o, _ac, _oc) = both_commit(&[]);
        let a = Path::new(&a);
        arbor(&["fsck", "--repo", p(a)]).ok();
        let victim = find_object(a, ext, min);
        let named = corrupt(&victim);
        let r = arbor(&["fsck", "--repo", p(a)]);
        r.fails_with(&object_name(&named));
    }
}

#[test]
fn bad_inputs_give_clear_errors() {
    let (tmp, input, a, _o, _ac, _oc) = both_commit(&[]);
    let missing = tmp.path().join("no-such-repo");
    arbor(&["refs", "--repo", p(&missing)]).fails_with("not an OSTree repository");
    arbor(&["ls", "--repo", &a, "nope"]).fails_with("ref \"nope\" not found");
    arbor(&["ls", "--repo", &a, "test/main", "/no/such/path"]).fails_with("/no/such/path");
    arbor(&["cat", "--repo", &a, "test/main", "/sub"]).fails_with("is a directory");
    arbor(&["cat", "--repo", &a, "test/main", "/link-rel"]).fails_with("symbolic link");
    arbor(&["show", "--repo", &a, &"0".repeat(64)]).fails_with("not found");
    arbor(&["checkout", "--repo", &a, "test/main", &input]).fails_with("already exists");
    arbor(&[
        "commit",
        "--repo",
        &a,
        "-b",
        "x",
        p(&tmp.path().join("absent")),
    ])
    .fails_with("absent");
    arbor(&["commit", "--repo", &a, "-b", "bad ref!", &input]).fails_with("invalid ref name");
    arbor(&[
        "commit",
        "--repo",
        &a,
        "-b",
        "x",
        "--timestamp",
        "someday",
        &input,
    ])
    .fails_with("--timestamp");
    arbor(&["commit", "--repo", &a, "-b", "x", "--parent", "abc", &input]).fails_with("--parent");
    arbor(&["init", "--repo", &a, "--mode", "bare"]).fails_with("unsupported mode");
    // A FIFO cannot be committed; the error names it.
    let weird = tmp.path().join("weird");
    fs::create_dir(&weird).unwrap();
    rustix::fs::mknodat(
        rustix::fs::CWD,
        weird.join("fifo"),
        rustix::fs::FileType::Fifo,
        rustix::fs::Mode::from_raw_mode(0o644),
        0,
    )
    .unwrap();
    arbor(&["commit", "--repo", &a, "-b", "x", p(&weird)]).fails_with("fifo");
    // The branch did not move and no half-written files were left in tmp/.
    assert!(arbor(&["refs", "--repo", &a])
        .ok()
        .lines()
        .all(|l| l != "x"));
    assert_eq!(fs::read_dir(Path::new(&a).join("tmp")).unwrap().count(), 0);
    // A repository of an unsupported mode is named as such.
    let bare = tmp.path().join("bare");
    ostree(&["init", &format!("--repo={}", p(&bare)), "--mode=bare-user"]).ok();
    arbor(&["refs", "--repo", p(&bare)]).fails_with("bare-user");
}

#[test]
fn summary_lists_refs_for_ostree() {
    let (_tmp, input, a, _o, ac, _oc) = both_commit(&[]);
    let c2 = arbor(&[
        "commit",
        "--repo",
        &a,
        "-b",
        "other/nested/ref",
        "--add-metadata-string",
        "version=7",
        &input,
    ])
    .ok()
    .trim()
    .to_string();
    arbor(&["summary", "--repo", &a, "-u"]).ok();
    let view = ostree(&[&format!("--repo={a}"), "summary", "--view"])
        .ok()
        .to_string();
    assert!(view.contains("* test/main") && view.contains(&ac), "{view}");
    assert!(
        view.contains("* other/nested/ref") && view.contains(&c2),
        "{view}"
    );
    assert!(
        view.contains("Version (ostree.commit.version): 7"),
        "{view}"
    );
    let refs = arbor(&["refs", "--repo", &a]).ok().to_string();
    assert_eq!(refs, "other/nested/ref\ntest/main\n");
}

/// Objects and their directories are world-readable (a web server serves the repository
/// as another user) whatever the umask of the process that wrote them: a commit under
/// umask 077.
#[test]
fn objects_are_readable_under_a_strict_umask() {
    let tmp = tempdir();
    let input = tmp.path().join("in");
    edge_case_tree(&input);
    let repo = tmp.path().join("repo");
    arbor(&["init", "--repo", p(&repo)]).ok();
    let cmd = format!(
        "umask 077 && exec {} commit --repo {} -b main --timestamp {TS} {}",
        util::arbor_bin().display(),
        p(&repo),
        p(&input)
    );
    util::run("sh", &["-c", &cmd]).ok();
    use std::os::unix::fs::PermissionsExt;
    let mut objects = 0;
    for d in fs::read_dir(repo.join("objects")).unwrap() {
        let d = d.unwrap().path();
        let mode = fs::metadata(&d).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o775, "{}", d.display());
        for f in fs::read_dir(&d).unwrap() {
            let f = f.unwrap().path();
            let mode = fs::metadata(&f).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o644, "{}", f.display());
            objects += 1;
        }
    }
    assert!(objects > 10);
}
