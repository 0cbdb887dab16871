//! The compose pipeline: plan → resolve → change detection → fetch → import (cached per
//! RPM) → union → assemble → commit with rpm-ostree's metadata.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use arbor_repo::checksum::Hasher;
use arbor_repo::gvariant::{Type, Value, VarDict};
use arbor_repo::objects::Commit;
use arbor_repo::progress::Progress;
use arbor_repo::store::CommitStats;
use arbor_repo::{Checksum, Repo, RepoError};
use serde_json::Value as Json;

use crate::assemble::{self, AssembleError};
use crate::import::{self, ImportError, ImportOpts};
use crate::plan::{ComposePlan, MetadataPlacement};
use crate::resolve::{self, Lockfile, Resolution, ResolveError};
use crate::rpmmd::{self, FetchError, Http};
use crate::scripts::{self, PackageInput, Ran, ScriptError, ScriptOpts};
use crate::union::{self, UnionError};

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
    /// The rpmdb is the parent's, updated with only the packages that changed.
    pub rpmdb_reused: bool,
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
}

/// rpm-ostree's input hash: the flattened treefile (compact JSON), every package's
/// NEVRA and repodata checksum, add-files contents, and the importer version.
pub fn input_hash(
    plan: &ComposePlan,
    res: &Resolution,
    layers: &[String],
) -> Result<String, ComposeError> {
    let mut h = Hasher::new();
    // The flattened treefile without `metadata` and the layers' names (their content
    // is hashed below), as rpm-ostree.
    h.update(plan.hashed_treefile().as_bytes());
    h.update(format!("\nimporter {}\n", import::IMPORTER_VERSION).as_bytes());
    for p in &res.packages {
        let sum = p
            .checksum
            .as_ref()
            .map(|(k, v)| format!("{k}:{v}"))
            .unwrap_or_default();
        h.update(format!("{} {sum}\n", p.nevra()).as_bytes());
    }
    for (src, dest) in &plan.add_files {
        let data = std::fs::read(src)
            .map_err(|e| ComposeError::Other(format!("add-files: {}: {e}", src.display())))?;
        h.update(dest.as_bytes());
        h.update(&data);
    }
    // The other files the treefile names.
    let mut files: Vec<(&str, &Path)> = Vec::new();
    if let Some(p) = &plan.postprocess_script {
        files.push(("postprocess-script", p));
    }
    for (key, check) in [
        ("check-passwd", &plan.check_passwd),
        ("check-groups", &plan.check_groups),
    ] {
        if let crate::plan::AccountCheck::File(p) = check {
            files.push((key, p));
        }
    }
    for (key, path) in files {
        let data = std::fs::read(path)
            .map_err(|e| ComposeError::Other(format!("{key}: {}: {e}", path.display())))?;
        h.update(format!("\n{key} {}\n", data.len()).as_bytes());
        h.update(&data);
    }
    for l in layers {
        h.update(format!("\nlayer {l}\n").as_bytes());
    }
    Ok(h.finish().to_hex())
}

/// The content checksums of the treefile's `ostree-layers` and
/// `ostree-override-layers` (refs in the repository), in order; a missing ref is an
/// error naming it.
pub fn layer_checksums(repo: &Repo, plan: &ComposePlan) -> Result<Vec<String>, ComposeError> {
    let mut out = Vec::new();
    for (key, refs) in [
        ("ostree-layers", &plan.ostree_layers),
        ("ostree-override-layers", &plan.ostree_override_layers),
    ] {
        for r in refs {
            let commit = repo.read_ref(r)?.ok_or_else(|| {
                ComposeError::Other(format!(
                    "{key}: ref {r:?} is not in {}",
                    repo.path().display()
                ))
            })?;
            let c = repo.read_commit(&commit)?;
            out.push(format!(
                "{key} {r} {}",
                content_checksum(&c.root_tree, &c.root_meta)
            ));
        }
    }
    Ok(out)
}

