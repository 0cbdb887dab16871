//! Checking a signature dictionary as a stock client does.
//!
//! OpenPGP (gpgme): the signatures in order; the first BAD one ends the scan; valid when a
//! good signature came before that. ed25519: any signature by any trusted key. With both kinds
//! of key configured, both must pass (as a client with `gpg-verify` and `sign-verify`).

use std::path::Path;

use arbor_repo::gvariant::VarDict;
use serde::Serialize;

use crate::ed25519::PublicKeys;
use crate::meta::{self, SigKind};
use crate::openpgp::{self, Check, Keyring};
use crate::SignError;

/// Keys a verification trusts.
#[derive(Debug, Clone, Default)]
pub struct TrustedKeys {
    pub openpgp: Keyring,
    pub ed25519: PublicKeys,
}

impl TrustedKeys {
    pub fn load(keyrings: &[impl AsRef<Path>], ed25519: &[String]) -> Result<Self, SignError> {
        let mut t = TrustedKeys::default();
        for k in keyrings {
            t.openpgp.extend(Keyring::load(k.as_ref())?);
        }
        for e in ed25519 {
            t.ed25519.0.extend(PublicKeys::load(e)?.0);
        }
        Ok(t)
    }

    pub fn is_empty(&self) -> bool {
        self.openpgp.keys.is_empty() && self.ed25519.0.is_empty()
    }

    /// Check the signatures of `meta` over `payload`.
    pub fn verify(&self, payload: &[u8], meta: Option<&VarDict>) -> Report {
        let mut r = Report::default();
        let empty = VarDict::new();
        let meta = meta.unwrap_or(&empty);
        if !self.openpgp.keys.is_empty() {
            let mut stopped = false;
            let mut ok = false;
            let elements = meta::signatures(meta, SigKind::OpenPgp);
            if elements.is_empty() {
                r.problems.push("no OpenPGP signature".into());
            }
            for el in elements {
                let sigs = match openpgp::parse_signatures(&el) {
                    Ok(s) => s,
                    Err(e) => {
                        r.problems.push(format!("a damaged signature: {e}"));
                        stopped = true;
                        continue;
                    }
                };
                for s in sigs {
                    match openpgp::check(&self.openpgp, &s, payload) {
                        Check::Good(n) => {
                            r.good.push(format!("OpenPGP {n}"));
                            ok |= !stopped;
                        }
                        Check::Bad(n, why) => {
                            r.problems.push(format!("BAD signature by {n}: {why}"));
                            stopped = true;
                        }
                        Check::KeyUnusable(n, why) => {
                            r.problems.push(format!("signature by {n}, but {why}"));
                            stopped = true;
                        }
                        Check::UnknownKey(i) => r.unknown.push(format!("OpenPGP {i}")),
                    }
                }
            }
            if !ok && !r.good.is_empty() {
                r.problems
                    .push("a BAD signature comes before the good one: clients stop at it".into());
            }
            r.openpgp_ok = Some(ok);
        }
        if !self.ed25519.0.is_empty() {
            let sigs = meta::signatures(meta, SigKind::Ed25519);
            let mut ok = false;
            if sigs.is_empty() {
                r.problems.push("no ed25519 signature".into());
            }
            for s in sigs {
                match self.ed25519.verify(payload, &s) {
                    Some(k) => {
                        r.good.push(format!("ed25519 {k}"));
                        ok = true;
                    }
                    None => r
                        .unknown
                        .push("an ed25519 signature by no trusted key".into()),
                }
            }
            r.ed25519_ok = Some(ok);
        }
        r
    }
}

/// What a verification found.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Report {
    /// Valid signatures, by key.
    pub good: Vec<String>,
    /// Signatures by keys not trusted here (clients skip them).
    pub unknown: Vec<String>,
    /// What makes clients refuse it.
    pub problems: Vec<String>,
    pub openpgp_ok: Option<bool>,
    pub ed25519_ok: Option<bool>,
}

impl Report {
    /// Would a client configured with these keys accept it?
    pub fn valid(&self) -> bool {
        (self.openpgp_ok.is_some() || self.ed25519_ok.is_some())
            && self.openpgp_ok != Some(false)
            && self.ed25519_ok != Some(false)
    }

    /// One line for an error message.
    pub fn why(&self) -> String {
        let mut parts = self.problems.clone();
        if self.good.is_empty() && !self.unknown.is_empty() {
            parts.push(format!(
                "signed only by keys not in the keyring: {}",
                self.unknown.join(", ")
            ));
        }
        if parts.is_empty() {
            "no valid signature".into()
        } else {
            parts.join("; ")
        }
    }
}
