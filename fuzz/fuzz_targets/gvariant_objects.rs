//! Fuzz target: GVariant decoding of every OSTree object type. The first byte picks
//! the decoder — commit, dirtree, dirmeta, `.filez` header (and the whole `.filez`
//! check), detached commit metadata, or any GVariant type named in the input — the
//! rest is the object. Whatever decodes must encode again to bytes that decode to
//! the same encoding (a value the encoder cannot write back is a bug).
#![no_main]

use arbor_fuzz as _;
use arbor_repo::gvariant::{Type, Value};
use arbor_repo::objects::parse_commitmeta;
use arbor_repo::{filez, Checksum, Commit, DirMeta, DirTree, FileHeader};
use libfuzzer_sys::fuzz_target;

/// `from_bytes(to_bytes(x))` succeeds and encodes to the same bytes.
fn round_trip<T>(
    value: &T,
    to_bytes: impl Fn(&T) -> Vec<u8>,
    from_bytes: impl Fn(&[u8]) -> Option<T>,
) {
    let bytes = to_bytes(value);
    let again = from_bytes(&bytes).expect("an encoded object decodes");
    assert_eq!(to_bytes(&again), bytes, "encoding is not stable");
}

fuzz_target!(|data: &[u8]| {
    let Some((&kind, body)) = data.split_first() else {
        return;
    };
    match kind % 6 {
        0 => {
            if let Ok(c) = Commit::from_bytes(body) {
                let _ = c.version();
                round_trip(&c, Commit::to_bytes, |b| Commit::from_bytes(b).ok());
            }
        }
        1 => {
            if let Ok(t) = DirTree::from_bytes(body) {
                let _ = t.is_sorted();
                if let Some((name, _)) = t.files.first() {
                    let _ = t.find_file(name);
                }
                round_trip(&t, DirTree::to_bytes, |b| DirTree::from_bytes(b).ok());
            }
        }
        2 => {
            if let Ok(m) = DirMeta::from_bytes(body) {
                round_trip(&m, DirMeta::to_bytes, |b| DirMeta::from_bytes(b).ok());
            }
        }
        3 => {
            if let Ok((header, size, offset)) = FileHeader::parse_archive(body) {
                assert!(offset <= body.len());
                let _ = header.is_symlink();
                let encoded = header.to_archive_header(size);
                let (again, size2, _) =
                    FileHeader::parse_archive(&encoded).expect("an encoded header decodes");
                assert_eq!((again, size2), (header, size));
            }
            // The whole-object check: header, inflate, size, checksum.
            let _ = filez::verify_archive_file(body, &Checksum::of(body));
        }
        4 => {
            if let Ok(meta) = parse_commitmeta(body) {
                let _ = meta.to_value().to_text();
                round_trip(
                    &meta,
                    |m| m.to_value().to_bytes(),
                    |b| parse_commitmeta(b).ok(),
                );
            }
        }
        _ => {
            // A type string up to the first NUL, then the serialized value.
            let Some(nul) = body.iter().take(64).position(|b| *b == 0) else {
                return;
            };
            let Ok(ty) = std::str::from_utf8(&body[..nul]) else {
                return;
            };
            let Ok(ty) = Type::parse(ty) else {
                return;
            };
            if let Ok(v) = Value::from_bytes(&ty, &body[nul + 1..]) {
                assert_eq!(v.type_of(), ty, "decoded value has another type");
                let _ = v.to_text();
                round_trip(&v, Value::to_bytes, |b| Value::from_bytes(&ty, b).ok());
            }
        }
    }
});
