//! A package cache shared by many machines (`--cachedir s3://bucket/prefix`, `file://`,
//! or read-only `http(s)://`): what one CI runner downloaded and imported, the next one
//! fetches instead of downloading from the distribution's mirrors and importing again.
//!
//! Layout under the cache's URL, every key content-addressed and written once:
//! - `rpms/<kind>-<digest>.rpm`: an RPM exactly as its repository serves it, named by the
//!   digest its repodata gives (the local cache's own name for it);
//! - `imports/<key>.pack`: one package's import (see `import::pack`), named by the import
//!   cache key (RPM SHA-256, importer version, every import option, the users mapping);
//! - `initramfs/<key>.pack`: the tree an initramfs step left, named by the tree it ran on,
//!   its command and timestamp (see `scripts::initramfs_cache`).
//!
//! Trust: what is read is checked to be intact (every object hashed), not to be what the
//! named input would produce — that would mean doing the work again. Whoever can write
//! the cache is trusted as much as whoever can write the repository.
//!
//! Nothing read from it is trusted: an RPM must have the digest the repodata gives and
//! an import pack's objects their checksums (content objects verified by inflating and
//! hashing them), its entry the importer version and the RPM digest of its key. What
//! fails is refused with a warning naming the key, fetched from the origin or imported
//! as if missing, and replaced in the cache. A cache that cannot be reached costs speed,
//! never the compose: the rest of the run goes without it.
//!
//! Many runners may write at once: a key is only ever written with the same bytes (or
//! bytes that verify the same), an existing one is left alone, and a reader verifies
//! what it reads, so a race between writers needs no lock.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::Serialize;

/// Where shared blobs live: implemented by the caller over an object store.
pub trait SharedCache: Send + Sync + std::fmt::Debug {
    /// Copy the blob `key` into `dest` (created or truncated); `Ok(false)` when there is
    /// no such blob. At most `max` bytes are read.
    fn get(&self, key: &str, dest: &Path, max: u64) -> Result<bool, String>;
    /// Store `src` as `key` unless a blob is there already (`replace`: overwrite it, it
    /// was found corrupt); `Ok(true)` when written.
    fn put(&self, key: &str, src: &Path, replace: bool) -> Result<bool, String>;
    /// False for a read-only cache (`http(s)://`): nothing is stored.
    fn writable(&self) -> bool;
    /// The cache's URL, for messages.
    fn url(&self) -> String;
    /// What this run did with it.
    fn stats(&self) -> &SharedStats;
}

/// Counters of one run's use of a shared cache.
#[derive(Debug, Default)]
pub struct SharedStats {
    pub rpms_fetched: AtomicU64,
    pub rpms_stored: AtomicU64,
    pub imports_fetched: AtomicU64,
    pub imports_stored: AtomicU64,
    pub initramfs_fetched: AtomicU64,
    pub initramfs_stored: AtomicU64,
    pub bytes_fetched: AtomicU64,
    pub bytes_stored: AtomicU64,
    /// Blobs that failed verification (refused, replaced when writable).
    pub rejected: AtomicU64,
    /// Requests that failed (the run went on without them).
    pub errors: AtomicU64,
}

/// [`SharedStats`] as numbers (the compose JSON's `arbor-shared-cache`).
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct SharedCounts {
    pub url: String,
    pub rpms_fetched: u64,
    pub rpms_stored: u64,
    pub imports_fetched: u64,
    pub imports_stored: u64,
    pub initramfs_fetched: u64,
    pub initramfs_stored: u64,
    pub bytes_fetched: u64,
    pub bytes_stored: u64,
    pub rejected: u64,
    pub errors: u64,
}

