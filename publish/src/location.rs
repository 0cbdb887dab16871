//! Store URLs: `file:///path` (or a bare path), `s3://bucket/prefix`, `memory://`, and
//! read-only `http(s)://` sources, each turned into an `Arc<dyn ObjectStore>` plus what
//! the engine needs to know about it (how to lock, whether it keeps Cache-Control).
//!
//! S3 settings come from the standard variables (`AWS_ENDPOINT_URL`, `AWS_REGION`,
//! `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`, `AWS_ALLOW_HTTP`)
//! or from [`S3Settings`] fields the CLI fills from flags. Requests are path-style, so
//! any S3-compatible server (garage, Ceph, MinIO) works with a plain endpoint URL.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use object_store::aws::{AmazonS3Builder, S3ConditionalPut};
use object_store::http::HttpBuilder;
use object_store::local::LocalFileSystem;
use object_store::memory::InMemory;
use object_store::prefix::PrefixStore;
use object_store::{BackoffConfig, ClientOptions, ObjectStore, RetryConfig};

use crate::error::{PublishError, Result};

/// Region used when none is configured; S3-compatible servers mostly ignore it, but the
/// signature includes it, so it must match the server's (garage: `garage`).
const DEFAULT_REGION: &str = "us-east-1";
/// Give up connecting quickly: an unreachable endpoint should fail in seconds, not minutes.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Whole-request limit; generous because one request may carry a large object.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(300);

/// S3 connection settings. `None` fields fall back to the `AWS_*` environment variables.
#[derive(Debug, Clone, Default)]
pub struct S3Settings {
    pub endpoint: Option<String>,
    pub region: Option<String>,
    pub access_key_id: Option<String>,
    pub secret_access_key: Option<String>,
    pub session_token: Option<String>,
    pub allow_http: Option<bool>,
}

impl S3Settings {
    /// Fill every unset field from the environment.
    pub fn with_env(mut self) -> S3Settings {
        let var = |names: &[&str]| {
            names
                .iter()
                .find_map(|n| std::env::var(n).ok().filter(|v| !v.is_empty()))
        };
        self.endpoint = self
            .endpoint
            .or_else(|| var(&["AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL", "AWS_ENDPOINT"]));
        self.region = self
            .region
            .or_else(|| var(&["AWS_REGION", "AWS_DEFAULT_REGION"]));
        self.access_key_id = self.access_key_id.or_else(|| var(&["AWS_ACCESS_KEY_ID"]));
        self.secret_access_key = self
            .secret_access_key
            .or_else(|| var(&["AWS_SECRET_ACCESS_KEY"]));
        self.session_token = self.session_token.or_else(|| var(&["AWS_SESSION_TOKEN"]));
        self.allow_http = self.allow_http.or_else(|| {
            var(&["AWS_ALLOW_HTTP"])
                .map(|v| matches!(v.to_ascii_lowercase().as_str(), "1" | "true" | "yes"))
        });
        self
    }
}

/// Where a [`Location`]'s bytes live.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LocationKind {
    /// A local directory; concurrent summary updates take a lock file in it.
    File { root: PathBuf },
    S3 {
        bucket: String,
        prefix: String,
        endpoint: String,
    },
    /// Process-local, for tests.
    Memory,
    /// Read-only HTTP(S) source (GET only, no listing).
    Http,
}

/// A store and how to reach it.
#[derive(Debug, Clone)]
pub struct Location {
    pub store: Arc<dyn ObjectStore>,
    /// The URL as the user gave it, normalised (no trailing `/`), for messages.
    pub url: String,
    pub kind: LocationKind,
}

fn bad(url: &str, why: impl Into<String>) -> PublishError {
    PublishError::BadUrl {
        url: url.to_string(),
        why: why.into(),
    }
}

fn retry_config() -> RetryConfig {
    RetryConfig {
        backoff: BackoffConfig {
            init_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(4),
            base: 2.0,
        },
        max_retries: 4,
        retry_timeout: Duration::from_secs(60),
    }
}

/// Client options; `allow_http` lives here, so set it here (a later
/// `with_client_options` would reset a builder's `with_allow_http`).
fn client_options(allow_http: bool) -> ClientOptions {
    ClientOptions::new()
        .with_connect_timeout(CONNECT_TIMEOUT)
        .with_timeout(REQUEST_TIMEOUT)
        .with_allow_http(allow_http)
}

