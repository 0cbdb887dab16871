//! Publish and mirror: copy refs' commits, the objects they reach and their deltas from a
//! source to a destination store, uploading only what the destination lacks, in an
//! order that keeps the destination valid for clients after a crash at any point:
//!
//! ```text
//! 1 objects (file, dirmeta)    content-addressed; nothing points at them yet
//! 2 objects (dirtree)
//! 3 deltas: parts, then superblocks   a delta exists once its superblock does
//! 4 commitmeta                signatures; a published one only replaced by one that adds to it
//! 5 commits                    a commit at the destination ⇒ all its objects are there
//! 6 config                     repo_version=1, mode=archive-z2
//! 7 refs/heads/<ref>           each publisher writes only its own refs
//! 8 summary, then summary.sig   regenerated from the destination's refs and deltas; signed
//!                              anew (`--sign-with`), else a stale summary.sig is deleted first
//! ```
//!
//! Refs go before the summary (not after) because the summary is derived from the refs
//! at the destination; a client never sees either until the commit is complete, and a
//! summary, when present, is what clients read. Every step is idempotent: a rerun skips
//! what is there and finishes the rest.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::time::Instant;

use arbor_repo::layout::{self, DeltaName};
use arbor_repo::objects::ObjectType;
use arbor_repo::progress::Progress;
use arbor_repo::Checksum;
use futures::stream::{self, StreamExt, TryStreamExt};

use crate::body::Body;
use crate::error::{PublishError, Result};
use crate::lease::{Lease, Role};
use crate::location::LocationKind;
use crate::remote::{Expect, Remote, RequestCounts};
use crate::source::{read_ref, CommitInfo, Source};
use crate::summary::{self, Known};
use crate::walk::{self, Reach};

/// Up to this many candidate objects are checked with HEAD; more, with one listing.
const HEAD_THRESHOLD: usize = 256;

/// Options for publish and mirror.
#[derive(Debug, Clone)]
pub struct TransferOpts {
    /// Requests in flight at once.
    pub jobs: usize,
    /// How many parents of each ref's head to copy (`None`: all the source has).
    pub depth: Option<usize>,
    /// Move a destination ref even when its commit is not an ancestor of the new one
    /// (a publish only; a mirror always follows its source).
    pub force: bool,
    /// Sign the summary, check commits before uploading (`--sign-with`,
    /// `--require-signatures`).
    pub signing: Option<std::sync::Arc<dyn crate::Signing>>,
    /// Mirror: publish an unsigned summary although the source's is signed.
    pub allow_unsigned_summary: bool,
    /// Move a destination ref only to a descendant of its commit (release: it always
    /// continues the published head, so anything else is a concurrent release or a
    /// diverged repository); without it a commit no older than the published one may
    /// replace it where the local history does not reach it.
    pub require_descent: bool,
}

impl Default for TransferOpts {
    fn default() -> Self {
        TransferOpts {
            jobs: 16,
            depth: None,
            force: false,
            signing: None,
            allow_unsigned_summary: false,
            require_descent: false,
        }
    }
}

/// What a publish or mirror did.
#[derive(Debug, Clone, Default)]
pub struct TransferReport {
    /// The refs published and their commits.
    pub refs: BTreeMap<String, Checksum>,
    /// Refs whose file at the destination changed.
    pub refs_updated: Vec<String>,
    pub commits_uploaded: u64,
    /// Objects (files, dirtrees, dirmeta, commitmeta, commits) uploaded.
    pub objects_uploaded: u64,
    /// Candidate objects the destination already had.
    pub objects_skipped: u64,
    pub deltas_uploaded: u64,
    pub delta_files_uploaded: u64,
    pub config_written: bool,
    pub summary_written: bool,
    /// Refs and deltas the destination's summary now advertises.
    pub advertised_refs: BTreeMap<String, Checksum>,
    pub advertised_deltas: Vec<String>,
    /// Requests made to the destination (bytes_uploaded counts every byte sent).
    pub requests: RequestCounts,
    /// Requests made to the source (mirror only).
    pub source_requests: RequestCounts,
    pub seconds: f64,
}

