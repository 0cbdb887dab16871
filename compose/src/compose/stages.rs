//! The compose's stages, each a function from one value to the next:
//!
//! ```text
//! plan ─resolve─▶ Resolved ─fetch─▶ [FetchedRpm] ─import─▶ Imported ─build─▶ Built ─commit─▶ Checksum
//!        (change detection)   (online)      (per-RPM cache,          (scriptlets, assembly,
//!                                                 sandbox copies)     postprocess, initramfs,
//!                                                                     labels; the rpmdb is
//!                                                                     written meanwhile)
//! ```
//!
//! `arbor fetch` runs the first two online; `compose --offline` runs them all from the
//! cache.

use std::collections::{BTreeMap, HashSet};
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use arbor_repo::gvariant::Value;
use arbor_repo::objects::Commit;
use arbor_repo::progress::Progress;
use arbor_repo::store::CommitStats;
use arbor_repo::tree::MutableTree;
use arbor_repo::{Checksum, Repo};

use super::{layers, metadata, ComposeError, ComposeOpts};
use crate::assemble;
use crate::import::{self, ImportOpts, ImportedPackage};
use crate::plan::ComposePlan;
use crate::resolve::{self, Resolution};
use crate::rpmmd::{self, FetchedRpm, Http};
use crate::scripts::{self, PackageInput, Ran, ScriptOpts};
use crate::selinux::Labeler;
use crate::union;

/// What the inputs are, and whether they changed since the ref's commit.
#[derive(Debug, Clone)]
pub struct Resolved {
    pub resolution: Resolution,
    pub inputhash: String,
    pub parent: Option<Checksum>,
    pub parent_commit: Option<Commit>,
    /// The inputs equal the parent's (`rpmostree.inputhash`).
    pub unchanged: bool,
}

/// Resolve the plan's packages (repodata through `http`, kept in `cachedir`), hash the
/// inputs and compare them with the ref's commit.
pub fn resolve(
    repo: &Repo,
    plan: &ComposePlan,
    opts: &ComposeOpts,
    http: &Http,
    cachedir: &Path,
    progress: &dyn Progress,
) -> Result<Resolved, ComposeError> {
    progress.start("resolve", None);
    let resolution = resolve::resolve(plan, http, opts.lockfile.as_ref(), Some(cachedir));
    if let Ok(r) = &resolution {
        progress.inc(r.packages.len() as u64);
    }
    progress.end(resolution.is_ok());
    let resolution = resolution?;
    for (pkg, _) in &plan.remove_from_packages {
        // Not an error (rpm-ostree ignores it too): a shared manifest may name packages
        // only some variants install.
        if !resolution.packages.iter().any(|p| p.name == *pkg) {
            tracing::warn!("remove-from-packages: package {pkg:?} is not installed");
        }
    }
    let inputhash =
        metadata::input_hash(plan, &resolution, &metadata::layer_checksums(repo, plan)?)?;
    let parent = repo.read_ref(&plan.ref_)?;
    let parent_commit = parent.map(|p| repo.read_commit(&p)).transpose()?;
    let previous = parent_commit
        .as_ref()
        .and_then(|c| c.metadata.get("rpmostree.inputhash"))
        .and_then(Value::as_str);
    let unchanged = previous == Some(inputhash.as_str());
    Ok(Resolved {
        resolution,
        inputhash,
        parent,
        parent_commit,
        unchanged,
    })
}

/// Every resolved RPM, local and verified (downloaded into `cachedir` when needed).
pub fn fetch(
    http: &Http,
    resolution: &Resolution,
    cachedir: &Path,
    shared: Option<&dyn crate::shared::SharedCache>,
    progress: &dyn Progress,
) -> Result<Vec<FetchedRpm>, ComposeError> {
    Ok(rpmmd::fetch_rpms(
        http,
        &resolution.repos,
        &resolution.packages,
        cachedir,
        shared,
        progress,
    )?)
}

/// The packages' trees (imported or from the cache).
pub struct Imported {
    pub packages: Vec<ImportedPackage>,
    pub cache_hits: usize,
    pub imported: usize,
    /// The packages' SELinux policy, when they make one (files are labeled as imported).
    pub labels: Option<Arc<Labeler>>,
}

