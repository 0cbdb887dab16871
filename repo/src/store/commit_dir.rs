//! Committing a directory on disk, like `ostree commit --tree=dir=DIR`: every regular
//! file and symlink becomes a FILE object, every directory a dirtree + dirmeta, with the
//! same checksums ostree computes. Files are hashed and deflated in parallel on rayon.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::fs;
use std::io::{self, Read};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use rayon::prelude::*;

use super::{IoContext, Repo, RepoError, Result, IN_MEMORY_LIMIT};
use crate::checksum::{Checksum, Hasher};
use crate::objects::{
    validate_filename, Commit, DirMeta, DirTree, FileHeader, ObjectType, Xattrs, S_IFMT,
};
use crate::progress::Progress;

/// Options matching `ostree commit`'s modifiers.
#[derive(Debug, Clone, Default)]
pub struct CommitDirOpts {
    /// `--owner-uid`: record this uid for every file and directory.
    pub owner_uid: Option<u32>,
    /// `--owner-gid`.
    pub owner_gid: Option<u32>,
    /// `--canonical-permissions`: uid/gid 0, modes masked to 0755 (plus type) for files
    /// and directories, no xattrs.
    pub canonical_permissions: bool,
    /// `--no-xattrs`.
    pub no_xattrs: bool,
    /// Extended attributes (by name) to leave out, such as the `trusted.overlay.*`
    /// bookkeeping of an overlayfs upper directory.
    pub skip_xattr: Option<fn(&[u8]) -> bool>,
}

/// Counters of what a commit wrote.
#[derive(Debug, Default)]
pub struct CommitStats {
    pub content_total: AtomicU64,
    pub content_written: AtomicU64,
    pub content_bytes_written: AtomicU64,
    pub metadata_total: AtomicU64,
    pub metadata_written: AtomicU64,
}

impl CommitStats {
    pub fn get(c: &AtomicU64) -> u64 {
        c.load(Ordering::Relaxed)
    }
}

struct Ctx<'a> {
    repo: &'a Repo,
    opts: &'a CommitDirOpts,
    progress: &'a dyn Progress,
    stats: &'a CommitStats,
    /// (dev, inode) → checksum for files with several links: hash each inode once.
    inodes: Mutex<HashMap<(u64, u64), Checksum>>,
}

enum Child {
    File(String, Checksum),
    Dir(String, Checksum, Checksum),
}

impl Repo {
    /// Write the directory `dir` (recursively) as dirtree/dirmeta/file objects. Returns
    /// the root (dirtree, dirmeta) checksums.
    pub fn write_directory(
        &self,
        dir: &Path,
        opts: &CommitDirOpts,
        progress: &dyn Progress,
        stats: &CommitStats,
    ) -> Result<(Checksum, Checksum)> {
        let meta = fs::metadata(dir).at(dir)?;
        if !meta.is_dir() {
            return Err(RepoError::Input {
                path: dir.to_path_buf(),
                why: "not a directory".into(),
            });
        }
        let ctx = Ctx {
            repo: self,
            opts,
            progress,
            stats,
            inodes: Mutex::new(HashMap::new()),
        };
        progress.start("commit", None);
        let r = ctx.write_dir(dir, &meta);
        progress.end(r.is_ok());
        r
    }

    /// Store the regular file or symlink at `path` as a FILE object (owner, mode and
    /// xattrs as on disk, modified by `opts`) and return its checksum. Other file types
    /// are an error naming the path.
    pub fn write_path_object(
        &self,
        path: &Path,
        opts: &CommitDirOpts,
        stats: &CommitStats,
    ) -> Result<Checksum> {
        let ctx = Ctx {
            repo: self,
            opts,
            progress: &crate::progress::NoProgress,
            stats,
            inodes: Mutex::new(HashMap::new()),
        };
        match ctx.write_entry(path)? {
            Child::File(_, c) => Ok(c),
            Child::Dir(..) => Err(RepoError::Input {
                path: path.to_path_buf(),
                why: "a directory, not a file".into(),
            }),
        }
    }

    /// Write a commit object and return its checksum.
    pub fn write_commit(&self, commit: &Commit) -> Result<Checksum> {
        Ok(self
            .write_metadata(ObjectType::Commit, &commit.to_bytes())?
            .0)
    }

