//! Prune a published repository: keep, per ref, the newest N commits (or those younger
//! than a cutoff), and delete commits, objects and deltas nothing kept reaches.
//!
//! Order, so a client never sees a ref or delta to something missing:
//! summary (without the deltas to delete) → delta superblocks → delta parts → commits
//! and commitmeta → other objects → summary again (in case a concurrent publisher
//! re-advertised a delta in between). Refs never change: each head is always kept.
//!
//! Nothing younger than the grace period is deleted, and every commit younger than it
//! counts as a root, so objects of a publish in flight are never removed.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant, SystemTime};

use arbor_repo::objects::ObjectType;
use arbor_repo::progress::Progress;
use arbor_repo::store::validate_ref_name;
use arbor_repo::Checksum;
use futures::stream::{self, StreamExt, TryStreamExt};

use crate::error::{PublishError, Result};
use crate::layout::{self, DeltaName};
use crate::location::LocationKind;
use crate::remote::{Remote, RequestCounts};
use crate::source::{read_ref, CommitInfo, Source};
use crate::summary::{self, Known};
use crate::walk::{self, Reach};

/// Default grace period: an hour covers any publish in flight.
pub const DEFAULT_GRACE: Duration = Duration::from_secs(3600);

/// Which commits of a ref's history to keep (the head is always kept).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retention {
    /// The newest N commits (N ≥ 1).
    Keep(usize),
    /// Commits whose timestamp is newer than now minus this.
    YoungerThan(Duration),
}

#[derive(Debug, Clone)]
pub struct PruneOpts {
    pub retention: Retention,
    /// Refs the policy applies to (all when empty); other refs keep their whole history.
    pub refs: Vec<String>,
    pub dry_run: bool,
    pub grace: Duration,
    pub jobs: usize,
}

/// One deleted (or, in a dry run, deletable) object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Removed {
    pub key: String,
    pub bytes: u64,
}

#[derive(Debug, Clone, Default)]
pub struct PruneReport {
    pub dry_run: bool,
    pub kept_commits: BTreeSet<Checksum>,
    pub removed_commits: BTreeSet<Checksum>,
    pub removed_deltas: Vec<String>,
    /// Every key removed, in deletion order.
    pub removed: Vec<Removed>,
    pub bytes_removed: u64,
    /// Unreachable objects left alone because they are younger than the grace period.
    pub kept_young: u64,
    pub summary_written: bool,
    pub requests: RequestCounts,
    pub seconds: f64,
}

/// The destination's refs (the files under refs/heads), by name.
async fn read_refs(dest: &Remote) -> Result<BTreeMap<String, Checksum>> {
    let mut refs = BTreeMap::new();
    for m in dest.list(layout::REFS_PREFIX).await? {
        let key = m.location.to_string();
        let name = key[layout::REFS_PREFIX.len()..].to_string();
        if validate_ref_name(&name).is_err() {
            continue;
        }
        if let Some(c) = read_ref(dest, &key).await? {
            refs.insert(name, c);
        }
    }
    Ok(refs)
}

