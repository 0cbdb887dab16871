//! One store as the engine sees it: requests with error mapping (every error names the
//! object URL), Cache-Control on writes, request counting, and parallel listing.

use std::io::Read;
use std::sync::atomic::{AtomicU64, Ordering};

use arbor_repo::layout;
use futures::stream::{self, StreamExt, TryStreamExt};
use object_store::path::Path as StorePath;
use object_store::{
    Attribute, Attributes, ObjectMeta, ObjectStoreExt, PutMode, PutOptions, PutPayload,
    UpdateVersion,
};

use crate::body::{self, Body};
use crate::error::{PublishError, Result, StoreFailure};
use crate::location::{Location, LocationKind};

/// Content-addressed objects never change: cache for a year.
const CACHE_IMMUTABLE: &str = "public, max-age=31536000, immutable";
/// A delta for the same (from, to) could be regenerated with another superblock digest,
/// so it is cached for a day rather than forever.
const CACHE_DELTA: &str = "public, max-age=86400";
/// Refs, summary, config and detached metadata change: clients must see new ones soon.
const CACHE_MUTABLE: &str = "public, max-age=60, must-revalidate";

/// A GET must end within this plus its declared size at `MIN_RATE`.
const GRACE: std::time::Duration = std::time::Duration::from_secs(60);
const MIN_RATE: u64 = 16 << 10;

/// A `file://` destination's directories must be its own: a symbolic link planted where
/// a directory belongs (`objects/ab`, `deltas/xy`, anything under `refs/`) would make
/// every write below it land outside the destination. Checked on directory entries
/// only (one `read_dir` per directory; object files are not stat'ed).
fn refuse_planted_links(root: &std::path::Path) -> Result<()> {
    const TOPS: [&str; 7] = [
        "objects",
        "deltas",
        "delta-indexes",
        "refs",
        "state",
        "tmp",
        "extensions",
    ];
    let mut stack = Vec::new();
    for top in TOPS {
        let p = root.join(top);
        match p.symlink_metadata() {
            Ok(m) if m.file_type().is_symlink() => return Err(planted(&p)),
            Ok(m) if m.is_dir() => {
                // refs/ nests as deep as ref names do; the others one level.
                stack.push((p, if top == "refs" { usize::MAX } else { 0 }));
            }
            _ => {}
        }
    }
    while let Some((dir, depth)) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in entries.flatten() {
            let Ok(t) = e.file_type() else { continue };
            if t.is_symlink() {
                return Err(planted(&e.path()));
            }
            if t.is_dir() && depth > 0 {
                stack.push((e.path(), depth - 1));
            }
        }
    }
    Ok(())
}

fn planted(p: &std::path::Path) -> PublishError {
    PublishError::Corrupt {
        url: format!("file://{}", p.display()),
        why: "is a symbolic link; the destination's directories must be its own (writes would land outside it)".into(),
    }
}

/// A file's mtime in whole seconds since the epoch, if it exists.
fn whole_seconds(f: &std::path::Path) -> Option<u64> {
    let m = std::fs::metadata(f).ok()?.modified().ok()?;
    m.duration_since(std::time::UNIX_EPOCH)
        .ok()
        .map(|d| d.as_secs())
}

/// HTTP servers give a file's mtime in whole seconds as `Last-Modified`, and ostree clients
/// revalidate their cached summary with `If-Modified-Since`: a summary replaced within the
/// same second as the one a client holds would be answered "304 Not Modified" and the new
/// commit never seen. So a replaced mutable file gets an mtime at least one whole second
/// later than the one it replaced. Best effort: a file whose time cannot be set keeps its own.
fn later_than(f: &std::path::Path, prev: u64) {
    if whole_seconds(f).is_some_and(|now| now <= prev) {
        let t = std::time::UNIX_EPOCH + std::time::Duration::from_secs(prev + 1);
        if let Ok(file) = std::fs::File::options().write(true).open(f) {
            let _ = file.set_modified(t);
        }
    }
}

/// The Cache-Control a key is stored with.
pub fn cache_control(key: &str) -> &'static str {
    if key.starts_with(layout::OBJECTS_PREFIX) && !key.ends_with(".commitmeta") {
        CACHE_IMMUTABLE
    } else if key.starts_with(layout::DELTAS_PREFIX) {
        CACHE_DELTA
    } else {
        CACHE_MUTABLE
    }
}

/// S3 returns at most this many keys per LIST page.
const LIST_PAGE: u64 = 1000;
/// Parallel listing of `objects/`: one range per leading hex digit.
const LIST_RANGES: &str = "0123456789abcdef";

