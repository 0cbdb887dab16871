//! Store URLs → transports: `file:///path` (or a bare path), `s3://bucket/prefix`,
//! `gs://bucket/prefix`, `az://container/prefix`, `memory://`, and read-only
//! `http(s)://` sources, each turned into an `Arc<dyn ObjectStore>` plus what the engine
//! needs to know about it (how to lock, whether it keeps Cache-Control). This is the one
//! place transports are built; publish, mirror and prune receive them in a [`Location`].
//!
//! object_store does the work: [`ObjectStoreScheme`] recognises the URL (and
//! percent-decodes its path), and each cloud builder reads its own environment, as its
//! `from_env` does (`AWS_*`, `GOOGLE_*`, `AZURE_*`: endpoints, regions, keys, session
//! tokens, web-identity and workload-identity credentials). arbor adds only timeouts and
//! retries, conditional writes on S3, path-style S3 requests (object_store's default),
//! plain http for a loopback S3 endpoint, and one refusal: with no credentials
//! configured at all, the clouds' instance-metadata services are not probed (a job
//! should fail at once, naming the variables, not hang at the end).
//!
//! `http(s)://` URLs are always plain HTTP sources, even on a cloud's host name, so a
//! public bucket can be mirrored without credentials.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey, S3ConditionalPut};
use object_store::azure::{AzureConfigKey, MicrosoftAzureBuilder};
use object_store::gcp::{GoogleCloudStorageBuilder, GoogleConfigKey};
use object_store::http::HttpBuilder;
use object_store::local::LocalFileSystem;
use object_store::memory::InMemory;
use object_store::path::Path as StorePath;
use object_store::prefix::PrefixStore;
use object_store::{BackoffConfig, ClientConfigKey, ObjectStore, ObjectStoreScheme, RetryConfig};
use url::Url;

use crate::error::{error_chain, PublishError, Result};

/// Give up connecting quickly: an unreachable endpoint should fail in seconds, not minutes.
const CONNECT_TIMEOUT: &str = "5s";
/// Whole-request limit; generous because one request may carry a large object (GETs are
/// also held to a minimum average rate by `Remote`, uploads go in 8 MiB parts).
const REQUEST_TIMEOUT: &str = "1800s";
/// A connection that delivers nothing for this long is given up on.
const READ_TIMEOUT: &str = "30s";
/// What an S3 error message names as the endpoint when none is configured.
const AWS_ENDPOINT: &str = "https://s3.amazonaws.com";

/// How to reach stores beyond what the URL says.
#[derive(Debug, Clone)]
pub struct StoreOpts {
    /// The S3 endpoint, over `AWS_ENDPOINT_URL_S3`/`AWS_ENDPOINT_URL` (`--s3-endpoint`).
    pub s3_endpoint: Option<String>,
    /// Settings in object_store's spelling (`aws_access_key_id`, `google_service_account`,
    /// `azure_storage_account_name`, …), over the environment; each store takes the keys
    /// it knows.
    pub config: Vec<(String, String)>,
    /// Read each store's variables from the environment (default: yes).
    pub env: bool,
}

impl Default for StoreOpts {
    fn default() -> Self {
        StoreOpts {
            s3_endpoint: None,
            config: Vec::new(),
            env: true,
        }
    }
}

