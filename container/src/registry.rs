//! A registry client for the OCI distribution API: push an image from a layout (blobs
//! HEAD-checked first and skipped when present, monolithic or chunked uploads, the manifest
//! last, byte for byte), pull one into a layout (every blob verified). Credentials from the
//! environment or a docker/podman auth file; Basic and Bearer-token authentication;
//! transient failures retried; a push killed midway completes when rerun.

use std::io::Read;
use std::sync::Mutex;
use std::time::Duration;

use base64::Engine as _;
use serde::Serialize;

use crate::digest::Digest;
use crate::layout::{from_json, Descriptor, Manifest, OciDir, MAX_JSON};
use crate::{invalid, ContainerError, IoAt, Result};

/// Blobs up to this size go in one PUT; larger ones in PATCH chunks of this size.
pub const CHUNK: u64 = 16 << 20;
const RETRIES: u32 = 4;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(120);
/// A request moving N bytes (either way) must end within `GRACE` plus N at `MIN_RATE`: a
/// registry that trickles is given up on in bounded time (as the compose's HTTP is).
const GRACE: Duration = Duration::from_secs(60);
const MIN_RATE: u64 = 16 << 10;
/// Manifest media types a pull accepts.
const ACCEPT: &str = "application/vnd.oci.image.manifest.v1+json, \
                      application/vnd.docker.distribution.manifest.v2+json";

#[derive(Debug, Clone, Default, Serialize)]
pub struct PushReport {
    pub reference: String,
    pub manifest_digest: String,
    pub blobs: usize,
    pub blobs_present: usize,
    pub blobs_uploaded: usize,
    pub bytes_uploaded: u64,
    pub requests: u64,
}

enum Auth {
    None,
    Basic(String),
    Bearer(String),
}

pub struct Client {
    agent: ureq::Agent,
    base: String,
    registry: String,
    name: String,
    creds: Option<(String, String)>,
    auth: Mutex<Auth>,
    requests: Mutex<u64>,
}

type Response = ureq::http::Response<ureq::Body>;

fn is_loopback(registry: &str) -> bool {
    let host = registry
        .rsplit_once(':')
        .filter(|(_, p)| p.bytes().all(|b| b.is_ascii_digit()))
        .map_or(registry, |(h, _)| h);
    matches!(host, "localhost" | "127.0.0.1" | "[::1]")
}

/// Credentials for `registry`: `ARBOR_REGISTRY_USER`/`ARBOR_REGISTRY_PASSWORD`, else the
/// first auth file that has an entry for it (`$REGISTRY_AUTH_FILE`,
/// `$XDG_RUNTIME_DIR/containers/auth.json`, `$DOCKER_CONFIG/config.json`,
/// `~/.docker/config.json`).
pub fn credentials(registry: &str) -> Result<Option<(String, String)>> {
    if let (Ok(u), Ok(p)) = (
        std::env::var("ARBOR_REGISTRY_USER"),
        std::env::var("ARBOR_REGISTRY_PASSWORD"),
    ) {
        return Ok(Some((u, p)));
    }
    let mut files = Vec::new();
    if let Ok(f) = std::env::var("REGISTRY_AUTH_FILE") {
        files.push(std::path::PathBuf::from(f));
    }
    if let Ok(d) = std::env::var("XDG_RUNTIME_DIR") {
        files.push(std::path::Path::new(&d).join("containers/auth.json"));
    }
    if let Ok(d) = std::env::var("DOCKER_CONFIG") {
        files.push(std::path::Path::new(&d).join("config.json"));
    } else if let Ok(h) = std::env::var("HOME") {
        files.push(std::path::Path::new(&h).join(".docker/config.json"));
    }
    for f in files {
        if !f.is_file() {
            continue;
        }
        let data = crate::layout::read_bounded(&f, 1 << 20)?;
        let v: serde_json::Value = serde_json::from_slice(&data)
            .map_err(|e| invalid(format!("{}: not JSON: {e}", f.display())))?;
        let Some(auths) = v.get("auths").and_then(|a| a.as_object()) else {
            continue;
        };
        let entry = [
            registry.to_string(),
            format!("https://{registry}"),
            format!("http://{registry}"),
        ]
        .iter()
        .find_map(|k| auths.get(k));
        let Some(auth) = entry.and_then(|e| e.get("auth")).and_then(|a| a.as_str()) else {
            continue;
        };
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(auth)
            .ok()
            .and_then(|d| String::from_utf8(d).ok())
            .ok_or_else(|| invalid(format!("{}: {registry}: bad \"auth\" value", f.display())))?;
        let (u, p) = decoded.split_once(':').ok_or_else(|| {
            invalid(format!(
                "{}: {registry}: \"auth\" is not user:password",
                f.display()
            ))
        })?;
        return Ok(Some((u.to_string(), p.to_string())));
    }
    Ok(None)
}

