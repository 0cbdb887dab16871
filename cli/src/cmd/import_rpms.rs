//! `arbor import-rpms` (hidden, for debugging the importer end to end): import RPMs in
//! parallel, union their trees in the order given, and commit the result to a branch.
//! No resolver, no scriptlets, no root skeleton, no rpmdb — just the package contents.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context, Result};
use arbor_compose::import::{import_rpms, ImportOpts, Users};
use arbor_repo::gvariant::{Type, Value, VarDict};
use arbor_repo::objects::Commit;
use arbor_repo::store::CommitStats;
use clap::Args;

use super::RepoArg;

#[derive(Args)]
pub struct ImportRpmsOpts {
    #[command(flatten)]
    repo: RepoArg,
    /// Branch to commit to; its current head becomes the parent.
    #[arg(short, long)]
    branch: String,
    /// Drop `%doc` files (treefile `documentation: false`).
    #[arg(long)]
    no_docs: bool,
    /// Cache imported packages here (`DIR/imports/`); re-imports of unchanged RPMs
    /// then load the package tree from the repository instead.
    #[arg(long, value_name = "DIR")]
    cachedir: Option<PathBuf>,
    /// passwd file resolving owner names (default: only root is known).
    #[arg(long, value_name = "FILE", requires = "group")]
    passwd: Option<PathBuf>,
    /// group file resolving group names.
    #[arg(long, value_name = "FILE", requires = "passwd")]
    group: Option<PathBuf>,
    /// Commit time in seconds since the epoch (default: now).
    #[arg(long, value_name = "SECS")]
    timestamp: Option<u64>,
    /// RPM files, in install order (the first package wins shared directory metadata).
    #[arg(required = true)]
    rpms: Vec<PathBuf>,
}

impl ImportRpmsOpts {
    pub fn run(self) -> Result<ExitCode> {
        let started = Instant::now();
        let repo = self.repo.open()?;
        arbor_repo::layout::validate_ref_name(&self.branch)
            .with_context(|| format!("--branch {}", self.branch))?;
        let users = match (&self.passwd, &self.group) {
            (Some(p), Some(g)) => {
                let read = |f: &PathBuf| {
                    std::fs::read_to_string(f).with_context(|| format!("reading {}", f.display()))
                };
                Users::parse(&read(p)?, &read(g)?)
                    .with_context(|| format!("parsing {} and {}", p.display(), g.display()))?
            }
            _ => Users::root_only(),
        };
        let opts = ImportOpts {
            documentation: !self.no_docs,
            ..ImportOpts::default()
        };
        let jobs: Vec<(PathBuf, ImportOpts)> = self
            .rpms
            .iter()
            .map(|p| (p.clone(), opts.clone()))
            .collect();
        let imported = import_rpms(
            &repo,
            &jobs,
            &users,
            self.cachedir.as_deref(),
            &arbor_repo::progress::NoProgress,
        )?;
        let hits = imported.iter().filter(|(_, hit)| *hit).count();
        let import_secs = started.elapsed().as_secs_f64();

        let packages: Vec<_> = imported.into_iter().map(|(p, _)| p).collect();
        for p in packages.iter().filter(|p| !p.scriptlets.is_empty()) {
            tracing::info!("{}: skipped scriptlets {}", p.nevra, p.scriptlets.join(" "));
        }
        let tree = arbor_compose::union::union(&packages)?;
        let stats = CommitStats::default();
        let (root_tree, root_meta) = repo.write_mtree(&tree, &stats)?;
        let mut metadata = VarDict::new();
        metadata.insert(
            "ostree.ref-binding",
            Value::Array(Type::String, vec![Value::str(self.branch.clone())]),
        );
        let timestamp = match self.timestamp {
            Some(t) => t,
            None => std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)?
                .as_secs(),
        };
        let commit = Commit {
            metadata,
            parent: repo.read_ref(&self.branch)?,
            subject: format!("import of {} RPMs", packages.len()),
            body: String::new(),
            timestamp,
            root_tree,
            root_meta,
        };
        let checksum = repo.write_commit(&commit)?;
        repo.write_ref(&self.branch, &checksum)?;
        println!("{checksum}");
        eprintln!(
            "imported {} packages ({hits} cache hits, {} files, {} bytes) in {import_secs:.2}s, \
             committed in {:.2}s",
            packages.len(),
            packages.iter().map(|p| p.files).sum::<u64>(),
            packages.iter().map(|p| p.bytes).sum::<u64>(),
            started.elapsed().as_secs_f64()
        );
        Ok(ExitCode::SUCCESS)
    }
}
