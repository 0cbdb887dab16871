//! Fuzz target: a shared package cache's import pack (`compose/src/import/pack.rs`):
//! header, entry length, records (type, checksum, length, bytes), end mark — every
//! record bounded and verified (metadata hashed and parsed, content objects inflated
//! and hashed) before anything is written.
#![no_main]

use arbor_fuzz as _;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = arbor_compose::import::fuzz::pack(data);
});
