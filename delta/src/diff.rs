//! bsdiff, producing the headerless mendsley stream ostree's `B` op applies.
//!
//! This is the algorithm of `bsdiff.c` (mendsley) and of the `bsdiff` crate — the same
//! search and scan loop — with three changes that make it several times faster on the
//! files a distribution update changes (kernels, shared libraries):
//!
//! * the suffix array of the old file is built by libsais (linear time, 4-byte indices)
//!   instead of qsufsort (n log n, 16 bytes per old byte); a suffix array is unique, so
//!   this changes nothing in the output;
//! * the first levels of the binary search are precomputed ([`SearchTree`]);
//! * a bitmap of the old file's 8-byte substrings ([`Gate`]) answers "can a match of 8
//!   bytes or more start here?" with one memory access. Where it cannot (most positions
//!   of a file that changed a lot, such as a recompressed kernel), the ~25 dependent cache
//!   misses of a suffix-array search are skipped and only the match at the current
//!   alignment is measured. A match shorter than 8 bytes never starts a new bsdiff record
//!   except at the current alignment, so patches stay as small (within a few bytes per
//!   file) — but they are no longer byte-identical to the crate's.
//!
//! Files too large for 31-bit indices go to the `bsdiff` crate.

use std::io;

/// bsdiff's `I`: the suffix array of `old` with the empty suffix first (`I[0] = n`).
fn suffix_array(old: &[u8]) -> Vec<i32> {
    let mut sa = vec![0i32; old.len() + 1];
    sa[0] = old.len() as i32;
    if !old.is_empty() {
        libsais::SuffixArrayConstruction::for_text(old)
            .in_borrowed_buffer(&mut sa[1..])
            .single_threaded()
            .run()
            .expect("libsais accepts any byte string shorter than 2^31");
    }
    sa
}

/// Length of the 8-byte substrings [`Gate`] indexes.
const GRAM: usize = 8;

/// A one-sided filter over the old file's `GRAM`-byte substrings: a bitmap of their
/// hashes (about 8 bits per old byte, so ~12 % of the bits are set). A clear bit proves
/// that no match of `GRAM` bytes or more starts at the queried position.
struct Gate {
    bits: Vec<u64>,
    shift: u32,
}

impl Gate {
    fn hash(b: &[u8], shift: u32) -> usize {
        let mut k = [0u8; GRAM];
        k.copy_from_slice(&b[..GRAM]);
        (u64::from_le_bytes(k).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> shift) as usize
    }

    fn new(old: &[u8]) -> Gate {
        let nbits = (old.len().max(64) * 8).next_power_of_two();
        let shift = 64 - nbits.trailing_zeros();
        let mut bits = vec![0u64; nbits / 64];
        for w in old.windows(GRAM) {
            let h = Gate::hash(w, shift);
            bits[h / 64] |= 1 << (h % 64);
        }
        Gate { bits, shift }
    }

    /// May a match of at least `GRAM` bytes start at `new[0]`?
    fn may_match(&self, new: &[u8]) -> bool {
        if new.len() < GRAM {
            return true;
        }
        let h = Gate::hash(new, self.shift);
        self.bits[h / 64] & (1 << (h % 64)) != 0
    }
}

fn matchlen(old: &[u8], new: &[u8]) -> usize {
    old.iter().zip(new).take_while(|(a, b)| a == b).count()
}

/// The first levels of bsdiff's binary search, precomputed: the probe sequence for
/// those levels is the same for every search, so the first 16 bytes of each suffix probed
/// there are stored in breadth-first order. A probe then costs one cache-friendly load
/// instead of two dependent cache misses (`sa[mid]`, then `old[sa[mid]]`); a probe the
/// 16 bytes cannot decide falls back to the full comparison, so results are unchanged.
struct SearchTree {
    /// Node i (1-based, children 2i = "not less", 2i+1 = "less"): the suffix's first
    /// 16 bytes, big-endian, zero-padded.
    keys: Vec<u128>,
    /// How many of those bytes exist (the suffix may be shorter).
    lens: Vec<u8>,
    depth: u32,
}

const KEY: usize = 16;
const MAX_TREE_DEPTH: u32 = 20;

fn key_of(b: &[u8]) -> (u128, u8) {
    let n = b.len().min(KEY);
    let mut k = [0u8; KEY];
    k[..n].copy_from_slice(&b[..n]);
    (u128::from_be_bytes(k), n as u8)
}

impl SearchTree {
    fn new(sa: &[i32], old: &[u8]) -> SearchTree {
        let depth = (usize::BITS - sa.len().leading_zeros())
            .saturating_sub(4)
            .min(MAX_TREE_DEPTH);
        let size = 1usize << depth;
        let mut keys = vec![0u128; size];
        let mut lens = vec![0u8; size];
        let mut stack = vec![(1usize, 0usize, sa.len() - 1)];
        while let Some((node, lo, hi)) = stack.pop() {
            if node >= size || hi - lo < 2 {
                continue;
            }
            let mid = lo + (hi - lo) / 2;
            (keys[node], lens[node]) = key_of(&old[sa[mid] as usize..]);
            stack.push((2 * node, lo, mid));
            stack.push((2 * node + 1, mid, hi));
        }
        SearchTree { keys, lens, depth }
    }

