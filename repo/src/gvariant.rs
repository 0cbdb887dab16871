//! GVariant serialisation in normal form, for exactly what OSTree needs.
//!
//! A general, type-directed encoder/decoder: [`Type`] parses a type string, [`Value`]
//! holds a value and [`Value::to_bytes`] writes GLib's serialisation byte for byte
//! (golden-tested against GLib). [`Value::from_bytes`] parses untrusted bytes without
//! panicking and rejects anything that is not in normal form, the way ostree's
//! `validate_variant` does.
//!
//! ```text
//! container = children (each padded to its alignment, relative to the container start)
//!             ‖ framing offsets (little-endian, width 1/2/4/8 from the total size)
//! array of variable T : elements ‖ end offset of each element, in order
//! tuple               : members  ‖ end offsets of non-last variable members, reversed
//! variant             : child ‖ 00 ‖ type string
//! maybe               : nothing = empty; just fixed T = T; just variable T = T ‖ 00
//! ```
//!
//! Numbers are written little-endian; OSTree pre-swaps some fields to big-endian, which
//! is the callers' business (see `objects`).

use std::fmt;

/// Types are nested at most this deep; GLib's limit is 128 and ostree's are far shallower.
const MAX_DEPTH: usize = 64;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum GvError {
    #[error("invalid GVariant type string {0:?}")]
    InvalidType(String),
    #[error("malformed GVariant of type {ty}: {why}")]
    Malformed { ty: String, why: &'static str },
    #[error("GVariant of type {0} is not in normal form")]
    NotNormal(String),
    #[error("expected GVariant type {expected}, found {found}")]
    TypeMismatch { expected: String, found: String },
}

fn malformed(ty: &Type, why: &'static str) -> GvError {
    GvError::Malformed {
        ty: ty.to_string(),
        why,
    }
}

/// A GVariant type.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Type {
    Bool,
    Byte,
    Int16,
    Uint16,
    Int32,
    Uint32,
    Int64,
    Uint64,
    Handle,
    Double,
    String,
    ObjectPath,
    Signature,
    Variant,
    Array(Box<Type>),
    Maybe(Box<Type>),
    Tuple(Vec<Type>),
    DictEntry(Box<Type>, Box<Type>),
}

impl Type {
    /// Parse one complete type string such as `(a{sv}aya(say)sstayay)`.
    pub fn parse(s: &str) -> Result<Type, GvError> {
        let bytes = s.as_bytes();
        let (ty, used) =
            Self::parse_prefix(bytes, 0).ok_or_else(|| GvError::InvalidType(s.into()))?;
        if used != bytes.len() {
            return Err(GvError::InvalidType(s.into()));
        }
        Ok(ty)
    }

    fn parse_prefix(b: &[u8], depth: usize) -> Option<(Type, usize)> {
        if depth > MAX_DEPTH {
            return None;
        }
        let first = *b.first()?;
        let simple = match first {
            b'b' => Some(Type::Bool),
            b'y' => Some(Type::Byte),
            b'n' => Some(Type::Int16),
            b'q' => Some(Type::Uint16),
            b'i' => Some(Type::Int32),
            b'u' => Some(Type::Uint32),
            b'x' => Some(Type::Int64),
            b't' => Some(Type::Uint64),
            b'h' => Some(Type::Handle),
            b'd' => Some(Type::Double),
            b's' => Some(Type::String),
            b'o' => Some(Type::ObjectPath),
            b'g' => Some(Type::Signature),
            b'v' => Some(Type::Variant),
            _ => None,
        };
        if let Some(t) = simple {
            return Some((t, 1));
        }
        match first {
            b'a' => {
                let (t, n) = Self::parse_prefix(&b[1..], depth + 1)?;
                Some((Type::Array(Box::new(t)), n + 1))
            }
            b'm' => {
                let (t, n) = Self::parse_prefix(&b[1..], depth + 1)?;
                Some((Type::Maybe(Box::new(t)), n + 1))
            }
            b'(' => {
                let mut i = 1;
                let mut members = Vec::new();
                loop {
                    if *b.get(i)? == b')' {
                        return Some((Type::Tuple(members), i + 1));
                    }
                    let (t, n) = Self::parse_prefix(&b[i..], depth + 1)?;
                    members.push(t);
                    i += n;
                }
            }
            b'{' => {
                let (k, n1) = Self::parse_prefix(&b[1..], depth + 1)?;
                if !k.is_basic() {
                    return None;
                }
                let (v, n2) = Self::parse_prefix(&b[1 + n1..], depth + 1)?;
                if *b.get(1 + n1 + n2)? != b'}' {
                    return None;
                }
                Some((Type::DictEntry(Box::new(k), Box::new(v)), n1 + n2 + 2))
            }
            _ => None,
        }
    }

