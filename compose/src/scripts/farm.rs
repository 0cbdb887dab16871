//! The tree scriptlets run on, built without copying content: every FILE object the
//! tree uses is kept once, uncompressed and with its owner, mode and xattrs, in a bare
//! object cache (`CACHEDIR/bare/`), and the tree's `/usr` becomes a "farm" of
//! directories and hardlinks to those objects. The farm is the read-only lower layer of
//! an overlay ([`super::sandbox`]): a script that writes to a file gets a copy in the
//! upper layer, so the cache is never modified (rpm-ostree protects its hardlinked
//! checkouts with rofiles-fuse for the same reason).
//!
//! The farm persists between composes (`CACHEDIR/farm/NAME/root/usr`): a sync updates
//! only the directories that changed since the last compose, so a re-compose lays no
//! unchanged package down again (a compose that finds the farm locked by another one
//! builds a private farm and removes it afterwards).
//!
//! ```text
//! CACHEDIR/bare/objects/ab/cdef….file   regular file or symlink, named by its ostree checksum
//! CACHEDIR/farm/NAME/root/usr/…         directories (mode/owner from dirmeta) + hardlinks
//! CACHEDIR/farm/NAME/state.json         directory path → fingerprint of its subtree
//! ```

use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use std::collections::BTreeMap;

use arbor_repo::checksum::{Checksum, Hasher};
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

/// The object's xattrs on its bare copy, but its SELinux label: scripts do not need it,
/// and an SELinux host would refuse labels of another policy.
fn set_xattrs(path: &Path, h: &FileHeader) -> Result<(), String> {
    for (name, value) in h.xattrs.entries() {
        if name.as_slice() == b"security.selinux" {
            continue;
        }
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

    pub fn dir(&self) -> &Path {
        &self.dir
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
        self.put(c, &h, |f| f.write_all(&content))?;
        Ok(path)
    }

    /// Keep the bare copy of object `c` (header `h`, a regular file or symlink) unless
    /// it is there already; `body` writes a regular file's content. The import calls
    /// this with the content it has just hashed, so the farm need not inflate the
    /// object again.
    pub fn put(
        &self,
        c: &Checksum,
        h: &FileHeader,
        body: impl FnOnce(&mut fs::File) -> io::Result<()>,
    ) -> Result<(), String> {
        let path = self.path(c);
        if fs::symlink_metadata(&path).is_ok() {
            return Ok(());
        }
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
                body(&mut f).map_err(|e| err(&tmp, e))?;
            }
            std::os::unix::fs::lchown(&tmp, Some(h.uid), Some(h.gid)).map_err(|e| err(&tmp, e))?;
            if !h.is_symlink() {
                set_xattrs(&tmp, h)?;
                fs::set_permissions(&tmp, fs::Permissions::from_mode(h.mode & !S_IFMT))
                    .map_err(|e| err(&tmp, e))?;
            }
            fs::rename(&tmp, &path).map_err(|e| err(&path, e))
        })();
        if written.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        written
    }
}

/// A fingerprint of every directory of `t` (by path below `prefix`): its metadata,
/// its files' objects and its subdirectories' fingerprints. Equal fingerprints mean
/// equal subtrees.
fn fingerprints(t: &MutableTree, path: &str, out: &mut BTreeMap<String, String>) -> String {
    let mut h = Hasher::new();
    h.update(&t.meta.to_bytes());
    for (name, c) in &t.files {
        h.update(format!("f\0{name}\0").as_bytes());
        h.update(&c.0);
    }
    for (name, d) in &t.dirs {
        let sub = fingerprints(d, &format!("{path}/{name}"), out);
        h.update(format!("d\0{name}\0{sub}\0").as_bytes());
    }
    let fp = h.finish().to_hex();
    out.insert(path.to_string(), fp.clone());
    fp
}

/// A farm directory: persistent (`CACHEDIR/farm/NAME`, updated in place from one
/// compose to the next, locked while in use) or private to this process (removed when
/// dropped) when another compose holds the persistent one.
#[derive(Debug)]
pub struct Farm {
    pub dir: PathBuf,
    /// Held while the farm is in use.
    lock: Option<fs::File>,
}

impl Farm {
    /// The farm `name` under `cachedir`.
    pub fn open(cachedir: &Path, name: &str) -> Result<Farm, String> {
        let dir = cachedir.join("farm").join(name);
        fs::create_dir_all(&dir).map_err(|e| err(&dir, e))?;
        let lock_path = dir.join("lock");
        let lock = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(|e| err(&lock_path, e))?;
        if rustix::fs::flock(&lock, rustix::fs::FlockOperation::NonBlockingLockExclusive).is_ok() {
            return Ok(Farm {
                dir,
                lock: Some(lock),
            });
        }
        let private = cachedir
            .join("tmp")
            .join(format!("farm-{name}-{}", std::process::id()));
        remove_tree(&private).map_err(|e| err(&private, e))?;
        fs::create_dir_all(&private).map_err(|e| err(&private, e))?;
        tracing::info!(
            "{}: in use by another compose; laying out a private farm",
            dir.display()
        );
        Ok(Farm {
            dir: private,
            lock: None,
        })
    }

