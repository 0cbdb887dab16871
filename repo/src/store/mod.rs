//! The archive-mode repository on a local directory: the one module that touches disk.
//!
//! ```text
//! R/config                        [core] repo_version=1, mode=archive-z2
//! R/objects/XX/YYYY….{commit,dirtree,dirmeta,filez,commitmeta}
//! R/refs/heads/<ref>              64 hex + "\n"; '/' in a ref name makes subdirectories
//! R/summary                       regenerated on demand (`regenerate_summary`)
//! R/tmp/                          staging: refs, config, summary are written here, then
//!                                 renamed, so nothing is ever half-written under its name
//! R/state/arbor-unsynced-…        while objects may be unsynced (see `unsynced.rs`)
//! ```
//!
//! Content-addressed objects are staged as anonymous `O_TMPFILE`s in their own
//! `objects/XX/` directory and linked under their name once complete: no cross-directory
//! rename (which serialises on a filesystem-wide lock), no temp name, no leftovers after a
//! crash. Where `O_TMPFILE` is missing (or cannot be linked: no /proc and no privilege),
//! they go through `tmp/` and a no-replace rename. Objects are not fsynced one by one:
//! `write_ref` syncs the filesystem before a ref may point at them, and until that sync a
//! marker in `state/` says that objects may be unsynced, so that after a crash or power
//! cut the next open checks them and removes damaged ones (`unsynced.rs`; ostree gets
//! there by staging objects in a directory and renaming them in after a sync).

mod checkout;
mod commit_dir;
mod fsck;
mod mtree;
mod refs;
mod unsynced;
mod walk;

use std::collections::BTreeMap;
use std::fs;
use std::io::{self, Read, Seek, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use flate2::read::DeflateDecoder;
use flate2::write::DeflateEncoder;
use flate2::Compression;

pub use checkout::CheckoutOpts;
pub use commit_dir::{read_xattrs, CommitDirOpts, CommitStats};
pub use fsck::FsckReport;
pub use refs::validate_ref_name;
pub use walk::{DumpEntry, EntryKind, Node};

use crate::checksum::Checksum;
use crate::gvariant::{Value, VarDict};
use crate::objects::{Commit, DirMeta, DirTree, FileHeader, ObjectType};
use crate::summary::{Summary, SummaryRef};

/// Directories are created 0775 like ostree's `DEFAULT_DIRECTORY_MODE`.
const DIR_MODE: u32 = 0o775;
/// ostree's default `[archive] zlib-level`, used for streamed (very large) files.
pub const DEFAULT_ZLIB_LEVEL: u32 = 6;
/// Files up to this size are hashed and compressed from one in-memory read; larger ones
/// are streamed twice (hash, then compress only if the object is new).
pub(crate) const IN_MEMORY_LIMIT: u64 = 64 << 20;

#[derive(Debug, thiserror::Error)]
pub enum RepoError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error("{0}: not an OSTree repository (no objects/ directory)")]
    NotARepo(PathBuf),
    #[error("{path}: invalid repository config: {why}")]
    Config { path: PathBuf, why: String },
    #[error("{path}: repository mode {mode:?} is not supported (arbor reads and writes archive repositories)")]
    UnsupportedMode { path: PathBuf, mode: String },
    #[error("object {checksum}.{ext} not found in {repo}")]
    MissingObject {
        repo: PathBuf,
        checksum: Checksum,
        ext: &'static str,
    },
    #[error("object {checksum}.{ext} is corrupt: {why}")]
    Corrupt {
        checksum: Checksum,
        ext: &'static str,
        why: String,
    },
    #[error("ref {0:?} not found")]
    RefNotFound(String),
    #[error("invalid ref name {0:?}")]
    InvalidRef(String),
    #[error("{rev}: {why}")]
    BadRev { rev: String, why: String },
    #[error("path {path:?} not found in commit {commit}")]
    PathNotFound { commit: Checksum, path: String },
    #[error("{path}: {why}")]
    Input { path: PathBuf, why: String },
}

pub type Result<T, E = RepoError> = std::result::Result<T, E>;

