//! Fetching from a published repository into a local one (`arbor pull`, and `release` on a
//! runner that starts empty): the commits of the last N parents of each ref with their
//! detached metadata, every dirtree and dirmeta they reach, and content objects when asked
//! (all of them, or only named paths) — each object checked against its name as it
//! arrives. A commit whose content was not fetched is marked partial (`state/C.commitpartial`,
//! as ostree does), so fsck and checkout know.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::time::Instant;

use arbor_repo::layout;
use arbor_repo::objects::{Commit, DirTree, ObjectType};
use arbor_repo::progress::Progress;
use arbor_repo::{Checksum, Repo};
use futures::stream::{self, StreamExt, TryStreamExt};

use crate::error::{PublishError, Result};
use crate::remote::Remote;
use crate::source::{read_ref, Source};

/// What to fetch.
#[derive(Debug, Clone)]
pub struct PullOpts {
    /// Parents of each head to fetch too (0: the heads only).
    pub depth: usize,
    /// Commits, dirtrees and dirmeta only; no content objects.
    pub metadata_only: bool,
    /// With `metadata_only`: content objects of these paths of the heads (e.g.
    /// `usr/etc/passwd`) all the same.
    pub paths: Vec<String>,
    /// Requests in flight at once.
    pub jobs: usize,
    /// Point local branches at the pulled heads (where absent or behind).
    pub write_refs: bool,
}

impl Default for PullOpts {
    fn default() -> Self {
        PullOpts {
            depth: 0,
            metadata_only: false,
            paths: Vec::new(),
            jobs: 16,
            write_refs: true,
        }
    }
}

/// What a pull fetched.
#[derive(Debug, Clone, Default)]
pub struct PullReport {
    /// The heads, by ref.
    pub refs: BTreeMap<String, Checksum>,
    /// Local branches written (absent, or behind the pulled head).
    pub refs_updated: Vec<String>,
    pub commits_fetched: u64,
    pub objects_fetched: u64,
    pub bytes_fetched: u64,
    /// Commits held without their content.
    pub partial: Vec<Checksum>,
    pub seconds: f64,
}

/// Fetch one object by key, verified against its name; `None` if the store lacks it.
async fn fetch(src: &Remote, key: &str) -> Result<Option<Vec<u8>>> {
    let Some(f) = src.get(key).await? else {
        return Ok(None);
    };
    let data = crate::transfer::verify(key, f.data)
        .await
        .map_err(|why| PublishError::Corrupt {
            url: src.url(key),
            why,
        })?;
    Ok(Some(data))
}

/// Fetch one object the store must have, verified, into the repository; returns its
/// size. A large object is spooled and streamed, never held whole.
async fn copy_object(src: &Remote, repo: &Repo, c: &Checksum, ty: ObjectType) -> Result<u64> {
    let key = layout::object_key(c, ty);
    let corrupt = |why: String| PublishError::Corrupt {
        url: src.url(&key),
        why,
    };
    let body = src
        .get_body(&key)
        .await?
        .ok_or_else(|| corrupt("missing from the published repository".into()))?;
    let mut body = crate::transfer::verify_body(&key, body, None)
        .await
        .map_err(corrupt)?;
    let len = body.len();
    let mut r = body
        .reader()
        .map_err(|e| corrupt(format!("reading the spooled body: {e}")))?;
    repo.write_raw_object_from(c, ty, &mut r)?;
    Ok(len)
}

