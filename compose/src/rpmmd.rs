//! rpm-md repositories: `repodata/repomd.xml`, then `primary` (and `filelists`) in gz,
//! xz or zstd, each verified against the checksum repomd.xml lists; and fetching the
//! resolved RPMs into a cache keyed by digest, verified, in parallel, with retries.
//!
//! Transport: `file://` reads in place (a local RPM is verified, not copied);
//! `http(s)://` downloads through [`Http`]. A repository's URLs are its base URLs and
//! the mirrors its `mirrorlist=`/`metalink=` lists ([`mirrors`]).

pub mod mirrors;

use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rayon::prelude::*;
use sha2::{Digest, Sha256, Sha512};

use crate::plan::RepoConfig;
use crate::shared::{self, SharedCache};
use crate::solve::{RepoMetadata, SolvedPackage};

/// Attempts per download before giving up.
const RETRIES: u32 = 3;
/// An RPM whose repodata gives no size is read up to this many bytes.
const MAX_RPM_BYTES: u64 = 16 << 30;

#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("{url}: {why}")]
    Get { url: String, why: String },
    #[error("repository {repo}: {why}")]
    Repo { repo: String, why: String },
    #[error("{what} {url}: checksum mismatch: repodata says {kind}:{expected}, got {actual}")]
    Digest {
        what: String,
        url: String,
        kind: String,
        expected: String,
        actual: String,
    },
    /// (The OS error is part of the message, not a source: printed once.)
    #[error("{path}: {err}")]
    Io { path: PathBuf, err: std::io::Error },
}

type Result<T> = std::result::Result<T, FetchError>;

/// The network as the compose sees it: one shared blocking HTTP client, or none
/// (`--offline`: repodata and RPMs come from the cache only, and anything else is an
/// error saying so). The caller builds it and passes it in.
pub struct Http {
    agent: ureq::Agent,
    offline: bool,
    /// The time every transfer gets before [`MIN_RATE`] is expected of it.
    grace: Duration,
}

impl Default for Http {
    fn default() -> Self {
        let config = ureq::Agent::config_builder()
            .timeout_connect(Some(CONNECT_TIMEOUT))
            .timeout_recv_response(Some(RESPONSE_TIMEOUT))
            .build();
        Http {
            agent: config.into(),
            offline: false,
            grace: GRACE,
        }
    }
}

impl Http {
    /// No network: only the cache (and `file://` repositories) serve.
    pub fn offline() -> Http {
        Http {
            offline: true,
            ..Http::default()
        }
    }

    /// The same client giving each transfer `grace` before it must average
    /// [`MIN_RATE`] (default 60 s).
    pub fn with_grace(self, grace: Duration) -> Http {
        Http { grace, ..self }
    }

    pub fn is_offline(&self) -> bool {
        self.offline
    }

    /// GET `url`: the whole transfer must end within the grace period plus `max` bytes
    /// at [`MIN_RATE`].
    fn call(
        &self,
        url: &str,
        max: u64,
    ) -> std::result::Result<ureq::http::Response<ureq::Body>, String> {
        self.agent
            .get(url)
            .config()
            .timeout_global(Some(self.grace + Duration::from_secs(max / MIN_RATE)))
            .build()
            .call()
            .map_err(|e| self.explain(e.to_string()))
    }

    /// A timeout (while connecting, waiting or reading the body) says what was expected.
    fn explain(&self, e: String) -> String {
        if e.contains("timeout") {
            format!(
                "{e}: timed out; the server sent too little too slowly (at least {} KiB/s after {} s is expected)",
                MIN_RATE >> 10,
                self.grace.as_secs()
            )
        } else {
            e
        }
    }

    /// Stream `url` into `dest` (created), at most `max` bytes.
    fn download(&self, url: &str, dest: &Path, max: u64) -> std::result::Result<u64, String> {
        let mut resp = self.call(url, max)?;
        let mut reader = resp.body_mut().as_reader().take(max + 1);
        let mut f = fs::File::create(dest).map_err(|e| format!("{}: {e}", dest.display()))?;
        let n = std::io::copy(&mut reader, &mut f).map_err(|e| self.explain(e.to_string()))?;
        check_limit(n, max)?;
        f.sync_all()
            .map_err(|e| format!("{}: {e}", dest.display()))?;
        Ok(n)
    }

    /// GET `url`: a body larger than `max` is an error (read no further).
    fn get(&self, url: &str, max: u64) -> std::result::Result<Vec<u8>, String> {
        let mut resp = self.call(url, max)?;
        let mut body = Vec::new();
        resp.body_mut()
            .as_reader()
            .take(max + 1)
            .read_to_end(&mut body)
            .map_err(|e| self.explain(e.to_string()))?;
        check_limit(body.len() as u64, max)?;
        Ok(body)
    }
}

