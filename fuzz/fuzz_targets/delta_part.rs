//! Fuzz target: a static delta part — decompression, the payload tables, and the
//! opcode interpreter that rebuilds objects (open, write, bspatch against a read
//! source, close), into an in-memory sink. The input is
//! `n ‖ n object types ‖ part file (compression byte ‖ payload)`; the part's header
//! lists those n objects. Built with `cfg(fuzzing)`, a wrong object checksum does not
//! end the part (SHA-256 cannot be forged), so every op is reached.
#![no_main]

use arbor_delta::apply::{execute_payload, ObjectSink};
use arbor_delta::format::{object_type_from_u8, PartHeader};
use arbor_delta::source;
use arbor_fuzz as _;
use arbor_repo::{Checksum, FileHeader, ObjectType};
use libfuzzer_sys::fuzz_target;

/// Decompressed payloads larger than this are not run.
const PAYLOAD_LIMIT: u64 = 16 << 20;

/// Accepts every object; reads what it is given, as a real sink would.
struct Sink;

impl ObjectSink for Sink {
    fn metadata(&self, _: ObjectType, _: &Checksum, bytes: &[u8]) -> arbor_delta::Result<()> {
        std::hint::black_box(bytes.len());
        Ok(())
    }
    fn file(&self, _: &Checksum, header: &FileHeader, content: &[u8]) -> arbor_delta::Result<()> {
        std::hint::black_box((header.mode, content.len()));
        Ok(())
    }
}

/// The content of every read source: text with some structure for bspatch to copy.
fn source_content(c: &Checksum) -> arbor_delta::Result<Vec<u8>> {
    let mut out = Vec::with_capacity(4096);
    while out.len() < 4096 {
        out.extend_from_slice(&c.0);
        out.extend_from_slice(b"the old file's content\n");
    }
    Ok(out)
}

fuzz_target!(|data: &[u8]| {
    let Some((&n, rest)) = data.split_first() else {
        return;
    };
    let n = usize::from(n % 16);
    if rest.len() < n {
        return;
    }
    let (types, part) = rest.split_at(n);
    let objects = types
        .iter()
        .enumerate()
        .map(|(i, t)| {
            let ty = object_type_from_u8(t % 4 + 1).unwrap_or(ObjectType::File);
            (ty, Checksum::of(&[i as u8]))
        })
        .collect();
    let header = PartHeader {
        version: 0,
        checksum: Checksum::of(part),
        size: part.len() as u64,
        usize: 0,
        objects,
    };
    let Ok(payload) = source::decompress(part, PAYLOAD_LIMIT) else {
        return;
    };
    let _ = execute_payload("fuzz", 0, &header, &payload, &source_content, &Sink);
});
