//! `arbor release` (compose → deltas → publish) and `arbor db`, end to end: the corpus
//! released to a real S3 server (garage), deployed and upgraded by the real
//! `ostree admin` in a fake sysroot from garage's web endpoint.

mod util {
    pub use arbor_tests::*;
}

use std::fs;
use std::path::Path;

use serde_json::Value;
use util::{arbor, corpus_dir, json, ostree, p, run, tempdir, Garage, Run};

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .unwrap_or_else(|| panic!("not an array: {v}"))
        .iter()
        .map(|s| s.as_str().expect("string").to_string())
        .collect()
}

#[test]
fn release_corpus_to_garage_then_upgrade_a_sysroot() {
    let c = corpus_dir();
    let g = Garage::start();
    let tmp = tempdir();
    // Each "runner" starts empty (a CI job): its own repository and cache, created by its
    // first release; only the destination carries the history from one to the next.
    let runner = |name: &str| {
        (
            tmp.path().join(name).join("repo"),
            tmp.path().join(name).join("cache"),
        )
    };
    let (repo_a, cache_a) = runner("a");
    let (repo, cache) = runner("b");
    let url = g.url("os");
    let release_on = |treefile: &str, (repo, cache): (&Path, &Path), extra: &[&str]| -> Run {
        let tf = c.join(treefile);
        let mut args = vec![
            "release",
            p(&tf),
            "--repo",
            p(repo),
            "--cachedir",
            p(cache),
            "--to",
            &url,
            "--json",
        ];
        if !extra.contains(&"--delta-depth") {
            args.extend_from_slice(&["--delta-depth", "1"]);
        }
        args.extend_from_slice(extra);
        g.arbor(&args)
    };
    let release = |treefile: &str, extra: &[&str]| {
        release_on(treefile, (repo.as_path(), cache.as_path()), extra)
    };
    let reference = "corpus/bookworm/x86_64/minimal";

    // v1: runner A, a new repository, the first commit, published.
    let r1 = release_on("v1.yaml", (repo_a.as_path(), cache_a.as_path()), &[]);
    let j1 = json(r1.ok_ref());
    let c1 = j1["commit"].as_str().unwrap().to_string();
    assert_eq!(j1["new_commit"], true, "{j1}");
    assert_eq!(j1["version"], "12.1");
    assert_eq!(
        j1["packages"]["added"].as_array().unwrap().len(),
        util::corpus::resolved("v1").len()
    );
    assert_eq!(j1["published"]["advertised_refs"][reference], c1.as_str());
    for phase in ["compose", "delta", "publish", "total"] {
        assert!(j1["timings"][phase].is_number(), "timings.{phase}: {j1}");
    }

    // A client deploys v1 from garage's web endpoint into a fake sysroot.
    let sys = tmp.path().join("sysroot");
    fs::create_dir_all(&sys).unwrap();
    let s = format!("--sysroot={}", p(&sys));
    let srepo = format!("--repo={}/ostree/repo", p(&sys));
    ostree(&["admin", "init-fs", p(&sys)]).ok();
    ostree(&["admin", "os-init", &s, "corpus"]).ok();
    ostree(&[
        &srepo,
        "remote",
        "add",
        "--no-gpg-verify",
        "origin",
        &g.web("os"),
    ])
    .ok();
    ostree(&[&srepo, "pull", "origin", reference]).ok();
    ostree(&[
        "admin",
        "deploy",
        &s,
        "--os=corpus",
        &format!("origin:{reference}"),
    ])
    .ok();
    // A local /etc change in the v1 deployment: a new file and an edited one.
    let etc1 = sys.join(format!("ostree/deploy/corpus/deploy/{c1}.0/etc"));
    fs::write(etc1.join("arbor-local.conf"), "kept across upgrades\n").unwrap();
    let issue = fs::read_to_string(etc1.join("issue")).expect("/etc/issue from base-files");
    fs::write(etc1.join("issue"), format!("{issue}edited locally\n")).unwrap();

    // v2: the corpus's update (packages upgraded, the kernel replaced), released by runner
    // B, which starts empty: it continues the published history (parent v1, version
    // counter, a v1→v2 delta) having fetched v1's metadata and the old versions of the
    // files it bsdiffs — less than the tree.
    let r2 = release("v2.yaml", &[]);
    let j2 = json(r2.ok_ref());
    let fetched = j2["fetched"]["bytes"].as_u64().unwrap()
        + j2["fetched"]["bsdiff_bytes"].as_u64().unwrap_or(0);
    let tree_bytes = j1["published"]["bytes_uploaded"]
        .as_u64()
        .or_else(|| j1["published"]["requests"]["bytes_uploaded"].as_u64())
        .unwrap_or(u64::MAX);
    eprintln!(
        "runner B fetched {fetched} bytes from the destination (v1 published {tree_bytes} bytes; v1→v2 delta {} bytes)",
        j2["deltas"][0]["part_bytes"]
    );
    assert_eq!(j2["fetched"]["head"], c1.as_str(), "{j2}");
    assert!(
        fetched < tree_bytes,
        "fetched {fetched} of {tree_bytes}: {j2}"
    );
    let c2 = j2["commit"].as_str().unwrap().to_string();
    assert_eq!(j2["new_commit"], true, "{j2}");
    assert_eq!(j2["parent"], c1.as_str());
    assert_eq!(j2["version"], "12.2");
    assert_eq!(j2["deltas"].as_array().unwrap().len(), 1, "{j2}");
    assert_eq!(j2["deltas"][0]["from"], c1.as_str());
    assert!(
        j2["published"]["deltas_uploaded"].as_u64().unwrap() >= 1,
        "{j2}"
    );

    // What changed, as the corpus's own resolutions say (they follow Debian's archive).
    let diff = util::corpus::diff("v1", "v2");
    eprintln!("corpus: {}", util::corpus::stats_line());
    let upgraded: Vec<String> = diff.upgraded.iter().map(|(o, _)| o.name.clone()).collect();
    let removed: Vec<String> = diff.removed.iter().map(|p| p.nevra.clone()).collect();
    let added: Vec<String> = diff.added.iter().map(|p| p.nevra.clone()).collect();
    assert!(
        !upgraded.is_empty(),
        "the corpus has no update between v1 and v2"
    );
    assert!(
        diff.downgraded.is_empty(),
        "v2 is the newest of each package: {diff:?}"
    );
    let names = |v: &Value| -> Vec<String> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|x| x["name"].as_str().unwrap().to_string())
            .collect()
    };
    // `arbor db diff` says the same, and so did the release.
    let d = json(arbor(&["db", "diff", "--repo", p(&repo), &c1, &c2, "--json"]).ok_ref());
    assert_eq!(names(&d["upgraded"]), upgraded, "{d}");
    assert!(d["downgraded"].as_array().unwrap().is_empty(), "{d}");
    assert_eq!(strings(&d["removed"]), removed);
    assert_eq!(strings(&d["added"]), added);
    assert_eq!(names(&j2["packages"]["upgraded"]), upgraded);
    assert_eq!(strings(&j2["packages"]["removed"]), removed);
    let text = arbor(&["db", "diff", "--repo", p(&repo), reference])
        .ok()
        .to_string();
    // The text form: every upgrade as `name old-evr -> new-evr`, removals and additions
    // by NEVRA.
    assert!(text.contains("Upgraded:\n"), "{text}");
    for (o, n) in &diff.upgraded {
        let line = format!("\n  {} {} -> {}\n", o.name, o.evr, n.evr);
        assert!(text.contains(&line), "{line:?} not in:\n{text}");
    }
    for (head, list) in [("Removed:", &removed), ("Added:", &added)] {
        assert_eq!(text.contains(head), !list.is_empty(), "{text}");
        for nevra in list {
            assert!(
                text.contains(&format!("\n  {nevra}\n")),
                "{nevra} not in:\n{text}"
            );
        }
    }
    let list = arbor(&["db", "list", "--repo", p(&repo), &c2])
        .ok()
        .to_string();
    let mut want: Vec<String> = util::corpus::resolved("v2")
        .into_values()
        .map(|p| p.nevra)
        .collect();
    want.sort();
    assert_eq!(list.lines().collect::<Vec<_>>(), want);

    // The client upgrades to v2 through the static delta, keeping its /etc changes.
    let pull_through_a_delta = || util::pull_through_a_delta(&srepo, reference);
    pull_through_a_delta();
    ostree(&["admin", "upgrade", &s, "--os=corpus"]).ok();
    let status = ostree(&["admin", "status", &s]).ok().to_string();
    assert!(status.contains(&c1) && status.contains(&c2), "{status}");
    let etc2 = sys.join(format!("ostree/deploy/corpus/deploy/{c2}.0/etc"));
    assert_eq!(
        fs::read_to_string(etc2.join("arbor-local.conf")).unwrap(),
        "kept across upgrades\n"
    );
    assert!(fs::read_to_string(etc2.join("issue"))
        .unwrap()
        .ends_with("edited locally\n"));
    let diff = ostree(&["admin", "config-diff", &s, "--os=corpus"])
        .ok()
        .to_string();
    assert!(
        diff.lines()
            .any(|l| l.starts_with('A') && l.ends_with("arbor-local.conf")),
        "{diff}"
    );
    assert!(
        diff.lines()
            .any(|l| l.starts_with('M') && l.ends_with("issue")),
        "{diff}"
    );
    ostree(&[&srepo, "fsck"]).ok();

    // Runner C, empty, unchanged inputs: the published head's inputs decide "nothing new"
    // before any RPM is downloaded, having fetched under 1 MB.
    let (repo_c, cache_c) = runner("c");
    let rc = release_on(
        "v2.yaml",
        (repo_c.as_path(), cache_c.as_path()),
        &["--unchanged-exit-77"],
    );
    assert_eq!(rc.status, 77, "{}\n{}", rc.stdout, rc.stderr);
    let jc = json(&rc);
    assert!(jc["fetched"]["bytes"].as_u64().unwrap() < 1 << 20, "{jc}");
    let rpms = run("find", &[p(&cache_c), "-name", "*.rpm"]);
    assert_eq!(rpms.ok().trim(), "", "runner C downloaded RPMs");

    // Unchanged inputs: nothing to do, exit 77 when asked, fast beyond resolving.
    let r3 = release("v2.yaml", &["--unchanged-exit-77"]);
    assert_eq!(r3.status, 77, "{}\n{}", r3.stdout, r3.stderr);
    let j3 = json(&r3);
    assert_eq!(j3["changed"], false, "{j3}");
    assert_eq!(j3["commit"], c2.as_str());
    assert_eq!(j3["published"]["objects_uploaded"], 0);
    assert!(r3.stderr.contains("nothing new"), "{}", r3.stderr);
    let total = j3["timings"]["total"].as_f64().unwrap();
    let resolve = j3["compose"]["timings"]["resolve"].as_f64().unwrap();
    eprintln!("no-op release: {total:.3}s in all, {resolve:.3}s resolving");
    assert!(
        total - resolve < 1.0,
        "no-op release took {total}s ({resolve}s resolving)"
    );
    // Without the flag the same no-op exits 0.
    release("v2.yaml", &[]).ok();

    // Runner D, empty, a rebuild (--force-nocache) with --delta-depth 2: deltas from the
    // published head and from its parent, having fetched the parent's metadata (and
    // old file versions to bsdiff) — still less than the tree.
    let (repo_d, cache_d) = runner("d");
    let rd = release_on(
        "v2.yaml",
        (repo_d.as_path(), cache_d.as_path()),
        &["--force-nocache", "--delta-depth", "2"],
    );
    let jd = json(rd.ok_ref());
    let c4 = jd["commit"].as_str().unwrap().to_string();
    assert_eq!(jd["parent"], c2.as_str(), "{jd}");
    assert_eq!(jd["version"], "12.2.1", "{jd}");
    let mut froms: Vec<&str> = jd["deltas"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["from"].as_str().unwrap())
        .collect();
    froms.sort();
    let mut want = vec![c1.as_str(), c2.as_str()];
    want.sort();
    assert_eq!(froms, want, "{jd}");
    assert!(
        jd["fetched"]["parent_objects"].as_u64().unwrap() > 0,
        "{jd}"
    );
    let fetched_d = jd["fetched"]["bytes"].as_u64().unwrap()
        + jd["fetched"]["parent_bytes"].as_u64().unwrap_or(0)
        + jd["fetched"]["bsdiff_bytes"].as_u64().unwrap_or(0);
    assert!(fetched_d < tree_bytes, "fetched {fetched_d}: {jd}");
    // The client (on v2) upgrades through a delta, then rolls back.
    pull_through_a_delta();
    ostree(&["admin", "upgrade", &s, "--os=corpus"]).ok();
    let first = |st: &str| st.lines().next().unwrap_or("").to_string();
    let status = ostree(&["admin", "status", &s]).ok().to_string();
    assert!(first(&status).contains(&c4), "{status}");
    ostree(&["admin", "undeploy", &s, "0"]).ok();
    let status = ostree(&["admin", "status", &s]).ok().to_string();
    assert!(
        first(&status).contains(&c2) && !status.contains(&c4),
        "rolled back to v2: {status}"
    );
    ostree(&[&srepo, "fsck"]).ok();

    for d in fs::read_dir(sys.join("ostree/deploy/corpus/deploy")).unwrap() {
        let d = d.unwrap().path();
        if d.is_dir() {
            run("chattr", &["-i", p(&d)]);
        }
    }
}