fn is_loopback_http(endpoint: &str) -> bool {
    let Some(rest) = endpoint.strip_prefix("http://") else {
        return false;
    };
    let host = rest.split('/').next().unwrap_or("");
    let host = if let Some(h) = host.strip_prefix('[') {
        h.split(']').next().unwrap_or("")
    } else {
        host.rsplit_once(':').map_or(host, |(h, _)| h)
    };
    matches!(host, "127.0.0.1" | "localhost" | "::1")
}

impl Location {
    /// A store the caller built, e.g. a shared `InMemory` in tests.
    pub fn from_store(store: Arc<dyn ObjectStore>, url: &str, kind: LocationKind) -> Location {
        Location {
            store,
            url: url.trim_end_matches('/').to_string(),
            kind,
        }
    }

    /// A fresh, empty in-memory store.
    pub fn memory() -> Location {
        Location::from_store(Arc::new(InMemory::new()), "memory://", LocationKind::Memory)
    }

    /// Parse a destination URL; a `file://` directory is created if missing.
    pub fn parse_destination(url: &str, s3: &S3Settings) -> Result<Location> {
        let loc = Location::parse(url, s3, true)?;
        if loc.kind == LocationKind::Http {
            return Err(PublishError::ReadOnly { url: loc.url });
        }
        Ok(loc)
    }

    /// Parse a source URL (any kind; `http(s)://` is allowed and read-only).
    pub fn parse_source(url: &str, s3: &S3Settings) -> Result<Location> {
        Location::parse(url, s3, false)
    }

    fn parse(url: &str, s3: &S3Settings, create: bool) -> Result<Location> {
        if url.is_empty() {
            return Err(bad(url, "empty URL"));
        }
        if let Some(rest) = url.strip_prefix("file://") {
            if !rest.starts_with('/') {
                return Err(bad(
                    url,
                    "a file:// URL needs an absolute path (file:///path)",
                ));
            }
            return Location::local(url, Path::new(rest), create);
        }
        if let Some(rest) = url.strip_prefix("s3://") {
            return Location::s3(url, rest, s3);
        }
        if url == "memory://" || url.starts_with("memory://") {
            let mut loc = Location::memory();
            loc.url = url.trim_end_matches('/').to_string();
            return Ok(loc);
        }
        if url.starts_with("http://") || url.starts_with("https://") {
            let store = HttpBuilder::new()
                .with_url(url)
                .with_retry(retry_config())
                .with_client_options(client_options(url.starts_with("http://")))
                .build()
                .map_err(|e| bad(url, crate::error::error_chain(&e)))?;
            return Ok(Location::from_store(
                Arc::new(store),
                url,
                LocationKind::Http,
            ));
        }
        if let Some((scheme, _)) = url.split_once("://") {
            return Err(bad(
                url,
                format!(
                    "unsupported scheme {scheme:?} (use file://, s3://, http(s):// or memory://)"
                ),
            ));
        }
        // A bare path is a local directory.
        let path = std::path::absolute(url).map_err(|error| PublishError::Io {
            path: PathBuf::from(url),
            error,
        })?;
        Location::local(url, &path, create)
    }

    fn local(url: &str, path: &Path, create: bool) -> Result<Location> {
        if create {
            std::fs::create_dir_all(path).map_err(|error| PublishError::Io {
                path: path.to_path_buf(),
                error,
            })?;
        } else if !path.is_dir() {
            return Err(bad(url, format!("{} is not a directory", path.display())));
        }
        let store = LocalFileSystem::new_with_prefix(path)
            .map_err(|e| bad(url, crate::error::error_chain(&e)))?;
        let root = path.canonicalize().map_err(|error| PublishError::Io {
            path: path.to_path_buf(),
            error,
        })?;
        let display = if url.starts_with("file://") {
            url.to_string()
        } else {
            format!("file://{}", root.display())
        };
        Ok(Location::from_store(
            Arc::new(store),
            &display,
            LocationKind::File { root },
        ))
    }

