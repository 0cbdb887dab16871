//! What scripts changed, from the overlay's upper directory, into the tree:
//!
//! ```text
//! upper entry                               tree
//! regular file / symlink                    new FILE object (owner, mode, xattrs as on disk)
//! character device 0:0 (a whiteout)         the path removed
//! directory                                 created, or its metadata updated; with
//!   trusted.overlay.opaque = "y"            everything the lower layer had in it dropped first
//! FIFO, socket, device node                 left out, with a warning (ostree cannot store them)
//! ```
//!
//! The overlay's own bookkeeping xattrs (`trusted.overlay.*`, `user.overlay.*`) are not
//! part of any object. Only `/usr` is bound into the sandbox, so only `upper/usr` counts.

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;

use arbor_repo::checksum::Checksum;
use arbor_repo::store::{read_xattrs, CommitDirOpts, CommitStats};
use arbor_repo::tree::{default_dirmeta, MutableTree};
use arbor_repo::{DirMeta, Repo, Xattrs};
use rayon::prelude::*;

/// overlayfs's own xattrs, never part of the content.
pub fn overlay_xattr(name: &[u8]) -> bool {
    name.starts_with(b"trusted.overlay.") || name.starts_with(b"user.overlay.")
}

fn opts() -> CommitDirOpts {
    CommitDirOpts {
        skip_xattr: Some(overlay_xattr),
        ..Default::default()
    }
}

fn is_opaque(path: &Path) -> bool {
    ["trusted.overlay.opaque", "user.overlay.opaque"]
        .iter()
        .any(|name| {
            let mut v = [0u8; 4];
            matches!(rustix::fs::lgetxattr(path, *name, &mut v), Ok(n) if v[..n] == *b"y")
        })
}

/// What a capture did, for the compose's report.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Captured {
    /// Tree paths written (new or changed files and symlinks).
    pub written: Vec<String>,
    /// Tree paths removed.
    pub removed: Vec<String>,
}

/// Apply `upper/usr` to `tree`'s `usr`.
pub fn apply(repo: &Repo, tree: &mut MutableTree, upper: &Path) -> Result<Captured, String> {
    let mut out = Captured::default();
    let top = upper.join("usr");
    if !top.is_dir() {
        return Ok(out);
    }
    let usr = tree
        .ensure_dir("usr", &default_dirmeta())
        .map_err(|e| e.to_string())?;
    set_meta(usr, &top)?;
    apply_dir(repo, usr, &top, "usr", &mut out)?;
    Ok(out)
}

fn set_meta(dir: &mut MutableTree, path: &Path) -> Result<(), String> {
    let m = fs::symlink_metadata(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let all = read_xattrs(path).map_err(|e| e.to_string())?;
    dir.meta = DirMeta {
        uid: m.uid(),
        gid: m.gid(),
        mode: m.mode(),
        xattrs: Xattrs::new(
            all.entries()
                .iter()
                .filter(|(n, _)| !overlay_xattr(n))
                .cloned()
                .collect(),
        ),
    };
    Ok(())
}

fn apply_dir(
    repo: &Repo,
    dir: &mut MutableTree,
    path: &Path,
    tree_path: &str,
    out: &mut Captured,
) -> Result<(), String> {
    let mut names: Vec<(String, fs::Metadata)> = Vec::new();
    for e in fs::read_dir(path).map_err(|e| format!("{}: {e}", path.display()))? {
        let e = e.map_err(|e| format!("{}: {e}", path.display()))?;
        let name = e.file_name();
        let Some(name) = name.to_str() else {
            return Err(format!(
                "{}/{}: a scriptlet created a file name that is not UTF-8",
                path.display(),
                String::from_utf8_lossy(OsStr::as_bytes(&name))
            ));
        };
        arbor_repo::objects::validate_filename(name)
            .map_err(|e| format!("{}/{name}: {e}", path.display()))?;
        let m = fs::symlink_metadata(e.path()).map_err(|e| format!("{}: {e}", path.display()))?;
        names.push((name.to_string(), m));
    }
    names.sort_by(|a, b| a.0.cmp(&b.0));
    // Files and symlinks hashed in parallel (ldconfig or a CA bundle writes hundreds).
    let files: BTreeMap<String, Checksum> = names
        .par_iter()
        .filter(|(_, m)| m.file_type().is_file() || m.file_type().is_symlink())
        .map(|(name, _)| {
            repo.write_path_object(&path.join(name), &opts(), &CommitStats::default())
                .map(|c| (name.clone(), c))
                .map_err(|e| e.to_string())
        })
        .collect::<Result<_, String>>()?;
    for (name, m) in &names {
        let sub = format!("{tree_path}/{name}");
        let ft = m.file_type();
        if ft.is_char_device() && m.rdev() == 0 {
            dir.files.remove(name);
            dir.dirs.remove(name);
            out.removed.push(sub);
        } else if ft.is_dir() {
            dir.files.remove(name);
            let child = dir.dirs.entry(name.clone()).or_default();
            if is_opaque(&path.join(name)) {
                *child = MutableTree::default();
            }
            set_meta(child, &path.join(name))?;
            apply_dir(repo, child, &path.join(name), &sub, out)?;
        } else if let Some(c) = files.get(name) {
            dir.dirs.remove(name);
            dir.files.insert(name.clone(), *c);
            out.written.push(sub);
        } else {
            tracing::warn!(
                "/{sub}: a scriptlet created a FIFO, socket or device node; OSTree cannot \
                 store it, so it is left out"
            );
        }
    }
    Ok(())
}
