//! `arbor sign`: add signatures to existing commits (and the summary).

use std::process::ExitCode;

use anyhow::{bail, Result};
use clap::Args;
use serde::Serialize;

use super::RepoArg;
use crate::sign::{sign_commit, sign_local_summary, SignArgs, Signed};

#[derive(Args)]
pub struct SignOpts {
    #[command(flatten)]
    repo: RepoArg,
    /// Commits to sign (branch, checksum, REV^).
    #[arg(value_name = "REV")]
    revs: Vec<String>,
    /// Also sign the repository's summary (writes `summary.sig` anew).
    #[arg(long)]
    summary: bool,
    #[command(flatten)]
    sign: SignArgs,
    /// Print one JSON object: {commits: [{commit, signed, already, stale_deltas}], summary}.
    #[arg(long)]
    json: bool,
}

/// `arbor sign --json`: per commit, the keys that signed now and those whose signature
/// was already there; and whether the summary was signed.
#[derive(Serialize)]
struct SignJson {
    commits: Vec<Signed>,
    summary: bool,
}

impl SignOpts {
    pub fn run(self) -> Result<ExitCode> {
        if self.revs.is_empty() && !self.summary {
            bail!("nothing to sign: name commits (REV…) and/or --summary");
        }
        let Some(signers) = self.sign.open()? else {
            bail!("--sign-with SPEC is required");
        };
        let repo = self.repo.open()?;
        let mut out = Vec::new();
        for rev in &self.revs {
            let c = repo.resolve_rev(rev)?;
            let ref_name = (!rev.chars().all(|c| c.is_ascii_hexdigit())).then_some(rev.as_str());
            let s = sign_commit(&repo, &c, &signers, ref_name)?;
            if !self.json {
                for k in &s.signed {
                    println!("{c}: signed by {k}");
                }
                for k in &s.already {
                    println!("{c}: already signed by {k}");
                }
            }
            if !s.stale_deltas.is_empty() {
                tracing::warn!(
                    "deltas made before these signatures: {} — `arbor delta generate --ref REF` or `arbor release` makes them anew; publish refuses them until then",
                    s.stale_deltas.join(", ")
                );
            }
            out.push(s);
        }
        if self.summary {
            sign_local_summary(&repo, &signers)?;
            if !self.json {
                println!("summary: signed");
            }
        }
        if self.json {
            super::print_json(&SignJson {
                commits: out,
                summary: self.summary,
            })?;
        }
        Ok(ExitCode::SUCCESS)
    }
}