    fn s3(url: &str, rest: &str, settings: &S3Settings) -> Result<Location> {
        let settings = settings.clone().with_env();
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket.is_empty() {
            return Err(bad(url, "missing bucket name (s3://BUCKET/PREFIX)"));
        }
        let prefix = prefix.trim_matches('/').to_string();
        let (Some(key), Some(secret)) = (&settings.access_key_id, &settings.secret_access_key)
        else {
            // Refuse rather than let the client probe instance-metadata endpoints.
            return Err(bad(
                url,
                "no S3 credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY",
            ));
        };
        let endpoint = settings
            .endpoint
            .clone()
            .unwrap_or_else(|| "https://s3.amazonaws.com".to_string());
        let allow_http = match settings.allow_http {
            Some(a) => a,
            None => is_loopback_http(&endpoint),
        };
        if endpoint.starts_with("http://") && !allow_http {
            return Err(bad(
                url,
                format!("endpoint {endpoint} is plain http: set AWS_ALLOW_HTTP=true to allow it"),
            ));
        }
        let mut builder = AmazonS3Builder::new()
            .with_bucket_name(bucket)
            .with_endpoint(&endpoint)
            .with_region(settings.region.as_deref().unwrap_or(DEFAULT_REGION))
            .with_access_key_id(key)
            .with_secret_access_key(secret)
            .with_virtual_hosted_style_request(false)
            .with_conditional_put(S3ConditionalPut::ETagMatch)
            .with_retry(retry_config())
            .with_client_options(client_options(allow_http));
        if let Some(t) = &settings.session_token {
            builder = builder.with_token(t);
        }
        let s3 = builder
            .build()
            .map_err(|e| bad(url, crate::error::error_chain(&e)))?;
        let store: Arc<dyn ObjectStore> = if prefix.is_empty() {
            Arc::new(s3)
        } else {
            Arc::new(PrefixStore::new(s3, prefix.as_str()))
        };
        Ok(Location::from_store(
            store,
            url,
            LocationKind::S3 {
                bucket: bucket.to_string(),
                prefix,
                endpoint,
            },
        ))
    }

    /// The URL of `key` inside this location, for messages.
    pub fn key_url(&self, key: &str) -> String {
        if key.is_empty() {
            self.url.clone()
        } else {
            format!("{}/{key}", self.url)
        }
    }

    /// Whether the store keeps per-object attributes such as Cache-Control.
    pub fn keeps_attributes(&self) -> bool {
        matches!(self.kind, LocationKind::S3 { .. } | LocationKind::Memory)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_detection() {
        assert!(is_loopback_http("http://127.0.0.1:3900"));
        assert!(is_loopback_http("http://localhost:3900/"));
        assert!(is_loopback_http("http://[::1]:80"));
        assert!(!is_loopback_http("http://example.com:3900"));
        assert!(!is_loopback_http("https://127.0.0.1:3900"));
    }

    #[test]
    fn bad_urls_are_errors() {
        let s = S3Settings::default();
        assert!(matches!(
            Location::parse_destination("ftp://x/y", &s),
            Err(PublishError::BadUrl { .. })
        ));
        assert!(matches!(
            Location::parse_destination("file://relative", &s),
            Err(PublishError::BadUrl { .. })
        ));
        assert!(matches!(
            Location::parse_destination("http://127.0.0.1:1/", &s),
            Err(PublishError::ReadOnly { .. })
        ));
        let creds = S3Settings {
            access_key_id: Some("k".into()),
            secret_access_key: Some("s".into()),
            endpoint: Some("http://10.1.2.3:3900".into()),
            allow_http: Some(false),
            ..Default::default()
        };
        let e = Location::parse_destination("s3://b/p", &creds).unwrap_err();
        assert!(e.to_string().contains("AWS_ALLOW_HTTP"), "{e}");
        let e = Location::parse_destination("s3:///p", &creds).unwrap_err();
        assert!(e.to_string().contains("bucket"), "{e}");
    }

    #[test]
    fn s3_url_with_prefix() {
        let creds = S3Settings {
            access_key_id: Some("k".into()),
            secret_access_key: Some("s".into()),
            endpoint: Some("http://127.0.0.1:3900".into()),
            region: Some("garage".into()),
            ..Default::default()
        };
        let loc = Location::parse_destination("s3://bucket/some/prefix/", &creds).unwrap();
        assert_eq!(
            loc.kind,
            LocationKind::S3 {
                bucket: "bucket".into(),
                prefix: "some/prefix".into(),
                endpoint: "http://127.0.0.1:3900".into()
            }
        );
        assert_eq!(loc.key_url("summary"), "s3://bucket/some/prefix/summary");
    }
}
