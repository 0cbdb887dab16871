//! A container registry of its own for one test: Debian's `docker-registry` (distribution
//! 2.8) on a free 127.0.0.1 port over plain HTTP, storing blobs in a temporary directory
//! or in an S3 bucket (garage), killed on drop.
//!
//! Clients reach it as `127.0.0.1:PORT/NAME:TAG` without TLS flags because
//! `ci/install-deps.sh` marks 127.0.0.1 (every port) insecure in
//! `/etc/containers/registries.conf.d/arbor-tests.conf`; see [`require_insecure_localhost`].

use std::fs;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::{free_port, tempdir, Garage, TempDir};

/// The drop-in that lets skopeo, podman and ostree-ext talk plain HTTP to 127.0.0.1.
pub const INSECURE_LOCALHOST_CONF: &str = "/etc/containers/registries.conf.d/arbor-tests.conf";

/// Fail the test, naming the script that fixes it, unless [`INSECURE_LOCALHOST_CONF`]
/// exists (without it every pull from a [`Registry`] dies with "server gave HTTP response
/// to HTTPS client").
pub fn require_insecure_localhost() {
    let text = fs::read_to_string(INSECURE_LOCALHOST_CONF).unwrap_or_default();
    assert!(
        text.contains("location = \"127.0.0.1\"") && text.contains("insecure = true"),
        "{INSECURE_LOCALHOST_CONF} does not mark 127.0.0.1 insecure: run `bash \
         ci/install-deps.sh` (ci/test.sh does)"
    );
}

/// Where an S3-backed [`Registry`] keeps its blobs (distribution's `s3-aws` driver).
#[derive(Debug, Clone)]
pub struct RegistryS3Opts {
    /// `http://127.0.0.1:PORT` (path-style addressing follows from a custom endpoint).
    pub endpoint: String,
    pub region: String,
    pub bucket: String,
    pub access_key: String,
    pub secret_key: String,
    /// Key prefix inside the bucket (`/` for the whole bucket).
    pub root_directory: String,
    /// Let the registry answer blob GETs with a redirect to a presigned S3 URL (its
    /// default) instead of streaming them itself.
    pub redirect: bool,
}

impl RegistryS3Opts {
    /// The bucket and key of a test's [`Garage`], under `prefix`, blobs streamed by the
    /// registry.
    pub fn garage(garage: &Garage, prefix: &str) -> RegistryS3Opts {
        RegistryS3Opts {
            endpoint: garage.var("AWS_ENDPOINT_URL").to_string(),
            region: garage.var("AWS_REGION").to_string(),
            bucket: garage.var("GARAGE_BUCKET").to_string(),
            access_key: garage.var("AWS_ACCESS_KEY_ID").to_string(),
            secret_key: garage.var("AWS_SECRET_ACCESS_KEY").to_string(),
            root_directory: format!("/{}", prefix.trim_matches('/')),
            redirect: false,
        }
    }
}

/// `docker-registry serve` for one test; killed on drop.
pub struct Registry {
    child: Child,
    port: u16,
    dir: TempDir,
}

impl Registry {
    /// A registry storing everything under a temporary directory.
    pub fn start() -> Registry {
        Registry::start_with(|dir| {
            format!(
                "storage:\n  filesystem:\n    rootdirectory: {}\n",
                dir.join("storage").display()
            )
        })
    }

    /// A registry on disk that wants Basic credentials (`user`, `password`; bcrypt in an
    /// htpasswd file, hashed by Python's `crypt`, which glibc's libxcrypt backs).
    pub fn start_with_htpasswd(user: &str, password: &str) -> Registry {
        let hash = super::run(
            super::system_python(),
            &[
                "-W",
                "ignore",
                "-c",
                "import crypt,sys; print(crypt.crypt(sys.argv[1], crypt.mksalt(crypt.METHOD_BLOWFISH)))",
                password,
            ],
        )
        .ok()
        .trim()
        .to_string();
        assert!(hash.starts_with("$2"), "no bcrypt from crypt: {hash}");
        let line = format!("{user}:{hash}\n");
        Registry::start_with(move |dir| {
            let htpasswd = dir.join("htpasswd");
            fs::write(&htpasswd, &line).expect("write htpasswd");
            format!(
                "storage:\n  filesystem:\n    rootdirectory: {}\nauth:\n  htpasswd:\n    \
                 realm: arbor-test\n    path: {}\n",
                dir.join("storage").display(),
                htpasswd.display()
            )
        })
    }

