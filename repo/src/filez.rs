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

/// [`verify_archive_file`] without keeping the content: inflated in 1 MiB steps into the
/// hash, so memory stays small whatever its size (a 1 GiB sparse file is a few MB stored).
pub fn verify_archive_file_streaming(data: &[u8], checksum: &Checksum) -> Result<()> {
    verify_archive_file_reader(data, checksum)
}

/// The most a `.filez` header (mode, owners, symlink target, xattrs) may take.
const MAX_HEADER: usize = 1 << 20;

/// [`verify_archive_file_streaming`] over a reader (a spooled download, a file in the
/// repository): the header read to a bound, the content inflated and hashed in 1 MiB
/// steps — memory stays small whatever the object's size.
pub fn verify_archive_file_reader(r: impl Read, checksum: &Checksum) -> Result<()> {
    let bad = |why: String| corrupt(*checksum, ObjectType::File, why);
    let mut r = std::io::BufReader::new(r);
    let mut head = vec![0u8; 8];
    r.read_exact(&mut head)
        .map_err(|e| bad(format!("truncated header: {e}")))?;
    let len = u32::from_be_bytes([head[0], head[1], head[2], head[3]]) as usize;
    if len > MAX_HEADER {
        return Err(bad(format!("header of {len} bytes (at most {MAX_HEADER})")));
    }
    head.resize(8 + len, 0);
    r.read_exact(&mut head[8..])
        .map_err(|e| bad(format!("truncated header: {e}")))?;
    let (header, size, _) = FileHeader::parse_archive(&head).map_err(|e| bad(e.to_string()))?;
    let mut h = crate::checksum::Hasher::new();
    h.update(&header.to_stream_header());
    if header.is_symlink() {
        let mut rest = [0u8; 1];
        if r.read(&mut rest).map_err(|e| bad(e.to_string()))? != 0 {
            return Err(bad("trailing data after a symlink header".into()));
        }
    } else {
        inflate_hashed(r, size, &mut h, None).map_err(bad)?;
    }
    let actual = h.finish();
    if actual != *checksum {
        return Err(bad(format!("checksum mismatch, actual {actual}")));
    }
    Ok(())
}

/// Check the bytes of an archive-mode FILE object (`.filez`) against its name: header,
/// deflated content of the declared size, checksum. Returns the header and content.
pub fn verify_archive_file(data: &[u8], checksum: &Checksum) -> Result<(FileHeader, Vec<u8>)> {
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
        inflate_hashed(&data[off..], size, &mut h, Some(&mut content)).map_err(bad)?;
    }
    let actual = h.finish();
    if actual != *checksum {
        return Err(bad(format!("checksum mismatch, actual {actual}")));
    }
    Ok((header, content))
}

/// Inflate exactly `size` bytes of content from the raw deflate stream `r` into the hash
/// (and into `keep`, when given), in 1 MiB steps.
fn inflate_hashed(
    r: impl Read,
    size: u64,
    h: &mut crate::checksum::Hasher,
    mut keep: Option<&mut Vec<u8>>,
) -> std::result::Result<(), String> {
    let mut dec = DeflateDecoder::new(r).take(size.saturating_add(1));
    let mut buf = vec![0u8; 1 << 20];
    let mut n_total = 0u64;
    loop {
        let n = dec
            .read(&mut buf)
            .map_err(|e| format!("bad deflate stream: {e}"))?;
        if n == 0 {
            break;
        }
        n_total += n as u64;
        h.update(&buf[..n]);
        if let Some(k) = keep.as_deref_mut() {
            k.extend_from_slice(&buf[..n]);
        }
    }
    if n_total != size {
        return Err(format!("content is {n_total} bytes, header says {size}"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::objects::Xattrs;
    use crate::store::Repo;

    /// The reader-based check agrees with the in-memory ones on good objects (small,
    /// large, a symlink) and refuses what they refuse: a flipped content byte, a
    /// truncation, a header claiming more content than there is, trailing symlink data.
    #[test]
    fn reader_check_agrees_with_the_slice_checks() {
        let dir = tempfile::tempdir().unwrap();
        let repo = Repo::init(&dir.path().join("r")).unwrap();
        let file = |mode: u32, target: &str, content: &[u8]| {
            let h = FileHeader {
                uid: 0,
                gid: 0,
                mode,
                symlink_target: target.into(),
                xattrs: Xattrs::default(),
            };
            let c = h.checksum(content);
            repo.write_file_object(&c, &h, content).unwrap();
            let key = crate::layout::object_key(&c, ObjectType::File);
            (c, std::fs::read(repo.path().join(key)).unwrap())
        };
        let big: Vec<u8> = (0..3_000_000u32).map(|i| (i * 7 % 251) as u8).collect();
        for (c, data) in [
            file(0o100644, "", b"hello"),
            file(0o100644, "", &big),
            file(0o120777, "/target", b""),
        ] {
            verify_archive_file_reader(&data[..], &c).unwrap();
            verify_archive_file_streaming(&data, &c).unwrap();
            let mut flipped = data.clone();
            let last = flipped.len() - 1;
            flipped[last] ^= 1;
            assert!(verify_archive_file_reader(&flipped[..], &c).is_err());
            assert!(verify_archive_file_reader(&data[..data.len() - 1], &c).is_err());
            // A symlink's object ends with its header.
            if data.len() < 200 && c == file(0o120777, "/target", b"").0 {
                let mut longer = data.clone();
                longer.push(0);
                assert!(verify_archive_file_reader(&longer[..], &c).is_err());
            }
        }
        let (c, data) = file(0o100644, "", b"hello");
        let mut huge_header = data.clone();
        huge_header[..4].copy_from_slice(&(64u32 << 20).to_be_bytes());
        let e = verify_archive_file_reader(&huge_header[..], &c).unwrap_err();
        assert!(e.to_string().contains("at most"), "{e}");
    }
}
