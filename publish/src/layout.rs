//! Object keys of a served repository and what each may be cached for.
//!
//! ```text
//! config                                   [core] repo_version=1 mode=archive-z2   (short)
//! summary, summary.sig                     ref map + deltas; authoritative          (short)
//! refs/heads/<ref>                         64 hex + "\n"                            (short)
//! objects/XX/<62 hex>.<ext>                content-addressed, never change          (immutable)
//! objects/XX/<62 hex>.commitmeta           detached metadata: may be rewritten       (short)
//! deltas/F[0:2]/F[2:]-T/{superblock,0,1…}  F, T = modified base64 of from/to (`+` kept)
//! deltas/T[0:2]/T[2:]/{superblock,0,1…}    from-scratch delta                       (medium)
//! ```
//!
//! `+` in delta paths is sent percent-encoded by object_store's S3 client, so the key
//! holds a literal `+`, which garage's web endpoint serves both raw and as `%2B`.

use arbor_repo::{Checksum, ObjectType};

pub const CONFIG_KEY: &str = "config";
pub const SUMMARY_KEY: &str = "summary";
pub const SUMMARY_SIG_KEY: &str = "summary.sig";
pub const REFS_PREFIX: &str = "refs/heads/";
pub const OBJECTS_PREFIX: &str = "objects/";
pub const DELTAS_PREFIX: &str = "deltas/";
pub const CONFIG_CONTENTS: &[u8] = b"[core]\nrepo_version=1\nmode=archive-z2\n";

/// Content-addressed objects never change: cache for a year.
const CACHE_IMMUTABLE: &str = "public, max-age=31536000, immutable";
/// A delta for the same (from, to) could be regenerated with another superblock digest,
/// so it is cached for a day rather than forever.
const CACHE_DELTA: &str = "public, max-age=86400";
/// Refs, summary, config and detached metadata change: clients must see new ones soon.
const CACHE_MUTABLE: &str = "public, max-age=60, must-revalidate";

pub fn object_key(checksum: &Checksum, ty: ObjectType) -> String {
    let hex = checksum.to_hex();
    format!(
        "{OBJECTS_PREFIX}{}/{}.{}",
        &hex[..2],
        &hex[2..],
        ty.archive_extension()
    )
}

/// `objects/XX/YYYY.ext` → (checksum, type).
pub fn parse_object_key(key: &str) -> Option<(Checksum, ObjectType)> {
    let rest = key.strip_prefix(OBJECTS_PREFIX)?;
    let (dir, file) = rest.split_once('/')?;
    let (name, ext) = file.split_once('.')?;
    if dir.len() != 2 || name.len() != 62 {
        return None;
    }
    let ty = ObjectType::from_extension(ext)?;
    let c = Checksum::from_hex(&format!("{dir}{name}")).ok()?;
    Some((c, ty))
}

pub fn ref_key(name: &str) -> String {
    format!("{REFS_PREFIX}{name}")
}

/// The Cache-Control value for a key.
pub fn cache_control(key: &str) -> &'static str {
    if key.starts_with(OBJECTS_PREFIX) && !key.ends_with(".commitmeta") {
        CACHE_IMMUTABLE
    } else if key.starts_with(DELTAS_PREFIX) {
        CACHE_DELTA
    } else {
        CACHE_MUTABLE
    }
}

/// A static delta's endpoints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct DeltaName {
    pub from: Option<Checksum>,
    pub to: Checksum,
}

impl DeltaName {
    /// The summary's spelling: `FROM-TO` or `TO` in hex.
    pub fn to_hex(&self) -> String {
        match self.from {
            Some(f) => format!("{f}-{}", self.to),
            None => self.to.to_hex(),
        }
    }

    pub fn parse_hex(s: &str) -> Option<DeltaName> {
        match s.split_once('-') {
            Some((f, t)) => Some(DeltaName {
                from: Some(Checksum::from_hex(f).ok()?),
                to: Checksum::from_hex(t).ok()?,
            }),
            None => Some(DeltaName {
                from: None,
                to: Checksum::from_hex(s).ok()?,
            }),
        }
    }

    /// `deltas/F[0:2]/F[2:]-T` or `deltas/T[0:2]/T[2:]`, without a trailing `/`.
    pub fn dir(&self) -> String {
        let t = self.to.to_mb64();
        match self.from {
            Some(f) => {
                let f = f.to_mb64();
                format!("{DELTAS_PREFIX}{}/{}-{t}", &f[..2], &f[2..])
            }
            None => format!("{DELTAS_PREFIX}{}/{}", &t[..2], &t[2..]),
        }
    }

    /// Parse the delta directory out of a key under `deltas/`: returns the name and the
    /// file inside the delta directory (`superblock`, `0`, …).
    pub fn parse_key(key: &str) -> Option<(DeltaName, &str)> {
        let rest = key.strip_prefix(DELTAS_PREFIX)?;
        let mut parts = rest.splitn(3, '/');
        let (a, b, file) = (parts.next()?, parts.next()?, parts.next()?);
        if file.is_empty() || file.contains('/') {
            return None;
        }
        let joined = format!("{a}{b}");
        let name = match joined.split_once('-') {
            Some((f, t)) => DeltaName {
                from: Some(Checksum::from_mb64(f)?),
                to: Checksum::from_mb64(t)?,
            },
            None => DeltaName {
                from: None,
                to: Checksum::from_mb64(&joined)?,
            },
        };
        if a.len() != 2 {
            return None;
        }
        Some((name, file))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn object_keys_round_trip() {
        let c = Checksum::of(b"x");
        for ty in [
            ObjectType::File,
            ObjectType::DirTree,
            ObjectType::DirMeta,
            ObjectType::Commit,
            ObjectType::CommitMeta,
        ] {
            let k = object_key(&c, ty);
            assert_eq!(parse_object_key(&k), Some((c, ty)), "{k}");
        }
        assert_eq!(parse_object_key("objects/ab/short.filez"), None);
        assert_eq!(parse_object_key("objects/zz"), None);
    }

    #[test]
    fn delta_keys_round_trip() {
        // Search for checksums whose mb64 contains '+' and '_' to cover the escapes.
        let mut i = 0u32;
        let (from, to) = loop {
            let f = Checksum::of(&i.to_le_bytes());
            let t = Checksum::of(&(i + 1).to_le_bytes());
            if f.to_mb64().contains('+') && t.to_mb64().contains('_') {
                break (f, t);
            }
            i += 1;
        };
        for name in [
            DeltaName {
                from: Some(from),
                to,
            },
            DeltaName { from: None, to },
        ] {
            let key = format!("{}/superblock", name.dir());
            assert_eq!(
                DeltaName::parse_key(&key),
                Some((name, "superblock")),
                "{key}"
            );
            assert_eq!(DeltaName::parse_hex(&name.to_hex()), Some(name));
        }
        assert!(DeltaName::parse_key("deltas/xx").is_none());
    }

    #[test]
    fn cache_classes() {
        let c = Checksum::of(b"x");
        assert!(cache_control(&object_key(&c, ObjectType::File)).contains("immutable"));
        assert!(!cache_control(&object_key(&c, ObjectType::CommitMeta)).contains("immutable"));
        assert!(cache_control(SUMMARY_KEY).contains("max-age=60"));
        assert!(cache_control("refs/heads/x").contains("max-age=60"));
        assert!(cache_control("deltas/ab/cd/0").contains("86400"));
    }
}