pub async fn run(
    src: &Remote,
    repo: &Repo,
    wanted: &[String],
    opts: &PullOpts,
    progress: &dyn Progress,
) -> Result<PullReport> {
    let started = Instant::now();
    let jobs = opts.jobs.max(1);
    let mut report = PullReport::default();
    let source = Source::Store(src);
    let advertised = source.refs().await?;
    let refs: BTreeMap<String, Checksum> = if wanted.is_empty() {
        // Names from the source were validated by `Source::refs` (bad ones left out).
        advertised
    } else {
        let mut out = BTreeMap::new();
        for n in wanted {
            // A ref the summary does not list may still have its ref file.
            let c = match advertised.get(n) {
                Some(c) => *c,
                None => read_ref(src, &layout::ref_key(n)).await?.ok_or_else(|| {
                    PublishError::RefNotFound {
                        name: n.clone(),
                        url: src.loc.url.clone(),
                    }
                })?,
            };
            out.insert(n.clone(), c);
        }
        out
    };
    report.refs = refs.clone();

    // Commits the repository held whole before: a metadata-only pull keeps them whole.
    let mut complete_before: HashSet<Checksum> = HashSet::new();
    // Commits: each head and up to `depth` parents, as far as the store has them.
    progress.start("commits", None);
    let mut commits: Vec<(Checksum, Commit)> = Vec::new();
    let mut seen = HashSet::new();
    for head in refs.values() {
        let mut c = *head;
        for level in 0..=opts.depth {
            if !seen.insert(c) {
                break;
            }
            let key = layout::object_key(&c, ObjectType::Commit);
            let bytes = if repo.has_object(&c, ObjectType::Commit) {
                if !repo.is_partial(&c) {
                    complete_before.insert(c);
                }
                repo.read_metadata(ObjectType::Commit, &c)?
            } else {
                match fetch(src, &key).await? {
                    Some(b) => {
                        report.commits_fetched += 1;
                        report.objects_fetched += 1;
                        report.bytes_fetched += b.len() as u64;
                        b
                    }
                    // The published history is shallower than asked: fine below the head.
                    None if level > 0 => break,
                    None => {
                        return Err(PublishError::MissingCommit {
                            name: refs
                                .iter()
                                .find(|(_, h)| **h == c)
                                .map(|(n, _)| n.clone())
                                .unwrap_or_default(),
                            commit: c,
                            url: src.loc.url.clone(),
                        })
                    }
                }
            };
            let commit = Commit::from_bytes(&bytes).map_err(|e| PublishError::Corrupt {
                url: src.url(&key),
                why: e.to_string(),
            })?;
            // Written last of its objects would be better for crash safety, but a commit
            // without its trees is what `state/C.commitpartial` (set below before any ref
            // names it) describes; a rerun completes it.
            repo.write_raw_object(&c, ObjectType::Commit, &bytes)?;
            // Signatures travel with the commit.
            let meta_key = layout::object_key(&c, ObjectType::CommitMeta);
            if let Some(meta) = src.get(&meta_key).await? {
                arbor_repo::objects::parse_commitmeta(&meta.data).map_err(|e| {
                    PublishError::Corrupt {
                        url: src.url(&meta_key),
                        why: e.to_string(),
                    }
                })?;
                report.bytes_fetched += meta.data.len() as u64;
                repo.write_atomic(std::path::Path::new(&meta_key), &meta.data)?;
            }
            let parent = commit.parent;
            commits.push((c, commit));
            progress.inc(1);
            match parent {
                Some(p) => c = p,
                None => break,
            }
        }
    }
    progress.finish();

    // Dirtrees and dirmeta, level by level, fetched where the repository lacks them.
    progress.start("trees", None);
    let mut level: Vec<(Checksum, Checksum)> = commits
        .iter()
        .map(|(_, c)| (c.root_tree, c.root_meta))
        .collect();
    let mut trees_done: HashSet<Checksum> = HashSet::new();
    let mut pairs_done: HashSet<(Checksum, Checksum)> = HashSet::new();
    let mut files: BTreeSet<Checksum> = BTreeSet::new();
    while !level.is_empty() {
        // A dirtree shared by directories of different metadata (an empty one: `/tmp`
        // 1777 beside `/srv` 755) is walked once, but every (tree, meta) pair's dirmeta is
        // fetched.
        level.retain(|pair| pairs_done.insert(*pair));
        let fetched: Vec<(Checksum, DirTree, u64)> = stream::iter(level.clone())
            .map(|(tree, meta)| async move {
                let mut bytes = 0u64;
                for (c, ty) in [(meta, ObjectType::DirMeta), (tree, ObjectType::DirTree)] {
                    if repo.has_object(&c, ty) {
                        continue;
                    }
                    bytes += copy_object(src, repo, &c, ty).await?;
                }
                let t = repo.read_dirtree(&tree)?;
                Ok::<_, PublishError>((tree, t, bytes))
            })
            .buffer_unordered(jobs)
            .try_collect()
            .await?;
        let mut next = Vec::new();
        for (tree, t, bytes) in fetched {
            if bytes > 0 {
                report.objects_fetched += 2;
                report.bytes_fetched += bytes;
            }
            progress.inc(1);
            if trees_done.insert(tree) {
                files.extend(t.files.iter().map(|(_, c)| *c));
                next.extend(t.dirs.iter().map(|(_, tree, meta)| (*tree, *meta)));
            }
        }
        level = next;
    }
    progress.finish();

    // Content: everything, or the named paths of the heads.
    let wanted_files: Vec<Checksum> = if opts.metadata_only {
        let mut out = Vec::new();
        for head in refs.values() {
            for p in &opts.paths {
                if let Ok(arbor_repo::store::Node::File(c)) = repo.lookup_path(head, p) {
                    out.push(c);
                }
            }
        }
        out
    } else {
        files.into_iter().collect()
    };
    let (n, bytes) = fetch_files(src, repo, &wanted_files, jobs, progress).await?;
    report.objects_fetched += n;
    report.bytes_fetched += bytes;

    // Durable before any ref names them; partial marks before too.
    repo.sync()?;
    for (c, _) in &commits {
        if !opts.metadata_only {
            repo.set_partial(c, false)?;
        } else if !complete_before.contains(c) {
            repo.set_partial(c, true)?;
            report.partial.push(*c);
        }
    }
    for (name, head) in refs.iter().filter(|_| opts.write_refs) {
        match repo.read_ref(name)? {
            Some(local) if local == *head => {}
            Some(local) if !descends(repo, head, &local) => {
                tracing::warn!(
                    "local branch {name} is at {local}, which {head} (pulled) does not descend from; left alone"
                );
            }
            _ => {
                repo.write_ref(name, head)?;
                report.refs_updated.push(name.clone());
            }
        }
    }
    report.seconds = started.elapsed().as_secs_f64();
    Ok(report)
}

