//! Publish, mirror and prune integration tests against a real S3 server (garage), judged
//! by the real `ostree` client pulling from garage's web endpoint or from a served
//! directory. Each garage test starts its own garage (fresh data dir, own ports) through
//! ci/start-garage.sh and stops it on drop. If garage is not installed these tests fail
//! with the command to install it.

mod util {
    pub use arbor_tests::*;
}

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use arbor_repo::summary::Summary;
use serde_json::Value;
use util::{
    arbor, arbor_bin, content_listing, edge_case_tree, free_port, ostree, p, tempdir, Garage,
    HttpServer, Run, TempDir,
};

fn json(run: &Run) -> Value {
    serde_json::from_str(run.ok().trim())
        .unwrap_or_else(|e| panic!("bad JSON ({e}): {}", run.stdout))
}

// ---------------------------------------------------------------------------------------
// garage

// Garage (a real S3 server per test) lives in tests/util.

// ---------------------------------------------------------------------------------------
// fixtures

/// A repository with `os/main`: commit A (the edge-case tree plus `extra` small files),
/// then B (some files changed, added, removed), and a static delta A→B.
struct Fixture {
    tmp: TempDir,
    repo: PathBuf,
    input_b: PathBuf,
    a: String,
    b: String,
}

fn many_files(dir: &Path, n: usize, salt: &str) {
    for i in 0..n {
        let d = dir.join(format!("many/d{}", i % 20));
        fs::create_dir_all(&d).unwrap();
        fs::write(
            d.join(format!("f{i}")),
            format!("{salt} file {i}\n").repeat(1 + i % 7),
        )
        .unwrap();
    }
}

fn commit(repo: &Path, branch: &str, dir: &Path, ts: &str, version: &str) -> String {
    arbor(&[
        "commit",
        "--repo",
        p(repo),
        "-b",
        branch,
        "-s",
        version,
        "--timestamp",
        ts,
        "--add-metadata-string",
        &format!("version={version}"),
        p(dir),
    ])
    .ok()
    .trim()
    .to_string()
}

/// A static delta FROM→TO in `repo`, by `arbor delta generate`; if that fails (the delta
/// work is young), by the real `ostree static-delta generate`, which is valid input for
/// publishing either way. The summary is regenerated.
fn make_delta(repo: &Path, from: &str, to: &str) {
    let r = arbor(&[
        "delta",
        "generate",
        "--repo",
        p(repo),
        "--from",
        from,
        "--to",
        to,
    ]);
    if r.status != 0 {
        eprintln!("arbor delta generate failed, using ostree's: {}", r.stderr);
        ostree(&[
            &format!("--repo={}", p(repo)),
            "static-delta",
            "generate",
            &format!("--from={from}"),
            &format!("--to={to}"),
        ])
        .ok();
    }
    arbor(&["summary", "--repo", p(repo), "-u"]).ok();
}

fn fixture(extra: usize) -> Fixture {
    let tmp = tempdir();
    let repo = tmp.path().join("repo");
    arbor(&["init", "--repo", p(&repo)]).ok();
    let input = tmp.path().join("input-a");
    edge_case_tree(&input);
    many_files(&input, extra, "a");
    let a = commit(&repo, "os/main", &input, "2020-01-01T00:00:00Z", "1.0");
    let input_b = tmp.path().join("input-b");
    edge_case_tree(&input_b);
    many_files(&input_b, extra, "b");
    fs::write(input_b.join("hello.txt"), "hello, version two\n").unwrap();
    fs::write(input_b.join("added"), "new in B\n").unwrap();
    fs::remove_file(input_b.join("a.txt")).unwrap();
    let b = commit(&repo, "os/main", &input_b, "2020-02-01T00:00:00Z", "2.0");
    make_delta(&repo, &a, &b);
    Fixture {
        tmp,
        repo,
        input_b,
        a,
        b,
    }
}

/// A bare-user client repository with remote `origin` at `url` (in its own temp dir,
/// with room for checkouts beside it).
struct Client {
    dir: TempDir,
    client: util::Client,
}

impl Client {
    fn new(url: &str) -> Client {
        let dir = tempdir();
        let client = util::Client::host(&dir.path().join("repo"), url);
        Client { dir, client }
    }

    fn ostree(&self, args: &[&str]) -> Run {
        self.client.ostree(args)
    }

    /// Refs the remote's summary advertises.
    fn remote_refs(&self) -> Vec<String> {
        self.ostree(&["remote", "refs", "origin"])
            .ok()
            .lines()
            .filter_map(|l| l.trim().strip_prefix("origin:"))
            .map(str::to_string)
            .collect()
    }

    fn pull(&self, args: &[&str]) {
        let mut full = vec!["pull"];
        full.extend_from_slice(args);
        self.ostree(&full).ok();
    }

    fn fsck(&self) {
        let out = self.ostree(&["fsck"]);
        out.ok();
        assert!(out.stdout.contains("no errors found"), "{}", out.stdout);
    }

    fn rev(&self, r: &str) -> String {
        self.ostree(&["rev-parse", &format!("origin:{r}")])
            .ok()
            .trim()
            .to_string()
    }

    fn checkout_listing(&self, r: &str) -> Vec<String> {
        let co = self.dir.path().join(format!("co-{}", r.replace('/', "_")));
        let _ = fs::remove_dir_all(&co);
        self.ostree(&["checkout", "-U", &format!("origin:{r}"), p(&co)])
            .ok();
        content_listing(&co)
    }
}