fn sync_local(dest: &Remote) -> Result<()> {
    if let LocationKind::File { root } = &dest.loc.kind {
        let dir = std::fs::File::open(root).map_err(|error| PublishError::Io {
            path: root.clone(),
            error,
        })?;
        rustix::fs::syncfs(&dir).map_err(|e| PublishError::Io {
            path: root.clone(),
            error: e.into(),
        })?;
    }
    Ok(())
}

/// Which of `keys` the destination has.
async fn present(dest: &Remote, keys: &[String], jobs: usize) -> Result<HashSet<String>> {
    if keys.is_empty() {
        return Ok(HashSet::new());
    }
    if keys.len() <= HEAD_THRESHOLD {
        let found: Vec<Option<String>> = stream::iter(keys)
            .map(|k| async move { Ok::<_, PublishError>(dest.head(k).await?.map(|_| k.clone())) })
            .buffer_unordered(jobs)
            .try_collect()
            .await?;
        return Ok(found.into_iter().flatten().collect());
    }
    let wanted: HashSet<&String> = keys.iter().collect();
    Ok(dest
        .list_objects(jobs)
        .await?
        .into_iter()
        .map(|m| m.location.to_string())
        .filter(|k| wanted.contains(k))
        .collect())
}

/// [`verify`] for a body of any size, read in bounded steps; a delta part is also held
/// to its superblock's (size, SHA-256).
pub(crate) async fn verify_body(
    key: &str,
    body: Body,
    part: Option<(u64, Checksum)>,
) -> std::result::Result<Body, String> {
    if let Body::Mem(data) = body {
        if let Some((size, digest)) = part {
            check_part(&data[..], data.len() as u64, size, &digest)?;
        }
        return verify(key, data).await.map(Body::Mem);
    }
    let object = layout::parse_object_key(key);
    tokio::task::spawn_blocking(move || {
        let mut body = body;
        let len = body.len();
        {
            let r = body.reader().map_err(|e| e.to_string())?;
            match (object, part) {
                (_, Some((size, digest))) => check_part(r, len, size, &digest)?,
                (Some((c, ObjectType::File)), None) => {
                    arbor_repo::filez::verify_archive_file_reader(r, &c)
                        .map_err(|e| e.to_string())?
                }
                (
                    Some((c, ObjectType::DirTree | ObjectType::DirMeta | ObjectType::Commit)),
                    None,
                ) => {
                    let mut h = arbor_repo::checksum::Hasher::new();
                    hash_reader(r, &mut h)?;
                    let actual = h.finish();
                    if actual != c {
                        return Err(format!("checksum mismatch, actual {actual}"));
                    }
                }
                _ => {}
            }
        }
        Ok(body)
    })
    .await
    .map_err(|e| format!("verifying: {e}"))?
}

fn hash_reader(
    mut r: impl std::io::Read,
    h: &mut arbor_repo::checksum::Hasher,
) -> std::result::Result<(), String> {
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = r.read(&mut buf).map_err(|e| e.to_string())?;
        if n == 0 {
            return Ok(());
        }
        h.update(&buf[..n]);
    }
}

/// A delta part is exactly the size and SHA-256 its superblock gives.
fn check_part(
    r: impl std::io::Read,
    len: u64,
    size: u64,
    digest: &Checksum,
) -> std::result::Result<(), String> {
    if len != size {
        return Err(format!(
            "delta part is {len} bytes, its superblock says {size}"
        ));
    }
    let mut h = arbor_repo::checksum::Hasher::new();
    hash_reader(r, &mut h)?;
    let actual = h.finish();
    if actual != *digest {
        return Err(format!(
            "delta part checksum {actual}, its superblock says {digest}"
        ));
    }
    Ok(())
}

/// Check an object's bytes against its key (content-addressed objects only; delta
/// files, refs and the like pass through). Runs on a blocking thread: a FILE object is
/// inflated and hashed.
pub(crate) async fn verify(key: &str, data: Vec<u8>) -> std::result::Result<Vec<u8>, String> {
    let Some((c, ty)) = layout::parse_object_key(key) else {
        return Ok(data);
    };
    tokio::task::spawn_blocking(move || {
        match ty {
            ObjectType::File => {
                arbor_repo::filez::verify_archive_file_streaming(&data, &c)
                    .map_err(|e| e.to_string())?;
            }
            ObjectType::DirTree | ObjectType::DirMeta | ObjectType::Commit => {
                let actual = Checksum::of(&data);
                if actual != c {
                    return Err(format!("checksum mismatch, actual {actual}"));
                }
            }
            ObjectType::CommitMeta | ObjectType::TombstoneCommit => {}
        }
        Ok(data)
    })
    .await
    .map_err(|e| format!("verifying: {e}"))?
}

