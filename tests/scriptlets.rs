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
