//! The repository summary `(a(s(taya{sv}))a{sv})`: the ref map clients resolve refs
//! through, and repository-wide metadata (mode, deltas, timestamps).
//!
//! ```text
//! ( [ (refname, (commit_size LE, commit csum, {ostree.commit.timestamp: t BE,
//!                                             ostree.commit.version: s})) ... sorted by name ],
//!   { ostree.summary.last-modified: t BE, ostree.summary.mode: s, ... } )
//! ```

use crate::checksum::Checksum;
use crate::gvariant::{GvError, Type, Value, VarDict};
use crate::objects::ObjectError;

pub const TYPE_STR: &str = "(a(s(taya{sv}))a{sv})";

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

impl Summary {
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
