//! `arbor prune`: apply a per-ref retention policy to a published repository and delete
//! the commits, objects and deltas nothing kept reaches.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use arbor_publish::{Location, PruneOpts as LibOpts, Retention};
use clap::Args;
use serde::Serialize;

use super::publish::{RequestsJson, S3Args};
use crate::progress::Bar;

#[derive(Args)]
#[command(group(clap::ArgGroup::new("policy").required(true).args(["keep", "keep_younger_than"])))]
pub struct PruneOpts {
    /// The published repository: file:///path (or a plain path), s3://, gs:// or
    /// az://bucket/prefix.
    #[arg(long, value_name = "URL")]
    to: String,
    /// Keep the newest N commits of each ref (N ≥ 1).
    #[arg(long, value_name = "N")]
    keep: Option<usize>,
    /// Keep the commits of each ref younger than DAYS (by commit timestamp); the head is
    /// always kept.
    #[arg(long, value_name = "DAYS")]
    keep_younger_than: Option<f64>,
    /// Apply the policy to this ref only (repeatable; default: every ref). Other refs keep
    /// their whole history.
    #[arg(long = "ref", value_name = "REF")]
    refs: Vec<String>,
    /// Print what would be removed, change nothing.
    #[arg(long)]
    dry_run: bool,
    /// Never delete anything stored less than this many seconds ago, and treat commits
    /// that young as kept, so a publish in flight is never harmed.
    #[arg(long, value_name = "SECONDS", default_value_t = arbor_publish::DEFAULT_GRACE.as_secs())]
    grace: u64,
    #[command(flatten)]
    s3: S3Args,
    /// Requests in flight at once.
    #[arg(long, value_name = "N", default_value_t = 16)]
    jobs: usize,
    /// Print a JSON report on stdout instead of one line per removed object.
    #[arg(long)]
    json: bool,
    /// Signs the summary prune rewrites (keep a signed repository signed).
    #[command(flatten)]
    sign: crate::sign::SignArgs,
}

/// `arbor prune --json`: what was kept and what was (or, with --dry-run, would be)
/// removed.
#[derive(Serialize)]
struct PruneJson<'a> {
    /// The published repository's URL.
    to: &'a str,
    dry_run: bool,
    /// Commits the policy keeps (hex).
    kept_commits: Vec<String>,
    /// Commits removed (hex).
    removed_commits: Vec<String>,
    removed_deltas: &'a [String],
    /// Every key removed, in deletion order.
    removed: Vec<RemovedJson<'a>>,
    /// How many keys were removed.
    objects_removed: usize,
    bytes_removed: u64,
    /// Unreachable objects left alone because they are younger than the grace period.
    kept_young: u64,
    summary_written: bool,
    requests: RequestsJson,
    seconds: f64,
}

/// One removed key of [`PruneJson`] and its size.
#[derive(Serialize)]
struct RemovedJson<'a> {
    key: &'a str,
    bytes: u64,
}

impl PruneOpts {
    pub fn run(self) -> Result<ExitCode> {
        let retention = match (self.keep, self.keep_younger_than) {
            (Some(0), _) => {
                bail!("--keep must be at least 1 (the head of each ref is always kept)")
            }
            (Some(n), _) => Retention::Keep(n),
            (None, Some(d)) if d.is_finite() && d >= 0.0 => Retention::YoungerThan(
                Duration::try_from_secs_f64(d * 86400.0)
                    .map_err(|_| anyhow::anyhow!("--keep-younger-than {d}: too many days"))?,
            ),
            (None, Some(d)) => bail!("--keep-younger-than {d}: expected a number of days ≥ 0"),
            (None, None) => bail!("give --keep N or --keep-younger-than DAYS"),
        };
        for r in &self.refs {
            arbor_repo::layout::validate_ref_name(r).with_context(|| format!("--ref {r}"))?;
        }
        let dest = Location::parse_destination(&self.to, &self.s3.settings())
            .with_context(|| format!("--to {}", self.to))?;
        let opts = LibOpts {
            retention,
            refs: self.refs.clone(),
            dry_run: self.dry_run,
            grace: Duration::from_secs(self.grace),
            jobs: self.jobs.max(1),
            signing: crate::sign::PublishSigning::boxed(self.sign.open()?, None),
        };
        let report = arbor_publish::prune(&dest, &opts, &Bar::new())
            .with_context(|| format!("pruning {}", dest.url))?;
        let verb = if self.dry_run {
            "would remove"
        } else {
            "removed"
        };
        if self.json {
            super::print_json(&PruneJson {
                to: &dest.url,
                dry_run: self.dry_run,
                kept_commits: report.kept_commits.iter().map(|c| c.to_hex()).collect(),
                removed_commits: report.removed_commits.iter().map(|c| c.to_hex()).collect(),
                removed_deltas: &report.removed_deltas,
                removed: report
                    .removed
                    .iter()
                    .map(|r| RemovedJson {
                        key: &r.key,
                        bytes: r.bytes,
                    })
                    .collect(),
                objects_removed: report.removed.len(),
                bytes_removed: report.bytes_removed,
                kept_young: report.kept_young,
                summary_written: report.summary_written,
                requests: RequestsJson::new(&report.requests),
                seconds: report.seconds,
            })?;
        } else {
            for r in &report.removed {
                println!("{verb} {} ({} bytes)", r.key, r.bytes);
            }
            println!(
                "{verb} {} object(s), {} bytes: {} commit(s), {} delta(s); kept {} commit(s); \
                 {} unreferenced object(s) younger than {}s left alone",
                report.removed.len(),
                report.bytes_removed,
                report.removed_commits.len(),
                report.removed_deltas.len(),
                report.kept_commits.len(),
                report.kept_young,
                self.grace
            );
        }
        Ok(ExitCode::SUCCESS)
    }
}
