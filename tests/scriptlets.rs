//! Scriptlets and postprocess scripts, run by the real arbor binary in bubblewrap on
//! the fixture RPMs of `tests/fixtures/scriptlets/fx.spec` (busybox as the shell; each
//! package logs what its scripts saw to /usr/share/fx/log), judged with the real
//! `ostree` client: order and `$1` as rpm passes them, triggers, file triggers with
//! their paths on stdin, owners created by `%pre`, `/var` turned into tmpfiles.d, no
//! network, nothing written outside the tree; and failing, hanging, Lua and postprocess
//! scripts as clear errors that move no ref.

mod util {
    pub use arbor_tests::*;
}

use std::collections::BTreeMap;
use std::fs;
use std::io::Read;
use std::net::TcpListener;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;
use util::{arbor, fx_treefile, tempdir, Run};

fn p(path: &Path) -> &str {
    path.to_str().expect("utf-8 path")
}

/// `arbor compose --json` of `treefile` into `tmp/repo` (created if missing).
fn compose(tmp: &Path, treefile: &Path, extra: &[&str]) -> Run {
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
    arbor(&args)
}

fn json(r: &Run) -> Value {
    serde_json::from_str(r.ok().trim()).unwrap_or_else(|e| panic!("{e}: {}", r.stdout))
}

/// After a failed compose: no ref, a clean repository, no session left in the cache,
/// no overlay left mounted.
fn assert_nothing_left(tmp: &Path) {
    let repo = tmp.join("repo");
    assert_eq!(arbor(&["refs", "--repo", p(&repo)]).ok().trim(), "");
    arbor(&["fsck", "--repo", p(&repo)]).ok();
    let leftovers: Vec<_> = fs::read_dir(tmp.join("cache/tmp"))
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    let mounts = fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(!mounts.contains(p(tmp)), "{mounts}");
}

/// A listener on the port fx-net's %post tries; true once anything connected.
fn listen_for_escapes() -> Arc<AtomicBool> {
    let hit = Arc::new(AtomicBool::new(false));
    let l = TcpListener::bind("127.0.0.1:47321").expect("bind 127.0.0.1:47321 (fx-net's port)");
    let h = hit.clone();
    std::thread::spawn(move || {
        for mut s in l.incoming().flatten() {
            let _ = s.read(&mut [0u8; 16]);
            h.store(true, Ordering::SeqCst);
        }
    });
    hit
}