impl SharedStats {
    pub fn counts(&self, url: String) -> SharedCounts {
        let n = |a: &AtomicU64| a.load(Ordering::Relaxed);
        SharedCounts {
            url,
            rpms_fetched: n(&self.rpms_fetched),
            rpms_stored: n(&self.rpms_stored),
            imports_fetched: n(&self.imports_fetched),
            imports_stored: n(&self.imports_stored),
            initramfs_fetched: n(&self.initramfs_fetched),
            initramfs_stored: n(&self.initramfs_stored),
            bytes_fetched: n(&self.bytes_fetched),
            bytes_stored: n(&self.bytes_stored),
            rejected: n(&self.rejected),
            errors: n(&self.errors),
        }
    }
}

/// The key of an RPM with this repodata digest.
pub fn rpm_key(kind: &str, digest: &str) -> String {
    format!("rpms/{kind}-{digest}.rpm")
}

/// The key of an import with this import-cache key.
pub fn import_key(key: &str) -> String {
    format!("imports/{key}.pack")
}

pub(crate) fn bump(a: &AtomicU64, n: u64) {
    a.fetch_add(n, Ordering::Relaxed);
}

/// A request that failed: warned about and counted; the caller goes on without it.
pub(crate) fn failed(cache: &dyn SharedCache, what: &str, why: &str) {
    bump(&cache.stats().errors, 1);
    tracing::warn!("shared cache {}: {what}: {why}", cache.url());
}

/// A blob that failed verification: warned about and counted. `instead`: what is done
/// instead ("downloading it from its repository").
pub(crate) fn rejected(cache: &dyn SharedCache, key: &str, why: &str, instead: &str) {
    bump(&cache.stats().rejected, 1);
    tracing::warn!(
        "shared cache {}: {key} refused ({why}); {instead}{}",
        cache.url(),
        if cache.writable() {
            " and replacing it"
        } else {
            ""
        }
    );
}

/// Store `src` as `key` (when writable); counts what was written. `bytes`: its size.
pub(crate) fn store(
    cache: &dyn SharedCache,
    key: &str,
    src: &Path,
    replace: bool,
    counter: &AtomicU64,
) {
    if !cache.writable() {
        return;
    }
    match cache.put(key, src, replace) {
        Ok(true) => {
            bump(counter, 1);
            let len = std::fs::metadata(src).map(|m| m.len()).unwrap_or(0);
            bump(&cache.stats().bytes_stored, len);
        }
        Ok(false) => {}
        Err(why) => failed(cache, &format!("storing {key}"), &why),
    }
}

#[cfg(test)]
pub(crate) mod testing {
    //! A directory as a shared cache, for unit tests (the real stores are tested
    //! end to end against garage).
    use super::*;
    use std::path::PathBuf;

    #[derive(Debug)]
    pub struct DirCache {
        pub root: PathBuf,
        pub stats: SharedStats,
    }

    impl DirCache {
        pub fn new(root: &Path) -> DirCache {
            DirCache {
                root: root.to_path_buf(),
                stats: SharedStats::default(),
            }
        }
    }

    impl SharedCache for DirCache {
        fn get(&self, key: &str, dest: &Path, max: u64) -> Result<bool, String> {
            let src = self.root.join(key);
            match std::fs::metadata(&src) {
                Err(_) => return Ok(false),
                Ok(m) if m.len() > max => return Err(format!("{key}: over {max} bytes")),
                Ok(_) => {}
            }
            std::fs::copy(&src, dest).map_err(|e| e.to_string())?;
            Ok(true)
        }
        fn put(&self, key: &str, src: &Path, replace: bool) -> Result<bool, String> {
            let dest = self.root.join(key);
            if dest.exists() && !replace {
                return Ok(false);
            }
            std::fs::create_dir_all(dest.parent().unwrap()).map_err(|e| e.to_string())?;
            std::fs::copy(src, &dest).map_err(|e| e.to_string())?;
            Ok(true)
        }
        fn writable(&self) -> bool {
            true
        }
        fn url(&self) -> String {
            format!("file://{}", self.root.display())
        }
        fn stats(&self) -> &SharedStats {
            &self.stats
        }
    }
}
