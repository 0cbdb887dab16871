//! `arbor summary`

use std::collections::BTreeMap;
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use arbor_repo::gvariant::Value;
use arbor_repo::summary::Summary;
use clap::Args;
use serde::Serialize;

use super::show::MetadataJson;
use super::RepoArg;

#[derive(Args)]
pub struct SummaryOpts {
    #[command(flatten)]
    repo: RepoArg,
    /// Regenerate the summary from the current refs and deltas.
    #[arg(short, long)]
    update: bool,
    /// Print the summary (after updating, with -u).
    #[arg(long)]
    view: bool,
    /// With --view: print JSON.
    #[arg(long)]
    json: bool,
    /// With -u: sign the new summary (`summary.sig`; without, a stale one is deleted).
    #[command(flatten)]
    sign: crate::sign::SignArgs,
}

/// `arbor summary --view --json`: the refs the summary advertises and its metadata.
#[derive(Serialize)]
struct SummaryJson<'a> {
    refs: BTreeMap<&'a str, SummaryRefJson<'a>>,
    /// The summary's metadata (`a{sv}`; an empty one is `[]`, see [`MetadataJson`]).
    metadata: MetadataJson<'a>,
}

/// One ref of [`SummaryJson`].
#[derive(Serialize)]
struct SummaryRefJson<'a> {
    /// The commit the ref points at (hex).
    commit: String,
    /// The size of the commit object in bytes.
    commit_size: u64,
    /// The ref's metadata (`a{sv}`, as the summary's).
    metadata: MetadataJson<'a>,
}

impl SummaryOpts {
    pub fn run(self) -> Result<ExitCode> {
        if !self.update && !self.view {
            bail!("nothing to do: pass -u/--update to regenerate the summary, --view to print it");
        }
        let repo = self.repo.open()?;
        let signers = self.sign.open()?;
        if signers.is_some() && !self.update {
            bail!(
                "--sign-with signs the summary -u writes; add -u (or use `arbor sign --summary`)"
            );
        }
        let summary = if self.update {
            let s = repo.regenerate_summary()?;
            if let Some(signers) = &signers {
                crate::sign::sign_local_summary(&repo, signers)?;
            }
            s
        } else {
            let path = repo.path().join("summary");
            let data =
                std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
            Summary::from_bytes(&data).with_context(|| format!("parsing {}", path.display()))?
        };
        if self.view {
            if self.json {
                let ref_metadata: Vec<Value> =
                    summary.refs.iter().map(|r| r.metadata.to_value()).collect();
                let metadata = summary.metadata.to_value();
                let refs = summary
                    .refs
                    .iter()
                    .zip(&ref_metadata)
                    .map(|(r, m)| {
                        let json = SummaryRefJson {
                            commit: r.commit.to_hex(),
                            commit_size: r.commit_size,
                            metadata: MetadataJson(m),
                        };
                        (r.name.as_str(), json)
                    })
                    .collect();
                super::print_json(&SummaryJson {
                    refs,
                    metadata: MetadataJson(&metadata),
                })?;
            } else {
                for r in &summary.refs {
                    println!(
                        "* {}\n    Latest Commit ({} bytes):\n      {}",
                        r.name, r.commit_size, r.commit
                    );
                    for (k, v) in &r.metadata.0 {
                        println!("    {k}: {}", v.to_text());
                    }
                }
                println!();
                for (k, v) in &summary.metadata.0 {
                    println!("{k}: {}", v.to_text());
                }
            }
        }
        Ok(ExitCode::SUCCESS)
    }
}
