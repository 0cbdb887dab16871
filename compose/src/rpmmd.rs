//! rpm-md repositories: `repodata/repomd.xml`, then `primary` (and `filelists`) in gz,
//! xz or zstd, each verified against the checksum repomd.xml lists; and fetching the
//! resolved RPMs into a cache keyed by digest, verified, in parallel, with retries.
//!
//! Transport: `file://` reads in place (a local RPM is verified, not copied);
//! `http(s)://` downloads through [`Http`]. A repository's URLs are its base URLs and
//! the mirrors its `mirrorlist=`/`metalink=` lists ([`mirrors`]).

pub mod mirrors;

use std::fs;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use rayon::prelude::*;
use sha2::{Digest, Sha256, Sha512};

use crate::plan::RepoConfig;
use crate::solve::{RepoMetadata, SolvedPackage};

/// Attempts per download before giving up.
const RETRIES: u32 = 3;

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
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

type Result<T> = std::result::Result<T, FetchError>;

/// Blocking HTTP GET; one shared client.
pub struct Http {
    agent: ureq::Agent,
}

impl Default for Http {
    fn default() -> Self {
        let config = ureq::Agent::config_builder()
            .timeout_global(Some(Duration::from_secs(300)))
            .build();
        Http {
            agent: config.into(),
        }
    }
}

impl Http {
    /// GET `url`; with a `limit`, a body larger than it is an error (read no further).
    fn get(&self, url: &str, limit: Option<u64>) -> std::result::Result<Vec<u8>, String> {
        let mut resp = self.agent.get(url).call().map_err(|e| e.to_string())?;
        let mut body = Vec::new();
        let mut reader = resp.body_mut().as_reader();
        match limit {
            None => reader.read_to_end(&mut body),
            Some(max) => reader.take(max + 1).read_to_end(&mut body),
        }
        .map_err(|e| e.to_string())?;
        check_limit(body.len() as u64, limit)?;
        Ok(body)
    }
}

fn check_limit(len: u64, limit: Option<u64>) -> std::result::Result<(), String> {
    match limit {
        Some(max) if len > max => Err(format!("larger than the {max} bytes accepted")),
        _ => Ok(()),
    }
}

/// Read `url` (file:// or http(s)://), retrying transient HTTP failures.
pub fn get(http: &Http, url: &str) -> Result<Vec<u8>> {
    get_limited(http, url, None)
}

/// [`get`] of at most `max` bytes: for what a server says about itself (mirror lists,
/// metalinks, repomd.xml), which must not make us allocate without bound.
pub fn get_bounded(http: &Http, url: &str, max: u64) -> Result<Vec<u8>> {
    get_limited(http, url, Some(max))
}

fn get_limited(http: &Http, url: &str, limit: Option<u64>) -> Result<Vec<u8>> {
    if let Some(path) = url.strip_prefix("file://") {
        let read = || -> std::result::Result<Vec<u8>, String> {
            let f = fs::File::open(path).map_err(|e| e.to_string())?;
            let mut body = Vec::new();
            match limit {
                None => (&f).read_to_end(&mut body),
                Some(max) => (&f).take(max + 1).read_to_end(&mut body),
            }
            .map_err(|e| e.to_string())?;
            check_limit(body.len() as u64, limit)?;
            Ok(body)
        };
        return read().map_err(|why| FetchError::Get {
            url: url.into(),
            why,
        });
    }
    if !(url.starts_with("http://") || url.starts_with("https://")) {
        return Err(FetchError::Get {
            url: url.into(),
            why: "unsupported URL scheme (file, http, https)".into(),
        });
    }
    let mut last = String::new();
    for attempt in 0..RETRIES {
        match http.get(url, limit) {
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
}

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

fn between<'a>(s: &'a str, open: &str, close: &str) -> Option<&'a str> {
    let i = s.find(open)? + open.len();
    let j = s[i..].find(close)? + i;
    Some(&s[i..j])
}

fn attr<'a>(tag: &'a str, name: &str) -> Option<&'a str> {
    let key = format!("{name}=\"");
    let i = tag.find(&key)? + key.len();
    let j = tag[i..].find('"')? + i;
    Some(&tag[i..j])
}

