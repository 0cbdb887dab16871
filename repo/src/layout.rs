//! Where everything lives in an archive-mode repository: the one spelling of every path,
//! shared by the local repository (`store`, relative paths), static deltas and publishing
//! (object-store keys). Pure: names in, names out.
//!
//! ```text
//! config                                   [core] repo_version=1 mode=archive-z2
//! summary, summary.sig                     ref map + deltas (see `summary`)
//! refs/heads/<ref>                         64 hex + "\n"; '/' in a name nests
//! objects/XX/<62 hex>.<ext>                XX = first two hex digits; ext = filez, dirtree,
//!                                          dirmeta, commit, commitmeta
//! deltas/F[0:2]/F[2:]-T/{superblock,0,1…}  F, T = modified base64 of from/to
//! deltas/T[0:2]/T[2:]/{superblock,0,1…}    from-scratch delta
//! delta-indexes/T[0:2]/T[2:].index         deltas to T (see arbor-delta's `index`)
//! ```
//!
//! Modified base64 (`Checksum::to_mb64`) writes `_` for `/`, keeps `+`, and never
//! contains `-`, so `F-T` splits unambiguously.

use std::fmt;

use crate::checksum::{Checksum, InvalidChecksum};
use crate::objects::ObjectType;

pub const CONFIG: &str = "config";
pub const SUMMARY: &str = "summary";
pub const SUMMARY_SIG: &str = "summary.sig";
pub const REFS_PREFIX: &str = "refs/heads/";
pub const OBJECTS_PREFIX: &str = "objects/";
pub const DELTAS_PREFIX: &str = "deltas/";
pub const DELTA_INDEXES_PREFIX: &str = "delta-indexes/";
/// The file of a delta directory that makes the delta exist; parts are `0`, `1`, ….
pub const SUPERBLOCK: &str = "superblock";
/// `OSTREE_STATIC_DELTA_SUPERBLOCK_FORMAT`: metadata (inline parts, the to-commit's
/// detached metadata under `DIR/commitmeta`), timestamp, from, to, the to-commit, deps,
/// part headers, fallbacks. arbor-delta's `format` reads and writes the rest.
pub const SUPERBLOCK_TYPE: &str = "(a{sv}tayay(a{sv}aya(say)sstayay)aya(uayttay)a(yaytt))";

/// The directories `ostree init --mode=archive` makes, parents first. Stock tools
/// (`ostree refs`, `fsck`, `summary -u`, `prune`) open each of them and fail when one is
/// missing, so a `file://` destination gets them too.
pub const REPO_DIRS: &[&str] = &[
    "objects",
    "tmp",
    "extensions",
    "state",
    "refs",
    "refs/heads",
    "refs/mirrors",
    "refs/remotes",
];

/// The `config` arbor writes (`ostree init --mode=archive`; `archive-z2` is the mode's
/// name that 2022.7 clients print and accept).
pub const CONFIG_CONTENTS: &[u8] = b"[core]\nrepo_version=1\nmode=archive-z2\n";

/// `objects/XX/YYYY….ext`.
pub fn object_key(checksum: &Checksum, ty: ObjectType) -> String {
    let hex = checksum.to_hex();
    format!(
        "{OBJECTS_PREFIX}{}/{}.{}",
        &hex[..2],
        &hex[2..],
        ty.archive_extension()
    )
}

/// `objects/XX/YYYY….ext` → (checksum, type).
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

/// `refs/heads/<name>` (the caller validates the name).
pub fn ref_key(name: &str) -> String {
    format!("{REFS_PREFIX}{name}")
}

/// What a ref file holds: the commit in hex and a newline.
pub fn ref_contents(commit: &Checksum) -> String {
    format!("{commit}\n")
}

/// The commit a ref file names (trailing whitespace ignored, as ostree does).
pub fn parse_ref_contents(text: &str) -> Result<Checksum, InvalidChecksum> {
    Checksum::from_hex(text.trim_end())
}

/// `delta-indexes/T[0:2]/T[2:].index`: the index of the deltas to `to`.
pub fn delta_index_key(to: &Checksum) -> String {
    let t = to.to_mb64();
    format!("{DELTA_INDEXES_PREFIX}{}/{}.index", &t[..2], &t[2..])
}

/// `delta-indexes/T[0:2]/T[2:].index` → T.
pub fn parse_delta_index_key(key: &str) -> Option<Checksum> {
    let rest = key.strip_prefix(DELTA_INDEXES_PREFIX)?;
    let (a, b) = rest.split_once('/')?;
    if a.len() != 2 {
        return None;
    }
    Checksum::from_mb64(&format!("{a}{}", b.strip_suffix(".index")?))
}

/// A static delta's endpoints: `FROM-TO`, or `TO` for a delta from scratch.
///
/// Displayed (and parsed) as the summary names it, in hex; ordered as those names sort
/// as text, so every list of deltas (summary, indexes, `arbor delta list`) has one order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct DeltaName {
    pub from: Option<Checksum>,
    pub to: Checksum,
}

/// A string that is not `FROM-TO` or `TO` checksums.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid delta name {0:?}: expected FROM-TO or TO checksums")]
pub struct InvalidDeltaName(pub String);