/// What each delta part file must be (size, SHA-256), from its superblock's part table.
pub(crate) type PartChecks = HashMap<String, (u64, Checksum)>;

/// A delta about to be published, checked against itself: the superblock within the
/// size 2022.7 clients fetch, parsing, naming the commits its key names and carrying the
/// to-commit's bytes; inline parts matching their headers. The part files' expected
/// sizes and digests go into `checks`, for [`upload`] to hold each part to as it
/// passes. A damaged delta is refused before anything of it is uploaded: a CDN would
/// serve it, under a name that does not change, for a day.
pub(crate) fn check_delta(
    url: &str,
    name: &DeltaName,
    superblock: &[u8],
    checks: &mut PartChecks,
) -> Result<()> {
    let bad = |why: String| PublishError::Corrupt {
        url: url.to_string(),
        why,
    };
    if superblock.len() > arbor_delta::format::MAX_SUPERBLOCK_SIZE {
        return Err(bad(format!(
            "delta superblock is {} bytes; ostree 2022.7 clients refuse superblocks over {} bytes (OSTREE_MAX_METADATA_SIZE) — regenerate it with fewer inline parts",
            superblock.len(),
            arbor_delta::format::MAX_SUPERBLOCK_SIZE
        )));
    }
    let sb = arbor_delta::format::Superblock::parse(superblock)
        .map_err(|e| bad(format!("invalid delta superblock: {e}")))?;
    if sb.to != name.to || sb.from != name.from {
        return Err(bad(format!(
            "the superblock is of delta {}, stored as {name}",
            sb.name()
        )));
    }
    if Checksum::of(&sb.commit_bytes) != name.to {
        return Err(bad("the superblock's commit is not its to-commit".into()));
    }
    for (i, part) in sb.parts.iter().enumerate() {
        let key = name.part_key(i);
        match sb.metadata.iter().find(|(k, _, _)| *k == key) {
            Some((_, _, inline)) => {
                if inline.len() as u64 != part.size || Checksum::of(inline) != part.checksum {
                    return Err(bad(format!("inline part {i} does not match its header")));
                }
            }
            None => {
                checks.insert(key, (part.size, part.checksum));
            }
        }
    }
    Ok(())
}

/// Copy `keys` from the source, `jobs` at a time. A key the source lacks is an error
/// unless `optional`. Delta parts are held to `checks`. Returns how many were copied.
#[allow(clippy::too_many_arguments)]
async fn upload(
    src: &Source<'_>,
    dest: &Remote,
    keys: &[String],
    checks: &PartChecks,
    optional: bool,
    jobs: usize,
    phase: &str,
    progress: &dyn Progress,
) -> Result<u64> {
    if keys.is_empty() {
        return Ok(0);
    }
    progress.start(phase, Some(keys.len() as u64));
    let copied: Vec<bool> = stream::iter(keys)
        .map(|k| async move {
            let data = match src.read_body(k).await? {
                Some(d) => d,
                None if optional => return Ok(false),
                None => {
                    return Err(PublishError::Corrupt {
                        url: format!("{}/{k}", src.describe()),
                        why: "object is missing from the source".into(),
                    })
                }
            };
            // A damaged object must not be published: it would be served (and cached
            // for a year) under a name that promises other content.
            let corrupt = |why| PublishError::Corrupt {
                url: format!("{}/{k}", src.describe()),
                why,
            };
            let check = checks.get(k).copied();
            let data = verify_body(k, data, check).await.map_err(corrupt)?;
            let len = data.len();
            dest.put_body(k, data).await?;
            progress.inc(1);
            progress.bytes(len);
            Ok::<_, PublishError>(true)
        })
        .buffer_unordered(jobs)
        .try_collect()
        .await?;
    progress.finish();
    Ok(copied.into_iter().filter(|c| *c).count() as u64)
}