    fn is_basic(&self) -> bool {
        !matches!(
            self,
            Type::Variant | Type::Array(_) | Type::Maybe(_) | Type::Tuple(_) | Type::DictEntry(..)
        )
    }

    /// Alignment in bytes (1, 2, 4 or 8).
    pub fn alignment(&self) -> usize {
        match self {
            Type::Bool | Type::Byte | Type::String | Type::ObjectPath | Type::Signature => 1,
            Type::Int16 | Type::Uint16 => 2,
            Type::Int32 | Type::Uint32 | Type::Handle => 4,
            Type::Int64 | Type::Uint64 | Type::Double | Type::Variant => 8,
            Type::Array(t) | Type::Maybe(t) => t.alignment(),
            Type::Tuple(ms) => ms.iter().map(Type::alignment).max().unwrap_or(1),
            Type::DictEntry(k, v) => k.alignment().max(v.alignment()),
        }
    }

    /// Size in bytes when the type has a fixed size.
    pub fn fixed_size(&self) -> Option<usize> {
        match self {
            Type::Bool | Type::Byte => Some(1),
            Type::Int16 | Type::Uint16 => Some(2),
            Type::Int32 | Type::Uint32 | Type::Handle => Some(4),
            Type::Int64 | Type::Uint64 | Type::Double => Some(8),
            Type::String
            | Type::ObjectPath
            | Type::Signature
            | Type::Variant
            | Type::Array(_)
            | Type::Maybe(_) => None,
            Type::Tuple(ms) => fixed_tuple_size(ms.iter()),
            Type::DictEntry(k, v) => fixed_tuple_size([k.as_ref(), v.as_ref()].into_iter()),
        }
    }
}

fn fixed_tuple_size<'a>(members: impl Iterator<Item = &'a Type>) -> Option<usize> {
    let mut size = 0usize;
    let mut align = 1usize;
    for m in members {
        let a = m.alignment();
        align = align.max(a);
        size = size.next_multiple_of(a) + m.fixed_size()?;
    }
    if size == 0 {
        // The unit tuple `()` occupies one zero byte.
        return Some(1);
    }
    Some(size.next_multiple_of(align))
}

impl fmt::Display for Type {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let c = match self {
            Type::Bool => "b",
            Type::Byte => "y",
            Type::Int16 => "n",
            Type::Uint16 => "q",
            Type::Int32 => "i",
            Type::Uint32 => "u",
            Type::Int64 => "x",
            Type::Uint64 => "t",
            Type::Handle => "h",
            Type::Double => "d",
            Type::String => "s",
            Type::ObjectPath => "o",
            Type::Signature => "g",
            Type::Variant => "v",
            Type::Array(t) => return write!(f, "a{t}"),
            Type::Maybe(t) => return write!(f, "m{t}"),
            Type::Tuple(ms) => {
                f.write_str("(")?;
                for m in ms {
                    write!(f, "{m}")?;
                }
                return f.write_str(")");
            }
            Type::DictEntry(k, v) => return write!(f, "{{{k}{v}}}"),
        };
        f.write_str(c)
    }
}