/// GET a URL over HTTP: (status, headers, body).
fn http_get(url: &str) -> (u16, String, Vec<u8>) {
    let tmp = tempdir();
    let headers = tmp.path().join("h");
    let body = tmp.path().join("b");
    let out = Command::new("curl")
        .args([
            "-s",
            "-o",
            p(&body),
            "-D",
            p(&headers),
            "-w",
            "%{http_code}",
            url,
        ])
        .output()
        .expect("run curl");
    let code = String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .unwrap_or(0);
    (
        code,
        fs::read_to_string(&headers).unwrap_or_default(),
        fs::read(&body).unwrap_or_default(),
    )
}

/// The summary served at `base` (which ends in `/`), if any.
fn served_summary(base: &str) -> Option<Summary> {
    let (code, _, body) = http_get(&format!("{base}/summary"));
    (code == 200).then(|| Summary::from_bytes(&body).expect("served summary parses"))
}

fn summary_deltas(s: &Summary) -> Vec<String> {
    match s.metadata.get("ostree.static-deltas") {
        Some(v) => arbor_repo::gvariant::VarDict::from_value(v)
            .expect("delta map")
            .0
            .into_iter()
            .map(|(k, _)| k)
            .collect(),
        None => vec![],
    }
}

/// A real client pulls every ref the repository at `url` advertises and fsck passes; with
/// no summary, every ref in `names` that `refs/heads` has. Returns the refs pulled.
fn pull_everything_advertised(url: &str, names: &[&str]) -> Vec<String> {
    let client = Client::new(url);
    let refs = match served_summary(url.trim_end_matches('/')) {
        Some(s) => s.refs.iter().map(|r| r.name.clone()).collect(),
        None => names
            .iter()
            .filter(|n| http_get(&format!("{}/refs/heads/{n}", url.trim_end_matches('/'))).0 == 200)
            .map(|n| n.to_string())
            .collect::<Vec<_>>(),
    };
    for r in &refs {
        client.pull(&["origin", r]);
    }
    if !refs.is_empty() {
        client.fsck();
    }
    refs
}

// ---------------------------------------------------------------------------------------
// garage tests

#[test]
fn publish_to_garage_and_pull_with_deltas() {
    let g = Garage::start();
    let f = fixture(30);
    let url = g.url("repo");
    let report = json(&g.arbor(&["publish", "--repo", p(&f.repo), "--to", &url, "--json"]));
    assert_eq!(report["commits_uploaded"], 2, "{report}");
    assert_eq!(report["deltas_uploaded"], 1, "{report}");
    assert_eq!(report["summary_written"], true);
    assert_eq!(report["advertised_refs"]["os/main"], f.b.as_str());
    assert!(
        report["objects_uploaded"].as_u64().unwrap() > 100,
        "{report}"
    );

    // A client that has A upgrades to B through the delta only.
    let web = g.web("repo");
    let client = Client::new(&web);
    client.pull(&["origin", &format!("os/main@{}", f.a)]);
    let out = client.ostree(&["pull", "--require-static-deltas", "origin", "os/main"]);
    out.ok();
    assert!(out.stdout.contains("delta parts"), "{}", out.stdout);
    client.fsck();
    assert_eq!(client.rev("os/main"), f.b);
    assert_eq!(
        client.checkout_listing("os/main"),
        content_listing(&f.input_b)
    );
    // A fresh client pulls B by objects.
    let fresh = Client::new(&web);
    fresh.pull(&["origin", "os/main"]);
    fresh.fsck();
    assert_eq!(
        fresh.checkout_listing("os/main"),
        content_listing(&f.input_b)
    );

    // Cache lifetimes: objects immutable, summary and refs short.
    let (code, h, _) = http_get(&format!("{web}/objects/{}/{}.commit", &f.b[..2], &f.b[2..]));
    assert_eq!(code, 200);
    assert!(
        h.to_ascii_lowercase()
            .contains("cache-control: public, max-age=31536000, immutable"),
        "{h}"
    );
    for key in ["summary", "refs/heads/os/main", "config"] {
        let (code, h, _) = http_get(&format!("{web}/{key}"));
        assert_eq!(code, 200, "{key}");
        assert!(h.to_ascii_lowercase().contains("max-age=60"), "{key}: {h}");
    }
    let (code, _, body) = http_get(&format!("{web}/config"));
    assert_eq!(code, 200);
    assert_eq!(body, b"[core]\nrepo_version=1\nmode=archive-z2\n");

    // Republishing with nothing new uploads nothing and is quick.
    let started = Instant::now();
    let again = json(&g.arbor(&["publish", "--repo", p(&f.repo), "--to", &url, "--json"]));
    let wall = started.elapsed();
    assert_eq!(again["objects_uploaded"], 0, "{again}");
    assert_eq!(again["requests"]["put"], 0, "{again}");
    assert_eq!(again["requests"]["delete"], 0, "{again}");
    assert_eq!(again["summary_written"], false, "{again}");
    assert!(
        again["requests"]["total"].as_u64().unwrap() <= 12,
        "{again}"
    );
    assert!(wall < Duration::from_secs(3), "republish took {wall:?}");
}

