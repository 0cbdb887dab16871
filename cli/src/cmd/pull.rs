//! `arbor pull`: fetch refs' history from a published repository into a local one.

use std::collections::BTreeMap;
use std::process::ExitCode;

use anyhow::{Context, Result};
use arbor_publish::{Location, PullOpts};
use clap::Args;
use serde::Serialize;

use super::publish::S3Args;
use super::RepoArg;
use crate::progress::Bar;

#[derive(Args)]
pub struct PullCmdOpts {
    #[command(flatten)]
    repo: RepoArg,
    /// The published repository: file:///path (or a plain path), s3://, gs://, az://, or
    /// http(s)://… (needs a summary there unless --ref is given).
    #[arg(long, value_name = "URL")]
    from: String,
    /// Ref to fetch (repeatable; default: every ref the source advertises).
    #[arg(long = "ref", value_name = "REF")]
    refs: Vec<String>,
    /// Parents of each head to fetch too (0: the heads only).
    #[arg(long, value_name = "N", default_value_t = 0)]
    depth: usize,
    /// Commits (with their signatures), dirtrees and dirmeta only: the history a compose
    /// continues and deltas start from, without the content (commits are marked partial).
    #[arg(long)]
    metadata_only: bool,
    #[command(flatten)]
    s3: S3Args,
    /// Requests in flight at once.
    #[arg(long, value_name = "N", default_value_t = 16)]
    jobs: usize,
    /// Print a JSON report on stdout.
    #[arg(long)]
    json: bool,
}

/// `arbor pull --json`: what the pull fetched.
#[derive(Serialize)]
struct PullJson<'a> {
    /// The heads pulled: ref → commit (hex).
    refs: BTreeMap<&'a str, String>,
    /// Local branches written.
    refs_updated: &'a [String],
    commits_fetched: u64,
    objects_fetched: u64,
    bytes_fetched: u64,
    /// Commits held without their content (hex).
    partial: Vec<String>,
    seconds: f64,
}

impl PullCmdOpts {
    pub fn run(self) -> Result<ExitCode> {
        for r in &self.refs {
            arbor_repo::layout::validate_ref_name(r).with_context(|| format!("--ref {r}"))?;
        }
        let repo = self.repo.open()?;
        let src = Location::parse_source(&self.from, &self.s3.settings())
            .with_context(|| format!("--from {}", self.from))?;
        let opts = PullOpts {
            depth: self.depth,
            metadata_only: self.metadata_only,
            paths: Vec::new(),
            jobs: self.jobs.max(1),
            write_refs: true,
        };
        let r = arbor_publish::pull(&src, &repo, &self.refs, &opts, &Bar::new())
            .with_context(|| format!("pulling from {}", src.url))?;
        if self.json {
            super::print_json(&PullJson {
                refs: r
                    .refs
                    .iter()
                    .map(|(k, v)| (k.as_str(), v.to_hex()))
                    .collect(),
                refs_updated: &r.refs_updated,
                commits_fetched: r.commits_fetched,
                objects_fetched: r.objects_fetched,
                bytes_fetched: r.bytes_fetched,
                partial: r.partial.iter().map(|c| c.to_hex()).collect(),
                seconds: r.seconds,
            })?;
        } else {
            println!(
                "pulled {} ref(s) from {}: {} commit(s), {} object(s), {} bytes{} in {:.2}s",
                r.refs.len(),
                src.url,
                r.commits_fetched,
                r.objects_fetched,
                r.bytes_fetched,
                if r.partial.is_empty() {
                    String::new()
                } else {
                    format!(" ({} commit(s) without content)", r.partial.len())
                },
                r.seconds
            );
        }
        Ok(ExitCode::SUCCESS)
    }
}
