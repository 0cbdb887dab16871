//! `--cachedir URL`: the shared package cache (`arbor_compose::shared`) over a store
//! (`s3://`, `gs://`, `az://`, `file://`, read-only `http(s)://`).

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use anyhow::{Context, Result};
use arbor_compose::shared::{SharedCache, SharedStats};
use arbor_publish::{error_chain, Blobs, Location, LocationKind, StoreFailure, StoreOpts};

/// A store as a shared cache. A store that cannot be reached is given up on for the rest
/// of the run at its first failure (one timeout, not one per package).
#[derive(Debug)]
struct StoreCache {
    blobs: Blobs,
    url: String,
    stats: SharedStats,
    down: AtomicBool,
}

impl StoreCache {
    /// A request, unless the store was found unreachable earlier in this run: then
    /// `skipped` (absent, not stored), silently — the one warning has been given.
    fn call<T>(
        &self,
        skipped: T,
        f: impl FnOnce() -> arbor_publish::Result<T>,
    ) -> Result<T, String> {
        if self.down.load(Ordering::Relaxed) {
            return Ok(skipped);
        }
        f().map_err(|e| {
            if matches!(
                &e,
                arbor_publish::PublishError::Store {
                    kind: StoreFailure::Unreachable
                        | StoreFailure::AccessDenied
                        | StoreFailure::NoSuchBucket,
                    ..
                }
            ) && !self.down.swap(true, Ordering::Relaxed)
            {
                tracing::warn!(
                    "shared cache {}: not used for the rest of this run",
                    self.url
                );
            }
            error_chain(&e)
        })
    }
}

impl SharedCache for StoreCache {
    fn get(&self, key: &str, dest: &Path, max: u64) -> Result<bool, String> {
        self.call(false, || self.blobs.get(key, dest, max))
    }
    fn put(&self, key: &str, src: &Path, replace: bool) -> Result<bool, String> {
        self.call(false, || self.blobs.put(key, src, replace))
    }
    fn writable(&self) -> bool {
        self.blobs.writable() && !self.down.load(Ordering::Relaxed)
    }
    fn url(&self) -> String {
        self.url.clone()
    }
    fn stats(&self) -> &SharedStats {
        &self.stats
    }
}

/// Whether a `--cachedir` value names a store rather than a local directory.
pub fn is_url(s: &str) -> bool {
    s.contains("://")
}

/// Open the shared cache at `url` (`http(s)://` read-only).
pub fn open(url: &str, opts: &StoreOpts) -> Result<Arc<dyn SharedCache>> {
    let loc = if url.starts_with("http://") || url.starts_with("https://") {
        Location::parse_source(url, opts)
    } else {
        Location::parse_destination(url, opts)
    }
    .with_context(|| format!("--cachedir {url}"))?;
    if loc.kind == LocationKind::Memory {
        anyhow::bail!("--cachedir {url}: a memory:// cache would be gone at exit; name a store or a directory");
    }
    let blobs = Blobs::new(&loc).with_context(|| format!("--cachedir {url}"))?;
    Ok(Arc::new(StoreCache {
        blobs,
        url: loc.url.clone(),
        stats: SharedStats::default(),
        down: AtomicBool::new(false),
    }))
}
