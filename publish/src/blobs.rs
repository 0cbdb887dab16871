//! Plain blobs in a store, by key, for callers outside publishing (the shared package
//! cache of `--cachedir s3://…`): bounded GETs spooled to a file, write-once PUTs (a
//! HEAD first; large files as multipart uploads), on a runtime of their own so that
//! blocking callers on many threads can share one.

use std::fs::File;
use std::io::Read;
use std::path::Path;

use crate::body::{Body, SPOOL_THRESHOLD};
use crate::error::{PublishError, Result};
use crate::location::{Location, LocationKind};
use crate::remote::{Expect, Remote};

/// A store used as a blob cache.
#[derive(Debug)]
pub struct Blobs {
    remote: Remote,
    rt: tokio::runtime::Runtime,
}

impl Blobs {
    pub fn new(loc: &Location) -> Result<Blobs> {
        Ok(Blobs {
            remote: Remote::new(loc),
            rt: crate::runtime()?,
        })
    }

    /// False for `http(s)://` locations (read-only).
    pub fn writable(&self) -> bool {
        self.remote.loc.kind != LocationKind::Http
    }

    /// The URL of `key`.
    pub fn url(&self, key: &str) -> String {
        self.remote.url(key)
    }

    /// GET `key` (at most `max` bytes) into `dest`; `Ok(false)` when absent.
    pub fn get(&self, key: &str, dest: &Path, max: u64) -> Result<bool> {
        self.rt.block_on(self.remote.get_to_file(key, max, dest))
    }

    /// PUT `src` as `key` unless the key exists (`replace`: regardless); `Ok(true)` when
    /// written.
    pub fn put(&self, key: &str, src: &Path, replace: bool) -> Result<bool> {
        let io = |error| PublishError::Io {
            path: src.to_path_buf(),
            error,
        };
        self.rt.block_on(async {
            if !replace && self.remote.head(key).await?.is_some() {
                return Ok(false);
            }
            let mut file = File::open(src).map_err(io)?;
            let len = file.metadata().map_err(io)?.len();
            if len <= 2 * SPOOL_THRESHOLD {
                let mut data = Vec::with_capacity(len as usize);
                file.read_to_end(&mut data).map_err(io)?;
                self.remote.put(key, data.into(), Expect::Any).await?;
            } else {
                self.remote.put_body(key, Body::File { file, len }).await?;
            }
            Ok(true)
        })
    }
}
