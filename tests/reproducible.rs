//! Bit-for-bit reproducible composes and releases, and `arbor diff` against `ostree diff`.
//!
//! Two composes of the same treefile and timestamp agree on the commit checksum
//! whatever differs around them: cache (cold, or filled by another compose),
//! repository, working directory, umask, `TZ`, locale, the order of `.repo` files and
//! of the treefile's repositories. v2 composed after v1 (seeded accounts, cached
//! imports) has the same root tree as v2 composed cold. When an assertion fails, the
//! message carries `arbor diff --details` between the two results: the tool meant to
//! explain a failed reproduction.

mod util {
    pub use arbor_tests::*;
}

use std::collections::BTreeSet;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::Value;
use util::{arbor, corpus, corpus_dir, fedora_corpus_dir, ostree, tempdir};

fn p(path: &Path) -> &str {
    path.to_str().expect("utf-8 path")
}

/// Where and how one compose runs.
struct Env<'a> {
    cwd: &'a Path,
    umask: &'a str,
    tz: &'a str,
    lang: &'a str,
    /// `--timestamp VALUE`, or `None` to rely on `SOURCE_DATE_EPOCH`.
    timestamp: Option<&'a str>,
    source_date_epoch: Option<&'a str>,
}

const EPOCH: &str = "1704067200"; // 2024-01-01T00:00:00Z

/// The reference environment: from `/`, umask 022, UTC, C locale, `--timestamp`.
fn env_a() -> Env<'static> {
    Env {
        cwd: Path::new("/"),
        umask: "022",
        tz: "UTC",
        lang: "C.UTF-8",
        timestamp: Some("2024-01-01T00:00:00Z"),
        source_date_epoch: None,
    }
}

/// The character set `lang` gives the C library, after checking that the machine has
/// it (`locale -a`): glibc silently falls back to C for a locale that is not
/// installed, and a test varying the locale to one that is not would vary nothing.
fn installed_charmap(lang: &str) -> String {
    // glibc's spelling of a codeset: `C.UTF-8` is listed as `C.utf8`.
    let norm = |l: &str| match l.split_once('.') {
        Some((name, codeset)) => format!(
            "{name}.{}",
            codeset
                .chars()
                .filter(char::is_ascii_alphanumeric)
                .collect::<String>()
                .to_lowercase()
        ),
        None => l.to_string(),
    };
    let listed = util::run("locale", &["-a"]).ok().to_string();
    assert!(
        listed.lines().any(|l| norm(l) == norm(lang)),
        "locale {lang} is not installed (locale -a: {listed:?})"
    );
    let o = Command::new("locale")
        .arg("charmap")
        .env("LANG", lang)
        .env("LC_ALL", lang)
        .output()
        .expect("run locale");
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success() && stderr.is_empty(), "{lang}: {stderr}");
    String::from_utf8_lossy(&o.stdout).trim().to_string()
}

/// `arbor ARGS` under `env` (umask through the shell, which then execs arbor).
fn arbor_in(env: &Env, args: &[&str]) -> util::Run {
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg(format!("umask {} && exec \"$0\" \"$@\"", env.umask))
        .arg(util::arbor_bin())
        .args(args)
        .current_dir(env.cwd)
        .env("TZ", env.tz)
        .env("LANG", env.lang)
        .env("LC_ALL", env.lang)
        .env_remove("SOURCE_DATE_EPOCH")
        .stdin(Stdio::null());
    if let Some(t) = env.source_date_epoch {
        cmd.env("SOURCE_DATE_EPOCH", t);
    }
    let o = cmd.output().expect("run arbor");
    let run = util::Run {
        cmd: format!(
            "arbor {} (umask {}, TZ {})",
            args.join(" "),
            env.umask,
            env.tz
        ),
        status: o.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        stdout_bytes: o.stdout,
    };
    run.ok();
    run
}

/// Compose `treefile` into `repo` with `cache`; returns the commit and its JSON.
fn compose(env: &Env, treefile: &Path, repo: &Path, cache: &Path) -> (String, Value) {
    compose_with(env, treefile, repo, cache, &[])
}

/// [`compose`] with more `arbor compose` arguments (`--lockfile F`, …).
fn compose_with(
    env: &Env,
    treefile: &Path,
    repo: &Path,
    cache: &Path,
    extra: &[&str],
) -> (String, Value) {
    if !repo.exists() {
        arbor(&["init", "--repo", p(repo)]).ok();
    }
    let mut args = vec![
        "compose",
        "--repo",
        p(repo),
        "--cachedir",
        p(cache),
        "--json",
        "--progress",
        "none",
    ];
    if let Some(t) = env.timestamp {
        args.extend(["--timestamp", t]);
    }
    args.extend(extra);
    args.push(p(treefile));
    let run = arbor_in(env, &args);
    let v: Value = serde_json::from_str(run.stdout.trim()).expect("compose JSON");
    (v["ostree-commit"].as_str().expect("commit").to_string(), v)
}

/// `arbor diff --details` between `a` (in `repo_a`) and `b` (pulled from `repo_b` into
/// `repo_a` when they differ): what a failed reproduction shows.
fn explain(repo_a: &Path, a: &str, repo_b: &Path, b: &str) -> String {
    if repo_a != repo_b {
        ostree(&[&format!("--repo={}", p(repo_a)), "pull-local", p(repo_b), b]).ok();
    }
    let d = arbor(&["diff", "--repo", p(repo_a), "--details", a, b]);
    format!("arbor diff --details {a} {b}:\n{}{}", d.stdout, d.stderr)
}