/// Import every RPM (in parallel).
pub fn import(
    repo: &Repo,
    plan: &ComposePlan,
    resolved: &Resolved,
    rpms: &[FetchedRpm],
    cachedir: &Path,
    shared: Option<Arc<dyn crate::shared::SharedCache>>,
    progress: &dyn Progress,
) -> Result<Imported, ComposeError> {
    let (users, labels) = crate::bootstrap::bootstrap(repo, rpms, cachedir, plan.selinux)?;
    // A compose that will run the sandbox (an initramfs, postprocess scripts) keeps the
    // uncompressed copies the sandbox's farm links as it imports: the content is in
    // hand here, where the farm would have to read and inflate every object again.
    // (Packages' scriptlets alone are not known before import; the farm fills in.)
    let sandbox =
        !plan.no_initramfs || !plan.postprocess.is_empty() || plan.postprocess_script.is_some();
    let bare = sandbox.then(|| Arc::new(crate::scripts::farm::BareCache::new(cachedir)));
    let mut jobs = Vec::with_capacity(rpms.len());
    for (r, p) in rpms.iter().zip(&resolved.resolution.packages) {
        let mut remove_from = Vec::new();
        for (pkg, regexes) in &plan.remove_from_packages {
            if *pkg == p.name {
                for re in regexes {
                    remove_from.push(
                        regex::Regex::new(re).map_err(|e| {
                            ComposeError::Other(format!("remove-from-packages: {e}"))
                        })?,
                    );
                }
            }
        }
        jobs.push((
            r.path.clone(),
            ImportOpts {
                documentation: plan.documentation,
                remove_from,
                readonly_executables: plan.readonly_executables,
                ignore_devices: plan.ignore_devices,
                ima: plan.ima,
                labels: labels.clone(),
                bare: bare.clone(),
                shared: shared.clone(),
            },
            Checksum::from_hex(&r.sha256).ok(),
        ));
    }
    progress.start("import", Some(jobs.len() as u64));
    let all = || import::import_rpms_known(repo, &jobs, &users, Some(cachedir), progress);
    // With a shared cache most imports are downloads (and their checks): twice as many
    // at once as there are cores, so that the network and the CPU overlap.
    let pool = shared.is_some().then(|| {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        rayon::ThreadPoolBuilder::new()
            .num_threads(2 * cores)
            .build()
            .ok()
    });
    let imported = match pool.flatten() {
        Some(pool) => pool.install(all),
        None => all(),
    };
    progress.end(imported.is_ok());
    let imported = imported?;
    let cache_hits = imported.iter().filter(|(_, hit)| *hit).count();
    Ok(Imported {
        imported: imported.len() - cache_hits,
        cache_hits,
        packages: imported.into_iter().map(|(p, _)| p).collect(),
        labels,
    })
}

/// The rpmdb of the package set, written by `rpm --justdb` (install times from the
/// compose's timestamp) on a thread of its own while the scriptlets run: one core is
/// idle while they do, and the tree needs the rpmdb only from assembly on.
pub struct PendingRpmdb<'scope> {
    handle: std::thread::ScopedJoinHandle<
        'scope,
        (
            Result<crate::rpmdb_write::RpmdbDir, crate::assemble::AssembleError>,
            f64,
        ),
    >,
}

impl<'scope> PendingRpmdb<'scope> {
    pub fn start<'env>(
        s: &'scope std::thread::Scope<'scope, 'env>,
        repo: &'env Repo,
        rpms: &'env [FetchedRpm],
        timestamp: u64,
    ) -> Self {
        PendingRpmdb {
            handle: s.spawn(move || {
                let t = Instant::now();
                let r = crate::rpmdb_write::build_rpmdb(repo, rpms, timestamp);
                (r, t.elapsed().as_secs_f64())
            }),
        }
    }

    /// The rpmdb as a tree (`usr/share/rpm`), once `rpm` is done; the seconds it took.
    fn finish(self, repo: &Repo) -> Result<(MutableTree, f64), ComposeError> {
        let (dir, secs) = self
            .handle
            .join()
            .unwrap_or_else(|p| std::panic::resume_unwind(p));
        Ok((dir?.commit(repo)?, secs))
    }
}

/// The finished tree.
pub struct Built {
    pub tree: MutableTree,
    pub kernel: Option<String>,
    pub scriptlets: Vec<Ran>,
    pub skipped_scriptlets: BTreeMap<String, Vec<String>>,
    pub relabeled: u64,
}