/// Overlay the `ostree-layers` (a file another layer or a package has with different
/// content is an error) and then the `ostree-override-layers` (their files win) onto
/// the packages' tree, as rpm-ostree does before the scriptlets.
fn layers(
    repo: &Repo,
    tree: &mut arbor_repo::tree::MutableTree,
    plan: &ComposePlan,
) -> Result<(), ComposeError> {
    for (key, refs, override_) in [
        ("ostree-layers", &plan.ostree_layers, false),
        ("ostree-override-layers", &plan.ostree_override_layers, true),
    ] {
        for r in refs {
            let commit = repo.read_ref(r)?.ok_or_else(|| {
                ComposeError::Other(format!(
                    "{key}: ref {r:?} is not in {}",
                    repo.path().display()
                ))
            })?;
            let c = repo.read_commit(&commit)?;
            let mut layer = repo.load_mtree(&c.root_tree, &c.root_meta)?;
            // A layer's /etc is the tree's /usr/etc.
            if let Some(etc) = layer.dirs.remove("etc") {
                let usr = layer.dirs.entry("usr".into()).or_default();
                usr.dirs.entry("etc".into()).or_insert(etc);
            }
            merge_layer(tree, &layer, override_, "", key, r)?;
        }
    }
    Ok(())
}

fn merge_layer(
    dest: &mut arbor_repo::tree::MutableTree,
    src: &arbor_repo::tree::MutableTree,
    override_: bool,
    path: &str,
    key: &str,
    layer: &str,
) -> Result<(), ComposeError> {
    for (name, c) in &src.files {
        let p = format!("{path}/{name}");
        if dest.dirs.contains_key(name) {
            return Err(ComposeError::Other(format!(
                "{key} {layer}: {p} is a file in the layer but a directory in the tree"
            )));
        }
        match dest.files.get(name) {
            Some(old) if old != c && !override_ => {
                return Err(ComposeError::Other(format!(
                    "{key} {layer}: {p} conflicts with the tree (different content; use \
                     ostree-override-layers to replace it)"
                )))
            }
            _ => {
                dest.files.insert(name.clone(), *c);
            }
        }
    }
    for (name, d) in &src.dirs {
        let p = format!("{path}/{name}");
        if dest.files.contains_key(name) {
            if override_ {
                dest.files.remove(name);
            } else {
                return Err(ComposeError::Other(format!(
                    "{key} {layer}: {p} is a directory in the layer but a file in the tree"
                )));
            }
        }
        let child = dest
            .dirs
            .entry(name.clone())
            .or_insert_with(|| arbor_repo::tree::MutableTree::new(d.meta.clone()));
        merge_layer(child, d, override_, &p, key, layer)?;
    }
    Ok(())
}

/// rpm-ostree's automatic versioning: `prefix`, then `prefix.1`, `prefix.2`, … while
/// the previous version carries the same prefix. A prefix with `<date:FORMAT>` tags
/// (strftime, UTC, at the commit's timestamp) always ends in a counter that starts at 0
/// and restarts when the substituted prefix changes: `39.<date:%Y%m%d>` gives
/// `39.20261126.0`, `39.20261126.1`, then `39.20261127.0`.
pub fn next_version(
    prefix: &str,
    suffix: char,
    previous: Option<&str>,
    timestamp: u64,
) -> Result<String, ComposeError> {
    // rpm-ostree's rule: after `prefix.`, the counter is the number its leading digits
    // spell (0 when there are none), plus one.
    let next = |p: &str| -> Option<String> {
        let prev = previous?.strip_prefix(p)?;
        if prev.is_empty() {
            return Some(format!("{p}{suffix}1"));
        }
        let digits = prev.strip_prefix(suffix)?;
        let n: u64 = digits
            .split(|c: char| !c.is_ascii_digit())
            .next()
            .and_then(|d| d.parse().ok())
            .unwrap_or(0);
        Some(format!("{p}{suffix}{}", n.saturating_add(1)))
    };
    if !prefix.contains("<date:") {
        return Ok(next(prefix).unwrap_or_else(|| prefix.to_string()));
    }
    let mut dated = String::new();
    let mut rest = prefix;
    while let Some(i) = rest.find("<date:") {
        dated.push_str(&rest[..i]);
        let after = &rest[i + "<date:".len()..];
        let end = after.find('>').ok_or_else(|| {
            ComposeError::Other(format!(
                "automatic-version-prefix {prefix:?}: unterminated <date:"
            ))
        })?;
        dated.push_str(
            &crate::time::strftime(&after[..end], timestamp).map_err(|e| {
                ComposeError::Other(format!("automatic-version-prefix {prefix:?}: {e}"))
            })?,
        );
        rest = &after[end + 1..];
    }
    dated.push_str(rest);
    Ok(next(&dated).unwrap_or_else(|| format!("{dated}{suffix}0")))
}

