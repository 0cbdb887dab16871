//! `arbor mirror`: copy refs, their commits, objects and deltas from one store to
//! another and regenerate the destination's summary.

use std::process::ExitCode;

use anyhow::{Context, Result};
use arbor_publish::{Location, TransferOpts};
use clap::Args;

use super::publish::{report_line, S3Args, TransferJson};
use crate::progress::Bar;

#[derive(Args)]
pub struct MirrorOpts {
    /// Source: file:///path (or a plain path), s3://, gs:// or az://bucket/prefix, or
    /// http(s)://… (read-only; needs a summary file there).
    #[arg(long, value_name = "URL")]
    from: String,
    /// Destination: file:///path (or a plain path), s3://bucket/prefix, gs://bucket/prefix,
    /// az://container/prefix, or memory://.
    #[arg(long, value_name = "URL")]
    to: String,
    /// Ref to mirror (repeatable; default: every ref the source advertises).
    #[arg(long = "ref", value_name = "REF")]
    refs: Vec<String>,
    /// Parents of each head to copy too (default: all the source has; 0: heads only).
    #[arg(long, value_name = "N")]
    depth: Option<usize>,
    #[command(flatten)]
    s3: S3Args,
    /// Requests in flight at once (per store).
    #[arg(long, value_name = "N", default_value_t = 16)]
    jobs: usize,
    /// Print a JSON report on stdout.
    #[arg(long)]
    json: bool,
    /// Signs the summary the mirror regenerates (required when the source's summary is
    /// signed, unless --allow-unsigned-summary). Commit signatures are copied as they are.
    #[command(flatten)]
    sign: crate::sign::SignArgs,
    /// Publish an unsigned summary although the source's is signed.
    #[arg(long)]
    allow_unsigned_summary: bool,
    /// Refuse to upload unless every commit to publish (and every ref's head) carries a
    /// valid signature by a key of this keyring (OpenPGP, armoured or binary; repeatable):
    /// checked before anything is uploaded.
    #[arg(long = "require-signatures", value_name = "KEYRING")]
    require_signatures: Vec<std::path::PathBuf>,
}

impl MirrorOpts {
    pub fn run(self) -> Result<ExitCode> {
        for r in &self.refs {
            arbor_repo::layout::validate_ref_name(r).with_context(|| format!("--ref {r}"))?;
        }
        let settings = self.s3.settings();
        let src = Location::parse_source(&self.from, &settings)
            .with_context(|| format!("--from {}", self.from))?;
        let dest = Location::parse_destination(&self.to, &settings)
            .with_context(|| format!("--to {}", self.to))?;
        let opts = TransferOpts {
            jobs: self.jobs.max(1),
            depth: self.depth,
            force: true,
            signing: crate::sign::PublishSigning::boxed(
                self.sign.open()?,
                super::publish::required_keys(&self.require_signatures)?,
            ),
            allow_unsigned_summary: self.allow_unsigned_summary,
            require_descent: false,
        };
        let report = arbor_publish::mirror(&src, &dest, &self.refs, &opts, &Bar::new())
            .with_context(|| {
                format!(
                    "mirroring {} to {} (clients still see the previous state)",
                    src.url, dest.url
                )
            })?;
        if self.json {
            super::print_json(&TransferJson::new(&report, &dest.url))?;
        } else {
            println!("{}", report_line("mirrored", &report, &dest.url));
        }
        Ok(ExitCode::SUCCESS)
    }
}
