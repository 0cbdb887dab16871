//! The payload of an RPM: a compressed cpio archive, read entry by entry.
//!
//! ```text
//! newc (070701/070702):  magic[6] ‖ 13 × 8 hex digits (ino mode uid gid nlink mtime
//!                        filesize devmajor devminor rdevmajor rdevminor namesize check)
//!                        ‖ name NUL ‖ pad to 4 ‖ data ‖ pad to 4
//! stripped (07070X):     magic[6] ‖ 8 hex digits (index into the header's file arrays)
//!                        ‖ pad to 4 ‖ data (size from the header) ‖ pad to 4
//! end:                   a newc entry named TRAILER!!!
//! ```
//!
//! Only names (or indexes) and sizes are taken from the archive; every other attribute
//! comes from the RPM header. Entries are matched to header files through a hash map,
//! where the `rpm` crate's streaming reader scans the file list once per entry
//! (quadratic in the number of files).

use crate::decompress::Compression;
use std::io::{self, BufRead, Read};

/// A payload entry header.
#[derive(Debug, PartialEq, Eq)]
pub enum Header {
    /// newc: the archive path (`./usr/bin/x`) and the data size.
    Named { name: String, size: u64 },
    /// stripped: the header index; the caller supplies the size ([`Archive::begin_data`]).
    Indexed { index: u32 },
}

/// Longest entry name accepted (Linux PATH_MAX is 4096).
const MAX_NAME: usize = 64 << 10;

/// Entries of a decompressed cpio stream.
pub struct Archive<'a> {
    r: Box<dyn Read + Send + 'a>,
    /// Data bytes of the current entry not read yet.
    remaining: u64,
    /// Padding after the current entry's data.
    pad: u64,
    done: bool,
}

/// Wrap `r` (positioned at the payload) in the decompressor its magic bytes name; an
/// uncompressed payload must start as a cpio archive does.
pub fn decompress<'a>(r: impl BufRead + Send + 'a) -> Result<Box<dyn Read + Send + 'a>, String> {
    let o = crate::decompress::open(r).map_err(|e| e.to_string())?;
    match (o.compression, o.head.as_slice()) {
        (Compression::None, []) => Err("the payload is empty".into()),
        (Compression::None, [b'0', b'7', b'0', b'7', ..]) => Ok(o.reader),
        (Compression::None, head) => Err(format!(
            "unknown payload compression (starts with {head:02x?})"
        )),
        _ => Ok(o.reader),
    }
}

fn pad4(n: u64) -> u64 {
    (4 - n % 4) % 4
}

fn eof_is_truncation(e: io::Error) -> String {
    if e.kind() == io::ErrorKind::UnexpectedEof {
        "the payload is truncated".into()
    } else {
        e.to_string()
    }
}

impl<'a> Archive<'a> {
    pub fn new(r: Box<dyn Read + Send + 'a>) -> Archive<'a> {
        Archive {
            r,
            remaining: 0,
            pad: 0,
            done: false,
        }
    }

    /// The next entry, or `None` after the trailer. Unread data of the previous entry
    /// is skipped.
    pub fn next_header(&mut self) -> Result<Option<Header>, String> {
        if self.done {
            return Ok(None);
        }
        let skip = self.remaining + self.pad;
        let skipped = io::copy(&mut self.r.by_ref().take(skip), &mut io::sink())
            .map_err(eof_is_truncation)?;
        if skipped != skip {
            return Err("the payload is truncated".into());
        }
        self.remaining = 0;
        self.pad = 0;
        let mut magic = [0u8; 6];
        self.r.read_exact(&mut magic).map_err(eof_is_truncation)?;
        match &magic {
            b"070701" | b"070702" => {
                let mut fields = [0u8; 13 * 8];
                self.r.read_exact(&mut fields).map_err(eof_is_truncation)?;
                let field = |i: usize| hex(&fields[i * 8..i * 8 + 8]);
                let size = u64::from(field(6)?);
                let namesize = field(11)? as usize;
                if namesize == 0 || namesize > MAX_NAME {
                    return Err(format!("cpio entry name size {namesize} out of range"));
                }
                let mut name = vec![0u8; namesize];
                self.r.read_exact(&mut name).map_err(eof_is_truncation)?;
                let header_pad = pad4(110 + namesize as u64) as usize;
                self.r
                    .read_exact(&mut [0u8; 3][..header_pad])
                    .map_err(eof_is_truncation)?;
                while name.last() == Some(&0) {
                    name.pop();
                }
                let name = String::from_utf8(name)
                    .map_err(|e| format!("cpio entry name is not UTF-8: {:?}", e.as_bytes()))?;
                if name == "TRAILER!!!" {
                    self.done = true;
                    return Ok(None);
                }
                self.begin_data(size);
                Ok(Some(Header::Named { name, size }))
            }
            b"07070X" => {
                let mut index = [0u8; 8 + 2];
                self.r.read_exact(&mut index).map_err(eof_is_truncation)?;
                Ok(Some(Header::Indexed {
                    index: hex(&index[..8])?,
                }))
            }
            other => Err(format!(
                "bad cpio magic {:?}",
                String::from_utf8_lossy(other)
            )),
        }
    }

    /// Declare the data size of the current (stripped) entry.
    pub fn begin_data(&mut self, size: u64) {
        self.remaining = size;
        self.pad = pad4(size);
    }
}

/// Reads the current entry's data, then EOF.
impl Read for Archive<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.remaining == 0 {
            return Ok(0);
        }
        let want = buf
            .len()
            .min(self.remaining.min(usize::MAX as u64) as usize);
        let n = self.r.read(&mut buf[..want])?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the payload is truncated",
            ));
        }
        self.remaining -= n as u64;
        Ok(n)
    }
}

