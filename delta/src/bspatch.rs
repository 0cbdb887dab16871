//! bspatch for the headerless mendsley/bsdiff stream ostree uses (no `BSDIFF40` magic,
//! no bzip2: the delta part's xz replaces it). Every length and offset is checked, so a
//! corrupt patch is an error, never a panic or an out-of-bounds read.
//!
//! ```text
//! repeat until the output has new_size bytes:
//!     x, y, z : 8 bytes each, sign-magnitude little-endian (bit 63 = sign)
//!     x bytes : added bytewise to old[oldpos..]  (old bytes past the end count as 0)
//!     y bytes : copied as is
//!     oldpos += x, then += z (z may be negative)
//! ```

/// Why a patch could not be applied.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("corrupt bsdiff patch: {0}")]
pub struct PatchError(pub &'static str);

/// Decode one 8-byte sign-magnitude integer (`offtin` in bspatch.c).
fn offtin(b: &[u8]) -> i64 {
    let mut buf = [0u8; 8];
    buf.copy_from_slice(&b[..8]);
    let neg = buf[7] & 0x80 != 0;
    buf[7] &= 0x7f;
    let v = i64::from_le_bytes(buf);
    if neg {
        -v
    } else {
        v
    }
}

/// Apply `patch` to `old`, appending exactly `new_size` bytes to `out`. Trailing patch
/// bytes are ignored, as in bspatch.c.
pub fn apply(
    old: &[u8],
    patch: &[u8],
    new_size: usize,
    out: &mut Vec<u8>,
) -> Result<(), PatchError> {
    let start = out.len();
    let end = start
        .checked_add(new_size)
        .ok_or(PatchError("size overflow"))?;
    // Every output byte is a patch byte (added to an old byte, or copied): the patch's
    // length bounds what can be appended, where `new_size` is the part's word.
    out.reserve(new_size.min(patch.len()));
    let mut p = 0usize;
    let mut oldpos: i64 = 0;
    while out.len() < end {
        let ctrl = patch
            .get(p..p + 24)
            .ok_or(PatchError("truncated control block"))?;
        let (x, y, z) = (offtin(&ctrl[0..]), offtin(&ctrl[8..]), offtin(&ctrl[16..]));
        p += 24;
        if x < 0 || y < 0 || x > i64::from(i32::MAX) || y > i64::from(i32::MAX) {
            return Err(PatchError("negative or oversized length"));
        }
        let (x, y) = (x as usize, y as usize);
        if out.len() + x > end {
            return Err(PatchError("diff block runs past the new size"));
        }
        let diff = patch
            .get(p..p + x)
            .ok_or(PatchError("truncated diff block"))?;
        for (i, d) in diff.iter().enumerate() {
            // Saturating: an offset out of i64's range is out of `old` anyway.
            let o = oldpos.saturating_add(i as i64);
            let v = if o >= 0 && (o as u64) < old.len() as u64 {
                d.wrapping_add(old[o as usize])
            } else {
                *d
            };
            out.push(v);
        }
        p += x;
        oldpos = oldpos.saturating_add(x as i64);
        if out.len() + y > end {
            return Err(PatchError("extra block runs past the new size"));
        }
        let extra = patch
            .get(p..p + y)
            .ok_or(PatchError("truncated extra block"))?;
        out.extend_from_slice(extra);
        p += y;
        oldpos = oldpos
            .checked_add(z)
            .ok_or(PatchError("old offset overflow"))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(old: &[u8], new: &[u8]) {
        let mut patch = Vec::new();
        bsdiff::diff(old, new, &mut patch).unwrap();
        let mut out = Vec::new();
        apply(old, &patch, new.len(), &mut out).unwrap();
        assert_eq!(out, new);
        // The crate's own patcher agrees on the stream format.
        let mut theirs = Vec::new();
        bsdiff::patch(old, &mut &patch[..], &mut theirs).unwrap();
        assert_eq!(theirs, new);
    }

    #[test]
    fn applies_bsdiff_crate_output() {
        let old: Vec<u8> = (0..50_000u32).map(|i| (i * 7 % 251) as u8).collect();
        let mut new = old.clone();
        new[100] ^= 1;
        new.splice(2000..2000, b"inserted".iter().copied());
        new.truncate(40_000);
        round_trip(&old, &new);
        round_trip(b"abc", b"");
        round_trip(b"abc", b"abcdef");
        round_trip(b"x", &old);
    }

    #[test]
    fn spec_minimal_patch() {
        // One record: x = min(old, new) diff bytes, y = rest as extra, z = 0 (§5.7.1).
        let old = b"hello";
        let new = b"jello world";
        let mut patch = Vec::new();
        patch.extend_from_slice(&5u64.to_le_bytes());
        patch.extend_from_slice(&6u64.to_le_bytes());
        patch.extend_from_slice(&0u64.to_le_bytes());
        patch.extend(new[..5].iter().zip(old).map(|(n, o)| n.wrapping_sub(*o)));
        patch.extend_from_slice(&new[5..]);
        let mut out = Vec::new();
        apply(old, &patch, new.len(), &mut out).unwrap();
        assert_eq!(out, new);
        assert_eq!(offtin(&(5u64 | 1 << 63).to_le_bytes()), -5);
    }

    /// Offsets at the edge of i64 (a crafted patch) neither overflow nor read out of
    /// bounds: the old byte counts as 0.
    #[test]
    fn extreme_offsets_do_not_overflow() {
        let mut patch = Vec::new();
        for (x, y, z) in [(0u64, 0u64, i64::MAX as u64), (1, 0, 0)] {
            patch.extend_from_slice(&x.to_le_bytes());
            patch.extend_from_slice(&y.to_le_bytes());
            patch.extend_from_slice(&z.to_le_bytes());
            patch.extend(std::iter::repeat_n(7u8, x as usize));
        }
        let mut out = Vec::new();
        apply(b"abc", &patch, 1, &mut out).unwrap();
        assert_eq!(out, [7]);
    }

    #[test]
    fn corrupt_patches_are_errors() {
        let old = b"0123456789";
        let mut out = Vec::new();
        assert!(apply(old, b"", 5, &mut out).is_err());
        assert!(apply(old, &[0u8; 23], 5, &mut out).is_err());
        let mut p = Vec::new();
        p.extend_from_slice(&100u64.to_le_bytes());
        p.extend_from_slice(&0u64.to_le_bytes());
        p.extend_from_slice(&0u64.to_le_bytes());
        assert!(apply(old, &p, 5, &mut Vec::new()).is_err());
        let mut p = Vec::new();
        p.extend_from_slice(&(1u64 << 63 | 1).to_le_bytes());
        p.extend_from_slice(&[0; 16]);
        assert!(apply(old, &p, 5, &mut Vec::new()).is_err());
        // zero-progress records must not loop forever: they run out of patch bytes
        assert!(apply(old, &[0u8; 48], 5, &mut Vec::new()).is_err());
        apply(old, b"", 0, &mut Vec::new()).unwrap();
    }

    /// fuzz target delta_part, a `B` op on an object declared huge: the patcher
    /// reserved min(new_size, 1 GiB) before reading the patch (1 GiB for 24 bytes).
    #[test]
    fn reserves_no_more_than_the_patch_can_write() {
        let mut out = Vec::new();
        let patch = [0u8; 24]; // one control block of zero lengths, then nothing
        assert!(apply(b"old", &patch, 1 << 30, &mut out).is_err());
        assert!(out.capacity() <= 64, "reserved {} bytes", out.capacity());
    }
}
