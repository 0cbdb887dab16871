//! `arbor init`

use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use arbor_repo::Repo;
use clap::Args;

use super::RepoArg;

#[derive(Args)]
pub struct InitOpts {
    #[command(flatten)]
    repo: RepoArg,
    /// Repository mode. Only `archive` (alias `archive-z2`) is supported: it is the mode
    /// that can be served over HTTP and published.
    #[arg(long, default_value = "archive")]
    mode: String,
}

impl InitOpts {
    pub fn run(self) -> Result<ExitCode> {
        if !matches!(self.mode.as_str(), "archive" | "archive-z2") {
            bail!(
                "unsupported mode {:?}: arbor writes archive repositories",
                self.mode
            );
        }
        Repo::init(&self.repo.repo)
            .with_context(|| format!("initializing {}", self.repo.repo.display()))?;
        Ok(ExitCode::SUCCESS)
    }
}