#[test]
fn release_progress_json_and_bad_inputs() {
    corpus_dir();
    let tmp = tempdir();
    let repo = tmp.path().join("repo");
    let dest = tmp.path().join("published");
    let to = format!("file://{}", p(&dest));
    let tf = util::tiny_treefile(tmp.path());
    let r = arbor(&[
        "release",
        p(&tf),
        "--repo",
        p(&repo),
        "--to",
        &to,
        "--empty-delta",
        "--progress=json",
    ]);
    let commit = r.ok().trim().to_string();
    assert_eq!(commit.len(), 64, "{}", r.stdout);
    let mut finished = Vec::new();
    for line in r.stderr.lines() {
        let v: Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("stderr line is not JSON ({e}): {line}\n{}", r.stderr));
        let event = v["event"].as_str().expect("event");
        assert!(
            ["start", "progress", "finish", "step", "log"].contains(&event),
            "{v}"
        );
        if event == "finish" {
            assert!(v["done"].is_u64() && v["seconds"].is_number(), "{v}");
            finished.push(v["phase"].as_str().unwrap().to_string());
        }
    }
    for phase in ["resolve", "fetch", "import", "delta", "objects", "commits"] {
        assert!(
            finished.iter().any(|f| f == phase),
            "no finish event for {phase}: {finished:?}\n{}",
            r.stderr
        );
    }
    // A client pulls it from the destination directory with the from-scratch delta.
    let client = util::Client::host(&tmp.path().join("client"), &to);
    client
        .ostree(&[
            "pull",
            "--require-static-deltas",
            "origin",
            "corpus/tiny/x86_64",
        ])
        .ok();
    assert_eq!(
        client
            .ostree(&["rev-parse", "origin:corpus/tiny/x86_64"])
            .ok()
            .trim(),
        commit
    );
    // Plain progress (not a terminal): short log lines, no escape codes.
    let again = arbor(&["release", p(&tf), "--repo", p(&repo), "--to", &to]);
    again.ok();
    assert!(!again.stderr.contains('\x1b'), "{}", again.stderr);
    assert!(
        again.stderr.contains("release: nothing new"),
        "{}",
        again.stderr
    );

    // Bad inputs: clear errors, non-zero exit, nothing created.
    let other = tmp.path().join("other");
    let e = arbor(&[
        "release",
        p(&tf),
        "--repo",
        p(&other),
        "--to",
        "http://127.0.0.1:9/repo",
    ]);
    e.fails_with("read-only");
    assert!(
        !other.exists(),
        "nothing is created when the destination is wrong"
    );
    // An unreachable S3 endpoint fails before composing, naming the endpoint.
    let port = util::free_port();
    let o = std::process::Command::new(util::arbor_bin())
        .args([
            "release",
            p(&tf),
            "--repo",
            p(&other),
            "--to",
            "s3://bucket/x",
        ])
        .env("AWS_ENDPOINT_URL", format!("http://127.0.0.1:{port}"))
        .env("AWS_ACCESS_KEY_ID", "k")
        .env("AWS_SECRET_ACCESS_KEY", "s")
        .env("AWS_REGION", "garage")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_ne!(o.status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains("before composing") && stderr.contains(&format!("127.0.0.1:{port}")),
        "{stderr}"
    );
    assert!(
        !other.exists(),
        "nothing is created when the destination is unreachable"
    );
    arbor(&[
        "release",
        "/nonexistent/tree.yaml",
        "--repo",
        p(&other),
        "--to",
        &to,
    ])
    .fails_with("/nonexistent/tree.yaml");
    arbor(&[
        "release",
        p(&tf),
        "--repo",
        p(&repo),
        "--to",
        &to,
        "--memory-limit",
        "lots",
    ])
    .fails_with("unknown size suffix");
    arbor(&["db", "list", "--repo", p(&repo), "no/such/ref"]).fails_with("no/such/ref");
    // A commit that was not composed has no package list: said so.
    let plain = tmp.path().join("plain");
    fs::create_dir_all(plain.join("usr")).unwrap();
    fs::write(plain.join("usr/x"), "x").unwrap();
    arbor(&["commit", "--repo", p(&repo), "-b", "plain", p(&plain)]).ok();
    arbor(&["db", "list", "--repo", p(&repo), "plain"]).fails_with("rpmostree.rpmdb.pkglist");
}

