//! The compose pipeline: plan → resolve (and change detection) → fetch → import
//! (cached per RPM) → build (scriptlets, assembly, postprocess, initramfs, labels) →
//! commit with rpm-ostree's metadata. Each stage is a function of its own
//! ([`stages`]); [`compose`] runs them in order, [`fetch`] only the online ones.

mod layers;
mod metadata;
pub mod stages;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Instant;

use arbor_repo::progress::Progress;
use arbor_repo::store::CommitStats;
use arbor_repo::{Checksum, Repo, RepoError};

pub use metadata::{
    commit_metadata, compose_json, content_checksum, input_hash, layer_checksums, next_version,
    pkgdiff_json,
};

use crate::assemble::AssembleError;
use crate::import::ImportError;
use crate::plan::ComposePlan;
use crate::resolve::{Lockfile, Resolution, ResolveError};
use crate::rpmmd::{FetchError, FetchedRpm, Http};
use crate::scripts::{self, PackageInput, Ran, ScriptError, ScriptOpts};
use crate::union::UnionError;

#[derive(Debug, thiserror::Error)]
pub enum ComposeError {
    #[error(transparent)]
    Resolve(#[from] ResolveError),
    #[error(transparent)]
    Fetch(#[from] FetchError),
    #[error(transparent)]
    Import(#[from] ImportError),
    #[error(transparent)]
    Union(#[from] UnionError),
    #[error(transparent)]
    Assemble(#[from] AssembleError),
    #[error(transparent)]
    Repo(#[from] RepoError),
    #[error(transparent)]
    Script(#[from] ScriptError),
    #[error("{0}")]
    Other(String),
}

#[derive(Debug, Clone, Default)]
pub struct ComposeOpts {
    /// Package cache (downloads and per-RPM imports); default `<repo>/extensions/arbor/cache`.
    pub cachedir: Option<PathBuf>,
    /// Commit even when the inputs are unchanged.
    pub force_nocache: bool,
    /// Stop after resolving and change detection.
    pub dry_run: bool,
    pub lockfile: Option<Lockfile>,
    /// Commit timestamp (default: now).
    pub timestamp: Option<u64>,
    /// Leave the ref alone (rpm-ostree's `--write-commitid-to`: the caller takes the
    /// commit id instead).
    pub no_ref: bool,
    /// How long one scriptlet or postprocess script may run (default
    /// [`scripts::DEFAULT_TIMEOUT`]).
    pub scriptlet_timeout: Option<std::time::Duration>,
    /// A package cache shared between machines ([`crate::shared`]), tried after the
    /// local one: RPMs and per-RPM imports fetched from it, and stored in it when missing.
    pub shared_cache: Option<std::sync::Arc<dyn crate::shared::SharedCache>>,
}

/// What a compose did.
#[derive(Debug, Clone)]
pub struct ComposeOutcome {
    pub resolution: Resolution,
    pub inputhash: String,
    /// The new commit; `None` for a dry run or when nothing changed.
    pub commit: Option<Checksum>,
    pub parent: Option<Checksum>,
    pub version: Option<String>,
    /// True when the inputs equal the previous commit's.
    pub unchanged: bool,
    pub cache_hits: usize,
    pub imported: usize,
    /// Scriptlets and postprocess scripts that ran, in order, with their time (in a
    /// dry run: that would run, with no time).
    pub scriptlets: Vec<Ran>,
    /// NEVRA → scriptlets present but not run, each with the reason.
    pub skipped_scriptlets: BTreeMap<String, Vec<String>>,
    pub kernel: Option<String>,
    pub timestamp: u64,
    pub content_total: u64,
    pub content_written: u64,
    pub content_bytes_written: u64,
    pub metadata_total: u64,
    pub metadata_written: u64,
    /// The root tree's content checksum (ostree's `ostree_commit_get_content_checksum`).
    pub content_checksum: Option<String>,
    /// Packages changed since the parent commit, when there is one with a package list.
    pub pkgdiff: Option<crate::rpmdb::PkgDiff>,
    /// File objects rewritten by the final SELinux labeling (not labeled at import).
    pub relabeled: u64,
    /// Seconds per phase.
    pub timings: BTreeMap<String, f64>,
    /// What the shared package cache gave and took, when there is one.
    pub shared_cache: Option<crate::shared::SharedCounts>,
}

fn lap(timings: &mut BTreeMap<String, f64>, name: &str, t0: &mut Instant) {
    timings.insert(name.to_string(), t0.elapsed().as_secs_f64());
    *t0 = Instant::now();
}

/// The cache directory a compose uses: `opts.cachedir`, else the repository's
/// `extensions/arbor/cache`.
pub fn cachedir(repo: &Repo, opts: &ComposeOpts) -> PathBuf {
    opts.cachedir
        .clone()
        .unwrap_or_else(|| repo.path().join("extensions/arbor/cache"))
}

/// What `arbor fetch` did.
#[derive(Debug, Clone)]
pub struct Fetched {
    pub resolution: Resolution,
    pub rpms: Vec<FetchedRpm>,
}

/// The online half of a compose: resolve (the repodata kept in `cachedir`) and fetch
/// every RPM into `cachedir`, so that `compose --offline` needs no network.
pub fn fetch(
    plan: &ComposePlan,
    lockfile: Option<&Lockfile>,
    http: &Http,
    cachedir: &std::path::Path,
    shared: Option<&dyn crate::shared::SharedCache>,
    progress: &dyn Progress,
) -> Result<Fetched, ComposeError> {
    progress.start("resolve", None);
    let resolution = crate::resolve::resolve(plan, http, lockfile, Some(cachedir));
    progress.end(resolution.is_ok());
    let resolution = resolution?;
    let rpms = stages::fetch(http, &resolution, cachedir, shared, progress)?;
    Ok(Fetched { resolution, rpms })
}

/// Run the compose. With unchanged inputs (and no `force_nocache`) nothing is written.
pub fn compose(
    repo: &Repo,
    plan: &ComposePlan,
    opts: &ComposeOpts,
    http: &Http,
    progress: &dyn Progress,
) -> Result<ComposeOutcome, ComposeError> {
    let mut timings = BTreeMap::new();
    let mut t0 = Instant::now();
    let cachedir = cachedir(repo, opts);
    let resolved = stages::resolve(repo, plan, opts, http, &cachedir, progress)?;
    lap(&mut timings, "resolve", &mut t0);
    let timestamp = opts
        .timestamp
        .unwrap_or_else(crate::time::default_timestamp);
    let mut outcome = ComposeOutcome {
        resolution: resolved.resolution.clone(),
        inputhash: resolved.inputhash.clone(),
        commit: None,
        parent: resolved.parent,
        version: None,
        unchanged: resolved.unchanged,
        cache_hits: 0,
        imported: 0,
        scriptlets: Vec::new(),
        skipped_scriptlets: BTreeMap::new(),
        kernel: None,
        timestamp,
        content_total: 0,
        content_written: 0,
        content_bytes_written: 0,
        metadata_total: 0,
        metadata_written: 0,
        content_checksum: None,
        pkgdiff: None,
        relabeled: 0,
        timings: BTreeMap::new(),
        shared_cache: None,
    };
    if resolved.unchanged && !opts.force_nocache && !opts.dry_run {
        outcome.timings = timings;
        return Ok(outcome);
    }
    if let (Some(key), false) = (&plan.gpg_key, opts.dry_run) {
        return Err(ComposeError::Other(format!(
            "{}: gpg-key {key:?}: arbor does not sign commits yet; compose without it and \
             sign the commit afterwards (rpm-ostree's --write-commitid-to flow)",
            plan.treefile.display()
        )));
    }
    let files_before = repo.files_written();
    let shared = opts.shared_cache.as_deref();
    let rpms = stages::fetch(http, &resolved.resolution, &cachedir, shared, progress)?;
    lap(&mut timings, "fetch", &mut t0);
    let script_opts = ScriptOpts {
        shared: opts.shared_cache.clone(),
        cachedir: cachedir.clone(),
        timeout: opts.scriptlet_timeout.unwrap_or(scripts::DEFAULT_TIMEOUT),
        timestamp,
    };
    if opts.dry_run {
        // What would run, in order (the RPMs' headers say; nothing is imported).
        let inputs: Vec<PackageInput> = rpms
            .iter()
            .map(|r| PackageInput {
                nevra: r.nevra.clone(),
                rpm: r.path.clone(),
                deferred: Vec::new(),
            })
            .collect();
        let mut empty = arbor_repo::tree::MutableTree::default();
        let report = scripts::run_package_scripts(
            repo,
            &mut empty,
            plan,
            &inputs,
            &script_opts,
            progress,
            true,
        )?;
        outcome.scriptlets = report.ran;
        outcome.skipped_scriptlets = report.skipped;
        outcome.timings = timings;
        return Ok(outcome);
    }
    let version = plan
        .automatic_version_prefix
        .as_deref()
        .map(|prefix| {
            next_version(
                prefix,
                plan.automatic_version_suffix,
                resolved.parent_commit.as_ref().and_then(|c| c.version()),
                timestamp,
            )
        })
        .transpose()?;
    let built = std::thread::scope(|s| -> Result<stages::Built, ComposeError> {
        let rpmdb = stages::PendingRpmdb::start(s, repo, &rpms, timestamp);
        let imported = stages::import(
            repo,
            plan,
            &resolved,
            &rpms,
            &cachedir,
            opts.shared_cache.clone(),
            progress,
        )?;
        outcome.cache_hits = imported.cache_hits;
        outcome.imported = imported.imported;
        lap(&mut timings, "import", &mut t0);
        let version = version.as_deref();
        stages::build(
            repo,
            plan,
            &resolved,
            &rpms,
            imported,
            rpmdb,
            version,
            &script_opts,
            progress,
            &mut timings,
        )
    })?;
    t0 = Instant::now();
    let committed = stages::commit(
        repo,
        plan,
        &resolved,
        &built,
        version.as_deref(),
        timestamp,
        opts.no_ref,
    )?;
    outcome.content_checksum = Some(content_checksum(&committed.root_tree, &committed.root_meta));
    if let Some(old) = resolved
        .parent_commit
        .as_ref()
        .and_then(|c| crate::rpmdb::pkglist(c).ok())
    {
        let new: Vec<crate::rpmdb::Package> = outcome
            .resolution
            .packages
            .iter()
            .map(crate::rpmdb::Package::from)
            .collect();
        outcome.pkgdiff = Some(crate::rpmdb::diff(&old, &new));
    }
    lap(&mut timings, "commit", &mut t0);
    let g = CommitStats::get;
    outcome.content_total = built.tree.files_recursive().len() as u64;
    // Every FILE object of this compose (package contents, tmpfiles.d, rpmdb, added
    // files) went through `repo`.
    let files_after = repo.files_written();
    outcome.content_written = files_after.0 - files_before.0;
    outcome.content_bytes_written = files_after.1 - files_before.1;
    outcome.metadata_total = g(&committed.stats.metadata_total);
    outcome.metadata_written = g(&committed.stats.metadata_written);
    outcome.commit = Some(committed.checksum);
    outcome.version = version;
    outcome.kernel = built.kernel;
    outcome.scriptlets = built.scriptlets;
    outcome.skipped_scriptlets = built.skipped_scriptlets;
    outcome.relabeled = built.relabeled;
    outcome.timings = timings;
    outcome.shared_cache = opts
        .shared_cache
        .as_ref()
        .map(|c| c.stats().counts(c.url()));
    Ok(outcome)
}
