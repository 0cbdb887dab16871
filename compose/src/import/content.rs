//! File contents on their way from the payload stream into FILE objects: small files in
//! memory, large ones spooled to a temporary file in the repository's `tmp/` so that a
//! 4 GiB file costs disk, not RAM.
//!
//! The object name is SHA-256(file header ‖ content), known only once the whole content
//! was read, so a large file is written once to the spool, hashed from it, then
//! compressed from it into the object store (unless the object already exists).

use std::fs::{self, File};
use std::io::{self, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};

use arbor_repo::checksum::{Checksum, Hasher};
use arbor_repo::{FileHeader, Repo, RepoError};

/// Files up to this size are read into memory; larger ones are spooled. With a few
/// imports in parallel this bounds the importer's memory to a few times this value.
/// (Small in unit tests, so that they exercise spooling without building huge RPMs.)
pub const SPOOL_THRESHOLD: u64 = if cfg!(test) { 256 << 10 } else { 16 << 20 };

static SPOOL_COUNTER: AtomicU64 = AtomicU64::new(0);

/// One file's content.
pub enum Content {
    Memory(Vec<u8>),
    Spooled(Spool),
}

/// A temporary file holding a large content; removed on drop.
pub struct Spool {
    path: PathBuf,
    file: File,
    size: u64,
}

impl Drop for Spool {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.path);
    }
}

/// Why reading a content failed: the payload (corrupt RPM) or the spool file (local I/O).
pub enum ReadError {
    Payload(String),
    Spool(PathBuf, io::Error),
}

impl Content {
    /// Read exactly `size` bytes from the payload entry `r`.
    pub fn read(repo: &Repo, r: &mut dyn Read, size: u64) -> Result<Content, ReadError> {
        let mut limited = r.take(size.saturating_add(1));
        if size <= SPOOL_THRESHOLD {
            let mut buf = Vec::with_capacity(size as usize);
            limited
                .read_to_end(&mut buf)
                .map_err(|e| ReadError::Payload(e.to_string()))?;
            check_size(buf.len() as u64, size)?;
            return Ok(Content::Memory(buf));
        }
        let n = SPOOL_COUNTER.fetch_add(1, Ordering::Relaxed);
        let path = repo
            .path()
            .join("tmp")
            .join(format!("arbor-import-{}-{n}", std::process::id()));
        let open = || {
            fs::OpenOptions::new()
                .read(true)
                .write(true)
                .create_new(true)
                .open(&path)
        };
        let file = match open() {
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                let dir = repo.path().join("tmp");
                fs::create_dir_all(&dir).map_err(|e| ReadError::Spool(dir, e))?;
                open()
            }
            r => r,
        }
        .map_err(|e| ReadError::Spool(path.clone(), e))?;
        let mut spool = Spool {
            path,
            file,
            size: 0,
        };
        let mut w = BufWriter::with_capacity(1 << 20, &spool.file);
        let mut buf = vec![0u8; 1 << 20];
        loop {
            let got = match limited.read(&mut buf) {
                Ok(0) => break,
                Ok(got) => got,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(ReadError::Payload(e.to_string())),
            };
            w.write_all(&buf[..got])
                .map_err(|e| ReadError::Spool(spool.path.clone(), e))?;
            spool.size += got as u64;
        }
        w.flush()
            .map_err(|e| ReadError::Spool(spool.path.clone(), e))?;
        drop(w);
        check_size(spool.size, size)?;
        Ok(Content::Spooled(spool))
    }

    pub fn len(&self) -> u64 {
        match self {
            Content::Memory(v) => v.len() as u64,
            Content::Spooled(s) => s.size,
        }
    }

    /// Store this content as a FILE object with `header`; returns its checksum and the
    /// bytes written (0 when the object existed).
    pub fn write(&self, repo: &Repo, header: &FileHeader) -> Result<(Checksum, u64), RepoError> {
        match self {
            Content::Memory(v) => {
                let c = header.checksum(v);
                let n = repo.write_file_object(&c, header, v)?;
                Ok((c, n))
            }
            Content::Spooled(s) => {
                let io_err = |source| RepoError::Io {
                    path: s.path.clone(),
                    source,
                };
                let mut f = &s.file;
                f.seek(SeekFrom::Start(0)).map_err(io_err)?;
                let mut h = Hasher::new();
                h.update(&header.to_stream_header());
                let mut buf = vec![0u8; 1 << 20];
                loop {
                    match f.read(&mut buf) {
                        Ok(0) => break,
                        Ok(n) => h.update(&buf[..n]),
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                        Err(e) => return Err(io_err(e)),
                    }
                }
                let c = h.finish();
                f.seek(SeekFrom::Start(0)).map_err(io_err)?;
                let mut reader = io::BufReader::with_capacity(1 << 20, f);
                let n = repo.write_file_object_from(&c, header, s.size, &mut reader)?;
                Ok((c, n))
            }
        }
    }

    /// Copy the content into `out` (a bare-cache file being written).
    pub fn copy_to(&self, out: &mut File) -> io::Result<()> {
        match self {
            Content::Memory(v) => out.write_all(v),
            Content::Spooled(s) => {
                let mut f = &s.file;
                f.seek(SeekFrom::Start(0))?;
                let n = io::copy(&mut f.take(s.size), out)?;
                if n == s.size {
                    Ok(())
                } else {
                    Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        format!("spooled content holds {n} bytes, not {}", s.size),
                    ))
                }
            }
        }
    }
}

fn check_size(got: u64, want: u64) -> Result<(), ReadError> {
    if got == want {
        Ok(())
    } else {
        Err(ReadError::Payload(format!(
            "payload holds {got} bytes, the header says {want}"
        )))
    }
}