#[test]
fn scriptlets_run_in_rpms_order_with_its_arguments() {
    let tmp = tempdir();
    let escapes = [
        "/tmp/fx-escape-tmp",
        "/run/fx-escape-run",
        "/var/tmp/fx-escape-vartmp",
        "/fx-escape-root",
        "/tmp/fx-escape-link",
    ];
    for e in escapes {
        let _ = fs::remove_file(e);
    }
    let net = listen_for_escapes();
    let t = fx_treefile(
        tmp.path(),
        &[
            "fx-base",
            "fx-app",
            "fx-trig",
            "fx-data",
            "fx-owner",
            "fx-var",
            "fx-escape",
            "fx-net",
        ],
        "",
    );
    let r = compose(tmp.path(), &t, &[]);
    let v = json(&r);
    let repo = tmp.path().join("repo");
    let commit = v["ostree-commit"].as_str().unwrap().to_string();
    util::ostree(&[&format!("--repo={}", p(&repo)), "fsck"]).ok();
    let co = tmp.path().join("co");
    util::ostree(&[&format!("--repo={}", p(&repo)), "checkout", &commit, p(&co)]).ok();
    let log = fs::read_to_string(co.join("usr/share/fx/log")).unwrap();
    let lines: Vec<&str> = log.lines().collect();
    let at = |needle: &str| {
        lines
            .iter()
            .position(|l| l.starts_with(needle))
            .unwrap_or_else(|| panic!("{needle:?} not in the log:\n{log}"))
    };
    // Every %pre before any %post (rpm-ostree's order), fx-base's first (the others
    // need it before their %pre), $1 = 1 for an install.
    let pres = [
        "fx-base pre args=1",
        "fx-app pre args=1",
        "fx-owner pre args=1",
    ];
    assert_eq!(at(pres[0]), 0, "{log}");
    let last_pre = pres.iter().map(|n| at(n)).max().unwrap();
    for post in [
        "fx-app post args=1",
        "fx-escape post args=1",
        "fx-var post args=1",
    ] {
        assert!(at(post) > last_pre, "{post} before a %pre:\n{log}");
    }
    // %post -p /usr/bin/sh ran its body; %posttrans -p PROG without a body ran PROG with
    // no argument, after every %post; %pretrans is not run (as rpm-ostree).
    assert!(at("fx-record args=") > at("fx-var post"), "{log}");
    assert_eq!(lines[at("fx-record")], "fx-record args=");
    assert!(!log.contains("pretrans"), "{log}");
    // %triggerin on fx-app: after fx-app's %post, with $1 $2 = 1 1; the trigger on a
    // package that is not installed never fires.
    assert!(
        at("fx-trig triggerin fx-app args=1 1") > at("fx-app post"),
        "{log}"
    );
    assert!(!log.contains("fx-not-installed"), "{log}");
    // %transfiletriggerin last, $1 = 0, every path under its prefix on stdin.
    let ft: Vec<&str> = lines
        .iter()
        .filter(|l| l.starts_with("fx-trig transfiletriggerin"))
        .copied()
        .collect();
    assert_eq!(
        ft,
        [
            "fx-trig transfiletriggerin args=0 /usr/share/fx-data",
            "fx-trig transfiletriggerin args=0 /usr/share/fx-data/a.txt",
            "fx-trig transfiletriggerin args=0 /usr/share/fx-data/b.txt",
        ]
    );
    assert_eq!(at(ft[0]), lines.len() - 3, "{log}");
    // No network inside the sandbox.
    assert!(log.contains("fx-net no network"), "{log}");
    std::thread::sleep(Duration::from_millis(200));
    assert!(
        !net.load(Ordering::SeqCst),
        "a scriptlet reached 127.0.0.1:47321"
    );
    // Nothing written outside the tree: not on the host, not in the commit.
    for e in escapes {
        assert!(!Path::new(e).exists(), "{e} was written on the host");
    }
    assert_eq!(
        fs::read_link(co.join("usr/share/fx/tmp-link")).unwrap(),
        Path::new("/tmp")
    );
    assert!(!co.join("fx-escape-root").exists() && !co.join("tmp/fx-escape-tmp").exists());
    // Owners that fx-owner's %pre created: uid 4242, gid 4243, setuid kept; the
    // directory 0750 — as the real client sees them.
    let ls = util::ostree(&[
        &format!("--repo={}", p(&repo)),
        "ls",
        &commit,
        "/usr/bin/fx-suid",
        "/usr/share/fx-owned",
    ])
    .ok()
    .to_string();
    assert!(
        ls.contains("-04755 4242 4243") && ls.contains("d00750 4242 4243"),
        "{ls}"
    );
    let passwd = fs::read_to_string(co.join("usr/lib/passwd")).unwrap();
    assert!(passwd.contains("fxuser:x:4242:4243:"), "{passwd}");
    assert!(fs::read_to_string(co.join("usr/etc/passwd"))
        .unwrap()
        .starts_with("root:"));
    // What fx-var left in /var: directories and the symlink as tmpfiles.d lines (the
    // file is dropped), nothing under /var in the tree.
    let autovar =
        fs::read_to_string(co.join("usr/lib/tmpfiles.d/rpm-ostree-1-autovar.conf")).unwrap();
    for line in [
        "L /var/lib/fx-link - - - - ../../usr/share/fx",
        "d /var/lib/fx-state 0700 root root - -",
        "d /var/lib/fx-state/sub 0755 root root - -",
    ] {
        assert!(
            autovar.lines().any(|l| l == line),
            "{line:?} not in:\n{autovar}"
        );
    }
    assert!(!autovar.contains("fx-file"), "{autovar}");
    assert_eq!(fs::read_dir(co.join("var")).unwrap().count(), 0);
    // The compose JSON lists what ran, in order, with times; and what did not, why.
    let ran = v["arbor-scriptlets"].as_array().unwrap();
    assert_eq!(ran[0]["package"], "fx-base-1-1.x86_64");
    assert_eq!(ran[0]["scriptlet"], "%pre");
    assert!(ran.iter().all(|r| r["seconds"].as_f64().unwrap() > 0.0));
    assert!(ran
        .iter()
        .any(|r| r["scriptlet"] == "%triggerin (fx-app-1-1.x86_64)"));
    assert_eq!(
        v["arbor-skipped-scriptlets"]["fx-base-1-1.x86_64"][0],
        "%pretrans: not run (as rpm-ostree)"
    );
    // Unchanged inputs: nothing runs again.
    let again = compose(tmp.path(), &t, &[]);
    assert!(again.ok().trim().is_empty() || !again.stdout.contains("ostree-commit"));
    assert!(
        again.stderr.contains("No apparent changes"),
        "{}",
        again.stderr
    );
}