/// Publish with the publisher killed at random moments: every time, a real client can pull
/// everything advertised, and a rerun completes the publish.
#[test]
fn crash_at_random_moments_leaves_a_pullable_repo() {
    let g = Garage::start();
    let f = fixture(1500);
    // How long an uninterrupted publish takes (to a prefix of its own).
    let t0 = Instant::now();
    g.arbor(&[
        "publish",
        "--repo",
        p(&f.repo),
        "--to",
        &g.url("timing"),
        "--jobs",
        "4",
    ])
    .ok();
    // The first publish pays for garage's warm-up; kill delays are drawn from this
    // estimate, which shrinks whenever a publish finishes before its kill.
    let mut full = t0.elapsed();
    let mut seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    eprintln!("crash test: full publish {full:?}, seed {seed}");
    let mut killed_mid_way = 0;
    for i in 0..24 {
        if killed_mid_way >= 12 {
            break;
        }
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let frac = (seed >> 33) as f64 / (1u64 << 31) as f64;
        let delay = full.mul_f64(0.9 * frac);
        let prefix = format!("crash{i}");
        let mut child = g
            .command(&[
                "publish",
                "--repo",
                p(&f.repo),
                "--to",
                &g.url(&prefix),
                "--jobs",
                "4",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn arbor publish");
        std::thread::sleep(delay);
        let finished = child.try_wait().unwrap().is_some();
        child.kill().expect("SIGKILL"); // std's kill sends SIGKILL
        child.wait().unwrap();
        if finished {
            full = full.mul_f64(0.7);
        } else {
            killed_mid_way += 1;
        }
        let web = g.web(&prefix);
        let pulled = pull_everything_advertised(&web, &["os/main"]);
        eprintln!("kill {i} after {delay:?}: clients could pull {pulled:?}");
        // The rerun completes it.
        let r = json(&g.arbor(&[
            "publish",
            "--repo",
            p(&f.repo),
            "--to",
            &g.url(&prefix),
            "--json",
        ]));
        assert_eq!(r["advertised_refs"]["os/main"], f.b.as_str(), "{r}");
        let client = Client::new(&web);
        client.pull(&["origin", &format!("os/main@{}", f.a)]);
        client
            .ostree(&["pull", "--require-static-deltas", "origin", "os/main"])
            .ok();
        client.fsck();
        assert_eq!(client.rev("os/main"), f.b);
        assert_eq!(
            client.checkout_listing("os/main"),
            content_listing(&f.input_b)
        );
    }
    assert!(
        killed_mid_way >= 10,
        "only {killed_mid_way} kills landed mid-publish"
    );
}

#[test]
fn concurrent_publishers_of_two_refs_are_both_advertised() {
    let g = Garage::start();
    let tmp = tempdir();
    let repos: Vec<PathBuf> = ["one", "two"]
        .iter()
        .map(|n| {
            let r = tmp.path().join(n);
            arbor(&["init", "--repo", p(&r)]).ok();
            r
        })
        .collect();
    let url = g.url("shared");
    for round in 0..4 {
        let mut heads = BTreeMap::new();
        for (i, repo) in repos.iter().enumerate() {
            let input = tmp.path().join(format!("in-{i}-{round}"));
            many_files(&input, 200, &format!("{i}-{round}"));
            let name = format!("os/ref{i}");
            heads.insert(
                name.clone(),
                commit(repo, &name, &input, "2021-01-01T00:00:00Z", "1"),
            );
        }
        let children: Vec<_> = repos
            .iter()
            .map(|r| {
                g.command(&["publish", "--repo", p(r), "--to", &url])
                    .stdout(Stdio::null())
                    .stderr(Stdio::piped())
                    .spawn()
                    .unwrap()
            })
            .collect();
        for c in children {
            let o = c.wait_with_output().unwrap();
            assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        }
        let client = Client::new(&g.web("shared"));
        let mut refs = client.remote_refs();
        refs.sort();
        assert_eq!(
            refs,
            vec!["os/ref0".to_string(), "os/ref1".to_string()],
            "round {round}"
        );
        for (name, c) in &heads {
            client.pull(&["origin", name]);
            assert_eq!(&client.rev(name), c, "round {round}");
        }
        client.fsck();
    }
}

#[test]
fn mirror_garage_to_file_and_file_to_garage_with_deltas() {
    let g = Garage::start();
    let f = fixture(30);
    g.arbor(&["publish", "--repo", p(&f.repo), "--to", &g.url("origin")])
        .ok();

    // garage → file://, served over HTTP: a client upgrades A→B by delta.
    let local = f.tmp.path().join("mirror");
    let m = json(&g.arbor(&[
        "mirror",
        "--from",
        &g.url("origin"),
        "--to",
        &format!("file://{}", p(&local)),
        "--json",
    ]));
    assert_eq!(m["commits_uploaded"], 2, "{m}");
    assert_eq!(m["deltas_uploaded"], 1, "{m}");
    let server = HttpServer::start(&local);
    let client = Client::new(&server.url());
    client.pull(&["origin", &format!("os/main@{}", f.a)]);
    let out = client.ostree(&["pull", "--require-static-deltas", "origin", "os/main"]);
    out.ok();
    assert!(out.stdout.contains("delta parts"), "{}", out.stdout);
    client.fsck();
    assert_eq!(
        client.checkout_listing("os/main"),
        content_listing(&f.input_b)
    );

    // file:// → garage.
    let back = json(&g.arbor(&[
        "mirror",
        "--from",
        &format!("file://{}", p(&local)),
        "--to",
        &g.url("copy"),
        "--json",
    ]));
    assert_eq!(back["deltas_uploaded"], 1, "{back}");
    let client = Client::new(&g.web("copy"));
    client.pull(&["origin", &format!("os/main@{}", f.a)]);
    client
        .ostree(&["pull", "--require-static-deltas", "origin", "os/main"])
        .ok();
    client.fsck();
    assert_eq!(client.rev("os/main"), f.b);

    // A read-only http(s) source (garage's web endpoint), heads only.
    let head_only = f.tmp.path().join("head-only");
    let h = json(&g.arbor(&[
        "mirror",
        "--from",
        &g.web("origin"),
        "--to",
        p(&head_only),
        "--depth",
        "0",
        "--json",
    ]));
    assert_eq!(h["commits_uploaded"], 1, "{h}");
    let server = HttpServer::start(&head_only);
    let client = Client::new(&server.url());
    client.pull(&["origin", "os/main"]);
    client.fsck();
    // Mirroring again copies nothing.
    let again = json(&g.arbor(&[
        "mirror",
        "--from",
        &g.web("origin"),
        "--to",
        p(&head_only),
        "--depth",
        "0",
        "--json",
    ]));
    assert_eq!(again["objects_uploaded"], 0, "{again}");
    assert_eq!(again["requests"]["put"], 0, "{again}");
}

#[test]
fn prune_on_garage_honours_the_policy() {
    let g = Garage::start();
    let f = fixture(30);
    let input_c = f.tmp.path().join("input-c");
    edge_case_tree(&input_c);
    many_files(&input_c, 30, "c");
    fs::write(input_c.join("only-in-c"), "C\n").unwrap();
    let c = commit(&f.repo, "os/main", &input_c, "2020-03-01T00:00:00Z", "3.0");
    make_delta(&f.repo, &f.b, &c);
    let url = g.url("p");
    g.arbor(&["publish", "--repo", p(&f.repo), "--to", &url])
        .ok();
    let web = g.web("p");
    let before = served_summary(&web).expect("summary");
    assert_eq!(summary_deltas(&before).len(), 2);

    // Dry run: reports commit A, its unique objects and the delta A→B; removes nothing.
    let dry = json(&g.arbor(&[
        "prune",
        "--to",
        &url,
        "--keep",
        "2",
        "--grace",
        "0",
        "--dry-run",
        "--json",
    ]));
    assert_eq!(dry["removed_commits"], serde_json::json!([f.a]), "{dry}");
    assert_eq!(
        dry["removed_deltas"],
        serde_json::json!([format!("{}-{}", f.a, f.b)]),
        "{dry}"
    );
    let a_commit = format!("{web}/objects/{}/{}.commit", &f.a[..2], &f.a[2..]);
    assert_eq!(http_get(&a_commit).0, 200, "dry run removed A");

    let real = json(&g.arbor(&[
        "prune", "--to", &url, "--keep", "2", "--grace", "0", "--json",
    ]));
    assert_eq!(real["removed"], dry["removed"]);
    assert!(real["bytes_removed"].as_u64().unwrap() > 0);
    assert_eq!(http_get(&a_commit).0, 404, "A still served");
    let after = served_summary(&web).expect("summary");
    assert_eq!(summary_deltas(&after), vec![format!("{}-{c}", f.b)]);
    // The human output names what it removes and how many bytes.
    let text = g.arbor(&[
        "prune",
        "--to",
        &url,
        "--keep",
        "1",
        "--grace",
        "0",
        "--dry-run",
    ]);
    assert!(
        text.ok()
            .contains(&format!("objects/{}/{}.commit", &f.b[..2], &f.b[2..])),
        "{}",
        text.stdout
    );
    assert!(text.stdout.contains("bytes"), "{}", text.stdout);

    // Clients: B→C by delta, C fresh; fsck passes on the pulled copy.
    let client = Client::new(&web);
    client.pull(&["origin", &format!("os/main@{}", f.b)]);
    client
        .ostree(&["pull", "--require-static-deltas", "origin", "os/main"])
        .ok();
    client.fsck();
    assert_eq!(client.rev("os/main"), c);
    assert_eq!(
        client.checkout_listing("os/main"),
        content_listing(&input_c)
    );

    // --keep-younger-than: timestamps are from 2020, so only the head survives.
    let r = json(&g.arbor(&[
        "prune",
        "--to",
        &url,
        "--keep-younger-than",
        "30",
        "--grace",
        "0",
        "--json",
    ]));
    assert_eq!(r["removed_commits"], serde_json::json!([f.b]), "{r}");
    assert!(summary_deltas(&served_summary(&web).unwrap()).is_empty());
    let fresh = Client::new(&web);
    fresh.pull(&["origin", "os/main"]);
    fresh.fsck();
    // The default grace period protects everything just published.
    let d = f.tmp.path().join("input-d");
    many_files(&d, 5, "d");
    commit(&f.repo, "os/main", &d, "2020-04-01T00:00:00Z", "4.0");
    g.arbor(&["publish", "--repo", p(&f.repo), "--to", &url])
        .ok();
    let r = json(&g.arbor(&["prune", "--to", &url, "--keep", "1", "--json"]));
    assert_eq!(r["objects_removed"], 0, "{r}");
}

#[test]
fn store_errors_are_clear_and_publish_nothing() {
    let g = Garage::start();
    let f = fixture(0);
    // Unreachable endpoint.
    let port = free_port();
    let r = g.arbor_env(
        &["publish", "--repo", p(&f.repo), "--to", "s3://localhost/x"],
        &[("AWS_ENDPOINT_URL", &format!("http://127.0.0.1:{port}"))],
    );
    r.fails_with("cannot connect to the storage endpoint");
    assert!(
        r.stderr.contains(&format!("127.0.0.1:{port}")),
        "{}",
        r.stderr
    );
    // Wrong credentials.
    let r = g.arbor_env(
        &["publish", "--repo", p(&f.repo), "--to", "s3://localhost/x"],
        &[(
            "AWS_SECRET_ACCESS_KEY",
            "0000000000000000000000000000000000000000000000000000000000000000",
        )],
    );
    r.fails_with("access denied");
    // Missing bucket.
    let r = g.arbor(&[
        "publish",
        "--repo",
        p(&f.repo),
        "--to",
        "s3://no-such-bucket/x",
    ]);
    r.fails_with("does not exist");
    assert!(r.stderr.contains("no-such-bucket"), "{}", r.stderr);
    // Nothing was published under x.
    assert_eq!(http_get(&format!("{}/summary", g.web("x"))).0, 404);
    assert_eq!(http_get(&format!("{}/config", g.web("x"))).0, 404);
    // --s3-endpoint overrides the environment.
    let r = g.arbor_env(
        &[
            "publish",
            "--repo",
            p(&f.repo),
            "--to",
            "s3://localhost/y",
            "--s3-endpoint",
            &format!("http://127.0.0.1:{port}"),
        ],
        &[],
    );
    r.fails_with("cannot connect");
}

// ---------------------------------------------------------------------------------------
// file:// tests (no garage)

#[test]
fn publish_to_file_and_pull_over_http() {
    let f = fixture(30);
    let dest = f.tmp.path().join("served");
    let url = format!("file://{}", p(&dest));
    let r = json(&arbor(&[
        "publish",
        "--repo",
        p(&f.repo),
        "--to",
        &url,
        "--ref",
        "os/main",
        "--json",
    ]));
    assert_eq!(r["deltas_uploaded"], 1, "{r}");
    assert_eq!(
        fs::read(dest.join("config")).unwrap(),
        b"[core]\nrepo_version=1\nmode=archive-z2\n"
    );
    let server = HttpServer::start(&dest);
    let client = Client::new(&server.url());
    client.pull(&["origin", &format!("os/main@{}", f.a)]);
    client
        .ostree(&["pull", "--require-static-deltas", "origin", "os/main"])
        .ok();
    client.fsck();
    assert_eq!(
        client.checkout_listing("os/main"),
        content_listing(&f.input_b)
    );
    // The published directory opens as an archive repository and passes fsck.
    arbor(&["fsck", "--repo", p(&dest)]).ok();
    let again = json(&arbor(&[
        "publish",
        "--repo",
        p(&f.repo),
        "--to",
        p(&dest),
        "--json",
    ]));
    assert_eq!(again["objects_uploaded"], 0, "{again}");
    assert_eq!(again["requests"]["put"], 0, "{again}");
    // The delta regenerated locally with other options (another superblock): the
    // destination keeps its own, and the summary still advertises that one's checksum,
    // so clients can still use it.
    fs::remove_dir_all(f.repo.join("deltas")).unwrap();
    arbor(&[
        "delta",
        "generate",
        "--repo",
        p(&f.repo),
        "--from",
        &f.a,
        "--to",
        &f.b,
        "--inline-parts",
        "--disable-bsdiff",
    ])
    .ok();
    arbor(&["publish", "--repo", p(&f.repo), "--to", p(&dest)]).ok();
    let c2 = Client::new(&server.url());
    c2.pull(&["origin", &format!("os/main@{}", f.a)]);
    c2.ostree(&["pull", "--require-static-deltas", "origin", "os/main"])
        .ok();
    c2.fsck();
    // Prune on file://.
    let pr = json(&arbor(&[
        "prune", "--to", &url, "--keep", "1", "--grace", "0", "--json",
    ]));
    assert_eq!(pr["removed_commits"], serde_json::json!([f.a]), "{pr}");
    arbor(&["fsck", "--repo", p(&dest)]).ok();
    let fresh = Client::new(&server.url());
    fresh.pull(&["origin", "os/main"]);
    fresh.fsck();
}

/// A `file://` destination is a repository stock ostree can administer: after publish,
/// mirror and prune, `fsck`, `refs`, `static-delta list`, `summary -u` and `prune
/// --refs-only` of 2022.7 and 2025.x all succeed on it (they open `refs/remotes`,
/// `refs/mirrors`, `tmp`, … and failed when those were missing).
#[test]
fn stock_ostree_administers_file_destinations() {
    let f = fixture(5);
    // Inside the newer client's chroot, so both clients see the same directories.
    let base = util::newer_root()
        .join("var/tmp")
        .join(format!("arbor-stock-{}", std::process::id()));
    let _ = fs::remove_dir_all(&base);
    struct Cleanup(PathBuf);
    impl Drop for Cleanup {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }
    let _cleanup = Cleanup(base.clone());
    let published = base.join("published");
    let mirrored = base.join("mirrored");
    let url = |d: &Path| format!("file://{}", p(d));
    arbor(&["publish", "--repo", p(&f.repo), "--to", &url(&published)]).ok();
    arbor(&[
        "mirror",
        "--from",
        &url(&published),
        "--to",
        &url(&mirrored),
    ])
    .ok();
    arbor(&[
        "prune",
        "--to",
        &url(&published),
        "--keep",
        "1",
        "--grace",
        "0",
    ])
    .ok();
    let inside = |d: &Path| format!("--repo=/{}", p(d.strip_prefix(util::newer_root()).unwrap()));
    for (dir, deltas) in [(&published, false), (&mirrored, true)] {
        let host = format!("--repo={}", p(dir));
        let newer = inside(dir);
        let both = |args: &[&str]| -> Vec<Run> {
            let mut h = vec![host.as_str()];
            h.extend_from_slice(args);
            let mut n = vec![newer.as_str()];
            n.extend_from_slice(args);
            vec![ostree(&h), util::ostree_newer(&n)]
        };
        for r in both(&["refs"]) {
            assert_eq!(r.ok().trim(), "os/main", "{}", r.cmd);
        }
        for r in both(&["fsck"]) {
            assert!(r.ok().contains("no errors found"), "{}", r.stdout);
        }
        for r in both(&["static-delta", "list"]) {
            // A from-to delta's name is `FROM-TO` (modified base64 has no '-').
            let listed = r.ok().lines().any(|l| l.contains('-'));
            assert_eq!(listed, deltas, "{}: {}", r.cmd, r.stdout);
        }
        for r in both(&["summary", "-u"]) {
            r.ok();
        }
        for r in both(&["prune", "--refs-only"]) {
            r.ok();
        }
        for r in both(&["fsck"]) {
            assert!(r.ok().contains("no errors found"), "{}", r.stdout);
        }
    }
}

/// The peak RSS (bytes) `/usr/bin/time -f PEAK_RSS_KB=%M` added to a run's stderr,
/// taken out of it.
fn take_peak_rss(r: &mut Run) -> u64 {
    let line = r
        .stderr
        .lines()
        .rev()
        .find_map(|l| l.strip_prefix("PEAK_RSS_KB="))
        .unwrap_or_else(|| panic!("no peak RSS in {}", r.stderr))
        .trim()
        .to_string();
    r.stderr = r.stderr.replace(&format!("PEAK_RSS_KB={line}"), "");
    line.parse::<u64>().unwrap() * 1024
}

/// `arbor ARGS` under `/usr/bin/time`: the run and its peak RSS in bytes.
fn arbor_rss(args: &[&str]) -> (Run, u64) {
    let bin = arbor_bin();
    let mut full = vec!["-f", "PEAK_RSS_KB=%M", bin.to_str().unwrap()];
    full.extend_from_slice(args);
    let mut r = util::run("/usr/bin/time", &full);
    let rss = take_peak_rss(&mut r);
    (r, rss)
}

/// `arbor ARGS` inside a memory cgroup of `limit` bytes (cgroup v1's memory controller,
/// else v2's), as the kernel enforces it: past the limit the process is OOM-killed, so
/// a run that ends with its own clear error stayed within it. Also returns the peak RSS.
/// Where no cgroup can be made (not root, no controller), the peak RSS measured by
/// `/usr/bin/time` is the bound instead, and the test says so on stderr.
fn arbor_capped(args: &[&str], limit: u64) -> (Run, u64) {
    let name = format!("arbor-test-{}-{}", std::process::id(), args.len());
    let v1 = PathBuf::from("/sys/fs/cgroup/memory").join(&name);
    let v2 = PathBuf::from("/sys/fs/cgroup/unified").join(&name);
    let made = [(v1, "memory.limit_in_bytes"), (v2, "memory.max")]
        .into_iter()
        .find_map(|(dir, knob)| {
            fs::create_dir(&dir).ok()?;
            if fs::write(dir.join(knob), limit.to_string()).is_err() {
                let _ = fs::remove_dir(&dir);
                return None;
            }
            // No swap to escape into (v1 only where the kernel accounts it).
            let _ = fs::write(dir.join("memory.memsw.limit_in_bytes"), limit.to_string());
            let _ = fs::write(dir.join("memory.swap.max"), "0");
            Some(dir)
        });
    let Some(dir) = made else {
        eprintln!("no memory cgroup could be made here: bounding peak RSS (/usr/bin/time) instead");
        let (r, rss) = arbor_rss(args);
        assert!(rss < limit, "peak RSS {rss} over {limit}: {}", r.cmd);
        return (r, rss);
    };
    let script = format!(
        "echo $$ > {}/cgroup.procs && exec /usr/bin/time -f PEAK_RSS_KB=%M \"$@\"",
        dir.display()
    );
    let bin = arbor_bin();
    let mut full = vec!["-c", script.as_str(), "sh", bin.to_str().unwrap()];
    full.extend_from_slice(args);
    let mut r = util::run("sh", &full);
    for _ in 0..50 {
        if fs::remove_dir(&dir).is_ok() {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        !r.stderr.contains("Command terminated by signal 9"),
        "killed at the {limit}-byte memory limit: {}\n{}",
        r.cmd,
        r.stderr
    );
    let rss = take_peak_rss(&mut r);
    (r, rss)
}

/// The first non-inline part file of the repository's (or destination's) deltas.
fn a_delta_part(root: &Path) -> PathBuf {
    let mut stack = vec![root.join("deltas")];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            if e.file_type().unwrap().is_dir() {
                stack.push(e.path());
            } else if e.file_name() == "0" {
                return e.path();
            }
        }
    }
    panic!("no delta part under {}", root.display());
}

fn flip_last_byte(f: &Path) -> Vec<u8> {
    let orig = fs::read(f).unwrap();
    let mut bad = orig.clone();
    *bad.last_mut().unwrap() ^= 0x55;
    fs::write(f, bad).unwrap();
    orig
}

/// Hostile or damaged sources (#16): a damaged delta part is refused by publish and
/// mirror before any of its delta is uploaded; a 1 GiB summary is refused from its
/// declared size, in bounded memory; a 300 MB file object is mirrored through a spool
/// file and multipart upload with peak RSS far below its size, and the result passes
/// the real ostree's fsck. The memory-bound runs are made inside a 256 MiB memory cgroup
/// (the kernel kills a run that goes past it).
#[test]
fn hostile_sources_are_refused_within_bounds() {
    const RSS_LIMIT: u64 = 256 << 20;
    let f = fixture(3);
    let d = f.tmp.path();
    let url = |x: &Path| format!("file://{}", p(x));

    let part = a_delta_part(&f.repo);
    let orig = flip_last_byte(&part);
    let damaged = d.join("damaged");
    arbor(&["publish", "--repo", p(&f.repo), "--to", &url(&damaged)])
        .fails_with("its superblock says");
    assert!(
        !damaged.join("deltas").exists() && !damaged.join("summary").exists(),
        "a damaged delta left files behind"
    );
    fs::write(&part, orig).unwrap();

    let src = d.join("src");
    arbor(&["publish", "--repo", p(&f.repo), "--to", &url(&src)]).ok();
    // A damaged part at a mirror's source.
    let part = a_delta_part(&src);
    let orig = flip_last_byte(&part);
    let m = d.join("m-damaged");
    arbor(&["mirror", "--from", &url(&src), "--to", &url(&m)]).fails_with("its superblock says");
    assert!(!m.join("deltas").exists());
    fs::write(&part, orig).unwrap();
    // A 1 GiB summary: refused from its size, nothing read.
    let summary = src.join("summary");
    let orig = fs::read(&summary).unwrap();
    fs::File::create(&summary)
        .unwrap()
        .set_len(1 << 30)
        .unwrap();
    let (r, rss) = arbor_capped(
        &["mirror", "--from", &url(&src), "--to", &url(&d.join("m1"))],
        RSS_LIMIT,
    );
    r.fails_with("at most 10485760");
    assert!(rss < RSS_LIMIT, "peak RSS {rss}");
    fs::write(&summary, orig).unwrap();

    // A 300 MB file: spooled and streamed, never held whole.
    let big_repo = d.join("big-repo");
    arbor(&["init", "--repo", p(&big_repo)]).ok();
    let input = d.join("big-input");
    fs::create_dir_all(&input).unwrap();
    let big = 300u64 << 20;
    {
        use std::io::Write;
        let mut w = std::io::BufWriter::new(fs::File::create(input.join("big")).unwrap());
        let block: Vec<u8> = (0..1u32 << 20)
            .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
            .collect();
        for _ in 0..big >> 20 {
            w.write_all(&block).unwrap();
        }
    }
    commit(&big_repo, "big", &input, "2020-01-01T00:00:00Z", "1");
    let big_src = d.join("big-src");
    let (r, publish_rss) = arbor_capped(
        &["publish", "--repo", p(&big_repo), "--to", &url(&big_src)],
        RSS_LIMIT,
    );
    r.ok();
    let big_mirror = d.join("big-mirror");
    let (r, mirror_rss) = arbor_capped(
        &[
            "mirror",
            "--from",
            &url(&big_src),
            "--to",
            &url(&big_mirror),
        ],
        RSS_LIMIT,
    );
    r.ok();
    eprintln!("peak RSS for a {big}-byte file: publish {publish_rss}, mirror {mirror_rss}");
    assert!(
        publish_rss < RSS_LIMIT && mirror_rss < RSS_LIMIT,
        "peak RSS: publish {publish_rss}, mirror {mirror_rss} for a {big}-byte file"
    );
    let fsck = ostree(&[&format!("--repo={}", p(&big_mirror)), "fsck"]);
    assert!(fsck.ok().contains("no errors found"), "{}", fsck.stdout);
}

#[test]
fn bad_arguments_are_clear_errors() {
    let f = fixture(0);
    arbor(&["publish", "--repo", p(&f.repo), "--to", "ftp://x/y"]).fails_with("unsupported scheme");
    arbor(&[
        "publish",
        "--repo",
        p(&f.repo),
        "--to",
        "http://127.0.0.1:1/x",
    ])
    .fails_with("read-only");
    arbor(&[
        "publish",
        "--repo",
        p(&f.repo),
        "--to",
        p(&f.tmp.path().join("o")),
        "--ref",
        "nope",
    ])
    .fails_with("\"nope\"");
    arbor(&["prune", "--to", p(&f.tmp.path().join("o")), "--keep", "0"]).fails_with("at least 1");
    arbor(&["prune", "--to", p(&f.tmp.path().join("o"))]).fails_with("--keep");
    let no_creds = Command::new(arbor_bin())
        .args(["publish", "--repo", p(&f.repo), "--to", "s3://b/p"])
        .env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_SECRET_ACCESS_KEY")
        .output()
        .unwrap();
    assert!(!no_creds.status.success());
    assert!(String::from_utf8_lossy(&no_creds.stderr).contains("AWS_ACCESS_KEY_ID"));
}

/// `arbor publish` with only the variables given in `env` of the clouds' (no AWS_*,
/// GOOGLE_* or AZURE_* from the caller, and a HOME without gcloud credentials). It must
/// answer at once: no store is contacted, no instance metadata is probed.
fn publish_with_cloud_env(f: &Fixture, to: &str, env: &[(&str, &str)]) -> Run {
    let home = f.tmp.path().join("empty-home");
    fs::create_dir_all(&home).unwrap();
    let mut cmd = Command::new(arbor_bin());
    for (k, _) in std::env::vars() {
        if ["AWS_", "GOOGLE_", "AZURE_"]
            .iter()
            .any(|p| k.starts_with(p))
            || ["SERVICE_ACCOUNT", "MSI_ENDPOINT", "IDENTITY_ENDPOINT"].contains(&k.as_str())
        {
            cmd.env_remove(k);
        }
    }
    let args = ["publish", "--repo", p(&f.repo), "--to", to];
    let started = Instant::now();
    let o = cmd
        .args(args)
        .env("HOME", &home)
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{to} took {:?}",
        started.elapsed()
    );
    Run {
        cmd: format!("arbor {}", args.join(" ")),
        status: o.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        stdout_bytes: o.stdout,
    }
}

