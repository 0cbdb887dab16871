//! `show`: a delta's canonical summary (parts, sizes, op counts, fallbacks), computed
//! by decompressing and scanning every part without executing it.

use std::collections::BTreeMap;

use arbor_repo::Checksum;
use rayon::prelude::*;

use crate::error::{DeltaError, Result};
use crate::format::{op, read_varint, Endianness, Fallback, PartPayload};
use crate::source::DeltaSource;

#[derive(Debug, Clone)]
pub struct PartInfo {
    pub index: usize,
    pub inline: bool,
    /// Compression byte: 0 (none) or b'x' (xz).
    pub compression: u8,
    /// Part file size (compressed).
    pub size: u64,
    /// The header's uncompressed size.
    pub usize: u64,
    /// Decompressed payload size.
    pub payload_size: u64,
    pub objects: usize,
    pub ops: BTreeMap<&'static str, u64>,
}

#[derive(Debug, Clone)]
pub struct DeltaInfo {
    pub name: String,
    pub from: Option<Checksum>,
    pub to: Checksum,
    pub digest: Checksum,
    pub superblock_size: u64,
    pub timestamp: u64,
    pub endianness: Endianness,
    pub has_commitmeta: bool,
    pub parts: Vec<PartInfo>,
    pub fallbacks: Vec<Fallback>,
}

impl DeltaInfo {
    /// Bytes a client downloads: part files (inline parts are in the superblock) and
    /// fallback objects.
    pub fn part_bytes(&self) -> u64 {
        self.parts
            .iter()
            .filter(|p| !p.inline)
            .map(|p| p.size)
            .sum()
    }
    pub fn fallback_bytes(&self) -> u64 {
        self.fallbacks.iter().map(|f| f.csize).sum()
    }
    pub fn total_bytes(&self) -> u64 {
        self.superblock_size + self.part_bytes() + self.fallback_bytes()
    }
}

/// Count the ops of a payload without running them. `S` takes 2 arguments for a
/// metadata object and 4 for a content object, so the object list is needed.
fn count_part_ops(
    ops: &[u8],
    objects: &[crate::format::ObjectName],
) -> std::result::Result<BTreeMap<&'static str, u64>, String> {
    let mut counts = BTreeMap::new();
    let mut pos = 0;
    let mut next = 0;
    while pos < ops.len() {
        let code = ops[pos];
        pos += 1;
        let nargs = match code {
            op::OPEN_SPLICE_AND_CLOSE => {
                let (ty, _) = objects
                    .get(next)
                    .ok_or("more objects than the header lists")?;
                next += 1;
                if *ty == arbor_repo::ObjectType::File {
                    4
                } else {
                    2
                }
            }
            op::OPEN => 3,
            op::WRITE | op::BSPATCH => 2,
            op::SET_READ_SOURCE => 1,
            op::CLOSE => {
                next += 1;
                0
            }
            op::UNSET_READ_SOURCE => 0,
            c => return Err(format!("unknown opcode {c:#04x} at op offset {}", pos - 1)),
        };
        for _ in 0..nargs {
            read_varint(ops, &mut pos).ok_or("truncated varint")?;
        }
        *counts.entry(op::name(code)).or_default() += 1;
    }
    Ok(counts)
}

/// Summarize `delta`, reading (and checking) every part.
pub fn show(delta: &DeltaSource) -> Result<DeltaInfo> {
    let sb = &delta.superblock;
    let parts = (0..sb.parts.len())
        .into_par_iter()
        .map(|i| {
            let h = &sb.parts[i];
            let file = delta.read_part_file(i)?;
            let payload = delta.read_part_payload(i)?;
            let err = |why: String| DeltaError::Part {
                delta: delta.name().to_string(),
                index: i,
                why,
            };
            let p = PartPayload::parse(&payload).map_err(|e| err(format!("payload: {e}")))?;
            Ok(PartInfo {
                index: i,
                inline: delta.is_inline(i),
                compression: file[0],
                size: h.size,
                usize: h.usize,
                payload_size: payload.len() as u64,
                objects: h.objects.len(),
                ops: count_part_ops(p.ops, &h.objects).map_err(err)?,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(DeltaInfo {
        name: delta.name().to_string(),
        from: sb.from,
        to: sb.to,
        digest: delta.digest,
        superblock_size: delta.superblock_size,
        timestamp: sb.timestamp,
        endianness: sb.endianness,
        has_commitmeta: sb.commitmeta().is_some(),
        parts,
        fallbacks: sb.fallbacks.clone(),
    })
}
