//! `--sign-with` backends, and adding their signatures to a signature dictionary.

use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use arbor_repo::gvariant::VarDict;
use arbor_repo::Checksum;

use crate::ed25519::{PublicKeys, SecretKey};
use crate::meta::{self, SigKind};
use crate::openpgp::{self, Check, Keyring, LocalKey};
use crate::SignError;

/// Largest signer output read (an OpenPGP signature is at most a few KiB).
const MAX_OUTPUT: u64 = 64 * 1024;

/// A parsed `--sign-with` value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Spec {
    Gpg(String),
    Exec(Vec<String>),
    OpenPgp(PathBuf),
    Ed25519(PathBuf),
}

impl std::str::FromStr for Spec {
    type Err = SignError;

    fn from_str(s: &str) -> Result<Spec, SignError> {
        let bad = |why: &str| SignError::Spec {
            spec: s.into(),
            why: why.into(),
        };
        let (kind, rest) = s.split_once(':').ok_or_else(|| {
            bad("expected gpg:KEYID, exec:COMMAND, openpgp:KEYFILE or ed25519:KEYFILE")
        })?;
        if rest.is_empty() {
            return Err(bad("nothing after the colon"));
        }
        match kind {
            "gpg" => {
                if rest.starts_with('-') || rest.chars().any(char::is_whitespace) {
                    return Err(bad("a key id, fingerprint or user id, not an option"));
                }
                Ok(Spec::Gpg(rest.into()))
            }
            "exec" => {
                let argv = split_words(rest).map_err(|w| bad(&w))?;
                if argv.is_empty() {
                    return Err(bad("no command"));
                }
                Ok(Spec::Exec(argv))
            }
            "openpgp" => Ok(Spec::OpenPgp(rest.into())),
            "ed25519" => Ok(Spec::Ed25519(rest.into())),
            _ => Err(bad(&format!(
                "unknown backend {kind:?}: gpg, exec, openpgp or ed25519"
            ))),
        }
    }
}

/// Split a command line into words: whitespace separates, '…' and "…" quote, no shell.
fn split_words(s: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut in_word = false;
    let mut quote: Option<char> = None;
    for c in s.chars() {
        match quote {
            Some(q) if c == q => quote = None,
            Some(_) => cur.push(c),
            None if c == '\'' || c == '"' => {
                quote = Some(c);
                in_word = true;
            }
            None if c.is_whitespace() => {
                if in_word {
                    out.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            None => {
                cur.push(c);
                in_word = true;
            }
        }
    }
    if quote.is_some() {
        return Err("an unclosed quote".into());
    }
    if in_word {
        out.push(cur);
    }
    Ok(out)
}

/// How signers are set up.
#[derive(Debug, Clone)]
pub struct Options {
    /// GnuPG's home for `gpg:` (its default otherwise).
    pub gpg_homedir: Option<PathBuf>,
    /// Public keys `exec:` signatures must verify against (required with `exec:`).
    pub signer_keys: Keyring,
    /// How long one `exec:`/`gpg:` signing may take.
    pub timeout: Duration,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            gpg_homedir: None,
            signer_keys: Keyring::default(),
            timeout: Duration::from_secs(300),
        }
    }
}

/// What is being signed, for the external signer's environment and for messages.
#[derive(Debug, Clone, Default)]
pub struct Payload {
    /// `commit` or `summary`.
    pub kind: &'static str,
    pub commit: Option<Checksum>,
    pub ref_name: Option<String>,
    pub repo: Option<String>,
}

impl Payload {
    pub fn commit(commit: Checksum) -> Payload {
        Payload {
            kind: "commit",
            commit: Some(commit),
            ..Payload::default()
        }
    }

    pub fn summary() -> Payload {
        Payload {
            kind: "summary",
            ..Payload::default()
        }
    }
}

#[derive(Debug)]
enum Backend {
    Gpg {
        key: String,
        homedir: Option<PathBuf>,
        public: Keyring,
    },
    Exec {
        argv: Vec<String>,
        public: Keyring,
    },
    Local(Box<LocalKey>, Keyring),
    Ed25519(SecretKey, PublicKeys),
}

/// One ready signer: its keys loaded, checked usable.
#[derive(Debug)]
pub struct Signer {
    pub spec: String,
    backend: Backend,
    timeout: Duration,
}