/// A GVariant value. `ay` is held as [`Value::Bytes`]; an `Array` of `Byte` values is
/// accepted by the encoder too, but the decoder always yields `Bytes`.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Bool(bool),
    Byte(u8),
    Int16(i16),
    Uint16(u16),
    Int32(i32),
    Uint32(u32),
    Int64(i64),
    Uint64(u64),
    Handle(i32),
    Double(f64),
    String(String),
    ObjectPath(String),
    Signature(String),
    Variant(Box<Value>),
    Bytes(Vec<u8>),
    /// Element type, elements.
    Array(Type, Vec<Value>),
    /// Element type, value.
    Maybe(Type, Option<Box<Value>>),
    Tuple(Vec<Value>),
    DictEntry(Box<Value>, Box<Value>),
}

impl Value {
    pub fn str(s: impl Into<String>) -> Value {
        Value::String(s.into())
    }

    pub fn type_of(&self) -> Type {
        match self {
            Value::Bool(_) => Type::Bool,
            Value::Byte(_) => Type::Byte,
            Value::Int16(_) => Type::Int16,
            Value::Uint16(_) => Type::Uint16,
            Value::Int32(_) => Type::Int32,
            Value::Uint32(_) => Type::Uint32,
            Value::Int64(_) => Type::Int64,
            Value::Uint64(_) => Type::Uint64,
            Value::Handle(_) => Type::Handle,
            Value::Double(_) => Type::Double,
            Value::String(_) => Type::String,
            Value::ObjectPath(_) => Type::ObjectPath,
            Value::Signature(_) => Type::Signature,
            Value::Variant(_) => Type::Variant,
            Value::Bytes(_) => Type::Array(Box::new(Type::Byte)),
            Value::Array(t, _) => Type::Array(Box::new(t.clone())),
            Value::Maybe(t, _) => Type::Maybe(Box::new(t.clone())),
            Value::Tuple(ms) => Type::Tuple(ms.iter().map(Value::type_of).collect()),
            Value::DictEntry(k, v) => Type::DictEntry(Box::new(k.type_of()), Box::new(v.type_of())),
        }
    }

    /// Serialise in normal form.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.write(&mut out);
        out
    }

    /// Append the serialisation to `out`. `out.len()` must be aligned for this value's
    /// type relative to the start of the outermost value (always true when called on a
    /// fresh buffer or from the container code below).
    pub fn write(&self, out: &mut Vec<u8>) {
        match self {
            Value::Bool(b) => out.push(u8::from(*b)),
            Value::Byte(b) => out.push(*b),
            Value::Int16(v) => out.extend_from_slice(&v.to_le_bytes()),
            Value::Uint16(v) => out.extend_from_slice(&v.to_le_bytes()),
            Value::Int32(v) | Value::Handle(v) => out.extend_from_slice(&v.to_le_bytes()),
            Value::Uint32(v) => out.extend_from_slice(&v.to_le_bytes()),
            Value::Int64(v) => out.extend_from_slice(&v.to_le_bytes()),
            Value::Uint64(v) => out.extend_from_slice(&v.to_le_bytes()),
            Value::Double(v) => out.extend_from_slice(&v.to_le_bytes()),
            Value::String(s) | Value::ObjectPath(s) | Value::Signature(s) => {
                out.extend_from_slice(s.as_bytes());
                out.push(0);
            }
            Value::Variant(child) => {
                child.write(out);
                out.push(0);
                out.extend_from_slice(child.type_of().to_string().as_bytes());
            }
            Value::Bytes(b) => out.extend_from_slice(b),
            Value::Array(elem, items) => write_array(elem, items, out),
            Value::Maybe(elem, v) => {
                if let Some(v) = v {
                    v.write(out);
                    if elem.fixed_size().is_none() {
                        out.push(0);
                    }
                }
            }
            Value::Tuple(members) => write_tuple(
                members.iter(),
                members.len(),
                self.type_of().fixed_size(),
                out,
            ),
            Value::DictEntry(k, v) => {
                let ty = self.type_of();
                write_tuple(
                    [k.as_ref(), v.as_ref()].into_iter(),
                    2,
                    ty.fixed_size(),
                    out,
                )
            }
        }
    }

    /// Parse `data` as a value of type `ty`, requiring normal form.
    pub fn from_bytes(ty: &Type, data: &[u8]) -> Result<Value, GvError> {
        let v = decode(ty, data, 0)?;
        // Normal form is exactly "re-serialising gives the same bytes": the encoder has
        // no freedom (offset widths, padding and sizes are all determined).
        if v.to_bytes() != data {
            return Err(GvError::NotNormal(ty.to_string()));
        }
        Ok(v)
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::String(s) | Value::ObjectPath(s) | Value::Signature(s) => Some(s),
            _ => None,
        }
    }
}

