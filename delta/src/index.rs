//! Delta indexes: `delta-indexes/T[0:2]/T[2:].index`, one per delta target `T` (modified
//! base64), each an `a{sv}` `{"ostree.static-deltas": <a{sv} name → <ay SHA-256 of the
//! superblock>>}` with the same names and digests as the summary's
//! `ostree.static-deltas` (spec §5.9). A client uses them instead of the summary's list
//! when the summary says `ostree.summary.indexed-deltas`, or — when it needs no summary
//! (every ref pinned to a commit) — when the repository `config` has
//! `core.indexed-deltas=true`.
//!
//! [`reindex`] does what `ostree static-delta reindex` (`ostree_repo_static_delta_reindex`)
//! does for every target: writes an index for each target that has deltas (rewriting
//! only those whose bytes change), deletes indexes of targets that have none left, and
//! sets `core.indexed-deltas=true` in the config. The summary's own list is unaffected.

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;

use arbor_repo::gvariant::{Type, Value, VarDict};
use arbor_repo::summary::{deltas_from_value, deltas_to_value, STATIC_DELTAS_KEY};
use arbor_repo::{keyfile, layout, Checksum, DeltaName, Repo};

use crate::error::{io_err, Result};

/// The bytes of the index for one target: `deltas` maps delta names to superblock
/// digests, in the summary's encoding and order, so the file is reproducible.
pub fn index_bytes(deltas: &BTreeMap<DeltaName, Checksum>) -> Vec<u8> {
    let mut outer = VarDict::new();
    outer.insert(STATIC_DELTAS_KEY, deltas_to_value(deltas));
    outer.to_value().to_bytes()
}

/// Parse an index file: delta name → superblock digest.
pub fn parse_index(data: &[u8]) -> Option<BTreeMap<DeltaName, Checksum>> {
    let ty = Type::parse(VarDict::TYPE_STR).ok()?;
    let outer = VarDict::from_value(&Value::from_bytes(&ty, data).ok()?).ok()?;
    Some(deltas_from_value(outer.get(STATIC_DELTAS_KEY)?))
}

/// What [`reindex`] changed.
#[derive(Debug, Default, Clone)]
pub struct ReindexReport {
    /// Targets with an index (written or already up to date).
    pub targets: usize,
    /// Index files written because they were missing or different.
    pub written: usize,
    /// Index files deleted because their target has no delta any more.
    pub removed: usize,
}

/// After deltas were added: rewrite `delta-indexes/` and the summary, which both list
/// them. Once per batch, not per delta: each pass lists and hashes every superblock.
pub fn refresh(repo: &Repo) -> Result<()> {
    reindex(repo)?;
    repo.regenerate_summary()?;
    Ok(())
}

/// Regenerate every delta index of `repo` (see the module documentation).
pub fn reindex(repo: &Repo) -> Result<ReindexReport> {
    let mut by_target: BTreeMap<Checksum, BTreeMap<DeltaName, Checksum>> = BTreeMap::new();
    for (name, digest) in repo.list_deltas()? {
        by_target.entry(name.to).or_default().insert(name, digest);
    }
    let mut report = ReindexReport::default();
    set_indexed_deltas_config(repo)?;
    for (to, deltas) in &by_target {
        report.targets += 1;
        let rel = layout::delta_index_key(to);
        let bytes = index_bytes(deltas);
        if fs::read(repo.path().join(&rel)).is_ok_and(|old| old == bytes) {
            continue;
        }
        repo.write_atomic(Path::new(&rel), &bytes)?;
        report.written += 1;
    }
    // Indexes of targets without deltas (deleted since) would send clients to missing
    // superblocks.
    let top = repo.path().join(layout::DELTA_INDEXES_PREFIX);
    if let Ok(prefixes) = fs::read_dir(&top) {
        for p in prefixes {
            let p = p.map_err(io_err(&top))?;
            let Ok(files) = fs::read_dir(p.path()) else {
                continue;
            };
            for f in files {
                let f = f.map_err(io_err(p.path()))?;
                let key = format!(
                    "{}{}/{}",
                    layout::DELTA_INDEXES_PREFIX,
                    p.file_name().to_string_lossy(),
                    f.file_name().to_string_lossy()
                );
                let Some(to) = layout::parse_delta_index_key(&key) else {
                    continue;
                };
                if !by_target.contains_key(&to) {
                    fs::remove_file(f.path()).map_err(io_err(f.path()))?;
                    report.removed += 1;
                }
            }
        }
    }
    Ok(report)
}

/// Set `core.indexed-deltas=true` in the repository config (as ostree's reindex does),
/// keeping every other line as it is.
fn set_indexed_deltas_config(repo: &Repo) -> Result<()> {
    let path = repo.path().join(layout::CONFIG);
    let text = fs::read_to_string(&path).map_err(io_err(&path))?;
    if let Some(new) = keyfile::with_value(&text, "core", "indexed-deltas", "true") {
        repo.write_atomic(Path::new(layout::CONFIG), new.as_bytes())?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_round_trips() {
        let to = Checksum::of(b"to");
        let m = BTreeMap::from([
            (
                DeltaName {
                    from: Some(Checksum::of(b"from")),
                    to,
                },
                Checksum::of(b"sb1"),
            ),
            (DeltaName { from: None, to }, Checksum::of(b"sb2")),
        ]);
        assert_eq!(parse_index(&index_bytes(&m)), Some(m));
    }
}
