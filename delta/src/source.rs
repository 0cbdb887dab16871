//! Opening a delta: by name inside a repository, or by path (a directory holding
//! `superblock`, or the superblock file itself, parts next to it), and reading its parts
//! with their size and checksum checked and their compression undone.

use std::borrow::Cow;
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};

use arbor_repo::{Checksum, DeltaName, Repo};

use crate::budget::{Budget, Reserved};
use crate::error::{DeltaError, Result};
use crate::format::{self, PartHeader, Superblock};

/// Decompressed parts larger than this are refused even when the header allows more:
/// it only guards against decompression bombs.
const MAX_PART_PAYLOAD: u64 = 16 << 30;
/// The memory parts decompressed at the same time may take together, unless the caller
/// says otherwise ([`DeltaSource::with_memory_limit`], `--memory-limit`). A part whose
/// header allows more than this is refused: its delta says it needs more memory than
/// arbor was given.
pub const DEFAULT_MEMORY_LIMIT: u64 = 2 << 30;
/// Superblocks are at most 10 MiB for ostree 2022.7 and 128 MiB from 2023.4.
const MAX_SUPERBLOCK_READ: u64 = 128 << 20;

/// A decompressed part payload, holding its share of the memory budget until dropped.
pub struct Payload<'a> {
    data: Cow<'a, [u8]>,
    _held: Reserved<'a>,
}

impl std::ops::Deref for Payload<'_> {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.data
    }
}

/// A delta whose superblock has been read and parsed.
#[derive(Debug)]
pub struct DeltaSource {
    /// Directory holding the superblock and the part files.
    pub dir: PathBuf,
    pub superblock_path: PathBuf,
    /// SHA-256 of the superblock file, as the summary lists it.
    pub digest: Checksum,
    pub superblock_size: u64,
    pub superblock: Superblock,
    budget: Budget,
}

impl DeltaSource {
    /// Open the delta `name` of `repo`.
    pub fn open_in_repo(repo: &Repo, name: &DeltaName) -> Result<DeltaSource> {
        let path = repo.path().join(name.superblock_key());
        if !path.exists() {
            return Err(DeltaError::NoSuchDelta {
                name: name.to_string(),
                repo: repo.path().to_path_buf(),
            });
        }
        let d = DeltaSource::open(&path)?;
        if d.superblock.name() != *name {
            return Err(DeltaError::Superblock {
                path,
                why: format!("describes delta {}, not {name}", d.superblock.name()),
            });
        }
        Ok(d)
    }

    /// Open a delta directory or superblock file.
    pub fn open(path: &Path) -> Result<DeltaSource> {
        let superblock_path = if path.is_dir() {
            path.join(arbor_repo::layout::SUPERBLOCK)
        } else {
            path.to_path_buf()
        };
        let dir = superblock_path
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("."));
        let data = read_superblock(&superblock_path)?;
        let superblock = Superblock::parse(&data).map_err(|e| DeltaError::Superblock {
            path: superblock_path.clone(),
            why: format!("cannot parse ({} bytes): {e}", data.len()),
        })?;
        Ok(DeltaSource {
            dir,
            digest: Checksum::of(&data),
            superblock_size: data.len() as u64,
            superblock_path,
            superblock,
            budget: Budget::new(DEFAULT_MEMORY_LIMIT),
        })
    }

    /// The same delta with `limit` bytes for the parts decompressed at once.
    pub fn with_memory_limit(self, limit: u64) -> DeltaSource {
        DeltaSource {
            budget: Budget::new(limit.max(1)),
            ..self
        }
    }

    pub fn name(&self) -> DeltaName {
        self.superblock.name()
    }

    fn part_err(&self, index: usize, why: impl Into<String>) -> DeltaError {
        DeltaError::Part {
            delta: self.name().to_string(),
            index,
            why: why.into(),
        }
    }

    /// Whether part `index` lives inside the superblock.
    pub fn is_inline(&self, index: usize) -> bool {
        matches!(self.superblock.inline_part(index), Ok(Some(_)))
    }

    /// The raw part file (compression byte ‖ payload), checked against its header.
    pub fn read_part_file(&self, index: usize) -> Result<Cow<'_, [u8]>> {
        let header = self
            .superblock
            .parts
            .get(index)
            .ok_or_else(|| self.part_err(index, "no such part"))?;
        let data: Cow<'_, [u8]> = match self
            .superblock
            .inline_part(index)
            .map_err(|e| self.part_err(index, e.to_string()))?
        {
            Some(b) => Cow::Borrowed(b),
            None => {
                let path = self.dir.join(index.to_string());
                let f = fs::File::open(&path).map_err(|e| {
                    self.part_err(index, format!("cannot open {}: {e}", path.display()))
                })?;
                let mut buf = Vec::new();
                // Never read more than the header allows (a client's download cap).
                f.take(header.size.saturating_add(1))
                    .read_to_end(&mut buf)
                    .map_err(|e| self.part_err(index, format!("{}: {e}", path.display())))?;
                Cow::Owned(buf)
            }
        };
        check_part_file(header, &data).map_err(|why| self.part_err(index, why))?;
        Ok(data)
    }

    /// The decompressed payload of part `index`, decompressed only once the memory it
    /// may take (what its header allows) is free in the budget; refused when that is
    /// more than the whole budget.
    pub fn read_part_payload(&self, index: usize) -> Result<Payload<'_>> {
        let header = self
            .superblock
            .parts
            .get(index)
            .ok_or_else(|| self.part_err(index, "no such part"))?;
        let limit = payload_limit(header);
        if limit > self.budget.total() {
            return Err(self.part_err(
                index,
                format!(
                    "its header allows it to decompress to {limit} bytes, more than the memory limit of {} bytes (--memory-limit; raise it for a delta you trust)",
                    self.budget.total()
                ),
            ));
        }
        let held = self.budget.reserve(limit);
        let file = self.read_part_file(index)?;
        let out = match file {
            Cow::Borrowed(b) => decompress(b, limit),
            Cow::Owned(v) => decompress(&v, limit).map(|c| Cow::Owned(c.into_owned())),
        };
        Ok(Payload {
            data: out.map_err(|why| self.part_err(index, why))?,
            _held: held,
        })
    }
}