    /// Write a dirtree or dirmeta, counting it in `stats`.
    pub fn write_tree_object(
        &self,
        ty: ObjectType,
        data: &[u8],
        stats: &CommitStats,
    ) -> Result<Checksum> {
        let (c, written) = self.write_metadata(ty, data)?;
        stats.metadata_total.fetch_add(1, Ordering::Relaxed);
        if written {
            stats.metadata_written.fetch_add(1, Ordering::Relaxed);
        }
        Ok(c)
    }
}

/// Read all extended attributes of `path` (not following symlinks). Zero-length values
/// are skipped as ostree does; a filesystem without xattr support yields none.
pub fn read_xattrs(path: &Path) -> Result<Xattrs> {
    let unsupported =
        |e: rustix::io::Errno| e == rustix::io::Errno::NOTSUP || e == rustix::io::Errno::OPNOTSUPP;
    let mut names = vec![0u8; 1024];
    let n = loop {
        match rustix::fs::llistxattr(path, &mut names) {
            Ok(n) => break n,
            Err(e) if e == rustix::io::Errno::RANGE => names.resize(names.len() * 4, 0),
            Err(e) if unsupported(e) => return Ok(Xattrs::default()),
            Err(e) => return Err(io::Error::from(e)).at(path),
        }
    };
    let mut entries = Vec::new();
    for name in names[..n].split(|&b| b == 0).filter(|n| !n.is_empty()) {
        let cname = OsStr::from_bytes(name);
        let mut value = vec![0u8; 256];
        let len = loop {
            match rustix::fs::lgetxattr(path, cname, &mut value) {
                Ok(len) => break len,
                Err(e) if e == rustix::io::Errno::RANGE => value.resize(value.len() * 8, 0),
                Err(e) if e == rustix::io::Errno::NODATA => break 0,
                Err(e) => return Err(io::Error::from(e)).at(path),
            }
        };
        if len > 0 {
            value.truncate(len);
            entries.push((name.to_vec(), value));
        }
    }
    Ok(Xattrs::new(entries))
}

