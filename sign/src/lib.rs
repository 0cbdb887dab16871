//! Signatures stock OSTree clients verify, made by a local key, GnuPG or an external signer,
//! and checked in-process before anything stores them.
//!
//! ```text
//! --sign-with SPEC      gpg:KEYID        gpg --detach-sign (gpg-agent, smartcards; --gpg-homedir)
//!                       exec:COMMAND     COMMAND: payload on stdin, detached OpenPGP signature out
//!                       openpgp:KEYFILE  a local secret key (rPGP), for development and CI
//!                       ed25519:KEYFILE  ostree's ed25519 (base64 seed ‖ public, or PKCS#8 PEM)
//! payloads              the `.commit` bytes (sha256 = commit id), the `summary` bytes
//! stored in             .commitmeta / summary.sig  (`meta`: a{sv}, ostree.gpgsigs, ostree.sign.ed25519)
//! ```
//!
//! Every signature a signer returns is parsed and verified against the key it must come from
//! before it is stored: clients stop at the first BAD OpenPGP signature, so one stored bad
//! signature would hide the good ones after it (`../shared/spec/signing.md` §1.3).

pub mod ed25519;
pub mod meta;
pub mod openpgp;
mod signer;
mod verify;

use std::io::Read;
use std::path::Path;

pub use meta::SigKind;
pub use signer::{Options, Payload, Signer, Signers, Spec};
pub use verify::{Report, TrustedKeys};

#[derive(Debug, thiserror::Error)]
pub enum SignError {
    #[error("--sign-with {spec}: {why}")]
    Spec { spec: String, why: String },
    #[error("{what}: {why}")]
    Key { what: String, why: String },
    #[error("signer {spec}: {why}")]
    Signer { spec: String, why: String },
    /// The OS error is in the message, not a `source`: a printed cause chain would show
    /// it twice (as `RepoError::Io`).
    #[error("{path}: {error}")]
    Io { path: String, error: std::io::Error },
}

/// Read a small file, refusing more than `max` bytes and anything but a regular file (a FIFO
/// would block, `/dev/zero` never ends).
pub(crate) fn read_bounded(path: &Path, max: u64) -> Result<Vec<u8>, SignError> {
    let io = |error| SignError::Io {
        path: path.display().to_string(),
        error,
    };
    let f = std::fs::File::open(path).map_err(io)?;
    let md = f.metadata().map_err(io)?;
    if !md.is_file() {
        return Err(SignError::Key {
            what: path.display().to_string(),
            why: "not a regular file".into(),
        });
    }
    if md.len() > max {
        return Err(SignError::Key {
            what: path.display().to_string(),
            why: format!("{} bytes; a key file is at most {max}", md.len()),
        });
    }
    let mut data = Vec::new();
    f.take(max + 1).read_to_end(&mut data).map_err(io)?;
    Ok(data)
}