/// A superblock file: regular, at most [`MAX_SUPERBLOCK_READ`] bytes.
fn read_superblock(path: &Path) -> Result<Vec<u8>> {
    let bad = |why: String| DeltaError::Superblock {
        path: path.to_path_buf(),
        why,
    };
    let f = fs::File::open(path).map_err(crate::error::io_err(path))?;
    let meta = f.metadata().map_err(crate::error::io_err(path))?;
    if !meta.is_file() {
        return Err(bad("not a regular file".into()));
    }
    let mut data = Vec::new();
    f.take(MAX_SUPERBLOCK_READ + 1)
        .read_to_end(&mut data)
        .map_err(crate::error::io_err(path))?;
    if data.len() as u64 > MAX_SUPERBLOCK_READ {
        return Err(bad(format!(
            "larger than {MAX_SUPERBLOCK_READ} bytes (ostree's own limit)"
        )));
    }
    Ok(data)
}

fn check_part_file(header: &PartHeader, data: &[u8]) -> std::result::Result<(), String> {
    if header.version > format::PART_VERSION {
        return Err(format!("part version {} is too new", header.version));
    }
    if data.len() as u64 != header.size {
        return Err(format!(
            "size is {} bytes, the superblock says {} (truncated or replaced part)",
            data.len(),
            header.size
        ));
    }
    let actual = Checksum::of(data);
    if actual != header.checksum {
        return Err(format!(
            "checksum mismatch: expected {}, actual {actual}",
            header.checksum
        ));
    }
    Ok(())
}

fn payload_limit(header: &PartHeader) -> u64 {
    let n = header.objects.len() as u64;
    header
        .usize
        .saturating_mul(2)
        .saturating_add(n.saturating_mul(64 << 10))
        .saturating_add(64 << 20)
        .min(MAX_PART_PAYLOAD)
}

/// Undo a part file's compression: `0` = none, `'x'` = xz.
pub fn decompress(file: &[u8], limit: u64) -> std::result::Result<Cow<'_, [u8]>, String> {
    match file.split_first() {
        Some((&format::COMPRESSION_NONE, rest)) => Ok(Cow::Borrowed(rest)),
        Some((&format::COMPRESSION_XZ, rest)) => {
            let stream = liblzma::stream::Stream::new_stream_decoder(u64::MAX, 0)
                .map_err(|e| format!("xz decoder: {e}"))?;
            let mut out = Vec::new();
            liblzma::read::XzDecoder::new_stream(rest, stream)
                .take(limit.saturating_add(1))
                .read_to_end(&mut out)
                .map_err(|e| format!("xz data is corrupt: {e}"))?;
            if out.len() as u64 > limit {
                return Err(format!("decompresses to more than {limit} bytes"));
            }
            Ok(Cow::Owned(out))
        }
        Some((c, _)) => Err(format!("invalid compression type {c:#04x}")),
        None => Err("empty part file".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An xz part that inflates far past what its header allows is stopped at the limit.
    #[test]
    fn xz_bomb_stops_at_the_limit() {
        let mut enc = liblzma::write::XzEncoder::new(vec![format::COMPRESSION_XZ], 6);
        std::io::Write::write_all(&mut enc, &vec![0u8; 64 << 20]).unwrap();
        let bomb = enc.finish().unwrap();
        assert!(bomb.len() < 1 << 20);
        let e = decompress(&bomb, 1 << 20).unwrap_err();
        assert!(e.contains("more than 1048576 bytes"), "{e}");
    }
}
