//! gzip on every core, one member (as pigz writes it): the input is cut into 1 MiB blocks,
//! each deflated on its own with the previous 32 KiB as its dictionary and ended with a
//! sync flush, the last one finished; the compressed blocks concatenate into a single
//! deflate stream any gzip reader takes. Block boundaries depend on byte offsets only, so
//! the output is the same whatever the number of threads.

use std::io::{self, Write};

use flate2::{Compress, Compression, Crc, FlushCompress, Status};
use rayon::prelude::*;

const BLOCK: usize = 1 << 20;
/// Blocks compressed at once (memory: about twice this many MiB).
const BATCH: usize = 8;
const WINDOW: usize = 32 << 10;
/// gzip header: no name, mtime 0, no extra flags, OS "unknown" (what flate2 writes).
const HEADER: [u8; 10] = [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff];

pub struct ParGz<W: Write> {
    out: W,
    level: u32,
    blocks: Vec<Vec<u8>>,
    prev_tail: Vec<u8>,
    crc: Crc,
    started: bool,
}

fn deflate(block: &[u8], dict: &[u8], level: u32, finish: bool) -> io::Result<Vec<u8>> {
    let mut c = Compress::new(Compression::new(level), false);
    if !dict.is_empty() {
        c.set_dictionary(dict).map_err(io::Error::other)?;
    }
    let flush = if finish {
        FlushCompress::Finish
    } else {
        FlushCompress::Sync
    };
    let mut out = Vec::with_capacity(block.len() / 2 + 4096);
    loop {
        if out.capacity() - out.len() < 16 << 10 {
            out.reserve(out.capacity().max(64 << 10));
        }
        let consumed = c.total_in() as usize;
        let status = c
            .compress_vec(&block[consumed..], &mut out, flush)
            .map_err(io::Error::other)?;
        let all_in = c.total_in() as usize == block.len();
        let done = if finish {
            status == Status::StreamEnd
        } else {
            // A sync flush is complete when output space is left over.
            all_in && out.len() < out.capacity()
        };
        if done {
            return Ok(out);
        }
    }
}

impl<W: Write> ParGz<W> {
    pub fn new(out: W, level: u32) -> ParGz<W> {
        ParGz {
            out,
            level,
            blocks: vec![Vec::with_capacity(BLOCK)],
            prev_tail: Vec::new(),
            crc: Crc::new(),
            started: false,
        }
    }

    /// Compress the blocks held (all full, or `last`), write them out in order.
    fn drain(&mut self, last: bool) -> io::Result<()> {
        if !self.started {
            self.out.write_all(&HEADER)?;
            self.started = true;
        }
        let mut blocks = std::mem::take(&mut self.blocks);
        if !last {
            // The block being filled stays.
            let filling = blocks.pop().expect("a block being filled");
            self.blocks.push(filling);
        }
        let n = blocks.len();
        let level = self.level;
        let prev_tail = std::mem::take(&mut self.prev_tail);
        let compressed: Vec<io::Result<Vec<u8>>> = (0..n)
            .into_par_iter()
            .map(|i| {
                let dict: &[u8] = if i == 0 {
                    &prev_tail
                } else {
                    let p = &blocks[i - 1];
                    &p[p.len().saturating_sub(WINDOW)..]
                };
                deflate(&blocks[i], dict, level, last && i + 1 == n)
            })
            .collect();
        for (b, c) in blocks.iter().zip(compressed) {
            self.out.write_all(&c?)?;
            self.crc.update(b);
        }
        if let Some(b) = blocks.last() {
            self.prev_tail = b[b.len().saturating_sub(WINDOW)..].to_vec();
        }
        if self.blocks.is_empty() {
            self.blocks.push(Vec::with_capacity(BLOCK));
        }
        Ok(())
    }

    /// End the stream (CRC-32 and length) and return the writer.
    pub fn finish(mut self) -> io::Result<W> {
        self.drain(true)?;
        let crc = self.crc.sum();
        let len = self.crc.amount();
        self.out.write_all(&crc.to_le_bytes())?;
        self.out.write_all(&len.to_le_bytes())?;
        Ok(self.out)
    }
}

impl<W: Write> Write for ParGz<W> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let cur = self.blocks.last_mut().expect("a block being filled");
        let n = data.len().min(BLOCK - cur.len());
        cur.extend_from_slice(&data[..n]);
        if cur.len() == BLOCK {
            self.blocks.push(Vec::with_capacity(BLOCK));
            if self.blocks.len() > BATCH {
                self.drain(false)?;
            }
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn roundtrip(data: &[u8]) {
        let mut w = ParGz::new(Vec::new(), 6);
        // Odd write sizes, to cross block boundaries mid-write.
        for chunk in data.chunks(777_777) {
            w.write_all(chunk).unwrap();
        }
        let gz = w.finish().unwrap();
        let mut back = Vec::new();
        flate2::read::GzDecoder::new(&gz[..])
            .read_to_end(&mut back)
            .unwrap();
        assert_eq!(back.len(), data.len());
        assert!(back == data);
        // One member: a single-member reader sees all of it (checked above), and the
        // same bytes come out with any thread count.
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(1)
            .build()
            .unwrap();
        let again = pool.install(|| {
            let mut w = ParGz::new(Vec::new(), 6);
            w.write_all(data).unwrap();
            w.finish().unwrap()
        });
        assert!(again == gz, "output depends on the thread count");
    }

    #[test]
    fn parallel_gzip_is_one_member_and_deterministic() {
        roundtrip(b"");
        roundtrip(b"hello");
        let mut big = Vec::new();
        let mut x: u32 = 1;
        while big.len() < 20 * BLOCK + 12_345 {
            x = x.wrapping_mul(1_103_515_245).wrapping_add(12_345);
            // Compressible, with repeats across block boundaries.
            big.extend_from_slice(format!("line {} {}\n", x % 1000, big.len() % 7).as_bytes());
        }
        roundtrip(&big);
        roundtrip(&big[..BLOCK]);
        roundtrip(&big[..BLOCK * BATCH]);
    }
}
