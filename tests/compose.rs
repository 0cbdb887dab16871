//! Compose integration tests: treefile → resolve → commit, judged by dnf (the
//! resolution oracle), rpm and the real ostree client.

mod util {
    pub use arbor_tests::*;
}

use std::fs;
use std::path::Path;

use util::{arbor, corpus_dir, dnf_oracle, tempdir, treefile_variant};

fn p(path: &Path) -> &str {
    path.to_str().expect("utf-8 path")
}

/// `arbor resolve` and the dnf oracle on the same treefile give the same NEVRAs.
fn same_as_dnf(treefile: &Path, extra_dnf: &[&str]) -> usize {
    let mut args = vec![p(treefile)];
    args.extend_from_slice(extra_dnf);
    let dnf = dnf_oracle(&args).ok().to_string();
    let ours = arbor(&["resolve", p(treefile)]).ok().to_string();
    let mut d: Vec<&str> = dnf.lines().collect();
    d.sort();
    let o: Vec<&str> = ours.lines().collect();
    assert_eq!(
        o,
        d,
        "arbor resolve differs from dnf on {}",
        treefile.display()
    );
    assert!(!o.is_empty());
    o.len()
}

#[test]
fn resolve_matches_dnf_on_corpus() {
    let c = corpus_dir();
    assert_eq!(same_as_dnf(&c.join("v1.yaml"), &[]), 182);
    assert_eq!(same_as_dnf(&c.join("v2.yaml"), &[]), 182);
    same_as_dnf(&c.join("tiny.yaml"), &[]);
}

#[test]
fn resolve_matches_dnf_with_weak_deps() {
    let c = corpus_dir();
    let tmp = tempdir();
    for name in ["tiny.yaml", "v1.yaml"] {
        let t = treefile_variant(&c, name, tmp.path(), |s| {
            s.replace("recommends: false", "recommends: true")
        });
        let n = same_as_dnf(&t, &["--weak"]);
        assert!(n > 0);
    }
    // With weak deps, tiny-app pulls tiny-extras (a Recommends).
    let t = tmp.path().join("tiny.yaml");
    assert!(arbor(&["resolve", p(&t)]).ok().contains("tiny-extras"));
}

#[test]
fn resolve_conflict_is_readable() {
    let c = corpus_dir();
    let tmp = tempdir();
    let t = treefile_variant(&c, "tiny.yaml", tmp.path(), |s| {
        s.replace("  - tiny-old\n", "  - tiny-old\n  - tiny-legacy\n")
    });
    let r = arbor(&["resolve", p(&t)]);
    r.fails_with("dependency resolution failed");
    assert!(r.stderr.contains("tiny-legacy"), "{}", r.stderr);
    let dnf = dnf_oracle(&["--repo", p(&c.join("tiny")), "tiny-app", "tiny-legacy"]);
    assert_ne!(dnf.status, 0, "the oracle agrees it is unsatisfiable");
}

#[test]
fn resolve_matches_dnf_on_createrepo_fixtures() {
    let fixtures = util::shared_dir().join("corpus/fixtures/createrepo_c/tests/testdata/packages");
    let tmp = tempdir();
    let repo = tmp.path().join("repo");
    fs::create_dir_all(&repo).unwrap();
    for f in [
        "Archer-3.4.5-6.x86_64.rpm",
        "Rimmer-1.0.2-2.x86_64.rpm",
        "fake_bash-1.1.1-1.x86_64.rpm",
        "balicek-utf8-1.1.1-1.x86_64.rpm",
    ] {
        fs::copy(fixtures.join(f), repo.join(f)).unwrap();
    }
    util::run("createrepo_c", &["-q", p(&repo)]).ok();
    fs::write(
        tmp.path().join("f.repo"),
        format!("[fixtures]\nbaseurl=file://{}\nenabled=1\n", p(&repo)),
    )
    .unwrap();
    for pkgs in [&["Archer"][..], &["Rimmer", "fake_bash"], &["balicek-utf8"]] {
        let t = tmp.path().join("t.yaml");
        let list: String = pkgs.iter().map(|x| format!("  - {x}\n")).collect();
        fs::write(&t, format!("ref: fixtures/x\nrecommends: false\nselinux: false\ncheck-passwd: {{type: none}}\ncheck-groups: {{type: none}}\npackages:\n{list}")).unwrap();
        let mut args = vec!["--repo", p(&repo)];
        args.extend_from_slice(pkgs);
        let dnf = dnf_oracle(&args);
        let ours = arbor(&["resolve", p(&t)]);
        assert_eq!(
            ours.status == 0,
            dnf.status == 0,
            "{pkgs:?}: arbor {}\ndnf {}",
            ours.stderr,
            dnf.stderr
        );
        if dnf.status == 0 {
            let mut d: Vec<&str> = dnf.stdout.lines().collect();
            d.sort();
            assert_eq!(ours.stdout.lines().collect::<Vec<_>>(), d, "{pkgs:?}");
        }
    }
}

