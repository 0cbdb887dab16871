//! `arbor log`

use std::process::ExitCode;

use anyhow::Result;
use arbor_repo::RepoError;
use clap::Args;

use super::RepoArg;

#[derive(Args)]
pub struct LogOpts {
    #[command(flatten)]
    repo: RepoArg,
    /// Print one JSON object per commit, newest first.
    #[arg(long)]
    json: bool,
    /// Branch name or commit checksum.
    rev: String,
}

impl LogOpts {
    pub fn run(self) -> Result<ExitCode> {
        let repo = self.repo.open()?;
        let mut next = Some(repo.resolve_rev(&self.rev)?);
        let mut first = true;
        while let Some(c) = next {
            let commit = match repo.read_commit(&c) {
                Ok(commit) => commit,
                // History is often shallow: a missing parent ends the log, as in ostree.
                Err(RepoError::MissingObject { .. }) if !first => {
                    if !self.json {
                        println!("<< History beyond this commit not fetched >>");
                    }
                    break;
                }
                Err(e) => return Err(e.into()),
            };
            if self.json {
                super::print_json(&super::show::CommitJson::new(&c, &commit))?;
            } else {
                print!("{}", super::show::render(&c, &commit, false));
            }
            next = commit.parent;
            first = false;
        }
        Ok(ExitCode::SUCCESS)
    }
}
