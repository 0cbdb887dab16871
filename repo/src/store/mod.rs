//! The archive-mode repository on a local directory: the one module that touches disk.
//! Paths are [`crate::layout`]'s; besides those, the directory holds
//!
//! ```text
//! R/tmp/                          staging: refs, config, summary are written here, then
//!                                 renamed, so nothing is ever half-written under its name
//! R/state/arbor-unsynced-…        while objects may be unsynced (see `unsynced.rs`)
//! R/extensions/, refs/mirrors/, refs/remotes/   made by `init`, as ostree does
//! ```
//!
//! The summary is regenerated on demand (`regenerate_summary`, with `Summary::build`).
//! Every file gets its name only once complete (`stage.rs`). Objects are not fsynced one
//! by one: `write_ref` syncs the filesystem before a ref may point at them, and until
//! that sync a marker in `state/` says that objects may be unsynced, so that after a
//! crash or power cut the next open checks them and removes damaged ones (`unsynced.rs`;
//! ostree gets there by staging objects in a directory and renaming them in after a sync).

mod checkout;
mod commit_dir;
mod diff;
mod fsck;
mod mtree;
mod refs;
mod stage;
mod unsynced;
mod walk;

use std::collections::BTreeMap;
use std::fs;
use std::io::{self, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use flate2::write::DeflateEncoder;
use flate2::Compression;

pub use checkout::CheckoutOpts;
pub use commit_dir::{read_xattrs, CommitDirOpts, CommitStats};
pub use diff::{Aspect, ChangeKind, CommitChange, PathChange, TreeDiff};
pub use fsck::FsckReport;
pub use walk::{DumpEntry, EntryKind, Node};

pub use crate::error::{RepoError, Result};

use crate::checksum::Checksum;
use crate::error::{corrupt, IoContext};
use crate::filez::verify_archive_file;
use crate::gvariant::VarDict;
use crate::keyfile::Keyfile;
use crate::layout::{self, DeltaName};
use crate::objects::{Commit, DirMeta, DirTree, FileHeader, ObjectType};
use crate::summary::{Summary, SummaryRef};

/// Directories are created 0775 like ostree's `DEFAULT_DIRECTORY_MODE`.
const DIR_MODE: u32 = 0o775;
/// ostree's default `[archive] zlib-level`, used for streamed (very large) files.
pub const DEFAULT_ZLIB_LEVEL: u32 = 6;
/// Files larger than this are streamed twice (hash, then compress only if the object is
/// new) rather than read into memory.
pub(crate) use crate::filez::IN_MEMORY_LIMIT;

/// An archive-mode OSTree repository on a local directory.
#[derive(Debug)]
pub struct Repo {
    root: PathBuf,
    /// `[archive] zlib-level` when the config sets it.
    zlib_level: Option<u32>,
    tmp_counter: AtomicU64,
    /// Set once `O_TMPFILE` turned out unsupported here; objects then go through `tmp/`.
    no_tmpfile: AtomicBool,
    /// FILE objects this handle created, and their bytes on disk.
    files_written: AtomicU64,
    file_bytes_written: AtomicU64,
    /// The marker of the objects written since the last sync (see `unsynced.rs`).
    unsynced: Unsynced,
}

#[derive(Debug, Default)]
struct Unsynced {
    /// Set once the current marker is durable; objects may then be written.
    marked: AtomicBool,
    marker: std::sync::Mutex<Option<PathBuf>>,
    counter: AtomicU64,
}

impl Drop for Repo {
    /// Objects written and never synced (a command that stops early) are synced here,
    /// which also drops their marker.
    fn drop(&mut self) {
        if self.unsynced.marked.load(Ordering::Acquire) {
            let _ = self.sync();
        }
    }
}

/// `OSTREE_MAX_METADATA_SIZE` since ostree 2023.4 (2022.7: 10 MiB).
pub const MAX_METADATA_OBJECT: u64 = 128 << 20;

/// A regular file's bytes, at most `max` (an error past it; a FIFO or device refused).
fn read_bounded(path: &Path, max: u64) -> io::Result<Vec<u8>> {
    let f = fs::File::open(path)?;
    let meta = f.metadata()?;
    if !meta.is_file() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "not a regular file",
        ));
    }
    if meta.len() > max {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!(
                "{} bytes, more than the {max} a metadata object may have",
                meta.len()
            ),
        ));
    }
    let mut data = Vec::with_capacity(meta.len() as usize);
    f.take(max + 1).read_to_end(&mut data)?;
    if data.len() as u64 > max {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "grew past its limit while read",
        ));
    }
    Ok(data)
}

