//! The repository summary `(a(s(taya{sv}))a{sv})`: the ref map clients resolve refs
//! through, and repository-wide metadata (mode, deltas, timestamps). [`Summary::build`]
//! is the one place its contents are decided, for the local repository and for
//! published ones alike.
//!
//! ```text
//! ( [ (refname, (commit_size LE, commit csum, {ostree.commit.timestamp: t BE,
//!                                             ostree.commit.version: s})) ... sorted by name ],
//!   { ostree.summary.last-modified: t BE,
//!     ostree.summary.tombstone-commits: b (false),
//!     ostree.static-deltas: a{sv} {"FROM-TO" or "TO": <ay superblock SHA-256>}  (if any),
//!     ostree.summary.mode: s "archive-z2" } )
//! ```

use std::collections::BTreeMap;

use crate::checksum::Checksum;
use crate::gvariant::{GvError, Type, Value, VarDict};
use crate::layout::DeltaName;
use crate::objects::ObjectError;

pub const TYPE_STR: &str = "(a(s(taya{sv}))a{sv})";
pub const COMMIT_TIMESTAMP_KEY: &str = "ostree.commit.timestamp";
pub const COMMIT_VERSION_KEY: &str = "ostree.commit.version";
pub const LAST_MODIFIED_KEY: &str = "ostree.summary.last-modified";
pub const TOMBSTONE_COMMITS_KEY: &str = "ostree.summary.tombstone-commits";
/// Also the key of the map inside a delta index file.
pub const STATIC_DELTAS_KEY: &str = "ostree.static-deltas";
pub const MODE_KEY: &str = "ostree.summary.mode";
/// The mode every arbor repository has.
pub const MODE: &str = "archive-z2";

#[derive(Debug, Clone, PartialEq)]
pub struct SummaryRef {
    pub name: String,
    /// Byte size of the `.commit` object; clients use it as a download cap.
    pub commit_size: u64,
    pub commit: Checksum,
    pub metadata: VarDict,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Summary {
    /// Sorted by name when serialised.
    pub refs: Vec<SummaryRef>,
    pub metadata: VarDict,
}

impl SummaryRef {
    /// A ref as `ostree summary -u` lists it: the commit's size, its timestamp (BE) and
    /// its version when it has one.
    pub fn new(
        name: String,
        commit: Checksum,
        commit_size: u64,
        timestamp: u64,
        version: Option<&str>,
    ) -> SummaryRef {
        let mut metadata = VarDict::new();
        metadata.insert(COMMIT_TIMESTAMP_KEY, Value::Uint64(timestamp.to_be()));
        if let Some(v) = version {
            metadata.insert(COMMIT_VERSION_KEY, Value::str(v));
        }
        SummaryRef {
            name,
            commit_size,
            commit,
            metadata,
        }
    }
}

/// The `a{sv}` map of delta names to superblock digests, as the summary and the delta
/// index files hold it (in [`DeltaName`] order, which is the names' text order).
pub fn deltas_to_value(deltas: &BTreeMap<DeltaName, Checksum>) -> Value {
    VarDict(
        deltas
            .iter()
            .map(|(n, d)| (n.to_string(), Value::Bytes(d.0.to_vec())))
            .collect(),
    )
    .to_value()
}

/// The inverse of [`deltas_to_value`]; entries that are not a delta name and a 32-byte
/// digest are skipped.
pub fn deltas_from_value(v: &Value) -> BTreeMap<DeltaName, Checksum> {
    let mut out = BTreeMap::new();
    if let Ok(d) = VarDict::from_value(v) {
        for (name, digest) in d.0 {
            let (Ok(n), Value::Bytes(b)) = (DeltaName::parse(&name), digest) else {
                continue;
            };
            if let Some(c) = Checksum::from_slice(&b) {
                out.insert(n, c);
            }
        }
    }
    out
}

/// The `last-modified` a summary written now gets: `SOURCE_DATE_EPOCH` when it is set
/// (so a release built with it publishes the same bytes on any day), else the clock.
pub fn last_modified_now() -> u64 {
    std::env::var("SOURCE_DATE_EPOCH")
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0)
        })
}