/// From the packages' trees to the tree that gets committed: union, layers, accounts,
/// scriptlets, assembly, postprocess, accounts split and checked, initramfs, labels.
/// Adds each step's seconds to `timings`.
#[allow(clippy::too_many_arguments)]
pub fn build(
    repo: &Repo,
    plan: &ComposePlan,
    resolved: &Resolved,
    rpms: &[FetchedRpm],
    imported: Imported,
    rpmdb: PendingRpmdb<'_>,
    version: Option<&str>,
    script_opts: &ScriptOpts,
    progress: &dyn Progress,
    timings: &mut BTreeMap<String, f64>,
) -> Result<Built, ComposeError> {
    let mut t0 = Instant::now();
    let mut lap = |name: &str, t0: &mut Instant| super::lap(timings, name, t0);
    let packages = imported.packages;
    let mut tree = union::union(&packages)?;
    layers::apply(repo, &mut tree, plan)?;
    lap("union", &mut t0);
    // Scriptlets run on the packages' tree with the previous accounts in place.
    let parent = resolved.parent.as_ref();
    assemble::seed_accounts(repo, &mut tree, plan, parent)?;
    let inputs: Vec<PackageInput> = rpms
        .iter()
        .zip(&packages)
        .map(|(r, p)| PackageInput {
            nevra: r.nevra.clone(),
            rpm: r.path.clone(),
            deferred: p.deferred.clone(),
        })
        .collect();
    let report =
        scripts::run_package_scripts(repo, &mut tree, plan, &inputs, script_opts, progress, false)?;
    let mut scriptlets = report.ran;
    lap("scriptlets", &mut t0);
    let (rpmdb, rpmdb_secs) = rpmdb.finish(repo)?;
    lap("rpmdb-wait", &mut t0);
    let mut tree = assemble::assemble(repo, tree, plan, rpmdb, version)?;
    scriptlets.extend(scripts::run_postprocess(
        repo,
        &mut tree,
        plan,
        script_opts,
        progress,
    )?);
    lap("postprocess", &mut t0);
    let kernel = assemble::finalize(repo, &mut tree, plan, parent)?;
    lap("assemble", &mut t0);
    if let Some(kver) = &kernel {
        if !plan.no_initramfs {
            scriptlets.push(scripts::run_initramfs(
                repo,
                &mut tree,
                plan,
                kver,
                script_opts,
                progress,
            )?);
            lap("initramfs", &mut t0);
        }
        assemble::place_kernel(repo, &mut tree, plan, kver)?;
    }
    let mut relabeled = 0;
    if plan.selinux {
        progress.start("selinux", None);
        let labeled = label(
            repo,
            &mut tree,
            &packages,
            imported.labels.as_deref(),
            &script_opts.cachedir,
        );
        progress.end(labeled.is_ok());
        relabeled = labeled?;
        lap("selinux", &mut t0);
    }
    timings.insert("rpmdb-meanwhile".into(), rpmdb_secs);
    for (step, secs) in report.timings {
        timings.insert(format!("scriptlets-{step}"), secs);
    }
    Ok(Built {
        tree,
        kernel,
        scriptlets,
        skipped_scriptlets: report.skipped,
        relabeled,
    })
}

/// Label the tree with its own policy (as the scriptlets left it); what the import
/// labeled with the same policy at the same path is not looked at again.
fn label(
    repo: &Repo,
    tree: &mut MutableTree,
    packages: &[ImportedPackage],
    at_import: Option<&Labeler>,
    cachedir: &Path,
) -> Result<u64, ComposeError> {
    let policy = crate::relabel::policy_of(repo, tree)
        .map_err(|e| ComposeError::Other(format!("selinux: {e}")))?;
    let fresh;
    let mut imported = HashSet::new();
    let l = match at_import {
        Some(l) if l.digest == policy.digest() => {
            for p in packages {
                imported.extend(p.tree.files_recursive());
            }
            l
        }
        _ => {
            fresh = crate::bootstrap::open_labeler(&policy, cachedir)?;
            &fresh
        }
    };
    crate::relabel::relabel(repo, tree, l, &imported)
        .map_err(|e| ComposeError::Other(e.to_string()))
}

/// What the commit stage wrote.
pub struct Committed {
    pub checksum: Checksum,
    pub root_tree: Checksum,
    pub root_meta: Checksum,
    pub stats: CommitStats,
}

/// Write the tree and the commit (parent: the ref's commit), and move the ref unless
/// `no_ref`.
pub fn commit(
    repo: &Repo,
    plan: &ComposePlan,
    resolved: &Resolved,
    built: &Built,
    version: Option<&str>,
    timestamp: u64,
    no_ref: bool,
) -> Result<Committed, ComposeError> {
    let stats = CommitStats::default();
    let (root_tree, root_meta) = repo.write_mtree(&built.tree, &stats)?;
    let (md, detached) = metadata::commit_metadata(
        plan,
        &resolved.resolution,
        &resolved.inputhash,
        version,
        built.kernel.as_deref(),
    );
    let commit = Commit {
        metadata: md,
        parent: resolved.parent,
        subject: String::new(),
        body: String::new(),
        timestamp,
        root_tree,
        root_meta,
    };
    let checksum = repo.write_commit(&commit)?;
    if !detached.0.is_empty() {
        repo.write_commitmeta(&checksum, &detached)?;
    }
    if !no_ref {
        repo.write_ref(&plan.ref_, &checksum)?;
    }
    Ok(Committed {
        checksum,
        root_tree,
        root_meta,
        stats,
    })
}
