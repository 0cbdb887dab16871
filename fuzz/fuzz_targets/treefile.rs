//! Fuzz target: treefiles through the whole plan — parsing (YAML and JSON), includes,
//! conditional includes, merging, variables, validation, and the `.repo` files next to
//! them with dnf's variables (`treefile.rs`, `treefile/`, `plan.rs`).
//!
//! The input is up to four files separated by NUL bytes (which YAML and JSON never
//! contain): `main.yaml`, `inc.yaml`, `common.json`, `r.repo`, written into a
//! directory of their own under `$TMPDIR`. Inputs whose includes
//! would leave that directory (absolute paths, `..`) are skipped: the walk would read
//! whatever the machine has there.
#![no_main]

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use arbor_compose::plan::ComposePlan;
use arbor_compose::treefile;
use arbor_fuzz as _;
use libfuzzer_sys::fuzz_target;
use serde_json::Value as Json;

const FILES: [&str; 4] = ["main.yaml", "inc.yaml", "common.json", "r.repo"];

/// `$TMPDIR/arbor-fuzz-treefile-PID` (ci/fuzz.sh points `TMPDIR` at a scratch
/// directory on `/dev/shm` and removes it after the run).
fn dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let d = std::env::temp_dir().join(format!("arbor-fuzz-treefile-{}", std::process::id()));
        fs::create_dir_all(&d).expect("scratch directory");
        d
    })
}

/// Strings under the include keys that could name a file outside the directory.
fn escapes(v: &Json) -> bool {
    match v {
        Json::String(s) => s.starts_with('/') || s.contains("..") || s.contains('\0'),
        Json::Array(a) => a.iter().any(escapes),
        Json::Object(m) => m.values().any(escapes),
        _ => false,
    }
}

fn unsafe_includes(path: &Path, text: &str) -> bool {
    match treefile::parse_text(path, text) {
        Ok(Json::Object(m)) => ["include", "arch-include", "conditional-include"]
            .iter()
            .any(|k| m.get(*k).is_some_and(escapes)),
        _ => false,
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let parts: Vec<&str> = text.splitn(FILES.len(), '\0').collect();
    let dir = dir();
    for (name, part) in FILES.iter().zip(&parts) {
        let path = dir.join(name);
        if name.ends_with(".repo") {
            let _ = arbor_compose::plan::parse_repo_file(&path, part);
        } else if unsafe_includes(&path, part) {
            return;
        }
    }
    for (i, name) in FILES.iter().enumerate() {
        let path = dir.join(name);
        match parts.get(i) {
            Some(part) => fs::write(&path, part).expect("write scratch file"),
            None => {
                let _ = fs::remove_file(&path);
            }
        }
    }
    let main = dir.join(FILES[0]);
    // The same text read as JSON too.
    let _ = treefile::parse_text(Path::new("main.json"), parts[0]);
    if let Ok(flat) = treefile::flatten(&main, "x86_64") {
        std::hint::black_box(flat.to_string());
    }
    if let Ok(plan) = ComposePlan::load(&main) {
        std::hint::black_box(plan.hashed_treefile());
    }
});
