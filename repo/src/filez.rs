//! An archive-mode FILE object (`.filez`) checked against its name: the header, the
//! deflated content of the declared size, the checksum of both. Pure: bytes in, the
//! header and content (or an error) out; the store reads objects through this, and
//! publish checks every object with it before uploading.
//!
//! ```text
//! u32 BE header length ‖ 4 zero bytes ‖ (tuuuusa(ayay)) header ‖ raw deflate of the content
//! checksum = SHA-256(content-stream header ‖ content)
//! ```

use std::io::Read;

use flate2::read::DeflateDecoder;

use crate::checksum::Checksum;
use crate::error::{corrupt, Result};
use crate::objects::{FileHeader, ObjectType};

/// Files up to this size are hashed and compressed from one in-memory read; larger ones
/// are streamed (never held whole).
pub(crate) const IN_MEMORY_LIMIT: u64 = 64 << 20;

/// [`verify_archive_file`] without keeping the content: a file larger than
/// `IN_MEMORY_LIMIT` is inflated in chunks into the hash, so memory stays small
/// whatever its size (a 1 GiB sparse file is a few MB stored).
pub fn verify_archive_file_streaming(data: &[u8], checksum: &Checksum) -> Result<()> {
    check_archive_file(data, checksum, false).map(drop)
}

/// Check the bytes of an archive-mode FILE object (`.filez`) against its name: header,
/// deflated content of the declared size, checksum. Returns the header and content.
pub fn verify_archive_file(data: &[u8], checksum: &Checksum) -> Result<(FileHeader, Vec<u8>)> {
    check_archive_file(data, checksum, true)
}

/// The check behind both: the content is returned when `keep`, else dropped as it is
/// hashed (large files are never held whole then).
fn check_archive_file(
    data: &[u8],
    checksum: &Checksum,
    keep: bool,
) -> Result<(FileHeader, Vec<u8>)> {
    let bad = |why: String| corrupt(*checksum, ObjectType::File, why);
    let (header, size, off) = FileHeader::parse_archive(data).map_err(|e| bad(e.to_string()))?;
    let mut h = crate::checksum::Hasher::new();
    h.update(&header.to_stream_header());
    let mut content = Vec::new();
    if header.is_symlink() {
        if off != data.len() {
            return Err(bad("trailing data after a symlink header".into()));
        }
    } else if size <= IN_MEMORY_LIMIT {
        content = crate::deflate::decompress(&data[off..], size as usize)
            .map_err(|e| bad(e.to_string()))?;
        h.update(&content);
    } else {
        let mut dec = DeflateDecoder::new(&data[off..]).take(size.saturating_add(1));
        let mut buf = vec![0u8; 1 << 20];
        let mut n_total = 0u64;
        loop {
            let n = dec
                .read(&mut buf)
                .map_err(|e| bad(format!("bad deflate stream: {e}")))?;
            if n == 0 {
                break;
            }
            n_total += n as u64;
            h.update(&buf[..n]);
            if keep {
                content.extend_from_slice(&buf[..n]);
            }
        }
        if n_total != size {
            return Err(bad(format!(
                "content is {n_total} bytes, header says {size}"
            )));
        }
    }
    let actual = h.finish();
    if actual != *checksum {
        return Err(bad(format!("checksum mismatch, actual {actual}")));
    }
    if !keep {
        content = Vec::new();
    }
    Ok((header, content))
}