pub async fn run(dest: &Remote, opts: &PruneOpts, progress: &dyn Progress) -> Result<PruneReport> {
    let started = Instant::now();
    let jobs = opts.jobs.max(1);
    let now = SystemTime::now();
    let grace_cutoff = now
        .checked_sub(opts.grace)
        .unwrap_or(SystemTime::UNIX_EPOCH);
    if opts.retention == Retention::Keep(0) {
        return Err(PublishError::Invalid("--keep must be at least 1".into()));
    }
    let src = Source::Store(dest);

    // Refs: the files under refs/heads are the truth.
    let refs = read_refs(dest).await?;

    for r in &opts.refs {
        if !refs.contains_key(r) {
            return Err(PublishError::RefNotFound {
                name: r.clone(),
                url: dest.loc.url.clone(),
            });
        }
    }

    // Kept commits, per ref.
    let mut known = Known::default();
    let mut kept: BTreeSet<Checksum> = BTreeSet::new();
    let mut roots: Vec<(Checksum, Checksum)> = Vec::new();
    let cutoff_secs = |d: Duration| {
        now.checked_sub(d)
            .and_then(|t| t.duration_since(SystemTime::UNIX_EPOCH).ok())
            .map(|d| d.as_secs())
            .unwrap_or(0)
    };
    let mut fetched: BTreeMap<Checksum, (Vec<u8>, arbor_repo::Commit)> = BTreeMap::new();
    progress.start("history", None);
    for (name, head) in &refs {
        let policy = (opts.refs.is_empty() || opts.refs.contains(name)).then_some(opts.retention);
        let mut c = *head;
        let mut n = 0usize;
        loop {
            // A commit another ref keeps still counts towards this ref's retention:
            // the walk goes on (refs that share history each keep their own depth).
            let got = match fetched.get(&c) {
                Some(x) => Some(x.clone()),
                None => src.commit(&c).await?,
            };
            let Some((bytes, commit)) = got else {
                if c == *head {
                    return Err(PublishError::MissingCommit {
                        name: name.clone(),
                        commit: c,
                        url: dest.loc.url.clone(),
                    });
                }
                break;
            };
            let keep = n == 0
                || match policy {
                    None => true,
                    Some(Retention::Keep(k)) => n < k,
                    Some(Retention::YoungerThan(d)) => commit.timestamp >= cutoff_secs(d),
                };
            if !keep {
                break;
            }
            if kept.insert(c) {
                progress.inc(1);
                known.commits.insert(c, CommitInfo::of(&bytes, &commit));
                roots.push((commit.root_tree, commit.root_meta));
            }
            fetched.insert(c, (bytes, commit.clone()));
            n += 1;
            match commit.parent {
                Some(p) => c = p,
                None => break,
            }
        }
    }
    progress.finish();

    // Everything stored, and the young commits that are roots too.
    progress.start("list", None);
    let listing = dest.list_objects(jobs).await?;
    let delta_listing = dest.list(layout::DELTAS_PREFIX).await?;
    progress.finish();
    if refs.is_empty() && !listing.is_empty() {
        // Nothing would be reachable: every object older than the grace period would go.
        return Err(PublishError::Invalid(format!(
            "{} has objects but no refs under {}: refusing to prune (everything would be \
             deleted); check the URL",
            dest.loc.url,
            layout::REFS_PREFIX
        )));
    }
    let young = |t: SystemTime| t > grace_cutoff;
    let mut young_commits = BTreeSet::new();
    for m in &listing {
        if let Some((c, ObjectType::Commit)) = layout::parse_object_key(m.location.as_ref()) {
            if young(m.last_modified.into()) && !kept.contains(&c) {
                young_commits.insert(c);
            }
        }
    }
    for c in &young_commits {
        if let Some((_, commit)) = src.commit(c).await? {
            roots.push((commit.root_tree, commit.root_meta));
        }
    }
    progress.start("walk", None);
    let reach = walk::reach(&src, roots, &Reach::default(), jobs).await?;
    progress.finish();

    let survives = |c: &Checksum| kept.contains(c) || young_commits.contains(c);
    let mut report = PruneReport {
        dry_run: opts.dry_run,
        kept_commits: kept.clone(),
        ..Default::default()
    };

    // Objects: commits and their metadata first, then the rest.
    let mut commit_keys = Vec::new();
    let mut object_keys = Vec::new();
    for m in &listing {
        let key = m.location.to_string();
        let Some((c, ty)) = layout::parse_object_key(&key) else {
            continue;
        };
        let reachable = match ty {
            ObjectType::Commit | ObjectType::CommitMeta | ObjectType::TombstoneCommit => {
                survives(&c)
            }
            _ => reach.contains(&c, ty),
        };
        if reachable {
            continue;
        }
        if young(m.last_modified.into()) {
            report.kept_young += 1;
            continue;
        }
        let r = Removed { key, bytes: m.size };
        if ty == ObjectType::Commit {
            report.removed_commits.insert(c);
        }
        if matches!(
            ty,
            ObjectType::Commit | ObjectType::CommitMeta | ObjectType::TombstoneCommit
        ) {
            commit_keys.push(r);
        } else {
            object_keys.push(r);
        }
    }

    // Deltas whose endpoints are gone (or that never got a superblock), unless young.
    let mut by_delta: BTreeMap<DeltaName, Vec<(Removed, SystemTime)>> = BTreeMap::new();
    for m in &delta_listing {
        let key = m.location.to_string();
        if let Some((name, _)) = DeltaName::parse_key(&key) {
            by_delta
                .entry(name)
                .or_default()
                .push((Removed { key, bytes: m.size }, m.last_modified.into()));
        }
    }
    let mut exclude = BTreeSet::new();
    let mut superblock_keys = Vec::new();
    let mut part_keys = Vec::new();
    for (name, files) in by_delta {
        let complete = files.iter().any(|(r, _)| r.key.ends_with("/superblock"));
        let endpoints_kept = survives(&name.to) && name.from.is_none_or(|f| survives(&f));
        if complete && endpoints_kept {
            continue;
        }
        if files.iter().any(|(_, t)| young(*t)) {
            report.kept_young += files.len() as u64;
            continue;
        }
        exclude.insert(name);
        report.removed_deltas.push(name.to_hex());
        for (r, _) in files {
            if r.key.ends_with("/superblock") {
                superblock_keys.push(r);
            } else {
                part_keys.push(r);
            }
        }
    }

    // Deterministic output: listings of parallel ranges come back in any order.
    for group in [
        &mut superblock_keys,
        &mut part_keys,
        &mut commit_keys,
        &mut object_keys,
    ] {
        group.sort_by(|a, b| a.key.cmp(&b.key));
    }
    let order: Vec<Removed> = superblock_keys
        .into_iter()
        .chain(part_keys)
        .chain(commit_keys)
        .chain(object_keys)
        .collect();
    // file://: the store stages each upload as `NAME#N` and renames it; an upload that
    // was killed leaves that file behind, invisible to listings (and so to the above).
    let leftovers = match &dest.loc.kind {
        LocationKind::File { root } => staging_leftovers(root, grace_cutoff),
        _ => Vec::new(),
    };
    report.bytes_removed = order
        .iter()
        .chain(leftovers.iter().map(|(r, _)| r))
        .map(|r| r.bytes)
        .sum();
    if opts.dry_run {
        report.removed = order;
        report.removed.extend(leftovers.into_iter().map(|(r, _)| r));
        report.requests = dest.stats.snapshot();
        report.seconds = started.elapsed().as_secs_f64();
        return Ok(report);
    }

    // A publish that moved a ref since the walk may reuse objects the walk did not
    // reach: delete nothing then (the next prune sees the new ref).
    if read_refs(dest).await? != refs {
        return Err(PublishError::Invalid(format!(
            "the refs of {} changed while pruning (a publish at the same time?); nothing \
             was deleted: run prune again once it is done",
            dest.loc.url
        )));
    }

    // Clients must stop hearing of the deltas before they go.
    let upd = summary::update(dest, &known, &exclude, jobs).await?;
    report.summary_written = upd.written;
    // Delete group by group so that each group is gone before the next starts.
    let groups = group_boundaries(&order);
    progress.start("delete", Some(order.len() as u64));
    for g in groups {
        stream::iter(&order[g])
            .map(|r| async move {
                dest.delete(&r.key).await?;
                progress.inc(1);
                Ok::<_, PublishError>(())
            })
            .buffer_unordered(jobs)
            .try_collect::<Vec<()>>()
            .await?;
    }
    progress.finish();
    report.removed = order;
    for (r, path) in leftovers {
        match std::fs::remove_file(&path) {
            Ok(()) => report.removed.push(r),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(PublishError::Io { path, source: e }),
        }
    }
    // A concurrent publisher may have re-listed a delta we just removed.
    let upd = summary::update(dest, &known, &BTreeSet::new(), jobs).await?;
    report.summary_written |= upd.written;
    report.requests = dest.stats.snapshot();
    report.seconds = started.elapsed().as_secs_f64();
    Ok(report)
}