fn pad_to(out: &mut Vec<u8>, start: usize, align: usize) {
    while (out.len() - start) % align != 0 {
        out.push(0);
    }
}

/// Width of framing offsets for a container whose body (without offsets) is `body`
/// bytes long and which carries `n` offsets.
fn offset_width(body: usize, n: usize) -> usize {
    if n == 0 {
        return 0;
    }
    for w in [1usize, 2, 4] {
        let max = (1u64 << (8 * w)) - 1;
        if (body + n * w) as u64 <= max {
            return w;
        }
    }
    8
}

/// Width a reader derives from a container's total size.
fn reader_offset_width(size: usize) -> usize {
    match size as u64 {
        0 => 0,
        1..=0xff => 1,
        0x100..=0xffff => 2,
        0x1_0000..=0xffff_ffff => 4,
        _ => 8,
    }
}

fn push_offset(out: &mut Vec<u8>, value: usize, width: usize) {
    out.extend_from_slice(&(value as u64).to_le_bytes()[..width]);
}

fn write_array(elem: &Type, items: &[Value], out: &mut Vec<u8>) {
    let start = out.len();
    let align = elem.alignment();
    if elem.fixed_size().is_some() {
        for it in items {
            pad_to(out, start, align);
            it.write(out);
        }
        return;
    }
    let mut ends = Vec::with_capacity(items.len());
    for it in items {
        pad_to(out, start, align);
        it.write(out);
        ends.push(out.len() - start);
    }
    let w = offset_width(out.len() - start, ends.len());
    for e in ends {
        push_offset(out, e, w);
    }
}

fn write_tuple<'a>(
    members: impl Iterator<Item = &'a Value>,
    count: usize,
    fixed_size: Option<usize>,
    out: &mut Vec<u8>,
) {
    let start = out.len();
    let mut ends = Vec::new();
    for (i, m) in members.enumerate() {
        let ty = m.type_of();
        pad_to(out, start, ty.alignment());
        m.write(out);
        if ty.fixed_size().is_none() && i + 1 != count {
            ends.push(out.len() - start);
        }
    }
    if let Some(size) = fixed_size {
        while out.len() - start < size {
            out.push(0);
        }
        return;
    }
    let w = offset_width(out.len() - start, ends.len());
    for e in ends.into_iter().rev() {
        push_offset(out, e, w);
    }
}

fn read_offset(data: &[u8], at: usize, width: usize) -> Option<usize> {
    let bytes = data.get(at..at.checked_add(width)?)?;
    let mut buf = [0u8; 8];
    buf[..width].copy_from_slice(bytes);
    usize::try_from(u64::from_le_bytes(buf)).ok()
}

fn fixed<const N: usize>(ty: &Type, data: &[u8]) -> Result<[u8; N], GvError> {
    data.try_into()
        .map_err(|_| malformed(ty, "wrong size for fixed-size type"))
}

