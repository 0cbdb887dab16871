//! Which deltas a ref should have: from each of its N previous commits (and optionally
//! from scratch) to its head. Existing deltas are skipped.

use arbor_repo::objects::ObjectType;
use arbor_repo::progress::Progress;
use arbor_repo::{Checksum, DeltaName, Repo};

use crate::error::{DeltaError, Result};
use crate::generate::{generate, GenerateOpts, GenerateReport};

/// The deltas `ref_name`'s head should have: from its `depth` nearest ancestors that are
/// present in the repository (the walk stops at the first missing parent), and from
/// scratch when `scratch`. Nearest ancestor first; scratch last.
pub fn wanted(repo: &Repo, ref_name: &str, depth: usize, scratch: bool) -> Result<Vec<DeltaName>> {
    let head = repo.read_ref(ref_name)?.ok_or_else(|| {
        DeltaError::Usage(format!(
            "ref {ref_name:?} not found in {}",
            repo.path().display()
        ))
    })?;
    let mut out = Vec::new();
    let mut cur: Checksum = head;
    for _ in 0..depth {
        let Some(parent) = repo.read_commit(&cur)?.parent else {
            break;
        };
        if !repo.has_object(&parent, ObjectType::Commit) {
            tracing::info!("{ref_name}: history stops at {parent} (not in the repository)");
            break;
        }
        out.push(DeltaName {
            from: Some(parent),
            to: head,
        });
        cur = parent;
    }
    if scratch {
        out.push(DeltaName {
            from: None,
            to: head,
        });
    }
    Ok(out)
}

/// Outcome for one wanted delta.
#[derive(Debug)]
pub enum PolicyOutcome {
    Generated(GenerateReport),
    Exists(DeltaName),
}

/// Generate every delta `wanted` lists that does not exist yet.
pub fn apply_policy(
    repo: &Repo,
    ref_name: &str,
    depth: usize,
    scratch: bool,
    opts: &GenerateOpts,
    progress: &dyn Progress,
) -> Result<Vec<PolicyOutcome>> {
    let mut out = Vec::new();
    for name in wanted(repo, ref_name, depth, scratch)? {
        if repo.path().join(name.superblock_key()).exists() {
            if embeds_current_commitmeta(repo, &name)? {
                out.push(PolicyOutcome::Exists(name));
                continue;
            }
            // A client pulling through a delta verifies the commitmeta the superblock
            // embeds, not the server's: a commit signed after its delta was made needs it anew.
            tracing::info!(
                "delta {name}: the commit's signatures changed since it was made; regenerating"
            );
        }
        out.push(PolicyOutcome::Generated(generate(
            repo, name.from, name.to, opts, progress,
        )?));
    }
    Ok(out)
}

/// Whether the delta's superblock embeds the to-commit's current detached metadata (its
/// signatures) — byte for byte, absent on both sides included.
pub fn embeds_current_commitmeta(repo: &Repo, name: &DeltaName) -> Result<bool> {
    let path = repo.path().join(name.superblock_key());
    let data = std::fs::read(&path).map_err(crate::error::io_err(&path))?;
    let sb = crate::format::Superblock::parse(&data).map_err(|e| DeltaError::Superblock {
        path: path.clone(),
        why: format!("cannot parse ({} bytes): {e}", data.len()),
    })?;
    let current = match repo.read_metadata(ObjectType::CommitMeta, &name.to) {
        Ok(d) => Some(d),
        Err(arbor_repo::RepoError::MissingObject { .. }) => None,
        Err(e) => return Err(e.into()),
    };
    Ok(sb.commitmeta() == current.as_deref())
}

/// The content objects of `name.from` that a delta to `name.to` may bsdiff against by path
/// (the old version of each file that changed in place): what a repository holding the
/// from-commit for its history only must fetch for that delta to carry bsdiffs.
pub fn bsdiff_sources(repo: &Repo, name: &DeltaName) -> Result<Vec<Checksum>> {
    let Some(from) = name.from else {
        return Ok(Vec::new());
    };
    let old = crate::plan::Reachable::walk(repo, &from)?;
    let new = crate::plan::Reachable::walk(repo, &name.to)?;
    let old_by_path: std::collections::HashMap<&str, Checksum> =
        old.files.iter().map(|(p, c)| (p.as_str(), *c)).collect();
    let mut out: Vec<Checksum> = new
        .files
        .iter()
        .filter(|(_, c)| !old.file_set.contains(c))
        .filter_map(|(p, _)| old_by_path.get(p.as_str()).copied())
        .collect();
    out.sort();
    out.dedup();
    Ok(out)
}