/// Whether `ancestor` is `commit` or one of its parents, as far as the source has them.
async fn is_ancestor(src: &Source<'_>, ancestor: &Checksum, commit: &Checksum) -> Result<bool> {
    let mut c = *commit;
    loop {
        if c == *ancestor {
            return Ok(true);
        }
        match src.commit(&c).await? {
            Some((_, parsed)) => match parsed.parent {
                Some(p) => c = p,
                None => return Ok(false),
            },
            None => return Ok(false),
        }
    }
}

/// Before anything is uploaded: every ref must move forward — to a descendant of the
/// destination's commit or, where the source does not have that history (a fresh runner,
/// a pruned repository), to a commit no older than it. A runner with an old copy of the
/// repository would otherwise roll the published ref back. All refs are checked before
/// any is written.
async fn check_forward(
    src: &Source<'_>,
    dest: &Remote,
    dest_ref_items: &[object_store::ObjectMeta],
    refs: &BTreeMap<String, Checksum>,
    require_descent: bool,
) -> Result<()> {
    let existing: HashSet<String> = dest_ref_items
        .iter()
        .map(|m| m.location.to_string())
        .collect();
    for (name, ours) in refs {
        let key = layout::ref_key(name);
        if !existing.contains(&key) {
            continue;
        }
        let theirs = match read_ref(dest, &key).await {
            Ok(Some(c)) if c != *ours => c,
            Ok(_) | Err(PublishError::Corrupt { .. }) => continue,
            Err(e) => return Err(e),
        };
        if is_ancestor(src, &theirs, ours).await? {
            continue;
        }
        if require_descent {
            return Err(PublishError::NotForward(format!(
                "ref {name:?} at {} is {theirs}, which {ours} does not descend from: another \
                 release published it meanwhile, or this repository diverged from the \
                 published history; nothing was uploaded — rerun to continue from {theirs} \
                 (or pass --force to replace it)",
                dest.loc.url
            )));
        }
        let their_commit = match src.commit(&theirs).await? {
            Some((_, c)) => Some(c),
            None => {
                let ckey = layout::object_key(&theirs, ObjectType::Commit);
                match dest.get(&ckey).await? {
                    Some(f) => arbor_repo::Commit::from_bytes(&f.data).ok(),
                    None => None,
                }
            }
        };
        let Some(their_commit) = their_commit else {
            continue; // nothing readable to protect
        };
        let Some((_, our_commit)) = src.commit(ours).await? else {
            continue;
        };
        if our_commit.timestamp < their_commit.timestamp {
            return Err(PublishError::NotForward(format!(
                "ref {name:?} at {} is {theirs} (committed at unix time {}), which is neither \
                 an ancestor of {ours} nor older than it (committed at {}): publishing would \
                 move the ref back (pass --force to do it anyway, e.g. for a rollback)",
                dest.loc.url, their_commit.timestamp, our_commit.timestamp
            )));
        }
    }
    Ok(())
}

/// Publish (source: a local repository) or mirror (source: a store) `wanted` refs
/// (all the source has when empty).
/// Publish or mirror under a publish lease (see `lease`): never while a prune deletes.
pub async fn run(
    src: &Source<'_>,
    dest: &Remote,
    wanted: &[String],
    opts: &TransferOpts,
    progress: &dyn Progress,
) -> Result<TransferReport> {
    let mut leases = vec![Lease::take(dest, &Role::Publish, crate::prune::DEFAULT_GRACE).await?];
    let r = run_leased(src, dest, wanted, opts, progress, &mut leases).await;
    for l in leases {
        l.release(dest).await;
    }
    r
}

