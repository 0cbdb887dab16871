//! `arbor publish`: upload a repository's refs, objects and deltas to object storage,
//! crash-safe (see arbor-publish), and report what was sent.

use std::collections::BTreeMap;
use std::process::ExitCode;

use anyhow::{Context, Result};
use arbor_publish::{Location, RequestCounts, StoreOpts, TransferOpts, TransferReport};
use clap::Args;
use serde::Serialize;

use super::RepoArg;
use crate::progress::Bar;

/// Store connection flags shared by publish, mirror and prune.
#[derive(Args, Clone)]
pub struct S3Args {
    /// S3 endpoint URL, e.g. http://127.0.0.1:3900 (default: AWS_ENDPOINT_URL, else AWS).
    /// Requests are path-style; plain http is allowed for 127.0.0.1/localhost, or
    /// anywhere with AWS_ALLOW_HTTP=true. Region and keys come from AWS_REGION,
    /// AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or web-identity variables); gs:// and
    /// az:// read GOOGLE_* and AZURE_* the same way.
    #[arg(long, value_name = "URL")]
    pub s3_endpoint: Option<String>,
}

impl S3Args {
    pub fn settings(&self) -> StoreOpts {
        StoreOpts {
            s3_endpoint: self.s3_endpoint.clone(),
            ..Default::default()
        }
    }
}

#[derive(Args)]
pub struct PublishOpts {
    #[command(flatten)]
    repo: RepoArg,
    /// Destination: file:///path (or a plain path), s3://bucket/prefix, gs://bucket/prefix,
    /// az://container/prefix, or memory://.
    #[arg(long, value_name = "URL")]
    to: String,
    /// Ref to publish (repeatable; default: every branch of the repository).
    #[arg(long = "ref", value_name = "REF")]
    refs: Vec<String>,
    #[command(flatten)]
    s3: S3Args,
    /// Requests in flight at once.
    #[arg(long, value_name = "N", default_value_t = 16)]
    jobs: usize,
    /// Print a JSON report (uploads, bytes, requests, what is advertised) on stdout.
    #[arg(long)]
    json: bool,
    /// Move a published ref even to a commit that does not descend from the one it
    /// points at (a rollback, or another history); refused otherwise.
    #[arg(long)]
    force: bool,
    /// Signs the summary the destination ends up with (`summary.sig`, made anew whenever
    /// the summary changes).
    #[command(flatten)]
    sign: crate::sign::SignArgs,
    /// Refuse to upload unless every commit to publish (and every ref's head) carries a
    /// valid signature by a key of this keyring (OpenPGP, armoured or binary; repeatable):
    /// checked before anything is uploaded.
    #[arg(long = "require-signatures", value_name = "KEYRING")]
    require_signatures: Vec<std::path::PathBuf>,
}

/// Requests made to one store, by kind, and the bytes they moved.
#[derive(Serialize)]
pub struct RequestsJson {
    /// Every request (get + head + put + delete + list).
    total: u64,
    get: u64,
    head: u64,
    put: u64,
    delete: u64,
    list: u64,
    bytes_uploaded: u64,
    bytes_downloaded: u64,
}

impl RequestsJson {
    pub fn new(r: &RequestCounts) -> Self {
        RequestsJson {
            total: r.total(),
            get: r.get,
            head: r.head,
            put: r.put,
            delete: r.delete,
            list: r.list,
            bytes_uploaded: r.bytes_uploaded,
            bytes_downloaded: r.bytes_downloaded,
        }
    }
}

