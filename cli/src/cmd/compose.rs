//! `arbor compose`: treefile → OSTree commit, like `rpm-ostree compose tree`.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use arbor_compose::compose::{self, compose_json, ComposeOpts};
use arbor_compose::plan::{host_basearch, ComposePlan};
use arbor_compose::resolve::{self, lockfile_json};
use arbor_compose::rpmmd::Http;
use arbor_compose::treefile;
use arbor_publish::StoreOpts;
use clap::Args;

use super::RepoArg;
use crate::progress::Bar;

#[derive(Args)]
pub struct ComposeCmdOpts {
    /// Path to the OSTree repository (not needed with --print-only).
    #[arg(
        long,
        value_name = "PATH",
        env = "ARBOR_REPO",
        required_unless_present = "print_only"
    )]
    repo: Option<PathBuf>,
    #[command(flatten)]
    inputs: ComposeInputs,
    /// Resolve and report the transaction, but fetch, import and commit nothing.
    #[arg(long)]
    dry_run: bool,
    /// Print the flattened treefile (includes merged, variables substituted) as JSON
    /// and exit; needs no ref, repository or .repo files.
    #[arg(long)]
    print_only: bool,
    /// Write the resolved package set as a lockfile (rpm-ostree JSON schema).
    #[arg(long, value_name = "FILE")]
    write_lockfile_to: Option<PathBuf>,
    /// Write the new commit checksum to this file instead of updating the ref (as
    /// rpm-ostree does: the caller decides what the ref points at, e.g. after signing).
    #[arg(long, value_name = "FILE")]
    write_commitid_to: Option<PathBuf>,
    /// Write a JSON summary (rpm-ostree's compose JSON keys, plus arbor's) to this file.
    #[arg(long, value_name = "FILE")]
    write_composejson_to: Option<PathBuf>,
    /// Print the compose JSON on stdout instead of the bare commit checksum.
    #[arg(long)]
    json: bool,
    /// Sign the new commit before its ref moves to it.
    #[command(flatten)]
    sign: crate::sign::SignArgs,
    /// The treefile (YAML for .yaml/.yml, JSON otherwise).
    treefile: PathBuf,
}

/// How a compose runs: the flags `compose` and `release` share.
#[derive(Args)]
pub struct ComposeInputs {
    /// Package cache: downloaded RPMs and per-RPM imports, reused across composes
    /// (default: <repo>/extensions/arbor/cache). A URL (s3://bucket/prefix, gs://,
    /// az://, file://, or read-only http(s)://) names a cache shared between machines:
    /// RPMs and imports missing locally are fetched from it (verified) and stored in it,
    /// so a CI runner that starts empty starts warm; the local default cache is used
    /// beside it.
    #[arg(long, value_name = "DIR|URL")]
    cachedir: Option<String>,
    /// Commit even if the inputs (treefile, package set) are unchanged.
    #[arg(long)]
    force_nocache: bool,
    /// Pin package versions to this lockfile (rpm-ostree JSON schema).
    #[arg(long, value_name = "FILE")]
    lockfile: Option<PathBuf>,
    /// Commit timestamp: seconds since the epoch or a UTC date (default: now).
    #[arg(long, value_name = "SECS|DATE")]
    timestamp: Option<String>,
    /// Kill a scriptlet or postprocess script that runs longer than this, and fail the
    /// compose naming it.
    #[arg(long, value_name = "SECS", default_value_t = 600)]
    scriptlet_timeout: u64,
    /// No network: repodata and RPMs come from the cache only (what `arbor fetch` put
    /// there; `file://` repositories are read in place).
    #[arg(long)]
    offline: bool,
}

impl ComposeInputs {
    /// The network the compose uses (none with `--offline`).
    pub fn http(&self) -> Http {
        if self.offline {
            Http::offline()
        } else {
            Http::default()
        }
    }

    /// The library options; reads the lockfile, parses the timestamp, opens a shared
    /// cache (with these store settings).
    pub fn opts(&self, dry_run: bool, store: &StoreOpts) -> Result<ComposeOpts> {
        let lockfile = self
            .lockfile
            .as_deref()
            .map(resolve::parse_lockfile)
            .transpose()?;
        let timestamp = match &self.timestamp {
            Some(t) => Some(
                arbor_compose::time::parse_timestamp(t)
                    .with_context(|| format!("could not parse --timestamp {t:?}"))?,
            ),
            None => None,
        };
        let (cachedir, shared_cache) = match self.cachedir.as_deref() {
            Some(url) if crate::shared_cache::is_url(url) => {
                if self.offline {
                    anyhow::bail!(
                        "--offline with --cachedir {url}: a shared cache is on the network; \
                         use a local --cachedir (what `arbor fetch` filled)"
                    );
                }
                (None, Some(crate::shared_cache::open(url, store)?))
            }
            Some(dir) => (Some(PathBuf::from(dir)), None),
            None => (None, None),
        };
        Ok(ComposeOpts {
            cachedir,
            shared_cache,
            force_nocache: self.force_nocache,
            dry_run,
            lockfile,
            timestamp,
            no_ref: false,
            scriptlet_timeout: Some(std::time::Duration::from_secs(
                self.scriptlet_timeout.max(1),
            )),
        })
    }
}