impl Summary {
    /// The summary of `refs` and `deltas`, stamped `last_modified` (seconds since the
    /// epoch): what both the local repository and a published one advertise.
    pub fn build(
        mut refs: Vec<SummaryRef>,
        deltas: &BTreeMap<DeltaName, Checksum>,
        last_modified: u64,
    ) -> Summary {
        refs.sort_by(|a, b| a.name.as_bytes().cmp(b.name.as_bytes()));
        let mut md = VarDict::new();
        md.insert(LAST_MODIFIED_KEY, Value::Uint64(last_modified.to_be()));
        md.insert(TOMBSTONE_COMMITS_KEY, Value::Bool(false));
        if !deltas.is_empty() {
            md.insert(STATIC_DELTAS_KEY, deltas_to_value(deltas));
        }
        md.insert(MODE_KEY, Value::str(MODE));
        Summary { refs, metadata: md }
    }

    /// `ostree.summary.last-modified`, if present.
    pub fn last_modified(&self) -> Option<u64> {
        match self.metadata.get(LAST_MODIFIED_KEY) {
            Some(Value::Uint64(t)) => Some(u64::from_be(*t)),
            _ => None,
        }
    }

    /// The deltas the summary advertises (`ostree.static-deltas`).
    pub fn deltas(&self) -> BTreeMap<DeltaName, Checksum> {
        self.metadata
            .get(STATIC_DELTAS_KEY)
            .map(deltas_from_value)
            .unwrap_or_default()
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        let mut refs: Vec<&SummaryRef> = self.refs.iter().collect();
        refs.sort_by(|a, b| a.name.as_bytes().cmp(b.name.as_bytes()));
        let entry_ty = Type::parse("(s(taya{sv}))").expect("static type");
        Value::Tuple(vec![
            Value::Array(
                entry_ty,
                refs.iter()
                    .map(|r| {
                        Value::Tuple(vec![
                            Value::str(r.name.clone()),
                            Value::Tuple(vec![
                                // Host (little-endian) order, unlike most ostree integers.
                                Value::Uint64(r.commit_size),
                                Value::Bytes(r.commit.0.to_vec()),
                                r.metadata.to_value(),
                            ]),
                        ])
                    })
                    .collect(),
            ),
            self.metadata.to_value(),
        ])
        .to_bytes()
    }

    pub fn from_bytes(data: &[u8]) -> Result<Summary, ObjectError> {
        let bad = || ObjectError::Invalid {
            what: "summary",
            why: "wrong shape".into(),
        };
        let v = Value::from_bytes(&Type::parse(TYPE_STR).map_err(ObjectError::from)?, data)?;
        let Value::Tuple(m) = v else {
            return Err(bad());
        };
        let (Value::Array(_, entries), md) = (&m[0], &m[1]) else {
            return Err(bad());
        };
        let mut refs = Vec::new();
        for e in entries {
            let Value::Tuple(em) = e else {
                return Err(bad());
            };
            let (Value::String(name), Value::Tuple(inner)) = (&em[0], &em[1]) else {
                return Err(bad());
            };
            let (Value::Uint64(size), Value::Bytes(c)) = (&inner[0], &inner[1]) else {
                return Err(bad());
            };
            refs.push(SummaryRef {
                name: name.clone(),
                commit_size: *size,
                commit: Checksum::from_slice(c).ok_or_else(bad)?,
                metadata: VarDict::from_value(&inner[2])
                    .map_err(|e: GvError| ObjectError::from(e))?,
            });
        }
        Ok(Summary {
            refs,
            metadata: VarDict::from_value(md)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn build_round_trips() {
        let (a, b) = (Checksum::of(b"a"), Checksum::of(b"b"));
        let deltas = BTreeMap::from([
            (DeltaName { from: None, to: b }, Checksum::of(b"sb1")),
            (
                DeltaName {
                    from: Some(a),
                    to: b,
                },
                Checksum::of(b"sb2"),
            ),
        ]);
        let refs = vec![
            SummaryRef::new("z".into(), b, 10, 200, Some("2")),
            SummaryRef::new("a/b".into(), a, 9, 100, None),
        ];
        let s = Summary::build(refs, &deltas, 12345);
        assert_eq!(s.refs[0].name, "a/b");
        let parsed = Summary::from_bytes(&s.to_bytes()).unwrap();
        assert_eq!(parsed, s);
        assert_eq!(parsed.last_modified(), Some(12345));
        assert_eq!(parsed.deltas(), deltas);
        assert_eq!(
            parsed.metadata.get(MODE_KEY),
            Some(&Value::str("archive-z2"))
        );
        assert_eq!(
            parsed.refs[1].metadata.get(COMMIT_VERSION_KEY),
            Some(&Value::str("2"))
        );
        assert!(Summary::build(Vec::new(), &BTreeMap::new(), 0)
            .metadata
            .get(STATIC_DELTAS_KEY)
            .is_none());
    }
}
