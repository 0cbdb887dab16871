//! Helpers for integration tests: run the real `arbor` binary and the real `ostree`
//! client in temporary directories, serve repositories over HTTP on 127.0.0.1, and build
//! fixture trees. Every fixture path lives here. Container tools and registries: [`oracles`].

#![allow(dead_code)]

pub mod corpus;
pub mod oracles;
pub mod registry;

use std::collections::BTreeMap;
use std::fs;
use std::net::TcpListener;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub use tempfile::TempDir;

/// The workspace root (parent of `tests/`).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf()
}

/// The `arbor` binary, built once per test run.
pub fn arbor_bin() -> PathBuf {
    static BUILT: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    BUILT
        .get_or_init(|| {
            let root = workspace_root();
            let profile_dir =
                std::env::var("ARBOR_TEST_PROFILE").unwrap_or_else(|_| "debug".into());
            let mut cmd = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
            cmd.current_dir(&root).args(["build", "-q", "-p", "arbor"]);
            if profile_dir == "release" {
                cmd.arg("--release");
            }
            let st = cmd.status().expect("run cargo build");
            assert!(st.success(), "cargo build -p arbor failed");
            let target = std::env::var("CARGO_TARGET_DIR")
                .map(PathBuf::from)
                .unwrap_or_else(|_| root.join("target"));
            target.join(profile_dir).join("arbor")
        })
        .clone()
}

/// Result of running a command, with helpers that print everything on failure.
#[derive(Debug)]
pub struct Run {
    pub cmd: String,
    pub status: i32,
    pub stdout: String,
    pub stderr: String,
    pub stdout_bytes: Vec<u8>,
}

impl Run {
    fn from_output(cmd: String, o: Output) -> Run {
        Run {
            cmd,
            status: o.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
            stdout_bytes: o.stdout,
        }
    }

    /// Run a prepared command (stdin closed): for environments `run` cannot set.
    pub fn from_command(mut cmd: Command) -> Run {
        let name = format!("{cmd:?}");
        let o = cmd
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("cannot run {name}: {e}"));
        Run::from_output(name, o)
    }

    /// Assert exit 0 and return stdout.
    #[track_caller]
    pub fn ok(&self) -> &str {
        assert_eq!(
            self.status, 0,
            "command failed: {}\nstdout:\n{}\nstderr:\n{}",
            self.cmd, self.stdout, self.stderr
        );
        &self.stdout
    }

    /// Assert exit 0 and return the run (to read stdout and stderr after).
    #[track_caller]
    pub fn ok_ref(&self) -> &Run {
        self.ok();
        self
    }

    /// Assert a clean failure: non-zero exit, no panic, and stderr containing `needle`.
    #[track_caller]
    pub fn fails_with(&self, needle: &str) {
        assert_ne!(
            self.status, 0,
            "command unexpectedly succeeded: {}\n{}",
            self.cmd, self.stdout
        );
        assert!(
            !self.stderr.contains("panicked"),
            "command panicked: {}\n{}",
            self.cmd,
            self.stderr
        );
        assert!(
            self.stderr.contains(needle),
            "stderr of {} does not mention {needle:?}:\n{}",
            self.cmd,
            self.stderr
        );
    }
}

/// A path as a command-line argument (test paths are UTF-8).
pub fn p(path: &Path) -> &str {
    path.to_str().expect("utf-8 path")
}

/// The JSON object a command printed on stdout (`--json`); a panic shows the run otherwise.
pub fn json(run: &Run) -> serde_json::Value {
    serde_json::from_str(run.stdout.trim()).unwrap_or_else(|e| {
        panic!(
            "{}: bad JSON ({e}):\n{}\n{}",
            run.cmd, run.stdout, run.stderr
        )
    })
}

/// `ostree REPO_ARG pull --require-static-deltas origin REF`, asserting the pull went
/// through a static delta (`REPO_ARG` is the `--repo=…` argument of a client).
#[track_caller]
pub fn pull_through_a_delta(repo_arg: &str, reference: &str) {
    let pull = ostree(&[
        repo_arg,
        "pull",
        "--require-static-deltas",
        "origin",
        reference,
    ]);
    assert!(
        pull.ok().contains("delta parts") || pull.stderr.contains("delta parts"),
        "{}",
        pull.stdout
    );
}

pub fn run(program: impl AsRef<std::ffi::OsStr>, args: &[&str]) -> Run {
    let program = program.as_ref();
    let cmd = format!("{} {}", program.to_string_lossy(), args.join(" "));
    let o = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd}: {e}"));
    Run::from_output(cmd, o)
}

pub fn arbor(args: &[&str]) -> Run {
    run(arbor_bin(), args)
}