/// The parameters of a `WWW-Authenticate: Bearer realm="…",service="…",scope="…"`.
pub fn parse_challenge(h: &str) -> Option<(String, Vec<(String, String)>)> {
    let (scheme, rest) = h.trim().split_once(' ').unwrap_or((h.trim(), ""));
    let mut params = Vec::new();
    let mut s = rest.trim();
    while !s.is_empty() {
        let (k, after) = s.split_once('=')?;
        let after = after.trim_start();
        let (v, tail) = if let Some(q) = after.strip_prefix('"') {
            let end = q.find('"')?;
            (q[..end].to_string(), &q[end + 1..])
        } else {
            let end = after.find(',').unwrap_or(after.len());
            (after[..end].trim().to_string(), &after[end..])
        };
        params.push((k.trim().to_ascii_lowercase(), v));
        s = tail.trim_start().trim_start_matches(',').trim_start();
    }
    Some((scheme.to_ascii_lowercase(), params))
}

fn url_escape(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

impl Client {
    /// A client for `registry` (`host[:port]`) and repository `name`. Plain HTTP for a
    /// loopback registry or with `insecure`, HTTPS otherwise.
    pub fn new(registry: &str, name: &str, insecure: bool) -> Result<Client> {
        let scheme = if insecure || is_loopback(registry) {
            "http"
        } else {
            "https"
        };
        let config = ureq::Agent::config_builder()
            .timeout_connect(Some(CONNECT_TIMEOUT))
            .timeout_recv_response(Some(RESPONSE_TIMEOUT))
            .http_status_as_error(false)
            .build();
        Ok(Client {
            agent: config.into(),
            base: format!("{scheme}://{registry}"),
            registry: registry.into(),
            name: name.into(),
            creds: credentials(registry)?,
            auth: Mutex::new(Auth::None),
            requests: Mutex::new(0),
        })
    }

    pub fn requests(&self) -> u64 {
        *self.requests.lock().expect("lock")
    }

    fn url(&self, path: &str) -> String {
        format!("{}/v2/{}/{path}", self.base, self.name)
    }

    fn err(&self, what: &str, why: impl std::fmt::Display) -> ContainerError {
        invalid(format!("{}: {what}: {why}", self.registry))
    }

    /// One request, authenticated (a 401 fetches a token or uses Basic credentials, then
    /// the request is repeated), retried on transport errors and 5xx/429.
    fn send(
        &self,
        method: &str,
        url: &str,
        headers: &[(&str, String)],
        body: &[u8],
        response_bytes: u64,
        what: &str,
    ) -> Result<Response> {
        let deadline =
            GRACE + Duration::from_secs((body.len() as u64).max(response_bytes) / MIN_RATE);
        // Credentials go to the registry only, never to a host an upload Location or a
        // hostile registry names.
        let own = url.starts_with(&format!("{}/", self.base));
        let mut last = String::new();
        let mut authed = false;
        let mut attempt = 0;
        while attempt < RETRIES {
            *self.requests.lock().expect("lock") += 1;
            let mut b = ureq::http::Request::builder().method(method).uri(url);
            for (k, v) in headers {
                b = b.header(*k, v.as_str());
            }
            match &*self.auth.lock().expect("lock") {
                _ if !own => {}
                Auth::None => {}
                Auth::Basic(v) => b = b.header("Authorization", format!("Basic {v}")),
                Auth::Bearer(t) => b = b.header("Authorization", format!("Bearer {t}")),
            }
            let req = b.body(body.to_vec()).map_err(|e| self.err(what, e))?;
            let req = self
                .agent
                .configure_request(req)
                .timeout_global(Some(deadline))
                .build();
            match self.agent.run(req) {
                Ok(resp) if resp.status().as_u16() == 401 && !authed && own => {
                    authed = true;
                    let challenge = resp
                        .headers()
                        .get("www-authenticate")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("")
                        .to_string();
                    self.authenticate(&challenge, what)?;
                    continue;
                }
                Ok(resp) if resp.status().is_server_error() || resp.status().as_u16() == 429 => {
                    last = format!("HTTP {}", resp.status());
                }
                Ok(resp) => return Ok(resp),
                Err(e) => last = e.to_string(),
            }
            attempt += 1;
            tracing::warn!("{method} {url} failed (attempt {attempt}/{RETRIES}): {last}");
            std::thread::sleep(Duration::from_millis(250 << attempt));
        }
        Err(self.err(what, format!("{last} (after {RETRIES} attempts)")))
    }

    fn authenticate(&self, challenge: &str, what: &str) -> Result<()> {
        let no_creds = || {
            self.err(
                what,
                "authentication required and no credentials found (set ARBOR_REGISTRY_USER and \
                 ARBOR_REGISTRY_PASSWORD, or log in with `podman login`/`docker login`)",
            )
        };
        let Some((scheme, params)) = parse_challenge(challenge) else {
            return Err(self.err(what, format!("unreadable WWW-Authenticate {challenge:?}")));
        };
        let basic = self
            .creds
            .as_ref()
            .map(|(u, p)| base64::engine::general_purpose::STANDARD.encode(format!("{u}:{p}")));
        match scheme.as_str() {
            "basic" => {
                let b = basic.ok_or_else(no_creds)?;
                *self.auth.lock().expect("lock") = Auth::Basic(b);
                Ok(())
            }
            "bearer" => {
                let get = |k: &str| params.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
                let realm = get("realm")
                    .ok_or_else(|| self.err(what, "Bearer challenge without a realm"))?;
                let mut url = format!("{realm}?");
                if let Some(s) = get("service") {
                    url.push_str(&format!("service={}&", url_escape(&s)));
                }
                let scope =
                    get("scope").unwrap_or_else(|| format!("repository:{}:pull,push", self.name));
                url.push_str(&format!("scope={}", url_escape(&scope)));
                let mut req = self.agent.get(&url);
                if let Some(b) = &basic {
                    req = req.header("Authorization", format!("Basic {b}"));
                }
                *self.requests.lock().expect("lock") += 1;
                let mut resp = req
                    .call()
                    .map_err(|e| self.err(what, format!("token from {realm}: {e}")))?;
                if resp.status().as_u16() == 401 || resp.status().as_u16() == 403 {
                    return Err(if basic.is_some() {
                        self.err(what, format!("{realm} refused the credentials"))
                    } else {
                        no_creds()
                    });
                }
                if !resp.status().is_success() {
                    return Err(
                        self.err(what, format!("token from {realm}: HTTP {}", resp.status()))
                    );
                }
                let mut body = Vec::new();
                resp.body_mut()
                    .as_reader()
                    .take(MAX_JSON)
                    .read_to_end(&mut body)
                    .map_err(|e| self.err(what, e))?;
                let v: serde_json::Value = serde_json::from_slice(&body)
                    .map_err(|e| self.err(what, format!("token from {realm}: {e}")))?;
                let token = v
                    .get("token")
                    .or_else(|| v.get("access_token"))
                    .and_then(|t| t.as_str())
                    .ok_or_else(|| self.err(what, format!("{realm} answered without a token")))?;
                *self.auth.lock().expect("lock") = Auth::Bearer(token.to_string());
                Ok(())
            }
            other => Err(self.err(what, format!("unsupported authentication scheme {other:?}"))),
        }
    }

    fn status_err(&self, what: &str, mut resp: Response) -> ContainerError {
        let status = resp.status();
        let mut body = String::new();
        let _ = resp
            .body_mut()
            .as_reader()
            .take(2048)
            .read_to_string(&mut body);
        let why = match status.as_u16() {
            401 if self.creds.is_some() => {
                format!("HTTP {status}: the registry refused the credentials")
            }
            401 | 403 => format!("HTTP {status}: access denied"),
            404 => format!("HTTP {status}: not found"),
            _ => format!("HTTP {status}"),
        };
        self.err(what, format!("{why} {}", body.trim()))
    }

    /// Whether the registry has `d` in this repository.
    pub fn has_blob(&self, d: &Digest) -> Result<bool> {
        let what = format!("blob {d}");
        let resp = self.send("HEAD", &self.url(&format!("blobs/{d}")), &[], &[], 0, &what)?;
        match resp.status().as_u16() {
            200 => Ok(true),
            404 => Ok(false),
            _ => Err(self.status_err(&what, resp)),
        }
    }

    fn location(&self, resp: &Response, what: &str) -> Result<String> {
        let loc = resp
            .headers()
            .get("location")
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| self.err(what, "upload response without a Location"))?;
        if loc.starts_with("http://") || loc.starts_with("https://") {
            Ok(loc.to_string())
        } else if loc.starts_with('/') {
            Ok(format!("{}{loc}", self.base))
        } else {
            Err(self.err(
                what,
                format!("upload Location {loc:?} is not a URL or a path"),
            ))
        }
    }

    /// Upload blob `d` of `size` bytes from `r`.
    pub fn upload_blob(&self, d: &Digest, size: u64, r: &mut dyn Read) -> Result<()> {
        let what = format!("blob {d}");
        let resp = self.send("POST", &self.url("blobs/uploads/"), &[], &[], 0, &what)?;
        if resp.status().as_u16() != 202 {
            return Err(self.status_err(&what, resp));
        }
        let mut loc = self.location(&resp, &what)?;
        let sep = |l: &str| if l.contains('?') { '&' } else { '?' };
        let octet = ("Content-Type", "application/octet-stream".to_string());
        if size <= CHUNK {
            let mut body = Vec::with_capacity(size as usize);
            r.take(size)
                .read_to_end(&mut body)
                .map_err(|e| self.err(&what, e))?;
            let url = format!("{loc}{}digest={d}", sep(&loc));
            let resp = self.send("PUT", &url, &[octet], &body, 0, &what)?;
            if resp.status().as_u16() != 201 {
                return Err(self.status_err(&what, resp));
            }
            return Ok(());
        }
        let mut offset = 0u64;
        let mut buf = Vec::with_capacity(CHUNK as usize);
        while offset < size {
            buf.clear();
            let n = r
                .take(CHUNK.min(size - offset))
                .read_to_end(&mut buf)
                .map_err(|e| self.err(&what, e))? as u64;
            if n == 0 {
                return Err(self.err(&what, "blob shorter than its size"));
            }
            let range = ("Content-Range", format!("{offset}-{}", offset + n - 1));
            let resp = self.send("PATCH", &loc, &[octet.clone(), range], &buf, 0, &what)?;
            if resp.status().as_u16() != 202 {
                return Err(self.status_err(&what, resp));
            }
            loc = self.location(&resp, &what)?;
            offset += n;
        }
        let url = format!("{loc}{}digest={d}", sep(&loc));
        let resp = self.send("PUT", &url, &[octet], &[], 0, &what)?;
        if resp.status().as_u16() != 201 {
            return Err(self.status_err(&what, resp));
        }
        Ok(())
    }

    pub fn put_manifest(&self, reference: &str, media_type: &str, bytes: &[u8]) -> Result<()> {
        let what = format!("manifest {reference}");
        let resp = self.send(
            "PUT",
            &self.url(&format!("manifests/{reference}")),
            &[("Content-Type", media_type.to_string())],
            bytes,
            0,
            &what,
        )?;
        if resp.status().as_u16() != 201 {
            return Err(self.status_err(&what, resp));
        }
        let ours = Digest::of(bytes).to_string();
        if let Some(theirs) = resp
            .headers()
            .get("docker-content-digest")
            .and_then(|v| v.to_str().ok())
        {
            if theirs != ours {
                return Err(self.err(&what, format!("stored as {theirs}, not {ours}")));
            }
        }
        Ok(())
    }

    /// GET a manifest: (bytes, media type), the bytes checked against `reference` when it
    /// is a digest.
    pub fn get_manifest(&self, reference: &str) -> Result<(Vec<u8>, String)> {
        let what = format!("manifest {reference}");
        let mut resp = self.send(
            "GET",
            &self.url(&format!("manifests/{reference}")),
            &[("Accept", ACCEPT.to_string())],
            &[],
            MAX_JSON,
            &what,
        )?;
        if resp.status().as_u16() != 200 {
            return Err(self.status_err(&what, resp));
        }
        let mt = resp
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        let mut body = Vec::new();
        resp.body_mut()
            .as_reader()
            .take(MAX_JSON + 1)
            .read_to_end(&mut body)
            .map_err(|e| self.err(&what, e))?;
        if body.len() as u64 > MAX_JSON {
            return Err(self.err(&what, format!("larger than {MAX_JSON} bytes")));
        }
        if reference.starts_with("sha256:") && Digest::of(&body).to_string() != reference {
            return Err(self.err(&what, "content does not match its digest"));
        }
        Ok((body, mt))
    }

    /// GET blob `desc` into `oci` (verified: size and digest).
    pub fn get_blob(&self, desc: &Descriptor, oci: &OciDir) -> Result<()> {
        let d = desc.digest()?;
        if oci.has_blob(&d) {
            return Ok(());
        }
        let what = format!("blob {d}");
        let mut resp = self.send(
            "GET",
            &self.url(&format!("blobs/{d}")),
            &[],
            &[],
            desc.size,
            &what,
        )?;
        if resp.status().as_u16() != 200 {
            return Err(self.status_err(&what, resp));
        }
        let mut w = oci.blob_writer()?;
        let n = std::io::copy(&mut resp.body_mut().as_reader().take(desc.size + 1), &mut w)
            .map_err(|e| self.err(&what, e))?;
        if n != desc.size {
            return Err(self.err(
                &what,
                format!("{n} bytes received, the manifest says {}", desc.size),
            ));
        }
        let got = w.finish()?.0;
        if got != d {
            let _ = std::fs::remove_file(oci.blob_path(&got));
            return Err(self.err(&what, format!("content has digest {got}")));
        }
        Ok(())
    }
}

