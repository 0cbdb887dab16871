//! The signature dictionaries clients read: a commit's `.commitmeta` and the `summary.sig`
//! next to a summary, both GVariant `a{sv}` in normal form.
//!
//! ```text
//! a{sv}  ostree.gpgsigs       -> aay   one binary OpenPGP detached signature per element
//!        ostree.sign.ed25519  -> aay   64-byte RFC 8032 signatures
//!        (any other key)      -> kept as it is
//! ```
//!
//! Both sign the exact bytes of their object: the `.commit` file (whose SHA-256 is the commit
//! id) and the `summary` file. Keys are written sorted (libostree's order follows a hash
//! table; readers only look keys up), so the same signatures give the same bytes.

use arbor_repo::gvariant::{Type, Value, VarDict};

/// Where OpenPGP signatures go.
pub const GPG_KEY: &str = "ostree.gpgsigs";
/// Where ed25519 signatures go.
pub const ED25519_KEY: &str = "ostree.sign.ed25519";

/// The kind of a signature, and so the dictionary key it is stored under.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SigKind {
    OpenPgp,
    Ed25519,
}

impl SigKind {
    pub fn meta_key(self) -> &'static str {
        match self {
            SigKind::OpenPgp => GPG_KEY,
            SigKind::Ed25519 => ED25519_KEY,
        }
    }
}

/// The elements of an `aay` entry (`None` when the key is absent or of another type).
pub fn signatures(meta: &VarDict, kind: SigKind) -> Vec<Vec<u8>> {
    match meta.get(kind.meta_key()) {
        Some(Value::Array(_, items)) => items
            .iter()
            .filter_map(|v| match v {
                Value::Bytes(b) => Some(b.clone()),
                Value::Array(_, bytes) => bytes
                    .iter()
                    .map(|b| match b {
                        Value::Byte(x) => Some(*x),
                        _ => None,
                    })
                    .collect(),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    }
}

fn aay(items: &[Vec<u8>]) -> Value {
    Value::Array(
        Type::Array(Box::new(Type::Byte)),
        items.iter().map(|b| Value::Bytes(b.clone())).collect(),
    )
}

/// Set the signatures of one kind, keeping every other key, and sort the keys.
pub fn with_signatures(meta: &VarDict, kind: SigKind, sigs: &[Vec<u8>]) -> VarDict {
    let mut out = meta.clone();
    if sigs.is_empty() {
        out.0.retain(|(k, _)| k != kind.meta_key());
    } else {
        out.set(kind.meta_key(), aay(sigs));
    }
    out.0.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

/// The bytes of a signature dictionary.
pub fn to_bytes(meta: &VarDict) -> Vec<u8> {
    meta.to_value().to_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The layout signing.md measured on `ostree commit --gpg-sign`'s 464-byte file, rebuilt
    /// from a 438-byte signature: key, pad to 8, element, framing offsets of 2 bytes.
    #[test]
    fn one_gpg_signature_has_ostrees_layout() {
        let mut sig = vec![0x89u8, 0x01, 0xB3, 0x04, 0x00, 0x01, 0x0A];
        sig.resize(438, 0x5a);
        let meta = with_signatures(&VarDict::new(), SigKind::OpenPgp, &[sig.clone()]);
        let b = to_bytes(&meta);
        assert_eq!(b.len(), 464);
        assert_eq!(&b[..15], b"ostree.gpgsigs\0");
        assert_eq!(&b[0x10..0x10 + 438], &sig[..]);
        assert_eq!(
            &b[0x1C6..],
            &[0xB6, 0x01, 0x00, b'a', b'a', b'y', 0x0F, 0x00, 0xCE, 0x01]
        );
        let back = arbor_repo::objects::parse_commitmeta(&b).unwrap();
        assert_eq!(signatures(&back, SigKind::OpenPgp), vec![sig]);
    }

    #[test]
    fn other_keys_are_kept_and_keys_sorted() {
        let mut m = VarDict::new();
        m.insert("zz.other", Value::str("x"));
        let m = with_signatures(&m, SigKind::Ed25519, &[vec![7u8; 64]]);
        let m = with_signatures(&m, SigKind::OpenPgp, &[vec![1, 2, 3]]);
        let keys: Vec<&str> = m.0.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(keys, ["ostree.gpgsigs", "ostree.sign.ed25519", "zz.other"]);
        let back = arbor_repo::objects::parse_commitmeta(&to_bytes(&m)).unwrap();
        assert_eq!(signatures(&back, SigKind::Ed25519), vec![vec![7u8; 64]]);
        assert_eq!(back.get("zz.other"), Some(&Value::str("x")));
    }
}
