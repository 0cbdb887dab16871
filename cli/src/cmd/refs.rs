//! `arbor refs`

use std::process::ExitCode;

use anyhow::Result;
use clap::Args;

use super::RepoArg;

#[derive(Args)]
pub struct RefsOpts {
    #[command(flatten)]
    repo: RepoArg,
    /// Print `{"ref": "commit", ...}` as JSON.
    #[arg(long)]
    json: bool,
}

impl RefsOpts {
    pub fn run(self) -> Result<ExitCode> {
        let refs = self.repo.open()?.list_refs()?;
        if self.json {
            let m: serde_json::Map<String, serde_json::Value> = refs
                .iter()
                .map(|(k, v)| (k.clone(), v.to_hex().into()))
                .collect();
            super::print_json(&m)?;
        } else {
            for name in refs.keys() {
                println!("{name}");
            }
        }
        Ok(ExitCode::SUCCESS)
    }
}
