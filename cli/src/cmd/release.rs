//! `arbor release`: the whole pipeline in one command: compose the treefile, generate
//! the static deltas the policy asks for, publish to the destination. Every step skips
//! what is already done, so a rerun with unchanged inputs does nothing and says so.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context, Result};
use arbor_compose::compose;
use arbor_compose::plan::ComposePlan;
use arbor_compose::rpmdb::{self, PkgDiff};
use arbor_delta::policy::{apply_policy, PolicyOutcome};
use arbor_publish::{Location, TransferOpts};
use arbor_repo::{Checksum, Repo};
use clap::Args;
use serde::Serialize;

use super::compose::ComposeInputs;
use super::db::{diff_text, PkgDiffJson};
use super::delta::{DeltaJson, DeltaTuning};
use super::publish::{report_line, S3Args, TransferJson};
use crate::progress::{self, Bar};
use crate::sign::Signed;

/// Exit status of `--unchanged-exit-77` when nothing was new.
const EXIT_UNCHANGED: u8 = 77;

#[derive(Args)]
#[command(
    after_help = "Exit status: 0 success (also when nothing changed), 77 nothing \
                        changed and --unchanged-exit-77 was given, 1 error, 2 usage error.\n\n\
                        Example:\n  arbor release treefiles/demo.yaml --repo build/repo \
                        --to file:///srv/ostree --delta-depth 2 --empty-delta"
)]
pub struct ReleaseOpts {
    /// Local archive repository to compose into (created when missing). It keeps the
    /// history deltas are made from, so keep it between releases.
    #[arg(long, value_name = "PATH", env = "ARBOR_REPO")]
    repo: PathBuf,
    /// Destination: file:///path (or a plain path), s3://bucket/prefix, or memory://.
    #[arg(long, value_name = "URL")]
    to: String,
    /// Static deltas to the new head from this many previous commits of the ref
    /// (0: none).
    #[arg(long, value_name = "N", default_value_t = 1)]
    delta_depth: usize,
    /// Also generate a from-scratch delta to the head (for first installs).
    #[arg(long)]
    empty_delta: bool,
    #[command(flatten)]
    inputs: ComposeInputs,
    /// Exit with status 77 (instead of 0) when there was nothing new to compose,
    /// generate or publish, as `rpm-ostree compose tree --unchanged-exit-77` does.
    #[arg(long)]
    unchanged_exit_77: bool,
    #[command(flatten)]
    s3: S3Args,
    /// Requests in flight at once while publishing.
    #[arg(long, value_name = "N", default_value_t = 16)]
    jobs: usize,
    #[command(flatten)]
    tuning: DeltaTuning,
    /// Print one JSON result object on stdout (commit, version, package changes, objects
    /// and bytes written, deltas, what was published, seconds per phase) instead of the
    /// commit checksum.
    #[arg(long)]
    json: bool,
    /// Publish even if a published ref would move back to an older commit that does not
    /// descend from it (a deliberate rollback).
    #[arg(long)]
    force: bool,
    /// Sign the commit (before its deltas are made: they embed its signatures; a head
    /// composed earlier gets the signatures it lacks) and the published summary.
    #[command(flatten)]
    sign: crate::sign::SignArgs,
    /// Refuse to publish commits without a valid signature by a key of this keyring
    /// (repeatable); checked before anything is uploaded.
    #[arg(long = "require-signatures", value_name = "KEYRING")]
    require_signatures: Vec<std::path::PathBuf>,
    /// Also publish the head as a bootable OCI image (ostree-container, what bootc and
    /// rpm-ostree deploy), after the repository: `docker://REGISTRY/NAME:TAG`,
    /// `oci:DIR[:TAG]` (air-gapped) or `oci-archive:FILE[:TAG]`; repeatable. Skipped when
    /// the image there already carries the head.
    #[arg(long, value_name = "DEST")]
    container: Vec<String>,
    /// Package layers of those images (see `arbor container encapsulate --max-layers`).
    #[arg(long, value_name = "N", default_value_t = arbor_container::plan::DEFAULT_MAX_LAYERS,
          value_parser = clap::value_parser!(u32).range(1..=500))]
    container_max_layers: u32,
    /// Talk plain HTTP to the registries (loopback registries always are).
    #[arg(long)]
    insecure_registry: bool,
    /// The treefile (YAML for .yaml/.yml, JSON otherwise).
    treefile: PathBuf,
}