pub fn ostree(args: &[&str]) -> Run {
    run("ostree", args)
}

/// Like [`ostree`] but for the newer (2025.x) client in a chroot. Repositories must be
/// reached over HTTP or placed inside the chroot; see `../shared/tools/ostree-newer.sh`.
pub fn ostree_newer(args: &[&str]) -> Run {
    let script = workspace_root().join("../shared/tools/ostree-newer.sh");
    let mut full = vec![newer_root().to_str().expect("utf-8").to_string()];
    full.extend(args.iter().map(|s| s.to_string()));
    let refs: Vec<&str> = full.iter().map(String::as_str).collect();
    run(script, &refs)
}

/// A client repository (`bare-user`) with an `origin` remote at a URL, driven by a real
/// ostree: the host's 2022.7 ([`Client::host`]) or the newer 2025.x in its chroot
/// ([`Client::newer`]: the repository lives inside the chroot and is removed on drop).
pub struct Client {
    arg: String,
    newer: bool,
    /// Where the repository is, seen from this process.
    path: PathBuf,
}

impl Client {
    /// A client repository at `path`, for the host's ostree.
    pub fn host(path: &Path, url: &str) -> Client {
        let c = Client {
            arg: format!("--repo={}", path.to_str().expect("utf-8 path")),
            newer: false,
            path: path.to_path_buf(),
        };
        c.init(url)
    }

    /// A client repository `/var/tmp/<name>-<pid>` inside the newer client's chroot.
    pub fn newer(name: &str, url: &str) -> Client {
        let name = format!("{name}-{}", std::process::id());
        let outside = newer_root().join("var/tmp").join(&name);
        let _ = fs::remove_dir_all(&outside);
        let c = Client {
            arg: format!("--repo=/var/tmp/{name}"),
            newer: true,
            path: outside,
        };
        c.init(url)
    }

    fn init(self, url: &str) -> Client {
        self.ostree(&["init", "--mode=bare-user"]).ok();
        self.ostree(&["remote", "add", "--no-gpg-verify", "origin", url])
            .ok();
        self
    }

    /// A host client whose `origin` verifies commits and the summary (`gpg-verify=true`,
    /// `gpg-verify-summary=true`) against the OpenPGP public key in `key`.
    pub fn host_verifying(path: &Path, url: &str, key: &Path) -> Client {
        let c = Client {
            arg: format!("--repo={}", path.to_str().expect("utf-8 path")),
            newer: false,
            path: path.to_path_buf(),
        };
        c.init_verifying(url, key.to_str().expect("utf-8 path"))
    }

    /// The same with the newer client (the key is copied into its chroot).
    pub fn newer_verifying(name: &str, url: &str, key: &Path) -> Client {
        let name = format!("{name}-{}", std::process::id());
        let outside = newer_root().join("var/tmp").join(&name);
        let _ = fs::remove_dir_all(&outside);
        fs::create_dir_all(&outside).expect("mkdir client");
        fs::copy(key, outside.join("key.asc")).expect("copy key into the chroot");
        let c = Client {
            arg: format!("--repo=/var/tmp/{name}/repo"),
            newer: true,
            path: outside,
        };
        c.init_verifying(url, &format!("/var/tmp/{name}/key.asc"))
    }

    fn init_verifying(self, url: &str, key: &str) -> Client {
        self.ostree(&["init", "--mode=bare-user"]).ok();
        let import = format!("--gpg-import={key}");
        self.ostree(&[
            "remote",
            "add",
            "--set=gpg-verify=true",
            "--set=gpg-verify-summary=true",
            &import,
            "origin",
            url,
        ])
        .ok();
        self
    }

    /// `ostree --repo=<this repository> ARGS…`.
    pub fn ostree(&self, args: &[&str]) -> Run {
        let mut full = vec![self.arg.as_str()];
        full.extend_from_slice(args);
        if self.newer {
            ostree_newer(&full)
        } else {
            ostree(&full)
        }
    }

    /// The repository's directory, seen from this process.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        if self.newer {
            let _ = fs::remove_dir_all(&self.path);
        }
    }
}

/// The real `rpm -i --root ROOT --nodeps --noscripts …` of `rpms` (what the importer is
/// judged against), with `extra` options such as `--excludedocs`.
pub fn rpm_install(root: &Path, rpms: &[&Path], extra: &[&str]) {
    let mut args = vec![
        "-i",
        "--root",
        root.to_str().expect("utf-8 path"),
        "--dbpath",
        "/var/lib/rpm",
        "--nodeps",
        "--noscripts",
        "--notriggers",
        "--nosignature",
        "--nodigest",
        "--ignorearch",
    ];
    args.extend_from_slice(extra);
    args.extend(rpms.iter().map(|r| r.to_str().expect("utf-8 path")));
    run("rpm", &args).ok();
}

