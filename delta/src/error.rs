//! The crate's error type: every variant names the delta, part, object or path at fault.

use std::path::PathBuf;

use arbor_repo::{Checksum, RepoError};

#[derive(Debug, thiserror::Error)]
pub enum DeltaError {
    #[error(transparent)]
    Repo(#[from] RepoError),
    /// The OS error is part of the message, and deliberately not a `source`: a printed
    /// cause chain would repeat it.
    #[error("{path}: {error}")]
    Io {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("commit {commit}, the delta's from-commit, is not in repository {repo}")]
    MissingFromCommit { commit: Checksum, repo: PathBuf },
    #[error("commit {commit}, the delta's to-commit, is not in repository {repo}")]
    MissingToCommit { commit: Checksum, repo: PathBuf },
    #[error("no static delta {name} in repository {repo}")]
    NoSuchDelta { name: String, repo: PathBuf },
    #[error("superblock {path}: {why}")]
    Superblock { path: PathBuf, why: String },
    #[error("delta {delta}: part {index}: {why}")]
    Part {
        delta: String,
        index: usize,
        why: String,
    },
    #[error("delta {delta}: {why}")]
    Invalid { delta: String, why: String },
    #[error("{0}")]
    Usage(String),
}

pub type Result<T, E = DeltaError> = std::result::Result<T, E>;

pub(crate) fn io_err(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> DeltaError {
    let path = path.into();
    move |error| DeltaError::Io { path, error }
}
