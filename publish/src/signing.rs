//! What publish and mirror ask of signing, without depending on how signatures are made:
//! the CLI implements it with arbor-sign's signers and keyrings.

use arbor_repo::Checksum;

/// Signing and signature checks during a transfer.
pub trait Signing: Send + Sync {
    /// Whether summaries are signed (a fresh `summary.sig` with every new summary).
    fn signs_summaries(&self) -> bool;
    /// A fresh `summary.sig` for these summary bytes.
    fn sign_summary(&self, summary: &[u8]) -> std::result::Result<Vec<u8>, String>;
    /// Whether `sig` holds a valid signature over `summary` by every signing key.
    fn summary_signed(&self, summary: &[u8], sig: &[u8]) -> bool;
    /// Refuse a commit about to be published (unsigned, badly signed); `Err` says why.
    fn check_commit(
        &self,
        commit: &Checksum,
        bytes: &[u8],
        commitmeta: Option<&[u8]>,
    ) -> std::result::Result<(), String>;
}

impl std::fmt::Debug for dyn Signing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Signing {{ signs_summaries: {} }}",
            self.signs_summaries()
        )
    }
}

/// Whether every entry of `published` (a commit's detached metadata at the destination) is
/// also in `local`: equal values, and for arrays (signature lists) every element. Then the
/// local one only adds signatures and may replace it.
pub fn only_adds(published: &[u8], local: &[u8]) -> bool {
    use arbor_repo::gvariant::Value;
    let (Ok(p), Ok(l)) = (
        arbor_repo::objects::parse_commitmeta(published),
        arbor_repo::objects::parse_commitmeta(local),
    ) else {
        return false;
    };
    p.0.iter().all(|(k, v)| match (v, l.get(k)) {
        (Value::Array(_, old), Some(Value::Array(_, new))) => old.iter().all(|x| new.contains(x)),
        (v, Some(n)) => v == n,
        (_, None) => false,
    })
}

#[cfg(test)]
mod tests {
    use super::only_adds;
    use arbor_repo::gvariant::{Type, Value, VarDict};

    fn meta(sigs: &[&[u8]], other: &str) -> Vec<u8> {
        let mut m = VarDict::new();
        m.insert(
            "ostree.gpgsigs",
            Value::Array(
                Type::Array(Box::new(Type::Byte)),
                sigs.iter().map(|s| Value::Bytes(s.to_vec())).collect(),
            ),
        );
        m.insert("x", Value::str(other));
        m.to_value().to_bytes()
    }

    /// A second signature may replace the published commitmeta; losing one, or changing
    /// another key, may not.
    #[test]
    fn replacing_a_published_commitmeta_only_adds() {
        let one = meta(&[b"sig-a"], "k");
        assert!(only_adds(&one, &meta(&[b"sig-a", b"sig-b"], "k")));
        assert!(!only_adds(&meta(&[b"sig-a", b"sig-b"], "k"), &one));
        assert!(!only_adds(&one, &meta(&[b"sig-a"], "changed")));
        assert!(!only_adds(&one, b"garbage"));
    }
}