/// Where the newer ostree chroot lives (built on first use).
pub fn newer_root() -> PathBuf {
    PathBuf::from(
        std::env::var("ARBOR_OSTREE_NEWER_ROOT").unwrap_or_else(|_| "/var/tmp/ostree-newer".into()),
    )
}

/// `/usr/bin/python3` with GLib (`python3-gi`), for golden GVariant bytes.
pub fn system_python() -> &'static str {
    "/usr/bin/python3"
}

pub fn tempdir() -> TempDir {
    let base = std::env::var("ARBOR_TEST_TMP").unwrap_or_else(|_| "/var/tmp".into());
    fs::create_dir_all(&base).expect("test tmp base");
    tempfile::Builder::new()
        .prefix("arbor-test-")
        .tempdir_in(base)
        .expect("tempdir")
}

/// A `python3 -m http.server` serving `dir` on 127.0.0.1; killed on drop.
pub struct HttpServer {
    child: Child,
    pub port: u16,
}

impl HttpServer {
    pub fn start(dir: &Path) -> HttpServer {
        let port = free_port();
        let child = Command::new(system_python())
            .args([
                "-m",
                "http.server",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--directory",
            ])
            .arg(dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start python http.server");
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "http.server did not start on port {port}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        HttpServer { child, port }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/", self.port)
    }
}

impl Drop for HttpServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

/// Set a `user.*` xattr; returns false when the filesystem refuses xattrs.
pub fn set_xattr(path: &Path, name: &str, value: &[u8]) -> bool {
    rustix::fs::lsetxattr(path, name, value, rustix::fs::XattrFlags::empty()).is_ok()
}

fn write_mode(path: &Path, content: &[u8], mode: u32) {
    fs::write(path, content).expect("write fixture file");
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).expect("chmod fixture file");
}

/// The edge-case tree the acceptance tests commit with both arbor and ostree: empty
/// files, executables, setuid/setgid, symlinks (relative, absolute, dangling),
/// hardlinks, empty dirs, odd modes, non-ASCII names, names whose bytewise order
/// differs from locale order, `user.*` xattrs, a large compressible file and a binary.
pub fn edge_case_tree(root: &Path) {
    fs::create_dir_all(root).expect("mkdir");
    write_mode(&root.join("hello.txt"), b"hello\n", 0o644);
    write_mode(&root.join("empty"), b"", 0o644);
    write_mode(&root.join("run.sh"), b"#!/bin/sh\necho hi\n", 0o755);
    write_mode(&root.join("suid"), b"setuid\n", 0o4755);
    write_mode(&root.join("sgid"), b"setgid\n", 0o2711);
    write_mode(&root.join("sticky-file"), b"odd\n", 0o1600);
    write_mode(&root.join("write-only"), b"w\n", 0o200);
    write_mode(&root.join("no-perms"), b"none\n", 0o000);
    symlink("hello.txt", root.join("link-rel")).expect("symlink");
    symlink("/etc/passwd", root.join("link-abs")).expect("symlink");
    symlink("does/not/exist", root.join("link-dangling")).expect("symlink");
    symlink("sub", root.join("link-to-dir")).expect("symlink");
    // Names in strcmp order vs locale order: uppercase before lowercase, '_' and '-'
    // and '.' sorting by byte value, UTF-8 after ASCII.
    for name in [
        "B",
        "Z",
        "_u",
        "a-b",
        "a.b",
        "a.txt",
        "a",
        "aa",
        "wörld ☃ (copy).txt",
        "日本",
        "Ä",
        "z",
    ] {
        write_mode(&root.join(name), name.as_bytes(), 0o644);
    }
    let sub = root.join("sub");
    fs::create_dir_all(sub.join("deeper/deepest")).expect("mkdir");
    write_mode(
        &sub.join("data.bin"),
        &(0..=255u8).cycle().take(300_000).collect::<Vec<_>>(),
        0o644,
    );
    write_mode(&sub.join("deeper/deepest/leaf"), b"leaf\n", 0o640);
    fs::hard_link(root.join("hello.txt"), sub.join("hardlink-to-hello")).expect("hardlink");
    fs::hard_link(sub.join("data.bin"), sub.join("data-hardlink.bin")).expect("hardlink");
    let big: Vec<u8> = (0..3_000_000u32)
        .flat_map(|i| (i % 977).to_le_bytes())
        .collect();
    write_mode(&sub.join("big.dat"), &big, 0o644);
    fs::create_dir_all(root.join("empty-dir")).expect("mkdir");
    fs::create_dir_all(root.join("private-dir")).expect("mkdir");
    fs::set_permissions(root.join("private-dir"), fs::Permissions::from_mode(0o700))
        .expect("chmod");
    fs::create_dir_all(root.join("sticky-dir")).expect("mkdir");
    fs::set_permissions(root.join("sticky-dir"), fs::Permissions::from_mode(0o1777))
        .expect("chmod");
    fs::create_dir_all(root.join("setgid-dir")).expect("mkdir");
    fs::set_permissions(root.join("setgid-dir"), fs::Permissions::from_mode(0o2775))
        .expect("chmod");
    // xattrs on a file and a directory; several names to exercise sorting.
    let x = root.join("xattr-file");
    write_mode(&x, b"with xattrs\n", 0o644);
    set_xattr(&x, "user.zeta", b"last");
    set_xattr(&x, "user.alpha", b"first");
    set_xattr(&x, "user.binary", &[0, 1, 2, 255]);
    set_xattr(&root.join("sub"), "user.dirattr", b"on a directory");
}