/// Where a [`Location`]'s bytes live.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LocationKind {
    /// A local directory; concurrent summary updates take a lock file in it.
    File {
        root: PathBuf,
    },
    S3 {
        bucket: String,
        prefix: String,
        endpoint: String,
    },
    Gcs {
        bucket: String,
        prefix: String,
    },
    Azure {
        container: String,
        prefix: String,
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

fn config(url: &str, why: impl Into<String>) -> PublishError {
    PublishError::Config {
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

/// Timeouts as client settings, so that those the environment gave (a proxy, http
/// allowed) are kept: `with_client_options` would replace them all.
fn client_settings() -> [(ClientConfigKey, &'static str); 3] {
    [
        (ClientConfigKey::ConnectTimeout, CONNECT_TIMEOUT),
        (ClientConfigKey::Timeout, REQUEST_TIMEOUT),
        (ClientConfigKey::ReadTimeout, READ_TIMEOUT),
    ]
}

fn truthy(v: &str) -> bool {
    matches!(
        v.to_ascii_lowercase().as_str(),
        "1" | "true" | "on" | "yes" | "y"
    )
}

fn is_loopback_http(endpoint: &str) -> bool {
    let Ok(u) = Url::parse(endpoint) else {
        return false;
    };
    u.scheme() == "http"
        && match u.host() {
            Some(url::Host::Domain(d)) => d == "localhost",
            Some(url::Host::Ipv4(a)) => a.is_loopback(),
            Some(url::Host::Ipv6(a)) => a.is_loopback(),
            None => false,
        }
}

/// The bucket and prefix of `s3://`, `gs://`, `az://` URLs; object_store decodes the path.
fn bucket_and_prefix(url: &str, parsed: &Url, path: &StorePath) -> Result<(String, String)> {
    match parsed.host_str() {
        Some(b) if !b.is_empty() => Ok((b.to_string(), path.to_string())),
        _ => Err(bad(
            url,
            format!("missing bucket name ({}://BUCKET/PREFIX)", parsed.scheme()),
        )),
    }
}

fn with_prefix(store: impl ObjectStore, prefix: &str) -> Arc<dyn ObjectStore> {
    if prefix.is_empty() {
        Arc::new(store)
    } else {
        Arc::new(PrefixStore::new(store, prefix))
    }
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
    pub fn parse_destination(url: &str, opts: &StoreOpts) -> Result<Location> {
        let loc = Location::parse(url, opts, true)?;
        if loc.kind == LocationKind::Http {
            return Err(PublishError::ReadOnly { url: loc.url });
        }
        Ok(loc)
    }

    /// Parse a source URL (any kind; `http(s)://` is allowed and read-only).
    pub fn parse_source(url: &str, opts: &StoreOpts) -> Result<Location> {
        Location::parse(url, opts, false)
    }

    fn parse(url: &str, opts: &StoreOpts, create: bool) -> Result<Location> {
        if url.is_empty() {
            return Err(bad(url, "empty URL"));
        }
        if !url.contains("://") {
            // A bare path is a local directory.
            let path = std::path::absolute(url).map_err(|error| PublishError::Io {
                path: PathBuf::from(url),
                error,
            })?;
            return Location::local(url, &path, create);
        }
        let parsed = Url::parse(url).map_err(|e| bad(url, e.to_string()))?;
        match parsed.scheme() {
            "file" => {
                let path = parsed.to_file_path().map_err(|()| {
                    bad(url, "a file:// URL needs an absolute path (file:///path)")
                })?;
                return Location::local(url, &path, create);
            }
            "http" | "https" => return Location::http(url),
            "memory" => {
                let mut loc = Location::memory();
                loc.url = url.trim_end_matches('/').to_string();
                return Ok(loc);
            }
            _ => {}
        }
        let unsupported = || {
            bad(
                url,
                format!(
                    "unsupported scheme {:?} (use file://, s3://, gs://, az://, http(s):// or memory://)",
                    parsed.scheme()
                ),
            )
        };
        let (scheme, path) = match ObjectStoreScheme::parse(&parsed) {
            Ok(x) => x,
            // `s3:///p`: a scheme object_store knows, without its bucket.
            Err(_) if matches!(parsed.scheme(), "s3" | "s3a" | "gs" | "az") => {
                return Err(bad(
                    url,
                    format!("missing bucket name ({}://BUCKET/PREFIX)", parsed.scheme()),
                ))
            }
            Err(_) => return Err(unsupported()),
        };
        match scheme {
            ObjectStoreScheme::AmazonS3 => Location::s3(url, &parsed, &path, opts),
            ObjectStoreScheme::GoogleCloudStorage => Location::gcs(url, &parsed, &path, opts),
            ObjectStoreScheme::MicrosoftAzure => Location::azure(url, &parsed, &path, opts),
            _ => Err(unsupported()),
        }
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
        let store =
            LocalFileSystem::new_with_prefix(path).map_err(|e| bad(url, error_chain(&e)))?;
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

    fn http(url: &str) -> Result<Location> {
        let mut builder = HttpBuilder::new()
            .with_url(url)
            .with_retry(retry_config())
            .with_config(
                ClientConfigKey::AllowHttp,
                url.starts_with("http://").to_string(),
            );
        for (k, v) in client_settings() {
            builder = builder.with_config(k, v);
        }
        let store = builder.build().map_err(|e| bad(url, error_chain(&e)))?;
        Ok(Location::from_store(
            Arc::new(store),
            url,
            LocationKind::Http,
        ))
    }

    fn s3(url: &str, parsed: &Url, path: &StorePath, opts: &StoreOpts) -> Result<Location> {
        use AmazonS3ConfigKey as K;
        let (bucket, prefix) = bucket_and_prefix(url, parsed, path)?;
        let mut b = if opts.env {
            AmazonS3Builder::from_env()
        } else {
            AmazonS3Builder::new()
        };
        for (k, v) in &opts.config {
            if let Ok(key) = k.to_ascii_lowercase().parse() {
                b = b.with_config(key, v);
            }
        }
        if let Some(e) = &opts.s3_endpoint {
            // The S3-specific endpoint is the one object_store prefers.
            b = b.with_config(K::S3Endpoint, e);
        }
        let has = |k: K| b.get_config_value(&k).is_some_and(|v| !v.is_empty());
        let skip_signature = b
            .get_config_value(&K::SkipSignature)
            .is_some_and(|v| truthy(&v));
        let credentials = (has(K::AccessKeyId) || has(K::SecretAccessKey))
            || (has(K::WebIdentityTokenFile) && has(K::RoleArn))
            || has(K::ContainerCredentialsRelativeUri)
            || (has(K::ContainerCredentialsFullUri) && has(K::ContainerAuthorizationTokenFile))
            || skip_signature;
        if !credentials {
            return Err(config(
                url,
                "no S3 credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or \
                 AWS_WEB_IDENTITY_TOKEN_FILE and AWS_ROLE_ARN); instance metadata is not queried",
            ));
        }
        let endpoint = b
            .get_config_value(&K::S3Endpoint)
            .or_else(|| b.get_config_value(&K::Endpoint));
        let allow_http = b
            .get_config_value(&K::Client(ClientConfigKey::AllowHttp))
            .is_some_and(|v| truthy(&v));
        if let Some(e) = endpoint.as_deref().filter(|e| e.starts_with("http://")) {
            if is_loopback_http(e) {
                b = b.with_allow_http(true);
            } else if !allow_http {
                return Err(config(
                    url,
                    format!("endpoint {e} is plain http: set AWS_ALLOW_HTTP=true to allow it"),
                ));
            }
        }
        for (k, v) in client_settings() {
            b = b.with_config(K::Client(k), v);
        }
        let s3 = b
            .with_url(url)
            .with_conditional_put(S3ConditionalPut::ETagMatch)
            .with_retry(retry_config())
            .build()
            .map_err(|e| config(url, error_chain(&e)))?;
        Ok(Location::from_store(
            with_prefix(s3, &prefix),
            url,
            LocationKind::S3 {
                bucket,
                prefix,
                endpoint: endpoint.unwrap_or_else(|| AWS_ENDPOINT.to_string()),
            },
        ))
    }

    fn gcs(url: &str, parsed: &Url, path: &StorePath, opts: &StoreOpts) -> Result<Location> {
        use GoogleConfigKey as K;
        let (bucket, prefix) = bucket_and_prefix(url, parsed, path)?;
        let mut b = if opts.env {
            GoogleCloudStorageBuilder::from_env()
        } else {
            GoogleCloudStorageBuilder::new()
        };
        for (k, v) in &opts.config {
            if let Ok(key) = k.to_ascii_lowercase().parse() {
                b = b.with_config(key, v);
            }
        }
        let has = |k: K| b.get_config_value(&k).is_some_and(|v| !v.is_empty());
        // What `gcloud auth application-default login` writes; object_store reads it.
        let adc = std::env::var_os("HOME").is_some_and(|h| {
            Path::new(&h)
                .join(".config/gcloud/application_default_credentials.json")
                .is_file()
        });
        let skip_signature = b
            .get_config_value(&K::SkipSignature)
            .is_some_and(|v| truthy(&v));
        let credentials = has(K::ServiceAccount)
            || has(K::ServiceAccountKey)
            || has(K::ApplicationCredentials)
            || (opts.env && adc)
            || skip_signature;
        if !credentials {
            return Err(config(
                url,
                "no Google Cloud credentials: set GOOGLE_SERVICE_ACCOUNT (a service account key \
                 file), GOOGLE_SERVICE_ACCOUNT_KEY or GOOGLE_APPLICATION_CREDENTIALS, or run \
                 `gcloud auth application-default login`; instance metadata is not queried",
            ));
        }
        for (k, v) in client_settings() {
            b = b.with_config(K::Client(k), v);
        }
        let gcs = b
            .with_url(url)
            .with_retry(retry_config())
            .build()
            .map_err(|e| config(url, error_chain(&e)))?;
        Ok(Location::from_store(
            with_prefix(gcs, &prefix),
            url,
            LocationKind::Gcs { bucket, prefix },
        ))
    }

    fn azure(url: &str, parsed: &Url, path: &StorePath, opts: &StoreOpts) -> Result<Location> {
        use AzureConfigKey as K;
        let (container, prefix) = match parsed.username() {
            // az://CONTAINER@ACCOUNT.blob.core.windows.net/PREFIX
            "" => bucket_and_prefix(url, parsed, path)?,
            c => (c.to_string(), path.to_string()),
        };
        let mut b = if opts.env {
            MicrosoftAzureBuilder::from_env()
        } else {
            MicrosoftAzureBuilder::new()
        };
        for (k, v) in &opts.config {
            if let Ok(key) = k.to_ascii_lowercase().parse() {
                b = b.with_config(key, v);
            }
        }
        let has = |k: K| b.get_config_value(&k).is_some_and(|v| !v.is_empty());
        let yes = |k: K| b.get_config_value(&k).is_some_and(|v| truthy(&v));
        if !has(K::AccountName) && parsed.username().is_empty() && !yes(K::UseEmulator) {
            return Err(config(
                url,
                "no Azure storage account: set AZURE_STORAGE_ACCOUNT_NAME (or use \
                 az://CONTAINER@ACCOUNT.blob.core.windows.net/PREFIX)",
            ));
        }
        let credentials = has(K::AccessKey)
            || has(K::Token)
            || has(K::SasKey)
            || (has(K::ClientId) && has(K::AuthorityId) && has(K::ClientSecret))
            || (has(K::ClientId) && has(K::AuthorityId) && has(K::FederatedTokenFile))
            || yes(K::UseAzureCli)
            || yes(K::UseEmulator)
            || yes(K::SkipSignature);
        if !credentials {
            return Err(config(
                url,
                "no Azure credentials: set AZURE_STORAGE_ACCOUNT_KEY, AZURE_STORAGE_SAS_KEY, \
                 AZURE_CLIENT_ID with AZURE_TENANT_ID and AZURE_CLIENT_SECRET (or \
                 AZURE_FEDERATED_TOKEN_FILE), or AZURE_USE_AZURE_CLI=true; managed identity \
                 (instance metadata) is not queried",
            ));
        }
        for (k, v) in client_settings() {
            b = b.with_config(K::Client(k), v);
        }
        let azure = b
            .with_url(url)
            .with_retry(retry_config())
            .build()
            .map_err(|e| config(url, error_chain(&e)))?;
        Ok(Location::from_store(
            with_prefix(azure, &prefix),
            url,
            LocationKind::Azure { container, prefix },
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
        matches!(
            self.kind,
            LocationKind::S3 { .. }
                | LocationKind::Gcs { .. }
                | LocationKind::Azure { .. }
                | LocationKind::Memory
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Only what a test says: no variables from the environment it runs in.
    fn opts(config: &[(&str, &str)]) -> StoreOpts {
        StoreOpts {
            s3_endpoint: None,
            config: config
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            env: false,
        }
    }

    const S3_KEYS: [(&str, &str); 2] = [("aws_access_key_id", "k"), ("aws_secret_access_key", "s")];

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
        let none = opts(&[]);
        let e = Location::parse_destination("ftp://x/y", &none).unwrap_err();
        assert!(matches!(e, PublishError::BadUrl { .. }), "{e}");
        assert!(e.to_string().contains("unsupported scheme"), "{e}");
        assert!(matches!(
            Location::parse_destination("file://relative", &none),
            Err(PublishError::BadUrl { .. })
        ));
        assert!(matches!(
            Location::parse_destination("http://127.0.0.1:1/", &none),
            Err(PublishError::ReadOnly { .. })
        ));
        let e = Location::parse_destination("s3://b/p", &none).unwrap_err();
        assert!(e.to_string().contains("AWS_ACCESS_KEY_ID"), "{e}");
        let mut plain = opts(&S3_KEYS);
        plain.s3_endpoint = Some("http://10.1.2.3:3900".into());
        let e = Location::parse_destination("s3://b/p", &plain).unwrap_err();
        assert!(e.to_string().contains("AWS_ALLOW_HTTP"), "{e}");
        plain.config.push(("aws_allow_http".into(), "true".into()));
        Location::parse_destination("s3://b/p", &plain).unwrap();
        let e = Location::parse_destination("s3:///p", &opts(&S3_KEYS)).unwrap_err();
        assert!(e.to_string().contains("bucket"), "{e}");
    }

    #[test]
    fn s3_url_with_prefix() {
        let mut o = opts(&[
            ("aws_access_key_id", "k"),
            ("aws_secret_access_key", "s"),
            ("aws_region", "garage"),
            // Overridden by the flag.
            ("aws_endpoint_url", "http://127.0.0.1:1"),
        ]);
        o.s3_endpoint = Some("http://127.0.0.1:3900".into());
        let loc = Location::parse_destination("s3://bucket/some/prefix%20x/", &o).unwrap();
        assert_eq!(
            loc.kind,
            LocationKind::S3 {
                bucket: "bucket".into(),
                prefix: "some/prefix x".into(),
                endpoint: "http://127.0.0.1:3900".into()
            }
        );
        assert_eq!(
            loc.key_url("summary"),
            "s3://bucket/some/prefix%20x/summary"
        );
        // Web-identity credentials are credentials.
        let web = opts(&[
            ("aws_web_identity_token_file", "/nonexistent/token"),
            ("aws_role_arn", "arn:aws:iam::1:role/r"),
        ]);
        Location::parse_destination("s3://bucket/p", &web).unwrap();
    }

    #[test]
    fn gcs_and_azure_need_credentials() {
        let e = Location::parse_destination("gs://bucket/p", &opts(&[])).unwrap_err();
        assert!(matches!(e, PublishError::Config { .. }), "{e}");
        assert!(e.to_string().contains("GOOGLE_SERVICE_ACCOUNT"), "{e}");
        let e = Location::parse_destination("az://container/p", &opts(&[])).unwrap_err();
        assert!(e.to_string().contains("AZURE_STORAGE_ACCOUNT_NAME"), "{e}");
        let account = opts(&[("azure_storage_account_name", "acct")]);
        let e = Location::parse_destination("az://container/p", &account).unwrap_err();
        assert!(e.to_string().contains("no Azure credentials"), "{e}");
        let keyed = opts(&[
            ("azure_storage_account_name", "acct"),
            ("azure_storage_account_key", "a2V5"),
        ]);
        let loc = Location::parse_destination("az://container/a/b", &keyed).unwrap();
        assert_eq!(
            loc.kind,
            LocationKind::Azure {
                container: "container".into(),
                prefix: "a/b".into()
            }
        );
        let anonymous = opts(&[("google_skip_signature", "true")]);
        let loc = Location::parse_source("gs://bucket/p", &anonymous).unwrap();
        assert_eq!(
            loc.kind,
            LocationKind::Gcs {
                bucket: "bucket".into(),
                prefix: "p".into()
            }
        );
    }

    /// `file://` URLs are percent-decoded; bare paths are taken as they are.
    #[test]
    fn file_urls_are_decoded() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("file://{}/a%20b", dir.path().display());
        let loc = Location::parse_destination(&url, &opts(&[])).unwrap();
        let root = dir.path().canonicalize().unwrap().join("a b");
        assert_eq!(loc.kind, LocationKind::File { root: root.clone() });
        assert!(root.is_dir());
        assert!(!dir.path().join("a%20b").exists());
        let bare = dir.path().join("c%20d");
        let loc = Location::parse_destination(bare.to_str().unwrap(), &opts(&[])).unwrap();
        assert_eq!(
            loc.kind,
            LocationKind::File {
                root: bare.canonicalize().unwrap()
            }
        );
    }
}
