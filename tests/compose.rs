//! Compose integration tests: treefile → resolve → commit, judged by dnf (the
//! resolution oracle), rpm and the real ostree client.

mod util {
    pub use arbor_tests::*;
}

use std::fs;
use std::path::Path;

use util::{arbor, corpus_dir, dnf_oracle, p, tempdir, treefile_variant};

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
    // With both v1's and v2's repositories enabled, the newest builds win; pinned to
    // v1's lockfile, the same treefile resolves to exactly v1's packages.
    let lf = tmp.path().join("v1.lock.json");
    fs::write(&lf, &lock).unwrap();
    let both = treefile_variant(&c, "v2.yaml", tmp.path(), |s| {
        s.replace("  - corpus-v2\n", "  - corpus-v1\n  - corpus-v2\n")
    });
    let v1 = arbor(&["resolve", p(&c.join("v1.yaml"))]).ok().to_string();
    let v2 = arbor(&["resolve", p(&c.join("v2.yaml"))]).ok().to_string();
    assert_ne!(v1, v2);
    assert_eq!(arbor(&["resolve", p(&both)]).ok(), v2);
    let pinned = arbor(&["resolve", "--lockfile", p(&lf), p(&both)]);
    assert_eq!(pinned.ok(), v1);
    // A pin whose digest no repository has (the package was rebuilt, or the lockfile
    // edited) fails, naming the pin.
    let mut tampered: serde_json::Value = serde_json::from_str(&lock).unwrap();
    tampered["packages"]["bash"]["digest"] = format!("sha256:{}", "0".repeat(64)).into();
    fs::write(&lf, tampered.to_string()).unwrap();
    let out = arbor(&["resolve", "--lockfile", p(&lf), p(&both)]);
    out.fails_with("the lockfile pins builds that no enabled repository has");
    out.fails_with("bash-");
    // compose --write-lockfile-to writes what resolve --json prints.
    let tiny_lock = tmp.path().join("tiny.lock.json");
    let (_, _, _) = compose(
        tmp.path(),
        &util::tiny_treefile(tmp.path()),
        &["--write-lockfile-to", p(&tiny_lock)],
    );
    let written: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(&tiny_lock).unwrap()).unwrap();
    let printed: serde_json::Value =
        serde_json::from_str(arbor(&["resolve", "--json", p(&c.join("tiny.yaml"))]).ok()).unwrap();
    assert_eq!(written["packages"], printed["packages"]);
    assert_eq!(written["packages"].as_object().unwrap().len(), 3);
    for generated in [
        &written["metadata"]["generated"],
        &written["metadata"]["rpmmd_repos"]["corpus-tiny"]["generated"],
    ] {
        let g = generated.as_str().unwrap_or_else(|| panic!("{written}"));
        assert!(
            g.len() == 20 && g.ends_with('Z') && g.as_bytes()[10] == b'T',
            "{g}"
        );
    }
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
        s + "repo-packages: [{repo: elsewhere, packages: [tiny-app]}]\n"
    });
    arbor(&["resolve", p(&t)]).fails_with(
        "repo-packages: repo \"elsewhere\" is not among the enabled repos (corpus-tiny)",
    );
    fs::write(tmp.path().join("extra.ks"), "%packages\ntiny-app\n%end\n").unwrap();
    let t = treefile_variant(&c, "tiny.yaml", tmp.path(), |s| s + "include: extra.ks\n");
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

/// The `.filez` objects in `repo`.
fn count_filez(repo: &Path) -> u64 {
    let mut n = 0;
    for d in std::fs::read_dir(repo.join("objects")).unwrap() {
        for f in std::fs::read_dir(d.unwrap().path()).unwrap() {
            n += u64::from(f.unwrap().file_name().to_string_lossy().ends_with(".filez"));
        }
    }
    n
}