/// JSON (`add-commit-metadata`) to GVariant.
fn json_to_variant(v: &Json) -> Value {
    match v {
        Json::Bool(b) => Value::Bool(*b),
        Json::Number(n) => match (n.as_u64(), n.as_i64()) {
            (Some(u), _) => Value::Uint64(u),
            (_, Some(i)) => Value::Int64(i),
            _ => Value::Double(n.as_f64().unwrap_or(0.0)),
        },
        Json::String(s) => Value::str(s.clone()),
        Json::Array(items) if items.iter().all(Json::is_string) => {
            Value::Array(Type::String, items.iter().map(json_to_variant).collect())
        }
        Json::Array(items) => Value::Array(
            Type::Variant,
            items
                .iter()
                .map(|i| Value::Variant(Box::new(json_to_variant(i))))
                .collect(),
        ),
        Json::Object(m) => VarDict(
            m.iter()
                .map(|(k, v)| (k.clone(), json_to_variant(v)))
                .collect(),
        )
        .to_value(),
        Json::Null => Value::Maybe(Type::String, None),
    }
}

fn lap(timings: &mut BTreeMap<String, f64>, name: &str, t0: &mut Instant) {
    timings.insert(name.to_string(), t0.elapsed().as_secs_f64());
    *t0 = Instant::now();
}

