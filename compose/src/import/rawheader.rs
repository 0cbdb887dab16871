//! Reading an RPM's lead and headers defensively, before the `rpm` crate sees them.
//!
//! ```text
//! lead (96 bytes, magic ed ab ee db)
//! signature header ‖ zero padding to a multiple of 8 ‖ main header, each:
//!   magic 8e ad e8 01 ‖ 4 reserved ‖ N: u32 BE ‖ S: u32 BE
//!   N × (tag u32, type u32, offset u32, count u32)  ‖  S bytes of data store
//! ```
//!
//! The crate trusts index offsets and sizes: a flipped bit in an index entry makes it
//! slice out of bounds (a panic) or allocate gigabytes. Every entry is checked here
//! against the store, and the header against the file size, with rpm's own limits.

use std::io::{self, Read, Seek, SeekFrom};
use std::path::Path;

use rpm::PackageMetadata;

use super::error::{short, ImportError};

const LEAD_SIZE: u64 = 96;
const LEAD_MAGIC: [u8; 4] = [0xed, 0xab, 0xee, 0xdb];
const HEADER_MAGIC: [u8; 4] = [0x8e, 0xad, 0xe8, 0x01];
/// rpm's `HEADER_TAGS_MAX` and `HEADER_DATA_MAX` (header.c).
const MAX_ENTRIES: u64 = 0xffff;
const MAX_DATA: u64 = 0x0fff_ffff;

/// Parse the lead and both headers of `file` (`len` bytes long): any seekable reader
/// (a file, a buffer).
pub fn read_metadata<R: Read + Seek>(
    path: &Path,
    file: &mut R,
    len: u64,
) -> Result<PackageMetadata, ImportError> {
    let bad = |why: String| ImportError::NotRpm {
        path: path.to_path_buf(),
        why,
    };
    let mut bytes = read_at(file, 0, LEAD_SIZE, len).map_err(|e| bad(e.to_string()))?;
    if bytes[..4] != LEAD_MAGIC {
        return Err(bad("no RPM lead magic".into()));
    }
    let sig_len =
        check_header(file, LEAD_SIZE, len).map_err(|e| bad(format!("signature header: {e}")))?;
    let padded = sig_len.div_ceil(8) * 8;
    let main_len =
        check_header(file, LEAD_SIZE + padded, len).map_err(|e| bad(format!("header: {e}")))?;
    let rest = read_at(file, LEAD_SIZE, padded + main_len, len).map_err(|e| bad(e.to_string()))?;
    bytes.extend_from_slice(&rest);
    PackageMetadata::parse(&mut bytes.as_slice()).map_err(|e| bad(short(e)))
}

fn read_at<R: Read + Seek>(file: &mut R, offset: u64, n: u64, len: u64) -> io::Result<Vec<u8>> {
    if offset.saturating_add(n) > len {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "the file ends inside the RPM headers",
        ));
    }
    file.seek(SeekFrom::Start(offset))?;
    let mut buf = vec![0u8; n as usize];
    file.read_exact(&mut buf)?;
    Ok(buf)
}

fn be32(b: &[u8], at: usize) -> u64 {
    u64::from(u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]]))
}

/// Validate the header structure at `offset`; returns its total length.
fn check_header<R: Read + Seek>(file: &mut R, offset: u64, len: u64) -> Result<u64, String> {
    let intro = read_at(file, offset, 16, len).map_err(|e| e.to_string())?;
    if intro[..4] != HEADER_MAGIC {
        return Err("bad magic".into());
    }
    let (entries, data) = (be32(&intro, 8), be32(&intro, 12));
    if entries == 0 || entries > MAX_ENTRIES || data > MAX_DATA {
        return Err(format!(
            "{entries} entries / {data} bytes of data out of range"
        ));
    }
    let total = 16 + entries * 16 + data;
    let all = read_at(file, offset, total, len).map_err(|e| e.to_string())?;
    let store = &all[(16 + entries * 16) as usize..];
    for i in 0..entries as usize {
        let e = &all[16 + i * 16..32 + i * 16];
        let (tag, ty, off, count) = (be32(e, 0), be32(e, 4), be32(e, 8), be32(e, 12));
        check_entry(store, ty, off, count).map_err(|why| format!("tag {tag}: {why}"))?;
    }
    Ok(total)
}

/// The entry's data lies inside the store: fixed-size items fit, and strings are
/// NUL-terminated before its end.
fn check_entry(store: &[u8], ty: u64, off: u64, count: u64) -> Result<(), String> {
    let size = store.len() as u64;
    if off > size {
        return Err(format!("offset {off} beyond the {size}-byte store"));
    }
    let item = match ty {
        0 => return Ok(()),
        1 | 2 | 7 => 1,
        3 => 2,
        4 => 4,
        5 => 8,
        6 | 8 | 9 => {
            if ty == 6 && count != 1 {
                return Err(format!("string with count {count}"));
            }
            let mut rest = &store[off as usize..];
            for _ in 0..count {
                let nul = rest
                    .iter()
                    .position(|b| *b == 0)
                    .ok_or("unterminated string")?;
                rest = &rest[nul + 1..];
            }
            return Ok(());
        }
        _ => return Err(format!("unknown type {ty}")),
    };
    if off + count * item > size {
        return Err(format!(
            "{count} items at {off} overrun the {size}-byte store"
        ));
    }
    Ok(())
}