/// The `--json` report of a publish or mirror (also `published` in `arbor release
/// --json`): what was uploaded and what the destination advertises now.
#[derive(Serialize)]
pub struct TransferJson<'a> {
    /// The destination's URL.
    to: &'a str,
    /// The refs published: ref → commit (hex).
    refs: BTreeMap<&'a str, String>,
    /// Refs whose file at the destination changed.
    refs_updated: &'a [String],
    commits_uploaded: u64,
    /// Objects (files, dirtrees, dirmeta, commitmeta, commits) uploaded.
    objects_uploaded: u64,
    /// Candidate objects the destination already had.
    objects_skipped: u64,
    deltas_uploaded: u64,
    delta_files_uploaded: u64,
    /// Every byte sent to the destination.
    bytes_uploaded: u64,
    config_written: bool,
    summary_written: bool,
    /// Refs the destination's summary advertises now: ref → commit (hex).
    advertised_refs: BTreeMap<&'a str, String>,
    /// Deltas the destination's summary advertises now.
    advertised_deltas: &'a [String],
    /// Requests made to the destination.
    requests: RequestsJson,
    /// Requests made to the source (mirror only; zeros otherwise).
    source_requests: RequestsJson,
    seconds: f64,
}

impl<'a> TransferJson<'a> {
    pub fn new(r: &'a TransferReport, to: &'a str) -> Self {
        let hex = |m: &'a BTreeMap<String, arbor_repo::Checksum>| {
            m.iter().map(|(n, c)| (n.as_str(), c.to_hex())).collect()
        };
        TransferJson {
            to,
            refs: hex(&r.refs),
            refs_updated: &r.refs_updated,
            commits_uploaded: r.commits_uploaded,
            objects_uploaded: r.objects_uploaded,
            objects_skipped: r.objects_skipped,
            deltas_uploaded: r.deltas_uploaded,
            delta_files_uploaded: r.delta_files_uploaded,
            bytes_uploaded: r.requests.bytes_uploaded,
            config_written: r.config_written,
            summary_written: r.summary_written,
            advertised_refs: hex(&r.advertised_refs),
            advertised_deltas: &r.advertised_deltas,
            requests: RequestsJson::new(&r.requests),
            source_requests: RequestsJson::new(&r.source_requests),
            seconds: r.seconds,
        }
    }
}

/// The keyrings of `--require-signatures`, if any.
pub fn required_keys(files: &[std::path::PathBuf]) -> Result<Option<arbor_sign::TrustedKeys>> {
    if files.is_empty() {
        return Ok(None);
    }
    Ok(Some(
        arbor_sign::TrustedKeys::load(files, &[]).context("--require-signatures")?,
    ))
}

/// One human line about a publish or mirror.
pub fn report_line(verb: &str, r: &TransferReport, to: &str) -> String {
    format!(
        "{verb} {} ref(s) to {to}: {} object(s) and {} delta(s) uploaded ({} bytes), {} already there, \
         {} request(s), summary {} in {:.2}s",
        r.refs.len(),
        r.objects_uploaded,
        r.deltas_uploaded,
        r.requests.bytes_uploaded,
        r.objects_skipped,
        r.requests.total(),
        if r.summary_written { "updated" } else { "unchanged" },
        r.seconds
    )
}

impl PublishOpts {
    pub fn run(self) -> Result<ExitCode> {
        let repo = self.repo.open()?;
        for r in &self.refs {
            arbor_repo::layout::validate_ref_name(r).with_context(|| format!("--ref {r}"))?;
        }
        let dest = Location::parse_destination(&self.to, &self.s3.settings())
            .with_context(|| format!("--to {}", self.to))?;
        let opts = TransferOpts {
            jobs: self.jobs.max(1),
            depth: None,
            force: self.force,
            signing: crate::sign::PublishSigning::boxed(
                self.sign.open()?,
                required_keys(&self.require_signatures)?,
            ),
            allow_unsigned_summary: true,
            require_descent: false,
        };
        let report = arbor_publish::publish(&repo, &dest, &self.refs, &opts, &Bar::new())
            .with_context(|| {
                format!(
                    "publishing {} to {} (clients still see the previous state)",
                    self.repo.repo.display(),
                    dest.url
                )
            })?;
        if self.json {
            super::print_json(&TransferJson::new(&report, &dest.url))?;
        } else {
            println!("{}", report_line("published", &report, &dest.url));
        }
        Ok(ExitCode::SUCCESS)
    }
}