fn root_tree(repo: &Path, commit: &str) -> (String, String) {
    let v: Value = serde_json::from_str(
        arbor(&["show", "--repo", p(repo), "--json", commit])
            .ok()
            .trim(),
    )
    .expect("show JSON");
    (
        v["root_dirtree"].as_str().unwrap().to_string(),
        v["root_dirmeta"].as_str().unwrap().to_string(),
    )
}

/// A copy of corpus treefile `name` in `dir`, with `extra_repo` (a `.repo` file name
/// without extension) and `extra_pkgs` added. The repository definitions are the
/// corpus's `.repo` files copied as they are, or (`combined`) all their sections in
/// one file in reverse order; `reverse_list` reverses the treefile's `repos:` list.
fn reordered(
    corpus: &Path,
    name: &str,
    dir: &Path,
    extra_repo: &str,
    extra_pkgs: &[&str],
    combined: bool,
    reverse_list: bool,
) -> PathBuf {
    fs::create_dir_all(dir).unwrap();
    let mut repos: Vec<PathBuf> = fs::read_dir(corpus)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().and_then(|x| x.to_str()) == Some("repo"))
        .collect();
    repos.sort();
    if combined {
        let mut sections: Vec<String> = repos
            .iter()
            .map(|r| fs::read_to_string(r).unwrap())
            .collect();
        sections.reverse();
        fs::write(dir.join("all-in-one.repo"), sections.join("\n")).unwrap();
    } else {
        for r in &repos {
            fs::copy(r, dir.join(r.file_name().unwrap())).unwrap();
        }
    }
    let text = fs::read_to_string(corpus.join(name)).unwrap();
    let mut out = String::new();
    let mut in_repos = false;
    for line in text.lines() {
        if line == "repos:" {
            in_repos = true;
            out.push_str("repos:\n");
            let own: Vec<&str> = text
                .lines()
                .skip_while(|l| *l != "repos:")
                .skip(1)
                .take_while(|l| l.starts_with("  - "))
                .collect();
            let mut all: Vec<String> = own.iter().map(|l| l.to_string()).collect();
            if !extra_repo.is_empty() {
                all.push(format!("  - {extra_repo}"));
            }
            if reverse_list {
                all.reverse();
            }
            for l in all {
                out.push_str(&l);
                out.push('\n');
            }
            continue;
        }
        if in_repos && line.starts_with("  - ") {
            continue;
        }
        in_repos = false;
        out.push_str(line);
        out.push('\n');
        if line == "packages:" {
            for pkg in extra_pkgs {
                out.push_str(&format!("  - {pkg}\n"));
            }
        }
    }
    if extra_repo == "corpus-tiny" {
        out.push_str(util::TINY_OVERRIDES);
    }
    let dest = dir.join(name);
    fs::write(&dest, out).unwrap();
    dest
}

/// A read-only checkout's rpmdb answers `rpm -qa` for an unprivileged user with exactly
/// `expected` (dnf's resolution, read from the corpus), every package with
/// transaction id `timestamp` and an install time counted from it; the database holds no sqlite transient file,
/// and none appears after a read (by that user, then by root on a writable checkout,
/// where sqlite could create one).
fn assert_rpmdb_readable(
    repo: &Path,
    commit: &str,
    tmp: &Path,
    timestamp: u64,
    expected: &BTreeSet<String>,
) {
    let co = tmp.join("co-readonly");
    arbor(&["checkout", "--repo", p(repo), commit, p(&co)]).ok();
    let db = co.join("usr/share/rpm");
    let no_transient = |when: &str| {
        let names: Vec<String> = fs::read_dir(&db)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert!(
            names.iter().all(|n| !n.ends_with("-shm")
                && !n.ends_with("-wal")
                && !n.ends_with("-journal")
                && n != ".rpm.lock"),
            "sqlite transient files {when}: {names:?}"
        );
    };
    no_transient("in the tree");
    util::run("chmod", &["-R", "a-w", p(&co)]).ok();
    // The way to the checkout must be open to `nobody` (tempdirs are 0700).
    fs::set_permissions(tmp, fs::Permissions::from_mode(0o755)).unwrap();
    let root = util::run("id", &["-u"]).ok().trim() == "0";
    let qa = |as_nobody: bool| {
        let mut args = vec![];
        if as_nobody && root {
            args.extend([
                "setpriv",
                "--reuid=65534",
                "--regid=65534",
                "--clear-groups",
            ]);
        }
        args.extend(["rpm", "--root", p(&co), "--dbpath", "/usr/share/rpm", "-qa"]);
        args.extend(["--qf", "%{NEVRA} %{INSTALLTIME} %{INSTALLTID}\\n"]);
        let r = util::run(args[0], &args[1..]);
        r.ok();
        assert!(!r.stderr.contains("error"), "{}", r.stderr);
        let mut v: Vec<String> = r.stdout.lines().map(String::from).collect();
        v.sort();
        v
    };
    let listed = qa(true);
    no_transient("after a read-only query by an unprivileged user");
    let mut names = BTreeSet::new();
    let mut times = Vec::new();
    let mut wrong_tids = Vec::new();
    for line in &listed {
        let f: Vec<&str> = line.split(' ').collect();
        assert_eq!(f.len(), 3, "{line}");
        // dnf's spelling: no epoch when it is 0 (names cannot hold ':').
        names.insert(f[0].replacen("-0:", "-", 1));
        times.push(f[1].parse::<u64>().unwrap());
        if f[2] != timestamp.to_string() {
            wrong_tids.push(line.as_str());
        }
    }
    assert!(
        wrong_tids.is_empty(),
        "INSTALLTID must be {timestamp}: {wrong_tids:?}"
    );
    // rpm under SOURCE_DATE_EPOCH: the first package installed at the timestamp, each
    // next one a second later (so that `rpm -qa --last` keeps the install order).
    times.sort();
    let steps: Vec<u64> = (timestamp..).take(listed.len()).collect();
    assert_eq!(times, steps, "INSTALLTIMEs: {listed:?}");
    assert_eq!(
        names.len(),
        listed.len(),
        "a package listed twice: {listed:?}"
    );
    assert_eq!(&names, expected, "rpm -qa against the corpus resolution");
    // Root, on a writable checkout, reads the same and leaves nothing behind either.
    util::run("chmod", &["-R", "u+w", p(&co)]).ok();
    assert_eq!(qa(false), listed);
    no_transient("after a query on a writable checkout");
}

