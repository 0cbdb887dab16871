//! `arbor mirror` (placeholder until the publish work lands).

use std::process::ExitCode;

use anyhow::{bail, Result};
use clap::Args;

#[derive(Args)]
pub struct MirrorOpts {}

impl MirrorOpts {
    pub fn run(self) -> Result<ExitCode> {
        bail!("arbor mirror is not implemented yet")
    }
}