/// gs:// and az:// are store URLs like s3:// (object_store builds them from their own
/// variables); without credentials each fails with a configuration error that names what
/// to set, not "unsupported scheme" and not a panic.
#[test]
fn cloud_urls_without_credentials_are_configuration_errors() {
    let f = fixture(0);
    /// (URL, variables, what the error says)
    type Case<'a> = (&'a str, &'a [(&'a str, &'a str)], &'a str);
    let cases: [Case; 5] = [
        ("gs://bucket/p", &[], "GOOGLE_APPLICATION_CREDENTIALS"),
        ("az://container/p", &[], "AZURE_STORAGE_ACCOUNT_NAME"),
        (
            "az://container/p",
            &[("AZURE_STORAGE_ACCOUNT_NAME", "acct")],
            "no Azure credentials",
        ),
        ("s3://bucket/p", &[], "AWS_ACCESS_KEY_ID"),
        // A key without its secret: object_store's own configuration error.
        (
            "s3://bucket/p",
            &[("AWS_SECRET_ACCESS_KEY", "s")],
            "Missing AccessKeyId",
        ),
    ];
    for (to, env, needle) in cases {
        let r = publish_with_cloud_env(&f, to, env);
        r.fails_with(needle);
        assert!(!r.stderr.contains("unsupported scheme"), "{}", r.stderr);
        assert!(r.stderr.contains(&format!("--to {to}")), "{}", r.stderr);
    }
    // Where credentials are configured, the URL is accepted: the failure is the store's
    // (an unreachable endpoint), not the configuration's.
    let port = free_port();
    let endpoint = format!("http://127.0.0.1:{port}");
    let r = publish_with_cloud_env(
        &f,
        "az://container/p",
        &[
            ("AZURE_STORAGE_ACCOUNT_NAME", "acct"),
            ("AZURE_STORAGE_ACCOUNT_KEY", "a2V5"),
            ("AZURE_STORAGE_ENDPOINT", &endpoint),
            ("AZURE_ALLOW_HTTP", "true"),
        ],
    );
    r.fails_with("cannot connect to the storage endpoint");
}