fn decode(ty: &Type, data: &[u8], depth: usize) -> Result<Value, GvError> {
    if depth > MAX_DEPTH {
        return Err(malformed(ty, "nested too deeply"));
    }
    Ok(match ty {
        Type::Bool => match fixed::<1>(ty, data)?[0] {
            0 => Value::Bool(false),
            1 => Value::Bool(true),
            _ => return Err(malformed(ty, "boolean not 0 or 1")),
        },
        Type::Byte => Value::Byte(fixed::<1>(ty, data)?[0]),
        Type::Int16 => Value::Int16(i16::from_le_bytes(fixed(ty, data)?)),
        Type::Uint16 => Value::Uint16(u16::from_le_bytes(fixed(ty, data)?)),
        Type::Int32 => Value::Int32(i32::from_le_bytes(fixed(ty, data)?)),
        Type::Handle => Value::Handle(i32::from_le_bytes(fixed(ty, data)?)),
        Type::Uint32 => Value::Uint32(u32::from_le_bytes(fixed(ty, data)?)),
        Type::Int64 => Value::Int64(i64::from_le_bytes(fixed(ty, data)?)),
        Type::Uint64 => Value::Uint64(u64::from_le_bytes(fixed(ty, data)?)),
        Type::Double => Value::Double(f64::from_le_bytes(fixed(ty, data)?)),
        Type::String | Type::ObjectPath | Type::Signature => {
            let s = decode_str(ty, data)?;
            match ty {
                Type::String => Value::String(s),
                Type::ObjectPath => Value::ObjectPath(s),
                _ => Value::Signature(s),
            }
        }
        Type::Variant => {
            let nul = data
                .iter()
                .rposition(|&b| b == 0)
                .ok_or_else(|| malformed(ty, "variant without type string"))?;
            let tstr = std::str::from_utf8(&data[nul + 1..])
                .map_err(|_| malformed(ty, "variant type string not UTF-8"))?;
            let child_ty =
                Type::parse(tstr).map_err(|_| malformed(ty, "invalid variant type string"))?;
            Value::Variant(Box::new(decode(&child_ty, &data[..nul], depth + 1)?))
        }
        Type::Array(elem) => {
            if **elem == Type::Byte {
                return Ok(Value::Bytes(data.to_vec()));
            }
            Value::Array((**elem).clone(), decode_array(elem, data, depth)?)
        }
        Type::Maybe(elem) => {
            if data.is_empty() {
                Value::Maybe((**elem).clone(), None)
            } else if elem.fixed_size().is_some() {
                Value::Maybe(
                    (**elem).clone(),
                    Some(Box::new(decode(elem, data, depth + 1)?)),
                )
            } else {
                if data[data.len() - 1] != 0 {
                    return Err(malformed(ty, "maybe without trailing zero"));
                }
                let v = decode(elem, &data[..data.len() - 1], depth + 1)?;
                Value::Maybe((**elem).clone(), Some(Box::new(v)))
            }
        }
        Type::Tuple(_) => Value::Tuple(decode_tuple(ty, data, depth)?),
        Type::DictEntry(..) => {
            let mut vals = decode_tuple(ty, data, depth)?;
            let v = vals.pop().ok_or_else(|| malformed(ty, "dict entry"))?;
            let k = vals.pop().ok_or_else(|| malformed(ty, "dict entry"))?;
            Value::DictEntry(Box::new(k), Box::new(v))
        }
    })
}

fn decode_str(ty: &Type, data: &[u8]) -> Result<String, GvError> {
    let (last, body) = data
        .split_last()
        .ok_or_else(|| malformed(ty, "empty string"))?;
    if *last != 0 || body.contains(&0) {
        return Err(malformed(
            ty,
            "string not NUL-terminated or with interior NUL",
        ));
    }
    String::from_utf8(body.to_vec()).map_err(|_| malformed(ty, "string not UTF-8"))
}

fn decode_array(elem: &Type, data: &[u8], depth: usize) -> Result<Vec<Value>, GvError> {
    array_frames(elem, data)?
        .into_iter()
        .map(|d| decode(elem, d, depth + 1))
        .collect()
}

