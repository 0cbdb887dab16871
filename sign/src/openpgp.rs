//! OpenPGP through rPGP: keyrings (armoured or binary), detached signatures parsed and
//! verified in-process, local secret keys, key expiry.
//!
//! What a stock client checks (gpgme): the elements of `ostree.gpgsigs` concatenated into one
//! stream, at least one signature VALID by a key of the remote's keyring, scanning stops at
//! the first BAD one. So arbor stores only signatures it verified itself, v4, over the exact
//! payload, of type "binary document", with SHA-256 or stronger.

use std::io::Cursor;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use pgp::composed::{Deserializable, DetachedSignature, SignedPublicKey, SignedSecretKey};
use pgp::crypto::hash::HashAlgorithm;
use pgp::packet::{Signature, SignatureType, SignatureVersion};
use pgp::ser::Serialize;
use pgp::types::{KeyDetails, Password};

use crate::SignError;

/// Signatures larger than this are not signatures (an RSA-16384 one is ~2 KiB).
const MAX_SIGNATURE_BYTES: usize = 64 * 1024;
/// Keyrings larger than this are refused (a key with many certifications is ~100 KiB).
pub const MAX_KEYRING_BYTES: u64 = 16 * 1024 * 1024;

/// Public keys signatures are checked against.
#[derive(Debug, Clone, Default)]
pub struct Keyring {
    pub keys: Vec<SignedPublicKey>,
}

/// One public key's identity, for messages: fingerprint in upper hex and first user id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyName {
    pub fingerprint: String,
    pub user: String,
}

impl std::fmt::Display for KeyName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.user.is_empty() {
            write!(f, "{}", self.fingerprint)
        } else {
            write!(f, "{} ({})", self.fingerprint, self.user)
        }
    }
}