/// Connecting, and the response's headers, each within these.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(60);
/// A transfer of at most `max` bytes must end within `GRACE` plus `max` at `MIN_RATE`:
/// a server that trickles a byte at a time is given up on, in bounded time, instead of
/// holding the compose for as long as it likes.
const MIN_RATE: u64 = 16 << 10;
const GRACE: Duration = Duration::from_secs(60);

fn check_limit(len: u64, max: u64) -> std::result::Result<(), String> {
    if len > max {
        return Err(format!("larger than the {max} bytes accepted"));
    }
    Ok(())
}

/// Read `url` (file:// or http(s)://), at most `max` bytes (every caller knows how much
/// it accepts: repomd's `<size>`, a metadata cap), retrying transient HTTP failures. A
/// `file://` URL is read as a treefile input is ([`crate::input::read_capped`]).
pub fn get_bounded(http: &Http, url: &str, max: u64) -> Result<Vec<u8>> {
    if let Some(path) = url.strip_prefix("file://") {
        return crate::input::read_capped(Path::new(path), max).map_err(|e| FetchError::Get {
            url: url.into(),
            why: e.to_string(),
        });
    }
    if !(url.starts_with("http://") || url.starts_with("https://")) {
        return Err(FetchError::Get {
            url: url.into(),
            why: "unsupported URL scheme (file, http, https)".into(),
        });
    }
    if http.offline {
        return Err(FetchError::Get {
            url: url.into(),
            why: "not fetched: offline (run `arbor fetch` first)".into(),
        });
    }
    let mut last = String::new();
    for attempt in 0..RETRIES {
        match http.get(url, max) {
            Ok(b) => return Ok(b),
            Err(e) => {
                tracing::warn!("GET {url} failed (attempt {}/{RETRIES}): {e}", attempt + 1);
                last = e;
                std::thread::sleep(Duration::from_millis(200 << attempt));
            }
        }
    }
    Err(FetchError::Get {
        url: url.into(),
        why: last,
    })
}

fn join_url(base: &str, rel: &str) -> String {
    format!(
        "{}/{}",
        base.trim_end_matches('/'),
        rel.trim_start_matches('/')
    )
}

/// One `<data>` entry of repomd.xml.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepomdData {
    pub kind: String,
    pub href: String,
    pub checksum: (String, String),
    /// `<size>`: the file's size as served.
    pub size: Option<u64>,
    /// `<open-size>`: its size decompressed.
    pub open_size: Option<u64>,
}

/// A metadata file (compressed, as served) at most this large when repomd.xml gives no
/// `<size>` (Fedora's largest, filelists, is ~60 MB compressed).
pub const MAX_REPODATA: u64 = 512 << 20;
/// Decompressed metadata at most this large when repomd.xml gives no `<open-size>`
/// (Fedora's filelists.xml is under 1 GiB).
pub const MAX_REPODATA_OPEN: u64 = 2 << 30;

/// What we need from repomd.xml.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Repomd {
    pub revision: Option<String>,
    /// When the metadata was generated: the newest `<timestamp>` of its data entries
    /// (dnf's "timestamp generated"), else a numeric revision.
    pub timestamp: Option<u64>,
    pub data: Vec<RepomdData>,
    /// SHA-256 of repomd.xml itself (goes into the compose input hash).
    pub digest: String,
}