/// The NEVRAs (dnf's spelling) of the corpus resolutions of `trees`.
fn resolution(trees: &[&str]) -> BTreeSet<String> {
    trees
        .iter()
        .flat_map(|t| corpus::resolved(t).into_values().map(|p| p.nevra))
        .collect()
}

/// `dir`'s `.repo` file `name` with its `baseurl` replaced by `url`.
fn rebase_repo_file(dir: &Path, name: &str, url: &str) {
    let path = dir.join(format!("{name}.repo"));
    let text = fs::read_to_string(&path).unwrap();
    let moved: String = text
        .lines()
        .map(|l| {
            if l.starts_with("baseurl=") {
                format!("baseurl={url}\n")
            } else {
                format!("{l}\n")
            }
        })
        .collect();
    assert_ne!(moved, text, "{} has a baseurl", path.display());
    fs::write(&path, moved).unwrap();
}

/// The machine's day now, as a day number (UTC) and as `YYYY-MM-DD` (UTC and local):
/// what a time leaking past `SOURCE_DATE_EPOCH` into a tree would look like.
fn today() -> (BTreeSet<u64>, BTreeSet<String>) {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let dates = [vec!["-u", "+%F"], vec!["+%F"]]
        .iter()
        .map(|a| util::run("date", a).ok().trim().to_string())
        .collect();
    (BTreeSet::from([now / 86400]), dates)
}

/// An inline postprocess script that gives the tree a shadow and a gshadow (the
/// corpus ships none, so the scriptlets' `useradd`s write no dates) through the tree's
/// own shadow-utils, and adds an unlocked account, whose date of last change
/// shadow-utils takes from SOURCE_DATE_EPOCH when it is set, else from the clock; and
/// records the environment that scripts see in `/usr/share/arbor-script-env`.
const DATED_POSTPROCESS: &str = "postprocess:\n  - |\n    #!/bin/sh\n    set -e\n    \
    pwconv\n    grpconv\n    \
    useradd --system --no-create-home --password '$6$arbor' arbor-dated\n    \
    printf '%s\\n' \"SOURCE_DATE_EPOCH=$SOURCE_DATE_EPOCH\" \"TZ=${TZ-unset}\" \"LANG=$LANG\" \
    \"LC_ALL=${LC_ALL-unset}\" \"umask=$(umask)\" > /usr/share/arbor-script-env\n";

/// What [`DATED_POSTPROCESS`] records of its environment: the timestamp, no time zone
/// or locale of the host's (the tree's own `/etc/localtime` applies), umask 022.
const SCRIPT_ENV: &str =
    "SOURCE_DATE_EPOCH=1704067200\nTZ=unset\nLANG=C\nLC_ALL=unset\numask=0022\n";

/// The scripts of a compose saw `timestamp` as the time: `/usr/etc/shadow` (written
/// by [`DATED_POSTPROCESS`]) dates its unlocked account `timestamp`'s day, and every
/// other date of last change is empty (locked accounts, normalized) or that day; no
/// field of shadow or gshadow is one of the machine's `days`; no file of the tree holds
/// one of its `dates`.
fn assert_no_host_date(
    repo: &Path,
    commit: &str,
    tmp: &Path,
    timestamp: u64,
    (days, dates): &(BTreeSet<u64>, BTreeSet<String>),
) {
    let r = format!("--repo={}", p(repo));
    let day = (timestamp / 86400).to_string();
    let shadow = ostree(&[&r, "cat", commit, "/usr/etc/shadow"])
        .ok()
        .to_string();
    assert!(shadow.lines().count() > 1, "{shadow}");
    let mut dated = Vec::new();
    for line in shadow.lines() {
        let f: Vec<&str> = line.split(':').collect();
        assert_eq!(f.len(), 9, "a shadow line has 9 fields: {line}");
        assert!(
            f[2].is_empty() || f[2] == day,
            "date of last change not empty nor {day} (SOURCE_DATE_EPOCH's day): {line}"
        );
        if f[2] == day {
            dated.push(f[0]);
        }
    }
    assert_eq!(dated, ["arbor-dated"], "{shadow}");
    let gshadow = ostree(&[&r, "cat", commit, "/usr/etc/gshadow"])
        .ok()
        .to_string();
    assert!(gshadow.lines().count() > 1, "{gshadow}");
    for text in [&shadow, &gshadow] {
        for line in text.lines() {
            for d in days {
                assert!(
                    !line.split(':').any(|f| f == d.to_string()),
                    "today's day number {d} in: {line}"
                );
            }
        }
    }
    let co = tmp.join("co-dates");
    arbor(&["checkout", "--repo", p(repo), commit, p(&co)]).ok();
    let mut args = vec!["-rlaF"];
    for d in dates {
        args.extend(["-e", d]);
    }
    args.push(p(&co));
    let g = util::run("grep", &args);
    // grep: 1 when nothing matches.
    assert_eq!(
        g.status, 1,
        "files holding today's date {dates:?} (or grep failed: {}):\n{}",
        g.stderr, g.stdout
    );
    fs::remove_dir_all(&co).unwrap();
}