pub fn key_name(key: &SignedPublicKey) -> KeyName {
    KeyName {
        fingerprint: format!("{:X}", key.primary_key.fingerprint()),
        user: key
            .details
            .users
            .first()
            .map(|u| String::from_utf8_lossy(u.id.id()).into_owned())
            .unwrap_or_default(),
    }
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// When `key` expires (seconds since the epoch), from its newest self-signature that says.
pub fn expiry(key: &SignedPublicKey) -> Option<u64> {
    let created = u64::from(key.primary_key.created_at().as_secs());
    let sigs = key
        .details
        .users
        .iter()
        .flat_map(|u| u.signatures.iter())
        .chain(key.details.direct_signatures.iter());
    let newest = sigs
        .filter(|s| s.key_expiration_time().is_some() || s.created().is_some())
        .max_by_key(|s| s.created().map(|t| t.as_secs()).unwrap_or(0))?;
    let secs = u64::from(newest.key_expiration_time()?.as_secs());
    (secs > 0).then_some(created + secs)
}

/// Refuse a key that expired or was revoked; warn when it expires within 30 days (its
/// expiry later voids every commit it signed: clients say "BAD signature … Key expired").
pub fn check_usable(key: &SignedPublicKey, what: &str) -> Result<(), SignError> {
    let name = key_name(key);
    if !key.details.revocation_signatures.is_empty() {
        return Err(SignError::Key {
            what: what.into(),
            why: format!("key {name} is revoked"),
        });
    }
    if let Some(exp) = expiry(key) {
        let now = now();
        if exp <= now {
            return Err(SignError::Key {
                what: what.into(),
                why: format!(
                    "key {name} expired {} days ago; extend it (gpg --quick-set-expire) and ship the new public key to clients",
                    (now - exp) / 86400
                ),
            });
        }
        if exp - now < 30 * 86400 {
            tracing::warn!(
                "{what}: key {name} expires in {} days: every commit it signed fails to verify after that; extend it (gpg --quick-set-expire) and ship the new public key to clients",
                (exp - now) / 86400
            );
        }
    }
    Ok(())
}

impl Keyring {
    /// Read every public key in a file: armoured (one or more blocks) or binary (a gpg
    /// keyring, `NAME.trustedkeys.gpg`).
    pub fn load(path: &Path) -> Result<Keyring, SignError> {
        let data = crate::read_bounded(path, MAX_KEYRING_BYTES)?;
        Self::parse(&data).map_err(|why| SignError::Key {
            what: path.display().to_string(),
            why,
        })
    }

    pub fn parse(data: &[u8]) -> Result<Keyring, String> {
        let mut keys = Vec::new();
        // Concatenated armoured exports (`cat a.asc b.asc`) are one block each.
        for chunk in armor_blocks(data) {
            let iter = SignedPublicKey::from_reader_many(Cursor::new(chunk))
                .map_err(|e| format!("not an OpenPGP public key: {e}"))?
                .0;
            for k in iter {
                match k {
                    Ok(k) => keys.push(k),
                    Err(e) => return Err(format!("not an OpenPGP public key: {e}")),
                }
            }
        }
        if keys.is_empty() {
            return Err("no OpenPGP public key in it".into());
        }
        Ok(Keyring { keys })
    }

    pub fn extend(&mut self, other: Keyring) {
        for k in other.keys {
            if !self
                .keys
                .iter()
                .any(|x| x.primary_key.fingerprint() == k.primary_key.fingerprint())
            {
                self.keys.push(k);
            }
        }
    }

    /// The key (primary, or a subkey of it) that made `sig`.
    fn find(&self, sig: &Signature) -> Option<(&SignedPublicKey, Verifier<'_>)> {
        let fprs = sig.issuer_fingerprint();
        let ids = sig.issuer_key_id();
        let matches = |fp: pgp::types::Fingerprint, id: pgp::types::KeyId| {
            fprs.iter().any(|f| **f == fp) || ids.iter().any(|i| **i == id)
        };
        for k in &self.keys {
            if matches(k.primary_key.fingerprint(), k.primary_key.legacy_key_id()) {
                return Some((k, Verifier::Primary(&k.primary_key)));
            }
            for s in &k.public_subkeys {
                if matches(s.key.fingerprint(), s.key.legacy_key_id()) {
                    return Some((k, Verifier::Sub(&s.key)));
                }
            }
        }
        None
    }
}

/// The armour blocks of `data` (each from its BEGIN line to its END line), or `data`
/// itself when it is binary.
fn armor_blocks(data: &[u8]) -> Vec<&[u8]> {
    const BEGIN: &[u8] = b"-----BEGIN PGP ";
    const END: &[u8] = b"-----END PGP ";
    let find = |hay: &[u8], needle: &[u8], from: usize| {
        hay.get(from..)?
            .windows(needle.len())
            .position(|w| w == needle)
            .map(|p| p + from)
    };
    let mut out = Vec::new();
    let mut pos = 0;
    while let Some(b) = find(data, BEGIN, pos) {
        let Some(e) = find(data, END, b) else {
            out.push(&data[b..]);
            return out;
        };
        let end = data[e..]
            .iter()
            .position(|&c| c == b'\n')
            .map_or(data.len(), |p| e + p + 1);
        out.push(&data[b..end]);
        pos = end;
    }
    if out.is_empty() {
        out.push(data);
    }
    out
}

enum Verifier<'a> {
    Primary(&'a pgp::packet::PublicKey),
    Sub(&'a pgp::packet::PublicSubkey),
}

/// What checking one signature found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Check {
    /// Valid, by this key.
    Good(KeyName),
    /// Made by a key the keyring has, but over other bytes or damaged.
    Bad(KeyName, String),
    /// Valid, but the key has expired or was revoked: clients reject it.
    KeyUnusable(KeyName, String),
    /// By a key the keyring does not have (issuer shown).
    UnknownKey(String),
}

fn issuer(sig: &Signature) -> String {
    if let Some(f) = sig.issuer_fingerprint().first() {
        format!("{f:X}")
    } else if let Some(i) = sig.issuer_key_id().first() {
        let hex: String = i.as_ref().iter().map(|b| format!("{b:02X}")).collect();
        format!("key id {hex}")
    } else {
        "an unnamed key".into()
    }
}

/// Split the bytes of one `ostree.gpgsigs` element (or a signer's output, armoured or not)
/// into signature packets.
pub fn parse_signatures(data: &[u8]) -> Result<Vec<Signature>, String> {
    if data.len() > MAX_SIGNATURE_BYTES {
        return Err(format!(
            "{} bytes is not a signature (at most {MAX_SIGNATURE_BYTES})",
            data.len()
        ));
    }
    let (iter, _) = DetachedSignature::from_reader_many(Cursor::new(data))
        .map_err(|e| format!("not an OpenPGP signature: {e}"))?;
    let mut out = Vec::new();
    for s in iter {
        out.push(
            s.map_err(|e| format!("not an OpenPGP signature: {e}"))?
                .signature,
        );
    }
    if out.is_empty() {
        return Err("no OpenPGP signature in it".into());
    }
    Ok(out)
}

/// The binary encoding of one signature packet (what `ostree.gpgsigs` holds).
pub fn to_binary(sig: &Signature) -> Result<Vec<u8>, String> {
    DetachedSignature::new(sig.clone())
        .to_bytes()
        .map_err(|e| format!("encoding a signature: {e}"))
}

/// Check one signature over `payload`.
pub fn check(keyring: &Keyring, sig: &Signature, payload: &[u8]) -> Check {
    let Some((key, verifier)) = keyring.find(sig) else {
        return Check::UnknownKey(issuer(sig));
    };
    let name = key_name(key);
    let result = match verifier {
        Verifier::Primary(k) => sig.verify(k, Cursor::new(payload)),
        Verifier::Sub(k) => sig.verify(k, Cursor::new(payload)),
    };
    if let Err(e) = result {
        // rPGP's text for a mismatch is an assertion about hash bytes; say it plainly.
        tracing::debug!("signature by {name}: {e}");
        return Check::Bad(name, "it does not match the signed bytes".into());
    }
    if !key.details.revocation_signatures.is_empty() {
        return Check::KeyUnusable(name, "the key is revoked".into());
    }
    if let Some(exp) = expiry(key) {
        if exp <= now() {
            return Check::KeyUnusable(name, "the key has expired".into());
        }
    }
    Check::Good(name)
}

/// What arbor demands of a signature it is about to store: v4 (GnuPG 2.2/2.4 cannot read v6),
/// a binary-document signature, SHA-256 or stronger.
pub fn check_form(sig: &Signature) -> Result<(), String> {
    if sig.version() != SignatureVersion::V4 {
        return Err(format!(
            "a version {:?} signature (clients need version 4)",
            sig.version()
        ));
    }
    if sig.typ() != Some(SignatureType::Binary) {
        return Err(format!(
            "a signature of type {:?} (a binary-document signature is needed)",
            sig.typ()
        ));
    }
    match sig.hash_alg() {
        Some(HashAlgorithm::Sha256 | HashAlgorithm::Sha384 | HashAlgorithm::Sha512) => Ok(()),
        other => Err(format!(
            "a signature hashed with {other:?} (SHA-256, SHA-384 or SHA-512 needed)"
        )),
    }
}

/// A secret key file read for in-process signing (`openpgp:KEYFILE`).
#[derive(Debug)]
pub struct LocalKey {
    pub path: PathBuf,
    secret: SignedSecretKey,
    pub public: SignedPublicKey,
    password: String,
}

impl LocalKey {
    pub fn load(path: &Path) -> Result<LocalKey, SignError> {
        let data = crate::read_bounded(path, MAX_KEYRING_BYTES)?;
        let key_err = |why: String| SignError::Key {
            what: path.display().to_string(),
            why,
        };
        let (secret, _) = SignedSecretKey::from_reader_single(Cursor::new(&data[..]))
            .map_err(|e| key_err(format!("not an OpenPGP secret key: {e}")))?;
        let public = secret.to_public_key();
        let password = std::env::var("ARBOR_OPENPGP_PASSPHRASE").unwrap_or_default();
        check_usable(&public, &path.display().to_string())?;
        Ok(LocalKey {
            path: path.to_path_buf(),
            secret,
            public,
            password,
        })
    }

    /// A v4 binary detached signature with SHA-256 by the primary key.
    pub fn sign(&self, payload: &[u8]) -> Result<Vec<u8>, String> {
        let pw = Password::from(self.password.as_str());
        let sig = DetachedSignature::sign_binary_data(
            rand::thread_rng(),
            &self.secret.primary_key,
            &pw,
            HashAlgorithm::Sha256,
            Cursor::new(payload),
        )
        .map_err(|e| {
            format!(
                "signing failed: {e} (a passphrase-protected key needs ARBOR_OPENPGP_PASSPHRASE)"
            )
        })?;
        sig.to_bytes().map_err(|e| format!("encoding: {e}"))
    }
}