/// Requests made to one store, by kind. LIST counts pages of up to 1000 keys.
#[derive(Debug, Default)]
pub struct RequestStats {
    get: AtomicU64,
    head: AtomicU64,
    put: AtomicU64,
    delete: AtomicU64,
    list: AtomicU64,
    bytes_up: AtomicU64,
    bytes_down: AtomicU64,
}

/// A snapshot of [`RequestStats`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RequestCounts {
    pub get: u64,
    pub head: u64,
    pub put: u64,
    pub delete: u64,
    pub list: u64,
    pub bytes_uploaded: u64,
    pub bytes_downloaded: u64,
}

impl RequestCounts {
    pub fn total(&self) -> u64 {
        self.get + self.head + self.put + self.delete + self.list
    }
}

impl RequestStats {
    pub fn snapshot(&self) -> RequestCounts {
        let g = |a: &AtomicU64| a.load(Ordering::Relaxed);
        RequestCounts {
            get: g(&self.get),
            head: g(&self.head),
            put: g(&self.put),
            delete: g(&self.delete),
            list: g(&self.list),
            bytes_uploaded: g(&self.bytes_up),
            bytes_downloaded: g(&self.bytes_down),
        }
    }
}

fn bump(a: &AtomicU64, n: u64) {
    a.fetch_add(n, Ordering::Relaxed);
}

/// A fetched object.
#[derive(Debug)]
pub struct Fetched {
    pub data: Vec<u8>,
    pub e_tag: Option<String>,
    /// The store's object version (GCS's generation, which its conditional writes need).
    pub version: Option<String>,
}

/// Outcome of a conditional write.
#[derive(Debug, PartialEq, Eq)]
pub enum PutOutcome {
    Written,
    /// The precondition failed: someone else wrote first.
    Conflict,
}

/// What a conditional write expects to replace.
#[derive(Debug, Clone)]
pub enum Expect {
    /// Unconditional.
    Any,
    /// The key must not exist.
    Absent,
    /// The key must still be this version of it (its ETag and, where the store has
    /// them, its version), as read.
    Unchanged {
        e_tag: Option<String>,
        version: Option<String>,
    },
}

/// Where [`Remote::fetch`] puts a body past [`body::SPOOL_THRESHOLD`].
#[derive(Clone, Copy)]
enum Spool<'a> {
    /// Nowhere: the body stays in memory (bounded by the caller's `max`).
    No,
    /// An unlinked temporary file.
    Temp,
    /// This file, created.
    Into(&'a std::path::Path),
}

#[derive(Debug)]
pub struct Remote {
    pub loc: Location,
    pub stats: RequestStats,
    /// A GET must end within this plus its declared size at [`MIN_RATE`].
    pub grace: std::time::Duration,
}

fn path(key: &str) -> StorePath {
    StorePath::from_iter(key.split('/'))
}

impl Remote {
    pub fn new(loc: &Location) -> Remote {
        Remote {
            grace: GRACE,
            loc: loc.clone(),
            stats: RequestStats::default(),
        }
    }

    pub fn url(&self, key: &str) -> String {
        self.loc.key_url(key)
    }

    pub fn err(&self, key: &str, source: object_store::Error) -> PublishError {
        let mut kind = StoreFailure::classify(&source);
        // A missing bucket shows up as a 404 on the first LIST; name it as such.
        if kind == StoreFailure::NotFound && key.ends_with('/') {
            kind = StoreFailure::NoSuchBucket;
        }
        let url = match (&self.loc.kind, kind) {
            (
                LocationKind::S3 {
                    bucket, endpoint, ..
                },
                StoreFailure::NoSuchBucket,
            ) => {
                format!("{} (bucket {bucket:?} at {endpoint})", self.url(key))
            }
            (LocationKind::S3 { endpoint, .. }, StoreFailure::Unreachable) => {
                format!("{} (endpoint {endpoint})", self.url(key))
            }
            _ => self.url(key),
        };
        PublishError::Store {
            url,
            kind,
            detail: crate::error::innermost(&source),
            cause: Box::new(source),
        }
    }