fn hex(field: &[u8]) -> Result<u32, String> {
    std::str::from_utf8(field)
        .ok()
        .and_then(|s| u32::from_str_radix(s, 16).ok())
        .ok_or_else(|| format!("bad cpio header field {:?}", String::from_utf8_lossy(field)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn newc(name: &str, data: &[u8]) -> Vec<u8> {
        let namesize = name.len() + 1;
        let mut out =
            format!(
            "070701{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}",
            1, 0o100644, 0, 0, 1, 0, data.len(), 0, 0, 0, 0, namesize, 0
        )
            .into_bytes();
        out.extend_from_slice(name.as_bytes());
        out.push(0);
        out.resize(out.len() + pad4(110 + namesize as u64) as usize, 0);
        out.extend_from_slice(data);
        out.resize(out.len() + pad4(data.len() as u64) as usize, 0);
        out
    }

    #[test]
    fn reads_entries_and_refuses_garbage() {
        let mut a = newc("./a", b"hello");
        a.extend(b"07070X00000003\0\0abc\0");
        a.extend(newc("./b", b""));
        a.extend(newc("TRAILER!!!", b""));
        let mut ar = Archive::new(Box::new(&a[..]));
        let Some(Header::Named { name, size: 5 }) = ar.next_header().unwrap() else {
            panic!()
        };
        assert_eq!(name, "./a");
        let mut s = String::new();
        ar.read_to_string(&mut s).unwrap();
        assert_eq!(s, "hello");
        assert_eq!(
            ar.next_header().unwrap(),
            Some(Header::Indexed { index: 3 })
        );
        ar.begin_data(3);
        // Not reading the data: next_header skips it.
        assert!(matches!(
            ar.next_header().unwrap(),
            Some(Header::Named { size: 0, .. })
        ));
        assert_eq!(ar.next_header().unwrap(), None);
        assert_eq!(ar.next_header().unwrap(), None);

        for cut in [3, 50, 112, a.len() / 2, a.len() - 10] {
            let mut ar = Archive::new(Box::new(&a[..cut]));
            let mut err = None;
            for _ in 0..5 {
                match ar.next_header() {
                    Ok(Some(_)) => {
                        let _ = io::copy(&mut ar, &mut io::sink());
                    }
                    Ok(None) => break,
                    Err(e) => {
                        err = Some(e);
                        break;
                    }
                }
            }
            assert!(err.is_some(), "cut at {cut} not detected");
        }
        let mut garbage = newc("./a", b"x");
        garbage[3] = b'X';
        assert!(Archive::new(Box::new(&garbage[..])).next_header().is_err());
        assert!(decompress(&b"BZh91AY"[..]).is_err());
        assert!(decompress(&b"PK\x03\x04"[..]).is_err());
        assert!(decompress(&b""[..]).is_err());
    }
}
