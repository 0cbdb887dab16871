//! `arbor verify`: check a commit's (or the summary's) signatures as a client would.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use arbor_repo::objects::ObjectType;
use arbor_sign::{Report, TrustedKeys};
use clap::Args;
use serde::Serialize;

use super::RepoArg;

#[derive(Args)]
pub struct VerifyOpts {
    #[command(flatten)]
    repo: RepoArg,
    /// The commit to check (branch, checksum, REV^); omit with --summary.
    #[arg(value_name = "REV")]
    rev: Option<String>,
    /// Check `summary.sig` against `summary` instead of a commit.
    #[arg(long)]
    summary: bool,
    /// OpenPGP public keys to trust (armoured or binary, as `ostree remote gpg-import`
    /// takes them; repeatable).
    #[arg(long, value_name = "FILE")]
    keyring: Vec<PathBuf>,
    /// ed25519 public keys to trust: base64 inline, or a file of them (as ostree's
    /// `verification-ed25519-file`); repeatable.
    #[arg(long = "ed25519-public", value_name = "KEY|FILE")]
    ed25519_public: Vec<String>,
    /// Print one JSON object: {good, unknown, problems, valid}.
    #[arg(long)]
    json: bool,
}

/// `arbor verify --json`: the signature check's report, and its verdict.
#[derive(Serialize)]
struct VerifyJson<'a> {
    #[serde(flatten)]
    report: &'a Report,
    /// Whether clients would accept it.
    valid: bool,
}

impl VerifyOpts {
    pub fn run(self) -> Result<ExitCode> {
        if self.keyring.is_empty() && self.ed25519_public.is_empty() {
            bail!("give the keys to trust: --keyring FILE and/or --ed25519-public KEY");
        }
        let keys = TrustedKeys::load(&self.keyring, &self.ed25519_public)?;
        let repo = self.repo.open()?;
        let (what, payload, meta) = match (&self.rev, self.summary) {
            (Some(_), true) => bail!("give a commit or --summary, not both"),
            (None, false) => bail!("give a commit (REV) or --summary"),
            (Some(rev), false) => {
                let c = repo.resolve_rev(rev)?;
                let bytes = repo.read_metadata(ObjectType::Commit, &c)?;
                (format!("commit {c}"), bytes, repo.read_commitmeta(&c)?)
            }
            (None, true) => {
                let p = repo.path().join(arbor_repo::layout::SUMMARY);
                let bytes =
                    std::fs::read(&p).with_context(|| format!("reading {}", p.display()))?;
                let sp = repo.path().join(arbor_repo::layout::SUMMARY_SIG);
                let meta = match std::fs::read(&sp) {
                    Ok(d) => Some(
                        arbor_repo::objects::parse_commitmeta(&d)
                            .with_context(|| format!("parsing {}", sp.display()))?,
                    ),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
                    Err(e) => return Err(e).with_context(|| format!("reading {}", sp.display())),
                };
                ("summary".to_string(), bytes, meta)
            }
        };
        let r = keys.verify(&payload, meta.as_ref());
        for u in &r.unknown {
            tracing::warn!("{what}: a signature by {u}, a key not in the keyring");
        }
        if self.json {
            super::print_json(&VerifyJson {
                report: &r,
                valid: r.valid(),
            })?;
        } else {
            for g in &r.good {
                println!("{what}: good signature by {g}");
            }
            for p in &r.problems {
                println!("{what}: {p}");
            }
        }
        if r.valid() {
            Ok(ExitCode::SUCCESS)
        } else {
            if !self.json {
                eprintln!("error: {what}: {}", r.why());
            }
            Ok(ExitCode::FAILURE)
        }
    }
}