fn decode_tuple(ty: &Type, data: &[u8], depth: usize) -> Result<Vec<Value>, GvError> {
    tuple_frames(ty, data)?
        .into_iter()
        .zip(tuple_members(ty)?)
        .map(|(d, m)| decode(m, d, depth + 1))
        .collect()
}

/// The member types of a tuple or dict entry type.
fn tuple_members(ty: &Type) -> Result<Vec<&Type>, GvError> {
    match ty {
        Type::Tuple(ms) => Ok(ms.iter().collect()),
        Type::DictEntry(k, v) => Ok(vec![k.as_ref(), v.as_ref()]),
        _ => Err(malformed(ty, "not a tuple type")),
    }
}

/// The byte slices of the members of a tuple (or dict entry) of type `ty`, without
/// decoding them (zero-copy; the delta code reads 32 MB part payloads this way). Only
/// the framing is checked: every offset in range, fixed sizes right. Never panics.
///
/// ```text
/// tuple  : members (each aligned) ‖ end offsets of non-last variable members, reversed
/// offsets: little-endian, width 1/2/4/8 from the container's total size
/// ```
pub fn tuple_frames<'a>(ty: &Type, data: &'a [u8]) -> Result<Vec<&'a [u8]>, GvError> {
    let members = tuple_members(ty)?;
    if let Some(size) = ty.fixed_size() {
        if data.len() != size {
            return Err(malformed(ty, "fixed-size tuple of the wrong size"));
        }
    }
    let w = reader_offset_width(data.len());
    let mut frame_end = data.len();
    let mut pos = 0usize;
    let mut out = Vec::with_capacity(members.len());
    for (i, m) in members.iter().enumerate() {
        let start = pos.next_multiple_of(m.alignment());
        let end = if let Some(size) = m.fixed_size() {
            start
                .checked_add(size)
                .ok_or_else(|| malformed(ty, "tuple member out of range"))?
        } else if i + 1 == members.len() {
            frame_end
        } else {
            frame_end = frame_end
                .checked_sub(w)
                .ok_or_else(|| malformed(ty, "tuple offset table truncated"))?;
            read_offset(data, frame_end, w)
                .ok_or_else(|| malformed(ty, "tuple offset table truncated"))?
        };
        if start > end || end > frame_end {
            return Err(malformed(ty, "tuple member out of range"));
        }
        out.push(&data[start..end]);
        pos = end;
    }
    Ok(out)
}

/// The byte slices of the elements of an array whose element type is `elem` (see
/// [`tuple_frames`]).
///
/// ```text
/// array  : fixed elements back to back | variable elements ‖ end offset of each element
/// ```
pub fn array_frames<'a>(elem: &Type, data: &'a [u8]) -> Result<Vec<&'a [u8]>, GvError> {
    let aty = || Type::Array(Box::new(elem.clone()));
    if let Some(size) = elem.fixed_size() {
        if data.len() % size != 0 {
            return Err(malformed(
                &aty(),
                "array size not a multiple of the element size",
            ));
        }
        return Ok(data.chunks(size).collect());
    }
    if data.is_empty() {
        return Ok(Vec::new());
    }
    let w = reader_offset_width(data.len());
    let table =
        read_offset(data, data.len() - w, w).ok_or_else(|| malformed(&aty(), "array too short"))?;
    if table > data.len() || (data.len() - table) % w != 0 {
        return Err(malformed(&aty(), "bad array offset table"));
    }
    let n = (data.len() - table) / w;
    let align = elem.alignment();
    let mut out = Vec::with_capacity(n);
    let mut pos = 0usize;
    for i in 0..n {
        let end = read_offset(data, table + i * w, w)
            .ok_or_else(|| malformed(&aty(), "bad array offset table"))?;
        let start = pos.next_multiple_of(align);
        if start > end || end > table {
            return Err(malformed(&aty(), "array element offsets out of range"));
        }
        out.push(&data[start..end]);
        pos = end;
    }
    Ok(out)
}

