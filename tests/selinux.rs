//! SELinux labels and the initramfs: a compose with `selinux: true` labels every path
//! as the tree's own policy says (judged by `setfiles -F -n -v` of that policy over a
//! real `ostree checkout`, and kept by the real clients' pulls), and a tree with a
//! kernel gets an initramfs from the tree's own generator, which `ostree admin deploy`
//! puts in /boot. Bad policies, a kernel without a generator and a failing generator
//! are clear errors that commit nothing.

mod util {
    pub use arbor_tests::*;
}

use std::fs;
use std::path::Path;

use serde_json::Value;
use util::{arbor, fx_treefile, tempdir, Run};

fn p(path: &Path) -> &str {
    path.to_str().expect("utf-8 path")
}

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

fn no_ref(tmp: &Path) {
    let repo = tmp.join("repo");
    assert_eq!(arbor(&["refs", "--repo", p(&repo)]).ok().trim(), "");
    arbor(&["fsck", "--repo", p(&repo)]).ok();
}

/// The label `arbor ls` shows for `path`.
fn label(repo: &Path, commit: &str, path: &str) -> String {
    let line = arbor(&["ls", "--repo", p(repo), commit, path])
        .ok()
        .to_string();
    line.split("security.selinux=\"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .unwrap_or_else(|| panic!("no label: {line}"))
        .to_string()
}

/// A small policy (fx) that a %post puts in place: every path labeled at the end, as
/// the tree's policy then says; bad policies and the initramfs step's errors.
#[test]
fn fx_policy_labels_and_initramfs_errors() {
    let tmp = tempdir();
    let dir = tmp.path();
    let sel = |pkgs: &[&str]| {
        let t = fx_treefile(dir, pkgs, "");
        fs::write(
            &t,
            fs::read_to_string(&t)
                .unwrap()
                .replace("selinux: false", "selinux: true"),
        )
        .unwrap();
        t
    };
    let v = json(&compose(
        dir,
        &sel(&["fx-base", "fx-app", "fx-policy"]),
        &[],
    ));
    let c = v["ostree-commit"].as_str().unwrap();
    let repo = dir.join("repo");
    assert_eq!(
        label(&repo, c, "/usr/bin/busybox"),
        "system_u:object_r:bin_t:s0"
    );
    assert_eq!(
        label(&repo, c, "/usr/share/fx/log"),
        "system_u:object_r:fx_log_t:s0"
    );
    assert_eq!(
        label(&repo, c, "/usr/share/fx/app.txt"),
        "system_u:object_r:usr_t:s0"
    );
    // /usr/etc is labeled as the /etc it becomes; directories too.
    assert_eq!(
        label(&repo, c, "/usr/etc/passwd"),
        "system_u:object_r:etc_t:s0"
    );
    let usr = arbor(&["ls", "--repo", p(&repo), c, "/"]).ok().to_string();
    assert!(
        usr.lines()
            .any(|l| l.starts_with("d ") && l.contains(" /usr ") && l.contains("usr_t")),
        "{usr}"
    );
    // The policy came from a scriptlet: everything was labeled at the end.
    assert!(v["arbor-relabeled"].as_u64().unwrap() > 30, "{v}");
    // The real client reads the labels back.
    let x = util::ostree(&[
        &format!("--repo={}", p(&repo)),
        "ls",
        "-X",
        c,
        "/usr/bin/busybox",
    ])
    .ok()
    .to_string();
    assert!(x.contains("system_u:object_r:bin_t:s0"), "{x}");

    // Bad policies: clear errors, nothing committed.
    let tmp2 = tempdir();
    let d2 = tmp2.path();
    let sel2 = |pkgs: &[&str]| {
        let t = fx_treefile(d2, pkgs, "");
        fs::write(
            &t,
            fs::read_to_string(&t)
                .unwrap()
                .replace("selinux: false", "selinux: true"),
        )
        .unwrap();
        t
    };
    compose(d2, &sel2(&["fx-base", "fx-policy-broken"]), &[])
        .fails_with("libselinux cannot load the file contexts of policy fxbroken");
    compose(d2, &sel2(&["fx-base", "fx-policy-missing"]), &[]).fails_with(
        "SELINUXTYPE=nothere, but the tree has no /etc/selinux/nothere/contexts/files/file_contexts",
    );
    compose(d2, &sel2(&["fx-base"]), &[]).fails_with("the tree has no /etc/selinux/config");
    no_ref(d2);

    // A kernel: no generator is an error unless no-initramfs; the tree's dracut runs
    // with rpm-ostree's arguments and the treefile's; a failing one stops the compose.
    compose(d2, &fx_treefile(d2, &["fx-base", "fx-kernel"], ""), &[]).fails_with(
        "the tree has kernel 1.0-fx but no initramfs generator (dracut, or initramfs-tools' mkinitramfs)",
    );
    let failing = fx_treefile(
        d2,
        &["fx-base", "fx-kernel", "fx-dracut"],
        "initramfs-args: [--fx-fail]\n",
    );
    let r = compose(d2, &failing, &[]);
    r.fails_with(
        "initramfs (/usr/bin/dracut --no-hostonly --reproducible --tmpdir=/tmp -f --fx-fail",
    );
    r.fails_with("exited with status 2");
    r.fails_with("dracut: asked to fail");
    no_ref(d2);
    let v = json(&compose(
        d2,
        &fx_treefile(d2, &["fx-base", "fx-kernel"], "no-initramfs: true\n"),
        &[],
    ));
    assert_eq!(v["arbor-kernel"], "1.0-fx");
    let repo2 = d2.join("repo");
    let c = v["ostree-commit"].as_str().unwrap();
    assert_ne!(
        arbor(&[
            "cat",
            "--repo",
            p(&repo2),
            c,
            "/usr/lib/modules/1.0-fx/initramfs.img"
        ])
        .status,
        0
    );
    let v = json(&compose(
        d2,
        &fx_treefile(
            d2,
            &["fx-base", "fx-kernel", "fx-dracut"],
            "initramfs-args: [--add, fx]\n",
        ),
        &[],
    ));
    let c = v["ostree-commit"].as_str().unwrap();
    let img = "fx-dracut --no-hostonly --reproducible --tmpdir=/tmp -f --add fx \
               /usr/lib/modules/1.0-fx/initramfs.img 1.0-fx\n";
    for path in [
        "/usr/lib/modules/1.0-fx/initramfs.img",
        // boot-location: new (the default) puts it in /usr/lib/ostree-boot too.
        "/usr/lib/ostree-boot/initramfs-1.0-fx.img",
    ] {
        assert_eq!(arbor(&["cat", "--repo", p(&repo2), c, path]).ok(), img);
    }
    assert!(v["arbor-timings"]["initramfs"].as_f64().is_some(), "{v}");
}

/// The list of files in an initramfs (gzip, zstd or xz cpio, possibly after an
/// uncompressed early cpio).
fn initramfs_listing(img: &Path) -> Vec<String> {
    let data = fs::read(img).unwrap();
    // Skip uncompressed early cpio archives (microcode), then decompress the rest.
    let mut off = 0;
    while data[off..].starts_with(b"070701") {
        let o = util::run(
            "sh",
            &[
                "-c",
                &format!(
                    "tail -c +{} {} | cpio -it 2>&1 >/dev/null | tail -1",
                    off + 1,
                    p(img)
                ),
            ],
        );
        let blocks: usize = o.stdout.split_whitespace().next().unwrap().parse().unwrap();
        off += blocks * 512;
        while off < data.len() && data[off] == 0 {
            off += 1;
        }
    }
    let rest = &data[off..];
    let tool = if rest.starts_with(&[0x1f, 0x8b]) {
        "gzip -dc"
    } else if rest.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        "zstd -dc"
    } else {
        "xz -dc"
    };
    let o = util::run(
        "sh",
        &[
            "-c",
            &format!(
                "tail -c +{} {} | {tool} | cpio -it --quiet",
                off + 1,
                p(img)
            ),
        ],
    );
    o.ok().lines().map(str::to_string).collect()
}

