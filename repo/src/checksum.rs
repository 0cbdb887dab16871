//! SHA-256 object checksums: 32 raw bytes, 64 lowercase hex characters as text, and
//! OSTree's "modified base64" (used in static-delta paths).

use std::fmt;
use std::str::FromStr;

use sha2::{Digest, Sha256};

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Checksum(pub [u8; 32]);

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid checksum {0:?}: expected 64 lowercase hex characters")]
pub struct InvalidChecksum(pub String);

/// At most the first 80 characters of hostile text, for an error message.
pub fn quote_prefix(s: &str) -> String {
    const MAX: usize = 80;
    match s.char_indices().nth(MAX) {
        Some((i, _)) => format!("{}… ({} bytes)", &s[..i], s.len()),
        None => s.to_string(),
    }
}

impl Checksum {
    pub fn of(data: &[u8]) -> Checksum {
        Checksum(Sha256::digest(data).into())
    }

    pub fn from_slice(b: &[u8]) -> Option<Checksum> {
        Some(Checksum(b.try_into().ok()?))
    }

    /// Parse 64 lowercase hex digits, as ostree's validator requires.
    pub fn from_hex(s: &str) -> Result<Checksum, InvalidChecksum> {
        let bad = || InvalidChecksum(quote_prefix(s));
        let b = s.as_bytes();
        if b.len() != 64 {
            return Err(bad());
        }
        let mut out = [0u8; 32];
        for (i, pair) in b.chunks(2).enumerate() {
            out[i] = (hex_val(pair[0]).ok_or_else(bad)? << 4) | hex_val(pair[1]).ok_or_else(bad)?;
        }
        Ok(Checksum(out))
    }

    pub fn to_hex(&self) -> String {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let mut s = String::with_capacity(64);
        for b in self.0 {
            s.push(HEX[(b >> 4) as usize] as char);
            s.push(HEX[(b & 15) as usize] as char);
        }
        s
    }

    /// Inverse of `Checksum::to_mb64` (standard base64 without padding, `/` as `_`).
    pub fn from_mb64(s: &str) -> Option<Checksum> {
        if s.len() != 43 {
            return None;
        }
        let mut bits: u32 = 0;
        let mut nbits = 0;
        let mut out = Vec::with_capacity(33);
        for c in s.bytes() {
            let v = match c {
                b'A'..=b'Z' => c - b'A',
                b'a'..=b'z' => c - b'a' + 26,
                b'0'..=b'9' => c - b'0' + 52,
                b'+' => 62,
                b'_' => 63,
                _ => return None,
            };
            bits = (bits << 6) | u32::from(v);
            nbits += 6;
            if nbits >= 8 {
                nbits -= 8;
                out.push((bits >> nbits) as u8);
                bits &= (1 << nbits) - 1;
            }
        }
        // 43 chars = 258 bits: 32 bytes and 2 padding bits that must be zero.
        if bits != 0 {
            return None;
        }
        Checksum::from_slice(&out)
    }

    /// OSTree's modified base64: standard alphabet, no `=` padding, `/` replaced by `_`.
    pub fn to_mb64(&self) -> String {
        const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        let mut s = String::with_capacity(43);
        for chunk in self.0.chunks(3) {
            let n = chunk.len();
            let v = (u32::from(chunk[0]) << 16)
                | (u32::from(*chunk.get(1).unwrap_or(&0)) << 8)
                | u32::from(*chunk.get(2).unwrap_or(&0));
            for i in 0..=n {
                let c = B64[((v >> (18 - 6 * i)) & 63) as usize];
                s.push(if c == b'/' { '_' } else { c as char });
            }
        }
        s
    }
}

fn hex_val(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    }
}

impl fmt::Display for Checksum {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for Checksum {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Checksum({})", self.to_hex())
    }
}

impl FromStr for Checksum {
    type Err = InvalidChecksum;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Checksum::from_hex(s)
    }
}

/// Incremental hasher producing a [`Checksum`].
#[derive(Default, Clone)]
pub struct Hasher(Sha256);

impl Hasher {
    pub fn new() -> Self {
        Self::default()
    }
    pub fn update(&mut self, data: &[u8]) {
        self.0.update(data);
    }
    pub fn finish(self) -> Checksum {
        Checksum(self.0.finalize().into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trip_and_validation() {
        let c = Checksum::of(b"hello");
        assert_eq!(Checksum::from_hex(&c.to_hex()).unwrap(), c);
        assert!(Checksum::from_hex(&c.to_hex().to_uppercase()).is_err());
        assert!(Checksum::from_hex("abc").is_err());
    }

    #[test]
    fn mb64_matches_python_reference() {
        // base64.b64encode(bytes.fromhex(h)).decode().rstrip('=').replace('/', '_')
        let c =
            Checksum::from_hex("ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff")
                .unwrap();
        assert_eq!(c.to_mb64(), "_".repeat(42) + "8");
        let c =
            Checksum::from_hex("267597ce0000000000000000000000000000000000000000000000000000fb3e")
                .unwrap();
        assert_eq!(c.to_mb64().len(), 43);
        assert!(c.to_mb64().starts_with("JnWXzg"));
        assert_eq!(Checksum::from_mb64(&c.to_mb64()), Some(c));
        // The two padding bits of the last character must be zero.
        let mut bad = c.to_mb64();
        bad.replace_range(42.., "_");
        assert_eq!(Checksum::from_mb64(&bad), None);
        assert_eq!(Checksum::from_mb64("short"), None);
    }
}