    /// A registry on disk that wants a bearer token from `tokens` (distribution's `token`
    /// auth: the registry answers 401 with a `Bearer realm=…,service=…,scope=…` challenge
    /// and checks the token's signature against the token server's certificate).
    pub fn start_with_token(tokens: &TokenServer) -> Registry {
        let (realm, cert) = (tokens.realm(), tokens.cert());
        Registry::start_with(move |dir| {
            format!(
                "storage:\n  filesystem:\n    rootdirectory: {}\nauth:\n  token:\n    \
                 realm: {}\n    service: {TOKEN_SERVICE}\n    issuer: {TOKEN_ISSUER}\n    \
                 rootcertbundle: {}\n",
                dir.join("storage").display(),
                yaml_string(&realm),
                yaml_string(&cert.display().to_string()),
            )
        })
    }

    /// A registry keeping blobs and manifests in S3 (for example a test's garage).
    pub fn start_s3(s3: &RegistryS3Opts) -> Registry {
        let s3 = s3.clone();
        Registry::start_with(move |_| {
            format!(
                "storage:\n  s3:\n    regionendpoint: {}\n    region: {}\n    bucket: {}\n    \
                 accesskey: {}\n    secretkey: {}\n    rootdirectory: {}\n    secure: {}\n    \
                 v4auth: true\n  redirect:\n    disable: {}\n",
                yaml_string(&s3.endpoint),
                yaml_string(&s3.region),
                yaml_string(&s3.bucket),
                yaml_string(&s3.access_key),
                yaml_string(&s3.secret_key),
                yaml_string(&s3.root_directory),
                s3.endpoint.starts_with("https:"),
                !s3.redirect,
            )
        })
    }