/// `rpm -qa` on a checkout (whose rpmdb the real rpm wrote) lists exactly what
/// `arbor resolve` resolves for the treefile.
fn assert_rpmdb_lists(checkout: &Path, treefile: &Path) {
    let qa = util::run(
        "rpm",
        &[
            "--root",
            p(checkout),
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
    let resolved = arbor(&["resolve", p(treefile)]).ok().to_string();
    assert_eq!(qa, resolved.lines().collect::<Vec<_>>());
}

#[test]
fn compose_v1_then_v2_deploys_and_upgrades() {
    let c = corpus_dir();
    let tmp = tempdir();
    // What the corpus holds today (it follows Debian's archive): asserted as relations.
    let kernel = util::corpus::kernel("v1");
    let diff = util::corpus::diff("v1", "v2");
    eprintln!("corpus: {}", util::corpus::stats_line());
    let (repo, c1, v) = compose(tmp.path(), &c.join("v1.yaml"), &[]);
    assert_eq!(v["ostree-version"], "12.1");
    assert_eq!(v["arbor-packages"], util::corpus::resolved("v1").len());
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
    assert!(linux.contains(&kernel.kver), "{linux}");
    // The rpmdb written by the real rpm lists exactly the resolved packages.
    let co = tmp.path().join("co");
    arbor(&["checkout", "--repo", &repo, &c1, p(&co)]).ok();
    assert_rpmdb_lists(&co, &c.join("v1.yaml"));
    assert!(co
        .join(format!("usr/lib/modules/{}/vmlinuz", kernel.kver))
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
    // etc-group-members: [sudo] keeps root and sudo in /usr/etc/group, the rest moves.
    let names = |f: &str| -> Vec<String> {
        std::fs::read_to_string(co.join(f))
            .unwrap()
            .lines()
            .map(|l| l.split(':').next().unwrap().to_string())
            .collect()
    };
    assert_eq!(names("usr/etc/group"), ["root", "sudo"]);
    let lib_groups = names("usr/lib/group");
    // As rpm-ostree writes them: etc-group-members are in both files.
    assert!(lib_groups.contains(&"daemon".to_string()) && lib_groups.contains(&"sudo".to_string()));
    // default-target: multi-user.target.
    assert_eq!(
        std::fs::read_link(co.join("usr/lib/systemd/system/default.target")).unwrap(),
        Path::new("multi-user.target")
    );
    // rpm-ostree's compose JSON: the timestamp as an ISO string, the content checksum
    // as ostree computes it (GLib's OSTree binding), no pkgdiff without a parent.
    assert_eq!(v["ostree-timestamp"], "2024-01-01T00:00:00Z");
    assert!(v["pkgdiff"].is_null());
    let content = util::run(
        util::system_python(),
        &[
            "-c",
            &format!(
                "import gi\ngi.require_version('OSTree', '1.0')\nfrom gi.repository import OSTree, Gio\n\
                 r = OSTree.Repo.new(Gio.File.new_for_path({repo:?}))\nr.open(None)\n\
                 _, c = r.load_variant(OSTree.ObjectType.COMMIT, {c1:?})\n\
                 print(OSTree.commit_get_content_checksum(c))"
            ),
        ],
    )
    .ok()
    .trim()
    .to_string();
    assert_eq!(v["ostree-content-checksum"], content.as_str());

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
    let filez_v1 = count_filez(Path::new(&repo));
    assert_eq!(v["ostree-n-content-written"].as_u64(), Some(filez_v1));
    let (_, c2, v2) = compose(
        tmp.path(),
        &c.join("v2.yaml"),
        &["--write-commitid-to", p(&tmp.path().join("id"))],
    );
    assert_eq!(std::fs::read_to_string(tmp.path().join("id")).unwrap(), c2);
    assert_eq!(v2["ostree-version"], "12.2");
    // --write-commitid-to writes the id instead of moving the ref (as rpm-ostree).
    let head = util::ostree(&[&r, "rev-parse", "corpus/bookworm/x86_64/minimal"]);
    assert_eq!(head.ok().trim(), c1);
    // pkgdiff: exactly the corpus's own difference between the two resolutions (when
    // the kernel package changes name, as in a real nightly, it is removed + added).
    let got = v2["pkgdiff"].as_array().unwrap();
    let pkg = |p: &util::corpus::Pkg| serde_json::json!([p.name, p.evr, p.arch]);
    let mut want: Vec<serde_json::Value> = Vec::new();
    for p in &diff.added {
        want.push(serde_json::json!([p.name, 0, {"NewPackage": pkg(p)}]));
    }
    for p in &diff.removed {
        want.push(serde_json::json!([p.name, 1, {"PreviousPackage": pkg(p)}]));
    }
    for (kind, pairs) in [(2, &diff.upgraded), (3, &diff.downgraded)] {
        for (o, n) in pairs {
            want.push(serde_json::json!(
                [o.name, kind, {"PreviousPackage": pkg(o), "NewPackage": pkg(n)}]
            ));
        }
    }
    assert_eq!(got, &want, "pkgdiff against the corpus's resolutions");
    assert!(
        !want.is_empty(),
        "the corpus has no update between v1 and v2"
    );
    assert!(got
        .windows(2)
        .all(|w| (w[0][1].as_u64(), w[0][0].as_str()) <= (w[1][1].as_u64(), w[1][0].as_str())));
    let v2_kernel = util::corpus::kernel("v2");
    if v2_kernel.pkg.name != kernel.pkg.name {
        assert!(diff.removed.contains(&kernel.pkg) && diff.added.contains(&v2_kernel.pkg));
    }
    // Only RPMs v1 did not have are imported; every other one is a cache hit.
    let hits = v2["arbor-import-cache-hits"].as_u64().unwrap();
    let imported = v2["arbor-packages-imported"].as_u64().unwrap();
    let new_rpms = util::corpus::new_rpms("v1", "v2");
    assert_eq!(imported as usize, new_rpms.len(), "{new_rpms:?}: {v2}");
    assert_eq!(
        (hits + imported) as usize,
        util::corpus::resolved("v2").len()
    );
    // rpm-ostree's composejson counts the content objects the compose wrote.
    let written = v2["ostree-n-content-written"].as_u64().unwrap();
    assert_eq!(written, count_filez(Path::new(&repo)) - filez_v1);
    assert!(written > 0, "{v2}");
    assert!(v2["ostree-content-bytes-written"].as_u64().unwrap() > 0);
    // v2's rpmdb, written anew, lists exactly the resolved packages.
    let co2 = tmp.path().join("co2");
    arbor(&["checkout", "--repo", &repo, &c2, p(&co2)]).ok();
    assert_rpmdb_lists(&co2, &c.join("v2.yaml"));
    let log = arbor(&["log", "--repo", &repo, &c2]).ok().to_string();
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
    corpus_dir();
    let tmp = tempdir();
    let (repo, c1, v) = compose(tmp.path(), &util::tiny_treefile(tmp.path()), &[]);
    assert_eq!(v["ostree-version"], "1");
    assert!(v["arbor-kernel"].is_null());
    arbor(&["summary", "--repo", &repo, "-u"]).ok();
    let server = util::HttpServer::start(Path::new(&repo));
    let client = util::Client::host(&tmp.path().join("client"), &server.url());
    client
        .ostree(&["pull", "origin", "corpus/tiny/x86_64"])
        .ok();
    client.ostree(&["fsck"]).ok();
    let co = tmp.path().join("co");
    client.ostree(&["checkout", "-U", &c1, p(&co)]).ok();
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

/// The treefile keys that shape the tree, on the tiny corpus: includes with variables
/// and a conditional include in a subdirectory, add-files relative to the file that
/// lists them, remove-files, remove-from-packages, documentation: false,
/// packages-$basearch, repo-packages, tmp-is-dir: false, machineid-compat: true, a
/// dated automatic-version-prefix, `$releasever` in a .repo baseurl, and a treefile
/// named without a directory.
#[test]
fn compose_treefile_keys_shape_the_tree() {
    let c = corpus_dir();
    let tmp = tempdir();
    let dir = tmp.path();
    std::os::unix::fs::symlink(c.join("tiny"), dir.join("tiny-12")).unwrap();
    fs::write(
        dir.join("corpus-tiny.repo"),
        format!(
            "[corpus-tiny]\nbaseurl=file://{}/tiny-$releasever\nenabled=1\ngpgcheck=0\n",
            p(dir)
        ),
    )
    .unwrap();
    let tiny = fs::read_to_string(c.join("tiny.yaml")).unwrap() + util::TINY_OVERRIDES;
    let top = tiny
        .replace("documentation: true", "documentation: false")
        .replace("machineid-compat: false", "machineid-compat: true")
        .replace("tmp-is-dir: true", "tmp-is-dir: false")
        .replace(
            "automatic-version-prefix: \"1\"",
            "automatic-version-prefix: \"${releasever}.<date:%Y%m%d>\"",
        )
        + "variables: {flavor: full}\ninclude: sub/common.yaml\n\
           remove-files: [usr/share/tiny/empty]\n\
           remove-from-packages: [[tiny, '/usr/share/tiny/hard-.*']]\n\
           repo-packages: [{repo: corpus-tiny, packages: [tiny-app]}]\n";
    fs::write(dir.join("tiny.yaml"), top).unwrap();
    fs::create_dir(dir.join("sub")).unwrap();
    fs::write(
        dir.join("sub/common.yaml"),
        "conditional-include:\n  - if: flavor == full\n    include: full.yaml\n  - if: flavor == slim\n    include: missing.yaml\nadd-files: [[motd, /etc/motd]]\n",
    )
    .unwrap();
    fs::write(
        dir.join("sub/full.yaml"),
        "packages-x86_64: [tiny-extras]\npackages-aarch64: [nope]\n",
    )
    .unwrap();
    fs::write(dir.join("sub/motd"), "hello from sub\n").unwrap();
    let repo = dir.join("repo");
    arbor(&["init", "--repo", p(&repo)]).ok();
    let compose_here = |extra: &[&str]| {
        let mut args = vec![
            "compose",
            "--repo",
            p(&repo),
            "--cachedir",
            "cache",
            "--json",
        ];
        args.extend_from_slice(extra);
        args.push("tiny.yaml");
        let out = std::process::Command::new(util::arbor_bin())
            .args(&args)
            .current_dir(dir)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr).to_string();
        assert!(out.status.success(), "{stderr}");
        // Progress counts packages, cache hits included.
        assert!(stderr.contains("import: done: 4/4"), "{stderr}");
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        v
    };
    let v = compose_here(&["--timestamp", "2024-01-01T10:00:00Z"]);
    assert_eq!(v["ostree-version"], "12.20240101.0");
    let c1 = v["ostree-commit"].as_str().unwrap().to_string();
    let co = dir.join("co");
    arbor(&["checkout", "--repo", p(&repo), &c1, p(&co)]).ok();
    assert_eq!(
        fs::read_to_string(co.join("usr/etc/motd")).unwrap(),
        "hello from sub\n"
    );
    assert!(co.join("usr/share/tiny/hello wörld ☃ (copy).txt").is_file());
    for gone in [
        "usr/share/tiny/empty",
        "usr/share/tiny/hard-a",
        "usr/share/tiny/hard-b",
        "usr/share/doc/tiny-extras/README",
    ] {
        assert!(
            co.join(gone).symlink_metadata().is_err(),
            "{gone} should be gone"
        );
    }
    assert_eq!(
        fs::read_link(co.join("tmp")).unwrap(),
        Path::new("sysroot/tmp")
    );
    assert_eq!(fs::read(co.join("usr/etc/machine-id")).unwrap(), b"");
    let pkgs = arbor(&["db", "list", "--repo", p(&repo), &c1])
        .ok()
        .to_string();
    assert!(
        pkgs.contains("tiny-extras-") && pkgs.contains("tiny-app-"),
        "{pkgs}"
    );
    // Forced again the same day: the date's counter goes up; nothing changed.
    let v2 = compose_here(&["--timestamp", "2024-01-01T11:00:00Z", "--force-nocache"]);
    assert_eq!(v2["ostree-version"], "12.20240101.1");
    assert_eq!(v2["pkgdiff"], serde_json::json!([]));
    assert_ne!(v2["ostree-commit"], v["ostree-commit"]);
    // (The trees differ: rpm records install times in the rpmdb.)
    assert_eq!(v2["ostree-content-checksum"].as_str().unwrap().len(), 64);
    // The flattened treefile shows every variable, the reserved ones included.
    let flat = arbor(&[
        "compose",
        "--repo",
        p(&repo),
        "--print-only",
        p(&dir.join("tiny.yaml")),
    ])
    .ok()
    .to_string();
    let flat: serde_json::Value = serde_json::from_str(&flat).unwrap();
    assert_eq!(flat["variables"]["flavor"], "full");
    assert_eq!(flat["variables"]["basearch"], "x86_64");

    // Variants of tiny.yaml, composed into the same repository.
    let tiny = fs::read_to_string(dir.join("tiny.yaml")).unwrap();
    let compose_variant = |text: String, extra: &[&str]| {
        let variant = dir.join("variant.yaml");
        fs::write(&variant, text).unwrap();
        let cache = dir.join("cache");
        let mut args = vec!["compose", "--repo", p(&repo), "--cachedir", p(&cache)];
        args.extend_from_slice(extra);
        args.push(p(&variant));
        arbor(&args)
    };
    // The metadata key is not part of the input hash: changing it changes nothing.
    let with_metadata = tiny.clone() + "metadata: {note: '${flavor}'}\n";
    let r = compose_variant(with_metadata, &["--timestamp", "2024-01-01T12:00:00Z"]);
    assert!(r.stderr.contains("No apparent changes"), "{}", r.stderr);
    let flat = arbor(&["compose", "--print-only", p(&dir.join("variant.yaml"))])
        .ok()
        .to_string();
    assert!(flat.contains("\"note\": \"full\""), "{flat}");
    // A package remove-from-packages names that is not installed: a warning (shared
    // manifests name packages only some variants have), as in rpm-ostree.
    let r = compose_variant(tiny.replace("[[tiny, ", "[[not-installed, "), &[]);
    assert!(
        r.stderr
            .contains("remove-from-packages: package \"not-installed\" is not installed"),
        "{}",
        r.stderr
    );
    // A .repo file's disabled repo may use $releasever with none set: only the repos
    // used are substituted.
    fs::write(
        dir.join("other.repo"),
        "[other]\nbaseurl=http://example.invalid/$releasever_major/\nenabled=0\n",
    )
    .unwrap();
    let no_rel: String = tiny
        .lines()
        .filter(|l| !l.starts_with("releasever"))
        .map(|l| format!("{l}\n"))
        .collect();
    fs::write(dir.join("norel.yaml"), no_rel.replace("${releasever}", "1")).unwrap();
    fs::write(
        dir.join("corpus-tiny.repo"),
        format!(
            "[corpus-tiny]\nbaseurl=file://{}/tiny-12\nenabled=1\n",
            p(dir)
        ),
    )
    .unwrap();
    arbor(&["resolve", p(&dir.join("norel.yaml"))]).ok();

    // Refused, naming the culprit: an add-files destination under /usr/local.
    fs::write(
        dir.join("sub/common.yaml"),
        "add-files: [[motd, /usr/local/motd]]\n",
    )
    .unwrap();
    compose_variant(tiny, &[]).fails_with("unsupported destination \"/usr/local/motd\"");
}

/// A full disk mid-compose: the error names the file and the cause, the import phase
/// says it failed (not "done"), no ref is written and nothing is left in tmp/ or state/.
#[test]
fn compose_on_a_full_disk_fails_cleanly() {
    corpus_dir();
    let tmp = tempdir();
    let mnt = tmp.path().join("small");
    let _disk = util::SmallDisk::mount(&mnt, "1m");
    let repo = mnt.join("repo");
    arbor(&["init", "--repo", p(&repo)]).ok();
    let r = arbor(&[
        "compose",
        "--repo",
        p(&repo),
        "--cachedir",
        p(&tmp.path().join("cache")),
        p(&util::tiny_treefile(tmp.path())),
    ]);
    r.fails_with("No space left on device");
    assert!(r.stderr.contains(p(&repo)), "{}", r.stderr);
    assert!(r.stderr.contains("import: failed at"), "{}", r.stderr);
    assert!(!r.stderr.contains("import: done"), "{}", r.stderr);
    assert_eq!(arbor(&["refs", "--repo", p(&repo)]).ok(), "");
    for d in ["tmp", "state"] {
        assert_eq!(
            fs::read_dir(repo.join(d)).unwrap().count(),
            0,
            "{d}/ not empty"
        );
    }
    arbor(&["fsck", "--repo", p(&repo)]).ok();
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
    // No repository needed to print; `metadata` is carried through.
    let t = treefile_variant(&c, "tiny.yaml", tmp.path(), |s| {
        s + "metadata: {build-system: ci}\n"
    });
    let out = arbor(&["compose", "--print-only", p(&t)]).ok().to_string();
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["metadata"]["build-system"], "ci");
    let repo = tmp.path().join("repo");
    arbor(&["init", "--repo", p(&repo)]).ok();
    let dry = arbor(&[
        "compose",
        "--repo",
        p(&repo),
        "--dry-run",
        p(&util::tiny_treefile(tmp.path())),
    ]);
    assert_eq!(dry.ok().lines().count(), 3);
    // What would run and what would not, with the reasons.
    assert!(
        dry.stderr.contains("not run: tiny-2:1.2^git20240101-3~beta.x86_64: %pre: skipped by the treefile's scriptlet-overrides"),
        "{}",
        dry.stderr
    );
    assert_eq!(arbor(&["refs", "--repo", p(&repo)]).ok(), "");
    // Without the overrides, the dry run already refuses the Lua scriptlets, naming
    // each package and scriptlet.
    let r = arbor(&[
        "compose",
        "--repo",
        p(&repo),
        "--dry-run",
        p(&c.join("tiny.yaml")),
    ]);
    r.fails_with("Package 'tiny-2:1.2^git20240101-3~beta.x86_64' has (currently) unsupported <lua> script in '%pre'");
    r.fails_with("Package 'tiny-libs-2:1.2^git20240101-3~beta.x86_64' has (currently) unsupported <lua> script in '%post'");
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

// ---------------------------------------------------------------------------------------
// The composed tree against a real `rpm -i --root` of the same packages.

/// One entry of `arbor ls -R --json`, reduced to what the comparison looks at: for
/// directories the dirmeta (mode, owner, xattrs), never the dirtree checksum, which
/// only summarizes children that are compared one by one anyway.
#[derive(Debug, PartialEq, Eq)]
struct Node {
    kind: String,
    mode: u64,
    uid: u64,
    gid: u64,
    size: u64,
    checksum: String,
    target: Option<String>,
    xattrs: String,
}

/// The canonical dump of `rev` as path (relative, `""` for the root) → entry.
fn dump(repo: &str, rev: &str) -> std::collections::BTreeMap<String, Node> {
    let out = arbor(&["ls", "-R", "--json", "--repo", repo, rev])
        .ok()
        .to_string();
    out.lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            let kind = v["type"].as_str().unwrap().to_string();
            let node = Node {
                checksum: if kind == "dir" {
                    v["dirmeta"].as_str().unwrap().to_string()
                } else {
                    v["checksum"].as_str().unwrap().to_string()
                },
                kind,
                mode: v["mode"].as_u64().unwrap(),
                uid: v["uid"].as_u64().unwrap(),
                gid: v["gid"].as_u64().unwrap(),
                size: v["size"].as_u64().unwrap(),
                target: v["target"].as_str().map(str::to_string),
                xattrs: v["xattrs"].to_string(),
            };
            let path = v["path"].as_str().unwrap().trim_start_matches('/');
            (path.to_string(), node)
        })
        .collect()
}

/// The RPM files of `arbor resolve TREEFILE` in corpus repository `ver` (RPM file
/// names carry no epoch: `tiny-2:1.2-3.x86_64` is `tiny-1.2-3.x86_64.rpm`).
fn resolved_rpms(c: &Path, ver: &str, treefile: &Path) -> Vec<std::path::PathBuf> {
    arbor(&["resolve", p(treefile)])
        .ok()
        .lines()
        .map(|nevra| {
            let file = match nevra.find(':') {
                Some(colon) => {
                    let dash = nevra[..colon].rfind('-').expect("name-epoch:");
                    format!("{}{}", &nevra[..=dash], &nevra[colon + 1..])
                }
                None => nevra.to_string(),
            };
            let f = c.join(ver).join("Packages").join(format!("{file}.rpm"));
            assert!(f.is_file(), "{} missing", f.display());
            f
        })
        .collect()
}

/// `rpm -i --root DEST --nodeps --noscripts` of `rpms`, as root (so rpm applies owners
/// and file capabilities). The package that ships `/etc/passwd` goes in first, in its
/// own transaction: rpm maps owner names through the target's passwd/group at install
/// time, and arbor (like rpm-ostree, which applies owners after all packages are laid
/// down) maps them through that package's passwd/group for every package. Without
/// this, rpm's own ordering decides whether e.g. `shadow`-group files become root's.
/// Returns every path the packages list (rpm also creates unlisted parent directories).
fn rpm_install(rpms: &[std::path::PathBuf], dest: &Path) -> std::collections::HashSet<String> {
    use std::os::unix::fs::PermissionsExt;
    fs::create_dir_all(dest).unwrap();
    fs::set_permissions(dest, fs::Permissions::from_mode(0o755)).unwrap();
    let mut listed = std::collections::HashSet::new();
    let mut ships_passwd = |r: &Path| {
        let list = util::run("rpm", &["-qlp", "--nosignature", "--nodigest", p(r)]);
        let mut found = false;
        for l in list.ok().lines() {
            found |= l == "/etc/passwd";
            listed.insert(l.to_string());
        }
        found
    };
    let (first, rest): (Vec<_>, Vec<_>) = rpms.iter().partition(|r| ships_passwd(r));
    for batch in [first, rest] {
        if batch.is_empty() {
            continue;
        }
        let batch: Vec<&Path> = batch.iter().map(|r| r.as_ref()).collect();
        util::rpm_install(dest, &batch, &[]);
    }
    listed
}

/// rpm-ostree's path translations (compose-anchors §2.1 step 7, and arbor's
/// `compose/src/import/paths.rs`), applied to an installed root: `etc/` → `usr/etc/`,
/// `boot/` → `usr/lib/ostree-boot/`, `opt/X` → `usr/lib/opt/X`,
/// `var/lib/{alternatives,vagrant}` → `usr/lib/…`; directories and symlinks under
/// `var/` and `run/` become tmpfiles.d lines (returned, as `(type, path, mode, user,
/// group, target)`), files there are dropped, and so is rpm's own database in
/// `var/lib/rpm`: all of it leaves the tree.
/// Directories rpm created only as parents (not in `listed`) get no line: rpm-ostree
/// translates header entries only, and systemd-tmpfiles creates parents itself.
fn translate_like_rpm_ostree(
    root: &Path,
    listed: &std::collections::HashSet<String>,
) -> std::collections::BTreeSet<Tmpfile> {
    let mv = |from: &str, to: &str| {
        let (src, dst) = (root.join(from), root.join(to));
        if src.symlink_metadata().is_ok() {
            fs::create_dir_all(dst.parent().unwrap()).unwrap();
            fs::rename(&src, &dst).unwrap_or_else(|e| panic!("{from} → {to}: {e}"));
            true
        } else {
            false
        }
    };
    mv("etc", "usr/etc");
    mv("boot", "usr/lib/ostree-boot");
    let mut lines = std::collections::BTreeSet::new();
    let link = |path: String, target: String| Tmpfile {
        kind: 'L',
        path,
        mode: 0,
        user: "-".into(),
        group: "-".into(),
        target,
    };
    for moved in ["alternatives", "vagrant"] {
        if mv(&format!("var/lib/{moved}"), &format!("usr/lib/{moved}")) {
            lines.insert(link(
                format!("/var/lib/{moved}"),
                format!("../../usr/lib/{moved}"),
            ));
        }
    }
    if let Ok(opt) = fs::read_dir(root.join("opt")) {
        for e in opt {
            let name = e.unwrap().file_name().into_string().unwrap();
            mv(&format!("opt/{name}"), &format!("usr/lib/opt/{name}"));
            lines.insert(link(
                format!("/opt/{name}"),
                format!("../../usr/lib/opt/{name}"),
            ));
        }
    }
    let names = |file: &str| -> std::collections::HashMap<u32, String> {
        let text = fs::read_to_string(root.join("usr/etc").join(file)).unwrap_or_default();
        let mut m = std::collections::HashMap::new();
        for l in text.lines() {
            let f: Vec<&str> = l.split(':').collect();
            if let Some(id) = f.get(2).and_then(|x| x.parse().ok()) {
                m.entry(id).or_insert_with(|| f[0].to_string());
            }
        }
        m
    };
    let (users, groups) = (names("passwd"), names("group"));
    let mut stack = vec!["var".to_string(), "run".to_string()];
    while let Some(rel) = stack.pop() {
        let Ok(rd) = fs::read_dir(root.join(&rel)) else {
            continue;
        };
        for e in rd {
            let e = e.unwrap();
            let child = format!("{rel}/{}", e.file_name().into_string().unwrap());
            if child == "var/lib/rpm" {
                continue;
            }
            use std::os::unix::fs::MetadataExt;
            let m = e.path().symlink_metadata().unwrap();
            let abs = match child.strip_prefix("var/run/") {
                Some(rest) => format!("/run/{rest}"),
                None => format!("/{child}"),
            };
            if m.file_type().is_symlink() {
                let target = fs::read_link(e.path()).unwrap();
                lines.insert(link(abs, target.to_str().unwrap().to_string()));
            } else if m.is_dir() && !listed.contains(&format!("/{child}")) {
                stack.push(child);
            } else if m.is_dir() {
                let name = |map: &std::collections::HashMap<u32, String>, id: u32| {
                    map.get(&id).cloned().unwrap_or_else(|| "root".into())
                };
                lines.insert(Tmpfile {
                    kind: 'd',
                    path: abs,
                    mode: m.mode() & 0o7777,
                    user: name(&users, m.uid()),
                    group: name(&groups, m.gid()),
                    target: String::new(),
                });
                stack.push(child);
            }
        }
    }
    for gone in ["var", "run"] {
        let _ = fs::remove_dir_all(root.join(gone));
    }
    lines
}

/// One tmpfiles.d line (`d` or `L`), parsed.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Tmpfile {
    kind: char,
    path: String,
    mode: u32,
    user: String,
    group: String,
    target: String,
}