/// Push the image `tag` of layout `oci` to `registry/name:dest_tag`.
pub fn push(
    oci: &OciDir,
    tag: Option<&str>,
    registry: &str,
    name: &str,
    dest_tag: &str,
    insecure: bool,
) -> Result<PushReport> {
    let desc = oci.resolve(tag)?;
    let md = desc.digest()?;
    let manifest_bytes = oci.read_blob(&md, MAX_JSON)?;
    let manifest: Manifest = from_json(&manifest_bytes, &format!("manifest {md}"))?;
    let client = Client::new(registry, name, insecure)?;
    let mut report = PushReport {
        reference: format!("docker://{registry}/{name}:{dest_tag}"),
        manifest_digest: md.to_string(),
        ..Default::default()
    };
    let mut blobs: Vec<&Descriptor> = manifest.layers.iter().collect();
    blobs.push(&manifest.config);
    let mut seen = std::collections::HashSet::new();
    for b in blobs {
        let d = b.digest()?;
        if !seen.insert(d) {
            continue;
        }
        report.blobs += 1;
        if client.has_blob(&d)? {
            report.blobs_present += 1;
            continue;
        }
        let p = oci.blob_path(&d);
        let mut f = std::fs::File::open(&p).at(&p)?;
        client.upload_blob(&d, b.size, &mut f)?;
        report.blobs_uploaded += 1;
        report.bytes_uploaded += b.size;
    }
    let mt = manifest
        .media_type
        .clone()
        .unwrap_or_else(|| crate::MANIFEST_MEDIA_TYPE.into());
    client.put_manifest(dest_tag, &mt, &manifest_bytes)?;
    report.requests = client.requests();
    Ok(report)
}