    /// Write `config.yml` (storage from `storage`), start the server, and wait until
    /// `GET /v2/` answers 200. A port taken between choosing and binding it is retried.
    fn start_with(storage: impl Fn(&Path) -> String) -> Registry {
        require_tool();
        let dir = tempdir();
        for _attempt in 0..3 {
            let port = free_port();
            let config = dir.path().join("config.yml");
            fs::write(
                &config,
                format!(
                    "version: 0.1\nlog:\n  level: info\n  formatter: text\n{}\
                     http:\n  addr: 127.0.0.1:{port}\n",
                    storage(dir.path())
                ),
            )
            .expect("write the registry config");
            let log = fs::File::create(dir.path().join("registry.log")).expect("registry log");
            let mut cmd = Command::new("docker-registry");
            // Only config.yml configures it: the AWS SDK inside would otherwise also read
            // AWS_* from this environment (an AWS_CA_BUNDLE makes it refuse to start).
            for (k, _) in std::env::vars_os() {
                if k.to_str().is_some_and(|k| k.starts_with("AWS_")) {
                    cmd.env_remove(k);
                }
            }
            let mut child = cmd
                .arg("serve")
                .arg(&config)
                .stdin(Stdio::null())
                .stdout(log.try_clone().expect("registry log"))
                .stderr(log)
                .spawn()
                .expect("start docker-registry");
            let deadline = Instant::now() + Duration::from_secs(30);
            loop {
                if let Some(status) = child.try_wait().expect("wait for docker-registry") {
                    let log = read_log(dir.path());
                    if log.contains("address already in use") {
                        break;
                    }
                    panic!("docker-registry exited ({status}) before answering:\n{log}");
                }
                // 401: up, and wanting credentials (a registry with htpasswd).
                if matches!(http_get_status(port, "/v2/"), Some(200 | 401)) {
                    return Registry { child, port, dir };
                }
                if Instant::now() > deadline {
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!(
                        "docker-registry did not answer GET /v2/ on 127.0.0.1:{port} within \
                         30 s:\n{}",
                        read_log(dir.path())
                    );
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        panic!(
            "docker-registry found no free port in 3 attempts:\n{}",
            read_log(dir.path())
        );
    }

    /// `127.0.0.1:PORT`, the registry part of an image reference.
    pub fn host_port(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// `127.0.0.1:PORT/NAME` (`name` may carry `:TAG` or `@sha256:…`).
    pub fn image(&self, name: &str) -> String {
        format!("{}/{name}", self.host_port())
    }

    /// `http://127.0.0.1:PORT`, for talking the distribution API directly.
    pub fn url(&self) -> String {
        format!("http://{}", self.host_port())
    }

    /// The status code of `GET PATH` (`/v2/…`) on this registry.
    pub fn get_status(&self, path: &str) -> Option<u16> {
        http_get_status(self.port, path)
    }

    /// The server's log so far (one line per request at level info).
    pub fn log(&self) -> String {
        read_log(self.dir.path())
    }

    /// The registry's directory (`config.yml`, `registry.log`, `storage/` when on disk).
    pub fn dir(&self) -> PathBuf {
        self.dir.path().to_path_buf()
    }
}

/// The `service` a [`TokenServer`]'s registry names, and the issuer of its tokens.
const TOKEN_SERVICE: &str = "arbor-test-registry";
const TOKEN_ISSUER: &str = "arbor-test-token-issuer";

/// A token server for a [`Registry::start_with_token`] registry
/// (`tests/fixtures/registry/token-server.py`): tokens for `user`/`password` only, signed
/// with a fresh RSA key whose self-signed certificate the registry trusts; killed on drop.
pub struct TokenServer {
    child: Child,
    port: u16,
    dir: TempDir,
}

impl TokenServer {
    pub fn start(user: &str, password: &str) -> TokenServer {
        let dir = tempdir();
        let (key, cert) = (dir.path().join("token.key"), dir.path().join("token.crt"));
        let key_s = key.display().to_string();
        let cert_s = cert.display().to_string();
        super::run(
            "openssl",
            &[
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-days",
                "2",
                "-subj",
                "/CN=arbor-test-token-issuer",
                "-keyout",
                &key_s,
                "-out",
                &cert_s,
            ],
        )
        .ok();
        let script =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/registry/token-server.py");
        let log = dir.path().join("issued.log");
        for _attempt in 0..3 {
            let port = free_port();
            let mut child = Command::new(super::system_python())
                .arg(&script)
                .arg(port.to_string())
                .args([&cert, &key])
                .args([user, password, TOKEN_ISSUER])
                .arg(&log)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(fs::File::create(dir.path().join("server.err")).expect("token log"))
                .spawn()
                .expect("start the token server");
            let deadline = Instant::now() + Duration::from_secs(10);
            loop {
                if child
                    .try_wait()
                    .expect("wait for the token server")
                    .is_some()
                {
                    break;
                }
                if http_get_status(port, "/token").is_some() {
                    return TokenServer { child, port, dir };
                }
                assert!(
                    Instant::now() < deadline,
                    "the token server did not answer on 127.0.0.1:{port} within 10 s"
                );
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        panic!(
            "the token server did not start in 3 attempts:\n{}",
            fs::read_to_string(dir.path().join("server.err")).unwrap_or_default()
        );
    }

    /// `http://127.0.0.1:PORT/token`, the realm registries send clients to.
    pub fn realm(&self) -> String {
        format!("http://127.0.0.1:{}/token", self.port)
    }

    fn cert(&self) -> PathBuf {
        self.dir.path().join("token.crt")
    }

    /// One line per token issued: the service, then the scopes asked for.
    pub fn issued(&self) -> String {
        fs::read_to_string(self.dir.path().join("issued.log")).unwrap_or_default()
    }
}

impl Drop for TokenServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn require_tool() {
    assert!(
        super::oracles::on_path("docker-registry"),
        "docker-registry is not installed: run `bash ci/install-deps.sh` (apt-get install \
         docker-registry; ci/test.sh does)"
    );
}

fn read_log(dir: &Path) -> String {
    fs::read_to_string(dir.join("registry.log")).unwrap_or_default()
}

/// A double-quoted YAML scalar (keys and paths may hold characters YAML treats specially).
fn yaml_string(s: &str) -> String {
    serde_json::to_string(s).expect("a JSON string is a YAML string")
}

/// `GET path` on 127.0.0.1:port over HTTP/1.0: the status code, or None when nothing
/// answered properly.
fn http_get_status(port: u16, path: &str) -> Option<u16> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\n\r\n").ok()?;
    let mut head = [0u8; 64];
    let n = s.read(&mut head).ok()?;
    let line = std::str::from_utf8(&head[..n]).ok()?;
    line.strip_prefix("HTTP/1.")?.get(2..5)?.parse().ok()
}