/// Whether `ancestor` is in `commit`'s history as far as the repository holds it.
pub fn descends(repo: &Repo, commit: &Checksum, ancestor: &Checksum) -> bool {
    let mut c = *commit;
    loop {
        if c == *ancestor {
            return true;
        }
        match repo.read_commit(&c) {
            Ok(Commit {
                parent: Some(p), ..
            }) => c = p,
            _ => return false,
        }
    }
}

/// Fetch content objects the repository lacks (old versions of files a delta may bsdiff
/// against); returns (objects, bytes).
pub async fn fetch_files(
    src: &Remote,
    repo: &Repo,
    files: &[Checksum],
    jobs: usize,
    progress: &dyn Progress,
) -> Result<(u64, u64)> {
    let missing: Vec<Checksum> = files
        .iter()
        .filter(|c| !repo.has_object(c, ObjectType::File))
        .copied()
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    progress.start("fetch", Some(missing.len() as u64));
    let sizes: Vec<u64> = stream::iter(missing)
        .map(|c| async move {
            let n = copy_object(src, repo, &c, ObjectType::File).await?;
            progress.inc(1);
            progress.bytes(n);
            Ok::<_, PublishError>(n)
        })
        .buffer_unordered(jobs.max(1))
        .try_collect()
        .await?;
    progress.finish();
    Ok((sizes.len() as u64, sizes.iter().sum()))
}
