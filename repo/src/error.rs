//! The repository's error type: every variant names the path, object, ref or revision it
//! is about.

use std::io;
use std::path::{Path, PathBuf};

use crate::checksum::Checksum;
use crate::objects::ObjectType;

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

pub(crate) fn corrupt(checksum: Checksum, ty: ObjectType, why: impl ToString) -> RepoError {
    RepoError::Corrupt {
        checksum,
        ext: ty.archive_extension(),
        why: why.to_string(),
    }
}
