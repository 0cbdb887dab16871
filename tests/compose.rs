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