/// Parse repomd.xml (a small, regular format; no general XML parser needed).
pub fn parse_repomd(xml: &str) -> std::result::Result<Repomd, String> {
    let mut data = Vec::new();
    let mut timestamp: Option<u64> = None;
    let mut rest = xml;
    while let Some(i) = rest.find("<data ") {
        let block_end = rest[i..].find("</data>").ok_or("unterminated <data>")? + i;
        let block = &rest[i..block_end];
        let open_tag = &block[..block.find('>').ok_or("bad <data> tag")?];
        let kind = attr(open_tag, "type")
            .ok_or("<data> without type")?
            .to_string();
        let loc_start = block
            .find("<location")
            .ok_or_else(|| format!("{kind}: no <location>"))?;
        let loc_tag = &block[loc_start..];
        let href = attr(
            &loc_tag[..loc_tag.find('>').unwrap_or(loc_tag.len())],
            "href",
        )
        .ok_or_else(|| format!("{kind}: <location> without href"))?
        .to_string();
        let ck_start = block
            .find("<checksum")
            .ok_or_else(|| format!("{kind}: no <checksum>"))?;
        let ck = &block[ck_start..];
        let ck_tag_end = ck.find('>').ok_or("bad <checksum>")?;
        let ck_type = attr(&ck[..ck_tag_end], "type")
            .unwrap_or("sha256")
            .to_string();
        let ck_val = ck[ck_tag_end + 1..ck.find("</checksum>").ok_or("unterminated <checksum>")?]
            .trim()
            .to_string();
        if let Some(t) = between(block, "<timestamp>", "</timestamp>")
            .and_then(|t| t.trim().split('.').next()?.parse::<u64>().ok())
        {
            timestamp = timestamp.max(Some(t));
        }
        data.push(RepomdData {
            kind,
            href,
            checksum: (ck_type, ck_val),
        });
        rest = &rest[block_end..];
    }
    if data.is_empty() {
        return Err("no <data> entries".into());
    }
    let revision = between(xml, "<revision>", "</revision>").map(|s| s.trim().to_string());
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

fn decompress(name: &str, data: Vec<u8>) -> std::result::Result<Vec<u8>, String> {
    let mut out = Vec::new();
    if name.ends_with(".gz") {
        flate2::read::GzDecoder::new(&data[..])
            .read_to_end(&mut out)
            .map_err(|e| e.to_string())?;
    } else if name.ends_with(".xz") {
        liblzma::read::XzDecoder::new(&data[..])
            .read_to_end(&mut out)
            .map_err(|e| e.to_string())?;
    } else if name.ends_with(".zst") {
        zstd::stream::read::Decoder::new(&data[..])
            .and_then(|mut d| d.read_to_end(&mut out))
            .map_err(|e| e.to_string())?;
    } else if name.ends_with(".bz2") {
        return Err("bzip2-compressed repodata is not supported".into());
    } else {
        return Ok(data);
    }
    Ok(out)
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
pub fn load_repo(http: &Http, repo: &RepoConfig, with_filelists: bool) -> Result<LoadedRepo> {
    let sources = mirrors::sources(http, repo)?;
    let mut errors = Vec::new();
    for base in &sources.bases {
        match load_from(http, repo, base, with_filelists, sources.check.as_ref()) {
            Ok(r) => return Ok(r),
            Err(e) => errors.push(e.to_string()),
        }
    }
    Err(FetchError::Repo {
        repo: repo.id.clone(),
        why: errors.join("; "),
    })
}

fn load_from(
    http: &Http,
    repo: &RepoConfig,
    base: &str,
    with_filelists: bool,
    check: Option<&mirrors::RepomdCheck>,
) -> Result<LoadedRepo> {
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
    let text = String::from_utf8(xml).map_err(|_| FetchError::Get {
        url: url.clone(),
        why: "not UTF-8".into(),
    })?;
    let repomd = parse_repomd(&text).map_err(|why| FetchError::Get {
        url: url.clone(),
        why,
    })?;
    let fetch = |kind: &str| -> Result<Option<Vec<u8>>> {
        let Some(d) = repomd.data.iter().find(|d| d.kind == kind) else {
            return Ok(None);
        };
        let url = join_url(base, &d.href);
        let raw = get(http, &url)?;
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
        decompress(&d.href, raw)
            .map(Some)
            .map_err(|why| FetchError::Get { url, why })
    };
    let primary = fetch("primary")?.ok_or_else(|| FetchError::Repo {
        repo: repo.id.clone(),
        why: format!("{url} lists no primary metadata"),
    })?;
    let filelists = if with_filelists {
        fetch("filelists")?
    } else {
        None
    };
    Ok(LoadedRepo {
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
    })
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

/// Make every package available locally: `file://` ones are verified in place, others
/// downloaded into `cache/rpms/<sha256>.rpm` (reused when present and valid).
pub fn fetch_rpms(
    http: &Http,
    repos: &[LoadedRepo],
    packages: &[SolvedPackage],
    cache: &Path,
    progress: &dyn arbor_repo::progress::Progress,
) -> Result<Vec<FetchedRpm>> {
    let dir = cache.join("rpms");
    fs::create_dir_all(&dir).map_err(|source| FetchError::Io {
        path: dir.clone(),
        source,
    })?;
    progress.start("fetch", Some(packages.len() as u64));
    let memo = DigestMemo::load(&dir);
    let fresh = std::sync::Mutex::new(Vec::new());
    let out = packages
        .par_iter()
        .map(|p| {
            let r = fetch_one(http, repos, p, &dir, &memo, &fresh);
            progress.inc(1);
            if let Ok(f) = &r {
                if f.downloaded {
                    progress.bytes(fs::metadata(&f.path).map(|m| m.len()).unwrap_or(0));
                }
            }
            r
        })
        .collect::<Result<Vec<_>>>();
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
            source,
        })?;
        let actual = if kind == "sha256" {
            sha.clone()
        } else {
            let data = fs::read(path).map_err(|source| FetchError::Io {
                path: path.into(),
                source,
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
    let mut last = None;
    for _ in 0..RETRIES {
        let body = get(http, &url)?;
        let actual = digest(&kind, &body).map_err(|why| FetchError::Get {
            url: url.clone(),
            why,
        })?;
        if actual != expected {
            last = Some(mismatch(actual));
            continue;
        }
        let part = cached.with_extension("rpm.part");
        let write = || -> std::io::Result<()> {
            let mut f = fs::File::create(&part)?;
            f.write_all(&body)?;
            f.sync_all()?;
            fs::rename(&part, &cached)
        };
        write().map_err(|source| FetchError::Io {
            path: part.clone(),
            source,
        })?;
        let sha256 = if kind == "sha256" {
            actual
        } else {
            hex(&Sha256::digest(&body))
        };
        // Remembered like a verified local file: the next compose does not hash it again.
        if let Some(stamp) = Stamp::of(&cached) {
            fresh.lock().unwrap_or_else(|p| p.into_inner()).push((
                cached.clone(),
                stamp,
                sha256.clone(),
            ));
        }
        return Ok(FetchedRpm {
            nevra: p.nevra(),
            path: cached,
            sha256,
            downloaded: true,
        });
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