/// Types, paths, sizes, contents and symlink targets: what a user-mode (`-U`) checkout
/// keeps of a tree, for comparing a checkout with its input.
pub fn content_listing(root: &Path) -> Vec<String> {
    let mut lines: Vec<String> = dir_listing(root)
        .into_iter()
        .map(|l| {
            let f: Vec<&str> = l.splitn(5, ' ').collect();
            match f[0] {
                "-" => {
                    let rest: Vec<&str> = f[4].splitn(3, ' ').collect();
                    format!("- {} {} {}", rest[0], rest[1], rest[2])
                }
                _ => format!("{} {}", f[0], f[4]),
            }
        })
        .collect();
    lines.sort();
    lines
}

/// Canonical listing of a directory on disk in the same format as `arbor ls -R`, minus
/// checksums: `type mode uid gid size path [-> target]` plus a content hash, so two
/// directories can be compared for equality.
pub fn dir_listing(root: &Path) -> Vec<String> {
    use std::os::unix::fs::MetadataExt;
    let mut out = Vec::new();
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        let abs = root.join(&rel);
        let mut names: Vec<_> = fs::read_dir(&abs)
            .expect("read_dir")
            .map(|e| e.expect("entry").file_name())
            .collect();
        names.sort();
        for n in names {
            let r = rel.join(&n);
            let p = root.join(&r);
            let m = fs::symlink_metadata(&p).expect("lstat");
            let line = if m.file_type().is_symlink() {
                format!(
                    "l {:o} {} {} /{} -> {}",
                    m.mode(),
                    m.uid(),
                    m.gid(),
                    r.display(),
                    fs::read_link(&p).expect("readlink").display()
                )
            } else if m.is_dir() {
                stack.push(r.clone());
                format!("d {:o} {} {} /{}", m.mode(), m.uid(), m.gid(), r.display())
            } else {
                let data = fs::read(&p).expect("read");
                let sum: u64 = data
                    .iter()
                    .enumerate()
                    .fold(0xcbf29ce484222325u64, |h, (i, b)| {
                        (h ^ u64::from(*b) ^ (i as u64)).wrapping_mul(0x100000001b3)
                    });
                format!(
                    "- {:o} {} {} {} {sum:016x} /{}",
                    m.mode(),
                    m.uid(),
                    m.gid(),
                    m.len(),
                    r.display()
                )
            };
            out.push(line);
        }
    }
    out.sort();
    out
}

/// The read-only shared folder beside the checkout (`../shared`).
pub fn shared_dir() -> PathBuf {
    std::env::var("ARBOR_SHARED")
        .map(PathBuf::from)
        .unwrap_or_else(|_| workspace_root().join("../shared"))
}

/// The corpus built by `../shared/corpus/make-corpus.sh` (ci/test.sh builds it). Fails
/// the test with instructions when it is missing: never skipped silently.
pub fn corpus_dir() -> PathBuf {
    let dir =
        PathBuf::from(std::env::var("ARBOR_CORPUS").unwrap_or_else(|_| "/var/tmp/corpus".into()));
    assert!(
        dir.join("v1.yaml").is_file() && dir.join("tiny.yaml").is_file(),
        "corpus missing at {}: run `bash ../shared/corpus/make-corpus.sh {}` (ci/test.sh does)",
        dir.display(),
        dir.display()
    );
    dir
}