#[test]
fn failing_hanging_and_lua_scriptlets_are_clear_errors() {
    let tmp = tempdir();
    // A failing %post: package, scriptlet, status and its last output.
    let t = fx_treefile(tmp.path(), &["fx-base", "fx-fail"], "");
    let r = compose(tmp.path(), &t, &[]);
    r.fails_with("fx-fail-1-1.x86_64: %post scriptlet failed: exited with status 3");
    r.fails_with("fx-fail is about to fail");
    r.fails_with("last words on stderr");
    assert_nothing_left(tmp.path());

    // A hanging one is killed at the timeout, with what it printed.
    let t = fx_treefile(tmp.path(), &["fx-base", "fx-hang"], "");
    let start = Instant::now();
    let r = compose(tmp.path(), &t, &["--scriptlet-timeout", "2"]);
    r.fails_with("fx-hang-1-1.x86_64: %post scriptlet failed: killed after the 2 s timeout");
    r.fails_with("fx-hang sleeps");
    assert!(
        start.elapsed() < Duration::from_secs(60),
        "{:?}",
        start.elapsed()
    );
    assert_nothing_left(tmp.path());
    let sleeping = util::run("pgrep", &["-f", "sleep 3600"]);
    assert_ne!(
        sleeping.status, 0,
        "the hanging script survived: {}",
        sleeping.stdout
    );

    // Lua: refused before anything runs, naming package and scriptlet; replaced
    // through scriptlet-overrides, it runs as shell.
    let t = fx_treefile(tmp.path(), &["fx-base", "fx-lua"], "");
    let r = compose(tmp.path(), &t, &[]);
    r.fails_with("Package 'fx-lua-1-1.x86_64' has (currently) unsupported <lua> script in '%post'");
    r.fails_with("scriptlet-overrides (package: fx-lua, scriptlet: post)");
    assert_nothing_left(tmp.path());
    let t = fx_treefile(
        tmp.path(),
        &["fx-base", "fx-lua"],
        "scriptlet-overrides:\n  - package: fx-lua\n    scriptlet: post\n    script: echo replaced-lua >> /usr/share/fx/log\n",
    );
    let v = json(&compose(tmp.path(), &t, &[]));
    let log = arbor(&[
        "cat",
        "--repo",
        p(&tmp.path().join("repo")),
        v["ostree-commit"].as_str().unwrap(),
        "/usr/share/fx/log",
    ])
    .ok()
    .to_string();
    assert!(log.contains("replaced-lua"), "{log}");
}

#[test]
fn missing_bubblewrap_and_failing_postprocess_are_clear_errors() {
    let tmp = tempdir();
    // PATH with every tool arbor runs but bwrap.
    let bin = tmp.path().join("bin");
    fs::create_dir(&bin).unwrap();
    for tool in ["rpm", "rpmdb", "unshare", "nsenter", "sh"] {
        let which = util::run("sh", &["-c", &format!("command -v {tool}")]);
        std::os::unix::fs::symlink(which.ok().trim(), bin.join(tool)).unwrap();
    }
    let t = fx_treefile(tmp.path(), &["fx-base", "fx-app"], "");
    let repo = tmp.path().join("repo");
    arbor(&["init", "--repo", p(&repo)]).ok();
    let o = std::process::Command::new(util::arbor_bin())
        .args(["compose", "--repo", p(&repo), "--cachedir"])
        .arg(tmp.path().join("cache"))
        .arg(&t)
        .env("PATH", &bin)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(
        err.contains("running scriptlets needs `bwrap` (Debian/Fedora package bubblewrap)"),
        "{err}"
    );
    assert_nothing_left(tmp.path());

    // A postprocess script that fails: which one, its status and output.
    let t = fx_treefile(
        tmp.path(),
        &["fx-base"],
        "postprocess:\n  - |\n    #!/bin/sh\n    echo postprocess-was-here\n    exit 4\n",
    );
    let r = compose(tmp.path(), &t, &[]);
    r.fails_with("postprocess script #1 of the treefile failed: exited with status 4");
    r.fails_with("postprocess-was-here");
    assert_nothing_left(tmp.path());
}