/// The lines of arbor's per-package fragments (usr/lib/rpm-ostree/tmpfiles.d), with
/// owner names the tree's passwd/group do not know mapped to root and the
/// setuid/setgid bits that came with them dropped, as rpm does on install.
fn arbor_tmpfiles(
    repo: &str,
    rev: &str,
    paths: impl Iterator<Item = String>,
) -> std::collections::BTreeSet<Tmpfile> {
    let cat = |path: &str| arbor(&["cat", "--repo", repo, rev, path]).ok().to_string();
    let known = |files: &[&str]| -> std::collections::HashSet<String> {
        files
            .iter()
            .map(|f| arbor(&["cat", "--repo", repo, rev, f]).stdout)
            .flat_map(|t| {
                t.lines()
                    .filter_map(|l| l.split(':').next().map(str::to_string))
                    .collect::<Vec<_>>()
            })
            .collect()
    };
    let users = known(&["/usr/etc/passwd", "/usr/lib/passwd"]);
    let groups = known(&["/usr/etc/group", "/usr/lib/group"]);
    let mut out = std::collections::BTreeSet::new();
    for frag in paths {
        for line in cat(&frag).lines() {
            // PATH is the only field that may be quoted ('…', ' as '\'').
            let (kind, rest) = line.split_at(2);
            let (path, rest) = match rest.strip_prefix('\'') {
                Some(q) => {
                    let end = q.find("' ").expect("closing quote");
                    (q[..end].replace("'\\''", "'"), &q[end + 2..])
                }
                None => {
                    let (path, rest) = rest.split_once(' ').unwrap();
                    (path.to_string(), rest)
                }
            };
            let f: Vec<&str> = rest.splitn(5, ' ').collect();
            let mut t = Tmpfile {
                kind: kind.chars().next().unwrap(),
                path,
                mode: 0,
                user: "-".into(),
                group: "-".into(),
                target: String::new(),
            };
            if t.kind == 'L' {
                t.target = f[4].to_string();
            } else {
                let mut mode = u32::from_str_radix(f[0], 8).unwrap();
                t.user = f[1].to_string();
                t.group = f[2].to_string();
                if !users.contains(&t.user) {
                    t.user = "root".into();
                    mode &= !0o4000;
                }
                if !groups.contains(&t.group) {
                    t.group = "root".into();
                    mode &= !0o2000;
                }
                t.mode = mode;
            }
            out.insert(t);
        }
    }
    out
}