/// Parse repomd.xml: every `<data type>` with its `<location href>`, `<checksum type>`
/// and `<timestamp>`, and the `<revision>`.
pub fn parse_repomd(xml: &str) -> std::result::Result<Repomd, String> {
    use quick_xml::events::Event;
    let mut reader = quick_xml::Reader::from_str(xml);
    let mut data = Vec::new();
    let mut timestamp: Option<u64> = None;
    let mut revision = None;
    // The element whose text is being read, and the <data> being filled.
    let mut text_of: Option<String> = None;
    // (type, location href, (checksum type, value)) of the <data> being read.
    type Partial = (
        String,
        Option<String>,
        Option<(String, String)>,
        Option<u64>,
        Option<u64>,
    );
    let mut current: Option<Partial> = None;
    let attr = |e: &quick_xml::events::BytesStart<'_>, name: &str| -> Option<String> {
        e.try_get_attribute(name).ok().flatten().and_then(|a| {
            a.normalized_value(quick_xml::XmlVersion::Implicit1_0)
                .ok()
                .map(|v| v.into_owned())
        })
    };
    loop {
        match reader
            .read_event()
            .map_err(|e| format!("repomd.xml: {e}"))?
        {
            Event::Start(e) | Event::Empty(e) => {
                let name = String::from_utf8_lossy(e.local_name().as_ref()).into_owned();
                match name.as_str() {
                    "data" => {
                        let kind = attr(&e, "type").ok_or("<data> without type")?;
                        current = Some((kind, None, None, None, None));
                    }
                    "location" => {
                        if let Some(c) = current.as_mut() {
                            c.1 = attr(&e, "href");
                        }
                    }
                    "checksum" if current.is_some() => {
                        let kind = attr(&e, "type").unwrap_or_else(|| "sha256".into());
                        text_of = Some(format!("checksum:{kind}"));
                    }
                    "timestamp" | "revision" => text_of = Some(name),
                    "size" | "open-size" if current.is_some() => text_of = Some(name),
                    _ => text_of = None,
                }
            }
            Event::Text(t) => {
                let text = t.decode().map_err(|e| e.to_string())?.trim().to_string();
                match text_of.as_deref() {
                    Some("revision") => revision = Some(text),
                    Some("timestamp") if current.is_some() => {
                        if let Some(v) = text.split('.').next().and_then(|t| t.parse().ok()) {
                            timestamp = timestamp.max(Some(v));
                        }
                    }
                    Some(which @ ("size" | "open-size")) => {
                        let v: u64 = text
                            .parse()
                            .map_err(|_| format!("<{which}> {:?} is not a size", text))?;
                        if let Some(c) = current.as_mut() {
                            if which == "size" {
                                c.3 = Some(v);
                            } else {
                                c.4 = Some(v);
                            }
                        }
                    }
                    Some(ck) if ck.starts_with("checksum:") => {
                        if let Some(c) = current.as_mut() {
                            c.2 = Some((ck["checksum:".len()..].to_string(), text));
                        }
                    }
                    _ => {}
                }
            }
            Event::End(e) => {
                text_of = None;
                if e.local_name().as_ref() == b"data" {
                    let (kind, href, checksum, size, open_size) =
                        current.take().ok_or("unbalanced </data>")?;
                    data.push(RepomdData {
                        href: href.ok_or_else(|| format!("{kind}: no <location href>"))?,
                        checksum: checksum.ok_or_else(|| format!("{kind}: no <checksum>"))?,
                        kind,
                        size,
                        open_size,
                    });
                }
            }
            Event::Eof => break,
            _ => {}
        }
    }
    if data.is_empty() {
        return Err("no <data> entries".into());
    }
    let timestamp = timestamp.or_else(|| revision.as_deref()?.parse().ok());
    Ok(Repomd {
        revision,
        timestamp,
        data,
        digest: hex(&Sha256::digest(xml.as_bytes())),
    })
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Hex digest of `data` with the repodata checksum type.
pub fn digest(kind: &str, data: &[u8]) -> std::result::Result<String, String> {
    match kind {
        "sha256" => Ok(hex(&Sha256::digest(data))),
        "sha512" => Ok(hex(&Sha512::digest(data))),
        other => Err(format!(
            "unsupported checksum type {other:?} (sha256, sha512)"
        )),
    }
}

/// Repodata as the XML it is, whatever compression the file has (told by its bytes).
/// Hex digest of a file with the repodata checksum type, read in chunks.
fn file_digest(kind: &str, path: &Path) -> std::result::Result<String, String> {
    let mut f = fs::File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut buf = vec![0u8; 1 << 20];
    macro_rules! stream {
        ($h:expr) => {{
            let mut h = $h;
            loop {
                let n = f
                    .read(&mut buf)
                    .map_err(|e| format!("{}: {e}", path.display()))?;
                if n == 0 {
                    break;
                }
                h.update(&buf[..n]);
            }
            Ok(hex(&h.finalize()))
        }};
    }
    match kind {
        "sha256" => stream!(Sha256::new()),
        "sha512" => stream!(Sha512::new()),
        other => Err(format!(
            "unsupported checksum type {other:?} (sha256, sha512)"
        )),
    }
}

/// Decompress metadata, reading no more than `open_size` (when repomd.xml gives it, the
/// result must be exactly that) or [`MAX_REPODATA_OPEN`]: a small file inflating to
/// gigabytes is stopped as it inflates, not after.
fn decompress(data: Vec<u8>, open_size: Option<u64>) -> std::result::Result<Vec<u8>, String> {
    let max = open_size
        .unwrap_or(MAX_REPODATA_OPEN)
        .min(MAX_REPODATA_OPEN);
    let plain = crate::decompress::open(&data[..])
        .map_err(|e| e.to_string())?
        .compression
        == crate::decompress::Compression::None;
    let out = if plain {
        data
    } else {
        let mut out = Vec::new();
        crate::decompress::open(&data[..])
            .map_err(|e| e.to_string())?
            .reader
            .take(max + 1)
            .read_to_end(&mut out)
            .map_err(|e| e.to_string())?;
        out
    };
    let n = out.len() as u64;
    match open_size {
        Some(o) if n > max => Err(format!(
            "decompresses to more than {max} bytes, repomd.xml says open-size {o}"
        )),
        Some(o) if n != o => Err(format!(
            "decompresses to {n} bytes, repomd.xml says open-size {o}"
        )),
        None if n > max => Err(format!(
            "decompresses to more than {max} bytes (no open-size given; the limit)"
        )),
        _ => Ok(out),
    }
}