    /// bsdiff.c's `search` (iterative, same probes, same answer).
    fn search(&self, sa: &[i32], old: &[u8], new: &[u8]) -> (usize, usize) {
        let (q, qlen) = key_of(new);
        let (mut lo, mut hi) = (0usize, sa.len() - 1);
        let mut node = 1usize;
        let mut level = 0u32;
        while hi - lo >= 2 {
            let mid = lo + (hi - lo) / 2;
            // Is old[sa[mid]..] < new, comparing min(both lengths) bytes?
            let less = if level < self.depth {
                let (k, klen) = (self.keys[node], self.lens[node]);
                let m = klen.min(qlen) as u32;
                let first_diff = (k ^ q).leading_zeros() / 8;
                if first_diff < m {
                    k < q
                } else if m < KEY as u32 {
                    // One side ended within the key: equal over the compared length.
                    false
                } else {
                    let left = &old[sa[mid] as usize..];
                    let n = left.len().min(new.len());
                    left[..n] < new[..n]
                }
            } else {
                let left = &old[sa[mid] as usize..];
                let n = left.len().min(new.len());
                left[..n] < new[..n]
            };
            node = 2 * node + usize::from(less);
            level += 1;
            if less {
                lo = mid;
            } else {
                hi = mid;
            }
        }
        let x = matchlen(&old[sa[lo] as usize..], new);
        let y = matchlen(&old[sa[hi] as usize..], new);
        if x > y {
            (sa[lo] as usize, x)
        } else {
            (sa[hi] as usize, y)
        }
    }
}

fn offtout(x: i64, out: &mut Vec<u8>) {
    let v = if x >= 0 {
        x as u64
    } else {
        x.unsigned_abs() | 1 << 63
    };
    out.extend_from_slice(&v.to_le_bytes());
}

