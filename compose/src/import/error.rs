//! Import errors. Every variant names the RPM file; those raised after the header
//! was read also name the package (NEVRA) and, where there is one, the payload path.

use std::io;
use std::path::PathBuf;

use arbor_repo::RepoError;

#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// Reading the RPM or the cache failed at the OS level.
    #[error("{}: {err}", path.display())]
    Io { path: PathBuf, err: io::Error },
    /// The lead, signature header or main header cannot be parsed.
    #[error("{}: not a valid RPM: {why}", path.display())]
    NotRpm { path: PathBuf, why: String },
    /// Digest mismatch, truncated or undecodable payload, header/payload disagreement.
    #[error("{} ({nevra}): corrupt RPM: {why}", path.display())]
    Corrupt {
        path: PathBuf,
        nevra: String,
        why: String,
    },
    /// A payload entry arbor refuses: a path escaping the root, a device node or FIFO,
    /// bad capabilities, a file where a directory is.
    #[error("{} ({nevra}): {file}: {why}", path.display())]
    Entry {
        path: PathBuf,
        nevra: String,
        file: String,
        why: String,
    },
    /// Writing objects to the repository failed.
    #[error("{} ({nevra}): {err}", path.display())]
    Repo {
        path: PathBuf,
        nevra: String,
        err: Box<RepoError>,
    },
    /// Writing the import cache failed.
    #[error("import cache {}: {why}", path.display())]
    Cache { path: PathBuf, why: String },
}

/// An `rpm` crate error as one short line: some of its messages embed whole input
/// buffers, which must not flood a terminal.
pub(crate) fn short(e: impl std::fmt::Display) -> String {
    const MAX: usize = 300;
    let s = e.to_string();
    if s.len() <= MAX {
        return s;
    }
    let mut cut = MAX;
    while !s.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}…", &s[..cut])
}