/// Paths that arbor's assembly adds or rewrites on purpose, so they are not expected to
/// equal the plain rpm install. Each entry covers the path and everything below it.
/// (Everything else must match exactly.)
const ASSEMBLY_PATHS: &[&str] = &[
    // rpm-ostree's root skeleton (compose-anchors §2.1 step 13): these top-level
    // entries are the ostree layout's own directories and symlinks (home → var/home,
    // tmp, sysroot, …), replacing whatever packages ship there; `usr/local` becomes
    // the link `../var/usrlocal`.
    "boot",
    "dev",
    "home",
    "media",
    "mnt",
    "opt",
    "ostree",
    "proc",
    "root",
    "run",
    "srv",
    "sys",
    "sysroot",
    "tmp",
    "var",
    "usr/local",
    // The rpmdb written by `rpm --justdb` into usr/share/rpm (step 11; rpm's own
    // database of the reference install lives under var/ and is gone), the link and
    // macro pointing rpm at it, and the tmpfiles.d line for /var/lib/rpm.
    "usr/share/rpm",
    "usr/lib/sysimage/rpm",
    "usr/lib/rpm/macros.d/macros.rpm-ostree",
    "usr/lib/tmpfiles.d/rpm-ostree-0-integration.conf",
    // opt-usrlocal's tmpfiles.d lines (/var/opt, /var/usrlocal/*).
    "usr/lib/tmpfiles.d/rpm-ostree-0-integration-opt-usrlocal.conf",
    // Per-package tmpfiles.d fragments standing in for var/ and run/ content
    // (checked against the reference install's var/ and run/ separately).
    "usr/lib/rpm-ostree",
    // The flattened treefile (step 12).
    "usr/share/rpm-ostree",
    // passwd/group split and nsswitch altfiles (step 14).
    "usr/etc/passwd",
    "usr/etc/group",
    "usr/lib/passwd",
    "usr/lib/group",
    "usr/etc/nsswitch.conf",
    // machineid-compat (step 14).
    "usr/etc/machine-id",
];