/// A loaded repository: where it is and its solver input.
#[derive(Debug, Clone)]
pub struct LoadedRepo {
    pub config: RepoConfig,
    /// The base URL that answered.
    pub baseurl: String,
    pub repomd: Repomd,
    pub metadata: RepoMetadata,
}

/// Load one repository's metadata, trying its base URLs, then its mirrors, in order.
/// `with_filelists` loads filelists too (needed for file dependencies outside
/// primary's short list).
///
/// With a `cache` (`CACHEDIR/repodata/<repo id>/`), what was loaded is kept there:
/// `repomd.xml`, the metadata files by name, and the base URL. Offline, the repository
/// is loaded from there, every file verified again against repomd.xml.
pub fn load_repo(
    http: &Http,
    repo: &RepoConfig,
    with_filelists: bool,
    cache: Option<&Path>,
) -> Result<LoadedRepo> {
    let dir = cache.map(|c| c.join("repodata").join(&repo.id));
    if http.offline && !repo.baseurls.iter().all(|b| b.starts_with("file://")) {
        let dir = dir.ok_or_else(|| FetchError::Repo {
            repo: repo.id.clone(),
            why: "offline, and no cache to load its metadata from".into(),
        })?;
        return load_cached(repo, &dir, with_filelists);
    }
    let sources = mirrors::sources(http, repo)?;
    let mut errors = Vec::new();
    for base in &sources.bases {
        match load_from(http, repo, base, with_filelists, sources.check.as_ref()) {
            Ok((r, files)) => {
                if let Some(dir) = &dir {
                    // A cache that cannot be written costs an offline compose, not this one.
                    if let Err(e) = save_cached(dir, &r.baseurl, &files) {
                        tracing::warn!("{}: {e}", dir.display());
                    }
                }
                return Ok(r);
            }
            Err(e) => errors.push(e.to_string()),
        }
    }
    Err(FetchError::Repo {
        repo: repo.id.clone(),
        why: errors.join("; "),
    })
}

/// Keep a repository's metadata files (name → raw bytes) and base URL in `dir`.
fn save_cached(dir: &Path, base: &str, files: &[(String, Vec<u8>)]) -> std::io::Result<()> {
    let tmp = dir.with_extension(format!("tmp-{}", std::process::id()));
    let _ = fs::remove_dir_all(&tmp);
    fs::create_dir_all(&tmp)?;
    fs::write(tmp.join("base.url"), base)?;
    for (name, data) in files {
        fs::write(tmp.join(name), data)?;
    }
    let _ = fs::remove_dir_all(dir);
    fs::rename(&tmp, dir)
}

/// A repository from `dir` (see [`save_cached`]), verified as if downloaded.
fn load_cached(repo: &RepoConfig, dir: &Path, with_filelists: bool) -> Result<LoadedRepo> {
    let missing = || FetchError::Repo {
        repo: repo.id.clone(),
        why: format!(
            "no cached metadata in {} (offline: run `arbor fetch` first)",
            dir.display()
        ),
    };
    let base = fs::read_to_string(dir.join("base.url")).map_err(|_| missing())?;
    let file_url = format!("file://{}/", dir.display());
    let read = |name: &str| -> Result<Vec<u8>> { fs::read(dir.join(name)).map_err(|_| missing()) };
    let xml = read("repomd.xml")?;
    let (mut loaded, _) = parse_loaded(repo, &file_url, xml, with_filelists, |href, _| {
        read(href.rsplit('/').next().unwrap_or(href))
    })?;
    loaded.baseurl = base;
    Ok(loaded)
}

/// A metadata file by name, as read (for the repodata cache).
type NamedFile = (String, Vec<u8>);

/// Load from one base URL; also returns the files read (name → raw bytes) for the cache.
fn load_from(
    http: &Http,
    repo: &RepoConfig,
    base: &str,
    with_filelists: bool,
    check: Option<&mirrors::RepomdCheck>,
) -> Result<(LoadedRepo, Vec<NamedFile>)> {
    let url = join_url(base, "repodata/repomd.xml");
    let max = check
        .and_then(|c| c.max_size)
        .unwrap_or(mirrors::MAX_REPOMD_BYTES);
    let xml = get_bounded(http, &url, max)?;
    if let Some(check) = check {
        check.verify(&xml).map_err(|why| FetchError::Get {
            url: url.clone(),
            why,
        })?;
    }
    parse_loaded(repo, base, xml, with_filelists, |href, max| {
        get_bounded(http, &join_url(base, href), max)
    })
}