pub(crate) trait IoContext<T> {
    fn at(self, path: &Path) -> Result<T>;
}

impl<T> IoContext<T> for io::Result<T> {
    fn at(self, path: &Path) -> Result<T> {
        self.map_err(|source| RepoError::Io {
            path: path.to_path_buf(),
            source,
        })
    }
}

fn corrupt(checksum: Checksum, ty: ObjectType, why: impl ToString) -> RepoError {
    RepoError::Corrupt {
        checksum,
        ext: ty.archive_extension(),
        why: why.to_string(),
    }
}

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

impl Repo {
    /// Create a repository (like `ostree init --mode=archive`), or open it if `path`
    /// already holds an archive repository.
    pub fn init(path: &Path) -> Result<Repo> {
        // Absolute, so that tools run on paths inside it (rpm --root) work from any cwd.
        let path = &std::path::absolute(path).at(path)?;
        if path.join("objects").is_dir() {
            return Repo::open(path);
        }
        for d in [
            "",
            "objects",
            "tmp",
            "extensions",
            "state",
            "refs",
            "refs/heads",
            "refs/mirrors",
            "refs/remotes",
        ] {
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
        repo.write_atomic(
            Path::new("config"),
            b"[core]\nrepo_version=1\nmode=archive-z2\n",
        )?;
        Ok(repo)
    }

    /// Open an existing archive repository.
    pub fn open(path: &Path) -> Result<Repo> {
        let path = &std::path::absolute(path).at(path)?;
        if !path.join("objects").is_dir() {
            return Err(RepoError::NotARepo(path.to_path_buf()));
        }
        let cfg_path = path.join("config");
        let text = fs::read_to_string(&cfg_path).at(&cfg_path)?;
        let cfg = parse_keyfile(&text);
        let get = |s: &str, k: &str| cfg.get(&(s.to_string(), k.to_string())).map(String::as_str);
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

    /// Override the deflate level for new `.filez` objects (1..=9).
    pub fn set_zlib_level(&mut self, level: u32) {
        self.zlib_level = Some(level.clamp(1, 9));
    }

    pub fn relative_object_path(checksum: &Checksum, ty: ObjectType) -> PathBuf {
        let hex = checksum.to_hex();
        PathBuf::from(format!(
            "objects/{}/{}.{}",
            &hex[..2],
            &hex[2..],
            ty.archive_extension()
        ))
    }

    pub fn object_path(&self, checksum: &Checksum, ty: ObjectType) -> PathBuf {
        self.root.join(Self::relative_object_path(checksum, ty))
    }

    pub fn has_object(&self, checksum: &Checksum, ty: ObjectType) -> bool {
        fs::symlink_metadata(self.object_path(checksum, ty)).is_ok()
    }

    /// A fresh staging path under `tmp/`.
    fn tmp_path(&self) -> PathBuf {
        let n = self.tmp_counter.fetch_add(1, Ordering::Relaxed);
        self.root
            .join("tmp")
            .join(format!("arbor-{}-{n}", std::process::id()))
    }

    /// Write `data` to `rel` (relative to the repo) through a temp file and a rename.
    pub fn write_atomic(&self, rel: &Path, data: &[u8]) -> Result<()> {
        self.stage(rel, |f| f.write_all(data))
    }

    /// Create the content-addressed object `rel` (`objects/XX/…`) unless it exists: an
    /// anonymous `O_TMPFILE` in its directory, filled by `fill`, then linked under its
    /// name. Returns its size, or `None` when a concurrent writer got there first (same
    /// name, same content).
    fn stage_object(
        &self,
        rel: &Path,
        fill: impl FnOnce(&mut io::BufWriter<fs::File>) -> io::Result<()>,
    ) -> Result<Option<u64>> {
        self.mark_unsynced()?;
        if self.no_tmpfile.load(Ordering::Relaxed) {
            return self.stage_exclusive(rel, fill);
        }
        let dest = self.root.join(rel);
        let dir = dest.parent().expect("object paths have a parent");
        let f = match open_tmpfile(dir) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                create_dirs(dir).at(dir)?;
                open_tmpfile(dir)
            }
            r => r,
        };
        let Some(f) = f.at(dir)? else {
            self.no_tmpfile.store(true, Ordering::Relaxed);
            return self.stage_exclusive(rel, fill);
        };
        let mut w = io::BufWriter::with_capacity(256 << 10, f);
        fill(&mut w).at(&dest)?;
        let mut f = w.into_inner().map_err(|e| e.into_error()).at(&dest)?;
        let size = f.stream_position().at(&dest)?;
        match link_tmpfile(&f, &dest) {
            Ok(()) => Ok(Some(size)),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(None),
            // No /proc (a bare chroot) and no CAP_DAC_READ_SEARCH for AT_EMPTY_PATH: the
            // content is still in `f`; it and every later object go through tmp/.
            Err(e) if !proc_fd_available() => {
                tracing::debug!("cannot link an O_TMPFILE ({e}); staging objects in tmp/");
                self.no_tmpfile.store(true, Ordering::Relaxed);
                f.seek(io::SeekFrom::Start(0)).at(&dest)?;
                self.stage_exclusive(rel, |w| io::copy(&mut f, w).map(drop))
            }
            Err(e) => Err(e).at(&dest),
        }
    }