#[test]
fn corpus_composes_identically_anywhere() {
    let c = corpus_dir();
    let tmp = tempdir();
    let t = tmp.path();
    // A: the corpus's treefile as it is, from /, umask 022, UTC, C locale, --timestamp.
    let tf_a = reordered(
        &c,
        "v1.yaml",
        &t.join("tf-a"),
        "corpus-tiny",
        &["tiny-app"],
        false,
        false,
    );
    let (repo_a, cache_a) = (t.join("repo-a"), t.join("cache-a"));
    let (c1, _) = compose(&env_a(), &tf_a, &repo_a, &cache_a);
    // B: repositories and .repo files in the other order, another directory, umask
    // 077, a far time zone, another installed locale (POSIX: ASCII, where A has
    // UTF-8), and SOURCE_DATE_EPOCH instead of --timestamp; its own cache and
    // repository.
    let cwd_b = t.join("elsewhere");
    fs::create_dir_all(&cwd_b).unwrap();
    let b = Env {
        cwd: &cwd_b,
        umask: "077",
        tz: "Pacific/Chatham",
        lang: "POSIX",
        timestamp: None,
        source_date_epoch: Some(EPOCH),
    };
    assert_ne!(
        installed_charmap(env_a().lang),
        installed_charmap(b.lang),
        "A and B must run in two different installed locales"
    );
    let tf_b = reordered(
        &c,
        "v1.yaml",
        &t.join("tf-b"),
        "corpus-tiny",
        &["tiny-app"],
        true,
        false,
    );
    let (repo_b, cache_b) = (t.join("repo-b"), t.join("cache-b"));
    let (c1b, _) = compose(&b, &tf_b, &repo_b, &cache_b);
    assert_eq!(c1, c1b, "{}", explain(&repo_a, &c1, &repo_b, &c1b));
    // v1 plus tiny-app: dnf's resolution of v1, and of tiny (which is tiny-app and
    // what it needs).
    assert_rpmdb_readable(
        &repo_a,
        &c1,
        t,
        EPOCH.parse().unwrap(),
        &resolution(&["v1", "tiny"]),
    );

    // A warm cache filled by another compose (B's, of v2) changes nothing.
    let tf_b2 = reordered(
        &c,
        "v2.yaml",
        &t.join("tf-b"),
        "corpus-tiny",
        &["tiny-app"],
        true,
        false,
    );
    compose(&b, &tf_b2, &t.join("repo-other"), &cache_b);
    let (c1c, _) = compose(&b, &tf_b, &t.join("repo-c"), &cache_b);
    assert_eq!(
        c1,
        c1c,
        "{}",
        explain(&repo_a, &c1, &t.join("repo-c"), &c1c)
    );

    // The treefile's `repos:` in the other order resolves the same packages: only the
    // recorded treefile and the metadata derived from it differ.
    let tf_r = reordered(
        &c,
        "v1.yaml",
        &t.join("tf-r"),
        "corpus-tiny",
        &["tiny-app"],
        false,
        true,
    );
    let (c1r, _) = compose(&env_a(), &tf_r, &repo_a, &cache_a);
    let d: Value = serde_json::from_str(
        arbor(&["diff", "--repo", p(&repo_a), "--json", &c1, &c1r])
            .ok()
            .trim(),
    )
    .unwrap();
    let paths: Vec<&str> = ["modified", "removed", "added"]
        .iter()
        .flat_map(|k| d[k].as_array().unwrap())
        .map(|x| x["path"].as_str().unwrap())
        .collect();
    assert_eq!(paths, ["/usr/share/rpm-ostree/treefile.json"], "{d}");

    // v2 after v1 (accounts seeded from v1, imports cached, rpmdb written again) has
    // the root tree of v2 composed cold into an empty repository.
    let tf_a2 = reordered(
        &c,
        "v2.yaml",
        &t.join("tf-a"),
        "corpus-tiny",
        &["tiny-app"],
        false,
        false,
    );
    let (c2, v2) = compose(&env_a(), &tf_a2, &repo_a, &cache_a);
    assert!(v2["arbor-import-cache-hits"].as_u64().unwrap() > 0, "{v2}");
    let (repo_cold, cache_cold) = (t.join("repo-cold"), t.join("cache-cold"));
    let (c2cold, _) = compose(&env_a(), &tf_a2, &repo_cold, &cache_cold);
    assert_eq!(
        root_tree(&repo_a, &c2),
        root_tree(&repo_cold, &c2cold),
        "{}",
        explain(&repo_a, &c2, &repo_cold, &c2cold)
    );
    // Only the parent differs between the two commits.
    let d = arbor(&["diff", "--repo", p(&repo_a), "--json", &c2, &{
        ostree(&[
            &format!("--repo={}", p(&repo_a)),
            "pull-local",
            p(&repo_cold),
            &c2cold,
        ])
        .ok();
        c2cold.clone()
    }])
    .ok()
    .to_string();
    let d: Value = serde_json::from_str(d.trim()).unwrap();
    let fields: Vec<&str> = d["commit"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields, ["parent"], "{d}");
}

