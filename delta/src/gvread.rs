//! A zero-copy GVariant framing reader for the big delta containers (superblock, part
//! payload): it hands out the byte slices of tuple members and array elements without
//! copying (framing shared with the decoder: `arbor_repo::gvariant::tuple_frames`,
//! `array_frames`), so a 32 MB part payload is never duplicated just to be parsed.
//!
//! Unlike `arbor_repo::gvariant::Value::from_bytes` it does not insist on normal form:
//! like GLib reading an untrusted container, it only requires every offset to be in
//! range. It never panics on bad input.

use arbor_repo::gvariant::{array_frames, tuple_frames, GvError, Type};

/// A framing problem; the caller wraps it with the name of the file being read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed GVariant {ty}: {why}")]
pub struct FrameError {
    pub ty: String,
    pub why: &'static str,
}

fn err(ty: &Type, why: &'static str) -> FrameError {
    FrameError {
        ty: ty.to_string(),
        why,
    }
}

impl From<GvError> for FrameError {
    /// The framing functions only report `Malformed`.
    fn from(e: GvError) -> FrameError {
        match e {
            GvError::Malformed { ty, why } => FrameError { ty, why },
            other => FrameError {
                ty: other.to_string(),
                why: "unexpected error",
            },
        }
    }
}

/// Slices of the members of a tuple (or dict entry) of type `ty`.
pub fn tuple<'a>(ty: &Type, data: &'a [u8]) -> Result<Vec<&'a [u8]>, FrameError> {
    Ok(tuple_frames(ty, data)?)
}

/// Slices of the elements of an array whose element type is `elem`.
pub fn array<'a>(elem: &Type, data: &'a [u8]) -> Result<Vec<&'a [u8]>, FrameError> {
    Ok(array_frames(elem, data)?)
}

/// A variant: (type string, value bytes).
pub fn variant(data: &[u8]) -> Result<(&str, &[u8]), FrameError> {
    let nul = data
        .iter()
        .rposition(|&b| b == 0)
        .ok_or_else(|| err(&Type::Variant, "no type string"))?;
    let ty = std::str::from_utf8(&data[nul + 1..])
        .map_err(|_| err(&Type::Variant, "type string not UTF-8"))?;
    Ok((ty, &data[..nul]))
}

/// A string `s`: bytes up to the trailing NUL.
pub fn string(data: &[u8]) -> Result<&str, FrameError> {
    match data.split_last() {
        Some((0, body)) if !body.contains(&0) => {
            std::str::from_utf8(body).map_err(|_| err(&Type::String, "not UTF-8"))
        }
        _ => Err(err(&Type::String, "not NUL-terminated")),
    }
}

pub fn u32_le(data: &[u8]) -> Result<u32, FrameError> {
    Ok(u32::from_le_bytes(
        data.try_into()
            .map_err(|_| err(&Type::Uint32, "wrong size"))?,
    ))
}

pub fn u64_le(data: &[u8]) -> Result<u64, FrameError> {
    Ok(u64::from_le_bytes(
        data.try_into()
            .map_err(|_| err(&Type::Uint64, "wrong size"))?,
    ))
}

pub fn byte(data: &[u8]) -> Result<u8, FrameError> {
    match data {
        [b] => Ok(*b),
        _ => Err(err(&Type::Byte, "wrong size")),
    }
}

/// Parse a static type string (the constants in `format`).
pub fn ty(s: &str) -> Type {
    Type::parse(s).expect("static GVariant type string")
}

#[cfg(test)]
mod tests {
    use super::*;
    use arbor_repo::gvariant::Value;

    #[test]
    fn reads_what_the_encoder_writes() {
        let t = ty("(a(uuu)aa(ayay)ayay)");
        let v = Value::Tuple(vec![
            Value::Array(
                ty("(uuu)"),
                vec![Value::Tuple(vec![
                    Value::Uint32(1),
                    Value::Uint32(2),
                    Value::Uint32(3),
                ])],
            ),
            Value::Array(
                ty("a(ayay)"),
                vec![
                    Value::Array(ty("(ayay)"), vec![]),
                    Value::Array(
                        ty("(ayay)"),
                        vec![Value::Tuple(vec![
                            Value::Bytes(b"user.a\0".to_vec()),
                            Value::Bytes(b"xy".to_vec()),
                        ])],
                    ),
                ],
            ),
            Value::Bytes(b"payload".to_vec()),
            Value::Bytes(b"ops".to_vec()),
        ]);
        let bytes = v.to_bytes();
        let m = tuple(&t, &bytes).unwrap();
        assert_eq!(m.len(), 4);
        assert_eq!(m[0].len(), 12);
        assert_eq!(m[2], b"payload");
        assert_eq!(m[3], b"ops");
        let xs = array(&ty("a(ayay)"), m[1]).unwrap();
        assert_eq!(xs.len(), 2);
        assert!(xs[0].is_empty());
        let entries = array(&ty("(ayay)"), xs[1]).unwrap();
        let kv = tuple(&ty("(ayay)"), entries[0]).unwrap();
        assert_eq!(kv, vec![&b"user.a\0"[..], &b"xy"[..]]);
    }

    #[test]
    fn garbage_never_panics() {
        let t = ty(arbor_repo::layout::SUPERBLOCK_TYPE);
        let mut seed = 7u32;
        for len in 0..300usize {
            let data: Vec<u8> = (0..len)
                .map(|_| {
                    seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12345);
                    (seed >> 16) as u8
                })
                .collect();
            if let Ok(m) = tuple(&t, &data) {
                let _ = array(&ty("{sv}"), m[0]);
                let _ = array(&ty("(uayttay)"), m[6]);
            }
            let _ = variant(&data);
            let _ = string(&data);
        }
    }
}