fn assembly_path(path: &str, extra: &[String]) -> bool {
    ASSEMBLY_PATHS
        .iter()
        .copied()
        .chain(extra.iter().map(String::as_str))
        .any(|x| path == x || path.strip_prefix(x).is_some_and(|r| r.starts_with('/')))
}

/// Compose `name` (v1 or tiny) with arbor, install the same RPMs with rpm, translate,
/// commit that tree with `arbor commit`, and compare the two dumps path by path.
/// `extra` lists further assembly-made paths for this treefile (its `units`, …).
fn composed_tree_equals_rpm_install(name: &str, extra: &[String]) {
    let c = corpus_dir();
    let tmp = tempdir();
    let treefile = match name {
        "tiny" => util::tiny_treefile(tmp.path()),
        _ => c.join(format!("{name}.yaml")),
    };
    let (repo, commit, _) = compose(tmp.path(), &treefile, &[]);
    let rpms = resolved_rpms(&c, name, &treefile);
    let root = tmp.path().join("rpm-root");
    let listed = rpm_install(&rpms, &root);
    let want_tmpfiles = translate_like_rpm_ostree(&root, &listed);
    arbor(&["commit", "--repo", &repo, "-b", "rpm-install", p(&root)]).ok();
    let ours = dump(&repo, &commit);
    let theirs = dump(&repo, "rpm-install");
    // var/ and run/ of the install, as tmpfiles.d lines.
    let fragments = ours
        .keys()
        .filter(|k| k.starts_with("usr/lib/rpm-ostree/tmpfiles.d/"))
        .map(|k| format!("/{k}"));
    let got_tmpfiles = arbor_tmpfiles(&repo, &commit, fragments);
    let missing: Vec<_> = want_tmpfiles.difference(&got_tmpfiles).collect();
    let extra_lines: Vec<_> = got_tmpfiles.difference(&want_tmpfiles).collect();
    assert!(
        missing.is_empty() && extra_lines.is_empty(),
        "{name}: tmpfiles.d differs from the install's var/ and run/:\nmissing {missing:#?}\nextra {extra_lines:#?}"
    );
    let mut problems = Vec::new();
    let mut compared = 0;
    // Directories arbor creates only to hold assembly-made files (usr/lib/sysimage for
    // the rpm link, …) are root:root 0755 like any implicit parent.
    let implicit_parent = |path: &str, n: &Node| {
        n.kind == "dir"
            && (n.mode, n.uid, n.gid, n.xattrs.as_str()) == (0o40755, 0, 0, "{}")
            && ours
                .keys()
                .any(|q| assembly_path(q, extra) && q.starts_with(&format!("{path}/")))
    };
    for (path, a) in &ours {
        if assembly_path(path, extra) || (!theirs.contains_key(path) && implicit_parent(path, a)) {
            continue;
        }
        match theirs.get(path) {
            None => problems.push(format!("only in arbor's tree: /{path} {a:?}")),
            Some(b) if a != b => problems.push(format!("/{path}:\n  arbor {a:?}\n  rpm   {b:?}")),
            Some(_) => compared += 1,
        }
    }
    for (path, b) in &theirs {
        if !assembly_path(path, extra) && !ours.contains_key(path) {
            problems.push(format!("only in the rpm install: /{path} {b:?}"));
        }
    }
    assert!(
        problems.is_empty(),
        "{name}: {} differences ({compared} paths equal):\n{}",
        problems.len(),
        problems[..problems.len().min(60)].join("\n")
    );
    assert!(compared > 10, "{name}: only {compared} paths compared");
    eprintln!("{name}: {compared} paths equal to the rpm install");
}

