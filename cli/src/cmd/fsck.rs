//! `arbor fsck`

use std::process::ExitCode;

use anyhow::Result;
use clap::Args;
use serde::Serialize;

use super::RepoArg;
use crate::progress::Bar;

#[derive(Args)]
pub struct FsckOpts {
    #[command(flatten)]
    repo: RepoArg,
    /// Print the result as a JSON object on stdout.
    #[arg(long)]
    json: bool,
}

/// `arbor fsck --json`: what was checked and what is wrong.
#[derive(Serialize)]
struct FsckJson<'a> {
    objects_checked: u64,
    commits_checked: u64,
    /// One line per problem, each naming the object or ref.
    errors: &'a [String],
}

impl FsckOpts {
    pub fn run(self) -> Result<ExitCode> {
        let repo = self.repo.open()?;
        let report = repo.fsck(&Bar::new())?;
        if self.json {
            super::print_json(&FsckJson {
                objects_checked: report.objects_checked,
                commits_checked: report.commits_checked,
                errors: &report.errors,
            })?;
        }
        for e in &report.errors {
            eprintln!("fsck: {e}");
        }
        eprintln!(
            "fsck: checked {} objects, {} commits: {} error(s)",
            report.objects_checked,
            report.commits_checked,
            report.errors.len()
        );
        Ok(if report.errors.is_empty() {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        })
    }
}