/// Fetch `registry/name:reference` into `oci` (tagged `reference` when it is a tag).
pub fn pull(
    registry: &str,
    name: &str,
    reference: &str,
    oci: &OciDir,
    insecure: bool,
) -> Result<Digest> {
    let client = Client::new(registry, name, insecure)?;
    let (bytes, mt) = client.get_manifest(reference)?;
    let manifest: Manifest = from_json(&bytes, &format!("{registry}/{name}:{reference}"))?;
    if mt.contains("manifest.list") || mt.contains("image.index") {
        return Err(invalid(format!(
            "{registry}/{name}:{reference}: a multi-platform index; name the image by its digest"
        )));
    }
    client.get_blob(&manifest.config, oci)?;
    for l in &manifest.layers {
        client.get_blob(l, oci)?;
    }
    let (d, size) = oci.write_blob(&bytes)?;
    let media_type = manifest
        .media_type
        .clone()
        .unwrap_or_else(|| crate::MANIFEST_MEDIA_TYPE.into());
    oci.set_manifest(
        Descriptor {
            media_type,
            digest: d.to_string(),
            size,
            annotations: None,
            platform: None,
        },
        Some(reference).filter(|r| !r.starts_with("sha256:")),
    )?;
    Ok(d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn challenges_parse() {
        let (s, p) = parse_challenge(
            r#"Bearer realm="https://auth.example/token",service="registry.example",scope="repository:a/b:pull,push""#,
        )
        .unwrap();
        assert_eq!(s, "bearer");
        assert_eq!(
            p,
            vec![
                ("realm".into(), "https://auth.example/token".into()),
                ("service".into(), "registry.example".into()),
                ("scope".into(), "repository:a/b:pull,push".into()),
            ]
        );
        let (s, p) = parse_challenge(r#"Basic realm="Registry Realm""#).unwrap();
        assert_eq!((s.as_str(), p.len()), ("basic", 1));
        assert!(parse_challenge(r#"Bearer realm="unterminated"#).is_none());
    }

    #[test]
    fn loopback_registries_are_plain_http() {
        for r in [
            "127.0.0.1:5000",
            "localhost",
            "localhost:5000",
            "[::1]:5000",
        ] {
            assert!(is_loopback(r), "{r}");
        }
        for r in ["quay.io", "10.0.0.1:5000", "registry.local:443"] {
            assert!(!is_loopback(r), "{r}");
        }
    }
}