/// Files under `root` named like the local store's staging files (`NAME#DIGITS`) and
/// older than `cutoff`: left by uploads that were killed. (key relative to root, path)
fn staging_leftovers(
    root: &std::path::Path,
    cutoff: SystemTime,
) -> Vec<(Removed, std::path::PathBuf)> {
    let mut out = Vec::new();
    // Only the repository's own places: the top level (summary, config) and its trees.
    let mut stack: Vec<std::path::PathBuf> = ["", "objects", "deltas", "delta-indexes", "refs"]
        .iter()
        .map(|d| root.join(d))
        .collect();
    while let Some(dir) = stack.pop() {
        let top_level = dir == root.join("");
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in entries.flatten() {
            let path = e.path();
            let Ok(meta) = e.metadata() else { continue };
            if meta.is_dir() {
                if !top_level {
                    stack.push(path);
                }
                continue;
            }
            let name = e.file_name();
            let Some((_, n)) = name.to_str().and_then(|n| n.rsplit_once('#')) else {
                continue;
            };
            let old = meta.modified().is_ok_and(|t| t <= cutoff);
            if meta.is_file() && old && !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()) {
                let key = path
                    .strip_prefix(root)
                    .map(|k| k.to_string_lossy().into_owned())
                    .unwrap_or_default();
                out.push((
                    Removed {
                        key,
                        bytes: meta.len(),
                    },
                    path,
                ));
            }
        }
    }
    out.sort_by(|a, b| a.0.key.cmp(&b.0.key));
    out
}

/// Split the deletion order into groups that must finish one before the next:
/// superblocks, delta parts, commits/commitmeta, other objects.
fn group_boundaries(order: &[Removed]) -> Vec<std::ops::Range<usize>> {
    let class = |r: &Removed| -> u8 {
        if r.key.starts_with(layout::DELTAS_PREFIX) {
            if r.key.ends_with("/superblock") {
                0
            } else {
                1
            }
        } else {
            match layout::parse_object_key(&r.key) {
                Some((
                    _,
                    ObjectType::Commit | ObjectType::CommitMeta | ObjectType::TombstoneCommit,
                )) => 2,
                _ => 3,
            }
        }
    };
    let mut out = Vec::new();
    let mut start = 0;
    for i in 1..=order.len() {
        if i == order.len() || class(&order[i]) != class(&order[start]) {
            if start < i {
                out.push(start..i);
            }
            start = i;
        }
    }
    out
}