/// `--cachedir s3://…`: runner A (empty) composes corpus v1 from an HTTP repository and
/// fills the shared cache with every RPM and import; runner B (empty: new repository,
/// new local cache) takes all of them from the shared cache — no RPM from the origin,
/// nothing imported, the initramfs step's result taken too — and makes the identical
/// commit; runner C reads the same cache
/// over garage's web endpoint (read-only `http://`). A corrupted RPM and import pack in
/// a `file://` shared cache are refused by name, fetched/imported again and replaced. A
/// shared cache whose endpoint does not answer, whose bucket does not exist or whose key
/// is not allowed on it is given up on once, with a warning saying why; same commit.
#[test]
fn shared_package_cache_makes_an_empty_runner_warm() {
    let g = Garage::start();
    let tmp = tempdir();
    let corpus = corpus_dir();
    let origin = util::HttpServer::start(&corpus);
    // The corpus's treefiles with their repositories served over HTTP (a file://
    // repository is read in place, never cached).
    let over_http = |name: &str| {
        let dir = tmp.path().join(format!("tf-{name}"));
        fs::create_dir_all(&dir).unwrap();
        let tf = util::treefile_variant(&corpus, name, &dir, |s| s);
        for e in fs::read_dir(&dir).unwrap() {
            let path = e.unwrap().path();
            if path.extension().and_then(|x| x.to_str()) == Some("repo") {
                let text = fs::read_to_string(&path).unwrap();
                let base = format!("file://{}/", p(&corpus));
                assert!(text.contains(&base), "{text}");
                fs::write(&path, text.replace(&base, &origin.url())).unwrap();
            }
        }
        tf
    };
    let compose = |runner: &str, tf: &Path, cache: &str| -> Value {
        let repo = tmp.path().join(runner).join("repo");
        fs::create_dir_all(&repo).unwrap();
        arbor(&["init", "--repo", p(&repo)]).ok();
        let r = g.arbor(&[
            "compose",
            "--repo",
            p(&repo),
            "--cachedir",
            cache,
            "--timestamp",
            "2024-01-01T00:00:00Z",
            "--json",
            p(tf),
        ]);
        let v = json(r.ok_ref());
        eprintln!("runner {runner}: {}", v["arbor-shared-cache"]);
        v
    };
    let counts = |v: &Value| -> [u64; 8] {
        let c = &v["arbor-shared-cache"];
        [
            "rpms_fetched",
            "rpms_stored",
            "imports_fetched",
            "imports_stored",
            "rejected",
            "errors",
            "initramfs_fetched",
            "initramfs_stored",
        ]
        .map(|k| c[k].as_u64().unwrap_or_else(|| panic!("{k} in {c}")))
    };

    let v1 = over_http("v1.yaml");
    let n = util::corpus::resolved("v1").len() as u64;
    let shared = g.url("pkgcache");
    let a = compose("a", &v1, &shared);
    assert_eq!(
        counts(&a),
        [0, n, 0, n, 0, 0, 0, 1],
        "runner A fills the cache"
    );
    assert_eq!(a["arbor-packages-imported"], n);
    let b = compose("b", &v1, &shared);
    assert_eq!(
        counts(&b),
        [n, 0, n, 0, 0, 0, 1, 0],
        "runner B takes everything"
    );
    assert_eq!(b["arbor-packages-imported"], 0, "{b}");
    assert_eq!(b["arbor-import-cache-hits"], n, "{b}");
    assert_eq!(a["ostree-commit"], b["ostree-commit"], "the same commit");
    assert!(
        b["arbor-shared-cache"]["bytes_fetched"].as_u64().unwrap() > 0,
        "{b}"
    );
    // Read-only over garage's web endpoint: takes everything, stores nothing.
    let c = compose("c", &v1, &g.web("pkgcache"));
    assert_eq!(counts(&c), [n, 0, n, 0, 0, 0, 1, 0], "runner C (http://)");
    assert_eq!(a["ostree-commit"], c["ostree-commit"]);

    // Corruption, on a file:// shared cache (the tiny corpus: quick).
    let tiny = over_http("tiny.yaml");
    let dir = tmp.path().join("shared-dir");
    let url = format!("file://{}", p(&dir));
    let d = compose("d", &tiny, &url);
    let t = util::corpus::resolved("tiny").len() as u64;
    assert_eq!(counts(&d), [0, t, 0, t, 0, 0, 0, 0], "{d}");
    let blobs = |sub: &str| -> Vec<std::path::PathBuf> {
        let mut v: Vec<_> = fs::read_dir(dir.join(sub))
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        v.sort();
        v
    };
    let (rpm, pack) = (blobs("rpms")[0].clone(), blobs("imports")[0].clone());
    let (rpm_good, pack_good) = (fs::read(&rpm).unwrap(), fs::read(&pack).unwrap());
    for f in [&rpm, &pack] {
        let mut bytes = fs::read(f).unwrap();
        let at = bytes.len() - 50;
        bytes[at] ^= 0x20;
        fs::write(f, bytes).unwrap();
    }
    let r = {
        let repo = tmp.path().join("e").join("repo");
        fs::create_dir_all(&repo).unwrap();
        arbor(&["init", "--repo", p(&repo)]).ok();
        g.arbor(&[
            "compose",
            "--repo",
            p(&repo),
            "--cachedir",
            &url,
            "--timestamp",
            "2024-01-01T00:00:00Z",
            "--json",
            p(&tiny),
        ])
    };
    let e = json(r.ok_ref());
    // The corrupt RPM is refused (its import is then not looked up under a digest
    // the repodata does not give), downloaded and imported again; the pack refused.
    let [rf, rs, _, _, rejected, errors, _, _] = counts(&e);
    assert_eq!((rf, rs, rejected, errors), (t - 1, 1, 2, 0), "{e}");
    for (f, what) in [(&rpm, "rpm"), (&pack, "pack")] {
        let name = f.file_name().unwrap().to_str().unwrap();
        assert!(
            r.stderr.contains(name) && r.stderr.contains("refused"),
            "the corrupt {what} is named:\n{}",
            r.stderr
        );
    }
    assert_eq!(fs::read(&rpm).unwrap(), rpm_good, "the RPM replaced");
    assert_eq!(fs::read(&pack).unwrap(), pack_good, "the pack replaced");
    assert_eq!(d["ostree-commit"], e["ostree-commit"]);

    // A shared cache that cannot be used costs speed, not the compose: one warning, the
    // rest of the run without it, the same commit. Unusable: its endpoint does not
    // answer, its bucket does not exist (seen at the first store: garage answers a GET
    // there as a miss), or the key is not allowed on the bucket (a key garage knows, with
    // no permission on `localhost`).
    let other = g.garage(&["key", "create", "other-key"]);
    let field = |name: &str| -> String {
        other
            .ok()
            .lines()
            .find_map(|l| l.trim().strip_prefix(name))
            .map(|v| v.trim_start_matches(':').trim().to_string())
            .unwrap_or_else(|| panic!("no {name:?} in `{}`:\n{}", other.cmd, other.stdout))
    };
    let (other_id, other_secret) = (field("Key ID"), field("Secret key"));
    let closed = format!("http://127.0.0.1:{}", util::free_port());
    let unusable = [
        (
            "unreachable",
            g.url("pkgcache"),
            vec![("AWS_ENDPOINT_URL", closed.as_str())],
            "cannot connect",
        ),
        (
            "no-bucket",
            "s3://no-such-bucket/pkgcache".to_string(),
            vec![],
            "does not exist",
        ),
        (
            "denied",
            g.url("pkgcache"),
            vec![
                ("AWS_ACCESS_KEY_ID", other_id.as_str()),
                ("AWS_SECRET_ACCESS_KEY", other_secret.as_str()),
            ],
            "access denied",
        ),
    ];
    for (case, cache, env, why) in unusable {
        let repo = tmp.path().join(case).join("repo");
        fs::create_dir_all(&repo).unwrap();
        arbor(&["init", "--repo", p(&repo)]).ok();
        let r = g.arbor_env(
            &[
                "compose",
                "--repo",
                p(&repo),
                "--cachedir",
                &cache,
                "--timestamp",
                "2024-01-01T00:00:00Z",
                "--json",
                p(&tiny),
            ],
            &env,
        );
        let f = json(r.ok_ref());
        let given_up = format!("shared cache {cache}: not used for the rest of this run");
        assert_eq!(
            r.stderr.matches(&given_up).count(),
            1,
            "{case}: given up on once, saying so:\n{}",
            r.stderr
        );
        assert!(
            r.stderr.contains(why),
            "{case}: {why:?} said:\n{}",
            r.stderr
        );
        let [rf, rs, imf, ims, _, errors, _, _] = counts(&f);
        assert_eq!((rf, rs, imf, ims), (0, 0, 0, 0), "{case}: {f}");
        assert!(errors >= 1, "{case}: {f}");
        assert_eq!(d["ostree-commit"], f["ostree-commit"], "{case}");
    }
}