impl DeltaName {
    /// Parse `FROM-TO` or `TO` (64 lowercase hex digits each).
    pub fn parse(s: &str) -> Result<DeltaName, InvalidDeltaName> {
        let bad = || InvalidDeltaName(s.to_string());
        let (from, to) = match s.split_once('-') {
            Some((f, t)) => (Some(Checksum::from_hex(f).map_err(|_| bad())?), t),
            None => (None, s),
        };
        Ok(DeltaName {
            from,
            to: Checksum::from_hex(to).map_err(|_| bad())?,
        })
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

    pub fn superblock_key(&self) -> String {
        format!("{}/{SUPERBLOCK}", self.dir())
    }

    /// The part file's key; also the superblock metadata key of an inline part.
    pub fn part_key(&self, index: usize) -> String {
        format!("{}/{index}", self.dir())
    }

    /// Superblock metadata key holding the to-commit's detached metadata.
    pub fn commitmeta_key(&self) -> String {
        format!("{}/commitmeta", self.dir())
    }

    /// Parse a key under `deltas/`: the delta's name and the file inside its directory
    /// (`superblock`, `0`, …).
    pub fn parse_key(key: &str) -> Option<(DeltaName, &str)> {
        let rest = key.strip_prefix(DELTAS_PREFIX)?;
        let mut parts = rest.splitn(3, '/');
        let (a, b, file) = (parts.next()?, parts.next()?, parts.next()?);
        if a.len() != 2 || file.is_empty() || file.contains('/') {
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
        Some((name, file))
    }

    /// The order of the hex names as text: `FROM-TO` and `TO` compare by their first
    /// checksum; a name that is a prefix of another (`F` and `F-T`) sorts first.
    fn sort_key(&self) -> (Checksum, bool, Checksum) {
        (self.from.unwrap_or(self.to), self.from.is_some(), self.to)
    }
}

impl Ord for DeltaName {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.sort_key().cmp(&other.sort_key())
    }
}

impl PartialOrd for DeltaName {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl fmt::Display for DeltaName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.from {
            Some(from) => write!(f, "{from}-{}", self.to),
            None => write!(f, "{}", self.to),
        }
    }
}

/// `OSTREE_REF_REGEXP`: segments `[\w\d][-._\w\d]*` joined by `/` (so no empty name,
/// no `..`, no leading `/`: a ref name is always a path under `refs/heads/`).
pub fn validate_ref_name(name: &str) -> Result<(), crate::RepoError> {
    let ok = !name.is_empty()
        && name.split('/').all(|seg| {
            let mut chars = seg.chars();
            matches!(chars.next(), Some(c) if c.is_alphanumeric() || c == '_')
                && chars.all(|c| c.is_alphanumeric() || matches!(c, '_' | '-' | '.'))
        });
    if ok {
        Ok(())
    } else {
        Err(crate::RepoError::InvalidRef(name.to_string()))
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
        let hex = c.to_hex();
        assert_eq!(
            object_key(&c, ObjectType::File),
            format!("objects/{}/{}.filez", &hex[..2], &hex[2..])
        );
        assert_eq!(parse_object_key("objects/ab/short.filez"), None);
        assert_eq!(parse_object_key("objects/zz"), None);
    }

    #[test]
    fn refs() {
        let c = Checksum::of(b"x");
        assert_eq!(ref_key("a/b"), "refs/heads/a/b");
        assert_eq!(ref_contents(&c), format!("{}\n", c.to_hex()));
        assert_eq!(parse_ref_contents(&ref_contents(&c)), Ok(c));
        assert!(parse_ref_contents("nope\n").is_err());
    }

    /// Checksums whose modified base64 holds `+` and `_`, to cover the escapes.
    fn awkward_pair() -> (Checksum, Checksum) {
        let mut i = 0u32;
        loop {
            let f = Checksum::of(&i.to_le_bytes());
            let t = Checksum::of(&(i + 1).to_le_bytes());
            if f.to_mb64().contains('+') && t.to_mb64().contains('_') {
                return (f, t);
            }
            i += 1;
        }
    }

    #[test]
    fn delta_keys_round_trip() {
        let (from, to) = awkward_pair();
        for name in [
            DeltaName {
                from: Some(from),
                to,
            },
            DeltaName { from: None, to },
        ] {
            let key = name.superblock_key();
            assert_eq!(
                DeltaName::parse_key(&key),
                Some((name, "superblock")),
                "{key}"
            );
            assert_eq!(DeltaName::parse_key(&name.part_key(3)), Some((name, "3")));
            assert_eq!(DeltaName::parse(&name.to_string()), Ok(name));
        }
        let fa = from.to_mb64();
        assert_eq!(
            DeltaName {
                from: Some(from),
                to
            }
            .dir(),
            format!("deltas/{}/{}-{}", &fa[..2], &fa[2..], to.to_mb64())
        );
        assert!(DeltaName::parse_key("deltas/xx").is_none());
        assert!(DeltaName::parse("xyz").is_err());
        assert!(DeltaName::parse(&format!("{from}-")).is_err());
    }

    #[test]
    fn delta_names_sort_as_their_text() {
        let mut sums: Vec<Checksum> = (0..6u8).map(|i| Checksum::of(&[i])).collect();
        sums.push(sums[0]);
        let mut names = Vec::new();
        for f in &sums {
            names.push(DeltaName { from: None, to: *f });
            for t in &sums {
                names.push(DeltaName {
                    from: Some(*f),
                    to: *t,
                });
            }
        }
        let mut by_text = names.clone();
        by_text.sort_by_key(|n| n.to_string());
        names.sort();
        assert_eq!(names, by_text);
    }

    #[test]
    fn delta_index_keys() {
        let (_, to) = awkward_pair();
        let key = delta_index_key(&to);
        assert!(key.starts_with("delta-indexes/") && key.ends_with(".index"));
        assert_eq!(parse_delta_index_key(&key), Some(to));
        assert_eq!(parse_delta_index_key("delta-indexes/ab"), None);
    }
}