#[test]
fn resolve_lockfile_round_trip() {
    let c = corpus_dir();
    let tmp = tempdir();
    let lock = arbor(&["resolve", "--json", p(&c.join("v1.yaml"))])
        .ok()
        .to_string();
    let v: serde_json::Value = serde_json::from_str(&lock).unwrap();
    assert_eq!(
        v["packages"]["bash"]["evra"]
            .as_str()
            .unwrap()
            .split(':')
            .count(),
        2
    );
    assert!(v["packages"]["bash"]["digest"]
        .as_str()
        .unwrap()
        .starts_with("sha256:"));
    // v2's treefile pinned to v1's lockfile resolves to v1's packages where v1's
    // builds are available (the v2 repo carries only v2 builds: so pin against v1).
    let lf = tmp.path().join("v1.lock.json");
    fs::write(&lf, &lock).unwrap();
    let pinned = arbor(&["resolve", "--lockfile", p(&lf), p(&c.join("v1.yaml"))])
        .ok()
        .to_string();
    let plain = arbor(&["resolve", p(&c.join("v1.yaml"))]).ok().to_string();
    assert_eq!(pinned, plain);
}

#[test]
fn resolve_bad_inputs() {
    let c = corpus_dir();
    let tmp = tempdir();
    let t = treefile_variant(&c, "tiny.yaml", tmp.path(), |s| s + "frobnicate: true\n");
    arbor(&["resolve", p(&t)]).fails_with("unknown key \"frobnicate\"");
    let t = treefile_variant(&c, "tiny.yaml", tmp.path(), |s| {
        s.replace("  - tiny-old\n", "  - no-such-package\n")
    });
    arbor(&["resolve", p(&t)]).fails_with("no-such-package");
    let t = treefile_variant(&c, "tiny.yaml", tmp.path(), |s| {
        s.replace("corpus-tiny", "corpus-missing")
    });
    arbor(&["resolve", p(&t)]).fails_with("corpus-missing");
    let t = treefile_variant(&c, "tiny.yaml", tmp.path(), |s| s + "include: tiny.yaml\n");
    arbor(&["resolve", p(&t)]).fails_with("include loop");
    let t = treefile_variant(&c, "tiny.yaml", tmp.path(), |s| {
        s + "postprocess:\n  - echo hi\n"
    });
    arbor(&["resolve", p(&t)]).fails_with("not implemented");
    // A repository whose metadata does not match repomd.xml's checksum.
    let repo = tmp.path().join("broken");
    util::run("cp", &["-a", p(&c.join("tiny")), p(&repo)]).ok();
    let primary = fs::read_dir(repo.join("repodata"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.to_str().unwrap().contains("primary"))
        .unwrap();
    let mut data = fs::read(&primary).unwrap();
    let n = data.len();
    data[n / 2] ^= 0xff;
    fs::write(&primary, data).unwrap();
    let t = treefile_variant(&c, "tiny.yaml", tmp.path(), |s| s);
    fs::write(
        tmp.path().join("corpus-tiny.repo"),
        format!("[corpus-tiny]\nbaseurl=file://{}\nenabled=1\n", p(&repo)),
    )
    .unwrap();
    arbor(&["resolve", p(&t)]).fails_with("checksum mismatch");
}

/// Compose `treefile` into a fresh repo under `tmp`; returns (repo path, commit, stdout JSON).
fn compose(tmp: &Path, treefile: &Path, extra: &[&str]) -> (String, String, serde_json::Value) {
    let repo = tmp.join("repo");
    if !repo.exists() {
        arbor(&["init", "--repo", p(&repo)]).ok();
    }
    let cache = tmp.join("cache");
    let mut args = vec![
        "compose",
        "--repo",
        p(&repo),
        "--cachedir",
        p(&cache),
        "--json",
        "--timestamp",
        "2024-01-01T00:00:00Z",
    ];
    args.extend_from_slice(extra);
    args.push(p(treefile));
    let out = arbor(&args).ok().to_string();
    let v: serde_json::Value =
        serde_json::from_str(out.trim()).unwrap_or_else(|e| panic!("{e}: {out}"));
    let commit = v["ostree-commit"].as_str().expect("a commit").to_string();
    (p(&repo).to_string(), commit, v)
}

#[test]
fn compose_v1_then_v2_deploys_and_upgrades() {
    let c = corpus_dir();
    let tmp = tempdir();
    let (repo, c1, v) = compose(tmp.path(), &c.join("v1.yaml"), &[]);
    assert_eq!(v["ostree-version"], "12.1");
    assert_eq!(v["arbor-packages"], 182);
    assert!(
        v["arbor-skipped-scriptlets"].as_object().unwrap().len() > 10,
        "skipped scriptlets are listed"
    );
    let r = format!("--repo={repo}");
    util::ostree(&[&r, "fsck"]).ok();
    let show = util::ostree(&[&r, "show", &c1]).ok().to_string();
    assert!(show.contains("Version: 12.1"), "{show}");
    let linux = util::ostree(&[&r, "show", "--print-metadata-key=ostree.linux", &c1])
        .ok()
        .to_string();
    assert!(linux.contains("6.1.0-50-cloud-amd64"), "{linux}");
    // The rpmdb written by the real rpm lists exactly the resolved packages.
    let co = tmp.path().join("co");
    arbor(&["checkout", "--repo", &repo, &c1, p(&co)]).ok();
    let qa = util::run(
        "rpm",
        &[
            "--root",
            p(&co),
            "--dbpath",
            "/usr/share/rpm",
            "-qa",
            "--qf",
            "%{NEVRA}\n",
        ],
    )
    .ok()
    .to_string();
    let mut qa: Vec<&str> = qa.lines().collect();
    qa.sort();
    let resolved = arbor(&["resolve", p(&c.join("v1.yaml"))]).ok().to_string();
    assert_eq!(qa, resolved.lines().collect::<Vec<_>>());
    assert!(co
        .join("usr/lib/modules/6.1.0-50-cloud-amd64/vmlinuz")
        .is_file());
    assert_eq!(
        std::fs::read_link(co.join("home")).unwrap(),
        Path::new("var/home")
    );
    assert!(std::fs::read_to_string(co.join("usr/etc/passwd"))
        .unwrap()
        .starts_with("root:"));
    assert!(std::fs::read_to_string(co.join("usr/lib/passwd"))
        .unwrap()
        .contains("daemon:"));
    assert!(co
        .join("usr/etc/systemd/system/multi-user.target.wants/ssh.service")
        .symlink_metadata()
        .is_ok());

    // Unchanged inputs: no new commit, exit 0, says so.
    let again = arbor(&[
        "compose",
        "--repo",
        &repo,
        "--cachedir",
        p(&tmp.path().join("cache")),
        p(&c.join("v1.yaml")),
    ]);
    assert_eq!(again.ok().trim(), "");
    assert!(
        again
            .stderr
            .contains("No apparent changes since previous commit"),
        "{}",
        again.stderr
    );
    assert_eq!(
        arbor(&["refs", "--repo", &repo, "--json"])
            .ok()
            .matches(&c1)
            .count(),
        1
    );

    // v2 after v1 imports only the changed packages.
    let (_, c2, v2) = compose(
        tmp.path(),
        &c.join("v2.yaml"),
        &["--write-commitid-to", p(&tmp.path().join("id"))],
    );
    assert_eq!(std::fs::read_to_string(tmp.path().join("id")).unwrap(), c2);
    assert_eq!(v2["ostree-version"], "12.2");
    let hits = v2["arbor-import-cache-hits"].as_u64().unwrap();
    let imported = v2["arbor-packages-imported"].as_u64().unwrap();
    assert_eq!(hits + imported, 182);
    assert!(
        imported <= 24 && hits >= 158,
        "only changed packages are imported: {v2}"
    );
    let log = arbor(&["log", "--repo", &repo, "corpus/bookworm/x86_64/minimal"])
        .ok()
        .to_string();
    assert!(log.contains(&format!("Parent:  {c1}")), "{log}");

    // The real ostree deploys v1 in a fake sysroot, then upgrades to v2.
    let sys = tmp.path().join("sysroot");
    std::fs::create_dir_all(&sys).unwrap();
    let s = format!("--sysroot={}", p(&sys));
    util::ostree(&["admin", "init-fs", p(&sys)]).ok();
    util::ostree(&["admin", "os-init", &s, "corpus"]).ok();
    let srepo = format!("--repo={}/ostree/repo", p(&sys));
    util::ostree(&[&srepo, "pull-local", &repo, &c1]).ok();
    util::ostree(&["admin", "deploy", &s, "--os=corpus", &c1]).ok();
    util::ostree(&[&srepo, "pull-local", &repo, &c2]).ok();
    util::ostree(&["admin", "deploy", &s, "--os=corpus", &c2]).ok();
    let status = util::ostree(&["admin", "status", &s]).ok().to_string();
    assert!(status.contains(&c1) && status.contains(&c2), "{status}");
    assert!(sys.join("boot/loader/entries").read_dir().unwrap().count() >= 2);
    for d in std::fs::read_dir(sys.join("ostree/deploy/corpus/deploy")).unwrap() {
        let d = d.unwrap().path();
        if d.is_dir() {
            util::run("chattr", &["-i", p(&d)]);
        }
    }
}

#[test]
fn compose_tiny_pulls_over_http() {
    let c = corpus_dir();
    let tmp = tempdir();
    let (repo, c1, v) = compose(tmp.path(), &c.join("tiny.yaml"), &[]);
    assert_eq!(v["ostree-version"], "1");
    assert!(v["arbor-kernel"].is_null());
    arbor(&["summary", "--repo", &repo, "-u"]).ok();
    let server = util::HttpServer::start(Path::new(&repo));
    let client = tmp.path().join("client");
    let cr = format!("--repo={}", p(&client));
    util::ostree(&[&cr, "init", "--mode=bare-user"]).ok();
    util::ostree(&[
        &cr,
        "remote",
        "add",
        "--no-gpg-verify",
        "origin",
        &server.url(),
    ])
    .ok();
    util::ostree(&[&cr, "pull", "origin", "corpus/tiny/x86_64"]).ok();
    util::ostree(&[&cr, "fsck"]).ok();
    let co = tmp.path().join("co");
    util::ostree(&[&cr, "checkout", "-U", &c1, p(&co)]).ok();
    assert!(co.join("usr/share/rpm/rpmdb.sqlite").is_file());
    let pkglist = arbor(&[
        "show",
        "--repo",
        &repo,
        "--print-metadata-key",
        "rpmostree.rpmdb.pkglist",
        "--json",
        &c1,
    ])
    .ok()
    .to_string();
    let v: serde_json::Value = serde_json::from_str(&pkglist).unwrap();
    let names: Vec<&str> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t[0].as_str().unwrap())
        .collect();
    assert_eq!(names, ["tiny", "tiny-app", "tiny-libs"]);
    assert_eq!(v[0][1], "2", "epoch as a string");
}