#[test]
fn postprocess_runs_last_and_accounts_are_checked() {
    let tmp = tempdir();
    let dir = tmp.path();
    fs::write(dir.join("added"), "added by add-files\n").unwrap();
    fs::write(
        dir.join("pp.sh"),
        "#!/bin/sh\necho \"script sees $(cat /usr/lib/os-release | grep ^VERSION=)\" >> /usr/share/fx/pp\n",
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(dir.join("pp.sh"), fs::Permissions::from_mode(0o755)).unwrap();
    fs::write(
        dir.join("inc.yaml"),
        "postprocess:\n  - |\n    #!/bin/sh\n    echo included >> /usr/share/fx/pp\n",
    )
    .unwrap();
    let extra = "include: inc.yaml\n\
        automatic-version-prefix: \"41\"\n\
        mutate-os-release: \"41\"\n\
        add-files: [[added, /usr/share/fx/added]]\n\
        remove-files: [usr/share/fx/app.txt]\n\
        postprocess-script: pp.sh\n\
        postprocess:\n  - |\n    #!/bin/sh\n    test -e /usr/share/fx/app.txt && echo removed-file-seen >> /usr/share/fx/pp\n    cat /usr/share/fx/added >> /usr/share/fx/pp\n    echo main $0 >> /usr/share/fx/pp\n";
    let t = fx_treefile(dir, &["fx-base", "fx-app"], extra);
    // The fixture treefile's own automatic-version-prefix gives way to this one.
    let text = fs::read_to_string(&t)
        .unwrap()
        .replace("automatic-version-prefix: \"1\"\n", "");
    fs::write(&t, text).unwrap();
    let repo = dir.join("repo");
    json(&compose(dir, &t, &[]));
    let v = json(&compose(dir, &t, &["--force-nocache"]));
    assert_eq!(v["ostree-version"], "41.1");
    let c = v["ostree-commit"].as_str().unwrap();
    let cat = |f: &str| arbor(&["cat", "--repo", p(&repo), c, f]).ok().to_string();
    // Included scripts before the includer's, postprocess-script last; they see
    // remove-files, add-files and mutate-os-release (through /etc/os-release, a link
    // to /usr/lib/os-release) applied; their script files are gone afterwards.
    assert_eq!(
        cat("/usr/share/fx/pp"),
        "included\nadded by add-files\nmain /usr/bin/rpmostree-postprocess-inline-1\n\
         script sees VERSION=\"41.1 (Test)\"\n"
    );
    assert_eq!(
        cat("/usr/lib/os-release"),
        "NAME=FX\nVERSION=\"41.1 (Test)\"\nPRETTY_NAME=\"FX 41.1 (Test)\"\nID=fx\nOSTREE_VERSION='41.1'\n"
    );
    let bin = arbor(&["ls", "--repo", p(&repo), c, "/usr/bin"])
        .ok()
        .to_string();
    assert!(!bin.contains("rpmostree-"), "{bin}");

    // check-passwd/check-groups against a file and inline data that disagree with the
    // accounts the scriptlets create: one error naming both, no ref moved.
    let tmp2 = tempdir();
    fs::write(
        tmp2.path().join("passwd"),
        "root:x:0:0:root:/root:/bin/sh\nfxuser:x:5000:4243:fx:/:/bin/sh\n",
    )
    .unwrap();
    let t = fx_treefile(
        tmp2.path(),
        &["fx-base", "fx-owner"],
        "preserve-passwd: false\n",
    );
    let text = fs::read_to_string(&t)
        .unwrap()
        .replace(
            "check-passwd: {type: none}",
            "check-passwd: {type: file, filename: passwd}",
        )
        .replace(
            "check-groups: {type: none}",
            "check-groups: {type: data, entries: {fxgroup: 1}}",
        );
    fs::write(&t, text).unwrap();
    let r = compose(tmp2.path(), &t, &[]);
    r.fails_with("passwd UID changed: fxuser (5000 to 4242)");
    r.fails_with("group GID changed: fxgroup (1 to 4243)");
    assert_nothing_left(tmp2.path());
    // With preserve-passwd (the default), the file's uid seeds /etc/passwd: fx-owner's
    // %pre finds fxuser and the check passes with uid 5000.
    let text = fs::read_to_string(&t)
        .unwrap()
        .replace("preserve-passwd: false\n", "")
        .replace("{type: data, entries: {fxgroup: 1}}", "{type: none}");
    fs::write(&t, text).unwrap();
    let v = json(&compose(tmp2.path(), &t, &[]));
    let ls = arbor(&[
        "ls",
        "--repo",
        p(&tmp2.path().join("repo")),
        v["ostree-commit"].as_str().unwrap(),
        "/usr/bin/fx-suid",
    ])
    .ok()
    .to_string();
    assert!(ls.contains(" 5000 4243 "), "{ls}");
}

/// The tree's accounts as `name → (id, gid)`, both halves of rpm-ostree's split.
fn accounts(
    root: &Path,
    etc: &str,
    lib: Option<&str>,
    group: bool,
) -> BTreeMap<String, (u32, u32)> {
    let mut text = fs::read_to_string(root.join(etc)).unwrap();
    if let Some(lib) = lib {
        text += &fs::read_to_string(root.join(lib)).unwrap();
    }
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            let id = f[2].parse().unwrap();
            let gid = if group { id } else { f[3].parse().unwrap() };
            (f[0].to_string(), (id, gid))
        })
        .collect()
}

