//! Running scripts with the tree as `/`, in bubblewrap, on an overlay of the farm.
//!
//! ```text
//! holder:  unshare --mount --propagation private  (a mount namespace of its own)
//!            mount -t overlay  lower=SESSION/lower upper=SESSION/upper → SESSION/merged
//!            then waits on its stdin (it ends when arbor does)
//! script:  nsenter --mount=/proc/HOLDER/ns/mnt bwrap
//!            --bind merged/usr /usr  --bind merged/usr/etc /etc  --symlink usr/bin /bin …
//!            --bind SESSION/var /var  --tmpfs /tmp  --tmpfs /run  --dev /dev  --proc /proc
//!            --unshare-net --unshare-pid --unshare-ipc --unshare-uts  --die-with-parent
//!            --cap-drop ALL --cap-add (rpm-ostree's set)   INTERPRETER [ARGS] SCRIPT [$1 [$2]]
//! ```
//!
//! The overlay's upper directory collects exactly what the scripts changed (new and
//! copied-up files, whiteouts for deletions); [`super::capture`] turns it into tree
//! changes. Nothing outside the tree is bound writable: `/var` is an empty directory
//! of the session (what scripts leave there becomes tmpfiles.d lines), `/tmp` and `/run`
//! are tmpfs. Each script has a timeout; a script that outlives it is killed with its
//! whole PID namespace.

use std::fs;
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};

/// What the output of a failed script keeps: its last lines.
const TAIL_LINES: usize = 20;
/// A script's output is read back up to this many bytes (the rest is logged as cut).
const OUTPUT_LIMIT: u64 = 1 << 20;

/// Why a script did not succeed.
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    #[error("{0}")]
    Setup(String),
    #[error("exited with status {status}{}", tail_text(.tail))]
    Failed { status: String, tail: String },
    #[error("killed after the {secs} s timeout (--scriptlet-timeout){}", tail_text(.tail))]
    Timeout { secs: u64, tail: String },
}

fn tail_text(tail: &str) -> String {
    if tail.trim().is_empty() {
        " and printed nothing".into()
    } else {
        format!("; its last output:\n{tail}")
    }
}

/// One script invocation.
#[derive(Debug, Clone, Default)]
pub struct Invocation {
    /// Program and arguments, as seen inside the sandbox.
    pub argv: Vec<String>,
    /// Given on stdin (file triggers get their matching paths); empty otherwise.
    pub stdin: Vec<u8>,
}

/// A running overlay of one farm, and everything scripts get bound to.
#[derive(Debug)]
pub struct Session {
    dir: PathBuf,
    merged: PathBuf,
    holder: Option<Child>,
    holder_stdin: Option<ChildStdin>,
    holder_pid: u32,
    /// `(link, target)` for the tree's top-level symlinks into `usr` (`bin` → `usr/bin`).
    root_links: Vec<(String, String)>,
    timeout: Duration,
    env: Vec<(String, String)>,
    count: u64,
}

fn err(path: &Path, e: impl std::fmt::Display) -> SandboxError {
    SandboxError::Setup(format!("{}: {e}", path.display()))
}

/// Check that what running scripts needs is here (bubblewrap, util-linux's unshare and
/// nsenter), with an error saying how to get it.
pub fn check_tools() -> Result<(), SandboxError> {
    for (tool, package) in [
        ("bwrap", "bubblewrap"),
        ("unshare", "util-linux"),
        ("nsenter", "util-linux"),
    ] {
        let found = std::env::var_os("PATH")
            .map(|p| std::env::split_paths(&p).any(|d| d.join(tool).is_file()))
            .unwrap_or(false);
        if !found {
            return Err(SandboxError::Setup(format!(
                "running scriptlets needs `{tool}` (Debian/Fedora package {package}), which \
                 is not in PATH"
            )));
        }
    }
    Ok(())
}