/// repomd.xml, then the `primary` (and `filelists`) it lists, fetched by `fetch(href)`,
/// each verified against its checksum and decompressed.
fn parse_loaded(
    repo: &RepoConfig,
    base: &str,
    xml: Vec<u8>,
    with_filelists: bool,
    fetch: impl Fn(&str, u64) -> Result<Vec<u8>>,
) -> Result<(LoadedRepo, Vec<NamedFile>)> {
    let url = join_url(base, "repodata/repomd.xml");
    let text = String::from_utf8(xml.clone()).map_err(|_| FetchError::Get {
        url: url.clone(),
        why: "not UTF-8".into(),
    })?;
    let repomd = parse_repomd(&text).map_err(|why| FetchError::Get {
        url: url.clone(),
        why,
    })?;
    let mut files = vec![("repomd.xml".to_string(), xml)];
    let mut load = |kind: &str| -> Result<Option<Vec<u8>>> {
        let Some(d) = repomd.data.iter().find(|d| d.kind == kind) else {
            return Ok(None);
        };
        let url = join_url(base, &d.href);
        let raw = fetch(&d.href, d.size.unwrap_or(MAX_REPODATA).min(MAX_REPODATA))?;
        if d.size.is_some_and(|s| s != raw.len() as u64) {
            return Err(FetchError::Get {
                url,
                why: format!(
                    "{} bytes, repomd.xml says size {}",
                    raw.len(),
                    d.size.unwrap_or_default()
                ),
            });
        }
        let actual = digest(&d.checksum.0, &raw).map_err(|why| FetchError::Get {
            url: url.clone(),
            why,
        })?;
        if actual != d.checksum.1 {
            return Err(FetchError::Digest {
                what: format!("{kind} metadata"),
                url,
                kind: d.checksum.0.clone(),
                expected: d.checksum.1.clone(),
                actual,
            });
        }
        let name = d.href.rsplit('/').next().unwrap_or(&d.href).to_string();
        let out =
            decompress(raw.clone(), d.open_size).map_err(|why| FetchError::Get { url, why })?;
        files.push((name, raw));
        Ok(Some(out))
    };
    let primary = load("primary")?.ok_or_else(|| FetchError::Repo {
        repo: repo.id.clone(),
        why: format!("{url} lists no primary metadata"),
    })?;
    let filelists = if with_filelists {
        load("filelists")?
    } else {
        None
    };
    Ok((
        LoadedRepo {
            config: repo.clone(),
            baseurl: base.to_string(),
            repomd,
            metadata: RepoMetadata {
                id: repo.id.clone(),
                primary_xml: primary,
                filelists_xml: filelists,
                priority: repo.priority,
                exclude: repo.exclude.clone(),
                include_only: repo.include_only.clone(),
            },
        },
        files,
    ))
}

/// A package available locally, verified against its repodata digest.
#[derive(Debug, Clone)]
pub struct FetchedRpm {
    pub nevra: String,
    pub path: PathBuf,
    pub sha256: String,
    /// Downloaded now (false: local file or cache hit).
    pub downloaded: bool,
}

/// What identifies one version of a file on disk without reading it: a file whose
/// device, inode, size, mtime and ctime are all unchanged was not written since (any
/// write or `touch` moves the ctime to now, which user space cannot set back).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
struct Stamp {
    dev: u64,
    ino: u64,
    size: u64,
    mtime_ns: i128,
    ctime_ns: i128,
}

impl Stamp {
    fn of(path: &Path) -> Option<Stamp> {
        use std::os::unix::fs::MetadataExt;
        let m = fs::metadata(path).ok()?;
        let ns = |s: i64, n: i64| i128::from(s) * 1_000_000_000 + i128::from(n);
        Some(Stamp {
            dev: m.dev(),
            ino: m.ino(),
            size: m.len(),
            mtime_ns: ns(m.mtime(), m.mtime_nsec()),
            ctime_ns: ns(m.ctime(), m.ctime_nsec()),
        })
    }
}

/// SHA-256 of RPM files hashed before, by path, valid while the file's [`Stamp`] is
/// unchanged (`CACHE/rpms/digests.json`): a re-compose verifies unchanged RPMs
/// without reading them again.
#[derive(Default, serde::Serialize, serde::Deserialize)]
struct DigestMemo {
    files: std::collections::BTreeMap<PathBuf, (Stamp, String)>,
}

impl DigestMemo {
    fn path(dir: &Path) -> PathBuf {
        dir.join("digests.json")
    }

    fn load(dir: &Path) -> DigestMemo {
        fs::read(Self::path(dir))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default()
    }

    fn lookup(&self, path: &Path) -> Option<String> {
        let (stamp, sha) = self.files.get(path)?;
        (Stamp::of(path).as_ref() == Some(stamp)).then(|| sha.clone())
    }

