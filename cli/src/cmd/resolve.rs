//! `arbor resolve`: the package set a treefile resolves to.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use arbor_compose::plan::ComposePlan;
use arbor_compose::resolve::{self, lockfile_json};
use arbor_compose::rpmmd::Http;
use clap::Args;

#[derive(Args)]
pub struct ResolveOpts {
    /// Print a lockfile in rpm-ostree's JSON schema instead of NEVRAs.
    #[arg(long)]
    json: bool,
    /// Pin package versions to this lockfile (rpm-ostree JSON schema).
    #[arg(long, value_name = "FILE")]
    lockfile: Option<PathBuf>,
    /// The treefile (YAML for .yaml/.yml, JSON otherwise); its repositories come from
    /// the *.repo files next to it.
    treefile: PathBuf,
}

impl ResolveOpts {
    pub fn run(self) -> Result<ExitCode> {
        let plan = ComposePlan::load(&self.treefile)?;
        let lock = self
            .lockfile
            .as_deref()
            .map(resolve::parse_lockfile)
            .transpose()?;
        let res = resolve::resolve(&plan, &Http::default(), lock.as_ref(), None)
            .with_context(|| format!("resolving {}", self.treefile.display()))?;
        if self.json {
            println!("{}", serde_json::to_string_pretty(&lockfile_json(&res))?);
        } else {
            let mut nevras: Vec<String> = res.packages.iter().map(|p| p.nevra()).collect();
            nevras.sort();
            for n in nevras {
                println!("{n}");
            }
        }
        Ok(ExitCode::SUCCESS)
    }
}