/// One signature a signer made and arbor verified.
#[derive(Debug, Clone)]
pub struct NewSig {
    pub kind: SigKind,
    pub bytes: Vec<u8>,
    /// The key, as messages name it (fingerprint and user, or ed25519 hex).
    pub key: String,
}

impl Signer {
    pub fn open(spec: &Spec, opts: &Options) -> Result<Signer, SignError> {
        let label = match spec {
            Spec::Gpg(k) => format!("gpg:{k}"),
            Spec::Exec(a) => format!("exec:{}", a.join(" ")),
            Spec::OpenPgp(p) => format!("openpgp:{}", p.display()),
            Spec::Ed25519(p) => format!("ed25519:{}", p.display()),
        };
        let backend = match spec {
            Spec::Gpg(key) => {
                let public = gpg_export(key, opts.gpg_homedir.as_ref(), &label, opts.timeout)?;
                for k in &public.keys {
                    openpgp::check_usable(k, &label)?;
                }
                Backend::Gpg {
                    key: key.clone(),
                    homedir: opts.gpg_homedir.clone(),
                    public,
                }
            }
            Spec::Exec(argv) => {
                if opts.signer_keys.keys.is_empty() {
                    return Err(SignError::Spec {
                        spec: label,
                        why: "an external signer needs --signer-key FILE: the public key its signatures must verify against".into(),
                    });
                }
                for k in &opts.signer_keys.keys {
                    openpgp::check_usable(k, &label)?;
                }
                Backend::Exec {
                    argv: argv.clone(),
                    public: opts.signer_keys.clone(),
                }
            }
            Spec::OpenPgp(path) => {
                let key = LocalKey::load(path)?;
                let public = Keyring {
                    keys: vec![key.public.clone()],
                };
                Backend::Local(Box::new(key), public)
            }
            Spec::Ed25519(path) => {
                let key = SecretKey::load(path)?;
                let public = PublicKeys(vec![key.public()]);
                Backend::Ed25519(key, public)
            }
        };
        Ok(Signer {
            spec: label,
            backend,
            timeout: opts.timeout,
        })
    }

    pub fn kind(&self) -> SigKind {
        match self.backend {
            Backend::Ed25519(..) => SigKind::Ed25519,
            _ => SigKind::OpenPgp,
        }
    }

    /// The keys this signer's signatures verify against.
    pub fn trusted(&self) -> crate::TrustedKeys {
        match &self.backend {
            Backend::Gpg { public, .. }
            | Backend::Exec { public, .. }
            | Backend::Local(_, public) => crate::TrustedKeys {
                openpgp: public.clone(),
                ed25519: PublicKeys::default(),
            },
            Backend::Ed25519(_, public) => crate::TrustedKeys {
                openpgp: Keyring::default(),
                ed25519: public.clone(),
            },
        }
    }

    fn fail(&self, why: impl Into<String>) -> SignError {
        SignError::Signer {
            spec: self.spec.clone(),
            why: why.into(),
        }
    }