/// `arbor release --json`: what the run composed, generated, signed, fetched and
/// published.
#[derive(Serialize)]
struct ReleaseJson<'a> {
    #[serde(rename = "ref")]
    ref_name: &'a str,
    /// The ref's head after the run (hex).
    commit: String,
    /// Whether this run composed a new commit.
    new_commit: bool,
    /// The parent the compose read (hex); null when there was none.
    parent: Option<String>,
    /// The head's version (null without one).
    version: Option<&'a str>,
    /// Whether anything was composed, generated, signed or published.
    changed: bool,
    packages: PackagesJson<'a>,
    compose: ComposeJson<'a>,
    /// The deltas generated now.
    deltas: Vec<DeltaJson>,
    /// The signatures added (null without --sign-with).
    signed: Option<&'a Signed>,
    fetched: FetchedJson,
    /// Deltas the policy wants that existed already.
    deltas_existing: &'a [String],
    published: TransferJson<'a>,
    /// The destination's URL.
    url: &'a str,
    /// The images published with `--container` (or found up to date), in order.
    containers: &'a [super::container::ContainerRelease],
    timings: ReleaseTimings,
}

/// `packages` of [`ReleaseJson`]: how many the head holds and, when a commit was
/// composed (and its parent has a package list), what changed.
#[derive(Serialize)]
struct PackagesJson<'a> {
    total: usize,
    #[serde(flatten)]
    changes: Option<PkgDiffJson<'a>>,
}

/// `compose` of [`ReleaseJson`]: what the compose imported and wrote.
#[derive(Serialize)]
struct ComposeJson<'a> {
    imported: usize,
    import_cache_hits: usize,
    content_objects_written: u64,
    content_bytes_written: u64,
    /// Dirtree, dirmeta and commit objects.
    metadata_objects_written: u64,
    /// Seconds per compose phase.
    timings: &'a BTreeMap<String, f64>,
    /// What the shared package cache (`--cachedir URL`) gave and took; absent without.
    #[serde(skip_serializing_if = "Option::is_none")]
    shared_cache: Option<&'a arbor_compose::shared::SharedCounts>,
}

/// `fetched` of [`ReleaseJson`]: what came from the destination (empty when the
/// repository held the published head). Each key is present only when that fetch ran.
#[derive(Serialize, Default)]
struct FetchedJson {
    /// The published head, fetched as the parent (hex).
    #[serde(skip_serializing_if = "Option::is_none")]
    head: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    commits: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    objects: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    bytes: Option<u64>,
    /// The history of the published head's parents older deltas start from.
    #[serde(skip_serializing_if = "Option::is_none")]
    parent_objects: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    parent_bytes: Option<u64>,
    /// Old file versions to bsdiff against.
    #[serde(skip_serializing_if = "Option::is_none")]
    bsdiff_objects: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    bsdiff_bytes: Option<u64>,
}

/// `timings` of [`ReleaseJson`]: seconds per step; `pull` and `sign` only when they ran.
#[derive(Serialize, Default)]
struct ReleaseTimings {
    #[serde(skip_serializing_if = "Option::is_none")]
    pull: Option<f64>,
    compose: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    sign: Option<f64>,
    delta: f64,
    publish: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    container: Option<f64>,
    total: f64,
}

