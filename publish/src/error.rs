//! Errors of publish, mirror and prune: each names the URL, object or ref it is about,
//! and store failures are classified (unreachable endpoint, bad credentials, missing
//! bucket, full disk) so the CLI can print one clear line.

use std::fmt;
use std::path::PathBuf;

use arbor_repo::{Checksum, RepoError};

pub type Result<T, E = PublishError> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    #[error("invalid store URL {url:?}: {why}")]
    BadUrl { url: String, why: String },
    /// The store cannot be set up as configured (credentials, account, endpoint).
    #[error("{url}: {why}")]
    Config { url: String, why: String },
    #[error("{url}: {kind} ({detail})")]
    Store {
        /// The full URL of the object or prefix the request was about.
        url: String,
        kind: StoreFailure,
        /// The innermost cause, one line (object_store's chain repeats itself).
        detail: String,
        cause: Box<object_store::Error>,
    },
    #[error("{url}: {why}")]
    Corrupt { url: String, why: String },
    /// Another run holds the destination (a prune while publishing, or the reverse).
    #[error("{url}: {why}")]
    Busy { url: String, why: String },
    /// The repository's own message names the path or object.
    #[error(transparent)]
    Repo(#[from] RepoError),
    /// A publish would move a ref back (the message says which, and how to force it).
    #[error("{0}")]
    NotForward(String),
    #[error("ref {name:?} not found in {url}")]
    RefNotFound { name: String, url: String },
    #[error("commit {commit} (ref {name:?}) is missing from {url}")]
    MissingCommit {
        name: String,
        commit: Checksum,
        url: String,
    },
    #[error("{url} is read-only (an http(s):// store can only be a mirror source)")]
    ReadOnly { url: String },
    #[error("{url}: cannot list objects here ({why}); the source needs a summary file")]
    NotListable { url: String, why: String },
    /// The OS error is part of the message, and deliberately not a `source`: a printed
    /// cause chain would repeat it.
    #[error("{path}: {error}")]
    Io {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("summary of {url} kept changing under concurrent writers; gave up after {attempts} attempts")]
    Contention { url: String, attempts: u32 },
    #[error("{0}")]
    Invalid(String),
    #[error("cannot start the async runtime: {0}")]
    Runtime(std::io::Error),
}

/// What kind of store failure happened, for a one-line explanation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreFailure {
    /// Could not connect to the endpoint (refused, DNS, timeout).
    Unreachable,
    /// 401/403: wrong or missing credentials, or no permission on the bucket.
    AccessDenied,
    /// The bucket (or local directory) does not exist.
    NoSuchBucket,
    /// ENOSPC on a local destination.
    DiskFull,
    /// The object does not exist (only surfaced where it is an error).
    NotFound,
    /// Anything else; the source error says more.
    Other,
}

impl fmt::Display for StoreFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            StoreFailure::Unreachable => "cannot connect to the storage endpoint",
            StoreFailure::AccessDenied => {
                "access denied: check the credentials (AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, GOOGLE_*, AZURE_*) and the bucket's permissions"
            }
            StoreFailure::NoSuchBucket => "the bucket (or directory) does not exist",
            StoreFailure::DiskFull => "no space left on the device",
            StoreFailure::NotFound => "not found",
            StoreFailure::Other => "request failed",
        })
    }
}

impl StoreFailure {
    /// Classify an object_store error by walking its source chain.
    pub fn classify(e: &object_store::Error) -> StoreFailure {
        use object_store::Error as E;
        let text = error_chain(e);
        match e {
            E::PermissionDenied { .. } | E::Unauthenticated { .. } => StoreFailure::AccessDenied,
            E::NotFound { .. } if text.contains("NoSuchBucket") => StoreFailure::NoSuchBucket,
            E::NotFound { .. } => StoreFailure::NotFound,
            _ => {
                let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
                while let Some(err) = cur {
                    if let Some(h) = err.downcast_ref::<object_store::client::HttpError>() {
                        if matches!(
                            h.kind(),
                            object_store::client::HttpErrorKind::Connect
                                | object_store::client::HttpErrorKind::Timeout
                        ) {
                            return StoreFailure::Unreachable;
                        }
                    }
                    if let Some(io) = err.downcast_ref::<std::io::Error>() {
                        if io.raw_os_error() == Some(rustix::io::Errno::NOSPC.raw_os_error()) {
                            return StoreFailure::DiskFull;
                        }
                    }
                    cur = err.source();
                }
                if text.contains("No space left on device") {
                    StoreFailure::DiskFull
                } else if text.contains("NoSuchBucket") {
                    StoreFailure::NoSuchBucket
                } else if text.contains("InvalidAccessKeyId")
                    || text.contains("SignatureDoesNotMatch")
                    || text.contains("AccessDenied")
                {
                    StoreFailure::AccessDenied
                } else {
                    StoreFailure::Other
                }
            }
        }
    }
}

/// The innermost cause of `e`, on one line and at most 300 characters.
pub fn innermost(e: &dyn std::error::Error) -> String {
    let mut cur = e;
    while let Some(next) = cur.source() {
        cur = next;
    }
    let text = cur.to_string();
    let line = text.lines().next().unwrap_or("").trim();
    let mut out: String = line.chars().take(300).collect();
    if out.len() < line.len() {
        out.push('…');
    }
    out
}

/// `e: cause: cause…` on one line.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let t = c.to_string();
        if !s.contains(&t) {
            s.push_str(": ");
            s.push_str(&t);
        }
        cur = c.source();
    }
    s
}
