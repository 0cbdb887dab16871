//! Fuzz target: the repository summary (`summary` file, `(a(s(taya{sv}))a{sv})`):
//! decoded, its deltas and last-modified read, encoded again.
#![no_main]

use arbor_fuzz as _;
use arbor_repo::summary::{deltas_from_value, Summary};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(s) = Summary::from_bytes(data) else {
        return;
    };
    let _ = s.last_modified();
    let deltas = s.deltas();
    let _ = deltas_from_value(&arbor_repo::summary::deltas_to_value(&deltas));
    let bytes = s.to_bytes();
    let again = Summary::from_bytes(&bytes).expect("an encoded summary decodes");
    assert_eq!(again.to_bytes(), bytes, "summary encoding is not stable");
});