#[test]
fn scriptlet_composes_identically_anywhere() {
    // The fedora-scriptlets corpus runs every %pre/%post (useradd, presets, ldconfig,
    // update-ca-certificates, systemd's own): whatever they embed of the time, the host
    // or chance is normalized, or this fails with the paths that differ.
    let c = fedora_corpus_dir();
    let tmp = tempdir();
    let t = tmp.path();
    let before = today();
    let tf = c.join("v1.yaml");
    let (repo_a, cache_a) = (t.join("repo-a"), t.join("cache-a"));
    let (c1, _) = compose(&env_a(), &tf, &repo_a, &cache_a);
    let cwd_b = t.join("elsewhere");
    fs::create_dir_all(&cwd_b).unwrap();
    let b = Env {
        cwd: &cwd_b,
        umask: "077",
        tz: "America/St_Johns",
        lang: "POSIX",
        timestamp: None,
        source_date_epoch: Some(EPOCH),
    };
    assert_ne!(
        installed_charmap(env_a().lang),
        installed_charmap(b.lang),
        "A and B must run in two different installed locales"
    );
    let (repo_b, cache_b) = (t.join("repo-b"), t.join("cache-b"));
    let (c1b, _) = compose(&b, &tf, &repo_b, &cache_b);
    assert_eq!(c1, c1b, "{}", explain(&repo_a, &c1, &repo_b, &c1b));
    // v1 with a postprocess script that dates an account in /usr/etc/shadow, composed
    // (caches warm, repositories new: no accounts seeded from a parent) in A's and
    // B's environments: the same commit, and the scripts' time was the timestamp, not
    // the machine's (whose day may have turned during the composes: both days count).
    fs::create_dir_all(t.join("tf")).unwrap();
    let dated = util::treefile_variant(&c, "v1.yaml", &t.join("tf"), |s| {
        assert!(!s.contains("\npostprocess:"), "{s}");
        s + DATED_POSTPROCESS
    });
    let (repo_da, repo_db) = (t.join("repo-dated-a"), t.join("repo-dated-b"));
    let (d1, _) = compose(&env_a(), &dated, &repo_da, &cache_a);
    let (d1b, _) = compose(&b, &dated, &repo_db, &cache_b);
    assert_eq!(d1, d1b, "{}", explain(&repo_da, &d1, &repo_db, &d1b));
    let (mut days, mut dates) = today();
    days.extend(before.0);
    dates.extend(before.1);
    assert_no_host_date(&repo_da, &d1, t, EPOCH.parse().unwrap(), &(days, dates));
    let env = ostree(&[
        &format!("--repo={}", p(&repo_da)),
        "cat",
        &d1,
        "/usr/share/arbor-script-env",
    ])
    .ok()
    .to_string();
    assert_eq!(env, SCRIPT_ENV);

    // v2 after v1 against v2 cold.
    let tf2 = c.join("v2.yaml");
    let (c2, _) = compose(&env_a(), &tf2, &repo_a, &cache_a);
    let (repo_cold, cache_cold) = (t.join("repo-cold"), t.join("cache-cold"));
    let (c2cold, _) = compose(&env_a(), &tf2, &repo_cold, &cache_cold);
    assert_eq!(
        root_tree(&repo_a, &c2),
        root_tree(&repo_cold, &c2cold),
        "{}",
        explain(&repo_a, &c2, &repo_cold, &c2cold)
    );
}

#[test]
fn release_with_source_date_epoch_publishes_identical_bytes() {
    // Two release engineers release v1 then v2 (a delta between them) from their own
    // repositories and caches: the published trees are byte for byte the same,
    // summary (last-modified from SOURCE_DATE_EPOCH), deltas and all.
    let c = corpus_dir();
    let tmp = tempdir();
    let t = tmp.path();
    for (i, tz, umask) in [(1, "UTC", "022"), (2, "Asia/Kathmandu", "077")] {
        let env = Env {
            cwd: t,
            umask,
            tz,
            lang: "C.UTF-8",
            timestamp: None,
            source_date_epoch: Some(EPOCH),
        };
        for v in ["v1", "v2"] {
            let r = arbor_in(
                &env,
                &[
                    "release",
                    p(&c.join(format!("{v}.yaml"))),
                    "--repo",
                    p(&t.join(format!("repo{i}"))),
                    "--cachedir",
                    p(&t.join(format!("cache{i}"))),
                    "--to",
                    &format!("file://{}", p(&t.join(format!("pub{i}")))),
                    "--delta-depth",
                    "1",
                    "--json",
                    "--progress",
                    "none",
                ],
            );
            let j: Value = serde_json::from_str(r.stdout.trim()).unwrap();
            if v == "v2" {
                assert_eq!(j["deltas"].as_array().unwrap().len(), 1, "{j}");
            }
        }
    }
    let listing = |root: &Path| -> Vec<(String, Vec<u8>)> {
        let mut out = Vec::new();
        let mut stack = vec![root.to_path_buf()];
        while let Some(d) = stack.pop() {
            for e in fs::read_dir(&d).unwrap() {
                let path = e.unwrap().path();
                let rel = path
                    .strip_prefix(root)
                    .unwrap()
                    .to_string_lossy()
                    .into_owned();
                if path.is_dir() {
                    stack.push(path);
                } else {
                    out.push((rel, fs::read(&path).unwrap()));
                }
            }
        }
        out.sort();
        out
    };
    let (a, b) = (listing(&t.join("pub1")), listing(&t.join("pub2")));
    assert!(a.iter().any(|(n, _)| n == "summary"));
    assert!(a.iter().any(|(n, _)| n.starts_with("deltas/")));
    let names = |v: &[(String, Vec<u8>)]| v.iter().map(|x| x.0.clone()).collect::<Vec<_>>();
    assert_eq!(names(&a), names(&b));
    for ((n, x), (_, y)) in a.iter().zip(&b) {
        assert!(x == y, "{n} differs between the two releases");
    }
    // The summary says when: SOURCE_DATE_EPOCH.
    let s = ostree(&[
        &format!("--repo={}", p(&t.join("pub1"))),
        "summary",
        "--view",
    ])
    .ok()
    .to_string();
    assert!(s.contains("2024-01-01"), "{s}");
}