    /// Create a temp file, let `fill` write it, then rename it to `rel`.
    fn stage(
        &self,
        rel: &Path,
        fill: impl FnOnce(&mut io::BufWriter<fs::File>) -> io::Result<()>,
    ) -> Result<()> {
        self.stage_in_tmp(rel, fill, false).map(drop)
    }

    /// [`Repo::stage`] for an object: never replaces one that exists (`None` then), so
    /// that two writers of one object count it once; the object's size otherwise.
    fn stage_exclusive(
        &self,
        rel: &Path,
        fill: impl FnOnce(&mut io::BufWriter<fs::File>) -> io::Result<()>,
    ) -> Result<Option<u64>> {
        self.stage_in_tmp(rel, fill, true)
    }

    fn stage_in_tmp(
        &self,
        rel: &Path,
        fill: impl FnOnce(&mut io::BufWriter<fs::File>) -> io::Result<()>,
        exclusive: bool,
    ) -> Result<Option<u64>> {
        let tmp = self.tmp_path();
        let result = (|| {
            let f = fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&tmp)
                .at(&tmp)?;
            let mut w = io::BufWriter::with_capacity(256 << 10, f);
            fill(&mut w).at(&tmp)?;
            let mut f = w.into_inner().map_err(|e| e.into_error()).at(&tmp)?;
            f.set_permissions(fs::Permissions::from_mode(0o644))
                .at(&tmp)?;
            let size = f.stream_position().at(&tmp)?;
            drop(f);
            let dest = self.root.join(rel);
            let renamed = match rename(&tmp, &dest, exclusive) {
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    let parent = dest.parent().expect("object paths have a parent");
                    create_dirs(parent).at(parent)?;
                    rename(&tmp, &dest, exclusive)
                }
                r => r,
            }
            .at(&dest)?;
            Ok(renamed.then_some(size))
        })();
        if !matches!(result, Ok(Some(_))) {
            let _ = fs::remove_file(&tmp);
        }
        result
    }

    /// Store a metadata object unless present; returns its checksum and whether it was written.
    pub fn write_metadata(&self, ty: ObjectType, data: &[u8]) -> Result<(Checksum, bool)> {
        debug_assert!(ty.is_content_addressed_metadata());
        let checksum = Checksum::of(data);
        if self.has_object(&checksum, ty) {
            return Ok((checksum, false));
        }
        let new = self.stage_object(&Self::relative_object_path(&checksum, ty), |f| {
            f.write_all(data)
        })?;
        Ok((checksum, new.is_some()))
    }

    /// Store (overwrite) the detached metadata of `commit`.
    pub fn write_commitmeta(&self, commit: &Checksum, metadata: &VarDict) -> Result<()> {
        self.mark_unsynced()?;
        self.write_atomic(
            &Self::relative_object_path(commit, ObjectType::CommitMeta),
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
        let rel = Self::relative_object_path(checksum, ObjectType::File);
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
        let rel = Self::relative_object_path(checksum, ObjectType::File);
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

    /// Read a metadata object's bytes, verifying the name (for content-addressed types).
    pub fn read_metadata(&self, ty: ObjectType, checksum: &Checksum) -> Result<Vec<u8>> {
        let path = self.object_path(checksum, ty);
        let data = match fs::read(&path) {
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
        let mut summary = Summary::default();
        for (name, commit) in self.list_refs()? {
            let (bytes, c) = self.read_commit_bytes(&commit)?;
            let mut md = VarDict::new();
            md.insert(
                "ostree.commit.timestamp",
                Value::Uint64(c.timestamp.to_be()),
            );
            if let Some(v) = c.version() {
                md.insert("ostree.commit.version", Value::str(v));
            }
            summary.refs.push(SummaryRef {
                name,
                commit_size: bytes.len() as u64,
                commit,
                metadata: md,
            });
        }
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let md = &mut summary.metadata;
        md.insert("ostree.summary.last-modified", Value::Uint64(now.to_be()));
        md.insert("ostree.summary.tombstone-commits", Value::Bool(false));
        let deltas = self.list_deltas()?;
        if !deltas.is_empty() {
            let entries = deltas
                .into_iter()
                .map(|(name, digest)| (name, Value::Bytes(digest.0.to_vec())))
                .collect();
            md.insert("ostree.static-deltas", VarDict(entries).to_value());
        }
        md.insert("ostree.summary.mode", Value::str("archive-z2"));
        self.sync()?;
        self.write_atomic(Path::new("summary"), &summary.to_bytes())?;
        let sig = self.root.join("summary.sig");
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

    /// Static deltas present under `deltas/`: name (`FROM-TO` or `TO`, hex) → SHA-256 of
    /// the superblock file.
    pub fn list_deltas(&self) -> Result<BTreeMap<String, Checksum>> {
        let mut out = BTreeMap::new();
        let top = self.root.join("deltas");
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
                let superblock = r.path().join("superblock");
                let Ok(data) = fs::read(&superblock) else {
                    continue;
                };
                let name = format!(
                    "{}{}",
                    p.file_name().to_string_lossy(),
                    r.file_name().to_string_lossy()
                );
                if let Some(hex) = delta_name_to_hex(&name) {
                    out.insert(hex, Checksum::of(&data));
                }
            }
        }
        Ok(out)
    }
}

/// `mb64(from)-mb64(to)` or `mb64(to)` → the hex name used in the summary.
fn delta_name_to_hex(name: &str) -> Option<String> {
    let parts: Vec<&str> = name.split('-').collect();
    let hex: Option<Vec<String>> = parts
        .iter()
        .map(|p| Checksum::from_mb64(p).map(|c| c.to_hex()))
        .collect();
    let hex = hex?;
    match hex.len() {
        1 | 2 => Some(hex.join("-")),
        _ => None,
    }
}

/// Minimal GKeyFile reader: `[section]` headers and `key=value` lines.
fn parse_keyfile(text: &str) -> BTreeMap<(String, String), String> {
    let mut out = BTreeMap::new();
    let mut section = String::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if let Some(s) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            section = s.trim().to_string();
        } else if let Some((k, v)) = line.split_once('=') {
            out.insert(
                (section.clone(), k.trim().to_string()),
                v.trim().to_string(),
            );
        }
    }
    out
}