/// The bsdiff patch turning `old` into `new`.
pub fn bsdiff(old: &[u8], new: &[u8]) -> io::Result<Vec<u8>> {
    let mut out = Vec::with_capacity(new.len() + new.len() / 8 + 64);
    if old.len() >= (i32::MAX - 2) as usize {
        bsdiff::diff(old, new, &mut out)?;
        return Ok(out);
    }
    let sa = suffix_array(old);
    let tree = SearchTree::new(&sa, old);
    let gate = Gate::new(old);
    let (oldsize, newsize) = (old.len() as isize, new.len());
    let mut scan = 0usize;
    let mut len = 0usize;
    let mut pos = 0usize;
    let mut lastscan = 0usize;
    let mut lastpos = 0usize;
    let mut lastoffset = 0isize;
    while scan < newsize {
        let mut oldscore: isize = 0;
        scan += len;
        let mut scsc = scan;
        while scan < newsize {
            if gate.may_match(&new[scan..]) {
                (pos, len) = tree.search(&sa, old, &new[scan..]);
            } else {
                // The best match is shorter than GRAM: it only matters if it is the
                // one at the current alignment (the `len == oldscore` test below).
                let o = scan as isize + lastoffset;
                len = if (0..oldsize).contains(&o) {
                    matchlen(&old[o as usize..], &new[scan..])
                } else {
                    0
                };
                if len > 0 {
                    pos = o as usize;
                }
            }
            while scsc < scan + len {
                let o = scsc as isize + lastoffset;
                if o < oldsize && old[o as usize] == new[scsc] {
                    oldscore += 1;
                }
                scsc += 1;
            }
            if (len as isize == oldscore && len != 0) || len as isize > oldscore + 8 {
                break;
            }
            let o = scan as isize + lastoffset;
            if o < oldsize && old[o as usize] == new[scan] {
                oldscore -= 1;
            }
            scan += 1;
        }
        if len as isize == oldscore && scan != newsize {
            continue;
        }
        let (mut s, mut sf, mut lenf) = (0isize, 0isize, 0usize);
        let mut i = 0usize;
        while lastscan + i < scan && lastpos + i < old.len() {
            if old[lastpos + i] == new[lastscan + i] {
                s += 1;
            }
            i += 1;
            if s * 2 - i as isize > sf * 2 - lenf as isize {
                sf = s;
                lenf = i;
            }
        }
        let mut lenb = 0usize;
        if scan < newsize {
            let (mut s, mut sb) = (0isize, 0isize);
            let mut i = 1usize;
            while scan >= lastscan + i && pos >= i {
                if old[pos - i] == new[scan - i] {
                    s += 1;
                }
                if s * 2 - i as isize > sb * 2 - lenb as isize {
                    sb = s;
                    lenb = i;
                }
                i += 1;
            }
        }
        if lastscan + lenf > scan - lenb {
            let overlap = lastscan + lenf - (scan - lenb);
            let (mut s, mut ss, mut lens) = (0isize, 0isize, 0usize);
            for i in 0..overlap {
                if new[lastscan + lenf - overlap + i] == old[lastpos + lenf - overlap + i] {
                    s += 1;
                }
                if new[scan - lenb + i] == old[pos - lenb + i] {
                    s -= 1;
                }
                if s > ss {
                    ss = s;
                    lens = i + 1;
                }
            }
            lenf = lenf + lens - overlap;
            lenb -= lens;
        }
        offtout(lenf as i64, &mut out);
        offtout((scan - lenb) as i64 - (lastscan + lenf) as i64, &mut out);
        offtout(pos as i64 - lenb as i64 - (lastpos + lenf) as i64, &mut out);
        out.extend(
            new[lastscan..lastscan + lenf]
                .iter()
                .zip(&old[lastpos..lastpos + lenf])
                .map(|(n, o)| n.wrapping_sub(*o)),
        );
        out.extend_from_slice(&new[lastscan + lenf..scan - lenb]);
        lastscan = scan - lenb;
        lastpos = pos - lenb;
        lastoffset = pos as isize - scan as isize;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive_sa(old: &[u8]) -> Vec<i32> {
        let mut v: Vec<i32> = (0..=old.len() as i32).collect();
        v.sort_by(|&a, &b| old[a as usize..].cmp(&old[b as usize..]));
        v
    }

    fn rng(seed: &mut u64) -> u64 {
        *seed ^= *seed << 13;
        *seed ^= *seed >> 7;
        *seed ^= *seed << 17;
        *seed
    }

    #[test]
    fn suffix_array_matches_naive_sort() {
        let mut seed = 0x1234_5678_9abc_def1u64;
        for case in 0..300 {
            let len = (rng(&mut seed) % 200) as usize;
            let alphabet = [1u64, 2, 3, 4, 256][case % 5];
            let data: Vec<u8> = (0..len)
                .map(|_| (rng(&mut seed) % alphabet) as u8)
                .collect();
            assert_eq!(suffix_array(&data), naive_sa(&data), "{data:?}");
        }
        for data in [
            &b""[..],
            b"a",
            b"aaaaaaaa",
            b"abababab",
            b"mississippi",
            b"\0\0\xff\0",
        ] {
            assert_eq!(suffix_array(data), naive_sa(data));
        }
    }

    /// Our patch applies, and compresses (as it will in a part) to no more than the
    /// `bsdiff` crate's patch, give or take a few bytes.
    fn as_good_as_crate(old: &[u8], new: &[u8]) {
        let mut theirs = Vec::new();
        bsdiff::diff(old, new, &mut theirs).unwrap();
        let ours = bsdiff(old, new).unwrap();
        let mut applied = Vec::new();
        crate::bspatch::apply(old, &ours, new.len(), &mut applied).unwrap();
        assert_eq!(applied, new);
        let xz = |p: &[u8]| liblzma::encode_all(p, 6).unwrap().len();
        let (o, t) = (xz(&ours), xz(&theirs));
        assert!(
            o <= t + t / 50 + 32,
            "patch compresses to {o} bytes, crate's to {t}"
        );
    }

    #[test]
    fn patches_apply_and_are_as_small_as_the_bsdiff_crates() {
        let mut seed = 42u64;
        for case in 0..60 {
            let len = (rng(&mut seed) % 5000) as usize;
            let alphabet = [2u64, 16, 256][case % 3];
            let old: Vec<u8> = (0..len)
                .map(|_| (rng(&mut seed) % alphabet) as u8)
                .collect();
            let mut new = old.clone();
            for _ in 0..(rng(&mut seed) % 20) {
                if new.is_empty() {
                    break;
                }
                let at = (rng(&mut seed) as usize) % new.len();
                match rng(&mut seed) % 3 {
                    0 => new[at] = rng(&mut seed) as u8,
                    1 => new.insert(at, rng(&mut seed) as u8),
                    _ => {
                        new.remove(at);
                    }
                }
            }
            as_good_as_crate(&old, &new);
        }
        as_good_as_crate(b"", b"");
        as_good_as_crate(b"", b"new");
        as_good_as_crate(b"old", b"");
        as_good_as_crate(b"short", b"shirt");
        // A structured, binary-like input: shifted addresses in repeated records.
        let old: Vec<u8> = (0..40_000u32)
            .flat_map(|i| (i * 16).to_le_bytes())
            .collect();
        let new: Vec<u8> = (0..40_500u32)
            .flat_map(|i| (i * 16 + 64).to_le_bytes())
            .collect();
        as_good_as_crate(&old, &new);
        // Mostly unrelated data with a few shared stretches (where the gate skips the
        // search): the shared stretches must still be found.
        let mut old: Vec<u8> = (0..200_000).map(|_| rng(&mut seed) as u8).collect();
        let mut new: Vec<u8> = (0..200_000).map(|_| rng(&mut seed) as u8).collect();
        new[50_000..60_000].copy_from_slice(&old[120_000..130_000]);
        new[150_000..150_100].copy_from_slice(&old[10_000..10_100]);
        old[190_000..].fill(0);
        new[190_000..].fill(0);
        as_good_as_crate(&old, &new);
    }
}