    /// Sign `payload` and verify the result against this signer's key.
    pub fn sign(&self, payload: &[u8], what: &Payload) -> Result<NewSig, SignError> {
        let raw = match &self.backend {
            Backend::Ed25519(key, public) => {
                let sig = key.sign(payload);
                let who = public
                    .verify(payload, &sig)
                    .ok_or_else(|| self.fail("the signature does not verify"))?;
                return Ok(NewSig {
                    kind: SigKind::Ed25519,
                    bytes: sig.to_vec(),
                    key: who,
                });
            }
            Backend::Local(key, _) => key.sign(payload).map_err(|e| self.fail(e))?,
            Backend::Gpg { key, homedir, .. } => {
                let mut argv: Vec<String> = vec!["gpg".into()];
                if let Some(h) = homedir {
                    argv.extend(["--homedir".into(), h.display().to_string()]);
                }
                argv.extend(
                    [
                        "--batch",
                        "--no-tty",
                        "--local-user",
                        key.as_str(),
                        "--digest-algo",
                        "SHA256",
                        "--detach-sign",
                        "--output",
                        "-",
                        "-",
                    ]
                    .map(String::from),
                );
                self.run(&argv, payload, what)?
            }
            Backend::Exec { argv, .. } => self.run(argv, payload, what)?,
        };
        let keys = match &self.backend {
            Backend::Gpg { public, .. }
            | Backend::Exec { public, .. }
            | Backend::Local(_, public) => public,
            Backend::Ed25519(..) => unreachable!("returned above"),
        };
        let sigs = openpgp::parse_signatures(&raw).map_err(|e| {
            self.fail(format!(
                "its output ({} bytes) is not a detached OpenPGP signature: {e}",
                raw.len()
            ))
        })?;
        if sigs.len() != 1 {
            return Err(self.fail(format!(
                "it returned {} signatures; one is expected",
                sigs.len()
            )));
        }
        let sig = &sigs[0];
        openpgp::check_form(sig).map_err(|e| self.fail(format!("it returned {e}")))?;
        match openpgp::check(keys, sig, payload) {
            Check::Good(name) => Ok(NewSig {
                kind: SigKind::OpenPgp,
                bytes: openpgp::to_binary(sig).map_err(|e| self.fail(e))?,
                key: name.to_string(),
            }),
            Check::Bad(name, why) => Err(self.fail(format!(
                "its signature by {name} does not verify over the {} ({why}): did it sign other bytes than its stdin?",
                what.kind
            ))),
            Check::KeyUnusable(name, why) => Err(self.fail(format!("key {name}: {why}"))),
            Check::UnknownKey(issuer) => Err(self.fail(format!(
                "it signed with {issuer}, which is not the expected key ({})",
                keys.keys
                    .iter()
                    .map(|k| openpgp::key_name(k).to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ))),
        }
    }

    /// Run a signer process: payload on stdin, signature on stdout, stderr passed to the log,
    /// bounded in time and output.
    fn run(&self, argv: &[String], payload: &[u8], what: &Payload) -> Result<Vec<u8>, SignError> {
        let mut cmd = Command::new(&argv[0]);
        cmd.args(&argv[1..])
            .env("ARBOR_SIGN_PROTOCOL", "1")
            .env("ARBOR_SIGN_TYPE", "gpg")
            .env("ARBOR_SIGN_KIND", what.kind)
            .env("ARBOR_SIGN_SHA256", Checksum::of(payload).to_hex());
        if let Some(c) = &what.commit {
            cmd.env("ARBOR_COMMIT", c.to_hex());
        }
        if let Some(r) = &what.ref_name {
            cmd.env("ARBOR_REF", r);
        }
        if let Some(r) = &what.repo {
            cmd.env("ARBOR_REPO", r);
        }
        let (status, out, err_text) =
            run_bounded(cmd, payload, self.timeout, MAX_OUTPUT).map_err(|e| self.fail(e))?;
        if !status.success() {
            return Err(self.fail(format!(
                "exited with {status}{}",
                if err_text.is_empty() {
                    String::new()
                } else {
                    format!(": {err_text}")
                }
            )));
        }
        if !err_text.is_empty() {
            tracing::debug!("{}: {err_text}", self.spec);
        }
        if out.len() as u64 > MAX_OUTPUT {
            return Err(self.fail(format!("more than {MAX_OUTPUT} bytes of output")));
        }
        if out.is_empty() {
            return Err(self.fail("it printed nothing"));
        }
        Ok(out)
    }
}

/// Run `cmd` with `input` on its stdin, bounded in time (killed after `timeout`) and in
/// output (at most `max_out + 1` bytes of stdout are read, 64 KiB of stderr): its exit
/// status, stdout and trimmed stderr. `Err` says why it could not be run or waited for.
fn run_bounded(
    mut cmd: Command,
    input: &[u8],
    timeout: Duration,
    max_out: u64,
) -> Result<(std::process::ExitStatus, Vec<u8>, String), String> {
    let program = cmd.get_program().to_string_lossy().into_owned();
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run {program:?}: {e}"))?;
    let (Some(mut stdin), Some(mut stdout), Some(mut stderr)) =
        (child.stdin.take(), child.stdout.take(), child.stderr.take())
    else {
        return Err("no pipes to the process".into());
    };
    let data = input.to_vec();
    let writer = std::thread::spawn(move || {
        // A process that does not read its input gets EPIPE; its exit status says why.
        let _ = stdin.write_all(&data);
    });
    let reader = std::thread::spawn(move || {
        let mut out = Vec::new();
        (&mut stdout)
            .take(max_out + 1)
            .read_to_end(&mut out)
            .map(|_| out)
    });
    let err_reader = std::thread::spawn(move || {
        let mut out = Vec::new();
        let _ = (&mut stderr).take(64 * 1024).read_to_end(&mut out);
        out
    });
    let start = Instant::now();
    let status = loop {
        match child.try_wait() {
            Ok(Some(s)) => break s,
            Ok(None) if start.elapsed() > timeout => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("no answer within {} s; killed", timeout.as_secs()));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(5)),
            Err(e) => return Err(format!("waiting for it: {e}")),
        }
    };
    let _ = writer.join();
    let out = reader
        .join()
        .map_err(|_| "reading its output failed".to_string())?
        .map_err(|e| format!("reading its output: {e}"))?;
    let err = err_reader.join().unwrap_or_default();
    Ok((
        status,
        out,
        String::from_utf8_lossy(&err).trim().to_string(),
    ))
}