impl Repo {
    /// Create a repository (like `ostree init --mode=archive`), or open it if `path`
    /// already holds an archive repository.
    pub fn init(path: &Path) -> Result<Repo> {
        // Absolute, so that tools run on paths inside it (rpm --root) work from any cwd.
        let path = &std::path::absolute(path).at(path)?;
        if path.join("objects").is_dir() {
            return Repo::open(path);
        }
        for d in std::iter::once("").chain(layout::REPO_DIRS.iter().copied()) {
            let p = path.join(d);
            match fs::create_dir(&p) {
                Ok(()) => fs::set_permissions(&p, fs::Permissions::from_mode(DIR_MODE)).at(&p)?,
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists && d.is_empty() => {}
                Err(e) => return Err(RepoError::Io { path: p, source: e }),
            }
        }
        let repo = Repo {
            root: path.to_path_buf(),
            zlib_level: None,
            tmp_counter: AtomicU64::new(0),
            no_tmpfile: AtomicBool::new(false),
            files_written: AtomicU64::new(0),
            file_bytes_written: AtomicU64::new(0),
            unsynced: Unsynced::default(),
        };
        repo.write_atomic(Path::new(layout::CONFIG), layout::CONFIG_CONTENTS)?;
        Ok(repo)
    }

    /// Open an existing archive repository.
    pub fn open(path: &Path) -> Result<Repo> {
        let path = &std::path::absolute(path).at(path)?;
        if !path.join("objects").is_dir() {
            return Err(RepoError::NotARepo(path.to_path_buf()));
        }
        let cfg_path = path.join(layout::CONFIG);
        let text = fs::read_to_string(&cfg_path).at(&cfg_path)?;
        let cfg = Keyfile::parse(&text);
        let get = |s: &str, k: &str| cfg.get(s, k);
        let bad = |why: String| RepoError::Config {
            path: cfg_path.clone(),
            why,
        };
        match get("core", "repo_version") {
            Some("1") => {}
            Some(v) => return Err(bad(format!("unsupported repo_version {v}"))),
            None => return Err(bad("missing core.repo_version".into())),
        }
        match get("core", "mode") {
            Some("archive-z2" | "archive") => {}
            other => {
                return Err(RepoError::UnsupportedMode {
                    path: path.to_path_buf(),
                    mode: other.unwrap_or("bare").to_string(),
                })
            }
        }
        let zlib_level = match get("archive", "zlib-level") {
            Some(v) => Some(
                v.trim()
                    .parse::<u32>()
                    .map_err(|_| bad(format!("bad archive.zlib-level {v:?}")))?
                    .clamp(1, 9),
            ),
            None => None,
        };
        let repo = Repo {
            root: path.to_path_buf(),
            zlib_level,
            tmp_counter: AtomicU64::new(0),
            no_tmpfile: AtomicBool::new(false),
            files_written: AtomicU64::new(0),
            file_bytes_written: AtomicU64::new(0),
            unsynced: Unsynced::default(),
        };
        repo.recover_unsynced();
        Ok(repo)
    }

    pub fn path(&self) -> &Path {
        &self.root
    }

    pub fn object_path(&self, checksum: &Checksum, ty: ObjectType) -> PathBuf {
        self.root.join(layout::object_key(checksum, ty))
    }

    pub fn has_object(&self, checksum: &Checksum, ty: ObjectType) -> bool {
        fs::symlink_metadata(self.object_path(checksum, ty)).is_ok()
    }

    /// Store a metadata object unless present; returns its checksum and whether it was written.
    pub fn write_metadata(&self, ty: ObjectType, data: &[u8]) -> Result<(Checksum, bool)> {
        debug_assert!(ty.is_content_addressed_metadata());
        let checksum = Checksum::of(data);
        if self.has_object(&checksum, ty) {
            return Ok((checksum, false));
        }
        let new = self.stage_object(Path::new(&layout::object_key(&checksum, ty)), |f| {
            f.write_all(data)
        })?;
        Ok((checksum, new.is_some()))
    }