impl Session {
    /// Mount an overlay with `lower` (a farm whose top directory is `usr`) under `dir`
    /// (which holds `upper`, `work`, `merged`, `var`, `scripts`).
    pub fn start(
        dir: &Path,
        lower: &Path,
        root_links: Vec<(String, String)>,
        timeout: Duration,
        env: Vec<(String, String)>,
    ) -> Result<Session, SandboxError> {
        check_tools()?;
        for p in [dir, lower] {
            let s = p.to_string_lossy();
            if s.contains([',', ':', '\\']) || s.contains('\n') {
                return Err(SandboxError::Setup(format!(
                    "{s}: scriptlets need a cache directory whose path has no ',', ':' or \
                     '\\' (overlayfs mount options cannot carry them)"
                )));
            }
        }
        let (upper, work, merged) = (dir.join("upper"), dir.join("work"), dir.join("merged"));
        for d in [
            &upper,
            &work,
            &merged,
            &dir.join("var/tmp"),
            &dir.join("scripts"),
            &dir.join("boot"),
        ] {
            fs::create_dir_all(d).map_err(|e| err(d, e))?;
        }
        fs::set_permissions(dir.join("var/tmp"), fs::Permissions::from_mode(0o1777))
            .map_err(|e| err(&dir.join("var/tmp"), e))?;
        fs::write(dir.join("scripts/ostree-booted"), b"")
            .map_err(|e| err(&dir.join("scripts"), e))?;
        let options = format!(
            "lowerdir={},upperdir={},workdir={},redirect_dir=off,index=off,metacopy=off",
            lower.display(),
            upper.display(),
            work.display()
        );
        let mut holder = Command::new("unshare")
            .args(["--mount", "--propagation", "private", "--", "sh", "-c"])
            // `volatile` (Linux 5.10): the upper layer is thrown away, so its unmount
            // need not sync the whole filesystem under it (0.7 s after a cold import).
            .arg(
                "mount -t overlay arbor-scripts -o \"$1,volatile\" \"$2\" 2>/dev/null || \
                 mount -t overlay arbor-scripts -o \"$1\" \"$2\" || exit 1; echo ready; \
                 exec cat >/dev/null",
            )
            .args(["sh", &options])
            .arg(&merged)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| SandboxError::Setup(format!("cannot run unshare: {e}")))?;
        let mut line = String::new();
        let ready = holder
            .stdout
            .take()
            .map(|o| BufReader::new(o).read_line(&mut line))
            .is_some_and(|r| r.is_ok())
            && line.trim() == "ready";
        if !ready {
            let _ = holder.kill();
            let mut msg = String::new();
            if let Some(mut e) = holder.stderr.take() {
                let _ = e.read_to_string(&mut msg);
            }
            let _ = holder.wait();
            return Err(SandboxError::Setup(format!(
                "cannot mount the overlay the scriptlets run on ({}); arbor runs \
                 scriptlets as root, or where unprivileged user namespaces may mount \
                 overlayfs",
                msg.trim()
            )));
        }
        let holder_pid = holder.id();
        let holder_stdin = holder.stdin.take();
        Ok(Session {
            dir: dir.to_path_buf(),
            merged,
            holder: Some(holder),
            holder_stdin,
            holder_pid,
            root_links,
            timeout,
            env,
            count: 0,
        })
    }

    /// The merged tree as the host sees it (through the holder's mount namespace), for
    /// arbor's own changes between scripts (ownership, script files).
    pub fn root(&self) -> PathBuf {
        PathBuf::from(format!("/proc/{}/root", self.holder_pid))
            .join(self.merged.strip_prefix("/").unwrap_or(&self.merged))
    }

    /// The overlay's upper directory (what changed), the session's `/var`.
    pub fn upper(&self) -> PathBuf {
        self.dir.join("upper")
    }
    pub fn var(&self) -> PathBuf {
        self.dir.join("var")
    }

    /// A symlink in the sandbox's `/boot` (read-only, otherwise empty): Debian-style
    /// tools look for `/boot/config-KVER` and the like, which a tree keeps in
    /// `/usr/lib/modules/KVER/`.
    pub fn boot_link(&self, name: &str, target: &str) -> Result<(), SandboxError> {
        let p = self.dir.join("boot").join(name);
        std::os::unix::fs::symlink(target, &p).map_err(|e| err(&p, e))
    }

    /// Put `body` where scripts can read it (`/run/arbor/NAME` inside the sandbox).
    pub fn script_file(&mut self, body: &str) -> Result<String, SandboxError> {
        self.count += 1;
        let name = format!("script-{}", self.count);
        let path = self.dir.join("scripts").join(&name);
        fs::write(&path, body).map_err(|e| err(&path, e))?;
        fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).map_err(|e| err(&path, e))?;
        Ok(format!("/run/arbor/{name}"))
    }

    fn bwrap_args(&self) -> Vec<String> {
        let m = self.merged.display().to_string();
        let mut a: Vec<String> = [
            "--die-with-parent",
            "--new-session",
            "--unshare-pid",
            "--unshare-uts",
            "--unshare-ipc",
            "--unshare-net",
            "--unshare-cgroup-try",
            "--bind",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        a.extend([format!("{m}/usr"), "/usr".into()]);
        a.extend(["--bind".into(), format!("{m}/usr/etc"), "/etc".into()]);
        for (link, target) in &self.root_links {
            a.extend(["--symlink".into(), target.clone(), format!("/{link}")]);
        }
        let var = self.var().display().to_string();
        let boot = self.dir.join("boot").display().to_string();
        a.extend(["--ro-bind".into(), boot, "/boot".into()]);
        let scripts = self.dir.join("scripts").display().to_string();
        for x in [
            "--bind",
            &var,
            "/var",
            "--dev",
            "/dev",
            "--proc",
            "/proc",
            "--tmpfs",
            "/tmp",
            "--tmpfs",
            "/run",
            "--ro-bind",
            &scripts,
            "/run/arbor",
            "--ro-bind",
        ] {
            a.push(x.to_string());
        }
        a.extend([
            format!("{scripts}/ostree-booted"),
            "/run/ostree-booted".into(),
        ]);
        for sys in ["block", "bus", "class", "dev", "devices"] {
            let p = format!("/sys/{sys}");
            if Path::new(&p).is_dir() {
                a.extend(["--ro-bind".into(), p.clone(), p]);
            }
        }
        if rustix::process::geteuid().is_root() {
            // rpm-ostree's set: what package scripts need (owners, modes, setuid files),
            // nothing that reaches outside the sandbox (no CAP_SYS_ADMIN, no raw I/O).
            a.extend(["--cap-drop".into(), "ALL".into()]);
            for cap in [
                "CAP_CHOWN",
                "CAP_DAC_OVERRIDE",
                "CAP_FOWNER",
                "CAP_FSETID",
                "CAP_KILL",
                "CAP_SETGID",
                "CAP_SETUID",
                "CAP_SETPCAP",
                "CAP_SYS_CHROOT",
                "CAP_SETFCAP",
            ] {
                a.extend(["--cap-add".into(), cap.into()]);
            }
        }
        a.extend(["--chdir".into(), "/".into()]);
        a
    }

    /// Run one script; its output (stdout and stderr together) is returned, or, when it
    /// fails or times out, carried in the error (the last lines).
    pub fn run(&mut self, inv: &Invocation) -> Result<String, SandboxError> {
        self.count += 1;
        let out_path = self.dir.join(format!("output-{}", self.count));
        let in_path = self.dir.join(format!("input-{}", self.count));
        let out = fs::File::options()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&out_path)
            .map_err(|e| err(&out_path, e))?;
        fs::write(&in_path, &inv.stdin).map_err(|e| err(&in_path, e))?;
        let input = fs::File::open(&in_path).map_err(|e| err(&in_path, e))?;
        let mut cmd = Command::new("nsenter");
        // umask 022 whatever arbor's: what scripts create must not depend on it.
        cmd.arg(format!("--mount=/proc/{}/ns/mnt", self.holder_pid))
            .args(["--", "sh", "-c", "umask 022 && exec bwrap \"$@\"", "bwrap"])
            .args(self.bwrap_args())
            .arg("--")
            .args(&inv.argv)
            .env_clear()
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(input)
            .stdout(out.try_clone().map_err(|e| err(&out_path, e))?)
            .stderr(out.try_clone().map_err(|e| err(&out_path, e))?);
        let mut child = cmd
            .spawn()
            .map_err(|e| SandboxError::Setup(format!("cannot run nsenter/bwrap: {e}")))?;
        let start = Instant::now();
        let mut sleep = Duration::from_millis(1);
        let status = loop {
            match child.try_wait() {
                Ok(Some(st)) => break Some(st),
                Ok(None) => {}
                Err(e) => return Err(SandboxError::Setup(format!("waiting for bwrap: {e}"))),
            }
            if start.elapsed() >= self.timeout {
                // bwrap's children die with it (--die-with-parent kills the PID
                // namespace's init, and the kernel the rest).
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
            std::thread::sleep(sleep);
            sleep = (sleep * 2).min(Duration::from_millis(50));
        };
        let text = read_output(out, &out_path);
        let _ = fs::remove_file(&out_path);
        let _ = fs::remove_file(&in_path);
        match status {
            None => Err(SandboxError::Timeout {
                secs: self.timeout.as_secs(),
                tail: tail(&text),
            }),
            Some(st) if st.success() => Ok(text),
            Some(st) => Err(SandboxError::Failed {
                status: match (
                    st.code(),
                    std::os::unix::process::ExitStatusExt::signal(&st),
                ) {
                    (Some(c), _) => c.to_string(),
                    (None, Some(sig)) => format!("killed by signal {sig}"),
                    _ => "unknown".into(),
                },
                tail: tail(&text),
            }),
        }
    }

    /// Unmount (the holder exits, its namespace with it).
    pub fn finish(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        drop(self.holder_stdin.take());
        if let Some(mut h) = self.holder.take() {
            let _ = h.kill();
            let _ = h.wait();
        }
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        self.stop();
    }
}

fn read_output(mut f: fs::File, path: &Path) -> String {
    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
    let start = len.saturating_sub(OUTPUT_LIMIT);
    let mut buf = Vec::new();
    let _ = f.seek(SeekFrom::Start(start));
    let _ = f.take(OUTPUT_LIMIT).read_to_end(&mut buf);
    if start > 0 {
        tracing::debug!(
            "{}: output cut to its last {OUTPUT_LIMIT} bytes",
            path.display()
        );
    }
    String::from_utf8_lossy(&buf).into_owned()
}

/// The last lines of a script's output, indented.
pub fn tail(text: &str) -> String {
    let lines: Vec<&str> = text.lines().collect();
    let from = lines.len().saturating_sub(TAIL_LINES);
    lines[from..]
        .iter()
        .map(|l| format!("    {l}"))
        .collect::<Vec<_>>()
        .join("\n")
}
