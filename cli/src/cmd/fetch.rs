//! `arbor fetch`: the online half of a compose — resolve a treefile (keeping the
//! repodata) and download every RPM it needs into the cache — so that
//! `arbor compose --offline` (or `release --offline`) runs without network, on another
//! runner if the cache is carried over.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use arbor_compose::compose;
use arbor_compose::plan::ComposePlan;
use arbor_compose::resolve;
use arbor_compose::rpmmd::Http;
use clap::Args;
use serde::Serialize;

use crate::progress::Bar;

#[derive(Args)]
pub struct FetchOpts {
    /// The cache to fill (the `--cachedir` of the later compose).
    #[arg(long, value_name = "DIR")]
    cachedir: Option<PathBuf>,
    /// Or: the repository whose default cache (`extensions/arbor/cache`) to fill.
    #[arg(long, value_name = "PATH", env = "ARBOR_REPO")]
    repo: Option<PathBuf>,
    /// Pin package versions to this lockfile (rpm-ostree JSON schema).
    #[arg(long, value_name = "FILE")]
    lockfile: Option<PathBuf>,
    /// One JSON object: packages, downloaded, bytes.
    #[arg(long)]
    json: bool,
    /// The treefile.
    treefile: PathBuf,
}

/// `arbor fetch --json`: what the cache holds for the treefile now.
#[derive(Serialize)]
struct FetchJson<'a> {
    /// Packages the treefile resolves to.
    packages: usize,
    /// Of those, the ones downloaded now (the others were cached).
    downloaded: usize,
    /// Bytes downloaded.
    bytes: u64,
    cachedir: &'a Path,
}

impl FetchOpts {
    pub fn run(self) -> Result<ExitCode> {
        let cachedir = match (&self.cachedir, &self.repo) {
            (Some(c), _) if c.to_str().is_some_and(crate::shared_cache::is_url) => bail!(
                "--cachedir {}: arbor fetch fills a local directory (for --offline); a shared \
                 cache (a URL) is filled by `compose` and `release` with --cachedir URL",
                c.display()
            ),
            (Some(c), _) => c.clone(),
            (None, Some(r)) => r.join("extensions/arbor/cache"),
            (None, None) => bail!("arbor fetch needs --cachedir DIR or --repo PATH"),
        };
        let plan = ComposePlan::load(&self.treefile)?;
        let lock = self
            .lockfile
            .as_deref()
            .map(resolve::parse_lockfile)
            .transpose()?;
        let out = compose::fetch(
            &plan,
            lock.as_ref(),
            &Http::default(),
            &cachedir,
            None,
            &Bar::new(),
        )
        .with_context(|| format!("fetching for {}", self.treefile.display()))?;
        let downloaded: Vec<_> = out.rpms.iter().filter(|r| r.downloaded).collect();
        let bytes: u64 = downloaded
            .iter()
            .filter_map(|r| std::fs::metadata(&r.path).ok())
            .map(|m| m.len())
            .sum();
        if self.json {
            super::print_json(&FetchJson {
                packages: out.rpms.len(),
                downloaded: downloaded.len(),
                bytes,
                cachedir: &cachedir,
            })?;
        } else {
            eprintln!(
                "{} packages for {} in {} ({} downloaded, {bytes} bytes)",
                out.rpms.len(),
                plan.ref_,
                cachedir.display(),
                downloaded.len()
            );
        }
        Ok(ExitCode::SUCCESS)
    }
}