/// Symlinks under a directory: relative path → target.
fn links(dir: &Path) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).unwrap().flatten() {
            let m = fs::symlink_metadata(e.path()).unwrap();
            let rel = e
                .path()
                .strip_prefix(dir)
                .unwrap()
                .to_string_lossy()
                .into_owned();
            if m.file_type().is_symlink() {
                out.insert(
                    rel,
                    fs::read_link(e.path())
                        .unwrap()
                        .to_string_lossy()
                        .into_owned(),
                );
            } else if m.is_dir() {
                stack.push(e.path());
            }
        }
    }
    out
}

/// The corpus with Fedora-style scriptlets (users, unit presets, ldconfig and CA
/// bundle): the composed tree's /etc/passwd, /etc/group, /etc/systemd/system,
/// /etc/ld.so.cache and /etc/ssl/certs against `dnf --installroot` of the same
/// packages with their scriptlets; then the client story on trees with scriptlets:
/// deploy v1, upgrade to v2 through a static delta, roll back.
#[test]
fn fedora_corpus_matches_dnf_installroot_and_deploys() {
    let c = util::fedora_corpus_dir();
    let tmp = tempdir();
    let repo = tmp.path().join("repo");
    let published = tmp.path().join("published");
    let release = |v: &str| {
        let r = arbor(&[
            "release",
            p(&c.join(format!("{v}.yaml"))),
            "--repo",
            p(&repo),
            "--cachedir",
            p(&tmp.path().join("cache")),
            "--to",
            &format!("file://{}", p(&published)),
            "--timestamp",
            if v == "v1" {
                "2024-01-01T00:00:00Z"
            } else {
                "2024-01-02T00:00:00Z"
            },
            "--json",
        ]);
        json(&r)
    };
    let j1 = release("v1");
    let c1 = j1["commit"].as_str().unwrap().to_string();
    let co = tmp.path().join("co");
    arbor(&["checkout", "--repo", p(&repo), &c1, p(&co)]).ok();

    // The oracle: dnf installs exactly the resolved packages, scriptlets included.
    let nevras = arbor(&["resolve", p(&c.join("v1.yaml"))]).ok().to_string();
    let root = tmp.path().join("dnf-root");
    fs::create_dir(&root).unwrap();
    let mut args = vec![
        format!("--installroot={}", p(&root)),
        "--setopt=reposdir=/dev/null".into(),
        format!("--setopt=cachedir={}", p(&tmp.path().join("dnf-cache"))),
        "--releasever=12".into(),
        "--forcearch=x86_64".into(),
        "--setopt=install_weak_deps=False".into(),
        "--disableplugin=*".into(),
        format!("--repofrompath=r0,file://{}", p(&c.join("v1"))),
        "--setopt=r0.gpgcheck=0".into(),
        "-y".into(),
        "-q".into(),
        "install".into(),
    ];
    args.extend(nevras.lines().map(str::to_string));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    util::run("dnf", &args).ok();

    // ld.so.cache and the CA bundle: byte for byte.
    for f in ["ld.so.cache", "ssl/certs/ca-certificates.crt"] {
        assert!(
            fs::read(co.join("usr/etc").join(f)).unwrap()
                == fs::read(root.join("etc").join(f)).unwrap(),
            "/etc/{f} differs from dnf's"
        );
    }
    assert_eq!(
        links(&co.join("usr/etc/ssl/certs")),
        links(&root.join("etc/ssl/certs"))
    );

    // Accounts: the same names and uids. A gid may differ in one documented way:
    // rpm-ostree lays every package down before any %pre, so `useradd` always finds
    // /etc/login.defs (USERGROUPS_ENAB) and gives a user without -g a group of its own,
    // where dnf ran that %pre before login.defs was installed (primary group `users`).
    let ours_u = accounts(&co, "usr/etc/passwd", Some("usr/lib/passwd"), false);
    let dnf_u = accounts(&root, "etc/passwd", None, false);
    let ours_g = accounts(&co, "usr/etc/group", Some("usr/lib/group"), true);
    let dnf_g = accounts(&root, "etc/group", None, true);
    assert_eq!(
        ours_u.keys().collect::<Vec<_>>(),
        dnf_u.keys().collect::<Vec<_>>()
    );
    let mut private_groups = Vec::new();
    for (name, (uid, gid)) in &ours_u {
        let (duid, dgid) = dnf_u[name];
        assert_eq!(*uid, duid, "uid of {name}");
        if *gid != dgid {
            assert_eq!(
                ours_g.get(name).map(|g| g.0),
                Some(*gid),
                "{name}: gid {gid} vs dnf's {dgid}"
            );
            assert_eq!(
                dnf_g
                    .iter()
                    .find(|(_, g)| g.0 == dgid)
                    .map(|(n, _)| n.as_str()),
                Some("users")
            );
            assert!(!dnf_g.contains_key(name));
            private_groups.push(name.clone());
        }
    }
    for (name, g) in &ours_g {
        match dnf_g.get(name) {
            Some(d) => assert_eq!(g, d, "gid of group {name}"),
            None => assert!(
                private_groups.contains(name),
                "group {name} only in arbor's tree"
            ),
        }
    }
    assert_eq!(ours_g.len(), dnf_g.len() + private_groups.len());
    eprintln!("user private groups (login.defs present at %pre): {private_groups:?}");

    // systemd presets: dnf's links are all ours. Ours has more, for two documented
    // reasons: the treefile's `units`, and packages whose %post ran, under dnf, before
    // systemd (and systemctl) was installed, so their `systemctl preset` did nothing.
    // Replaying `systemctl preset` of those units in dnf's root gives exactly our links.
    let ours_l = links(&co.join("usr/etc/systemd/system"));
    let dnf_l = links(&root.join("etc/systemd/system"));
    for (k, v) in &dnf_l {
        assert_eq!(
            ours_l.get(k),
            Some(v),
            "{k} in dnf's root, not ours (or another target)"
        );
    }
    let units: Vec<String> = ours_l
        .iter()
        .filter(|(k, _)| !dnf_l.contains_key(*k))
        .filter(|(k, _)| {
            // The treefile's units (v1.yaml: systemd-networkd, ssh) are linked by arbor.
            !(k.starts_with("multi-user.target.wants/")
                && ["systemd-networkd.service", "ssh.service"]
                    .iter()
                    .any(|u| k.ends_with(u)))
        })
        .map(|(_, target)| target.rsplit('/').next().unwrap().to_string())
        .collect();
    eprintln!("presets dnf did not apply: {units:?}");
    if !units.is_empty() {
        let mut args = vec![format!("--root={}", p(&root)), "preset".into()];
        args.extend(units);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        util::run("systemctl", &args).ok();
    }
    let replayed = links(&root.join("etc/systemd/system"));
    for (k, v) in &ours_l {
        let treefile_unit = k == "multi-user.target.wants/systemd-networkd.service";
        assert!(
            treefile_unit || replayed.get(k) == Some(v),
            "{k} -> {v}: not explained by a preset"
        );
    }

    // rpm -qa in the composed tree lists exactly the resolution.
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
    .replace("-0:", "-");
    let mut qa: Vec<&str> = qa.lines().collect();
    qa.sort();
    assert_eq!(qa, nevras.lines().collect::<Vec<_>>());

    // v2: only the changed packages are imported; the scriptlets run again on a tree
    // of hardlinks (no package is re-extracted); uids stay those of v1.
    let j2 = release("v2");
    let c2 = j2["commit"].as_str().unwrap().to_string();
    assert_eq!(j2["parent"], c1.as_str());
    let co2 = tmp.path().join("co2");
    arbor(&["checkout", "--repo", p(&repo), &c2, p(&co2)]).ok();
    assert_eq!(
        accounts(&co2, "usr/etc/passwd", Some("usr/lib/passwd"), false),
        ours_u,
        "v2 renumbered accounts"
    );

    // The client: deploy v1 over HTTP, upgrade to v2 through the static delta, roll
    // back.
    let server = util::HttpServer::start(&published);
    let sys = tmp.path().join("sysroot");
    fs::create_dir_all(&sys).unwrap();
    let s = format!("--sysroot={}", p(&sys));
    let srepo = format!("--repo={}/ostree/repo", p(&sys));
    let reference = "corpus/bookworm/x86_64/minimal";
    util::ostree(&["admin", "init-fs", p(&sys)]).ok();
    util::ostree(&["admin", "os-init", &s, "corpus"]).ok();
    util::ostree(&[
        &srepo,
        "remote",
        "add",
        "--no-gpg-verify",
        "origin",
        &server.url(),
    ])
    .ok();
    util::ostree(&[&srepo, "pull", "origin", &format!("{reference}@{c1}")]).ok();
    util::ostree(&["admin", "deploy", &s, "--os=corpus", &c1]).ok();
    util::pull_through_a_delta(&srepo, reference);
    util::ostree(&["admin", "deploy", &s, "--os=corpus", &c2]).ok();
    let status = util::ostree(&["admin", "status", &s]).ok().to_string();
    let first = |st: &str| st.lines().next().unwrap_or("").to_string();
    assert!(first(&status).contains(&c2), "{status}");
    let etc2 = sys.join(format!("ostree/deploy/corpus/deploy/{c2}.0/etc"));
    assert!(fs::read_to_string(etc2.join("passwd"))
        .unwrap()
        .starts_with("root:"));
    assert!(etc2.join("ld.so.cache").is_file());
    // Rollback: the new deployment goes, the old one is the default again.
    util::ostree(&["admin", "undeploy", &s, "0"]).ok();
    let status = util::ostree(&["admin", "status", &s]).ok().to_string();
    assert!(
        first(&status).contains(&c1) && !status.contains(&c2),
        "{status}"
    );
    for d in fs::read_dir(sys.join("ostree/deploy/corpus/deploy"))
        .unwrap()
        .flatten()
    {
        if d.path().is_dir() {
            util::run("chattr", &["-i", p(&d.path())]);
        }
    }
}

