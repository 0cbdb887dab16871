//! `arbor prune` (placeholder until the publish work lands).

use std::process::ExitCode;

use anyhow::{bail, Result};
use clap::Args;

#[derive(Args)]
pub struct PruneOpts {}

impl PruneOpts {
    pub fn run(self) -> Result<ExitCode> {
        bail!("arbor prune is not implemented yet")
    }
}
