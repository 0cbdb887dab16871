//! Fuzz target: a static delta's superblock (signed or not) and what clients read out
//! of it: its name, the embedded commit, inline parts and their decompression, the
//! embedded detached metadata.
#![no_main]

use arbor_delta::format::Superblock;
use arbor_delta::source;
use arbor_fuzz as _;
use arbor_repo::objects::parse_commitmeta;
use libfuzzer_sys::fuzz_target;

/// Decompressed inline parts larger than this are not read (the real limit derives
/// from the part header, up to gigabytes).
const PART_LIMIT: u64 = 16 << 20;

fuzz_target!(|data: &[u8]| {
    let Ok(sb) = Superblock::parse(data) else {
        return;
    };
    let _ = sb.name().to_string();
    let _ = sb.commit();
    if let Some(cm) = sb.commitmeta() {
        let _ = parse_commitmeta(cm);
    }
    for i in 0..sb.parts.len().min(64) {
        if let Ok(Some(part)) = sb.inline_part(i) {
            if let Ok(payload) = source::decompress(part, PART_LIMIT) {
                let _ = arbor_delta::format::PartPayload::parse(&payload);
            }
        }
    }
});