    /// GET into memory; `None` if the object does not exist. Bounded by what the key
    /// may hold ([`body::max_size`]); for keys that may be large (content objects, delta
    /// parts) use [`Remote::get_body`], which spools.
    pub async fn get(&self, key: &str) -> Result<Option<Fetched>> {
        let max = body::max_size(key).min(body::MAX_METADATA);
        let Some((body, e_tag, version)) = self.fetch(key, max, Spool::No).await? else {
            return Ok(None);
        };
        let data = body
            .into_vec()
            .map_err(|e| self.corrupt(key, e.to_string()))?;
        Ok(Some(Fetched {
            data,
            e_tag,
            version,
        }))
    }

    /// GET a body of any size the key may hold: in memory up to
    /// [`body::SPOOL_THRESHOLD`], else spooled to an unlinked temporary file.
    pub async fn get_body(&self, key: &str) -> Result<Option<Body>> {
        Ok(self
            .fetch(key, body::max_size(key), Spool::Temp)
            .await?
            .map(|(b, _, _)| b))
    }

    /// GET into the file `dest` (created), with the caller's bound instead of the key's
    /// (keys outside the repository layout: the shared package cache's blobs). A body
    /// past [`body::SPOOL_THRESHOLD`] is written there as it arrives, a smaller one at
    /// the end; `Ok(false)` when the object does not exist.
    pub async fn get_to_file(&self, key: &str, max: u64, dest: &std::path::Path) -> Result<bool> {
        let Some((body, _, _)) = self.fetch(key, max, Spool::Into(dest)).await? else {
            return Ok(false);
        };
        if let Body::Mem(data) = body {
            std::fs::write(dest, data).map_err(|error| PublishError::Io {
                path: dest.to_path_buf(),
                error,
            })?;
        }
        Ok(true)
    }

    fn corrupt(&self, key: &str, why: String) -> PublishError {
        PublishError::Corrupt {
            url: self.url(key),
            why,
        }
    }

    /// The GET behind both: at most `max` bytes (the declared size is checked before the
    /// body is read, the running total while it is), the whole transfer within the
    /// grace period plus the declared size at [`MIN_RATE`] (a server trickling bytes is
    /// given up on in bounded time), spooled to a file past the threshold as `spool` says.
    async fn fetch(
        &self,
        key: &str,
        max: u64,
        spool: Spool<'_>,
    ) -> Result<Option<(Body, Option<String>, Option<String>)>> {
        use std::io::Write;
        bump(&self.stats.get, 1);
        let started = tokio::time::Instant::now();
        let r = match self.loc.store.get(&path(key)).await {
            Ok(r) => r,
            Err(object_store::Error::NotFound { .. }) => return Ok(None),
            Err(e) => return Err(self.err(key, e)),
        };
        let (e_tag, version) = (r.meta.e_tag.clone(), r.meta.version.clone());
        let declared = r.meta.size;
        if declared > max {
            return Err(self.corrupt(
                key,
                format!("is {declared} bytes; at most {max} are accepted for this kind of object"),
            ));
        }
        let deadline = started + self.grace + std::time::Duration::from_secs(declared / MIN_RATE);
        let mut stream = r.into_stream();
        let mut mem = Vec::new();
        let mut file: Option<std::fs::File> = None;
        let mut total = 0u64;
        loop {
            let next = tokio::time::timeout_at(deadline, stream.next()).await;
            let chunk = match next {
                Err(_) => {
                    return Err(self.corrupt(
                        key,
                        format!(
                            "timed out after {} s with {total} of {declared} bytes: the server sends too slowly (at least {} KiB/s after {} s is expected)",
                            started.elapsed().as_secs(),
                            MIN_RATE >> 10,
                            self.grace.as_secs()
                        ),
                    ))
                }
                Ok(None) => break,
                Ok(Some(c)) => c.map_err(|e| self.err(key, e))?,
            };
            total += chunk.len() as u64;
            // declared <= max was checked above.
            if total > declared {
                return Err(self.corrupt(
                    key,
                    format!(
                        "sends more than the {} bytes it declared",
                        declared.min(max)
                    ),
                ));
            }
            bump(&self.stats.bytes_down, chunk.len() as u64);
            if file.is_none() && total > body::SPOOL_THRESHOLD {
                let spooled = match spool {
                    Spool::No => None,
                    Spool::Temp => Some(tempfile::tempfile()),
                    Spool::Into(path) => Some(std::fs::File::create(path)),
                };
                if let Some(f) = spooled {
                    let mut f = f.map_err(|e| self.corrupt(key, format!("spooling: {e}")))?;
                    f.write_all(&mem)
                        .map_err(|e| self.corrupt(key, format!("spooling: {e}")))?;
                    mem = Vec::new();
                    file = Some(f);
                }
            }
            match file.as_mut() {
                Some(f) => f
                    .write_all(&chunk)
                    .map_err(|e| self.corrupt(key, format!("spooling: {e}")))?,
                None => mem.extend_from_slice(&chunk),
            }
        }
        if total != declared {
            return Err(self.corrupt(key, format!("truncated: {total} of {declared} bytes")));
        }
        let body = match file {
            Some(file) => Body::File { file, len: total },
            None => Body::Mem(mem),
        };
        Ok(Some((body, e_tag, version)))
    }