#[test]
fn composed_tiny_equals_rpm_install() {
    composed_tree_equals_rpm_install("tiny", &[]);
}

#[test]
fn composed_v1_equals_rpm_install() {
    // v1.yaml's `units` links and `default-target` (compose-anchors §2.1 step 12):
    // the rpm install keeps the package's default.target (graphical.target).
    let mut extra: Vec<String> = [
        "usr/etc/systemd/system/multi-user.target.wants/systemd-networkd.service",
        "usr/etc/systemd/system/multi-user.target.wants/ssh.service",
        "usr/lib/systemd/system/default.target",
    ]
    .map(String::from)
    .to_vec();
    // The initramfs step (rpm-ostree's kernel handling): depmod's indexes and the
    // initramfs the tree's mkinitramfs makes, also under /usr/lib/ostree-boot
    // (boot-location: new).
    let kver = util::corpus::kernel("v1").kver;
    for f in [
        "initramfs.img",
        "modules.alias",
        "modules.alias.bin",
        "modules.builtin.alias.bin",
        "modules.builtin.bin",
        "modules.dep",
        "modules.dep.bin",
        "modules.devname",
        "modules.softdep",
        "modules.symbols",
        "modules.symbols.bin",
        "modules.weakdep",
    ] {
        extra.push(format!("usr/lib/modules/{kver}/{f}"));
    }
    extra.push(format!("usr/lib/ostree-boot/initramfs-{kver}.img"));
    extra.push(format!("usr/lib/ostree-boot/vmlinuz-{kver}"));
    composed_tree_equals_rpm_install("v1", &extra);
}

