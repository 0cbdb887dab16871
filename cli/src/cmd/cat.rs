//! `arbor cat`

use std::io::{self, Write};
use std::process::ExitCode;

use anyhow::{bail, Result};
use arbor_repo::store::Node;
use clap::Args;

use super::RepoArg;

#[derive(Args)]
pub struct CatOpts {
    #[command(flatten)]
    repo: RepoArg,
    /// Branch name or commit checksum.
    rev: String,
    /// Path of a regular file inside the commit.
    path: String,
}

impl CatOpts {
    pub fn run(self) -> Result<ExitCode> {
        let repo = self.repo.open()?;
        let commit = repo.resolve_rev(&self.rev)?;
        let Node::File(c) = repo.lookup_path(&commit, &self.path)? else {
            bail!("{}: is a directory in commit {commit}", self.path);
        };
        let (header, content) = repo.read_file(&c)?;
        if header.is_symlink() {
            bail!(
                "{}: is a symbolic link (to {:?}) in commit {commit}",
                self.path,
                header.symlink_target
            );
        }
        let mut out = io::stdout().lock();
        out.write_all(&content)?;
        out.flush()?;
        Ok(ExitCode::SUCCESS)
    }
}
