//! One decompression sniffer for everything arbor reads compressed (RPM payloads,
//! repodata): the format is told by the first bytes, peeked properly — `fill_buf` may
//! return fewer bytes than a magic number is long, so the head is read in full first and
//! put back in front of the stream.
//!
//! ```text
//! 1f 8b             gzip (multi-member)     fd 37 7a 58 5a 00   xz (multi-stream)
//! 28 b5 2f fd       zstd                    5d 00 00            lzma (legacy .lzma)
//! 42 5a 68 "BZh"    bzip2 (refused)         anything else       as is (the caller decides)
//! ```

use std::io::{self, BufRead, Cursor, Read};

/// What the first bytes of a stream say it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    Gzip,
    Xz,
    Zstd,
    Lzma,
    Bzip2,
    /// No known compression: the stream as it is.
    None,
}

/// The longest magic number looked at.
const HEAD: usize = 6;

/// A stream with its compression undone, and its first bytes (for error messages).
pub struct Opened<'a> {
    pub compression: Compression,
    /// Up to six bytes the stream (compressed) starts with; empty for an empty stream.
    pub head: Vec<u8>,
    pub reader: Box<dyn Read + Send + 'a>,
}

/// Peek at `r`'s first bytes and wrap it in the decoder they name (bzip2 is an error:
/// nothing arbor reads uses it, and the decoder is not built in).
pub fn open<'a>(mut r: impl BufRead + Send + 'a) -> io::Result<Opened<'a>> {
    let mut head = Vec::with_capacity(HEAD);
    while head.len() < HEAD {
        let buf = r.fill_buf()?;
        if buf.is_empty() {
            break;
        }
        let n = buf.len().min(HEAD - head.len());
        head.extend_from_slice(&buf[..n]);
        r.consume(n);
    }
    let compression = match head.as_slice() {
        [0x1f, 0x8b, ..] => Compression::Gzip,
        [0xfd, b'7', b'z', b'X', b'Z', 0] => Compression::Xz,
        [0x28, 0xb5, 0x2f, 0xfd, ..] => Compression::Zstd,
        [0x5d, 0, 0, ..] => Compression::Lzma,
        [b'B', b'Z', b'h', ..] => Compression::Bzip2,
        _ => Compression::None,
    };
    let whole = Cursor::new(head.clone()).chain(r);
    let reader: Box<dyn Read + Send + 'a> = match compression {
        Compression::Gzip => Box::new(flate2::bufread::MultiGzDecoder::new(whole)),
        Compression::Xz => Box::new(liblzma::bufread::XzDecoder::new_multi_decoder(whole)),
        Compression::Zstd => Box::new(zstd::stream::read::Decoder::with_buffer(whole)?),
        Compression::Lzma => {
            let stream = liblzma::stream::Stream::new_lzma_decoder(u64::MAX)
                .map_err(|e| io::Error::other(format!("lzma: {e}")))?;
            Box::new(liblzma::bufread::XzDecoder::new_stream(whole, stream))
        }
        Compression::Bzip2 => return Err(io::Error::other("bzip2 compression is not supported")),
        Compression::None => Box::new(whole),
    };
    Ok(Opened {
        compression,
        head,
        reader,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    /// A reader that hands out one byte per `fill_buf`, as a pipe may.
    struct Trickle(Vec<u8>, usize);
    impl Read for Trickle {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let n = self.fill_buf()?.len().min(buf.len());
            buf[..n].copy_from_slice(&self.0[self.1..self.1 + n]);
            self.consume(n);
            Ok(n)
        }
    }
    impl BufRead for Trickle {
        fn fill_buf(&mut self) -> io::Result<&[u8]> {
            Ok(&self.0[self.1..(self.1 + 1).min(self.0.len())])
        }
        fn consume(&mut self, n: usize) {
            self.1 += n;
        }
    }

    #[test]
    fn sniffs_even_one_byte_at_a_time() {
        let plain = b"hello, archive".to_vec();
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&plain).unwrap();
        let gz = gz.finish().unwrap();
        let zst = zstd::encode_all(&plain[..], 1).unwrap();
        let mut xz = liblzma::write::XzEncoder::new(Vec::new(), 1);
        xz.write_all(&plain).unwrap();
        let xz = xz.finish().unwrap();
        for (data, kind) in [
            (gz, Compression::Gzip),
            (zst, Compression::Zstd),
            (xz, Compression::Xz),
            (plain.clone(), Compression::None),
        ] {
            let mut o = open(Trickle(data, 0)).unwrap();
            assert_eq!(o.compression, kind);
            let mut out = Vec::new();
            o.reader.read_to_end(&mut out).unwrap();
            assert_eq!(out, plain, "{kind:?}");
        }
        assert!(open(&b"BZh91AY"[..]).is_err());
        let empty = open(&b""[..]).unwrap();
        assert!(empty.head.is_empty() && empty.compression == Compression::None);
    }
}