/// A file:// URL is a URL: `%20` is a space. A bare path is taken as it is.
#[test]
fn file_urls_are_percent_decoded() {
    let f = fixture(0);
    let parent = f.tmp.path().join("x");
    arbor(&[
        "publish",
        "--repo",
        p(&f.repo),
        "--to",
        &format!("file://{}/a%20b", p(&parent)),
    ])
    .ok();
    assert!(parent.join("a b/config").is_file());
    assert!(!parent.join("a%20b").exists());
    arbor(&["fsck", "--repo", p(&parent.join("a b"))]).ok();
    let literal = parent.join("c%20d");
    arbor(&["publish", "--repo", p(&f.repo), "--to", p(&literal)]).ok();
    assert!(literal.join("config").is_file());
}

/// An OS error is printed once: in the message that names its path, not again as the
/// cause of that message.
#[test]
fn os_errors_are_printed_once() {
    let f = fixture(0);
    let r = arbor(&[
        "publish",
        "--repo",
        p(&f.repo),
        "--to",
        "file:///dev/null/x",
    ]);
    r.fails_with("/dev/null/x: Not a directory");
    assert_eq!(
        r.stderr.matches("Not a directory").count(),
        1,
        "{}",
        r.stderr
    );
    // The local repository's errors too.
    let broken = f.tmp.path().join("broken");
    fs::create_dir_all(broken.join("objects")).unwrap();
    let r = arbor(&[
        "publish",
        "--repo",
        p(&broken),
        "--to",
        p(&f.tmp.path().join("o")),
    ]);
    r.fails_with("config: No such file or directory");
    assert_eq!(
        r.stderr.matches("No such file or directory").count(),
        1,
        "{}",
        r.stderr
    );
}