fn open_or_init(path: &std::path::Path) -> Result<Repo> {
    let fresh = !path.join("config").exists()
        && match std::fs::read_dir(path) {
            Ok(mut d) => d.next().is_none(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => true,
            Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
        };
    if fresh {
        progress::say(&format!(
            "release: creating repository {} (archive mode)",
            path.display()
        ));
        // A runner's --repo may name a directory whose parents do not exist yet.
        std::fs::create_dir_all(path).with_context(|| format!("creating {}", path.display()))?;
        return Repo::init(path).with_context(|| format!("initializing {}", path.display()));
    }
    Repo::open(path).with_context(|| format!("opening repository {}", path.display()))
}

fn step(name: &str) -> Instant {
    progress::step(name);
    Instant::now()
}

impl ReleaseOpts {
    pub fn run(self) -> Result<ExitCode> {
        let started = Instant::now();
        let plan = ComposePlan::load(&self.treefile)?;
        // Check everything that can be checked before the long work starts.
        let dest = Location::parse_destination(&self.to, &self.s3.settings())
            .with_context(|| format!("--to {}", self.to))?;
        for c in &self.container {
            arbor_container::ImageRef::parse(c).with_context(|| format!("--container {c}"))?;
        }
        let delta_opts = self.tuning.lib_opts()?;
        let mut opts = self.inputs.opts(false, &self.s3.settings())?;
        let signers = self.sign.open()?;
        let required = super::publish::required_keys(&self.require_signatures)?;
        opts.no_ref = signers.is_some();
        arbor_publish::preflight(&dest)
            .with_context(|| format!("checking the destination {} before composing", dest.url))?;
        let repo = open_or_init(&self.repo)?;
        let mut timings = ReleaseTimings::default();

        // 0. a runner that starts empty continues the published history: the published
        // head (and the parents deltas start from) without content, plus the files the
        // compose reads from its parent (the accounts).
        let mut fetched = FetchedJson::default();
        // The published head this run fetched (the repository did not hold it).
        let mut pulled_head: Option<Checksum> = None;
        let published_head = arbor_publish::published_head(&dest, &plan.ref_)
            .with_context(|| format!("reading ref {} at {}", plan.ref_, dest.url))?;
        if let Some(published) = published_head {
            if !repo.has_object(&published, arbor_repo::ObjectType::Commit) {
                let t = step("pull");
                // The head only: enough to decide "nothing new" and to be the parent;
                // the parents older deltas start from come after the compose, if needed.
                let popts = arbor_publish::PullOpts {
                    depth: 0,
                    write_refs: true,
                    metadata_only: true,
                    paths: [
                        "usr/etc/passwd",
                        "usr/etc/group",
                        "usr/lib/passwd",
                        "usr/lib/group",
                    ]
                    .map(String::from)
                    .to_vec(),
                    jobs: self.jobs.max(1),
                };
                let r = arbor_publish::pull(
                    &dest,
                    &repo,
                    std::slice::from_ref(&plan.ref_),
                    &popts,
                    &Bar::new(),
                )
                .with_context(|| {
                    format!(
                        "fetching the published history of {} from {}",
                        plan.ref_, dest.url
                    )
                })?;
                progress::say(&format!(
                    "release: {} continues the history published at {}: fetched {published} ({} objects, {} bytes: its metadata and the accounts files only)",
                    plan.ref_,
                    dest.url,
                    r.objects_fetched,
                    r.bytes_fetched
                ));
                fetched.head = Some(published.to_hex());
                fetched.commits = Some(r.commits_fetched);
                fetched.objects = Some(r.objects_fetched);
                fetched.bytes = Some(r.bytes_fetched);
                timings.pull = Some(t.elapsed().as_secs_f64());
                pulled_head = Some(published);
            }
        }

        // A local head the destination never took — this runner's release was refused
        // because another landed first — yields to the published one, as the refusal
        // said ("rerun to continue from …"). A local head ahead of the published one
        // (composed on it, not yet published) is kept and published now.
        if let (Some(published), Some(local)) = (published_head, repo.read_ref(&plan.ref_)?) {
            if local != published
                && !arbor_publish::descends(&repo, &published, &local)
                && !arbor_publish::descends(&repo, &local, &published)
            {
                progress::say(&format!(
                    "release: local {} at {local} was never published ({} holds {published}, \
                     which does not descend from it); continuing from {published}",
                    plan.ref_, dest.url
                ));
                repo.write_ref(&plan.ref_, &published)?;
            }
        }

        // 1. compose
        let t = step("compose");
        let out = compose::compose(&repo, &plan, &opts, &self.inputs.http(), &Bar::new())
            .with_context(|| format!("composing {}", self.treefile.display()))?;
        timings.compose = t.elapsed().as_secs_f64();
        let mut signed = None;
        if let Some(s) = &signers {
            // The new commit, or the head an earlier compose made: signed before deltas.
            let target = match out.commit {
                Some(c) => c,
                None => repo
                    .read_ref(&plan.ref_)?
                    .with_context(|| format!("ref {} is missing after composing", plan.ref_))?,
            };
            let t = step("sign");
            signed = Some(crate::sign::sign_commit(
                &repo,
                &target,
                s,
                Some(&plan.ref_),
            )?);
            if out.commit.is_some() {
                repo.write_ref(&plan.ref_, &target)?;
            }
            timings.sign = Some(t.elapsed().as_secs_f64());
        }
        let head = repo
            .read_ref(&plan.ref_)?
            .with_context(|| format!("ref {} is missing after composing", plan.ref_))?;
        let head_commit = repo.read_commit(&head)?;
        let version = head_commit.version().map(str::to_string);
        let pkgdiff = match (out.commit, out.parent) {
            // compose read the parent; it may predate composes (no package list).
            (Some(_), Some(parent)) => {
                let old = rpmdb::pkglist(&repo.read_commit(&parent)?).ok();
                let new = rpmdb::pkglist(&head_commit)?;
                old.map(|old| rpmdb::diff(&old, &new))
            }
            (Some(_), _) => Some(PkgDiff {
                added: rpmdb::pkglist(&head_commit)?,
                ..PkgDiff::default()
            }),
            (None, _) => None,
        };
        match out.commit {
            Some(c) => progress::say(&format!(
                "compose: new commit {c}{} ({} packages, {} imported, {} from cache; {} new objects, {} bytes)",
                version.as_deref().map(|v| format!(" version {v}")).unwrap_or_default(),
                out.resolution.packages.len(),
                out.imported,
                out.cache_hits,
                out.content_written + out.metadata_written,
                out.content_bytes_written,
            )),
            None => progress::say(&format!(
                "compose: no apparent changes since {head}; nothing to commit"
            )),
        }
        if let Some(d) = &pkgdiff {
            if out.parent.is_some() {
                for line in diff_text(d).lines() {
                    progress::say(&format!("  {line}"));
                }
            }
        }

        // 2. deltas
        let t = step("delta");
        let mut generated = Vec::new();
        let mut existing = Vec::new();
        let head_partial = repo.is_partial(&head);
        if head_partial {
            // The published head, held for its history only: its deltas are the
            // destination's (made by the run that published it).
            progress::say(&format!(
                "delta: {head} is the published head (fetched without its content); no delta to make"
            ));
        }
        if self.delta_depth > 1 && !head_partial {
            if let Some(h) = pulled_head {
                // Deltas from the published head's parents: their history too.
                let r = arbor_publish::pull(
                    &dest,
                    &repo,
                    std::slice::from_ref(&plan.ref_),
                    &arbor_publish::PullOpts {
                        depth: self.delta_depth - 1,
                        metadata_only: true,
                        paths: Vec::new(),
                        jobs: self.jobs.max(1),
                        write_refs: false,
                    },
                    &Bar::new(),
                )
                .with_context(|| format!("fetching the history of {h} from {}", dest.url))?;
                fetched.parent_objects = Some(r.objects_fetched);
                fetched.parent_bytes = Some(r.bytes_fetched);
            }
        }
        if (self.delta_depth > 0 || self.empty_delta) && !head_partial {
            // Old versions of changed files, for bsdiff, where the from-commit was fetched
            // for its history only.
            let mut sources = Vec::new();
            for name in arbor_delta::policy::wanted(&repo, &plan.ref_, self.delta_depth, false)? {
                if name.from.is_some_and(|f| repo.is_partial(&f)) {
                    sources.extend(arbor_delta::policy::bsdiff_sources(&repo, &name)?);
                }
            }
            if !sources.is_empty() {
                let (n, bytes) =
                    arbor_publish::fetch_files(&dest, &repo, &sources, self.jobs, &Bar::new())
                        .with_context(|| format!("fetching old file versions from {}", dest.url))?;
                progress::say(&format!(
                    "delta: fetched {n} old file versions ({bytes} bytes) from {} to bsdiff against",
                    dest.url
                ));
                fetched.bsdiff_objects = Some(n);
                fetched.bsdiff_bytes = Some(bytes);
            }
            let outcomes = apply_policy(
                &repo,
                &plan.ref_,
                self.delta_depth,
                self.empty_delta,
                &delta_opts,
                &Bar::new(),
            )
            .with_context(|| format!("generating deltas for {}", plan.ref_))?;
            for o in outcomes {
                match o {
                    PolicyOutcome::Generated(r) => generated.push(r),
                    PolicyOutcome::Exists(n) => existing.push(n.to_string()),
                }
            }
            if !generated.is_empty() {
                arbor_delta::refresh(&repo)
                    .context("regenerating delta indexes and the local summary")?;
            }
        }
        timings.delta = t.elapsed().as_secs_f64();
        for r in &generated {
            progress::say(&format!(
                "delta: generated {} ({} parts, {} bytes, {} fallbacks)",
                r.name,
                r.parts.len(),
                r.part_bytes(),
                r.fallbacks.len()
            ));
        }
        if generated.is_empty() && !existing.is_empty() {
            progress::say(&format!(
                "delta: all {} wanted deltas exist",
                existing.len()
            ));
        }

        // 3. publish
        let t = step("publish");
        let topts = TransferOpts {
            jobs: self.jobs.max(1),
            depth: None,
            force: self.force,
            signing: crate::sign::PublishSigning::boxed(signers.clone(), required),
            allow_unsigned_summary: true,
            require_descent: true,
        };
        let report = arbor_publish::publish(
            &repo,
            &dest,
            std::slice::from_ref(&plan.ref_),
            &topts,
            &Bar::new(),
        )
        .with_context(|| {
            format!(
                "publishing {} to {} (clients still see the previous state; rerun to complete)",
                plan.ref_, dest.url
            )
        })?;
        timings.publish = t.elapsed().as_secs_f64();
        progress::say(&report_line("publish: published", &report, &dest.url));

        // 4. container images, from the published head.
        let mut containers = Vec::new();
        if !self.container.is_empty() {
            let t = step("container");
            // What each destination holds now (its image's commit), asked once.
            let existing: Vec<Option<(String, String)>> = self
                .container
                .iter()
                .map(|c| {
                    arbor_container::ImageRef::parse(c)
                        .ok()
                        .and_then(|r| super::container::commit_at(&r, self.insecure_registry))
                })
                .collect();
            let head_hex = head.to_hex();
            if repo.is_partial(&head) {
                // Only the head's metadata is local (a runner that started empty and had
                // nothing to compose): its content comes from the destination, if an image
                // needs writing.
                let needs = existing
                    .iter()
                    .any(|e| e.as_ref().is_none_or(|(c, _)| *c != head_hex));
                if needs {
                    arbor_publish::pull(
                        &dest,
                        &repo,
                        std::slice::from_ref(&plan.ref_),
                        &arbor_publish::PullOpts {
                            depth: 0,
                            metadata_only: false,
                            paths: Vec::new(),
                            jobs: self.jobs.max(1),
                            write_refs: false,
                        },
                        &Bar::new(),
                    )
                    .with_context(|| format!("fetching the content of {head} from {}", dest.url))?;
                }
            }
            let copts = arbor_container::EncapsulateOpts {
                max_layers: self.container_max_layers,
                ..Default::default()
            };
            for (c, existing) in self.container.iter().zip(&existing) {
                let r = if let Some((_, digest)) = existing.as_ref().filter(|(e, _)| *e == head_hex)
                {
                    super::container::ContainerRelease {
                        dest: c.clone(),
                        up_to_date: true,
                        manifest_digest: Some(digest.clone()),
                        image: None,
                    }
                } else {
                    super::container::release_image(
                        &repo,
                        &head,
                        c,
                        &copts,
                        self.insecure_registry,
                    )?
                };
                match &r.image {
                    None => progress::say(&format!("container: {c} already carries {head}")),
                    Some(img) => progress::say(&format!(
                        "container: {c}: {} ({} layers, {} bytes{})",
                        img.manifest_digest,
                        img.layers.len(),
                        img.image_size,
                        img.pushed
                            .as_ref()
                            .map(|p| format!(
                                "; {} blobs uploaded, {} already there",
                                p.blobs_uploaded, p.blobs_present
                            ))
                            .unwrap_or_default()
                    )),
                }
                containers.push(r);
            }
            timings.container = Some(t.elapsed().as_secs_f64());
        }

        let published_something = report.objects_uploaded > 0
            || report.deltas_uploaded > 0
            || !report.refs_updated.is_empty()
            || report.summary_written
            || report.config_written;
        let newly_signed = signed.as_ref().is_some_and(|s| !s.signed.is_empty());
        let changed = out.commit.is_some()
            || !generated.is_empty()
            || published_something
            || newly_signed
            || containers.iter().any(|c| !c.up_to_date);
        let total = started.elapsed().as_secs_f64();
        timings.total = total;
        if !changed {
            progress::say(&format!(
                "release: nothing new: {} is at {head}, its deltas exist and {} is up to date ({total:.2}s)",
                plan.ref_, dest.url
            ));
        } else {
            progress::say(&format!(
                "release: {} {head}{} published to {} in {total:.1}s",
                plan.ref_,
                version
                    .as_deref()
                    .map(|v| format!(" ({v})"))
                    .unwrap_or_default(),
                dest.url
            ));
        }
        if self.json {
            super::print_json(&ReleaseJson {
                ref_name: &plan.ref_,
                commit: head.to_hex(),
                new_commit: out.commit.is_some(),
                parent: out.parent.map(|p| p.to_hex()),
                version: version.as_deref(),
                changed,
                packages: PackagesJson {
                    total: out.resolution.packages.len(),
                    changes: pkgdiff.as_ref().map(PkgDiffJson::new),
                },
                compose: ComposeJson {
                    imported: out.imported,
                    import_cache_hits: out.cache_hits,
                    content_objects_written: out.content_written,
                    content_bytes_written: out.content_bytes_written,
                    metadata_objects_written: out.metadata_written,
                    timings: &out.timings,
                    shared_cache: out.shared_cache.as_ref(),
                },
                deltas: generated
                    .iter()
                    .map(|r| DeltaJson::new(r, &repo, None))
                    .collect(),
                signed: signed.as_ref(),
                fetched,
                deltas_existing: &existing,
                published: TransferJson::new(&report, &dest.url),
                url: &dest.url,
                containers: &containers,
                timings,
            })?;
        } else {
            println!("{head}");
        }
        if !changed && self.unchanged_exit_77 {
            return Ok(ExitCode::from(EXIT_UNCHANGED));
        }
        Ok(ExitCode::SUCCESS)
    }
}