    /// PUT a body: in one request when in memory, as a multipart upload in
    /// [`body::UPLOAD_CHUNK`] steps when spooled (memory stays one chunk).
    pub async fn put_body(&self, key: &str, mut data: Body) -> Result<PutOutcome> {
        let len = data.len();
        if let Body::Mem(d) = data {
            return self.put(key, d.into(), Expect::Any).await;
        }
        self.read_only()?;
        let mut attributes = Attributes::new();
        if self.loc.keeps_attributes() {
            attributes.insert(Attribute::CacheControl, cache_control(key).into());
        }
        let opts = object_store::PutMultipartOptions {
            attributes,
            ..Default::default()
        };
        bump(&self.stats.put, 1);
        let mut up = self
            .loc
            .store
            .put_multipart_opts(&path(key), opts)
            .await
            .map_err(|e| self.err(key, e))?;
        let result: Result<()> = async {
            let mut reader = data
                .reader()
                .map_err(|e| self.corrupt(key, format!("reading the spooled body: {e}")))?;
            loop {
                let mut buf = Vec::with_capacity(body::UPLOAD_CHUNK);
                std::io::Read::by_ref(&mut reader)
                    .take(body::UPLOAD_CHUNK as u64)
                    .read_to_end(&mut buf)
                    .map_err(|e| self.corrupt(key, format!("reading the spooled body: {e}")))?;
                if buf.is_empty() {
                    break;
                }
                up.put_part(buf.into())
                    .await
                    .map_err(|e| self.err(key, e))?;
            }
            Ok(())
        }
        .await;
        match result {
            Ok(()) => {
                up.complete().await.map_err(|e| self.err(key, e))?;
                bump(&self.stats.bytes_up, len);
                Ok(PutOutcome::Written)
            }
            Err(e) => {
                let _ = up.abort().await;
                Err(e)
            }
        }
    }

    /// GET that must succeed.
    pub async fn get_required(&self, key: &str) -> Result<Vec<u8>> {
        match self.get(key).await? {
            Some(f) => Ok(f.data),
            None => Err(PublishError::Store {
                url: self.url(key),
                kind: StoreFailure::NotFound,
                detail: "object does not exist".into(),
                cause: Box::new(object_store::Error::NotFound {
                    path: key.to_string(),
                    source: "object does not exist".into(),
                }),
            }),
        }
    }

