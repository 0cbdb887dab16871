//! Prune a published repository: keep, per ref, the newest N commits (or those younger
//! than a cutoff), and delete commits, objects and deltas nothing kept reaches.
//!
//! Never while a publisher is in flight (a lease, see `lease`). Order, so a client
//! never sees a ref or delta to something missing:
//! summary (without the deltas to delete) → delta superblocks → delta parts → commits
//! and commitmeta → other objects → summary again (in case a concurrent publisher
//! re-advertised a delta in between). Refs never change: each head is always kept.
//!
//! Nothing younger than the grace period is deleted, and every commit younger than it
//! counts as a root, so objects of a publish in flight are never removed.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant, SystemTime};

use arbor_repo::layout::validate_ref_name;
use arbor_repo::layout::{self, DeltaName};
use arbor_repo::objects::ObjectType;
use arbor_repo::progress::Progress;
use arbor_repo::Checksum;
use futures::stream::{self, StreamExt, TryStreamExt};

use crate::error::{PublishError, Result};
use crate::lease::{Lease, Role};
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
    /// Signs the summary prune rewrites (a signed repository stays signed).
    pub signing: Option<std::sync::Arc<dyn crate::Signing>>,
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
        match read_ref(dest, &key).await {
            Ok(Some(c)) => {
                refs.insert(name, c);
            }
            Ok(None) => {}
            // Garbage there points at nothing to keep (publish skips it too).
            Err(PublishError::Corrupt { url, why }) => {
                tracing::warn!("{url}: {why}; ignoring ref {name}")
            }
            Err(e) => return Err(e),
        }
    }
    Ok(refs)
}

/// Prune under a prune lease (see `lease`): never while a publisher is in flight. A dry
/// run deletes nothing and takes none.
pub async fn run(dest: &Remote, opts: &PruneOpts, progress: &dyn Progress) -> Result<PruneReport> {
    if opts.dry_run {
        return run_leased(dest, opts, progress).await;
    }
    let lease = Lease::take(dest, &Role::Prune, opts.grace).await?;
    let r = run_leased(dest, opts, progress).await;
    lease.release(dest).await;
    r
}

async fn run_leased(
    dest: &Remote,
    opts: &PruneOpts,
    progress: &dyn Progress,
) -> Result<PruneReport> {
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
    progress.start("history", None);
    for (name, head) in &refs {
        let policy = (opts.refs.is_empty() || opts.refs.contains(name)).then_some(opts.retention);
        let mut c = *head;
        let mut n = 0usize;
        loop {
            // A commit another ref keeps still counts towards this ref's retention:
            // the walk goes on (refs that share history each keep their own depth).
            let (info, new_root) = match known.commits.get(&c) {
                Some(info) => (info.clone(), None),
                None => {
                    let Some((bytes, commit)) = src.commit(&c).await? else {
                        if c == *head {
                            return Err(PublishError::MissingCommit {
                                name: name.clone(),
                                commit: c,
                                url: dest.loc.url.clone(),
                            });
                        }
                        break;
                    };
                    let root = (commit.root_tree, commit.root_meta);
                    (CommitInfo::of(&bytes, &commit), Some(root))
                }
            };
            let keep = n == 0
                || match policy {
                    None => true,
                    Some(Retention::Keep(k)) => n < k,
                    Some(Retention::YoungerThan(d)) => info.timestamp >= cutoff_secs(d),
                };
            if !keep {
                break;
            }
            if let Some(root) = new_root {
                progress.inc(1);
                kept.insert(c);
                roots.push(root);
                known.commits.insert(c, info.clone());
            }
            n += 1;
            match info.parent {
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
        report.removed_deltas.push(name.to_string());
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
    report.bytes_removed = order.iter().chain(&leftovers).map(|r| r.bytes).sum();
    if opts.dry_run {
        report.removed = order;
        report.removed.extend(leftovers);
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
    let upd = summary::update(dest, &known, &exclude, jobs, opts.signing.as_deref()).await?;
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
    for r in leftovers {
        let LocationKind::File { root } = &dest.loc.kind else {
            break;
        };
        let path = root.join(&r.key);
        match std::fs::remove_file(&path) {
            Ok(()) => report.removed.push(r),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(error) => return Err(PublishError::Io { path, error }),
        }
    }
    // A concurrent publisher may have re-listed a delta we just removed.
    let upd = summary::update(
        dest,
        &known,
        &BTreeSet::new(),
        jobs,
        opts.signing.as_deref(),
    )
    .await?;
    report.summary_written |= upd.written;
    report.requests = dest.stats.snapshot();
    report.seconds = started.elapsed().as_secs_f64();
    Ok(report)
}

/// Files named like the local store's staging files (`NAME#DIGITS`) and older than
/// `cutoff`, at the top of `root` and in the repository's trees: left by uploads that
/// were killed. Keys are relative to `root`.
fn staging_leftovers(root: &std::path::Path, cutoff: SystemTime) -> Vec<Removed> {
    let is_leftover = |name: &str| {
        name.rsplit_once('#')
            .is_some_and(|(_, n)| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
    };
    let mut out = Vec::new();
    // (directory, recurse into it)
    let mut stack = vec![(root.to_path_buf(), false)];
    stack.extend(
        [
            layout::OBJECTS_PREFIX,
            layout::DELTAS_PREFIX,
            layout::DELTA_INDEXES_PREFIX,
            layout::REFS_PREFIX,
        ]
        .iter()
        .map(|d| (root.join(d.trim_end_matches('/')), true)),
    );
    while let Some((dir, recurse)) = stack.pop() {
        for e in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let Ok(meta) = e.metadata() else { continue };
            let path = e.path();
            if meta.is_dir() {
                if recurse {
                    stack.push((path, true));
                }
            } else if meta.is_file()
                && meta.modified().is_ok_and(|t| t <= cutoff)
                && e.file_name().to_str().is_some_and(is_leftover)
            {
                if let Ok(key) = path.strip_prefix(root) {
                    out.push(Removed {
                        key: key.to_string_lossy().into_owned(),
                        bytes: meta.len(),
                    });
                }
            }
        }
    }
    out.sort_by(|a, b| a.key.cmp(&b.key));
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