#[test]
fn diff_agrees_with_ostree_diff_on_the_corpus_update() {
    let c = corpus_dir();
    let tmp = tempdir();
    let t = tmp.path();
    let (repo, cache) = (t.join("repo"), t.join("cache"));
    let (c1, _) = compose(&env_a(), &c.join("v1.yaml"), &repo, &cache);
    let later = Env {
        timestamp: Some("2024-01-02T00:00:00Z"),
        ..env_a()
    };
    let (c2, _) = compose(&later, &c.join("v2.yaml"), &repo, &cache);
    let want = ostree(&[&format!("--repo={}", p(&repo)), "diff", &c1, &c2])
        .ok()
        .to_string();
    let got = arbor(&["diff", "--repo", p(&repo), &c1, &c2])
        .ok()
        .to_string();
    assert!(want.lines().count() > 50, "a real update: {want}");
    assert_eq!(got, want, "arbor diff and ostree diff, line for line");
    // With one revision, FROM is its parent.
    let parent = arbor(&["diff", "--repo", p(&repo), &c2]).ok().to_string();
    assert_eq!(parent, want);
    // The newer client agrees too (over a copy of the repo inside its root).
    let newer_repo = util::newer_root().join("var/tmp").join(format!(
        "arbor-diff-{}",
        t.file_name().unwrap().to_string_lossy()
    ));
    util::run("cp", &["-a", p(&repo), p(&newer_repo)]).ok();
    let inside = format!(
        "--repo=/var/tmp/{}",
        newer_repo.file_name().unwrap().to_string_lossy()
    );
    let newer = util::ostree_newer(&[&inside, "diff", &c1, &c2]);
    let _ = fs::remove_dir_all(&newer_repo);
    assert_eq!(newer.ok(), want);

    // JSON: the same paths, and for modified ones what changed, consistent with the
    // entries on both sides.
    let j: Value = serde_json::from_str(
        arbor(&["diff", "--repo", p(&repo), "--json", &c1, &c2])
            .ok()
            .trim(),
    )
    .unwrap();
    let mut from_json = Vec::new();
    for (key, letter) in [("modified", 'M'), ("removed", 'D'), ("added", 'A')] {
        for x in j[key].as_array().unwrap() {
            from_json.push(format!("{letter}    {}", x["path"].as_str().unwrap()));
            if key == "modified" {
                let changed: Vec<&str> = x["changed"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|c| c.as_str().unwrap())
                    .collect();
                assert!(!changed.is_empty(), "{x}");
                let (f, t) = (&x["from"], &x["to"]);
                if changed.contains(&"mode") {
                    assert_ne!(f["mode"], t["mode"], "{x}");
                } else {
                    assert_eq!(f["mode"], t["mode"], "{x}");
                }
                if changed == ["content"] {
                    assert_ne!(f["checksum"], t["checksum"], "{x}");
                }
            }
        }
    }
    assert_eq!(from_json.join("\n") + "\n", want);
    let fields: Vec<&str> = j["commit"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["field"].as_str().unwrap())
        .collect();
    for f in [
        "parent",
        "timestamp",
        "metadata:version",
        "metadata:rpmostree.rpmdb.pkglist",
    ] {
        assert!(fields.contains(&f), "{f} not in {fields:?}");
    }
    // Details name the change: a package's upgraded binary changed content.
    let details = arbor(&["diff", "--repo", p(&repo), "--details", &c1, &c2])
        .ok()
        .to_string();
    assert!(details.contains("[content ("), "{details}");
    assert!(
        details.contains("commit timestamp: 1704067200 -> 1704153600"),
        "{details}"
    );
    // Bad revisions name themselves.
    arbor(&["diff", "--repo", p(&repo), &c1, "no-such-ref"]).fails_with("no-such-ref");
}

