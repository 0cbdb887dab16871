//! Fuzz target: an RPM's lead, signature header and main header through the bounded
//! reader (`import/rawheader.rs`) and the `rpm` crate, then what the importer derives
//! from the header: NEVRA, file entries, paths, capabilities, hardlinks, scriptlets.
#![no_main]

use arbor_fuzz as _;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = arbor_compose::import::fuzz::header(data);
});