/// Ordered `a{sv}`: OSTree metadata dictionaries. Insertion order is kept because it is
/// part of the bytes (and so of the commit checksum).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct VarDict(pub Vec<(String, Value)>);

impl VarDict {
    pub const TYPE_STR: &'static str = "a{sv}";

    pub fn new() -> Self {
        Self::default()
    }

    pub fn insert(&mut self, key: impl Into<String>, value: Value) {
        self.0.push((key.into(), value));
    }

    /// Replace the value of an existing key in place, or append it.
    pub fn set(&mut self, key: &str, value: Value) {
        match self.0.iter_mut().find(|(k, _)| k == key) {
            Some(slot) => slot.1 = value,
            None => self.0.push((key.to_string(), value)),
        }
    }

    pub fn get(&self, key: &str) -> Option<&Value> {
        self.0.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn to_value(&self) -> Value {
        Value::Array(
            Type::DictEntry(Box::new(Type::String), Box::new(Type::Variant)),
            self.0
                .iter()
                .map(|(k, v)| {
                    Value::DictEntry(
                        Box::new(Value::str(k.clone())),
                        Box::new(Value::Variant(Box::new(v.clone()))),
                    )
                })
                .collect(),
        )
    }

    pub fn from_value(v: &Value) -> Result<Self, GvError> {
        let mismatch = || GvError::TypeMismatch {
            expected: Self::TYPE_STR.into(),
            found: v.type_of().to_string(),
        };
        let Value::Array(_, entries) = v else {
            return Err(mismatch());
        };
        let mut out = VarDict::new();
        for e in entries {
            let Value::DictEntry(k, val) = e else {
                return Err(mismatch());
            };
            let (Value::String(k), Value::Variant(val)) = (k.as_ref(), val.as_ref()) else {
                return Err(mismatch());
            };
            out.insert(k.clone(), (**val).clone());
        }
        Ok(out)
    }
}

impl Value {
    /// A GVariant-text-like rendering for humans (`ostree show` style): strings quoted,
    /// byte arrays as hex (`0x…`), containers in brackets.
    pub fn to_text(&self) -> String {
        match self {
            Value::Bool(b) => b.to_string(),
            Value::Byte(b) => format!("0x{b:02x}"),
            Value::Int16(v) => v.to_string(),
            Value::Uint16(v) => v.to_string(),
            Value::Int32(v) | Value::Handle(v) => v.to_string(),
            Value::Uint32(v) => v.to_string(),
            Value::Int64(v) => v.to_string(),
            Value::Uint64(v) => v.to_string(),
            Value::Double(v) => v.to_string(),
            Value::String(s) | Value::ObjectPath(s) | Value::Signature(s) => format!("{s:?}"),
            Value::Variant(v) => format!("<{}>", v.to_text()),
            Value::Bytes(b) => {
                if b.is_empty() {
                    "[]".into()
                } else {
                    let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
                    format!("0x{hex}")
                }
            }
            Value::Array(_, items) => {
                if matches!(items.first(), Some(Value::DictEntry(..))) {
                    let parts: Vec<String> = items.iter().map(Value::to_text).collect();
                    format!("{{{}}}", parts.join(", "))
                } else {
                    let parts: Vec<String> = items.iter().map(Value::to_text).collect();
                    format!("[{}]", parts.join(", "))
                }
            }
            Value::Maybe(_, None) => "nothing".into(),
            Value::Maybe(_, Some(v)) => format!("just {}", v.to_text()),
            Value::Tuple(ms) => {
                let parts: Vec<String> = ms.iter().map(Value::to_text).collect();
                format!("({})", parts.join(", "))
            }
            Value::DictEntry(k, v) => format!("{}: {}", k.to_text(), v.to_text()),
        }
    }
}