/// Run the compose. With unchanged inputs (and no `force_nocache`) nothing is written.
pub fn compose(
    repo: &Repo,
    plan: &ComposePlan,
    opts: &ComposeOpts,
    progress: &dyn Progress,
) -> Result<ComposeOutcome, ComposeError> {
    let mut timings = BTreeMap::new();
    let mut t0 = Instant::now();
    let http = Http::default();
    progress.start("resolve", None);
    let resolution = resolve::resolve(plan, &http, opts.lockfile.as_ref());
    if let Ok(r) = &resolution {
        progress.inc(r.packages.len() as u64);
    }
    progress.end(resolution.is_ok());
    let resolution = resolution?;
    lap(&mut timings, "resolve", &mut t0);
    for (pkg, _) in &plan.remove_from_packages {
        // Not an error (rpm-ostree ignores it too): a shared manifest may name packages
        // only some variants install.
        if !resolution.packages.iter().any(|p| p.name == *pkg) {
            tracing::warn!("remove-from-packages: package {pkg:?} is not installed");
        }
    }
    let inputhash = input_hash(plan, &resolution, &layer_checksums(repo, plan)?)?;
    let parent = repo.read_ref(&plan.ref_)?;
    let parent_commit = parent.map(|p| repo.read_commit(&p)).transpose()?;
    let previous_hash = parent_commit
        .as_ref()
        .and_then(|c| c.metadata.get("rpmostree.inputhash"))
        .and_then(Value::as_str)
        .map(str::to_string);
    let unchanged = previous_hash.as_deref() == Some(inputhash.as_str());
    let timestamp = opts.timestamp.unwrap_or_else(crate::time::now_secs);
    let mut outcome = ComposeOutcome {
        resolution,
        inputhash: inputhash.clone(),
        commit: None,
        parent,
        version: None,
        unchanged,
        cache_hits: 0,
        imported: 0,
        rpmdb_reused: false,
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
    };
    if unchanged && !opts.force_nocache && !opts.dry_run {
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
    let cachedir = opts
        .cachedir
        .clone()
        .unwrap_or_else(|| repo.path().join("extensions/arbor/cache"));
    let rpms = rpmmd::fetch_rpms(
        &http,
        &outcome.resolution.repos,
        &outcome.resolution.packages,
        &cachedir,
        progress,
    )?;
    lap(&mut timings, "fetch", &mut t0);
    let script_opts = ScriptOpts {
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

    let (users, labels) = crate::bootstrap::bootstrap(repo, &rpms, &cachedir, plan.selinux)?;
    let mut jobs = Vec::with_capacity(rpms.len());
    for (r, p) in rpms.iter().zip(&outcome.resolution.packages) {
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
            },
            Checksum::from_hex(&r.sha256).ok(),
        ));
    }
    let prev_db = assemble::PreviousDb {
        parent: parent.as_ref(),
        cachedir: &cachedir,
    };
    // The rpmdb needs only the RPM files: `rpm --justdb` runs while they are imported.
    progress.start("import", Some(jobs.len() as u64));
    let (imported, rpmdb) = std::thread::scope(|s| {
        let db = s.spawn(|| {
            let t = Instant::now();
            let r = assemble::build_rpmdb(repo, &rpms, Some(prev_db));
            (r, t.elapsed().as_secs_f64())
        });
        let imported = import::import_rpms_known(repo, &jobs, &users, Some(&cachedir), progress);
        let db = db.join().unwrap_or_else(|p| std::panic::resume_unwind(p));
        (imported, db)
    });
    progress.end(imported.is_ok() && rpmdb.0.is_ok());
    let imported = imported?;
    let (rpmdb, rpmdb_secs) = rpmdb;
    let rpmdb = rpmdb?;
    outcome.rpmdb_reused = rpmdb.reused;
    let rpmdb = rpmdb.commit(repo, &rpms, &cachedir)?;
    timings.insert("rpmdb-during-import".into(), rpmdb_secs);
    lap(&mut timings, "import", &mut t0);
    for (_, hit) in &imported {
        if *hit {
            outcome.cache_hits += 1;
        } else {
            outcome.imported += 1;
        }
    }
    let packages: Vec<_> = imported.into_iter().map(|(p, _)| p).collect();
    let mut tree = union::union(&packages)?;
    layers(repo, &mut tree, plan)?;
    lap(&mut timings, "union", &mut t0);

    let version = plan
        .automatic_version_prefix
        .as_deref()
        .map(|prefix| {
            next_version(
                prefix,
                plan.automatic_version_suffix,
                parent_commit.as_ref().and_then(|c| c.version()),
                timestamp,
            )
        })
        .transpose()?;
    // Scriptlets run on the packages' tree with the previous accounts in place.
    assemble::seed_accounts(repo, &mut tree, plan, parent.as_ref())?;
    let inputs: Vec<PackageInput> = rpms
        .iter()
        .zip(&packages)
        .map(|(r, p)| PackageInput {
            nevra: r.nevra.clone(),
            rpm: r.path.clone(),
            deferred: p.deferred.clone(),
        })
        .collect();
    let report = scripts::run_package_scripts(
        repo,
        &mut tree,
        plan,
        &inputs,
        &script_opts,
        progress,
        false,
    )?;
    outcome.scriptlets = report.ran;
    outcome.skipped_scriptlets = report.skipped;
    for (step, secs) in report.timings {
        timings.insert(format!("scriptlets-{step}"), secs);
    }
    lap(&mut timings, "scriptlets", &mut t0);
    let mut tree = assemble::assemble(repo, tree, plan, rpmdb, version.as_deref())?;
    let post = scripts::run_postprocess(repo, &mut tree, plan, &script_opts, progress)?;
    outcome.scriptlets.extend(post);
    lap(&mut timings, "postprocess", &mut t0);
    let kernel = assemble::finalize(repo, &mut tree, plan, parent.as_ref())?;
    lap(&mut timings, "assemble", &mut t0);
    if let Some(kver) = &kernel {
        if !plan.no_initramfs {
            let ran = scripts::run_initramfs(repo, &mut tree, plan, kver, &script_opts, progress)?;
            outcome.scriptlets.push(ran);
            lap(&mut timings, "initramfs", &mut t0);
        }
        assemble::place_kernel(repo, &mut tree, plan, kver)?;
    }
    if plan.selinux {
        // The tree's own policy, as the scriptlets left it, labels everything.
        progress.start("selinux", None);
        let labeled = (|| -> Result<u64, ComposeError> {
            let policy = crate::relabel::policy_of(repo, &tree)
                .map_err(|e| ComposeError::Other(format!("selinux: {e}")))?;
            let fresh;
            let mut imported = std::collections::HashSet::new();
            let l = match &labels {
                Some(l) if l.digest == policy.digest() => {
                    // What the import labeled with this policy, at the same path.
                    for p in &packages {
                        imported.extend(p.tree.files_recursive());
                    }
                    l.as_ref()
                }
                _ => {
                    fresh = crate::bootstrap::open_labeler(&policy, &cachedir)?;
                    &fresh
                }
            };
            crate::relabel::relabel(repo, &mut tree, l, &imported)
                .map_err(|e| ComposeError::Other(e.to_string()))
        })();
        progress.end(labeled.is_ok());
        outcome.relabeled = labeled?;
        lap(&mut timings, "selinux", &mut t0);
    }

    let stats = CommitStats::default();
    let (root_tree, root_meta) = repo.write_mtree(&tree, &stats)?;
    let mut md = VarDict::new();
    for (k, v) in &plan.add_commit_metadata {
        md.insert(k.clone(), json_to_variant(v));
    }
    if let Some(v) = &version {
        md.set("version", Value::str(v.clone()));
    }
    md.set("rpmostree.inputhash", Value::str(inputhash));
    let pkglist = outcome
        .resolution
        .packages
        .iter()
        .map(|p| {
            Value::Tuple(vec![
                Value::str(p.name.clone()),
                Value::str(p.epoch.to_string()),
                Value::str(p.version.clone()),
                Value::str(p.release.clone()),
                Value::str(p.arch.clone()),
            ])
        })
        .collect();
    md.set(
        "rpmostree.rpmdb.pkglist",
        Value::Array(Type::parse("(sssss)").expect("static type"), pkglist),
    );
    let repos = outcome
        .resolution
        .repos
        .iter()
        .map(|r| {
            let ts = r.repomd.timestamp.unwrap_or(0);
            VarDict(vec![
                ("id".into(), Value::str(r.config.id.clone())),
                ("timestamp".into(), Value::Uint64(ts)),
            ])
            .to_value()
        })
        .collect();
    // repo-metadata: inline (in the checksummed commit), detached (in .commitmeta, out
    // of the checksum), or left out.
    let repos = Value::Array(Type::parse("a{sv}").expect("static type"), repos);
    let mut detached = VarDict::new();
    match plan.repo_metadata {
        MetadataPlacement::Inline => md.set("rpmostree.rpmmd-repos", repos),
        MetadataPlacement::Detached => detached.set("rpmostree.rpmmd-repos", repos),
        MetadataPlacement::Disabled => {}
    }
    if !plan.container_cmd.is_empty() {
        md.set(
            "ostree.container-cmd",
            Value::Array(
                Type::String,
                plan.container_cmd
                    .iter()
                    .map(|c| Value::str(c.clone()))
                    .collect(),
            ),
        );
    }
    if !plan.initramfs_args.is_empty() {
        md.set(
            "rpmostree.initramfs-args",
            Value::Array(
                Type::String,
                plan.initramfs_args
                    .iter()
                    .map(|c| Value::str(c.clone()))
                    .collect(),
            ),
        );
    }
    if let Some(kver) = &kernel {
        md.set("ostree.bootable", Value::Bool(true));
        md.set("ostree.linux", Value::str(kver.clone()));
    }
    md.set(
        "ostree.ref-binding",
        Value::Array(Type::String, vec![Value::str(plan.ref_.clone())]),
    );
    let commit = Commit {
        metadata: md,
        parent,
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
    if !opts.no_ref {
        repo.write_ref(&plan.ref_, &checksum)?;
    }
    outcome.content_checksum = Some(content_checksum(&root_tree, &root_meta));
    if let Some(old) = parent_commit
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
    outcome.content_total = tree.files_recursive().len() as u64;
    // Every FILE object of this compose (package contents, tmpfiles.d, rpmdb, added
    // files) went through `repo`.
    let files_after = repo.files_written();
    outcome.content_written = files_after.0 - files_before.0;
    outcome.content_bytes_written = files_after.1 - files_before.1;
    outcome.metadata_total = g(&stats.metadata_total);
    outcome.metadata_written = g(&stats.metadata_written);
    outcome.commit = Some(checksum);
    outcome.version = version;
    outcome.kernel = kernel;
    outcome.timings = timings;
    Ok(outcome)
}