    /// Best effort: a memo that cannot be written only costs hashing next time.
    fn save(&self, dir: &Path) {
        let tmp = dir.join(format!(".digests.json.{}", std::process::id()));
        let ok = serde_json::to_vec(self)
            .ok()
            .and_then(|b| fs::write(&tmp, b).ok())
            .and_then(|()| fs::rename(&tmp, Self::path(dir)).ok());
        if ok.is_none() {
            let _ = fs::remove_file(&tmp);
        }
    }
}

/// The SHA-256 of `path`, from `memo` when the file is unchanged since it was hashed;
/// a fresh digest is recorded in `fresh`.
fn sha256_memo(
    path: &Path,
    memo: &DigestMemo,
    fresh: &std::sync::Mutex<Vec<(PathBuf, Stamp, String)>>,
) -> std::io::Result<String> {
    if let Some(sha) = memo.lookup(path) {
        return Ok(sha);
    }
    let before = Stamp::of(path);
    let sha = sha256_file(path)?;
    if let Some(stamp) = before.filter(|s| Stamp::of(path).as_ref() == Some(s)) {
        fresh.lock().unwrap_or_else(|p| p.into_inner()).push((
            path.to_path_buf(),
            stamp,
            sha.clone(),
        ));
    }
    Ok(sha)
}

fn sha256_file(path: &Path) -> std::io::Result<String> {
    let mut f = fs::File::open(path)?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(hex(&h.finalize()))
}

/// Downloads at once.
const FETCH_JOBS: usize = 8;

/// Make every package available locally: `file://` ones are verified in place, others
/// downloaded into `cache/rpms/<kind>-<digest>.rpm` (reused when present and valid) —
/// from the `shared` cache when it has them, else from their repository (and then
/// stored in the shared cache too).
pub fn fetch_rpms(
    http: &Http,
    repos: &[LoadedRepo],
    packages: &[SolvedPackage],
    cache: &Path,
    shared: Option<&dyn SharedCache>,
    progress: &dyn arbor_repo::progress::Progress,
) -> Result<Vec<FetchedRpm>> {
    let dir = cache.join("rpms");
    fs::create_dir_all(&dir).map_err(|source| FetchError::Io {
        path: dir.clone(),
        err: source,
    })?;
    progress.start("fetch", Some(packages.len() as u64));
    let memo = DigestMemo::load(&dir);
    let fresh = std::sync::Mutex::new(Vec::new());
    let all = || {
        packages
            .par_iter()
            .map(|p| {
                let r = fetch_one(http, repos, p, &dir, shared, &memo, &fresh);
                progress.inc(1);
                if let Ok(f) = &r {
                    if f.downloaded {
                        progress.bytes(fs::metadata(&f.path).map(|m| m.len()).unwrap_or(0));
                    }
                }
                r
            })
            .collect::<Result<Vec<_>>>()
    };
    // Downloads wait on the network more than on the CPU: more of them at once than
    // there are cores.
    let out = match rayon::ThreadPoolBuilder::new()
        .num_threads(FETCH_JOBS)
        .build()
    {
        Ok(pool) => pool.install(all),
        Err(_) => all(),
    };
    progress.end(out.is_ok());
    let fresh = fresh.into_inner().unwrap_or_else(|p| p.into_inner());
    if !fresh.is_empty() {
        let mut memo = memo;
        for (path, stamp, sha) in fresh {
            memo.files.insert(path, (stamp, sha));
        }
        memo.files.retain(|p, _| p.exists());
        memo.save(&dir);
    }
    out
}