impl Ctx<'_> {
    fn owner(&self, meta: &fs::Metadata) -> (u32, u32) {
        if self.opts.canonical_permissions {
            return (0, 0);
        }
        (
            self.opts.owner_uid.unwrap_or(meta.uid()),
            self.opts.owner_gid.unwrap_or(meta.gid()),
        )
    }

    fn xattrs(&self, path: &Path) -> Result<Xattrs> {
        if self.opts.no_xattrs || self.opts.canonical_permissions {
            return Ok(Xattrs::default());
        }
        let all = read_xattrs(path)?;
        match self.opts.skip_xattr {
            Some(skip) if all.entries().iter().any(|(n, _)| skip(n)) => Ok(Xattrs::new(
                all.entries()
                    .iter()
                    .filter(|(n, _)| !skip(n))
                    .cloned()
                    .collect(),
            )),
            _ => Ok(all),
        }
    }

    fn write_dir(&self, dir: &Path, meta: &fs::Metadata) -> Result<(Checksum, Checksum)> {
        let mut mode = meta.mode();
        if self.opts.canonical_permissions {
            mode &= S_IFMT | 0o755;
        }
        let (uid, gid) = self.owner(meta);
        let dirmeta = DirMeta {
            uid,
            gid,
            mode,
            xattrs: self.xattrs(dir)?,
        };
        let mut entries = Vec::new();
        for e in fs::read_dir(dir).at(dir)? {
            let e = e.at(dir)?;
            entries.push(e.path());
        }
        let children: Vec<Child> = entries
            .par_iter()
            .map(|p| self.write_entry(p))
            .collect::<Result<_>>()?;
        let mut tree = DirTree::default();
        for c in children {
            match c {
                Child::File(n, c) => tree.files.push((n, c)),
                Child::Dir(n, t, m) => tree.dirs.push((n, t, m)),
            }
        }
        let meta_csum =
            self.repo
                .write_tree_object(ObjectType::DirMeta, &dirmeta.to_bytes(), self.stats)?;
        let tree_csum =
            self.repo
                .write_tree_object(ObjectType::DirTree, &tree.to_bytes(), self.stats)?;
        Ok((tree_csum, meta_csum))
    }

    fn write_entry(&self, path: &Path) -> Result<Child> {
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .ok_or_else(|| RepoError::Input {
                path: path.to_path_buf(),
                why: "file name is not valid UTF-8".into(),
            })?
            .to_string();
        validate_filename(&name).map_err(|e| RepoError::Input {
            path: path.to_path_buf(),
            why: e.to_string(),
        })?;
        let meta = fs::symlink_metadata(path).at(path)?;
        let ft = meta.file_type();
        if ft.is_dir() {
            let (t, m) = self.write_dir(path, &meta)?;
            return Ok(Child::Dir(name, t, m));
        }
        let checksum = if ft.is_symlink() {
            self.write_symlink(path, &meta)?
        } else if ft.is_file() {
            self.write_regular(path, &meta)?
        } else {
            let kind = if ft.is_fifo() {
                "a FIFO"
            } else if ft.is_socket() {
                "a socket"
            } else {
                "a device node"
            };
            return Err(RepoError::Input {
                path: path.to_path_buf(),
                why: format!("unsupported file type: {kind} cannot be committed"),
            });
        };
        self.progress.inc(1);
        self.stats.content_total.fetch_add(1, Ordering::Relaxed);
        Ok(Child::File(name, checksum))
    }

    fn write_symlink(&self, path: &Path, meta: &fs::Metadata) -> Result<Checksum> {
        let target = fs::read_link(path).at(path)?;
        let target = target
            .to_str()
            .ok_or_else(|| RepoError::Input {
                path: path.to_path_buf(),
                why: "symlink target is not UTF-8".into(),
            })?
            .to_string();
        let (uid, gid) = self.owner(meta);
        let header = FileHeader {
            uid,
            gid,
            mode: meta.mode(),
            symlink_target: target,
            xattrs: self.xattrs(path)?,
        };
        let checksum = header.checksum(&[]);
        self.store(&checksum, &header, &[])?;
        Ok(checksum)
    }

    fn write_regular(&self, path: &Path, meta: &fs::Metadata) -> Result<Checksum> {
        let key = (meta.dev(), meta.ino());
        if meta.nlink() > 1 {
            if let Some(c) = self.inodes.lock().expect("inode cache lock").get(&key) {
                return Ok(*c);
            }
        }
        let mut mode = meta.mode();
        if self.opts.canonical_permissions {
            mode &= S_IFMT | 0o755;
        }
        let (uid, gid) = self.owner(meta);
        let header = FileHeader {
            uid,
            gid,
            mode,
            symlink_target: String::new(),
            xattrs: self.xattrs(path)?,
        };
        let mut f = fs::File::open(path).at(path)?;
        let checksum = if meta.len() <= IN_MEMORY_LIMIT {
            let mut content = Vec::with_capacity(meta.len() as usize);
            f.read_to_end(&mut content).at(path)?;
            let checksum = header.checksum(&content);
            self.store(&checksum, &header, &content)?;
            checksum
        } else {
            // Large file: hash in a streaming pass, then compress in a second one only
            // if the object is new; memory stays bounded.
            let mut h = Hasher::new();
            h.update(&header.to_stream_header());
            let mut buf = vec![0u8; 1 << 20];
            let mut size = 0u64;
            loop {
                let n = f.read(&mut buf).at(path)?;
                if n == 0 {
                    break;
                }
                size += n as u64;
                h.update(&buf[..n]);
            }
            let checksum = h.finish();
            if !self.repo.has_object(&checksum, ObjectType::File) {
                let mut f = fs::File::open(path).at(path)?;
                let written = self
                    .repo
                    .write_file_object_from(&checksum, &header, size, &mut f)?;
                self.count_written(written);
            }
            checksum
        };
        if meta.nlink() > 1 {
            self.inodes
                .lock()
                .expect("inode cache lock")
                .insert(key, checksum);
        }
        Ok(checksum)
    }

    fn store(&self, checksum: &Checksum, header: &FileHeader, content: &[u8]) -> Result<()> {
        let written = self.repo.write_file_object(checksum, header, content)?;
        self.count_written(written);
        Ok(())
    }

    fn count_written(&self, bytes: u64) {
        if bytes > 0 {
            self.stats.content_written.fetch_add(1, Ordering::Relaxed);
            self.stats
                .content_bytes_written
                .fetch_add(bytes, Ordering::Relaxed);
        }
    }
}