/// rpm-ostree's `--write-composejson-to` object (plus arbor's own keys).
pub fn compose_json(plan: &ComposePlan, o: &ComposeOutcome) -> Json {
    let mut v = serde_json::json!({
        "ref": plan.ref_,
        "ostree-commit": o.commit.map(|c| c.to_hex()),
        "ostree-content-checksum": o.content_checksum,
        "ostree-version": o.version,
        // A string, as rpm-ostree writes it (JSON has no 64-bit integers).
        "ostree-timestamp": crate::time::rfc3339(o.timestamp),
        "pkgdiff": o.pkgdiff.as_ref().map(pkgdiff_json),
        "rpm-ostree-inputhash": o.inputhash,
        "ostree-n-metadata-total": o.metadata_total,
        "ostree-n-metadata-written": o.metadata_written,
        "ostree-n-content-total": o.content_total,
        "ostree-n-content-written": o.content_written,
        "ostree-n-cache-hits": o.cache_hits,
        "ostree-content-bytes-written": o.content_bytes_written,
        "arbor-packages": o.resolution.packages.len(),
        "arbor-packages-imported": o.imported,
        "arbor-import-cache-hits": o.cache_hits,
        "arbor-rpmdb-reused": o.rpmdb_reused,
        "arbor-relabeled": o.relabeled,
        "arbor-unchanged": o.unchanged,
        "arbor-kernel": o.kernel,
        "arbor-scriptlets": o.scriptlets,
        "arbor-skipped-scriptlets": o.skipped_scriptlets,
        "arbor-timings": o.timings,
    });
    // rpm-ostree leaves out what it does not have (no version, no parent to diff with).
    if let Some(obj) = v.as_object_mut() {
        obj.retain(|_, x| !x.is_null());
    }
    v
}

