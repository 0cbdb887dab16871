//! An object's bytes on their way from a source to a destination: in memory when small,
//! in a file when large (an unlinked temporary file for a download, the repository's
//! own file for a local source), so that no object — however large an honest tree or a
//! hostile server makes it — is held whole in memory. Verification and upload read a
//! spooled body in bounded steps.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};

use arbor_repo::layout;
use arbor_repo::objects::ObjectType;

/// Bodies up to this size stay in memory.
pub const SPOOL_THRESHOLD: u64 = 4 << 20;
/// The step in which a spooled body is uploaded (a multipart upload's part size; S3's
/// minimum is 5 MiB).
pub const UPLOAD_CHUNK: usize = 8 << 20;
/// ostree 2022.7's `OSTREE_MAX_METADATA_SIZE`: no summary, superblock, delta index or
/// metadata object larger than this is fetched (clients refuse them too).
pub const MAX_METADATA: u64 = 10 << 20;
/// Ref files are 65 bytes; `config` a few lines.
pub const MAX_SMALL: u64 = 64 << 10;
/// A content object or delta part: spooled to disk, so bounded by this, not memory.
pub const MAX_OBJECT: u64 = 64 << 30;

/// The most a GET of `key` may return, by what the key holds.
pub fn max_size(key: &str) -> u64 {
    if key.starts_with(layout::REFS_PREFIX) || key == layout::CONFIG {
        return MAX_SMALL;
    }
    if let Some((_, ty)) = layout::parse_object_key(key) {
        return if ty == ObjectType::File {
            MAX_OBJECT
        } else {
            MAX_METADATA
        };
    }
    match layout::DeltaName::parse_key(key) {
        Some((_, layout::SUPERBLOCK)) => MAX_METADATA,
        Some(_) => MAX_OBJECT,
        None => MAX_METADATA,
    }
}

/// A body: bytes, or a file positioned anywhere holding `len` bytes.
#[derive(Debug)]
pub enum Body {
    Mem(Vec<u8>),
    File { file: File, len: u64 },
}

impl Body {
    pub fn len(&self) -> u64 {
        match self {
            Body::Mem(d) => d.len() as u64,
            Body::File { len, .. } => *len,
        }
    }

    /// A reader over the whole body, from its start.
    pub fn reader(&mut self) -> std::io::Result<Box<dyn Read + '_>> {
        match self {
            Body::Mem(d) => Ok(Box::new(&d[..])),
            Body::File { file, len } => {
                file.seek(SeekFrom::Start(0))?;
                Ok(Box::new(Read::by_ref(file).take(*len)))
            }
        }
    }

    /// The bytes, for a body known to be small (metadata).
    pub fn into_vec(mut self) -> std::io::Result<Vec<u8>> {
        match self {
            Body::Mem(d) => Ok(d),
            Body::File { .. } => {
                let mut out = Vec::with_capacity(self.len() as usize);
                self.reader()?.read_to_end(&mut out)?;
                Ok(out)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arbor_repo::Checksum;

    #[test]
    fn limits_by_key() {
        let c = Checksum::of(b"x");
        assert_eq!(max_size(&layout::ref_key("a/b")), MAX_SMALL);
        assert_eq!(max_size(layout::SUMMARY), MAX_METADATA);
        assert_eq!(
            max_size(&layout::object_key(&c, ObjectType::DirTree)),
            MAX_METADATA
        );
        assert_eq!(
            max_size(&layout::object_key(&c, ObjectType::File)),
            MAX_OBJECT
        );
        let name = layout::DeltaName { from: None, to: c };
        assert_eq!(max_size(&name.superblock_key()), MAX_METADATA);
        assert_eq!(max_size(&name.part_key(0)), MAX_OBJECT);
    }
}