/// A full local disk fails the publish with a clear error, and clients keep seeing the
/// previous, complete state.
#[test]
fn full_local_disk_is_a_clear_error() {
    let f = fixture(0);
    let mnt = f.tmp.path().join("small");
    let _disk = util::SmallDisk::mount(&mnt, "4m");
    let dest = mnt.join("repo");
    arbor(&["publish", "--repo", p(&f.repo), "--to", p(&dest)]).ok();
    // A commit with 8 MB of incompressible data cannot fit.
    let big = f.tmp.path().join("input-big");
    edge_case_tree(&big);
    let mut x: u64 = 88172645463325252;
    let noise: Vec<u8> = (0..8_000_000)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    fs::write(big.join("noise"), noise).unwrap();
    let c = commit(&f.repo, "os/main", &big, "2020-05-01T00:00:00Z", "big");
    let r = arbor(&["publish", "--repo", p(&f.repo), "--to", p(&dest)]);
    r.fails_with("no space left");
    assert!(r.stderr.contains(p(&dest)), "{}", r.stderr);
    let server = HttpServer::start(&dest);
    let client = Client::new(&server.url());
    client.pull(&["origin", "os/main"]);
    client.fsck();
    assert_eq!(
        client.rev("os/main"),
        f.b,
        "the failed publish of {c} must not be visible"
    );
}