/// ostree's content checksum of a commit: SHA-256 of the root dirtree's and the root
/// dirmeta's checksums (raw bytes), which names the tree whatever the commit metadata.
pub fn content_checksum(root_tree: &Checksum, root_meta: &Checksum) -> String {
    let mut h = Hasher::new();
    h.update(&root_tree.0);
    h.update(&root_meta.0);
    h.finish().to_hex()
}

/// rpm-ostree's `pkgdiff` (`a(sua{sv})` as JSON): `[name, type, {PreviousPackage,
/// NewPackage: [name, evr, arch]}]`, type 0 added, 1 removed, 2 upgraded, 3 downgraded,
/// sorted by type, then name.
pub fn pkgdiff_json(d: &crate::rpmdb::PkgDiff) -> Json {
    use crate::rpmdb::Package;
    use serde_json::json;
    let pkg = |p: &Package| json!([p.name, p.evr(), p.arch]);
    let mut rows: Vec<(u32, &str, Json)> = Vec::new();
    for p in &d.added {
        rows.push((0, &p.name, json!({"NewPackage": pkg(p)})));
    }
    for p in &d.removed {
        rows.push((1, &p.name, json!({"PreviousPackage": pkg(p)})));
    }
    for (kind, pairs) in [(2, &d.upgraded), (3, &d.downgraded)] {
        for (o, n) in pairs {
            rows.push((
                kind,
                &o.name,
                json!({"PreviousPackage": pkg(o), "NewPackage": pkg(n)}),
            ));
        }
    }
    rows.sort_by(|a, b| (a.0, a.1).cmp(&(b.0, b.1)));
    Json::Array(
        rows.into_iter()
            .map(|(kind, name, v)| json!([name, kind, v]))
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions() {
        let v = |p: &str, prev: Option<&str>| next_version(p, '.', prev, 1_795_000_000).unwrap();
        assert_eq!(v("22", None), "22");
        assert_eq!(v("22", Some("22")), "22.1");
        assert_eq!(v("22", Some("22.1")), "22.2");
        assert_eq!(v("23", Some("22.7")), "23");
        // rpm-ostree's own cases: the counter's leading digits count.
        assert_eq!(v("10", Some("10.1.5")), "10.2");
        assert_eq!(v("10.1", Some("10.1.2x")), "10.1.3");
        assert_eq!(v("10", Some("10.x")), "10.1");
        assert_eq!(v("10", Some("100")), "10");
        // 1_795_000_000 is 2026-11-18 (UTC).
        assert_eq!(v("39.<date:%Y%m%d>", None), "39.20261118.0");
        assert_eq!(
            v("39.<date:%Y%m%d>", Some("39.20261118.0")),
            "39.20261118.1"
        );
        assert_eq!(
            v("39.<date:%Y%m%d>", Some("39.20261118.7")),
            "39.20261118.8"
        );
        assert_eq!(
            v("39.<date:%Y%m%d>", Some("39.20261117.4")),
            "39.20261118.0"
        );
        assert_eq!(v("<date:%Y>.<date:%j>", None), "2026.322.0");
        assert!(next_version("x<date:%Y", '.', None, 0).is_err());
        assert!(next_version("<date:%Q>", '.', None, 0).is_err());
        // automatic-version-suffix
        assert_eq!(next_version("22", '-', Some("22-4"), 0).unwrap(), "22-5");
        assert_eq!(next_version("22", '-', Some("22"), 0).unwrap(), "22-1");
        assert_eq!(next_version("22", '-', Some("22.4"), 0).unwrap(), "22");
    }
}
