//! bsdiff, producing the headerless mendsley stream ostree's `B` op applies.
//!
//! This is the algorithm of `bsdiff.c` (mendsley) and of the `bsdiff` crate — the same
//! search and scan loop, so the patch bytes are identical to `bsdiff::diff`'s (the
//! tests compare them) — with one change: the suffix array of the old file is built
//! with SA-IS (linear time, 4-byte indices) instead of qsufsort (n log n, 16 bytes per
//! old byte). A suffix array is unique, so the output cannot differ; the sort was ~60 %
//! of the crate's time and most of its memory. Files too large for 32-bit indices go
//! to the crate.

use std::io;

const EMPTY: u32 = u32::MAX;

/// Suffix array of `s` (symbols < `k`) whose last symbol is a unique minimum
/// (the sentinel): SA-IS (Nong, Zhang & Chan 2009).
fn sais(s: &[u32], k: usize) -> Vec<u32> {
    let n = s.len();
    if n == 1 {
        return vec![0];
    }
    // S-type (true) / L-type (false); the sentinel is S.
    let mut t = vec![false; n];
    t[n - 1] = true;
    for i in (0..n - 1).rev() {
        t[i] = s[i] < s[i + 1] || (s[i] == s[i + 1] && t[i + 1]);
    }
    let is_lms = |i: usize| i > 0 && t[i] && !t[i - 1];
    let mut counts = vec![0u32; k];
    for &c in s {
        counts[c as usize] += 1;
    }
    let bucket_ends = || {
        let mut sum = 0u32;
        counts
            .iter()
            .map(|c| {
                sum += c;
                sum
            })
            .collect::<Vec<u32>>()
    };
    let bucket_starts = || {
        let mut sum = 0u32;
        counts
            .iter()
            .map(|c| {
                let start = sum;
                sum += c;
                start
            })
            .collect::<Vec<u32>>()
    };
    let induce = |sa: &mut [u32]| {
        let mut starts = bucket_starts();
        for i in 0..n {
            let j = sa[i];
            if j != EMPTY && j > 0 && !t[j as usize - 1] {
                let c = s[j as usize - 1] as usize;
                sa[starts[c] as usize] = j - 1;
                starts[c] += 1;
            }
        }
        let mut ends = bucket_ends();
        for i in (0..n).rev() {
            let j = sa[i];
            if j != EMPTY && j > 0 && t[j as usize - 1] {
                let c = s[j as usize - 1] as usize;
                ends[c] -= 1;
                sa[ends[c] as usize] = j - 1;
            }
        }
    };

    // 1. Sort the LMS substrings.
    let mut sa = vec![EMPTY; n];
    let mut ends = bucket_ends();
    for (i, &c) in s.iter().enumerate().skip(1) {
        if is_lms(i) {
            ends[c as usize] -= 1;
            sa[ends[c as usize] as usize] = i as u32;
        }
    }
    induce(&mut sa);

    // 2. Name them; equal substrings get equal names.
    let mut n1 = 0usize;
    for i in 0..n {
        if is_lms(sa[i] as usize) {
            sa[n1] = sa[i];
            n1 += 1;
        }
    }
    for x in &mut sa[n1..] {
        *x = EMPTY;
    }
    let lms_equal = |a: usize, b: usize| -> bool {
        if a == n - 1 || b == n - 1 {
            return a == b;
        }
        let mut d = 0;
        loop {
            if s[a + d] != s[b + d] || t[a + d] != t[b + d] {
                return false;
            }
            if d > 0 && (is_lms(a + d) || is_lms(b + d)) {
                return is_lms(a + d) && is_lms(b + d);
            }
            d += 1;
        }
    };
    let mut name = 0u32;
    let mut prev: Option<usize> = None;
    for i in 0..n1 {
        let pos = sa[i] as usize;
        if prev.is_none_or(|p| !lms_equal(p, pos)) {
            name += 1;
            prev = Some(pos);
        }
        sa[n1 + pos / 2] = name - 1;
    }
    let mut s1 = Vec::with_capacity(n1);
    let mut p1 = Vec::with_capacity(n1);
    for &v in &sa[n1..] {
        if v != EMPTY {
            s1.push(v);
        }
    }
    for i in 1..n {
        if is_lms(i) {
            p1.push(i as u32);
        }
    }

    // 3. Sort the LMS suffixes (recursively if names repeat), then induce the rest.
    let sa1 = if (name as usize) < n1 {
        sais(&s1, name as usize)
    } else {
        let mut sa1 = vec![0u32; n1];
        for (i, &c) in s1.iter().enumerate() {
            sa1[c as usize] = i as u32;
        }
        sa1
    };
    drop(s1);
    for x in sa.iter_mut() {
        *x = EMPTY;
    }
    let mut ends = bucket_ends();
    for i in (0..n1).rev() {
        let j = p1[sa1[i] as usize];
        let c = s[j as usize] as usize;
        ends[c] -= 1;
        sa[ends[c] as usize] = j;
    }
    induce(&mut sa);
    sa
}

/// bsdiff's `I`: the suffix array of `old` with the empty suffix first (`I[0] = n`).
fn suffix_array(old: &[u8]) -> Vec<u32> {
    // Shift bytes up by one and append the sentinel 0: the sentinel suffix is the
    // empty suffix of `old`, which sorts first.
    let mut s: Vec<u32> = Vec::with_capacity(old.len() + 1);
    s.extend(old.iter().map(|&b| u32::from(b) + 1));
    s.push(0);
    let mut sa = sais(&s, 257);
    debug_assert_eq!(sa[0] as usize, old.len());
    sa.shrink_to_fit();
    sa
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
    fn new(sa: &[u32], old: &[u8]) -> SearchTree {
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
    fn search(&self, sa: &[u32], old: &[u8], new: &[u8]) -> (usize, usize) {
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
    if old.len() >= (u32::MAX - 2) as usize {
        bsdiff::diff(old, new, &mut out)?;
        return Ok(out);
    }
    let sa = suffix_array(old);
    let tree = SearchTree::new(&sa, old);
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
            (pos, len) = tree.search(&sa, old, &new[scan..]);
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

    fn naive_sa(old: &[u8]) -> Vec<u32> {
        let mut v: Vec<u32> = (0..=old.len() as u32).collect();
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

    fn same_as_crate(old: &[u8], new: &[u8]) {
        let mut theirs = Vec::new();
        bsdiff::diff(old, new, &mut theirs).unwrap();
        let ours = bsdiff(old, new).unwrap();
        assert!(ours == theirs, "patch differs from the bsdiff crate's");
        let mut applied = Vec::new();
        crate::bspatch::apply(old, &ours, new.len(), &mut applied).unwrap();
        assert_eq!(applied, new);
    }

    #[test]
    fn patches_are_byte_identical_to_the_bsdiff_crate() {
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
            same_as_crate(&old, &new);
        }
        same_as_crate(b"", b"");
        same_as_crate(b"", b"new");
        same_as_crate(b"old", b"");
        // A structured, binary-like input: shifted addresses in repeated records.
        let old: Vec<u8> = (0..40_000u32)
            .flat_map(|i| (i * 16).to_le_bytes())
            .collect();
        let new: Vec<u8> = (0..40_500u32)
            .flat_map(|i| (i * 16 + 64).to_le_bytes())
            .collect();
        same_as_crate(&old, &new);
    }
}