/// A compose killed while it writes objects leaves a marker of its unsynced objects; the
/// next command to open the repository checks those objects (removing damaged ones),
/// drops the marker, and the compose then completes into a repository both fsck's pass.
#[test]
fn killed_compose_is_recovered_by_the_next() {
    let c = corpus_dir();
    let tmp = tempdir();
    let (repo, _, _) = compose(tmp.path(), &c.join("v1.yaml"), &[]);
    let state = Path::new(&repo).join("state");
    let markers = || {
        fs::read_dir(&state)
            .unwrap()
            .filter(|e| {
                let name = e.as_ref().unwrap().file_name();
                name.to_string_lossy().starts_with("arbor-unsynced-")
            })
            .count()
    };
    assert_eq!(markers(), 0, "v1's compose synced and dropped its marker");
    let cache = tmp.path().join("cache");
    let v2 = c.join("v2.yaml");
    let args = [
        "compose",
        "--repo",
        &repo,
        "--cachedir",
        p(&cache),
        "--timestamp",
        "2024-01-01T00:00:00Z",
        p(&v2),
    ];
    let mut child = std::process::Command::new(util::arbor_bin())
        .args(args)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Kill it as soon as it has started writing objects (the marker appears first).
    let start = std::time::Instant::now();
    while markers() == 0 && start.elapsed().as_secs() < 30 {
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    child.kill().unwrap();
    let status = child.wait().unwrap();
    assert!(!status.success(), "killed mid-compose");
    assert_eq!(markers(), 1, "the killed compose left its marker");

    let again = arbor(&[&["-v"][..], &args[..]].concat());
    again.ok();
    assert!(
        again
            .stderr
            .contains("a writer stopped before syncing its objects"),
        "{}",
        again.stderr
    );
    assert_eq!(markers(), 0);
    arbor(&["fsck", "--repo", &repo]).ok();
    util::ostree(&[&format!("--repo={repo}"), "fsck"]).ok();
}

/// `arbor fetch` resolves and downloads over HTTP (keeping the repodata); with the
/// server gone, `compose --offline` builds from the cache alone. Offline without a
/// filled cache is an error saying what to do.
#[test]
fn fetch_then_compose_offline() {
    let tmp = tempdir();
    let dir = tmp.path();
    let t = util::fx_treefile(dir, &["fx-base", "fx-app"], "");
    let server = util::HttpServer::start(&util::scriptlet_fixtures());
    fs::write(
        dir.join("fx.repo"),
        format!("[fx]\nbaseurl={}\nenabled=1\n", server.url()),
    )
    .unwrap();
    let repo = dir.join("repo");
    arbor(&["init", "--repo", p(&repo)]).ok();
    let empty = dir.join("empty-cache");
    drop(server);
    arbor(&[
        "compose",
        "--repo",
        p(&repo),
        "--cachedir",
        p(&empty),
        "--offline",
        p(&t),
    ])
    .fails_with("no cached metadata");
    let server = util::HttpServer::start(&util::scriptlet_fixtures());
    fs::write(
        dir.join("fx.repo"),
        format!("[fx]\nbaseurl={}\nenabled=1\n", server.url()),
    )
    .unwrap();
    let cache = dir.join("cache");
    let url = server.url();
    let out = arbor(&["fetch", "--cachedir", p(&cache), "--json", p(&t)])
        .ok()
        .to_string();
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(v["packages"], 2);
    assert_eq!(v["downloaded"], 2);
    drop(server);
    let c = arbor(&[
        "compose",
        "--repo",
        p(&repo),
        "--cachedir",
        p(&cache),
        "--offline",
        p(&t),
    ])
    .ok()
    .trim()
    .to_string();
    assert_eq!(c.len(), 64, "{c}");
    arbor(&["fsck", "--repo", p(&repo)]).ok();
    // A package the cache lacks is named.
    let t2 = util::fx_treefile(dir, &["fx-base", "fx-app", "fx-var"], "");
    fs::write(
        dir.join("fx.repo"),
        format!("[fx]\nbaseurl={url}\nenabled=1\n"),
    )
    .unwrap();
    arbor(&[
        "compose",
        "--repo",
        p(&repo),
        "--cachedir",
        p(&cache),
        "--offline",
        p(&t2),
    ])
    .fails_with("fx-var-1-1.x86_64 is not in the cache");
}
