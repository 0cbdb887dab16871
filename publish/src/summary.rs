//! The published summary, derived from the destination itself: every `refs/heads/*` file
//! and every delta whose superblock is present. A pure function of what is stored, so
//! any publisher (or prune) can regenerate it and two publishers never erase each
//! other's refs.
//!
//! Concurrency: a publisher writes its ref *before* regenerating the summary, then
//! writes the summary conditionally (ETag; a lock file for `file://`), then lists refs and
//! deltas again and regenerates if they changed meanwhile. The last summary written is
//! therefore built from a listing that includes every ref written before it, even on
//! stores that ignore conditional headers (garage 2.5 does: its PutObject has no
//! If-Match support), because the last writer's own re-listing would have seen them.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use arbor_repo::layout::validate_ref_name;
use arbor_repo::layout::{self, DeltaName};
use arbor_repo::objects::ObjectType;
use arbor_repo::summary::{Summary, SummaryRef};
use arbor_repo::Checksum;
use futures::stream::{self, StreamExt, TryStreamExt};
use object_store::ObjectMeta;

use crate::error::{PublishError, Result};
use crate::location::LocationKind;
use crate::remote::{Expect, PutOutcome, Remote};
use crate::source::{parse_summary, read_ref, CommitInfo};

/// Give up after this many rounds of concurrent changes.
const MAX_ATTEMPTS: u32 = 40;
/// Lock file for `file://` destinations (which have no conditional update).
pub const LOCK_FILE: &str = ".arbor-summary.lock";

/// What the caller already knows, to save requests.
#[derive(Debug, Default)]
pub struct Known {
    pub commits: HashMap<Checksum, CommitInfo>,
    pub deltas: HashMap<DeltaName, Checksum>,
}

/// Result of a summary update.
#[derive(Debug, Default)]
pub struct SummaryUpdate {
    pub written: bool,
    pub refs: BTreeMap<String, Checksum>,
    pub deltas: BTreeMap<DeltaName, Checksum>,
}

/// The part of a listing that decides the summary: (key, etag, size).
type Snapshot = Vec<(String, Option<String>, u64)>;

fn snapshot(items: &[ObjectMeta]) -> Snapshot {
    let mut s: Snapshot = items
        .iter()
        .map(|m| (m.location.to_string(), m.e_tag.clone(), m.size))
        .collect();
    s.sort();
    s
}

fn superblocks(items: Vec<ObjectMeta>) -> Vec<ObjectMeta> {
    items
        .into_iter()
        .filter(|m| {
            matches!(
                DeltaName::parse_key(m.location.as_ref()),
                Some((_, "superblock"))
            )
        })
        .collect()
}

/// An exclusive `flock` on the destination directory's lock file, released on drop.
struct LocalLock(#[allow(dead_code)] std::fs::File);

async fn lock(dest: &Remote) -> Result<Option<LocalLock>> {
    let LocationKind::File { root } = &dest.loc.kind else {
        return Ok(None);
    };
    let path = root.join(LOCK_FILE);
    let f = tokio::task::spawn_blocking(move || {
        let f = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|error| PublishError::Io {
                path: path.clone(),
                error,
            })?;
        rustix::fs::flock(&f, rustix::fs::FlockOperation::LockExclusive).map_err(|e| {
            PublishError::Io {
                path,
                error: e.into(),
            }
        })?;
        Ok::<_, PublishError>(f)
    })
    .await
    .map_err(|e| PublishError::Invalid(format!("lock task: {e}")))??;
    Ok(Some(LocalLock(f)))
}

/// Backoff with jitter from the clock (no RNG dependency): 20 ms · 2^n, capped, ± half.
fn backoff(attempt: u32) -> Duration {
    let base = 20u64 << attempt.min(6);
    let jitter = u64::from(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0),
    ) % base.max(1);
    Duration::from_millis(base / 2 + jitter)
}

