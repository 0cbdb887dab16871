//! Fuzz target: repository metadata discovery — `repomd.xml`, a metalink (and the
//! repomd.xml check it yields) or a mirrorlist; the first byte picks which.
#![no_main]

use arbor_compose::rpmmd::{mirrors, parse_repomd};
use arbor_fuzz as _;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&kind, body)) = data.split_first() else {
        return;
    };
    let Ok(text) = std::str::from_utf8(body) else {
        return;
    };
    match kind % 3 {
        0 => {
            if let Ok(md) = parse_repomd(text) {
                assert!(!md.data.is_empty());
            }
        }
        1 => {
            if let Ok((urls, check)) = mirrors::parse_metalink(text) {
                std::hint::black_box(urls.len());
                let _ = check.verify(body);
            }
        }
        _ => {
            std::hint::black_box(mirrors::parse_mirrorlist(text));
        }
    }
});
