//! Fuzz target: an RPM payload — compression sniffing and decompression (gzip, xz,
//! lzma, zstd, none; `decompress.rs`) and the cpio reader (`import/cpio.rs`), every
//! entry read to its end.
#![no_main]

use arbor_fuzz as _;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = arbor_compose::import::fuzz::payload(data);
});