fn fetch_one(
    http: &Http,
    repos: &[LoadedRepo],
    p: &SolvedPackage,
    dir: &Path,
    shared: Option<&dyn SharedCache>,
    memo: &DigestMemo,
    fresh: &std::sync::Mutex<Vec<(PathBuf, Stamp, String)>>,
) -> Result<FetchedRpm> {
    let repo = repos
        .iter()
        .find(|r| r.config.id == p.repo)
        .ok_or_else(|| FetchError::Repo {
            repo: p.repo.clone(),
            why: format!("{} comes from an unknown repository", p.nevra()),
        })?;
    let url = join_url(&repo.baseurl, &p.location);
    let (kind, expected) = p.checksum.clone().ok_or_else(|| FetchError::Get {
        url: url.clone(),
        why: format!("{}: repodata has no checksum", p.nevra()),
    })?;
    let mismatch = |actual: String| FetchError::Digest {
        what: format!("package {}", p.nevra()),
        url: url.clone(),
        kind: kind.clone(),
        expected: expected.clone(),
        actual,
    };
    let verify = |path: &Path| -> Result<String> {
        let sha = sha256_memo(path, memo, fresh).map_err(|source| FetchError::Io {
            path: path.into(),
            err: source,
        })?;
        let actual = if kind == "sha256" {
            sha.clone()
        } else {
            let data = fs::read(path).map_err(|source| FetchError::Io {
                path: path.into(),
                err: source,
            })?;
            digest(&kind, &data).map_err(|why| FetchError::Get {
                url: url.clone(),
                why,
            })?
        };
        if actual != expected {
            return Err(mismatch(actual));
        }
        Ok(sha)
    };
    if let Some(local) = url.strip_prefix("file://") {
        let path = PathBuf::from(local);
        let sha256 = verify(&path)?;
        return Ok(FetchedRpm {
            nevra: p.nevra(),
            path,
            sha256,
            downloaded: false,
        });
    }
    let cached = dir.join(format!("{kind}-{expected}.rpm"));
    if cached.exists() {
        if let Ok(sha256) = verify(&cached) {
            return Ok(FetchedRpm {
                nevra: p.nevra(),
                path: cached,
                sha256,
                downloaded: false,
            });
        }
        let _ = fs::remove_file(&cached);
    }
    if http.offline {
        return Err(FetchError::Get {
            url,
            why: format!(
                "{} is not in the cache {} (offline: run `arbor fetch` first)",
                p.nevra(),
                dir.display()
            ),
        });
    }
    // Streamed to disk (never whole in memory), no larger than the repodata says.
    let max = if p.download_size > 0 {
        p.download_size
    } else {
        MAX_RPM_BYTES
    };
    let part = cached.with_extension("rpm.part");
    // Verified: into the cache under its digest name, remembered like a verified local
    // file (the next compose does not hash it again).
    let finish = |actual: String| -> Result<FetchedRpm> {
        fs::rename(&part, &cached).map_err(|err| FetchError::Io {
            path: cached.clone(),
            err,
        })?;
        let sha256 = if kind == "sha256" {
            actual
        } else {
            sha256_file(&cached).map_err(|err| FetchError::Io {
                path: cached.clone(),
                err,
            })?
        };
        if let Some(stamp) = Stamp::of(&cached) {
            fresh.lock().unwrap_or_else(|p| p.into_inner()).push((
                cached.clone(),
                stamp,
                sha256.clone(),
            ));
        }
        Ok(FetchedRpm {
            nevra: p.nevra(),
            path: cached.clone(),
            sha256,
            downloaded: true,
        })
    };
    let key = shared::rpm_key(&kind, &expected);
    let mut replace = false;
    if let Some(sc) = shared {
        match sc.get(&key, &part, max) {
            Ok(true) => match file_digest(&kind, &part) {
                Ok(actual) if actual == expected => {
                    shared::bump(&sc.stats().rpms_fetched, 1);
                    let len = fs::metadata(&part).map(|m| m.len()).unwrap_or(0);
                    shared::bump(&sc.stats().bytes_fetched, len);
                    return finish(actual);
                }
                Ok(actual) => {
                    shared::rejected(
                        sc,
                        &key,
                        &format!("{kind} {actual}, not {expected} as the repodata says"),
                        "downloading it from its repository instead",
                    );
                    replace = true;
                }
                Err(why) => shared::failed(sc, &format!("reading {key}"), &why),
            },
            Ok(false) => {}
            Err(why) => shared::failed(sc, &format!("GET {key}"), &why),
        }
        let _ = fs::remove_file(&part);
    }
    let mut last = None;
    for attempt in 0..RETRIES {
        let got = http.download(&url, &part, max);
        let actual = match got {
            Ok(_) => file_digest(&kind, &part).map_err(|why| FetchError::Get {
                url: url.clone(),
                why,
            })?,
            Err(why) => {
                tracing::warn!(
                    "GET {url} failed (attempt {}/{RETRIES}): {why}",
                    attempt + 1
                );
                let _ = fs::remove_file(&part);
                last = Some(FetchError::Get {
                    url: url.clone(),
                    why,
                });
                std::thread::sleep(Duration::from_millis(200 << attempt));
                continue;
            }
        };
        if actual != expected {
            let _ = fs::remove_file(&part);
            last = Some(mismatch(actual));
            continue;
        }
        let got = finish(actual)?;
        if let Some(sc) = shared {
            shared::store(sc, &key, &got.path, replace, &sc.stats().rpms_stored);
        }
        return Ok(got);
    }
    Err(last.unwrap_or_else(|| mismatch(String::new())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repomd() {
        let xml = r#"<?xml version="1.0"?><repomd xmlns="http://linux.duke.edu/metadata/repo"><revision>1700000000</revision>
<data type="primary"><checksum type="sha256">abc</checksum><location href="repodata/abc-primary.xml.zst"/></data>
<data type="filelists"><checksum type="sha256">def</checksum><open-checksum type="sha256">x</open-checksum><location href="repodata/def-filelists.xml.gz"/><timestamp>1700000123</timestamp></data></repomd>"#;
        let r = parse_repomd(xml).unwrap();
        assert_eq!(r.revision.as_deref(), Some("1700000000"));
        assert_eq!(r.timestamp, Some(1_700_000_123));
        assert_eq!(r.data[0].href, "repodata/abc-primary.xml.zst");
        assert_eq!(r.data[1].checksum, ("sha256".into(), "def".into()));
        assert!(parse_repomd("<repomd></repomd>").is_err());
    }

    /// `<size>`/`<open-size>` are read, and decompression stops at the declared open
    /// size: a small gzip that inflates far past it is refused as it inflates.
    #[test]
    fn repodata_sizes_bound_decompression() {
        let xml = r#"<repomd><data type="primary"><checksum type="sha256">a</checksum><location href="p.xml.gz"/><size>123</size><open-size>4567</open-size></data></repomd>"#;
        let r = parse_repomd(xml).unwrap();
        assert_eq!(
            (r.data[0].size, r.data[0].open_size),
            (Some(123), Some(4567))
        );
        let bad = r#"<repomd><data type="primary"><checksum type="sha256">a</checksum><location href="p"/><size>-1</size></data></repomd>"#;
        assert!(parse_repomd(bad).unwrap_err().contains("not a size"));
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        std::io::Write::write_all(&mut gz, &vec![b'<'; 64 << 20]).unwrap();
        let bomb = gz.finish().unwrap();
        assert!(bomb.len() < 1 << 20);
        let e = decompress(bomb.clone(), Some(1000)).unwrap_err();
        assert!(
            e.contains("more than 1000 bytes, repomd.xml says open-size 1000"),
            "{e}"
        );
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        std::io::Write::write_all(&mut gz, b"<x/>").unwrap();
        let small = gz.finish().unwrap();
        assert_eq!(decompress(small.clone(), Some(4)).unwrap(), b"<x/>");
        assert!(decompress(small.clone(), Some(5))
            .unwrap_err()
            .contains("says open-size 5"));
        assert_eq!(decompress(small, None).unwrap(), b"<x/>");
    }

    /// A server that trickles its body a byte a second is given up on within the grace
    /// period (here 2 s) per attempt, not after minutes.
    #[test]
    fn trickling_server_is_given_up_on() {
        use std::io::Write;
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(mut c) = conn else { return };
                std::thread::spawn(move || {
                    let mut buf = [0u8; 4096];
                    let _ = std::io::Read::read(&mut c, &mut buf);
                    let _ = c.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n");
                    for _ in 0..100 {
                        if c.write_all(b"x").is_err() {
                            return;
                        }
                        std::thread::sleep(Duration::from_secs(1));
                    }
                });
            }
        });
        let http = Http::default().with_grace(Duration::from_secs(2));
        let started = std::time::Instant::now();
        let e = get_bounded(&http, &format!("http://127.0.0.1:{port}/repomd.xml"), 1000)
            .unwrap_err()
            .to_string();
        assert!(e.contains("timed out"), "{e}");
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "{:?}",
            started.elapsed()
        );
    }

    /// The digest memo answers only for a file whose (dev, inode, size, mtime, ctime)
    /// are unchanged; rewriting the file in place, even to the same size and with the
    /// old mtime put back, makes it hash again. It survives a save/load; a corrupt memo
    /// file is an empty memo.
    #[test]
    fn digest_memo() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("a.rpm");
        fs::write(&f, b"first content").unwrap();
        let memo = DigestMemo::default();
        let fresh = std::sync::Mutex::new(Vec::new());
        let sha = sha256_memo(&f, &memo, &fresh).unwrap();
        assert_eq!(sha, hex(&Sha256::digest(b"first content")));
        let mut memo = DigestMemo::default();
        for (path, stamp, sha) in fresh.into_inner().unwrap() {
            memo.files.insert(path, (stamp, sha));
        }
        assert_eq!(memo.lookup(&f).as_deref(), Some(sha.as_str()));
        memo.save(dir.path());
        let loaded = DigestMemo::load(dir.path());
        assert_eq!(loaded.lookup(&f).as_deref(), Some(sha.as_str()));
        // Same size, mtime restored: the ctime still gives it away.
        let mtime = fs::metadata(&f).unwrap().modified().unwrap();
        std::thread::sleep(std::time::Duration::from_millis(20));
        fs::write(&f, b"other content").unwrap();
        fs::File::options()
            .write(true)
            .open(&f)
            .unwrap()
            .set_modified(mtime)
            .unwrap();
        assert_eq!(loaded.lookup(&f), None);
        let fresh = std::sync::Mutex::new(Vec::new());
        assert_eq!(
            sha256_memo(&f, &loaded, &fresh).unwrap(),
            hex(&Sha256::digest(b"other content"))
        );
        assert_eq!(fresh.into_inner().unwrap().len(), 1);
        fs::write(DigestMemo::path(dir.path()), b"{not json").unwrap();
        assert!(DigestMemo::load(dir.path()).files.is_empty());
    }
}