    /// The directory to use as the overlay's lower layer (holds `usr`).
    pub fn lower(&self) -> PathBuf {
        self.dir.join("root")
    }

    /// Make the farm's `usr` equal `usr` (the tree's `/usr`): directories whose
    /// fingerprint is unchanged since the last sync are left alone, the others are
    /// brought in line entry by entry (files hardlinked into the bare cache). Returns
    /// the number of directories updated.
    pub fn sync(&self, repo: &Repo, cache: &BareCache, usr: &MutableTree) -> Result<u64, String> {
        let state_path = self.dir.join("state.json");
        let old: BTreeMap<String, String> = fs::read(&state_path)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default();
        // The state goes first: an interrupted sync leaves no state, so the next one
        // checks every directory.
        let _ = fs::remove_file(&state_path);
        let mut new = BTreeMap::new();
        fingerprints(usr, "usr", &mut new);
        // Every object the farm will link, in the cache first (new ones inflated).
        let mut unique: Vec<Checksum> = Vec::new();
        collect_changed(usr, "usr", &old, &new, &mut unique);
        unique.sort_unstable_by_key(|c| c.0);
        unique.dedup();
        let t = std::time::Instant::now();
        unique
            .par_iter()
            .map(|c| cache.ensure(repo, c).map(drop))
            .collect::<Result<(), String>>()?;
        tracing::debug!(
            "bare cache: {} objects checked in {:.3}s",
            unique.len(),
            t.elapsed().as_secs_f64()
        );
        let root = self.lower();
        fs::create_dir_all(&root).map_err(|e| err(&root, e))?;
        let updated = AtomicU64::new(0);
        sync_dir(cache, usr, &root.join("usr"), "usr", &old, &new, &updated)?;
        let bytes = serde_json::to_vec(&new).map_err(|e| e.to_string())?;
        fs::write(&state_path, bytes).map_err(|e| err(&state_path, e))?;
        Ok(updated.into_inner())
    }
}

impl Drop for Farm {
    fn drop(&mut self) {
        if self.lock.is_none() {
            if let Err(e) = remove_tree(&self.dir) {
                tracing::warn!("{}: {e}", self.dir.display());
            }
        }
    }
}

/// The objects of the directories whose fingerprints changed.
fn collect_changed(
    t: &MutableTree,
    path: &str,
    old: &BTreeMap<String, String>,
    new: &BTreeMap<String, String>,
    out: &mut Vec<Checksum>,
) {
    if old.get(path).is_some_and(|f| Some(f) == new.get(path)) {
        return;
    }
    out.extend(t.files.values().copied());
    for (name, d) in &t.dirs {
        collect_changed(d, &format!("{path}/{name}"), old, new, out);
    }
}

fn same_inode(a: &fs::Metadata, b: &fs::Metadata) -> bool {
    use std::os::unix::fs::MetadataExt;
    a.dev() == b.dev() && a.ino() == b.ino()
}

fn sync_dir(
    cache: &BareCache,
    t: &MutableTree,
    dest: &Path,
    path: &str,
    old: &BTreeMap<String, String>,
    new: &BTreeMap<String, String>,
    updated: &AtomicU64,
) -> Result<(), String> {
    let exists = match fs::symlink_metadata(dest) {
        Ok(m) if m.is_dir() => true,
        Ok(_) => {
            fs::remove_file(dest).map_err(|e| err(dest, e))?;
            false
        }
        Err(_) => false,
    };
    if exists && old.get(path).is_some_and(|f| Some(f) == new.get(path)) {
        return Ok(());
    }
    updated.fetch_add(1, Ordering::Relaxed);
    if !exists {
        fs::create_dir(dest).map_err(|e| err(dest, e))?;
    } else {
        // Entries the tree no longer has go.
        for e in fs::read_dir(dest).map_err(|e| err(dest, e))? {
            let e = e.map_err(|e| err(dest, e))?;
            let name = e.file_name().to_string_lossy().into_owned();
            if t.files.contains_key(&name) || t.dirs.contains_key(&name) {
                continue;
            }
            let p = e.path();
            if e.file_type().is_ok_and(|ft| ft.is_dir()) {
                remove_tree(&p).map_err(|e| err(&p, e))?;
            } else {
                fs::remove_file(&p).map_err(|e| err(&p, e))?;
            }
        }
    }
    for (name, c) in &t.files {
        let to = dest.join(name);
        let from = cache.path(c);
        if let Ok(m) = fs::symlink_metadata(&to) {
            if m.is_dir() {
                remove_tree(&to).map_err(|e| err(&to, e))?;
            } else {
                let want = fs::symlink_metadata(&from).map_err(|e| err(&from, e))?;
                if same_inode(&m, &want) {
                    continue;
                }
                fs::remove_file(&to).map_err(|e| err(&to, e))?;
            }
        }
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
        .map(|(name, sub)| {
            sync_dir(
                cache,
                sub,
                &dest.join(name),
                &format!("{path}/{name}"),
                old,
                new,
                updated,
            )
        })
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