    /// Store an object's bytes exactly as an archive repository holds them (fetched from a
    /// published one), after the caller verified them against `checksum`. Returns whether
    /// it was new.
    pub fn write_raw_object(
        &self,
        checksum: &Checksum,
        ty: ObjectType,
        data: &[u8],
    ) -> Result<bool> {
        if self.has_object(checksum, ty) {
            return Ok(false);
        }
        let new = self.stage_object(Path::new(&layout::object_key(checksum, ty)), |f| {
            f.write_all(data)
        })?;
        Ok(new.is_some())
    }

    /// [`Repo::write_raw_object`] with the bytes streamed from a reader (a large
    /// object fetched into a spool file is never held whole).
    pub fn write_raw_object_from(
        &self,
        checksum: &Checksum,
        ty: ObjectType,
        data: &mut dyn Read,
    ) -> Result<bool> {
        if self.has_object(checksum, ty) {
            return Ok(false);
        }
        let new = self.stage_object(Path::new(&layout::object_key(checksum, ty)), |f| {
            io::copy(data, f).map(drop)
        })?;
        Ok(new.is_some())
    }

    fn partial_marker(&self, commit: &Checksum) -> PathBuf {
        self.root
            .join("state")
            .join(format!("{commit}.commitpartial"))
    }

    /// Mark `commit` as holding its metadata only (dirtrees, dirmeta) and not all its
    /// content, as ostree's `state/C.commitpartial` does; `false` clears the mark.
    pub fn set_partial(&self, commit: &Checksum, partial: bool) -> Result<()> {
        let path = self.partial_marker(commit);
        let io = |source| RepoError::Io {
            path: path.clone(),
            source,
        };
        if partial {
            fs::create_dir_all(self.root.join("state")).map_err(io)?;
            fs::write(&path, b"").map_err(io)
        } else {
            match fs::remove_file(&path) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => Err(io(e)),
                _ => Ok(()),
            }
        }
    }

    /// Whether `commit` was fetched without its content ([`Repo::set_partial`]).
    pub fn is_partial(&self, commit: &Checksum) -> bool {
        self.partial_marker(commit).exists()
    }

    /// Store (overwrite) the detached metadata of `commit`.
    pub fn write_commitmeta(&self, commit: &Checksum, metadata: &VarDict) -> Result<()> {
        self.mark_unsynced()?;
        self.write_atomic(
            Path::new(&layout::object_key(commit, ObjectType::CommitMeta)),
            &metadata.to_value().to_bytes(),
        )
    }

    /// Store a FILE object whose checksum the caller computed with
    /// [`FileHeader::checksum`]. Returns the number of bytes written (0 if present).
    pub fn write_file_object(
        &self,
        checksum: &Checksum,
        header: &FileHeader,
        content: &[u8],
    ) -> Result<u64> {
        if self.has_object(checksum, ObjectType::File) {
            return Ok(0);
        }
        let rel = PathBuf::from(layout::object_key(checksum, ObjectType::File));
        let size = if header.is_symlink() {
            0
        } else {
            content.len() as u64
        };
        let header_bytes = header.to_archive_header(size);
        let store = |compressed: &[u8]| {
            self.stage_object(&rel, |w| {
                w.write_all(&header_bytes)?;
                w.write_all(compressed)
            })
            .map(|written| self.count_file(written))
        };
        if header.is_symlink() {
            store(&[])
        } else {
            let level = self.zlib_level.unwrap_or(crate::deflate::DEFAULT_LEVEL);
            crate::deflate::compress_with(content, level, store)
        }
    }

    /// Like [`Repo::write_file_object`] with the content streamed from a reader of
    /// exactly `size` bytes.
    pub fn write_file_object_from(
        &self,
        checksum: &Checksum,
        header: &FileHeader,
        size: u64,
        content: &mut dyn Read,
    ) -> Result<u64> {
        if self.has_object(checksum, ObjectType::File) {
            return Ok(0);
        }
        let rel = PathBuf::from(layout::object_key(checksum, ObjectType::File));
        let header_bytes = header.to_archive_header(if header.is_symlink() { 0 } else { size });
        let level = self.zlib_level.unwrap_or(DEFAULT_ZLIB_LEVEL);
        let mut wrong_size = None;
        let written = self.stage_object(&rel, |w| {
            w.write_all(&header_bytes)?;
            if !header.is_symlink() {
                let mut enc = DeflateEncoder::new(w, Compression::new(level));
                let copied = io::copy(content, &mut enc)?;
                enc.finish()?;
                if copied != size {
                    // Fail before the object gets its name.
                    wrong_size = Some(copied);
                    return Err(io::Error::other("content of the wrong size"));
                }
            }
            Ok(())
        });
        if let Some(copied) = wrong_size {
            return Err(RepoError::Input {
                path: rel,
                why: format!("content changed while writing: expected {size} bytes, read {copied}"),
            });
        }
        Ok(self.count_file(written?))
    }

    /// Note a FILE object of `written` bytes created (`None`: it was there); the bytes,
    /// or 0.
    fn count_file(&self, written: Option<u64>) -> u64 {
        let Some(bytes) = written else {
            return 0;
        };
        self.files_written.fetch_add(1, Ordering::Relaxed);
        self.file_bytes_written.fetch_add(bytes, Ordering::Relaxed);
        bytes
    }

    /// FILE objects created through this handle so far, and their bytes on disk.
    pub fn files_written(&self) -> (u64, u64) {
        (
            self.files_written.load(Ordering::Relaxed),
            self.file_bytes_written.load(Ordering::Relaxed),
        )
    }

    /// Read a metadata object's bytes (a regular file of at most 128 MiB, ostree's own
    /// limit: a repository from elsewhere cannot make this read without bound),
    /// verifying the name (for content-addressed types).
    pub fn read_metadata(&self, ty: ObjectType, checksum: &Checksum) -> Result<Vec<u8>> {
        let path = self.object_path(checksum, ty);
        let data = match read_bounded(&path, MAX_METADATA_OBJECT) {
            Ok(d) => d,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(RepoError::MissingObject {
                    repo: self.root.clone(),
                    checksum: *checksum,
                    ext: ty.archive_extension(),
                })
            }
            Err(e) => return Err(RepoError::Io { path, source: e }),
        };
        if ty.is_content_addressed_metadata() {
            let actual = Checksum::of(&data);
            if actual != *checksum {
                return Err(corrupt(
                    *checksum,
                    ty,
                    format!("checksum mismatch, actual {actual}"),
                ));
            }
        }
        Ok(data)
    }

    pub fn read_commit(&self, checksum: &Checksum) -> Result<Commit> {
        let data = self.read_metadata(ObjectType::Commit, checksum)?;
        Commit::from_bytes(&data).map_err(|e| corrupt(*checksum, ObjectType::Commit, e))
    }

    /// The commit object's raw bytes and its parsed form.
    pub fn read_commit_bytes(&self, checksum: &Checksum) -> Result<(Vec<u8>, Commit)> {
        let data = self.read_metadata(ObjectType::Commit, checksum)?;
        let c = Commit::from_bytes(&data).map_err(|e| corrupt(*checksum, ObjectType::Commit, e))?;
        Ok((data, c))
    }

    pub fn read_dirtree(&self, checksum: &Checksum) -> Result<DirTree> {
        let data = self.read_metadata(ObjectType::DirTree, checksum)?;
        DirTree::from_bytes(&data).map_err(|e| corrupt(*checksum, ObjectType::DirTree, e))
    }

    pub fn read_dirmeta(&self, checksum: &Checksum) -> Result<DirMeta> {
        let data = self.read_metadata(ObjectType::DirMeta, checksum)?;
        DirMeta::from_bytes(&data).map_err(|e| corrupt(*checksum, ObjectType::DirMeta, e))
    }

    /// Detached metadata of a commit, if any.
    pub fn read_commitmeta(&self, commit: &Checksum) -> Result<Option<VarDict>> {
        match self.read_metadata(ObjectType::CommitMeta, commit) {
            Ok(d) => crate::objects::parse_commitmeta(&d)
                .map(Some)
                .map_err(|e| corrupt(*commit, ObjectType::CommitMeta, e)),
            Err(RepoError::MissingObject { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn open_file_object(&self, checksum: &Checksum) -> Result<fs::File> {
        let path = self.object_path(checksum, ObjectType::File);
        fs::File::open(&path).map_err(|e| {
            if e.kind() == io::ErrorKind::NotFound {
                RepoError::MissingObject {
                    repo: self.root.clone(),
                    checksum: *checksum,
                    ext: "filez",
                }
            } else {
                RepoError::Io { path, source: e }
            }
        })
    }

    /// Read only the header of a FILE object: (header, content size).
    pub fn read_file_header(&self, checksum: &Checksum) -> Result<(FileHeader, u64)> {
        let mut f = self.open_file_object(checksum)?;
        let mut buf = vec![0u8; 8];
        f.read_exact(&mut buf)
            .map_err(|e| corrupt(*checksum, ObjectType::File, e))?;
        let len = u32::from_be_bytes(buf[..4].try_into().expect("4 bytes")) as usize;
        if len > 1 << 24 {
            return Err(corrupt(
                *checksum,
                ObjectType::File,
                "header length out of range",
            ));
        }
        buf.resize(8 + len, 0);
        f.read_exact(&mut buf[8..])
            .map_err(|e| corrupt(*checksum, ObjectType::File, e))?;
        let (h, size, _) =
            FileHeader::parse_archive(&buf).map_err(|e| corrupt(*checksum, ObjectType::File, e))?;
        Ok((h, size))
    }

    /// Read a FILE object, verifying its size and checksum.
    pub fn read_file(&self, checksum: &Checksum) -> Result<(FileHeader, Vec<u8>)> {
        let path = self.object_path(checksum, ObjectType::File);
        let mut data = Vec::new();
        self.open_file_object(checksum)?
            .read_to_end(&mut data)
            .at(&path)?;
        verify_archive_file(&data, checksum)
    }

    /// Rebuild `summary` from the refs under `refs/heads` (and any static deltas), and
    /// remove a now-stale `summary.sig`.
    pub fn regenerate_summary(&self) -> Result<Summary> {
        let mut refs = Vec::new();
        for (name, commit) in self.list_refs()? {
            let (bytes, c) = self.read_commit_bytes(&commit)?;
            refs.push(SummaryRef::new(
                name,
                commit,
                bytes.len() as u64,
                c.timestamp,
                c.version(),
            ));
        }
        let summary = Summary::build(
            refs,
            &self.list_deltas()?,
            crate::summary::last_modified_now(),
        );
        self.sync()?;
        self.write_atomic(Path::new(layout::SUMMARY), &summary.to_bytes())?;
        let sig = self.root.join(layout::SUMMARY_SIG);
        match fs::remove_file(&sig) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => {
                return Err(RepoError::Io {
                    path: sig,
                    source: e,
                })
            }
            _ => {}
        }
        Ok(summary)
    }

    /// Static deltas present under `deltas/` → SHA-256 of their superblock file.
    pub fn list_deltas(&self) -> Result<BTreeMap<DeltaName, Checksum>> {
        let mut out = BTreeMap::new();
        let top = self.root.join(layout::DELTAS_PREFIX);
        let Ok(prefixes) = fs::read_dir(&top) else {
            return Ok(out);
        };
        for p in prefixes {
            let p = p.at(&top)?;
            let Ok(rest) = fs::read_dir(p.path()) else {
                continue;
            };
            for r in rest {
                let r = r.at(&p.path())?;
                let key = format!(
                    "{}{}/{}/{}",
                    layout::DELTAS_PREFIX,
                    p.file_name().to_string_lossy(),
                    r.file_name().to_string_lossy(),
                    layout::SUPERBLOCK
                );
                let Some((name, _)) = DeltaName::parse_key(&key) else {
                    continue;
                };
                let Ok(data) = fs::read(self.root.join(&key)) else {
                    continue;
                };
                out.insert(name, Checksum::of(&data));
            }
        }
        Ok(out)
    }
}