/// The corpus built with `CORPUS_SCRIPTLETS=fedora` (scriptlets meant to run: users,
/// presets, ldconfig, CA bundle; ci/test.sh builds it). Fails the test with
/// instructions when it is missing.
pub fn fedora_corpus_dir() -> PathBuf {
    let dir = PathBuf::from(
        std::env::var("ARBOR_CORPUS_FEDORA").unwrap_or_else(|_| "/var/tmp/corpus-fedora".into()),
    );
    assert!(
        dir.join("v1.yaml").is_file() && dir.join("v2.yaml").is_file(),
        "fedora-scriptlets corpus missing at {}: run `CORPUS_SCRIPTLETS=fedora \
         CORPUS_KEEP_STALE=1 bash ../shared/corpus/make-corpus.sh {}` (ci/test.sh does)",
        dir.display(),
        dir.display()
    );
    dir
}

/// The dnf oracle: `verify-with-dnf.sh ARGS…` → sorted NEVRAs (or the failed run).
pub fn dnf_oracle(args: &[&str]) -> Run {
    run(shared_dir().join("corpus/verify-with-dnf.sh"), args)
}

/// The corpus's tiny packages carry Lua scriptlets (`tiny` `%pre`, `tiny-libs` `%post`,
/// `tiny-extras` `%posttrans`) and a `%post -p /usr/bin/tiny-sh` whose `#!/bin/sh` the
/// tiny tree has no shell for. Like rpm-ostree, arbor refuses Lua and would fail
/// running that `%post`, so treefiles of the tiny set skip them (arbor's
/// `scriptlet-overrides`).
pub const TINY_OVERRIDES: &str = "scriptlet-overrides:\n\
  - {package: tiny, scriptlet: pre}\n\
  - {package: tiny, scriptlet: post}\n\
  - {package: tiny-libs, scriptlet: post}\n\
  - {package: tiny-extras, scriptlet: posttrans}\n";

/// `tiny.yaml` with [`TINY_OVERRIDES`], in `dir` (with the corpus's .repo files).
pub fn tiny_treefile(dir: &Path) -> PathBuf {
    treefile_variant(&corpus_dir(), "tiny.yaml", dir, |s| s)
}

/// Copy a corpus treefile (and the .repo files next to it) into `dir`, applying
/// `edit` to its text (a copy of `tiny.yaml` also gets [`TINY_OVERRIDES`]); returns
/// the new treefile path.
pub fn treefile_variant(
    corpus: &Path,
    name: &str,
    dir: &Path,
    edit: impl Fn(String) -> String,
) -> PathBuf {
    for e in fs::read_dir(corpus).expect("read corpus") {
        let p = e.expect("entry").path();
        if p.extension().and_then(|x| x.to_str()) == Some("repo") {
            fs::copy(&p, dir.join(p.file_name().expect("name"))).expect("copy .repo");
        }
    }
    let mut text = fs::read_to_string(corpus.join(name)).expect("read treefile");
    if name == "tiny.yaml" {
        text.push_str(TINY_OVERRIDES);
    }
    let dest = dir.join(name);
    fs::write(&dest, edit(text)).expect("write treefile");
    dest
}

// ---------------------------------------------------------------------------------------
// garage

/// A garage server of its own for one test; stopped (by pid) on drop.
pub struct Garage {
    pub dir: TempDir,
    pub env: BTreeMap<String, String>,
}