/// The public key(s) of a gpg key, exported by gpg itself (bounded like a signer).
fn gpg_export(
    key: &str,
    homedir: Option<&PathBuf>,
    label: &str,
    timeout: Duration,
) -> Result<Keyring, SignError> {
    let mut cmd = Command::new("gpg");
    if let Some(h) = homedir {
        cmd.arg("--homedir").arg(h);
    }
    cmd.args(["--batch", "--no-tty", "--export", key]);
    let (_, stdout, stderr) =
        run_bounded(cmd, &[], timeout, openpgp::MAX_KEYRING_BYTES).map_err(|why| {
            SignError::Spec {
                spec: label.into(),
                why: format!("gpg --export: {why}"),
            }
        })?;
    if stdout.len() as u64 > openpgp::MAX_KEYRING_BYTES {
        return Err(SignError::Spec {
            spec: label.into(),
            why: format!(
                "gpg's export of {key} is larger than {} bytes",
                openpgp::MAX_KEYRING_BYTES
            ),
        });
    }
    if stdout.is_empty() {
        return Err(SignError::Spec {
            spec: label.into(),
            why: format!(
                "gpg{} has no key {key:?}{}",
                homedir
                    .map(|h| format!(" (home {})", h.display()))
                    .unwrap_or_default(),
                stderr
                    .lines()
                    .next()
                    .map(|l| format!(": {l}"))
                    .unwrap_or_default()
            ),
        });
    }
    Keyring::parse(&stdout).map_err(|why| SignError::Spec {
        spec: label.into(),
        why: format!("gpg's export of {key}: {why}"),
    })
}

/// Every configured signer.
#[derive(Debug, Default)]
pub struct Signers(pub Vec<Signer>);

/// What adding signatures to a dictionary did.
#[derive(Debug, Clone, Default)]
pub struct Added {
    /// Keys that signed now.
    pub signed: Vec<String>,
    /// Keys whose valid signature was already there (nothing added).
    pub already: Vec<String>,
}