#[test]
fn lockfile_composes_identically_anywhere() {
    // A compose pinned to the lockfile another compose wrote is that compose, bit for
    // bit, from another cache, repository, environment and package source (the same
    // RPMs over HTTP, or copied elsewhere); with newer builds offered, the pins hold.
    let c = corpus_dir();
    let tmp = tempdir();
    let t = tmp.path();
    let lock = t.join("v1.lock.json");
    let tf_a = reordered(&c, "v1.yaml", &t.join("tf-a"), "", &[], false, false);
    let (repo_a, cache_a) = (t.join("repo-a"), t.join("cache-a"));
    let (c0, _) = compose_with(
        &env_a(),
        &tf_a,
        &repo_a,
        &cache_a,
        &["--write-lockfile-to", p(&lock)],
    );
    let pins: Value = serde_json::from_str(&fs::read_to_string(&lock).unwrap()).unwrap();
    let v1 = resolution(&["v1"]);
    assert_eq!(
        pins["packages"].as_object().unwrap().len(),
        v1.len(),
        "{pins}"
    );
    assert_rpmdb_readable(&repo_a, &c0, t, EPOCH.parse().unwrap(), &v1);

    // B: corpus-v1 served over HTTP, the lockfile elsewhere, another environment.
    let server = util::HttpServer::start(&c.join("v1"));
    let tf_b = reordered(&c, "v1.yaml", &t.join("tf-b"), "", &[], false, false);
    rebase_repo_file(&t.join("tf-b"), "corpus-v1", &server.url());
    let cwd_b = t.join("elsewhere");
    fs::create_dir_all(&cwd_b).unwrap();
    let lock_b = cwd_b.join("pins.json");
    fs::copy(&lock, &lock_b).unwrap();
    let b = Env {
        cwd: &cwd_b,
        umask: "077",
        tz: "Pacific/Chatham",
        lang: "POSIX",
        timestamp: None,
        source_date_epoch: Some(EPOCH),
    };
    let (repo_b, cache_b) = (t.join("repo-b"), t.join("cache-b"));
    let (c1, _) = compose_with(&b, &tf_b, &repo_b, &cache_b, &["--lockfile", p(&lock_b)]);
    drop(server);
    assert_eq!(c0, c1, "{}", explain(&repo_a, &c0, &repo_b, &c1));

    // C: corpus-v1 copied to another directory, another cache and repository.
    let mirror = t.join("mirror-v1");
    util::run("cp", &["-a", p(&c.join("v1")), p(&mirror)]).ok();
    let tf_c = reordered(&c, "v1.yaml", &t.join("tf-c"), "", &[], false, false);
    rebase_repo_file(
        &t.join("tf-c"),
        "corpus-v1",
        &format!("file://{}", p(&mirror)),
    );
    let (repo_c, cache_c) = (t.join("repo-c"), t.join("cache-c"));
    let (c2, _) = compose_with(
        &env_a(),
        &tf_c,
        &repo_c,
        &cache_c,
        &["--lockfile", p(&lock)],
    );
    assert_eq!(c0, c2, "{}", explain(&repo_a, &c0, &repo_c, &c2));

    // D: v2's repository offered too. Unpinned, that treefile resolves to other
    // packages; pinned, it composes v1's packages: the trees differ only by the
    // recorded treefile, and the package list is v1's.
    let tf_d = reordered(
        &c,
        "v1.yaml",
        &t.join("tf-d"),
        "corpus-v2",
        &[],
        false,
        false,
    );
    let unpinned: BTreeSet<String> = arbor(&["resolve", p(&tf_d)])
        .ok()
        .lines()
        .map(String::from)
        .collect();
    assert_ne!(unpinned, v1, "v2's repository offers newer builds");
    let (c3, _) = compose_with(
        &env_a(),
        &tf_d,
        &repo_a,
        &cache_a,
        &["--lockfile", p(&lock)],
    );
    let d: Value = serde_json::from_str(
        arbor(&["diff", "--repo", p(&repo_a), "--json", &c0, &c3])
            .ok()
            .trim(),
    )
    .unwrap();
    let paths: Vec<&str> = ["modified", "removed", "added"]
        .iter()
        .flat_map(|k| d[k].as_array().unwrap())
        .map(|x| x["path"].as_str().unwrap())
        .collect();
    assert_eq!(paths, ["/usr/share/rpm-ostree/treefile.json"], "{d}");
    let fields: Vec<&str> = d["commit"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["field"].as_str().unwrap())
        .collect();
    assert!(!fields.contains(&"metadata:rpmostree.rpmdb.pkglist"), "{d}");
}

#[test]
fn date_tags_come_from_source_date_epoch() {
    // `automatic-version-prefix` with a `<date:…>` tag, and only SOURCE_DATE_EPOCH to
    // say when (no --timestamp): the version carries that instant's UTC day — not the
    // machine's today, nor the local day of a time zone already in the next one.
    const NOON: &str = "1704110400"; // 2024-01-01T12:00:00Z, Jan 2 02:00 at UTC+14
    const NEXT_NOON: &str = "1704196800";
    let c = corpus_dir();
    let tmp = tempdir();
    let t = tmp.path();
    let tf = util::treefile_variant(&c, "tiny.yaml", t, |s| {
        let mut out: String = s
            .lines()
            .filter(|l| !l.starts_with("automatic-version-prefix:"))
            .map(|l| format!("{l}\n"))
            .collect();
        out.push_str("automatic-version-prefix: \"1.<date:%Y%m%d>\"\n");
        out
    });
    let (repo, cache) = (t.join("repo"), t.join("cache"));
    let env = |sde| Env {
        cwd: t,
        umask: "022",
        tz: "Pacific/Kiritimati",
        lang: "C.UTF-8",
        timestamp: None,
        source_date_epoch: Some(sde),
    };
    let (c1, j1) = compose(&env(NOON), &tf, &repo, &cache);
    assert_eq!(j1["ostree-version"], "1.20240101.0", "{j1}");
    assert_eq!(j1["ostree-timestamp"], "2024-01-01T12:00:00Z", "{j1}");
    let r = format!("--repo={}", p(&repo));
    let shown = ostree(&[&r, "show", "--print-metadata-key=version", &c1])
        .ok()
        .to_string();
    assert_eq!(shown.trim(), "'1.20240101.0'");
    // A day later the date moves and the counter restarts; the same day again counts
    // (--force-nocache: the inputs are unchanged).
    let (_, j2) = compose_with(&env(NEXT_NOON), &tf, &repo, &cache, &["--force-nocache"]);
    assert_eq!(j2["ostree-version"], "1.20240102.0", "{j2}");
    let (_, j3) = compose_with(&env(NEXT_NOON), &tf, &repo, &cache, &["--force-nocache"]);
    assert_eq!(j3["ostree-version"], "1.20240102.1", "{j3}");
}

