//! `arbor publish` (placeholder until the publish work lands).

use std::process::ExitCode;

use anyhow::{bail, Result};
use clap::Args;

#[derive(Args)]
pub struct PublishOpts {}

impl PublishOpts {
    pub fn run(self) -> Result<ExitCode> {
        bail!("arbor publish is not implemented yet")
    }
}