impl Signers {
    pub fn open(specs: &[Spec], opts: &Options) -> Result<Signers, SignError> {
        specs
            .iter()
            .map(|s| Signer::open(s, opts))
            .collect::<Result<_, _>>()
            .map(Signers)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Every key the signers sign with.
    pub fn trusted(&self) -> crate::TrustedKeys {
        let mut t = crate::TrustedKeys::default();
        for s in &self.0 {
            let k = s.trusted();
            t.openpgp.extend(k.openpgp);
            t.ed25519.0.extend(k.ed25519.0);
        }
        t
    }

    /// Add each signer's signature over `payload` to `existing` (a commit's detached
    /// metadata): after the signatures already there, other keys kept, nothing added for a
    /// key whose valid signature is present. A signature by one of these keys that does not
    /// verify (made over other bytes) is dropped, and said so.
    pub fn sign_meta(
        &self,
        existing: Option<&VarDict>,
        payload: &[u8],
        what: &Payload,
    ) -> Result<(VarDict, Added), SignError> {
        let mut out = existing.cloned().unwrap_or_default();
        let mut added = Added::default();
        for signer in &self.0 {
            let kind = signer.kind();
            let mine = signer.trusted();
            let mut sigs = meta::signatures(&out, kind);
            let mut present = None;
            sigs.retain(|bytes| match kind {
                SigKind::Ed25519 => {
                    if let Some(k) = mine.ed25519.verify(payload, bytes) {
                        present = Some(k);
                    }
                    true
                }
                SigKind::OpenPgp => {
                    let Ok(parsed) = openpgp::parse_signatures(bytes) else {
                        return true;
                    };
                    let mut keep = true;
                    for s in &parsed {
                        match openpgp::check(&mine.openpgp, s, payload) {
                            Check::Good(n) => present = Some(n.to_string()),
                            Check::Bad(n, why) => {
                                tracing::warn!(
                                    "{} has a signature by {n} that does not verify ({why}); replacing it",
                                    what.kind
                                );
                                keep = false;
                            }
                            _ => {}
                        }
                    }
                    keep
                }
            });
            if let Some(k) = present {
                added.already.push(k);
                out = meta::with_signatures(&out, kind, &sigs);
                continue;
            }
            let new = signer.sign(payload, what)?;
            sigs.push(new.bytes);
            added.signed.push(new.key);
            out = meta::with_signatures(&out, kind, &sigs);
        }
        Ok((out, added))
    }

    /// A fresh `summary.sig` for these summary bytes (never appended to an old one: a
    /// signature over older bytes placed first would make gpgme stop at it).
    pub fn sign_summary(&self, summary: &[u8]) -> Result<Vec<u8>, SignError> {
        let (m, _) = self.sign_meta(None, summary, &Payload::summary())?;
        Ok(meta::to_bytes(&m))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_parse_and_name_their_mistakes() {
        assert_eq!(
            "gpg:ABCD".parse::<Spec>().unwrap(),
            Spec::Gpg("ABCD".into())
        );
        assert_eq!(
            "exec:/usr/bin/signer --key 'a b' \"c\""
                .parse::<Spec>()
                .unwrap(),
            Spec::Exec(vec![
                "/usr/bin/signer".into(),
                "--key".into(),
                "a b".into(),
                "c".into()
            ])
        );
        for (bad, says) in [
            ("gpg", "expected gpg:KEYID"),
            ("gpg:", "nothing after"),
            ("pgp:x", "unknown backend"),
            ("exec:'x", "unclosed quote"),
            ("gpg:--homedir", "not an option"),
        ] {
            let e = bad.parse::<Spec>().unwrap_err().to_string();
            assert!(e.contains(says), "{bad}: {e}");
        }
    }

    #[test]
    fn ed25519_signatures_are_added_once_and_keep_other_keys() {
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("k");
        let mut seed_pub = vec![9u8; 32];
        seed_pub.extend_from_slice(
            ed25519_dalek::SigningKey::from_bytes(&[9u8; 32])
                .verifying_key()
                .as_bytes(),
        );
        use base64::Engine as _;
        std::fs::write(
            &key,
            base64::engine::general_purpose::STANDARD.encode(&seed_pub),
        )
        .unwrap();
        let signers = Signers::open(&[Spec::Ed25519(key)], &Options::default()).unwrap();
        let mut existing = VarDict::new();
        existing.insert("x.other", arbor_repo::gvariant::Value::str("kept"));
        let (m, added) = signers
            .sign_meta(Some(&existing), b"payload", &Payload::summary())
            .unwrap();
        assert_eq!(added.signed.len(), 1);
        let (m2, added2) = signers
            .sign_meta(Some(&m), b"payload", &Payload::summary())
            .unwrap();
        assert!(added2.signed.is_empty());
        assert_eq!(added2.already.len(), 1);
        assert_eq!(meta::to_bytes(&m), meta::to_bytes(&m2));
        assert_eq!(meta::signatures(&m2, SigKind::Ed25519).len(), 1);
        assert!(m2.get("x.other").is_some());
        let r = signers.trusted().verify(b"payload", Some(&m2));
        assert!(r.valid(), "{r:?}");
        assert!(!signers.trusted().verify(b"other", Some(&m2)).valid());
    }

    /// A signer (or gpg) that hangs is killed; one that floods stdout is read no further
    /// than the bound.
    #[test]
    fn processes_are_bounded_in_time_and_output() {
        let mut c = Command::new("sleep");
        c.arg("30");
        let e = run_bounded(c, b"", Duration::from_secs(1), 10).unwrap_err();
        assert!(e.contains("killed"), "{e}");
        let mut c = Command::new("head");
        c.args(["-c", "100000", "/dev/zero"]);
        let (status, out, _) = run_bounded(c, b"", Duration::from_secs(10), 10).unwrap();
        assert_eq!(out.len(), 11);
        let _ = status;
    }

    #[test]
    fn words_split_like_a_shell_without_one() {
        assert_eq!(split_words("a  b").unwrap(), ["a", "b"]);
        assert_eq!(split_words("'' x").unwrap(), ["", "x"]);
        assert!(split_words("\"a").is_err());
    }
}
