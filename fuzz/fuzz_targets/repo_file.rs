//! Fuzz target: a yum `.repo` file (INI) parsed and every section checked as a
//! repository (`plan/repo_file.rs`).
#![no_main]

use std::path::Path;

use arbor_fuzz as _;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = arbor_compose::plan::parse_repo_file(Path::new("fuzz.repo"), text);
});