#[test]
fn compose_print_only_and_dry_run() {
    let c = corpus_dir();
    let tmp = tempdir();
    let out = arbor(&[
        "compose",
        "--repo",
        "/nonexistent",
        "--print-only",
        p(&c.join("v1.yaml")),
    ])
    .ok()
    .to_string();
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["ref"], "corpus/bookworm/x86_64/minimal");
    assert_eq!(v["recommends"], false);
    let repo = tmp.path().join("repo");
    arbor(&["init", "--repo", p(&repo)]).ok();
    let dry = arbor(&[
        "compose",
        "--repo",
        p(&repo),
        "--dry-run",
        p(&c.join("tiny.yaml")),
    ])
    .ok()
    .to_string();
    assert_eq!(dry.lines().count(), 3);
    assert_eq!(arbor(&["refs", "--repo", p(&repo)]).ok(), "");
}

#[test]
fn compose_bad_inputs_commit_nothing() {
    let c = corpus_dir();
    let tmp = tempdir();
    let repo = tmp.path().join("repo");
    arbor(&["init", "--repo", p(&repo)]).ok();
    let run = |t: &Path| {
        arbor(&[
            "compose",
            "--repo",
            p(&repo),
            "--cachedir",
            p(&tmp.path().join("cache")),
            p(t),
        ])
    };
    let t = treefile_variant(&c, "tiny.yaml", tmp.path(), |s| {
        s.replace("  - tiny-old\n", "  - tiny-old\n  - tiny-legacy\n")
    });
    run(&t).fails_with("dependency resolution failed");
    let t = treefile_variant(&c, "tiny.yaml", tmp.path(), |s| {
        s.replace("  - tiny-old\n", "  - missing-pkg\n")
    });
    run(&t).fails_with("missing-pkg");
    // A copy of the tiny repo whose RPM is corrupted after the metadata was made: the
    // digest check names the package.
    let bad = tmp.path().join("bad-repo");
    util::run("cp", &["-a", p(&c.join("tiny")), p(&bad)]).ok();
    let rpm = std::fs::read_dir(bad.join("Packages"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| {
            p.file_name()
                .unwrap()
                .to_str()
                .unwrap()
                .starts_with("tiny-libs")
        })
        .unwrap();
    let mut data = std::fs::read(&rpm).unwrap();
    let n = data.len();
    data[n - 100] ^= 0xff;
    std::fs::write(&rpm, &data).unwrap();
    let t = treefile_variant(&c, "tiny.yaml", tmp.path(), |s| s);
    std::fs::write(
        tmp.path().join("corpus-tiny.repo"),
        format!("[corpus-tiny]\nbaseurl=file://{}\nenabled=1\n", p(&bad)),
    )
    .unwrap();
    run(&t).fails_with("checksum mismatch");
    // Truncated payload, with repodata regenerated so the digest matches: the
    // importer names the package. (tiny's payload is large; its header survives.)
    std::fs::write(&rpm, &data).unwrap();
    let big = std::fs::read_dir(bad.join("Packages"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| {
            p.file_name()
                .unwrap()
                .to_str()
                .unwrap()
                .starts_with("tiny-1")
        })
        .unwrap();
    let whole = std::fs::read(&big).unwrap();
    std::fs::write(&big, &whole[..whole.len() * 3 / 4]).unwrap();
    util::run("createrepo_c", &["-q", p(&bad)]).ok();
    run(&t).fails_with("tiny-1.2");
    // Unknown key, include loop.
    let t = treefile_variant(&c, "tiny.yaml", tmp.path(), |s| s + "bogus: 1\n");
    run(&t).fails_with("unknown key \"bogus\"");
    let t = treefile_variant(&c, "tiny.yaml", tmp.path(), |s| s + "include: tiny.yaml\n");
    run(&t).fails_with("include loop");
    // A repository that does not exist.
    std::fs::write(
        tmp.path().join("corpus-tiny.repo"),
        "[corpus-tiny]\nbaseurl=file:///nonexistent/repo\nenabled=1\n",
    )
    .unwrap();
    let t = treefile_variant(&c, "tiny.yaml", tmp.path(), |s| s);
    std::fs::write(
        tmp.path().join("corpus-tiny.repo"),
        "[corpus-tiny]\nbaseurl=file:///nonexistent/repo\nenabled=1\n",
    )
    .unwrap();
    run(&t).fails_with("/nonexistent/repo");
    assert_eq!(
        arbor(&["refs", "--repo", p(&repo)]).ok(),
        "",
        "no bad input produced a commit"
    );
}

/// The README's first command, exactly as written there.
#[test]
fn readme_demo_command_works() {
    let root = util::workspace_root();
    let readme = fs::read_to_string(root.join("README.md")).unwrap();
    assert!(
        readme.contains("\nci/demo.sh "),
        "README shows the demo command"
    );
    let out = std::process::Command::new("bash")
        .arg("-c")
        .arg("ci/demo.sh")
        .current_dir(&root)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "ci/demo.sh failed:\n{stdout}\n{stderr}"
    );
    assert!(
        stdout.contains("hello from an arbor-built tree"),
        "{stdout}"
    );
    assert!(
        stdout.contains("the real ostree client pulled and verified it"),
        "{stdout}"
    );
}