pub fn garage_installed() -> bool {
    Command::new("bash")
        .args(["-c", "PATH=$HOME/.cargo/bin:$PATH command -v garage"])
        .stdout(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

/// Run `ci/<script> DIR ARGS…` (which must not install garage) in a new temporary DIR and
/// read the env file whose path it prints last.
fn start_garage_script(script: &str, args: &[&str]) -> (TempDir, BTreeMap<String, String>) {
    assert!(
        garage_installed(),
        "garage is not installed: run `cargo install garage --locked` (what ci/start-garage.sh \
         does when garage is missing; ~20 min cold), then rerun the tests"
    );
    let dir = tempdir();
    let out = Command::new("bash")
        .arg(workspace_root().join("ci").join(script))
        .arg(dir.path())
        .args(args)
        .env("GARAGE_NO_INSTALL", "1")
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("run ci/{script}: {e}"));
    assert!(
        out.status.success(),
        "ci/{script} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let env_path = stdout.lines().last().unwrap_or_default().trim();
    let text = fs::read_to_string(env_path)
        .unwrap_or_else(|e| panic!("garage env file {env_path:?} from ci/{script}: {e}"));
    let env = text
        .lines()
        .filter_map(|l| l.strip_prefix("export "))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    (dir, env)
}

/// `arbor ARGS…` with exactly the AWS_* variables of `env` (none of this process's).
fn arbor_command_with(env: &BTreeMap<String, String>, args: &[&str]) -> Command {
    let mut cmd = Command::new(arbor_bin());
    for (k, _) in std::env::vars() {
        if k.starts_with("AWS_") {
            cmd.env_remove(k);
        }
    }
    cmd.args(args).envs(env).stdin(Stdio::null());
    cmd
}

fn run_arbor_command(mut cmd: Command, args: &[&str]) -> Run {
    let o = cmd.output().expect("run arbor");
    Run::from_output(format!("arbor {}", args.join(" ")), o)
}

fn stop_garage(dir: &Path) {
    let _ = Command::new("bash")
        .arg(workspace_root().join("ci/stop-garage.sh"))
        .arg(dir)
        .stderr(Stdio::null())
        .status();
}

impl Garage {
    pub fn start() -> Garage {
        let (dir, env) = start_garage_script("start-garage.sh", &[]);
        Garage { dir, env }
    }

    pub fn var(&self, k: &str) -> &str {
        self.env
            .get(k)
            .map(String::as_str)
            .unwrap_or_else(|| panic!("{k} in garage env"))
    }

    /// `s3://localhost/<prefix>`.
    pub fn url(&self, prefix: &str) -> String {
        format!("s3://localhost/{prefix}")
    }

    /// The web endpoint's URL for `<prefix>` (what ostree clients pull from).
    pub fn web(&self, prefix: &str) -> String {
        format!("{}{prefix}", self.var("GARAGE_WEB_URL"))
    }

    /// `arbor` with this garage's AWS_* variables (and no others).
    pub fn command(&self, args: &[&str]) -> Command {
        arbor_command_with(&self.env, args)
    }

    pub fn arbor(&self, args: &[&str]) -> Run {
        self.arbor_env(args, &[])
    }

    pub fn arbor_env(&self, args: &[&str], extra: &[(&str, &str)]) -> Run {
        let mut cmd = self.command(args);
        cmd.envs(extra.iter().copied());
        run_arbor_command(cmd, args)
    }

    /// `garage -c <its config> ARGS…` (keys, buckets, permissions).
    pub fn garage(&self, args: &[&str]) -> Run {
        garage_cli(self.var("GARAGE_CONFIG"), args)
    }
}

impl Drop for Garage {
    fn drop(&mut self) {
        stop_garage(self.dir.path());
    }
}

/// A garage cluster of its own for one test (`ci/start-garage-cluster.sh`): `nodes`
/// processes on 127.0.0.1, replication factor 3, each node with its own S3 and web
/// endpoint; nodes can be killed and restarted. Every node is stopped (by pid) on drop.
pub struct GarageCluster {
    pub dir: TempDir,
    pub env: BTreeMap<String, String>,
    pub nodes: usize,
}

impl GarageCluster {
    pub fn start(nodes: usize) -> GarageCluster {
        let (dir, env) = start_garage_script("start-garage-cluster.sh", &[&nodes.to_string()]);
        GarageCluster { dir, env, nodes }
    }

    pub fn var(&self, k: &str) -> &str {
        self.env
            .get(k)
            .map(String::as_str)
            .unwrap_or_else(|| panic!("{k} in garage env"))
    }

    /// `GARAGE_NODE<node>_<what>` from the env file (`S3_URL`, `WEB_URL`, `CONFIG`, `DIR`, `ID`).
    pub fn node_var(&self, node: usize, what: &str) -> &str {
        self.var(&format!("GARAGE_NODE{node}_{what}"))
    }

    /// `s3://localhost/<prefix>` (the same bucket through any node).
    pub fn url(&self, prefix: &str) -> String {
        format!("s3://localhost/{prefix}")
    }

    /// Node `node`'s web endpoint URL for `<prefix>` (what ostree clients pull from).
    pub fn web(&self, node: usize, prefix: &str) -> String {
        format!("{}{prefix}", self.node_var(node, "WEB_URL"))
    }

    /// Node `node`'s directory (`garage.toml`, `meta/`, `data/`, `garage.log`, `pid`).
    pub fn node_dir(&self, node: usize) -> PathBuf {
        PathBuf::from(self.node_var(node, "DIR"))
    }

    /// `arbor` talking S3 to node `node` (AWS_ENDPOINT_URL), with the cluster's key.
    pub fn command(&self, node: usize, args: &[&str]) -> Command {
        let mut env = self.env.clone();
        env.insert(
            "AWS_ENDPOINT_URL".into(),
            self.node_var(node, "S3_URL").to_string(),
        );
        arbor_command_with(&env, args)
    }

    pub fn arbor(&self, node: usize, args: &[&str]) -> Run {
        run_arbor_command(self.command(node, args), args)
    }

    /// `garage -c <node's config> ARGS…` (the CLI talks RPC to that node).
    pub fn garage(&self, node: usize, args: &[&str]) -> Run {
        garage_cli(self.node_var(node, "CONFIG"), args)
    }

    /// The pid of node `node`'s server, if it was started and not stopped since.
    pub fn pid(&self, node: usize) -> Option<i32> {
        fs::read_to_string(self.node_dir(node).join("pid"))
            .ok()
            .and_then(|s| s.trim().parse().ok())
    }

    /// SIGKILL node `node` (no shutdown of any kind) and wait until it is gone.
    pub fn kill(&self, node: usize) {
        self.signal(node, rustix::process::Signal::KILL);
    }

    /// Stop node `node` cleanly (SIGTERM) and wait until it is gone.
    pub fn stop(&self, node: usize) {
        self.signal(node, rustix::process::Signal::TERM);
    }

    fn signal(&self, node: usize, signal: rustix::process::Signal) {
        let pid = self
            .pid(node)
            .unwrap_or_else(|| panic!("garage node {node} is not running"));
        let p = rustix::process::Pid::from_raw(pid).expect("a pid");
        rustix::process::kill_process(p, signal)
            .unwrap_or_else(|e| panic!("signal garage node {node} (pid {pid}): {e}"));
        let deadline = Instant::now() + Duration::from_secs(30);
        while process_alive(pid) {
            assert!(
                Instant::now() < deadline,
                "garage node {node} (pid {pid}) did not exit"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = fs::remove_file(self.node_dir(node).join("pid"));
    }

    /// Start node `node` again with its own config, or with `config` (same meta and
    /// data dirs); returns when it answers and its web endpoint listens.
    pub fn restart(&self, node: usize, config: Option<&Path>) {
        let mut cmd = Command::new("bash");
        cmd.arg(workspace_root().join("ci/start-garage-cluster.sh"))
            .arg("--restart")
            .arg(self.dir.path())
            .arg(node.to_string());
        if let Some(c) = config {
            cmd.arg(c);
        }
        let out = cmd
            .env("GARAGE_NO_INSTALL", "1")
            .stdin(Stdio::null())
            .output()
            .expect("run ci/start-garage-cluster.sh --restart");
        assert!(
            out.status.success(),
            "restarting garage node {node} failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

impl Drop for GarageCluster {
    fn drop(&mut self) {
        stop_garage(self.dir.path());
    }
}

/// `garage -c CONFIG ARGS…`: the CLI, talking RPC to the node CONFIG describes.
fn garage_cli(config: &str, args: &[&str]) -> Run {
    let mut full = vec!["-c", config];
    full.extend_from_slice(args);
    let mut cmd = Command::new("garage");
    cmd.args(&full)
        .env("PATH", garage_path())
        .stdin(Stdio::null());
    let o = cmd.output().expect("run garage");
    Run::from_output(format!("garage {}", full.join(" ")), o)
}

/// `PATH` with `~/.cargo/bin` first (where `cargo install garage` puts it).
fn garage_path() -> String {
    let home = std::env::var("HOME").unwrap_or_else(|_| "/root".into());
    format!(
        "{home}/.cargo/bin:{}",
        std::env::var("PATH").unwrap_or_default()
    )
}

/// Whether process `pid` exists and is not a zombie waiting to be reaped.
fn process_alive(pid: i32) -> bool {
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        // `pid (comm) S …`: the state follows the last ')'.
        Ok(stat) => stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .is_some_and(|state| state != "Z" && state != "X"),
        Err(_) => false,
    }
}

/// A small tmpfs mounted at `path` (root only), unmounted on drop: a disk that fills up.
pub struct SmallDisk(PathBuf);

impl SmallDisk {
    pub fn mount(path: &Path, size: &str) -> SmallDisk {
        fs::create_dir_all(path).expect("create mount point");
        let m = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(path)
            .output()
            .expect("run mount");
        assert!(
            m.status.success(),
            "this test needs to mount a small tmpfs (root): {}",
            String::from_utf8_lossy(&m.stderr)
        );
        SmallDisk(path.to_path_buf())
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

// ---------------------------------------------------------------------------------------
// scriptlet fixtures

/// The scriptlet test RPMs (`tests/fixtures/scriptlets/fx.spec`), built once with
/// rpmbuild into an rpm-md repository under `/var/tmp/arbor-fixtures/<spec digest>`
/// (reused while the spec is unchanged), and `fx.repo` next to it naming it `fx`.
pub fn scriptlet_fixtures() -> PathBuf {
    static BUILT: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    BUILT
        .get_or_init(|| {
            let spec = workspace_root().join("tests/fixtures/scriptlets/fx.spec");
            let text = fs::read(&spec).expect("read fx.spec");
            let busybox = fs::read("/bin/busybox")
                .expect("/bin/busybox (Debian busybox-static; ci/install-deps.sh installs it)");
            let mut h = std::collections::hash_map::DefaultHasher::new();
            std::hash::Hash::hash(&(text, busybox.len()), &mut h);
            let key = std::hash::Hasher::finish(&h);
            let base = PathBuf::from("/var/tmp/arbor-fixtures");
            let dest = base.join(format!("fx-{key:016x}"));
            if dest.join("repodata/repomd.xml").is_file() {
                return dest;
            }
            fs::create_dir_all(&base).expect("create /var/tmp/arbor-fixtures");
            let work = base.join(format!("build-{}", std::process::id()));
            let _ = fs::remove_dir_all(&work);
            fs::create_dir_all(work.join("repo/Packages")).expect("mkdir");
            let o = Command::new("rpmbuild")
                .env("SOURCE_DATE_EPOCH", "1704067200")
                .arg("-bb")
                .arg("--quiet")
                .arg("--define")
                .arg(format!("_topdir {}", work.join("top").display()))
                .arg("--define")
                .arg(format!("_rpmdir {}", work.join("repo/Packages").display()))
                .arg("--define")
                .arg("_rpmfilename %%{NAME}-%%{VERSION}-%%{RELEASE}.%%{ARCH}.rpm")
                .arg(&spec)
                .output()
                .expect("run rpmbuild");
            assert!(
                o.status.success(),
                "rpmbuild fx.spec: {}",
                String::from_utf8_lossy(&o.stderr)
            );
            run(
                "createrepo_c",
                &["--quiet", work.join("repo").to_str().unwrap()],
            )
            .ok();
            match fs::rename(work.join("repo"), &dest) {
                Ok(()) => {}
                // Another test process built it first.
                Err(_) if dest.join("repodata/repomd.xml").is_file() => {}
                Err(e) => panic!("{}: {e}", dest.display()),
            }
            let _ = fs::remove_dir_all(&work);
            dest
        })
        .clone()
}

/// A treefile composing the scriptlet fixtures `packages` (plus `extra` YAML), with
/// `fx.repo` next to it, in `dir`.
pub fn fx_treefile(dir: &Path, packages: &[&str], extra: &str) -> PathBuf {
    let repo = scriptlet_fixtures();
    fs::write(
        dir.join("fx.repo"),
        format!("[fx]\nbaseurl=file://{}\nenabled=1\n", repo.display()),
    )
    .expect("write fx.repo");
    let t = dir.join("fx.yaml");
    fs::write(
        &t,
        format!(
            "ref: fx/test\nrepos: [fx]\nselinux: false\nautomatic-version-prefix: \"1\"\n\
             check-passwd: {{type: none}}\ncheck-groups: {{type: none}}\n\
             packages: [{}]\n{extra}",
            packages.join(", ")
        ),
    )
    .expect("write fx.yaml");
    t
}

/// The host's SELinux policy (Debian's selinux-policy-default) as an RPM repository
/// (`ci/selinux-policy-rpm.sh`), built once under `/var/tmp/arbor-fixtures`; the
/// directory holds `selinux-test.repo`.
pub fn selinux_policy_repo() -> PathBuf {
    static BUILT: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    BUILT
        .get_or_init(|| {
            let fc = fs::metadata("/etc/selinux/default/contexts/files/file_contexts")
                .expect("/etc/selinux/default (apt-get install selinux-policy-default; ci/install-deps.sh does)");
            let spec = fs::read(workspace_root().join("tests/fixtures/selinux/selinux-policy-test.spec"))
                .expect("read the policy spec");
            let mut h = std::collections::hash_map::DefaultHasher::new();
            std::hash::Hash::hash(&(spec, fc.len(), fc.modified().ok()), &mut h);
            let dest = PathBuf::from(format!(
                "/var/tmp/arbor-fixtures/selinux-{:016x}",
                std::hash::Hasher::finish(&h)
            ));
            if !dest.join("selinux-test.repo").is_file() {
                let work = dest.with_extension(format!("build-{}", std::process::id()));
                let _ = fs::remove_dir_all(&work);
                run(
                    "bash",
                    &[
                        workspace_root().join("ci/selinux-policy-rpm.sh").to_str().unwrap(),
                        work.to_str().unwrap(),
                    ],
                )
                .ok();
                // The .repo names the build directory: rewrite it for the final one.
                let repo = fs::read_to_string(work.join("selinux-test.repo")).unwrap();
                fs::write(
                    work.join("selinux-test.repo"),
                    repo.replace(work.to_str().unwrap(), dest.to_str().unwrap()),
                )
                .unwrap();
                if fs::rename(&work, &dest).is_err() {
                    let _ = fs::remove_dir_all(&work);
                }
            }
            dest
        })
        .clone()
}