/// Corpus v1 with a real policy (Debian's, packaged as Fedora ships one): the labels of
/// every path equal setfiles' for that policy; the real clients keep them; the tree's
/// own mkinitramfs makes a real initramfs that a deployment boots with.
#[test]
fn corpus_labels_equal_setfiles_and_the_initramfs_deploys() {
    let c = util::corpus_dir();
    let tmp = tempdir();
    let dir = tmp.path();
    let policy = util::selinux_policy_repo();
    fs::copy(
        policy.join("selinux-test.repo"),
        dir.join("selinux-test.repo"),
    )
    .unwrap();
    let t = util::treefile_variant(&c, "v1.yaml", dir, |s| {
        s.replace("selinux: false", "selinux: true")
            .replace("repos:\n", "repos:\n  - selinux-test\n")
            .replacen("\npackages:\n", "\npackages:\n  - selinux-policy-test\n", 1)
    });
    let v = json(&compose(dir, &t, &[]));
    let commit = v["ostree-commit"].as_str().unwrap().to_string();
    let repo = dir.join("repo");
    let r = format!("--repo={}", p(&repo));
    let kver = util::corpus::kernel("v1").kver;

    // Every path against setfiles -F (the whole context compared) of the tree's policy,
    // over a real checkout: /usr/etc as the /etc it becomes.
    let co = dir.join("co");
    util::ostree(&[&r, "checkout", &commit, p(&co)]).ok();
    let etc_root = dir.join("etc-root");
    fs::create_dir(&etc_root).unwrap();
    util::ostree(&[
        &r,
        "checkout",
        "--subpath=/usr/etc",
        &commit,
        p(&etc_root.join("etc")),
    ])
    .ok();
    let fc = co.join("usr/etc/selinux/default/contexts/files/file_contexts");
    let setfiles = |root: &Path, target: &Path, exclude: Option<&Path>| -> String {
        let mut args = vec!["-F", "-n", "-v", "-r", p(root)];
        if let Some(e) = exclude {
            args.extend(["-e", p(e)]);
        }
        args.extend([p(&fc), p(target)]);
        let o = util::run("setfiles", &args);
        format!("{}{}", o.stdout, o.stderr)
    };
    let usr_etc = co.join("usr/etc");
    assert_eq!(
        setfiles(&co, &co, Some(&usr_etc)).trim(),
        "",
        "labels differ from setfiles'"
    );
    assert_eq!(
        setfiles(&etc_root, &etc_root.join("etc"), None).trim(),
        "",
        "/etc labels differ"
    );
    let paths = util::run("find", &[p(&co), "-xdev"]).ok().lines().count();
    assert!(paths > 10_000, "{paths} paths");
    // The check can fail: one wrong label is reported, by path.
    let victim = co.join("usr/bin/bash");
    util::run(
        "setfattr",
        &[
            "-h",
            "-n",
            "security.selinux",
            "-v",
            "system_u:object_r:etc_t:s0",
            p(&victim),
        ],
    )
    .ok();
    let out = setfiles(&co, &co, Some(&usr_etc));
    assert!(
        out.contains("usr/bin/bash") && out.lines().count() == 1,
        "{out}"
    );

    // The clients keep the labels: pull over HTTP with 2022.7 and 2025.x.
    let want = util::run("matchpathcon", &["-f", p(&fc), "/usr/bin/bash"])
        .ok()
        .to_string();
    let want = want.split_whitespace().nth(1).unwrap().to_string();
    arbor(&["summary", "--repo", p(&repo), "-u"]).ok();
    let server = util::HttpServer::start(&repo);
    for client in [
        util::Client::host(&dir.join("client"), &server.url()),
        util::Client::newer("selinux-labels", &server.url()),
    ] {
        client
            .ostree(&["pull", "origin", "corpus/bookworm/x86_64/minimal"])
            .ok();
        let x = client
            .ostree(&["ls", "-X", &commit, "/usr/bin/bash"])
            .ok()
            .to_string();
        assert!(x.contains(&want), "{want} not in {x}");
    }

    // The initramfs: the tree's mkinitramfs, a real image with init and the modules.
    let img = co.join(format!("usr/lib/modules/{kver}/initramfs.img"));
    let listing = initramfs_listing(&img);
    assert!(
        listing.iter().any(|l| l == "init"),
        "no init in {} entries",
        listing.len()
    );
    assert!(
        listing.iter().any(
            |l| l.starts_with(&format!("usr/lib/modules/{kver}/kernel/")) && l.ends_with(".ko")
        ),
        "no kernel module in the initramfs"
    );
    let img_label = label(
        &repo,
        &commit,
        &format!("/usr/lib/modules/{kver}/initramfs.img"),
    );
    assert!(img_label.contains("_t:"), "{img_label}");

    // ostree admin deploy puts it next to the kernel in /boot.
    let sys = dir.join("sysroot");
    fs::create_dir(&sys).unwrap();
    let s = format!("--sysroot={}", p(&sys));
    util::ostree(&["admin", "init-fs", p(&sys)]).ok();
    util::ostree(&["admin", "os-init", &s, "corpus"]).ok();
    let srepo = format!("--repo={}/ostree/repo", p(&sys));
    util::ostree(&[&srepo, "pull-local", p(&repo), &commit]).ok();
    util::ostree(&["admin", "deploy", &s, "--os=corpus", &commit]).ok();
    let boot = util::run(
        "find",
        &[
            p(&sys.join("boot")),
            "-name",
            &format!("initramfs-{kver}.img"),
        ],
    )
    .ok()
    .to_string();
    let deployed = boot
        .lines()
        .next()
        .unwrap_or_else(|| panic!("no initramfs in /boot"));
    assert_eq!(fs::read(deployed).unwrap(), fs::read(&img).unwrap());
    for d in fs::read_dir(sys.join("ostree/deploy/corpus/deploy"))
        .unwrap()
        .flatten()
    {
        if d.path().is_dir() {
            util::run("chattr", &["-i", p(&d.path())]);
        }
    }
}