/// The compose keys that shape the tree and its metadata beyond the scriptlets, on the
/// fixture set: ostree-layers (a conflicting layer refused, an override layer winning),
/// opt-usrlocal: root, readonly-executables, container-cmd, initramfs-args,
/// repo-metadata: detached, cliwrap, automatic-version-suffix.
#[test]
fn compose_keys_shape_tree_and_metadata() {
    let tmp = tempdir();
    let dir = tmp.path();
    let repo = dir.join("repo");
    arbor(&["init", "--repo", p(&repo)]).ok();
    // Two layers committed into the repository: one adds a file, one replaces app.txt.
    for (name, file, text) in [
        ("layer/add", "usr/share/fx/layered.txt", "from a layer\n"),
        ("layer/override", "usr/share/fx/app.txt", "overridden\n"),
    ] {
        let d = dir.join(name.replace('/', "-"));
        fs::create_dir_all(d.join(file).parent().unwrap()).unwrap();
        fs::write(d.join(file), text).unwrap();
        arbor(&[
            "commit",
            "--repo",
            p(&repo),
            "-b",
            name,
            "-s",
            name,
            "--owner-uid",
            "0",
            "--owner-gid",
            "0",
            p(&d),
        ])
        .ok();
    }
    let extra = "ostree-layers: [layer/add]\n\
        ostree-override-layers: [layer/override]\n\
        opt-usrlocal: root\n\
        readonly-executables: true\n\
        container-cmd: [/usr/bin/sh, -c, echo hi]\n\
        initramfs-args: [--no-hostonly, --add, fx]\n\
        repo-metadata: detached\n\
        cliwrap: true\n\
        automatic-version-suffix: \"-\"\n";
    let t = fx_treefile(dir, &["fx-base", "fx-app"], extra);
    json(&compose(dir, &t, &[]));
    let v = json(&compose(dir, &t, &["--force-nocache"]));
    assert_eq!(v["ostree-version"], "1-1");
    let c = v["ostree-commit"].as_str().unwrap();
    let r = format!("--repo={}", p(&repo));
    let cat = |f: &str| util::ostree(&[&r, "cat", c, f]).ok().to_string();
    assert_eq!(cat("/usr/share/fx/layered.txt"), "from a layer\n");
    assert_eq!(cat("/usr/share/fx/app.txt"), "overridden\n");
    let ls = util::ostree(&[
        &r,
        "ls",
        c,
        "/opt",
        "/usr/local",
        "/usr/bin/fx-record",
        "/usr/bin/busybox",
    ])
    .ok()
    .to_string();
    assert!(
        ls.lines()
            .any(|l| l.starts_with("d00755") && l.ends_with("/opt")),
        "{ls}"
    );
    assert!(
        ls.lines()
            .any(|l| l.starts_with("d00755") && l.ends_with("/usr/local")),
        "{ls}"
    );
    assert!(
        ls.lines()
            .any(|l| l.starts_with("-00555") && l.ends_with("/usr/bin/fx-record")),
        "{ls}"
    );
    assert_eq!(
        cat("/usr/bin/dnf"),
        "#!/bin/sh\nexec /usr/bin/rpm-ostree cliwrap $0 \"$@\"\n"
    );
    let key = |k: &str| {
        util::ostree(&[&r, "show", &format!("--print-metadata-key={k}"), c])
            .ok()
            .trim()
            .to_string()
    };
    assert_eq!(
        key("ostree.container-cmd"),
        "['/usr/bin/sh', '-c', 'echo hi']"
    );
    assert_eq!(
        key("rpmostree.initramfs-args"),
        "['--no-hostonly', '--add', 'fx']"
    );
    // The repositories' timestamps are in the detached metadata, not the commit.
    assert_ne!(
        util::ostree(&[&r, "show", "--print-metadata-key=rpmostree.rpmmd-repos", c]).status,
        0
    );
    let detached = util::ostree(&[
        &r,
        "show",
        "--print-detached-metadata-key=rpmostree.rpmmd-repos",
        c,
    ])
    .ok()
    .to_string();
    assert!(detached.contains("'fx'"), "{detached}");

    // A layer whose file conflicts with a package's is refused, naming both.
    let t = fx_treefile(
        dir,
        &["fx-base", "fx-app"],
        "ostree-layers: [layer/override]\n",
    );
    compose(dir, &t, &[])
        .fails_with("ostree-layers layer/override: /usr/share/fx/app.txt conflicts with the tree");
    let t = fx_treefile(
        dir,
        &["fx-base", "fx-app"],
        "ostree-layers: [layer/missing]\n",
    );
    compose(dir, &t, &[]).fails_with("ostree-layers: ref \"layer/missing\" is not in");
}