/// Regenerate the destination's summary from its refs and deltas (minus `exclude`),
/// writing it only if it changed. With a signer, `summary.sig` is made anew for every
/// summary written (and for an unchanged one it does not validly sign), uploaded right
/// after the summary; without one, a stale `summary.sig` is deleted before the summary is
/// written (clients would keep their cached summary, or fail, on a mismatched pair).
pub async fn update(
    dest: &Remote,
    known: &Known,
    exclude: &BTreeSet<DeltaName>,
    jobs: usize,
    signer: Option<&dyn crate::Signing>,
) -> Result<SummaryUpdate> {
    let summary_url = dest.url(layout::SUMMARY);
    for attempt in 1..=MAX_ATTEMPTS {
        let guard = lock(dest).await?;
        let current = dest.get(layout::SUMMARY).await?;
        let current_parsed = match &current {
            Some(f) => match parse_summary(&summary_url, &f.data) {
                Ok(s) => Some(s),
                Err(e) => {
                    tracing::warn!("{e}; replacing it");
                    None
                }
            },
            None => None,
        };
        let ref_items = dest.list(layout::REFS_PREFIX).await?;
        let delta_items = superblocks(dest.list(layout::DELTAS_PREFIX).await?);

        // Refs: every valid ref file that points at a commit present at the destination.
        let old_refs: HashMap<Checksum, SummaryRef> = current_parsed
            .iter()
            .flat_map(|s| s.refs.iter().map(|r| (r.commit, r.clone())))
            .collect();
        let names: Vec<(String, String)> = ref_items
            .iter()
            .filter_map(|m| {
                let key = m.location.to_string();
                let name = key.strip_prefix(layout::REFS_PREFIX)?.to_string();
                validate_ref_name(&name).ok()?;
                Some((name, key))
            })
            .collect();
        let resolved: Vec<Option<SummaryRef>> = stream::iter(names)
            .map(|(name, key)| {
                let old_refs = &old_refs;
                async move {
                    let commit = match read_ref(dest, &key).await {
                        Ok(Some(c)) => c,
                        Ok(None) => return Ok::<_, PublishError>(None),
                        // Another tool's garbage under refs/heads must not block every
                        // publish: it is left out of the summary, and said so.
                        Err(PublishError::Corrupt { url, why }) => {
                            tracing::warn!("{url}: {why}; not advertising ref {name}");
                            return Ok(None);
                        }
                        Err(e) => return Err(e),
                    };
                    if let Some(old) = old_refs.get(&commit) {
                        return Ok(Some(SummaryRef {
                            name,
                            ..old.clone()
                        }));
                    }
                    let info = match known.commits.get(&commit) {
                        Some(i) => i.clone(),
                        None => {
                            let ckey = layout::object_key(&commit, ObjectType::Commit);
                            let Some(f) = dest.get(&ckey).await? else {
                                tracing::warn!(
                                    "ref {name} points at {commit}, which is missing from {}; not advertising it",
                                    dest.loc.url
                                );
                                return Ok(None);
                            };
                            let c = arbor_repo::Commit::from_bytes(&f.data).map_err(|e| {
                                PublishError::Corrupt {
                                    url: dest.url(&ckey),
                                    why: e.to_string(),
                                }
                            })?;
                            CommitInfo::of(&f.data, &c)
                        }
                    };
                    Ok(Some(SummaryRef::new(
                        name,
                        commit,
                        info.size,
                        info.timestamp,
                        info.version.as_deref(),
                    )))
                }
            })
            .buffer_unordered(jobs.max(1))
            .try_collect()
            .await?;
        let refs: Vec<SummaryRef> = resolved.into_iter().flatten().collect();

        // Deltas: every superblock present, digest from what we know or by hashing it.
        let old_deltas = current_parsed
            .as_ref()
            .map(Summary::deltas)
            .unwrap_or_default();
        let delta_names: Vec<(DeltaName, String)> = delta_items
            .iter()
            .filter_map(|m| {
                let key = m.location.to_string();
                let (n, _) = DeltaName::parse_key(&key)?;
                (!exclude.contains(&n)).then_some((n, key))
            })
            .collect();
        let deltas: BTreeMap<DeltaName, Checksum> = stream::iter(delta_names)
            .map(|(n, key)| {
                let old_deltas = &old_deltas;
                async move {
                    if let Some(d) = known.deltas.get(&n).or_else(|| old_deltas.get(&n)) {
                        return Ok::<_, PublishError>(Some((n, *d)));
                    }
                    Ok(dest.get(&key).await?.map(|f| (n, Checksum::of(&f.data))))
                }
            })
            .buffer_unordered(jobs.max(1))
            .try_collect::<Vec<_>>()
            .await?
            .into_iter()
            .flatten()
            .collect();

        let result = SummaryUpdate {
            written: false,
            refs: refs.iter().map(|r| (r.name.clone(), r.commit)).collect(),
            deltas: deltas.clone(),
        };
        // Unchanged (apart from the timestamp)? Then leave it, and its signature, alone
        // (signing it when it is not validly signed by our keys).
        if let (Some(cur), Some(parsed)) = (&current, &current_parsed) {
            if let Some(ts) = parsed.last_modified() {
                if Summary::build(refs.clone(), &deltas, ts).to_bytes() == cur.data {
                    if let Some(signer) = signer {
                        let sig = dest.get(layout::SUMMARY_SIG).await?;
                        if !sig.is_some_and(|s| signer.summary_signed(&cur.data, &s.data)) {
                            put_signature(dest, signer, &cur.data).await?;
                            return Ok(SummaryUpdate {
                                written: true,
                                ..result
                            });
                        }
                    }
                    return Ok(result);
                }
            }
        }
        let new =
            Summary::build(refs, &deltas, arbor_repo::summary::last_modified_now()).to_bytes();
        // Signed before anything is written: a signer that fails leaves the old pair.
        let new_sig = match signer {
            Some(s) => Some(s.sign_summary(&new).map_err(|why| {
                PublishError::Invalid(format!(
                    "signing the summary of {}: {why}; the published summary is unchanged",
                    dest.loc.url
                ))
            })?),
            // A signature over the old bytes would make clients keep their cached summary.
            None => {
                dest.delete(layout::SUMMARY_SIG).await?;
                None
            }
        };
        let expect = match (&guard, &current) {
            (Some(_), _) => Expect::Any,
            (None, Some(f)) if f.e_tag.is_some() || f.version.is_some() => Expect::Unchanged {
                e_tag: f.e_tag.clone(),
                version: f.version.clone(),
            },
            (None, Some(_)) => Expect::Any,
            (None, None) => Expect::Absent,
        };
        if dest.put(layout::SUMMARY, new.into(), expect).await? == PutOutcome::Conflict {
            tracing::debug!("summary of {} changed concurrently; retrying", dest.loc.url);
            drop(guard);
            tokio::time::sleep(backoff(attempt)).await;
            continue;
        }
        if let Some(sig) = new_sig {
            dest.put(layout::SUMMARY_SIG, sig.into(), Expect::Any)
                .await?;
        }
        if guard.is_some() {
            // Every writer of a file:// summary holds the lock: nothing can have slipped in.
            return Ok(SummaryUpdate {
                written: true,
                ..result
            });
        }
        // Refs or deltas written meanwhile by others must be in the last summary.
        let again_refs = dest.list(layout::REFS_PREFIX).await?;
        let again_deltas = superblocks(dest.list(layout::DELTAS_PREFIX).await?);
        if snapshot(&again_refs) == snapshot(&ref_items)
            && snapshot(&again_deltas) == snapshot(&delta_items)
        {
            return Ok(SummaryUpdate {
                written: true,
                ..result
            });
        }
        tracing::debug!(
            "refs or deltas of {} changed while writing the summary; regenerating",
            dest.loc.url
        );
        tokio::time::sleep(backoff(attempt)).await;
    }
    Err(PublishError::Contention {
        url: summary_url,
        attempts: MAX_ATTEMPTS,
    })
}

/// Sign `summary` and upload a fresh `summary.sig`.
async fn put_signature(dest: &Remote, signer: &dyn crate::Signing, summary: &[u8]) -> Result<()> {
    let sig = signer.sign_summary(summary).map_err(|why| {
        PublishError::Invalid(format!("signing the summary of {}: {why}", dest.loc.url))
    })?;
    dest.put(layout::SUMMARY_SIG, sig.into(), Expect::Any)
        .await?;
    Ok(())
}