async fn run_leased(
    src: &Source<'_>,
    dest: &Remote,
    wanted: &[String],
    opts: &TransferOpts,
    progress: &dyn Progress,
    leases: &mut Vec<Lease>,
) -> Result<TransferReport> {
    let started = Instant::now();
    let jobs = opts.jobs.max(1);
    let mut report = TransferReport::default();
    // file://: none of the destination's directories a planted link, before any write.
    dest.refuse_planted_links()?;

    // First request: checks endpoint, credentials and bucket before any work.
    let dest_ref_items = dest.list(layout::REFS_PREFIX).await?;
    let src_refs = src.refs().await?;
    let refs: BTreeMap<String, Checksum> = if wanted.is_empty() {
        src_refs
    } else {
        wanted
            .iter()
            .map(|n| {
                src_refs
                    .get(n)
                    .map(|c| (n.clone(), *c))
                    .ok_or_else(|| PublishError::RefNotFound {
                        name: n.clone(),
                        url: src.describe(),
                    })
            })
            .collect::<Result<_>>()?
    };
    if refs.is_empty() {
        return Err(PublishError::Invalid(format!(
            "{} has no refs to publish",
            src.describe()
        )));
    }
    report.refs = refs.clone();
    if opts.require_descent {
        // A release checks descent, then moves the ref: one release per ref at a time.
        for name in refs.keys() {
            leases.push(
                Lease::take(dest, &Role::Ref(name.clone()), crate::prune::DEFAULT_GRACE).await?,
            );
        }
    }
    let signs_summaries = opts.signing.as_ref().is_some_and(|s| s.signs_summaries());
    if let Source::Store(s) = src {
        if !signs_summaries
            && !opts.allow_unsigned_summary
            && s.head(layout::SUMMARY_SIG).await?.is_some()
        {
            return Err(PublishError::Invalid(format!(
                "{} has a signed summary; the mirror's would be unsigned: pass --sign-with to sign it, or --allow-unsigned-summary",
                src.describe()
            )));
        }
    }
    if matches!(src, Source::Local(_)) && !opts.force {
        check_forward(src, dest, &dest_ref_items, &refs, opts.require_descent).await?;
    }

    // History: from each head back to the first commit the destination already has.
    let mut known = Known::default();
    let mut new_commits: Vec<(Checksum, (Checksum, Checksum))> = Vec::new();
    let mut boundary: Vec<(Checksum, Checksum)> = Vec::new();
    // Every commit walked, with the parent a walk goes on to (None where walks end: at
    // the destination, at the source's first commit, or where its history is partial).
    // Each ref walks its own depth, also through commits another ref walked.
    let mut walked: BTreeMap<Checksum, Option<Checksum>> = BTreeMap::new();
    progress.start("history", None);
    for (name, head) in &refs {
        let mut c = *head;
        let mut depth = 0usize;
        loop {
            let next = match walked.get(&c) {
                Some(next) => *next,
                None => {
                    let next = match src.commit(&c).await? {
                        None if c == *head => {
                            return Err(PublishError::MissingCommit {
                                name: name.clone(),
                                commit: c,
                                url: src.describe(),
                            });
                        }
                        None => None, // partial history: the source ends here
                        Some((bytes, commit)) => {
                            known.commits.insert(c, CommitInfo::of(&bytes, &commit));
                            progress.inc(1);
                            let key = layout::object_key(&c, ObjectType::Commit);
                            let roots = (commit.root_tree, commit.root_meta);
                            if dest.head(&key).await?.is_some() {
                                boundary.push(roots);
                                None
                            } else {
                                new_commits.push((c, roots));
                                commit.parent
                            }
                        }
                    };
                    walked.insert(c, next);
                    next
                }
            };
            if opts.depth.is_some_and(|d| depth >= d) {
                break;
            }
            depth += 1;
            match next {
                Some(p) => c = p,
                None => break,
            }
        }
    }
    progress.finish();

    // Signatures required: every commit to upload, and every head, checked first.
    if let Some(signing) = &opts.signing {
        let to_check: BTreeSet<Checksum> = new_commits
            .iter()
            .map(|(c, _)| *c)
            .chain(refs.values().copied())
            .collect();
        for c in &to_check {
            let Some((bytes, _)) = src.commit(c).await? else {
                continue;
            };
            let meta = src
                .read_key(&layout::object_key(c, ObjectType::CommitMeta))
                .await?;
            signing
                .check_commit(c, &bytes, meta.as_deref())
                .map_err(|why| {
                    PublishError::Invalid(format!(
                        "commit {c} in {}: {why}; nothing was uploaded",
                        src.describe()
                    ))
                })?;
        }
    }

    // Objects the new commits reach that the boundary commits (complete at the
    // destination) do not. For a store source the boundary walk would cost GETs; the
    // presence check below catches shared objects anyway.
    let boundary_reach = if matches!(src, Source::Local(_)) && !new_commits.is_empty() {
        walk::reach(src, boundary.iter().copied(), &Reach::default(), jobs).await?
    } else {
        Reach::default()
    };
    progress.start("walk", None);
    let reach = walk::reach(
        src,
        new_commits.iter().map(|(_, r)| *r),
        &boundary_reach,
        jobs,
    )
    .await?;
    progress.finish();
    let object_keys: Vec<String> = reach
        .objects()
        .map(|(c, t)| layout::object_key(&c, t))
        .collect();
    // Detached metadata of the new commits, and of heads already published (a signature
    // added since, e.g. by `ostree gpg-sign`): uploaded where the destination has none;
    // a published one is never replaced.
    let commitmeta_keys: Vec<String> = new_commits
        .iter()
        .map(|(c, _)| *c)
        .chain(refs.values().copied())
        .collect::<BTreeSet<Checksum>>()
        .iter()
        .map(|c| layout::object_key(c, ObjectType::CommitMeta))
        .filter(|k| match src {
            Source::Local(r) => r.path().join(k).exists(),
            Source::Store(_) => true,
        })
        .collect();
    let commit_keys: Vec<String> = new_commits
        .iter()
        .map(|(c, _)| layout::object_key(c, ObjectType::Commit))
        .collect();
    let mut candidates = object_keys.clone();
    candidates.extend(commitmeta_keys.iter().cloned());
    let have = present(dest, &candidates, jobs).await?;
    // Files and dirmeta before the dirtrees that name them.
    let (missing_trees, missing_files): (Vec<String>, Vec<String>) = object_keys
        .iter()
        .filter(|k| !have.contains(*k))
        .cloned()
        .partition(|k| matches!(layout::parse_object_key(k), Some((_, ObjectType::DirTree))));
    let mut missing_meta: Vec<String> = commitmeta_keys
        .iter()
        .filter(|k| !have.contains(*k))
        .cloned()
        .collect();
    // A published commitmeta the local one adds signatures to (a key added, rotation) is
    // replaced, with the deltas to that commit (they embed it); one that would lose a
    // published signature is kept, and said so.
    let mut resigned: HashSet<Checksum> = HashSet::new();
    if let Source::Local(_) = src {
        for k in commitmeta_keys.iter().filter(|k| have.contains(*k)) {
            let (Some(local), Some(theirs)) = (src.read_key(k).await?, dest.get(k).await?) else {
                continue;
            };
            if local == theirs.data {
                continue;
            }
            let Some((c, _)) = layout::parse_object_key(k) else {
                continue;
            };
            if crate::signing::only_adds(&theirs.data, &local) {
                tracing::info!("commit {c}: publishing its new signatures");
                missing_meta.push(k.clone());
                resigned.insert(c);
            } else {
                tracing::warn!(
                    "commit {c}: the detached metadata at {} has signatures the local one lacks; keeping the published one",
                    dest.loc.url
                );
            }
        }
    }
    report.objects_skipped =
        (candidates.len() - missing_files.len() - missing_trees.len() - missing_meta.len()) as u64;

    // Deltas to any commit we walked (new or the head already there) that the
    // destination lacks.
    let src_deltas = src.deltas().await?;
    let dest_deltas: HashSet<DeltaName> = dest
        .list(layout::DELTAS_PREFIX)
        .await?
        .iter()
        .filter_map(|m| match DeltaName::parse_key(m.location.as_ref()) {
            Some((n, "superblock")) => Some(n),
            _ => None,
        })
        .collect();
    let mut delta_parts = Vec::new();
    let mut delta_superblocks = Vec::new();
    let mut part_checks = PartChecks::new();
    let none = PartChecks::new();
    for (name, digest) in &src_deltas {
        if !walked.contains_key(&name.to) {
            continue;
        }
        if dest_deltas.contains(name) && !resigned.contains(&name.to) {
            // The destination's own superblock may differ from ours (regenerated since):
            // the summary must advertise what is stored, so it is not ours to claim.
            continue;
        }
        let sb_key = name.superblock_key();
        let sb_url = format!("{}/{sb_key}", src.describe());
        let Some(sb) = src.read_key(&sb_key).await? else {
            return Err(PublishError::Corrupt {
                url: sb_url,
                why: "delta superblock missing".into(),
            });
        };
        if let Source::Local(r) = src {
            // Clients pulling through a delta check the signatures it embeds: one made
            // before the commit was (re)signed must not be published.
            let embedded = crate::source::superblock_commitmeta(&sb_url, name, &sb)?;
            let current = src
                .read_key(&layout::object_key(&name.to, ObjectType::CommitMeta))
                .await?;
            if embedded != current {
                return Err(PublishError::Invalid(format!(
                    "delta {name} in {} was made before commit {}'s current signatures; regenerate it (arbor delta generate --repo {} --ref REF, or arbor release) — nothing was uploaded",
                    src.describe(),
                    name.to,
                    r.path().display()
                )));
            }
        }
        known.deltas.insert(*name, *digest);
        check_delta(&sb_url, name, &sb, &mut part_checks)?;
        let mut files = crate::source::delta_files_from_superblock(&sb_url, name, &sb)?;
        if let Some(sb) = files.pop() {
            delta_superblocks.push(sb);
        }
        delta_parts.extend(files);
        report.deltas_uploaded += 1;
    }

    // Upload, in the order that keeps the destination valid.
    report.objects_uploaded += upload(
        src,
        dest,
        &missing_files,
        &none,
        false,
        jobs,
        "objects",
        progress,
    )
    .await?;
    report.objects_uploaded += upload(
        src,
        dest,
        &missing_trees,
        &none,
        false,
        jobs,
        "trees",
        progress,
    )
    .await?;
    report.delta_files_uploaded += upload(
        src,
        dest,
        &delta_parts,
        &part_checks,
        false,
        jobs,
        "deltas",
        progress,
    )
    .await?;
    report.delta_files_uploaded += upload(
        src,
        dest,
        &delta_superblocks,
        &none,
        false,
        jobs,
        "deltas",
        progress,
    )
    .await?;
    // Everything the commits name must be durable before the commits are (file://:
    // the store does not fsync; a power cut must not leave a commit over empty objects).
    sync_local(dest)?;
    report.objects_uploaded += upload(
        src,
        dest,
        &missing_meta,
        &none,
        true,
        jobs,
        "metadata",
        progress,
    )
    .await?;
    let n = upload(
        src,
        dest,
        &commit_keys,
        &none,
        false,
        jobs,
        "commits",
        progress,
    )
    .await?;
    report.objects_uploaded += n;
    report.commits_uploaded = n;
    sync_local(dest)?;

    dest.ensure_repo_dirs()?;
    if dest.head(layout::CONFIG).await?.is_none() {
        dest.put(
            layout::CONFIG,
            layout::CONFIG_CONTENTS.to_vec().into(),
            Expect::Any,
        )
        .await?;
        report.config_written = true;
    }

    // Refs: only those that differ, and (publish) only forward.
    let existing: HashSet<String> = dest_ref_items
        .iter()
        .map(|m| m.location.to_string())
        .collect();
    for (name, commit) in &refs {
        let key = layout::ref_key(name);
        let theirs = if existing.contains(&key) {
            match read_ref(dest, &key).await {
                Ok(c) => c,
                // Not a checksum: nothing a client could use; ours replaces it.
                Err(PublishError::Corrupt { .. }) => None,
                Err(e) => return Err(e),
            }
        } else {
            None
        };
        if theirs == Some(*commit) {
            continue;
        }
        dest.put(
            &key,
            layout::ref_contents(commit).into_bytes().into(),
            Expect::Any,
        )
        .await?;
        report.refs_updated.push(name.clone());
    }
    sync_local(dest)?;

    let upd = summary::update(
        dest,
        &known,
        &BTreeSet::new(),
        jobs,
        opts.signing.as_deref().filter(|s| s.signs_summaries()),
    )
    .await?;
    sync_local(dest)?;
    report.summary_written = upd.written;
    report.advertised_refs = upd.refs;
    report.advertised_deltas = upd.deltas.keys().map(DeltaName::to_string).collect();
    report.requests = dest.stats.snapshot();
    report.seconds = started.elapsed().as_secs_f64();
    Ok(report)
}
