//! The repository's error type: every variant names the path, object, ref or revision it
//! is about.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

use crate::checksum::Checksum;
use crate::objects::ObjectType;

#[derive(Debug)]
pub enum RepoError {
    /// Printed as `path: OS error` on one line, and therefore not reported as caused by
    /// the OS error: a printed cause chain would show it twice. (The field keeps its
    /// name, `source`, for the code that builds this variant.)
    Io {
        path: PathBuf,
        source: io::Error,
    },
    NotARepo(PathBuf),
    Config {
        path: PathBuf,
        why: String,
    },
    UnsupportedMode {
        path: PathBuf,
        mode: String,
    },
    MissingObject {
        repo: PathBuf,
        checksum: Checksum,
        ext: &'static str,
    },
    Corrupt {
        checksum: Checksum,
        ext: &'static str,
        why: String,
    },
    RefNotFound(String),
    InvalidRef(String),
    BadRev {
        rev: String,
        why: String,
    },
    PathNotFound {
        commit: Checksum,
        path: String,
    },
    Input {
        path: PathBuf,
        why: String,
    },
}

impl fmt::Display for RepoError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RepoError::Io { path, source } => write!(f, "{}: {source}", path.display()),
            RepoError::NotARepo(path) => write!(
                f,
                "{}: not an OSTree repository (no objects/ directory)",
                path.display()
            ),
            RepoError::Config { path, why } => {
                write!(f, "{}: invalid repository config: {why}", path.display())
            }
            RepoError::UnsupportedMode { path, mode } => write!(
                f,
                "{}: repository mode {mode:?} is not supported (arbor reads and writes archive repositories)",
                path.display()
            ),
            RepoError::MissingObject {
                repo,
                checksum,
                ext,
            } => write!(f, "object {checksum}.{ext} not found in {}", repo.display()),
            RepoError::Corrupt {
                checksum,
                ext,
                why,
            } => write!(f, "object {checksum}.{ext} is corrupt: {why}"),
            RepoError::RefNotFound(name) => write!(f, "ref {name:?} not found"),
            RepoError::InvalidRef(name) => write!(f, "invalid ref name {name:?}"),
            RepoError::BadRev { rev, why } => write!(f, "{rev}: {why}"),
            RepoError::PathNotFound { commit, path } => {
                write!(f, "path {path:?} not found in commit {commit}")
            }
            RepoError::Input { path, why } => write!(f, "{}: {why}", path.display()),
        }
    }
}

impl std::error::Error for RepoError {}

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

#[cfg(test)]
mod tests {
    use super::*;

    /// The OS error is in the message and not again as a cause.
    #[test]
    fn io_errors_print_their_cause_once() {
        let e = RepoError::Io {
            path: PathBuf::from("/r/config"),
            source: io::Error::from(io::ErrorKind::NotFound),
        };
        assert_eq!(e.to_string(), "/r/config: entity not found");
        assert!(std::error::Error::source(&e).is_none());
    }
}