/// [`verify_archive_file`] without keeping the content: a file larger than
/// `IN_MEMORY_LIMIT` is inflated in chunks into the hash, so memory stays small
/// whatever its size (a 1 GiB sparse file is a few MB stored).
pub fn verify_archive_file_streaming(data: &[u8], checksum: &Checksum) -> Result<()> {
    check_archive_file(data, checksum, false).map(drop)
}

/// Check the bytes of an archive-mode FILE object (`.filez`) against its name: header,
/// deflated content of the declared size, checksum. Returns the header and content.
pub fn verify_archive_file(data: &[u8], checksum: &Checksum) -> Result<(FileHeader, Vec<u8>)> {
    check_archive_file(data, checksum, true)
}

/// The check behind both: the content is returned when `keep`, else dropped as it is
/// hashed (large files are never held whole then).
fn check_archive_file(
    data: &[u8],
    checksum: &Checksum,
    keep: bool,
) -> Result<(FileHeader, Vec<u8>)> {
    let bad = |why: String| corrupt(*checksum, ObjectType::File, why);
    let (header, size, off) = FileHeader::parse_archive(data).map_err(|e| bad(e.to_string()))?;
    let mut h = crate::checksum::Hasher::new();
    h.update(&header.to_stream_header());
    let mut content = Vec::new();
    if header.is_symlink() {
        if off != data.len() {
            return Err(bad("trailing data after a symlink header".into()));
        }
    } else if size <= IN_MEMORY_LIMIT {
        content = crate::deflate::decompress(&data[off..], size as usize)
            .map_err(|e| bad(e.to_string()))?;
        h.update(&content);
    } else {
        let mut dec = DeflateDecoder::new(&data[off..]).take(size.saturating_add(1));
        let mut buf = vec![0u8; 1 << 20];
        let mut n_total = 0u64;
        loop {
            let n = dec
                .read(&mut buf)
                .map_err(|e| bad(format!("bad deflate stream: {e}")))?;
            if n == 0 {
                break;
            }
            n_total += n as u64;
            h.update(&buf[..n]);
            if keep {
                content.extend_from_slice(&buf[..n]);
            }
        }
        if n_total != size {
            return Err(bad(format!(
                "content is {n_total} bytes, header says {size}"
            )));
        }
    }
    let actual = h.finish();
    if actual != *checksum {
        return Err(bad(format!("checksum mismatch, actual {actual}")));
    }
    if !keep {
        content = Vec::new();
    }
    Ok((header, content))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mb64_round_trip() {
        let c = Checksum::of(b"x");
        assert_eq!(Checksum::from_mb64(&c.to_mb64()), Some(c));
        let d = Checksum::of(b"y");
        let name = format!("{}-{}", c.to_mb64(), d.to_mb64());
        assert_eq!(delta_name_to_hex(&name), Some(format!("{c}-{d}")));
    }

    #[test]
    fn keyfile() {
        let k = parse_keyfile(
            "[core]\nrepo_version=1\nmode = archive-z2\n# c\n[remote \"o\"]\nurl=x\n",
        );
        assert_eq!(
            k.get(&("core".into(), "mode".into())).map(String::as_str),
            Some("archive-z2")
        );
        assert_eq!(
            k.get(&("remote \"o\"".into(), "url".into()))
                .map(String::as_str),
            Some("x")
        );
    }
}

