//! `arbor commit`: like `ostree commit --tree=dir=DIR`, with the same checksums.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use arbor_repo::gvariant::{Type, Value, VarDict};
use arbor_repo::objects::Commit;
use arbor_repo::store::{CommitDirOpts, CommitStats};
use arbor_repo::Checksum;
use clap::Args;
use serde::Serialize;

use super::RepoArg;
use crate::progress::Bar;

#[derive(Args)]
pub struct CommitOpts {
    #[command(flatten)]
    repo: RepoArg,
    /// Branch to commit to; its current head becomes the parent.
    #[arg(short, long)]
    branch: String,
    /// One-line subject.
    #[arg(short, long, default_value = "")]
    subject: String,
    /// Full description.
    #[arg(long, default_value = "")]
    body: String,
    /// Commit time: seconds since the epoch, or a UTC date like 2020-01-01T00:00:00Z
    /// (default: now). Fix it to make commits reproducible.
    #[arg(long, value_name = "SECS|DATE")]
    timestamp: Option<String>,
    /// Parent commit checksum, or `none` for a root commit (default: the branch head).
    #[arg(long, value_name = "REV|none")]
    parent: Option<String>,
    /// Add a string metadata key (repeatable, kept in the order given).
    #[arg(long = "add-metadata-string", value_name = "KEY=VALUE")]
    metadata: Vec<String>,
    /// Do not add `ostree.ref-binding` (clients then cannot check the commit belongs to
    /// the branch they asked for).
    #[arg(long)]
    no_bindings: bool,
    /// Record uid/gid 0 and modes masked to 0755 for files and directories, no xattrs
    /// (as `ostree commit --canonical-permissions`).
    #[arg(long)]
    canonical_permissions: bool,
    /// Record this uid for every file instead of the one on disk.
    #[arg(long, value_name = "UID")]
    owner_uid: Option<u32>,
    /// Record this gid for every file instead of the one on disk.
    #[arg(long, value_name = "GID")]
    owner_gid: Option<u32>,
    /// Do not record extended attributes.
    #[arg(long)]
    no_xattrs: bool,
    /// If the tree equals the parent's, print the parent and write no commit.
    #[arg(long)]
    skip_if_unchanged: bool,
    /// Print a JSON object (commit and counts) instead of the bare checksum.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    sign: crate::sign::SignArgs,
    /// Directory to commit.
    dir: PathBuf,
}

/// `arbor commit --json`: the commit and what writing it took.
#[derive(Serialize)]
struct CommitReportJson<'a> {
    /// The commit (hex): the new one, or the parent with --skip-if-unchanged.
    commit: String,
    branch: &'a str,
    /// False when --skip-if-unchanged found the tree unchanged.
    new_commit: bool,
    content_objects_total: u64,
    content_objects_written: u64,
    content_bytes_written: u64,
    /// Dirtree and dirmeta objects.
    metadata_objects_total: u64,
    metadata_objects_written: u64,
    /// Wall time of the command.
    seconds: f64,
}

impl CommitOpts {
    pub fn run(self) -> Result<ExitCode> {
        let started = Instant::now();
        let repo = self.repo.open()?;
        let signers = self.sign.open()?;
        arbor_repo::layout::validate_ref_name(&self.branch)
            .with_context(|| format!("--branch {}", self.branch))?;
        let timestamp = match &self.timestamp {
            Some(t) => arbor_compose::time::parse_timestamp(t)
                .with_context(|| format!("could not parse --timestamp {t:?}"))?,
            None => std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)?
                .as_secs(),
        };
        let parent = match self.parent.as_deref() {
            Some("none") => None,
            Some(p) => Some(Checksum::from_hex(p).with_context(|| format!("--parent {p}"))?),
            None => repo.read_ref(&self.branch)?,
        };
        let mut metadata = VarDict::new();
        for kv in &self.metadata {
            let Some((k, v)) = kv.split_once('=') else {
                bail!("--add-metadata-string {kv:?}: expected KEY=VALUE");
            };
            if k.is_empty() {
                bail!("--add-metadata-string {kv:?}: empty key");
            }
            metadata.insert(k, Value::str(v));
        }
        if !self.no_bindings {
            // Same as `ostree commit`: appended after the user's keys.
            metadata.insert(
                "ostree.ref-binding",
                Value::Array(Type::String, vec![Value::str(self.branch.clone())]),
            );
        }
        let opts = CommitDirOpts {
            owner_uid: self.owner_uid,
            owner_gid: self.owner_gid,
            canonical_permissions: self.canonical_permissions,
            no_xattrs: self.no_xattrs,
            ..Default::default()
        };
        let stats = CommitStats::default();
        let (root_tree, root_meta) = repo
            .write_directory(&self.dir, &opts, &Bar::new(), &stats)
            .with_context(|| format!("committing {}", self.dir.display()))?;
        if self.skip_if_unchanged {
            if let Some(p) = parent {
                let pc = repo.read_commit(&p)?;
                if pc.root_tree == root_tree && pc.root_meta == root_meta {
                    tracing::info!("tree unchanged from parent {p}; no new commit");
                    self.print(&p, &stats, false, started)?;
                    return Ok(ExitCode::SUCCESS);
                }
            }
        }
        let commit = Commit {
            metadata,
            parent,
            subject: self.subject.clone(),
            body: self.body.clone(),
            timestamp,
            root_tree,
            root_meta,
        };
        let checksum = repo.write_commit(&commit)?;
        if let Some(s) = &signers {
            crate::sign::sign_commit(&repo, &checksum, s, Some(&self.branch))?;
        }
        repo.write_ref(&self.branch, &checksum)?;
        self.print(&checksum, &stats, true, started)?;
        Ok(ExitCode::SUCCESS)
    }

    fn print(
        &self,
        checksum: &Checksum,
        stats: &CommitStats,
        new: bool,
        started: Instant,
    ) -> Result<()> {
        let g = CommitStats::get;
        if self.json {
            super::print_json(&CommitReportJson {
                commit: checksum.to_hex(),
                branch: &self.branch,
                new_commit: new,
                content_objects_total: g(&stats.content_total),
                content_objects_written: g(&stats.content_written),
                content_bytes_written: g(&stats.content_bytes_written),
                metadata_objects_total: g(&stats.metadata_total),
                metadata_objects_written: g(&stats.metadata_written),
                seconds: started.elapsed().as_secs_f64(),
            })?;
        } else {
            println!("{checksum}");
        }
        tracing::info!(
            "{} files ({} new, {} bytes written), {} tree objects ({} new) in {:.2}s",
            g(&stats.content_total),
            g(&stats.content_written),
            g(&stats.content_bytes_written),
            g(&stats.metadata_total),
            g(&stats.metadata_written),
            started.elapsed().as_secs_f64()
        );
        Ok(())
    }
}
