//! Where a transfer reads from: the local archive repository (publish) or another store
//! (mirror). Both answer the same questions: refs, commits, dirtrees, raw object bytes,
//! deltas and the files of a delta.

use std::collections::BTreeMap;
use std::path::PathBuf;

use arbor_repo::gvariant::{Type, Value, VarDict};
use arbor_repo::layout::{self, DeltaName};
use arbor_repo::objects::{Commit, DirTree, ObjectType};
use arbor_repo::summary::Summary;
use arbor_repo::{Checksum, Repo, RepoError};

use crate::body::{self, Body};
use crate::error::{PublishError, Result};
use crate::remote::Remote;

/// What the summary needs to know about a commit.
#[derive(Debug, Clone, PartialEq)]
pub struct CommitInfo {
    pub size: u64,
    pub timestamp: u64,
    pub version: Option<String>,
    pub parent: Option<Checksum>,
}

impl CommitInfo {
    pub fn of(bytes: &[u8], c: &Commit) -> CommitInfo {
        CommitInfo {
            size: bytes.len() as u64,
            timestamp: c.timestamp,
            version: c.version().map(str::to_string),
            parent: c.parent,
        }
    }
}

pub enum Source<'a> {
    Local(&'a Repo),
    Store(&'a Remote),
}

fn corrupt(url: String, why: impl ToString) -> PublishError {
    PublishError::Corrupt {
        url,
        why: why.to_string(),
    }
}

/// Parse a summary, naming the URL on failure.
pub fn parse_summary(url: &str, data: &[u8]) -> Result<Summary> {
    Summary::from_bytes(data).map_err(|e| corrupt(url.to_string(), format!("invalid summary: {e}")))
}

/// The keys of a delta's files, parts first and the superblock last, from its superblock.
pub fn delta_files_from_superblock(
    url: &str,
    name: &DeltaName,
    superblock: &[u8],
) -> Result<Vec<String>> {
    let (metadata, m) = superblock_fields(url, superblock)?;
    let parts = match &m[6] {
        Value::Array(_, p) => p.len(),
        _ => return Err(corrupt(url.to_string(), "invalid delta part table")),
    };
    let mut out: Vec<String> = (0..parts)
        .map(|i| name.part_key(i))
        // Inline parts live in the superblock's metadata under their relative path.
        .filter(|k| metadata.get(k).is_none())
        .collect();
    out.push(name.superblock_key());
    Ok(out)
}

/// A superblock's metadata and its fields (publish only reads its part table and the
/// commitmeta it embeds).
fn superblock_fields(url: &str, superblock: &[u8]) -> Result<(VarDict, Vec<Value>)> {
    let ty = Type::parse(layout::SUPERBLOCK_TYPE).expect("static type");
    let v = Value::from_bytes(&ty, superblock)
        .map_err(|e| corrupt(url.to_string(), format!("invalid delta superblock: {e}")))?;
    let Value::Tuple(m) = v else {
        return Err(corrupt(url.to_string(), "invalid delta superblock"));
    };
    let metadata = VarDict::from_value(&m[0])
        .map_err(|e| corrupt(url.to_string(), format!("invalid delta superblock: {e}")))?;
    Ok((metadata, m))
}

/// The serialized detached metadata of the to-commit a superblock embeds (what a client
/// pulling through the delta verifies signatures against), if any.
pub fn superblock_commitmeta(
    url: &str,
    name: &DeltaName,
    superblock: &[u8],
) -> Result<Option<Vec<u8>>> {
    let (metadata, _) = superblock_fields(url, superblock)?;
    Ok(metadata.get(&name.commitmeta_key()).map(Value::to_bytes))
}

impl Source<'_> {
    pub fn describe(&self) -> String {
        match self {
            Source::Local(r) => r.path().display().to_string(),
            Source::Store(s) => s.loc.url.clone(),
        }
    }

    /// The refs the source advertises: the local branches, or a store's summary (its
    /// `refs/heads` listing when it has no summary).
    pub async fn refs(&self) -> Result<BTreeMap<String, Checksum>> {
        match self {
            Source::Local(r) => Ok(r.list_refs()?),
            Source::Store(s) => {
                let mut out = BTreeMap::new();
                if let Some(f) = s.get(layout::SUMMARY).await? {
                    let sum = parse_summary(&s.url(layout::SUMMARY), &f.data)?;
                    out.extend(sum.refs.into_iter().map(|r| (r.name, r.commit)));
                } else {
                    for m in s.list(layout::REFS_PREFIX).await? {
                        let key = m.location.to_string();
                        let name = key[layout::REFS_PREFIX.len()..].to_string();
                        if let Some(c) = read_ref(s, &key).await? {
                            out.insert(name, c);
                        }
                    }
                }
                // Names from outside touch paths and keys only once validated as ostree
                // validates them: an empty name would write a file at `refs/heads`, a
                // `../` one outside it.
                out.retain(|name, _| match layout::validate_ref_name(name) {
                    Ok(()) => true,
                    Err(e) => {
                        tracing::warn!(
                            "{}: ref {:?} left out: {e}",
                            s.loc.url,
                            arbor_repo::checksum::quote_prefix(name)
                        );
                        false
                    }
                });
                Ok(out)
            }
        }
    }

    /// A commit's bytes and parsed form, `None` if the source does not have it.
    pub async fn commit(&self, c: &Checksum) -> Result<Option<(Vec<u8>, Commit)>> {
        match self {
            Source::Local(r) => match r.read_commit_bytes(c) {
                Ok(x) => Ok(Some(x)),
                Err(RepoError::MissingObject { .. }) => Ok(None),
                Err(e) => Err(e.into()),
            },
            Source::Store(s) => {
                let key = layout::object_key(c, ObjectType::Commit);
                let Some(f) = s.get(&key).await? else {
                    return Ok(None);
                };
                if Checksum::of(&f.data) != *c {
                    return Err(corrupt(s.url(&key), "checksum mismatch"));
                }
                let commit = Commit::from_bytes(&f.data).map_err(|e| corrupt(s.url(&key), e))?;
                Ok(Some((f.data, commit)))
            }
        }
    }

    pub async fn dirtree(&self, c: &Checksum) -> Result<DirTree> {
        match self {
            Source::Local(r) => Ok(r.read_dirtree(c)?),
            Source::Store(s) => {
                let key = layout::object_key(c, ObjectType::DirTree);
                let data = s.get_required(&key).await?;
                if Checksum::of(&data) != *c {
                    return Err(corrupt(s.url(&key), "checksum mismatch"));
                }
                DirTree::from_bytes(&data).map_err(|e| corrupt(s.url(&key), e))
            }
        }
    }

    /// The raw bytes stored under `key`, `None` if absent.
    pub async fn read_key(&self, key: &str) -> Result<Option<Vec<u8>>> {
        match self {
            Source::Local(r) => {
                let p: PathBuf = r.path().join(key);
                let read = tokio::task::spawn_blocking(move || match std::fs::read(&p) {
                    Ok(d) => Ok(Some(d)),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                    Err(error) => Err(PublishError::Io { path: p, error }),
                });
                read.await
                    .map_err(|e| PublishError::Invalid(format!("reading {key}: {e}")))?
            }
            Source::Store(s) => Ok(s.get(key).await?.map(|f| f.data)),
        }
    }

    /// The body stored under `key`, `None` if absent: a local file larger than
    /// [`body::SPOOL_THRESHOLD`] is read from where it is, a large download is spooled.
    pub async fn read_body(&self, key: &str) -> Result<Option<Body>> {
        match self {
            Source::Local(r) => {
                let p: PathBuf = r.path().join(key);
                let read = tokio::task::spawn_blocking(move || {
                    let io = |error| PublishError::Io {
                        path: p.clone(),
                        error,
                    };
                    let file = match std::fs::File::open(&p) {
                        Ok(f) => f,
                        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
                        Err(e) => return Err(io(e)),
                    };
                    let len = file.metadata().map_err(io)?.len();
                    if len > body::SPOOL_THRESHOLD {
                        return Ok(Some(Body::File { file, len }));
                    }
                    let mut data = Vec::with_capacity(len as usize);
                    std::io::Read::read_to_end(&mut &file, &mut data).map_err(io)?;
                    Ok(Some(Body::Mem(data)))
                });
                read.await
                    .map_err(|e| PublishError::Invalid(format!("reading {key}: {e}")))?
            }
            Source::Store(s) => s.get_body(key).await,
        }
    }

    /// Static deltas: name → SHA-256 of the superblock.
    pub async fn deltas(&self) -> Result<BTreeMap<DeltaName, Checksum>> {
        match self {
            Source::Local(r) => Ok(r.list_deltas()?),
            Source::Store(s) => {
                if let Some(f) = s.get(layout::SUMMARY).await? {
                    let sum = parse_summary(&s.url(layout::SUMMARY), &f.data)?;
                    return Ok(sum.deltas());
                }
                let mut out = BTreeMap::new();
                for m in s.list(layout::DELTAS_PREFIX).await? {
                    let key = m.location.to_string();
                    if let Some((name, layout::SUPERBLOCK)) = DeltaName::parse_key(&key) {
                        if let Some(f) = s.get(&key).await? {
                            out.insert(name, Checksum::of(&f.data));
                        }
                    }
                }
                Ok(out)
            }
        }
    }
}

/// Read a ref file (64 hex + newline) from a store.
pub async fn read_ref(s: &Remote, key: &str) -> Result<Option<Checksum>> {
    let Some(f) = s.get(key).await? else {
        return Ok(None);
    };
    let text = String::from_utf8_lossy(&f.data);
    layout::parse_ref_contents(&text)
        .map(Some)
        .map_err(|e| corrupt(s.url(key), e))
}
