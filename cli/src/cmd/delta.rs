//! `arbor delta …` (placeholder until the static-delta work lands).

use std::process::ExitCode;

use anyhow::{bail, Result};
use clap::Subcommand;

#[derive(Subcommand)]
pub enum DeltaCommand {
    /// Generate a static delta (not implemented yet).
    Generate,
}

impl DeltaCommand {
    pub fn run(self) -> Result<ExitCode> {
        bail!("arbor delta is not implemented yet")
    }
}
