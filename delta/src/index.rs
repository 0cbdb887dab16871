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
use std::path::{Path, PathBuf};

use arbor_repo::gvariant::{Value, VarDict};
use arbor_repo::{Checksum, Repo};

use crate::error::{io_err, Result};
use crate::format::DeltaName;

pub const INDEX_DIR: &str = "delta-indexes";
pub const STATIC_DELTAS_KEY: &str = "ostree.static-deltas";

/// `delta-indexes/T[0:2]/T[2:].index`, relative to the repository.
pub fn index_rel(to: &Checksum) -> PathBuf {
    let t = to.to_mb64();
    PathBuf::from(format!("{INDEX_DIR}/{}/{}.index", &t[..2], &t[2..]))
}

/// The bytes of the index for one target: `deltas` maps delta names (`FROM-TO` or `TO`,
/// hex) to superblock digests. Entries are sorted by name, so the file is reproducible.
pub fn index_bytes(deltas: &BTreeMap<String, Checksum>) -> Vec<u8> {
    let inner = VarDict(
        deltas
            .iter()
            .map(|(name, digest)| (name.clone(), Value::Bytes(digest.0.to_vec())))
            .collect(),
    );
    let mut outer = VarDict::new();
    outer.insert(STATIC_DELTAS_KEY, inner.to_value());
    outer.to_value().to_bytes()
}

/// Parse an index file: delta name (hex) → superblock digest.
pub fn parse_index(data: &[u8]) -> Option<BTreeMap<String, Checksum>> {
    let ty = arbor_repo::gvariant::Type::parse(VarDict::TYPE_STR).ok()?;
    let outer = VarDict::from_value(&Value::from_bytes(&ty, data).ok()?).ok()?;
    let inner = VarDict::from_value(outer.get(STATIC_DELTAS_KEY)?).ok()?;
    inner
        .0
        .iter()
        .map(|(name, v)| match v {
            Value::Bytes(b) if b.len() == 32 => {
                let mut c = [0u8; 32];
                c.copy_from_slice(b);
                Some((name.clone(), Checksum(c)))
            }
            _ => None,
        })
        .collect()
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
    let mut by_target: BTreeMap<Checksum, BTreeMap<String, Checksum>> = BTreeMap::new();
    for (name, digest) in repo.list_deltas()? {
        let Ok(parsed) = DeltaName::parse(&name) else {
            continue;
        };
        by_target.entry(parsed.to).or_default().insert(name, digest);
    }
    let mut report = ReindexReport::default();
    set_indexed_deltas_config(repo)?;
    for (to, deltas) in &by_target {
        report.targets += 1;
        let rel = index_rel(to);
        let bytes = index_bytes(deltas);
        if fs::read(repo.path().join(&rel)).is_ok_and(|old| old == bytes) {
            continue;
        }
        repo.write_atomic(&rel, &bytes)?;
        report.written += 1;
    }
    // Indexes of targets without deltas (deleted since) would send clients to missing
    // superblocks.
    let top = repo.path().join(INDEX_DIR);
    if let Ok(prefixes) = fs::read_dir(&top) {
        for p in prefixes {
            let p = p.map_err(io_err(&top))?;
            let Ok(files) = fs::read_dir(p.path()) else {
                continue;
            };
            for f in files {
                let f = f.map_err(io_err(p.path()))?;
                let name = format!(
                    "{}{}",
                    p.file_name().to_string_lossy(),
                    f.file_name().to_string_lossy()
                );
                let Some(to) = name.strip_suffix(".index").and_then(Checksum::from_mb64) else {
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
    let path = repo.path().join("config");
    let text = fs::read_to_string(&path).map_err(io_err(&path))?;
    if let Some(new) = with_indexed_deltas(&text) {
        repo.write_atomic(Path::new("config"), new.as_bytes())?;
    }
    Ok(())
}

/// The config text with `indexed-deltas=true` in `[core]`, or None if already so.
fn with_indexed_deltas(text: &str) -> Option<String> {
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    let mut section = String::new();
    let mut core_end = None;
    for (i, line) in lines.iter_mut().enumerate() {
        let t = line.trim();
        if let Some(s) = t.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            section = s.trim().to_string();
            continue;
        }
        if section != "core" {
            continue;
        }
        if !t.is_empty() && !t.starts_with('#') {
            core_end = Some(i);
        }
        if let Some((k, v)) = t.split_once('=') {
            if k.trim() == "indexed-deltas" {
                if v.trim() == "true" {
                    return None;
                }
                *line = "indexed-deltas=true".to_string();
                return Some(lines.join("\n") + "\n");
            }
        }
    }
    match core_end {
        Some(i) => lines.insert(i + 1, "indexed-deltas=true".to_string()),
        None => {
            lines.insert(0, "[core]".to_string());
            lines.insert(1, "indexed-deltas=true".to_string());
        }
    }
    Some(lines.join("\n") + "\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_gets_indexed_deltas_in_core() {
        let c = "[core]\nrepo_version=1\nmode=archive-z2\n\n[remote \"x\"]\nurl=y\n";
        assert_eq!(
            with_indexed_deltas(c).unwrap(),
            "[core]\nrepo_version=1\nmode=archive-z2\nindexed-deltas=true\n\n[remote \"x\"]\nurl=y\n"
        );
        let done = "[core]\nrepo_version=1\nindexed-deltas=true\n";
        assert_eq!(with_indexed_deltas(done), None);
        assert_eq!(
            with_indexed_deltas("[core]\nindexed-deltas=false\n").unwrap(),
            "[core]\nindexed-deltas=true\n"
        );
    }

    #[test]
    fn index_round_trips() {
        let mut m = BTreeMap::new();
        let to = Checksum::of(b"to");
        m.insert(
            format!("{}-{to}", Checksum::of(b"from")),
            Checksum::of(b"sb1"),
        );
        m.insert(to.to_hex(), Checksum::of(b"sb2"));
        assert_eq!(parse_index(&index_bytes(&m)), Some(m));
        assert!(index_rel(&to).starts_with(INDEX_DIR));
        assert!(index_rel(&to).to_str().unwrap().ends_with(".index"));
    }
}