#[test]
fn diff_names_owner_xattr_type_and_target_changes() {
    // Two small trees differing path by path in one aspect each: arbor diff --json
    // names that aspect, and its text is `ostree diff`'s (a changed type is modified,
    // not descended).
    use std::os::unix::fs::{chown, symlink};
    let tmp = tempdir();
    let t = tmp.path();
    let (a, b) = (t.join("a"), t.join("b"));
    for d in [&a, &b] {
        fs::create_dir_all(d.join("owned-dir/sub")).unwrap();
        for f in ["owned-dir/sub/f", "owned", "labelled", "moded"] {
            fs::write(d.join(f), "same\n").unwrap();
            fs::set_permissions(d.join(f), fs::Permissions::from_mode(0o644)).unwrap();
        }
    }
    // a: regular files, a directory and a symlink where b has other types.
    fs::write(a.join("retyped"), "same\n").unwrap();
    fs::set_permissions(a.join("retyped"), fs::Permissions::from_mode(0o644)).unwrap();
    fs::create_dir_all(a.join("was-dir/inner")).unwrap();
    fs::write(a.join("was-dir/inner/f"), "x\n").unwrap();
    fs::write(a.join("became-dir"), "x\n").unwrap();
    symlink("one", a.join("link")).unwrap();
    // b: one change each.
    chown(b.join("owned"), Some(1234), Some(5678)).expect("chown (tests run as root)");
    chown(b.join("owned-dir"), Some(1234), None).expect("chown (tests run as root)");
    assert!(
        util::set_xattr(&b.join("labelled"), "user.arbor-test", b"v"),
        "{} takes user.* xattrs",
        t.display()
    );
    fs::set_permissions(b.join("moded"), fs::Permissions::from_mode(0o600)).unwrap();
    symlink("owned", b.join("retyped")).unwrap();
    fs::write(b.join("was-dir"), "x\n").unwrap();
    fs::create_dir_all(b.join("became-dir/inner")).unwrap();
    fs::write(b.join("became-dir/inner/f"), "x\n").unwrap();
    symlink("two", b.join("link")).unwrap();
    fs::set_permissions(&a, fs::Permissions::from_mode(0o755)).unwrap();
    fs::set_permissions(&b, fs::Permissions::from_mode(0o755)).unwrap();

    let repo = t.join("repo");
    arbor(&["init", "--repo", p(&repo)]).ok();
    let commit = |dir: &Path, branch: &str| {
        arbor(&[
            "commit",
            "--repo",
            p(&repo),
            "--branch",
            branch,
            "--timestamp",
            EPOCH,
            "--progress",
            "none",
            p(dir),
        ])
        .ok()
        .trim()
        .to_string()
    };
    let (ca, cb) = (commit(&a, "a"), commit(&b, "b"));
    let want = ostree(&[&format!("--repo={}", p(&repo)), "diff", &ca, &cb])
        .ok()
        .to_string();
    let got = arbor(&["diff", "--repo", p(&repo), &ca, &cb])
        .ok()
        .to_string();
    assert_eq!(got, want, "arbor diff and ostree diff, line for line");
    let j: Value = serde_json::from_str(
        arbor(&["diff", "--repo", p(&repo), "--json", &ca, &cb])
            .ok()
            .trim(),
    )
    .unwrap();
    assert_eq!(j["removed"], serde_json::json!([]), "{j}");
    assert_eq!(j["added"], serde_json::json!([]), "{j}");
    let changed: Vec<(String, Vec<String>)> = j["modified"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| {
            (
                x["path"].as_str().unwrap().to_string(),
                x["changed"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|c| c.as_str().unwrap().to_string())
                    .collect(),
            )
        })
        .collect();
    let expect: Vec<(String, Vec<String>)> = [
        // ostree's order: files (symlinks are files), then directories, by name.
        ("/became-dir", &["type"][..]),
        ("/labelled", &["xattrs"]),
        ("/link", &["target"]),
        ("/moded", &["mode"]),
        ("/owned", &["uid", "gid"]),
        ("/retyped", &["type"]),
        ("/owned-dir", &["uid"]),
        ("/was-dir", &["type"]),
    ]
    .iter()
    .map(|(p, c)| (p.to_string(), c.iter().map(|s| s.to_string()).collect()))
    .collect();
    assert_eq!(changed, expect, "{j}");
    let lines: String = expect.iter().map(|(p, _)| format!("M    {p}\n")).collect();
    assert_eq!(want, lines);
    // Each side's entry says what it was.
    let entry = |path: &str| {
        j["modified"]
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["path"] == path)
            .unwrap()
            .clone()
    };
    let (r, l, o) = (entry("/retyped"), entry("/link"), entry("/owned"));
    assert_eq!(
        (&r["from"]["type"], &r["to"]["type"]),
        (&"file".into(), &"symlink".into())
    );
    assert_eq!(r["to"]["target"], "owned");
    assert_eq!(
        (&l["from"]["target"], &l["to"]["target"]),
        (&"one".into(), &"two".into())
    );
    assert_eq!(
        (&o["to"]["uid"], &o["to"]["gid"]),
        (&1234.into(), &5678.into())
    );
    assert_eq!(entry("/was-dir")["to"]["type"], "file");
    assert_ne!(
        entry("/labelled")["from"]["attrs"],
        entry("/labelled")["to"]["attrs"]
    );
    let details = arbor(&["diff", "--repo", p(&repo), "--details", &ca, &cb])
        .ok()
        .to_string();
    for d in [
        "M    /owned    [uid 0 -> 1234, gid 0 -> 5678]",
        "M    /retyped    [type file -> symlink]",
        "M    /link    [target one -> two]",
        "M    /labelled    [xattrs]",
        "M    /moded    [mode 644 -> 600]",
    ] {
        assert!(details.lines().any(|l| l == d), "{d:?} not in:\n{details}");
    }
}
