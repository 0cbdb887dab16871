//! The real container tools that judge arbor's OCI images: ostree-ext 0.15.3's CLI
//! (`ARBOR_OSTREE_EXT`, built by `ci/build-ostree-ext.sh`), skopeo, umoci and podman (Debian
//! packages from `ci/install-deps.sh`). A missing tool fails the test with the command that
//! provides it; nothing is skipped.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use super::{tempdir, Run, TempDir};

pub use super::registry::{require_insecure_localhost, Registry, RegistryS3Opts, TokenServer};

/// The ostree-ext CLI named by `ARBOR_OSTREE_EXT`; fails the test when it is unset or not
/// an executable.
pub fn ostree_ext_bin() -> PathBuf {
    let path = std::env::var_os("ARBOR_OSTREE_EXT").map(PathBuf::from);
    let hint = "build it with `bash ci/build-ostree-ext.sh` and export ARBOR_OSTREE_EXT=<the path \
                it prints> (ci/test.sh does)";
    let path = path.unwrap_or_else(|| panic!("ARBOR_OSTREE_EXT is not set: {hint}"));
    let runs = Command::new(&path)
        .arg("--help")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        runs,
        "ARBOR_OSTREE_EXT={} does not run: {hint}",
        path.display()
    );
    path
}

/// `ostree-ext ARGS…` (e.g. `container encapsulate --repo R REF oci:DIR:TAG`).
pub fn ostree_ext(args: &[&str]) -> Run {
    let mut cmd = Command::new(ostree_ext_bin());
    // Errors as one readable chain, not a backtrace.
    cmd.args(args).env("RUST_BACKTRACE", "0");
    run_command(cmd, "ostree-ext", args)
}

/// `skopeo ARGS…`.
pub fn skopeo(args: &[&str]) -> Run {
    run_tool("skopeo", "skopeo", args)
}

/// `umoci ARGS…`.
pub fn umoci(args: &[&str]) -> Run {
    run_tool("umoci", "umoci", args)
}

/// `skopeo inspect IMGREF` (e.g. `oci:DIR:TAG`, `docker://HOST/NAME:TAG`) as JSON.
pub fn skopeo_inspect(imgref: &str) -> serde_json::Value {
    let out = skopeo(&["inspect", imgref]);
    serde_json::from_str(out.ok())
        .unwrap_or_else(|e| panic!("skopeo inspect {imgref}: not JSON ({e}):\n{}", out.stdout))
}

/// The image's config labels (`ostree.commit`, `ostree.final-diffid`, …).
pub fn skopeo_labels(imgref: &str) -> BTreeMap<String, String> {
    let json = skopeo_inspect(imgref);
    let labels = json["Labels"].as_object().cloned().unwrap_or_default();
    labels
        .into_iter()
        .map(|(k, v)| (k, v.as_str().unwrap_or_default().to_string()))
        .collect()
}

/// `skopeo inspect --raw IMGREF`: the manifest exactly as stored, parsed.
pub fn skopeo_manifest(imgref: &str) -> serde_json::Value {
    let out = skopeo(&["inspect", "--raw", imgref]);
    serde_json::from_str(out.ok())
        .unwrap_or_else(|e| panic!("skopeo inspect --raw {imgref}: not JSON ({e})"))
}

/// `oci:DIR:TAG`, the transport string of an OCI layout directory.
pub fn oci_ref(dir: &Path, tag: &str) -> String {
    format!("oci:{}:{tag}", dir.to_str().expect("utf-8 path"))
}

/// The commit checksum `ostree-ext container unencapsulate` printed
/// (`Imported: REF => CHECKSUM`, or `Imported: CHECKSUM`).
pub fn imported_checksum(run: &Run) -> String {
    let out = run.ok();
    let line = out
        .lines()
        .chain(run.stderr.lines())
        .find_map(|l| l.trim().strip_prefix("Imported: "))
        .unwrap_or_else(|| panic!("no `Imported:` line from {}:\n{out}", run.cmd));
    line.rsplit(" => ")
        .next()
        .unwrap_or(line)
        .trim()
        .to_string()
}

/// Rootful podman with storage of its own (a temporary `--root`/`--runroot`: nothing shared
/// with other tests or the host), the `overlay` driver (`vfs` stores every layer as a full
/// copy of the layers below it: `podman run` of the 65-layer corpus v2 image took 18 GB and
/// 178 s with `vfs`, 476 MB and 24 s with `overlay`, and `vfs` filled a CI machine's disk),
/// runc, no network and lowered ulimits: what works on this VM (crun refuses cgroups in
/// hybrid mode; podman's default rlimits fail without CAP_SYS_RESOURCE).
pub struct Podman {
    dir: TempDir,
}

impl Podman {
    pub fn new() -> Podman {
        require("podman", "podman");
        require("runc", "runc");
        Podman { dir: tempdir() }
    }

    /// `podman --root … --runroot … --tmpdir … --storage-driver overlay --runtime runc ARGS…`.
    pub fn podman(&self, args: &[&str]) -> Run {
        let dir = self.dir.path();
        let mut cmd = Command::new("podman");
        cmd.arg("--root")
            .arg(dir.join("root"))
            .arg("--runroot")
            .arg(dir.join("run"))
            .arg("--tmpdir")
            .arg(dir.join("tmp"))
            .args(["--storage-driver", "overlay", "--runtime", "runc"])
            .args(args);
        run_command(cmd, "podman", args)
    }

    /// `podman run --rm --network=none --ulimit … IMAGE COMMAND…`; `image` is anything
    /// podman pulls (`oci:DIR:TAG`, `127.0.0.1:PORT/NAME:TAG`).
    pub fn run(&self, image: &str, command: &[&str]) -> Run {
        let mut args = vec![
            "run",
            "--rm",
            "--network=none",
            "--ulimit",
            "nofile=4096:4096",
            "--ulimit",
            "nproc=4096:4096",
            image,
        ];
        args.extend_from_slice(command);
        self.podman(&args)
    }
}

impl Default for Podman {
    fn default() -> Podman {
        Podman::new()
    }
}

/// Whether `program` is an executable on `PATH`.
pub fn on_path(program: &str) -> bool {
    std::env::var_os("PATH").is_some_and(|paths| {
        std::env::split_paths(&paths).any(|d| {
            use std::os::unix::fs::PermissionsExt;
            std::fs::metadata(d.join(program))
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
    })
}

/// Fail the test unless `program` is on `PATH`, naming the Debian `package`.
#[track_caller]
pub fn require(program: &str, package: &str) {
    assert!(
        on_path(program),
        "{program} is not installed: run `bash ci/install-deps.sh` (apt-get install {package}; \
         ci/test.sh does)"
    );
}

fn run_tool(program: &str, package: &str, args: &[&str]) -> Run {
    require(program, package);
    let mut cmd = Command::new(program);
    cmd.args(args);
    run_command(cmd, program, args)
}

fn run_command(mut cmd: Command, name: &str, args: &[&str]) -> Run {
    let line = format!("{name} {}", args.join(" "));
    let o = cmd
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {line}: {e}"));
    Run::from_output(line, o)
}
