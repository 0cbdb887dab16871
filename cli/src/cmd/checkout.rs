//! `arbor checkout`

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::Args;

use super::RepoArg;

#[derive(Args)]
pub struct CheckoutOpts {
    #[command(flatten)]
    repo: RepoArg,
    /// Do not change ownership or set extended attributes (needed as non-root).
    #[arg(short = 'U', long)]
    user_mode: bool,
    /// Check out only this path inside the commit.
    #[arg(long, default_value = "/")]
    subpath: String,
    /// Branch name or commit checksum.
    rev: String,
    /// Destination directory; must not exist.
    dest: PathBuf,
}

impl CheckoutOpts {
    pub fn run(self) -> Result<ExitCode> {
        let repo = self.repo.open()?;
        let commit = repo.resolve_rev(&self.rev)?;
        let opts = arbor_repo::store::CheckoutOpts {
            user_mode: self.user_mode,
        };
        repo.checkout(&commit, &self.subpath, &self.dest, &opts)
            .with_context(|| format!("checking out {commit} to {}", self.dest.display()))?;
        Ok(ExitCode::SUCCESS)
    }
}