    /// HEAD; `None` if the object does not exist.
    pub async fn head(&self, key: &str) -> Result<Option<ObjectMeta>> {
        bump(&self.stats.head, 1);
        match self.loc.store.head(&path(key)).await {
            Ok(m) => Ok(Some(m)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(self.err(key, e)),
        }
    }

    fn read_only(&self) -> Result<()> {
        if self.loc.kind == LocationKind::Http {
            return Err(PublishError::ReadOnly {
                url: self.loc.url.clone(),
            });
        }
        Ok(())
    }

    /// PUT with the key's Cache-Control, unconditionally or conditionally.
    pub async fn put(&self, key: &str, data: PutPayload, expect: Expect) -> Result<PutOutcome> {
        self.read_only()?;
        let mut attributes = Attributes::new();
        if self.loc.keeps_attributes() {
            attributes.insert(Attribute::CacheControl, cache_control(key).into());
        }
        let mode = match expect {
            Expect::Any => PutMode::Overwrite,
            Expect::Absent => PutMode::Create,
            Expect::Unchanged { e_tag, version } => {
                PutMode::Update(UpdateVersion { e_tag, version })
            }
        };
        let len = data.content_length() as u64;
        let opts = PutOptions {
            mode,
            attributes,
            ..Default::default()
        };
        let replaced = self.local_mutable(key).and_then(|f| whole_seconds(&f));
        bump(&self.stats.put, 1);
        match self.loc.store.put_opts(&path(key), data, opts).await {
            Ok(_) => {
                bump(&self.stats.bytes_up, len);
                if let (Some(prev), Some(f)) = (replaced, self.local_mutable(key)) {
                    later_than(&f, prev);
                }
                Ok(PutOutcome::Written)
            }
            Err(
                object_store::Error::Precondition { .. }
                | object_store::Error::AlreadyExists { .. },
            ) => Ok(PutOutcome::Conflict),
            Err(e) => Err(self.err(key, e)),
        }
    }

    /// The local file behind a mutable key (summary, refs, config, detached metadata) of a
    /// `file://` destination; `None` for other keys and stores.
    fn local_mutable(&self, key: &str) -> Option<std::path::PathBuf> {
        match &self.loc.kind {
            LocationKind::File { root } if cache_control(key) == CACHE_MUTABLE => {
                Some(root.join(key))
            }
            _ => None,
        }
    }

    /// `file://`: the directories stock ostree opens (`layout::REPO_DIRS`), so `ostree
    /// refs`, `fsck`, `summary -u` and `prune` work on the destination. Other stores have
    /// no directories.
    pub fn ensure_repo_dirs(&self) -> Result<()> {
        if let LocationKind::File { root } = &self.loc.kind {
            for d in layout::REPO_DIRS {
                let path = root.join(d);
                std::fs::create_dir_all(&path).map_err(|error| PublishError::Io { path, error })?;
            }
            refuse_planted_links(root)?;
        }
        Ok(())
    }

    /// `file://`: refuse a destination where a symbolic link stands in for one of its
    /// directories (see [`refuse_planted_links`]); writes nothing.
    pub fn refuse_planted_links(&self) -> Result<()> {
        match &self.loc.kind {
            LocationKind::File { root } => refuse_planted_links(root),
            _ => Ok(()),
        }
    }

    /// DELETE; a missing object is not an error.
    pub async fn delete(&self, key: &str) -> Result<()> {
        self.read_only()?;
        bump(&self.stats.delete, 1);
        match self.loc.store.delete(&path(key)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(self.err(key, e)),
        }
    }

    fn listable(&self) -> Result<()> {
        if self.loc.kind == LocationKind::Http {
            return Err(PublishError::NotListable {
                url: self.loc.url.clone(),
                why: "plain HTTP has no listing".into(),
            });
        }
        Ok(())
    }

    fn count_pages(&self, n: u64) {
        bump(&self.stats.list, n.div_ceil(LIST_PAGE).max(1));
    }

    /// Every object under `prefix` (which ends in `/`). A missing prefix is empty.
    pub async fn list(&self, prefix: &str) -> Result<Vec<ObjectMeta>> {
        self.listable()?;
        let p = path(prefix.trim_end_matches('/'));
        let items: Vec<ObjectMeta> = self
            .loc
            .store
            .list(Some(&p))
            .try_collect()
            .await
            .map_err(|e| self.err(prefix, e))?;
        self.count_pages(items.len() as u64);
        Ok(items)
    }

    /// Every object under `objects/`, listed in parallel ranges.
    pub async fn list_objects(&self, jobs: usize) -> Result<Vec<ObjectMeta>> {
        self.listable()?;
        match &self.loc.kind {
            LocationKind::S3 { .. } => {
                let ranges: Vec<char> = LIST_RANGES.chars().collect();
                let lists = stream::iter(0..ranges.len())
                    .map(|i| {
                        let start = ranges[i];
                        let end = ranges.get(i + 1).copied();
                        self.list_range(start, end)
                    })
                    .buffer_unordered(jobs.clamp(1, 16))
                    .try_collect::<Vec<_>>()
                    .await?;
                Ok(lists.into_iter().flatten().collect())
            }
            LocationKind::File { .. } => {
                // Listing a local directory tree is one walk per subdirectory.
                let dirs: Vec<String> = (0..=255u8)
                    .map(|b| format!("{}{b:02x}/", layout::OBJECTS_PREFIX))
                    .collect();
                let lists = stream::iter(dirs)
                    .map(|d| async move { self.list(&d).await })
                    .buffer_unordered(jobs.clamp(1, 16))
                    .try_collect::<Vec<_>>()
                    .await?;
                Ok(lists.into_iter().flatten().collect())
            }
            _ => self.list(layout::OBJECTS_PREFIX).await,
        }
    }

    /// Keys `objects/<start>…` up to (excluding) `objects/<end>…`, using S3 start-after.
    async fn list_range(&self, start: char, end: Option<char>) -> Result<Vec<ObjectMeta>> {
        let objects = layout::OBJECTS_PREFIX;
        let prefix = path(objects.trim_end_matches('/'));
        let mut stream = if start == '0' {
            self.loc.store.list(Some(&prefix))
        } else {
            // The largest possible key of the previous range is "objects/Pf/<hex>…";
            // "objects/Pf/g" sorts after all of them and before "objects/<start>…".
            let prev = LIST_RANGES
                .chars()
                .take_while(|c| *c != start)
                .last()
                .unwrap_or('0');
            let offset = StorePath::from(format!("{objects}{prev}f/g"));
            self.loc.store.list_with_offset(Some(&prefix), &offset)
        };
        let stop = end.map(|e| format!("{objects}{e}"));
        let begin = format!("{objects}{start}");
        let mut out = Vec::new();
        let mut seen = 0u64;
        while let Some(item) = stream.next().await {
            let item = item.map_err(|e| self.err(layout::OBJECTS_PREFIX, e))?;
            seen += 1;
            // Guard against a server that ignores start-after: never yield another range's key.
            if start != '0' && item.location.as_ref() < begin.as_str() {
                continue;
            }
            if let Some(s) = &stop {
                if item.location.as_ref() >= s.as_str() {
                    break;
                }
            }
            out.push(item);
        }
        self.count_pages(seen);
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use arbor_repo::{Checksum, ObjectType};

    use super::*;

    #[test]
    fn cache_classes() {
        let c = Checksum::of(b"x");
        let object = |ty| layout::object_key(&c, ty);
        assert!(cache_control(&object(ObjectType::File)).contains("immutable"));
        assert!(!cache_control(&object(ObjectType::CommitMeta)).contains("immutable"));
        assert!(cache_control(layout::SUMMARY).contains("max-age=60"));
        assert!(cache_control(&layout::ref_key("x")).contains("max-age=60"));
        assert!(cache_control("deltas/ab/cd/0").contains("86400"));
    }

    /// A summary replaced within the second of the one it replaces still gets a later
    /// whole-second mtime (an `If-Modified-Since` client would otherwise get 304).
    #[test]
    fn replaced_summary_mtime_moves_forward_a_whole_second() {
        let tmp = tempfile::tempdir().unwrap();
        let url = format!("file://{}", tmp.path().display());
        let loc = Location::parse_destination(&url, &Default::default()).unwrap();
        let remote = Remote::new(&loc);
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let file = tmp.path().join(layout::SUMMARY);
        let put = |data: &'static [u8]| {
            rt.block_on(remote.put(layout::SUMMARY, PutPayload::from_static(data), Expect::Any))
                .unwrap();
            whole_seconds(&file).unwrap()
        };
        let first = put(b"one");
        let second = put(b"two");
        let third = put(b"three");
        assert!(second > first && third > second, "{first} {second} {third}");
        // Immutable objects keep the time they were written at.
        let key = layout::object_key(&Checksum::of(b"x"), ObjectType::File);
        rt.block_on(remote.put(&key, PutPayload::from_static(b"x"), Expect::Any))
            .unwrap();
        let t = whole_seconds(&tmp.path().join(&key)).unwrap();
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        assert!(t <= now, "{t} {now}");
    }

    /// A server that declares a small summary and trickles it a byte a second is given
    /// up on within the grace period (here 2 s), naming what it was waiting for.
    #[test]
    fn trickling_source_is_given_up_on() {
        use std::io::{Read as _, Write as _};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(mut c) = conn else { return };
                std::thread::spawn(move || {
                    let mut buf = [0u8; 4096];
                    let _ = c.read(&mut buf);
                    let _ = c.write_all(
                        b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\nLast-Modified: Thu, 03 Dec 2026 10:00:00 GMT\r\n\r\n",
                    );
                    for _ in 0..1000 {
                        if c.write_all(b"x").is_err() {
                            return;
                        }
                        std::thread::sleep(std::time::Duration::from_secs(1));
                    }
                });
            }
        });
        let url = format!("http://127.0.0.1:{port}/repo");
        let loc = Location::parse_source(&url, &Default::default()).unwrap();
        let mut remote = Remote::new(&loc);
        remote.grace = std::time::Duration::from_secs(2);
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let started = std::time::Instant::now();
        let e = rt
            .block_on(remote.get(layout::SUMMARY))
            .unwrap_err()
            .to_string();
        assert!(e.contains("timed out") && e.contains("summary"), "{e}");
        assert!(
            started.elapsed() < std::time::Duration::from_secs(20),
            "{:?}",
            started.elapsed()
        );
    }
}