/// An anonymous file (mode 0644) in `dir`, or `None` where `O_TMPFILE` is unsupported.
fn open_tmpfile(dir: &Path) -> io::Result<Option<fs::File>> {
    use rustix::fs::{Mode, OFlags, CWD};
    use rustix::io::Errno;
    match rustix::fs::openat(
        CWD,
        dir,
        OFlags::TMPFILE | OFlags::RDWR | OFlags::CLOEXEC,
        Mode::from_raw_mode(0o644),
    ) {
        Ok(fd) => {
            let f = fs::File::from(fd);
            // The umask applied at creation; objects are 0644 whatever it is.
            f.set_permissions(fs::Permissions::from_mode(0o644))?;
            Ok(Some(f))
        }
        Err(e) if e == Errno::OPNOTSUPP || e == Errno::ISDIR || e == Errno::INVAL => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// Give the `O_TMPFILE` `f` the name `dest`, through `/proc/self/fd` (no privilege
/// needed) or, without `/proc`, `AT_EMPTY_PATH`.
fn link_tmpfile(f: &fs::File, dest: &Path) -> io::Result<()> {
    use rustix::fs::{AtFlags, CWD};
    use std::os::fd::AsRawFd;
    let proc_path = format!("/proc/self/fd/{}", f.as_raw_fd());
    match rustix::fs::linkat(CWD, proc_path.as_str(), CWD, dest, AtFlags::SYMLINK_FOLLOW) {
        Err(e) if e == rustix::io::Errno::NOENT && !proc_fd_available() => {
            rustix::fs::linkat(f, "", CWD, dest, AtFlags::EMPTY_PATH).map_err(Into::into)
        }
        r => r.map_err(Into::into),
    }
}

/// `create_dir_all`, each new directory 0775 whatever the umask (like the ones `init`
/// makes), so that a web server running as another user can serve the repository.
fn create_dirs(dir: &Path) -> io::Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    if let Some(parent) = dir.parent() {
        create_dirs(parent)?;
    }
    match fs::create_dir(dir) {
        Ok(()) => fs::set_permissions(dir, fs::Permissions::from_mode(DIR_MODE)),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(e),
    }
}

fn proc_fd_available() -> bool {
    static AVAILABLE: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *AVAILABLE.get_or_init(|| Path::new("/proc/self/fd").is_dir())
}

/// Rename `from` to `to`; with `exclusive`, only if `to` does not exist (`Ok(false)` and
/// nothing done if it does). Where `RENAME_NOREPLACE` is unsupported, a plain rename.
fn rename(from: &Path, to: &Path, exclusive: bool) -> io::Result<bool> {
    if exclusive {
        use rustix::fs::{renameat_with, RenameFlags, CWD};
        use rustix::io::Errno;
        match renameat_with(CWD, from, CWD, to, RenameFlags::NOREPLACE) {
            Ok(()) => return Ok(true),
            Err(e) if e == Errno::EXIST => return Ok(false),
            Err(e) if e == Errno::INVAL || e == Errno::NOSYS || e == Errno::OPNOTSUPP => {}
            Err(e) => return Err(e.into()),
        }
    }
    fs::rename(from, to).map(|()| true)
}

#[cfg(test)]
mod staging_tests {
    use super::*;
    use crate::objects::Xattrs;

    fn file(mode: u32, target: &str) -> FileHeader {
        FileHeader {
            uid: 0,
            gid: 0,
            mode,
            symlink_target: target.into(),
            xattrs: Xattrs::new(Vec::new()),
        }
    }

    /// The streaming check (publish) agrees with the reading one on good, damaged and
    /// truncated objects, for regular files and symlinks.
    #[test]
    fn streaming_verification_agrees() {
        let dir = tempfile::tempdir().unwrap();
        let repo = Repo::init(dir.path()).unwrap();
        let content: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
        for (h, body) in [
            (file(0o100644, ""), content.as_slice()),
            (file(0o120777, "../t"), &b""[..]),
        ] {
            let c = h.checksum(body);
            repo.write_file_object(&c, &h, body).unwrap();
            let data = fs::read(repo.object_path(&c, ObjectType::File)).unwrap();
            verify_archive_file(&data, &c).unwrap();
            verify_archive_file_streaming(&data, &c).unwrap();
            let mut flipped = data.clone();
            let n = flipped.len();
            flipped[n - 1] ^= 1;
            let truncated = &data[..n - 1];
            for bad in [&flipped[..], truncated] {
                assert!(verify_archive_file(bad, &c).is_err());
                assert!(verify_archive_file_streaming(bad, &c).is_err());
            }
        }
    }

    /// Objects staged as O_TMPFILEs and through tmp/ + rename are the same files;
    /// neither leaves anything in tmp/, a second write of an object is a no-op (and is
    /// not counted), and racing writers of one object all succeed.
    #[test]
    fn both_staging_paths_write_the_same_objects() {
        let content: Vec<u8> = (0..300_000u32).map(|i| (i % 97) as u8).collect();
        let reg = file(0o100644, "");
        let link = file(0o120777, "../target");
        let mut written = Vec::new();
        for tmpfile in [true, false] {
            let dir = tempfile::tempdir().unwrap();
            let repo = Repo::init(dir.path()).unwrap();
            repo.no_tmpfile.store(!tmpfile, Ordering::Relaxed);
            let c = reg.checksum(&content);
            assert!(repo.write_file_object(&c, &reg, &content).unwrap() > 0);
            assert_eq!(repo.write_file_object(&c, &reg, &content).unwrap(), 0);
            let l = link.checksum(b"");
            repo.write_file_object(&l, &link, b"").unwrap();
            let big = file(0o100755, "");
            let cb = big.checksum(&content);
            let n = repo
                .write_file_object_from(&cb, &big, content.len() as u64, &mut &content[..])
                .unwrap();
            assert!(n > 0);
            // A short stream is refused and leaves no object behind.
            let short = file(0o100700, "");
            let cs = short.checksum(&content);
            let err = repo
                .write_file_object_from(&cs, &short, content.len() as u64, &mut &content[..10])
                .unwrap_err();
            assert!(err.to_string().contains("expected 300000 bytes"), "{err}");
            assert!(!repo.has_object(&cs, ObjectType::File));
            // A reader that fails is reported as such (not as a size change).
            struct Failing;
            impl Read for Failing {
                fn read(&mut self, _: &mut [u8]) -> io::Result<usize> {
                    Err(io::Error::other("disk on fire"))
                }
            }
            let err = repo
                .write_file_object_from(&cs, &short, 5, &mut Failing)
                .unwrap_err();
            assert!(err.to_string().contains("disk on fire"), "{err}");
            assert!(!repo.has_object(&cs, ObjectType::File));
            let dm = crate::objects::DirMeta {
                uid: 0,
                gid: 0,
                mode: 0o40755,
                xattrs: Xattrs::new(Vec::new()),
            };
            let (m, new) = repo
                .write_metadata(ObjectType::DirMeta, &dm.to_bytes())
                .unwrap();
            assert!(new);
            assert_eq!(repo.read_dirmeta(&m).unwrap(), dm);
            std::thread::scope(|s| {
                for _ in 0..4 {
                    s.spawn(|| {
                        let other = file(0o100600, "");
                        let co = other.checksum(&content);
                        repo.write_file_object(&co, &other, &content).unwrap();
                    });
                }
            });
            // Four FILE objects made (reg, link, big, other), each counted once.
            assert_eq!(repo.files_written().0, 4);
            let other = file(0o100600, "").checksum(&content);
            let on_disk: u64 = [c, l, cb, other]
                .iter()
                .map(|c| {
                    fs::metadata(repo.object_path(c, ObjectType::File))
                        .unwrap()
                        .len()
                })
                .sum();
            assert_eq!(repo.files_written().1, on_disk);
            // The path under test was the one taken.
            assert_eq!(repo.no_tmpfile.load(Ordering::Relaxed), !tmpfile);
            // A second writer of an existing name is told so and changes nothing.
            let rel = Path::new("objects/aa/test.dirmeta");
            assert_eq!(
                repo.stage_object(rel, |w| w.write_all(b"one")).unwrap(),
                Some(3)
            );
            assert_eq!(
                repo.stage_object(rel, |w| w.write_all(b"two")).unwrap(),
                None
            );
            assert_eq!(fs::read(dir.path().join(rel)).unwrap(), b"one");
            fs::remove_file(dir.path().join(rel)).unwrap();
            assert_eq!(repo.read_file(&c).unwrap(), (reg.clone(), content.clone()));
            assert_eq!(repo.read_file(&l).unwrap().0, link);
            assert_eq!(repo.read_file(&cb).unwrap().1, content);
            let path = repo.object_path(&c, ObjectType::File);
            let meta = fs::metadata(&path).unwrap();
            assert_eq!(meta.permissions().mode() & 0o7777, 0o644);
            assert_eq!(fs::read_dir(dir.path().join("tmp")).unwrap().count(), 0);
            assert_eq!(
                repo.fsck(&crate::progress::NoProgress).unwrap().errors,
                Vec::<String>::new()
            );
            written.push((
                fs::read(&path).unwrap(),
                fs::read(repo.object_path(&cb, ObjectType::File)).unwrap(),
                fs::read(repo.object_path(&m, ObjectType::DirMeta)).unwrap(),
            ));
            drop(dir);
        }
        assert_eq!(written[0], written[1]);
    }
}