impl ComposeCmdOpts {
    pub fn run(self) -> Result<ExitCode> {
        if self.print_only {
            // As rpm-ostree: only flatten; no ref, repository or .repo file is needed.
            let flat = treefile::flatten(&self.treefile, &host_basearch())?;
            println!("{}", serde_json::to_string_pretty(&flat)?);
            return Ok(ExitCode::SUCCESS);
        }
        let plan = ComposePlan::load(&self.treefile)?;
        let repo = RepoArg {
            repo: self.repo.clone().unwrap_or_default(),
        }
        .open()?;
        let signers = self.sign.open()?;
        let mut opts = self
            .inputs
            .opts(self.dry_run, &arbor_publish::StoreOpts::default())?;
        // Signed before the ref moves: nothing ever sees the new head unsigned.
        opts.no_ref = self.write_commitid_to.is_some() || signers.is_some();
        let out = compose::compose(&repo, &plan, &opts, &self.inputs.http(), &Bar::new())
            .with_context(|| format!("composing {}", self.treefile.display()))?;
        if let Some(f) = &self.write_lockfile_to {
            std::fs::write(
                f,
                serde_json::to_string_pretty(&lockfile_json(&out.resolution))? + "\n",
            )
            .with_context(|| format!("writing {}", f.display()))?;
        }
        eprintln!(
            "{} packages resolved for {}",
            out.resolution.packages.len(),
            plan.ref_
        );
        if self.dry_run {
            if self.json {
                super::print_json(&compose_json(&plan, &out))?;
            } else {
                for p in &out.resolution.packages {
                    println!("{}", p.nevra());
                }
            }
            if !out.scriptlets.is_empty() {
                eprintln!("scriptlets that would run, in order:");
                for r in &out.scriptlets {
                    eprintln!("  {} {}", r.package, r.scriptlet);
                }
            }
            report_not_run(&out.skipped_scriptlets);
            if out.unchanged {
                eprintln!("No apparent changes since previous commit");
            }
            return Ok(ExitCode::SUCCESS);
        }
        let Some(commit) = out.commit else {
            eprintln!("No apparent changes since previous commit; use --force-nocache to override");
            return Ok(ExitCode::SUCCESS);
        };
        if let Some(s) = &signers {
            crate::sign::sign_commit(&repo, &commit, s, Some(&plan.ref_))?;
            if self.write_commitid_to.is_none() {
                repo.write_ref(&plan.ref_, &commit)?;
            }
        }
        if !out.scriptlets.is_empty() {
            eprintln!(
                "{} scriptlets and postprocess scripts ran in {:.1} s",
                out.scriptlets.len(),
                out.scriptlets.iter().map(|r| r.seconds).sum::<f64>()
            );
        }
        report_not_run(&out.skipped_scriptlets);
        eprintln!(
            "imported {} packages ({} from cache); {} files and symlinks in the tree; {} of {} tree objects new",
            out.imported + out.cache_hits,
            out.cache_hits,
            out.content_total,
            out.metadata_written,
            out.metadata_total
        );
        if let Some(v) = &out.version {
            eprintln!("version {v}");
        }
        let cj = compose_json(&plan, &out);
        if let Some(f) = &self.write_commitid_to {
            std::fs::write(f, commit.to_hex())
                .with_context(|| format!("writing {}", f.display()))?;
        }
        if let Some(f) = &self.write_composejson_to {
            std::fs::write(f, serde_json::to_string_pretty(&cj)? + "\n")
                .with_context(|| format!("writing {}", f.display()))?;
        }
        if self.json {
            super::print_json(&cj)?;
        } else {
            println!("{commit}");
        }
        Ok(ExitCode::SUCCESS)
    }
}

/// Scriptlets not run, with the reason; those that are only comments are counted, not
/// listed (`-v` lists them, the compose JSON always does).
pub fn report_not_run(skipped: &std::collections::BTreeMap<String, Vec<String>>) {
    let mut quiet = 0;
    for (nevra, reasons) in skipped {
        for r in reasons {
            if r.ends_with("does nothing (only comments, `:` or `exit 0`)") {
                quiet += 1;
                tracing::debug!("{nevra}: {r}");
            } else {
                eprintln!("not run: {nevra}: {r}");
            }
        }
    }
    if quiet > 0 {
        eprintln!(
            "{quiet} scriptlets that do nothing (only comments, `:` or `exit 0`) were not run"
        );
    }
}
