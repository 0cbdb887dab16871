//! The tree scriptlets run on, built without copying content: every FILE object the
//! tree uses is kept once, uncompressed and with its owner, mode and xattrs, in a bare
//! object cache (`CACHEDIR/bare/`), and the tree's `/usr` becomes a "farm" of
//! directories and hardlinks to those objects. The farm is the read-only lower layer of
//! an overlay ([`super::sandbox`]): a script that writes to a file gets a copy in the
//! upper layer, so the cache is never modified (rpm-ostree protects its hardlinked
//! checkouts with rofiles-fuse for the same reason).
//!
//! ```text
//! CACHEDIR/bare/objects/ab/cdef….file   regular file or symlink, named by its ostree checksum
//! SESSION/lower/usr/…                   directories (mode/owner from dirmeta) + hardlinks
//! ```

use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use arbor_repo::checksum::Checksum;
use arbor_repo::objects::S_IFMT;
use arbor_repo::tree::MutableTree;
use arbor_repo::{FileHeader, Repo};
use rayon::prelude::*;

static TMP: AtomicU64 = AtomicU64::new(0);

/// The bare object cache.
#[derive(Debug, Clone)]
pub struct BareCache {
    dir: PathBuf,
}

fn err(path: &Path, e: impl std::fmt::Display) -> String {
    format!("{}: {e}", path.display())
}

fn set_xattrs(path: &Path, h: &FileHeader) -> Result<(), String> {
    for (name, value) in h.xattrs.entries() {
        rustix::fs::lsetxattr(
            path,
            <std::ffi::OsStr as std::os::unix::ffi::OsStrExt>::from_bytes(name),
            value,
            rustix::fs::XattrFlags::empty(),
        )
        .map_err(|e| err(path, e))?;
    }
    Ok(())
}

impl BareCache {
    pub fn new(cachedir: &Path) -> BareCache {
        BareCache {
            dir: cachedir.join("bare"),
        }
    }

    fn path(&self, c: &Checksum) -> PathBuf {
        let hex = c.to_hex();
        self.dir
            .join("objects")
            .join(&hex[..2])
            .join(format!("{}.file", &hex[2..]))
    }

    /// The cached copy of object `c`, written from the repository first if missing.
    /// The content is verified against the checksum as it is read.
    fn ensure(&self, repo: &Repo, c: &Checksum) -> Result<PathBuf, String> {
        let path = self.path(c);
        if fs::symlink_metadata(&path).is_ok() {
            return Ok(path);
        }
        let (h, content) = repo.read_file(c).map_err(|e| e.to_string())?;
        let parent = path.parent().expect("object paths have a parent");
        fs::create_dir_all(parent).map_err(|e| err(parent, e))?;
        let tmp = parent.join(format!(
            ".tmp-{}-{}",
            std::process::id(),
            TMP.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = fs::remove_file(&tmp);
        let written = (|| -> Result<(), String> {
            if h.is_symlink() {
                std::os::unix::fs::symlink(&h.symlink_target, &tmp).map_err(|e| err(&tmp, e))?;
            } else {
                let mut f = fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .open(&tmp)
                    .map_err(|e| err(&tmp, e))?;
                f.write_all(&content).map_err(|e| err(&tmp, e))?;
            }
            std::os::unix::fs::lchown(&tmp, Some(h.uid), Some(h.gid)).map_err(|e| err(&tmp, e))?;
            if !h.is_symlink() {
                set_xattrs(&tmp, &h)?;
                fs::set_permissions(&tmp, fs::Permissions::from_mode(h.mode & !S_IFMT))
                    .map_err(|e| err(&tmp, e))?;
            }
            fs::rename(&tmp, &path).map_err(|e| err(&path, e))
        })();
        if written.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        written.map(|_| path)
    }
}

/// Lay out `tree` (the part of the root that scriptlets see) under `dest`: directories
/// with their metadata, files as hardlinks into the bare cache (a copy when an inode has
/// reached the filesystem's link limit). Returns the number of files.
pub fn build(
    repo: &Repo,
    cache: &BareCache,
    tree: &MutableTree,
    dest: &Path,
) -> Result<u64, String> {
    // Every object first (in parallel: new ones are inflated), then the links.
    let files = tree.files_recursive();
    let mut unique: Vec<Checksum> = files.iter().map(|(_, c)| *c).collect();
    unique.sort_unstable_by_key(|c| c.0);
    unique.dedup();
    unique
        .par_iter()
        .map(|c| cache.ensure(repo, c).map(drop))
        .collect::<Result<(), String>>()?;
    lay_out(cache, tree, dest)?;
    Ok(files.len() as u64)
}

fn lay_out(cache: &BareCache, t: &MutableTree, dest: &Path) -> Result<(), String> {
    fs::create_dir(dest).map_err(|e| err(dest, e))?;
    for (name, c) in &t.files {
        let to = dest.join(name);
        let from = cache.path(c);
        match fs::hard_link(&from, &to) {
            Ok(()) => {}
            Err(e) if e.raw_os_error() == Some(rustix::io::Errno::MLINK.raw_os_error()) => {
                copy_entry(&from, &to)?;
            }
            Err(e) => return Err(err(&to, e)),
        }
    }
    t.dirs
        .par_iter()
        .map(|(name, sub)| lay_out(cache, sub, &dest.join(name)))
        .collect::<Result<(), String>>()?;
    let m = &t.meta;
    std::os::unix::fs::lchown(dest, Some(m.uid), Some(m.gid)).map_err(|e| err(dest, e))?;
    fs::set_permissions(dest, fs::Permissions::from_mode(m.mode & !S_IFMT))
        .map_err(|e| err(dest, e))
}

/// A copy of a cached entry with its owner and mode (for inodes at the link limit).
fn copy_entry(from: &Path, to: &Path) -> Result<(), String> {
    let meta = fs::symlink_metadata(from).map_err(|e| err(from, e))?;
    if meta.file_type().is_symlink() {
        let target = fs::read_link(from).map_err(|e| err(from, e))?;
        std::os::unix::fs::symlink(target, to).map_err(|e| err(to, e))?;
    } else {
        fs::copy(from, to).map_err(|e| err(to, e))?;
    }
    use std::os::unix::fs::MetadataExt;
    std::os::unix::fs::lchown(to, Some(meta.uid()), Some(meta.gid())).map_err(|e| err(to, e))?;
    if !meta.file_type().is_symlink() {
        fs::set_permissions(to, fs::Permissions::from_mode(meta.mode() & !S_IFMT))
            .map_err(|e| err(to, e))?;
    }
    Ok(())
}

/// Remove a directory tree, making read-only directories writable on the way (a
/// farm's directories keep their packaged modes, some without `w`).
pub fn remove_tree(path: &Path) -> io::Result<()> {
    match fs::remove_dir_all(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(_) => {
            let mut stack = vec![path.to_path_buf()];
            while let Some(d) = stack.pop() {
                let _ = fs::set_permissions(&d, fs::Permissions::from_mode(0o700));
                if let Ok(rd) = fs::read_dir(&d) {
                    for e in rd.flatten() {
                        if e.file_type().is_ok_and(|t| t.is_dir()) {
                            stack.push(e.path());
                        }
                    }
                }
            }
            fs::remove_dir_all(path)
        }
    }
}
