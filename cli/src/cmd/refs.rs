//! `arbor refs`

use std::collections::BTreeMap;
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
            let json: BTreeMap<&str, String> =
                refs.iter().map(|(k, v)| (k.as_str(), v.to_hex())).collect();
            super::print_json(&json)?;
        } else {
            for name in refs.keys() {
                println!("{name}");
            }
        }
        Ok(ExitCode::SUCCESS)
    }
}
