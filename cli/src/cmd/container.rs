//! `arbor container encapsulate|pull|diff`: a commit as a bootable OCI image in the
//! ostree-container format (what bootc, rpm-ostree and ostree-ext deploy), an image back
//! into a repository, and what an update between two images downloads.

use std::collections::BTreeMap;
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use arbor_container::encapsulate::{Compression, EncapsulateOpts, EncapsulateReport};
use arbor_container::layout::{self, OciDir};
use arbor_container::ImageRef;
use clap::{Args, Subcommand, ValueEnum};

use super::{print_json, RepoArg};

#[derive(Subcommand)]
pub enum ContainerCommand {
    /// Write a commit as an ostree-container image (bootc/rpm-ostree deploy it): the commit
    /// carried bit for bit, its content split into layers by package so an update changes
    /// only the layers of the packages that changed. The same commit gives the same
    /// manifest digest.
    Encapsulate(EncapsulateCmd),
    /// Import an ostree-container image into a repository: the same commit checksum, every
    /// blob, layer and object verified; optionally point a ref at it.
    Pull(PullCmd),
    /// What a client holding OLD downloads to get NEW: layers and bytes.
    Diff(DiffCmd),
}

impl ContainerCommand {
    pub fn run(self) -> Result<ExitCode> {
        match self {
            ContainerCommand::Encapsulate(o) => o.run(),
            ContainerCommand::Pull(o) => o.run(),
            ContainerCommand::Diff(o) => o.run(),
        }
    }
}

#[derive(Clone, Copy, ValueEnum)]
enum CompressionArg {
    /// gzip level 6 (what ostree-ext writes; every client reads it).
    Gzip,
    /// zstd level 3 (smaller and faster; needs a recent client).
    Zstd,
    /// Uncompressed tar.
    None,
}

#[derive(Args)]
pub struct EncapsulateCmd {
    #[command(flatten)]
    repo: RepoArg,
    /// Branch name or commit checksum (append `^` for the parent).
    rev: String,
    /// Where: `oci:DIR[:TAG]`, `oci-archive:FILE[:TAG]` or `docker://REGISTRY/NAME[:TAG]`
    /// (credentials: ARBOR_REGISTRY_USER/ARBOR_REGISTRY_PASSWORD, or the auth file of
    /// `podman login`/`docker login`).
    #[arg(long, value_name = "DEST")]
    to: String,
    /// At most this many package layers (the commit layer comes on top); 1 writes a
    /// single layer.
    #[arg(long, value_name = "N", default_value_t = arbor_container::plan::DEFAULT_MAX_LAYERS,
          value_parser = clap::value_parser!(u32).range(1..=500))]
    max_layers: u32,
    /// Layer compression.
    #[arg(long, value_enum, default_value = "gzip")]
    compression: CompressionArg,
    /// A label to add to the image config and manifest (repeatable).
    #[arg(long, value_name = "KEY=VALUE")]
    label: Vec<String>,
    /// The image architecture (GOARCH: amd64, arm64, …); default: the packages'.
    #[arg(long, value_name = "ARCH")]
    arch: Option<String>,
    /// Talk plain HTTP to the registry (loopback registries always are).
    #[arg(long)]
    insecure: bool,
    /// Print a JSON report (manifest digest, layers with sizes and packages) on stdout.
    #[arg(long)]
    json: bool,
}

impl EncapsulateCmd {
    fn run(self) -> Result<ExitCode> {
        let repo = self.repo.open()?;
        let commit = repo
            .resolve_rev(&self.rev)
            .with_context(|| format!("resolving {}", self.rev))?;
        let mut labels = BTreeMap::new();
        for l in &self.label {
            let Some((k, v)) = l.split_once('=') else {
                bail!("--label {l:?}: expected KEY=VALUE");
            };
            if k.is_empty() {
                bail!("--label {l:?}: empty key");
            }
            labels.insert(k.to_string(), v.to_string());
        }
        let opts = EncapsulateOpts {
            max_layers: self.max_layers,
            compression: match self.compression {
                CompressionArg::Gzip => Compression::Gzip(6),
                CompressionArg::Zstd => Compression::Zstd(3),
                CompressionArg::None => Compression::None,
            },
            labels,
            arch: self.arch.clone(),
            cmd: None,
        };
        let dest = ImageRef::parse(&self.to)?;
        let report = encapsulate_to(&repo, &commit, &dest, &opts, self.insecure)?;
        if self.json {
            print_json(&report)?;
        } else {
            println!("{}", report.manifest_digest);
        }
        eprintln!(
            "container: commit {} → {dest}: {} layers, {} bytes, manifest {} ({:.1}s)",
            report.commit,
            report.layers.len(),
            report.image_size,
            report.manifest_digest,
            report.seconds
        );
        Ok(ExitCode::SUCCESS)
    }
}

/// Encapsulate into any destination arbor writes.
pub fn encapsulate_to(
    repo: &arbor_repo::Repo,
    commit: &arbor_repo::Checksum,
    dest: &ImageRef,
    opts: &EncapsulateOpts,
    insecure: bool,
) -> Result<EncapsulateReport> {
    match dest {
        ImageRef::Oci { dir, tag } => {
            let oci = OciDir::create(dir)?;
            Ok(arbor_container::encapsulate(
                repo,
                commit,
                &oci,
                tag.as_deref(),
                opts,
            )?)
        }
        ImageRef::OciArchive { file, tag } => {
            let parent = file
                .parent()
                .filter(|p| !p.as_os_str().is_empty())
                .unwrap_or(std::path::Path::new("."));
            // Built beside the archive, then written into it atomically.
            let (tmp, oci) = scratch_layout(Some(parent))?;
            let report = arbor_container::encapsulate(repo, commit, &oci, tag.as_deref(), opts)?;
            layout::write_archive(tmp.path(), file)?;
            Ok(report)
        }
        ImageRef::Docker {
            registry,
            name,
            tag,
        } => {
            // Built in a temporary layout, then pushed (blobs the registry has are skipped).
            let (_tmp, oci) = scratch_layout(None)?;
            let mut report = arbor_container::encapsulate(repo, commit, &oci, None, opts)?;
            let pushed = arbor_container::registry::push(&oci, None, registry, name, tag, insecure)
                .with_context(|| format!("pushing to {dest}"))?;
            eprintln!(
                "container: pushed {dest}: {} of {} blobs uploaded ({} bytes), {} already there, {} requests",
                pushed.blobs_uploaded,
                pushed.blobs,
                pushed.bytes_uploaded,
                pushed.blobs_present,
                pushed.requests
            );
            report.pushed = Some(pushed);
            Ok(report)
        }
    }
}

/// A temporary OCI layout (in `dir`, else the system's temporary directory), removed when
/// the guard drops.
fn scratch_layout(dir: Option<&std::path::Path>) -> Result<(tempfile::TempDir, OciDir)> {
    let b = tempfile::Builder::new().prefix(".arbor-oci-").clone();
    let tmp = match dir {
        Some(d) => b.tempdir_in(d),
        None => b.tempdir(),
    }
    .with_context(|| {
        format!(
            "creating a temporary directory in {}",
            dir.map_or_else(
                || std::env::temp_dir().display().to_string(),
                |d| d.display().to_string()
            )
        )
    })?;
    let oci = OciDir::create(tmp.path())?;
    Ok((tmp, oci))
}

/// An image source opened as a layout (an archive is unpacked into a temporary directory).
struct Opened {
    oci: OciDir,
    tag: Option<String>,
    _tmp: Option<tempfile::TempDir>,
}

fn open_source(src: &str, insecure: bool) -> Result<Opened> {
    match ImageRef::parse(src)? {
        ImageRef::Oci { dir, tag } => Ok(Opened {
            oci: OciDir::open(&dir)?,
            tag,
            _tmp: None,
        }),
        ImageRef::OciArchive { file, tag } => {
            let (tmp, _) = scratch_layout(None)?;
            layout::extract_archive(&file, tmp.path())?;
            Ok(Opened {
                oci: OciDir::open(tmp.path())?,
                tag,
                _tmp: Some(tmp),
            })
        }
        ImageRef::Docker {
            registry,
            name,
            tag,
        } => {
            let (tmp, oci) = scratch_layout(None)?;
            arbor_container::registry::pull(&registry, &name, &tag, &oci, insecure)
                .with_context(|| format!("fetching {src}"))?;
            Ok(Opened {
                oci,
                tag: Some(tag),
                _tmp: Some(tmp),
            })
        }
    }
}

#[derive(Args)]
pub struct PullCmd {
    #[command(flatten)]
    repo: RepoArg,
    /// The image: `oci:DIR[:TAG]`, `oci-archive:FILE[:TAG]` or
    /// `docker://REGISTRY/NAME[:TAG]`.
    src: String,
    /// Talk plain HTTP to the registry (loopback registries always are).
    #[arg(long)]
    insecure: bool,
    /// Point this ref at the imported commit.
    #[arg(long = "ref", value_name = "REF")]
    ref_: Option<String>,
    /// Print a JSON report on stdout.
    #[arg(long)]
    json: bool,
}

impl PullCmd {
    fn run(self) -> Result<ExitCode> {
        let repo = self.repo.open()?;
        let src = open_source(&self.src, self.insecure)?;
        let report = arbor_container::import::import(&repo, &src.oci, src.tag.as_deref())
            .with_context(|| format!("importing {}", self.src))?;
        repo.sync()?;
        let commit = arbor_repo::Checksum::from_hex(&report.commit).expect("hex");
        if let Some(r) = &self.ref_ {
            repo.write_ref(r, &commit)?;
        }
        if self.json {
            print_json(&report)?;
        } else {
            println!("{}", report.commit);
        }
        eprintln!(
            "container: imported commit {} from {} ({} layers, {} bytes; {} content objects, {} new)",
            report.commit,
            self.src,
            report.layers,
            report.layer_bytes,
            report.content_objects,
            repo.files_written().0
        );
        Ok(ExitCode::SUCCESS)
    }
}

/// An image's manifest digest and manifest (from a registry: the manifest alone).
fn manifest_of(src: &str, insecure: bool) -> Result<(String, layout::Manifest)> {
    if let ImageRef::Docker {
        registry,
        name,
        tag,
    } = ImageRef::parse(src)?
    {
        let client = arbor_container::registry::Client::new(&registry, &name, insecure)?;
        let (bytes, _) = client.get_manifest(&tag)?;
        let digest = arbor_container::digest::Digest::of(&bytes).to_string();
        let m = layout::from_json(&bytes, &format!("manifest of {src}"))?;
        return Ok((digest, m));
    }
    let opened = open_source(src, insecure)?;
    let (d, m, _) = opened.oci.image(opened.tag.as_deref())?;
    Ok((d.digest, m))
}

#[derive(Args)]
pub struct DiffCmd {
    /// The image a client holds (`oci:DIR[:TAG]`, `oci-archive:FILE[:TAG]`,
    /// `docker://REGISTRY/NAME[:TAG]`).
    old: String,
    /// The image it updates to.
    new: String,
    /// Print a JSON object {layers, layers_reused, fetched: [{digest, size, components}],
    /// bytes_fetched, bytes_total, …}.
    #[arg(long)]
    json: bool,
    /// Talk plain HTTP to the registry (loopback registries always are).
    #[arg(long)]
    insecure: bool,
}

impl DiffCmd {
    fn run(self) -> Result<ExitCode> {
        let (od, om) = manifest_of(&self.old, self.insecure)?;
        let (nd, nm) = manifest_of(&self.new, self.insecure)?;
        let d = arbor_container::diff::diff(&od, &om, &nd, &nm);
        if self.json {
            print_json(&d)?;
            return Ok(ExitCode::SUCCESS);
        }
        for l in &d.fetched {
            let what = if l.components.is_empty() {
                "(commit layer)".to_string()
            } else {
                l.components.clone()
            };
            println!("{} {:>12} {what}", l.digest, l.size);
        }
        println!(
            "{} of {} layers fetched: {} of {} bytes (with the config); {} layers ({} bytes) reused",
            d.fetched.len(),
            d.layers,
            d.bytes_fetched,
            d.bytes_total,
            d.layers_reused,
            d.bytes_reused
        );
        Ok(ExitCode::SUCCESS)
    }
}

/// `containers` of `arbor release --json`: one per `--container`.
#[derive(serde::Serialize)]
pub struct ContainerRelease {
    pub dest: String,
    /// The image already there carries the head: nothing written.
    pub up_to_date: bool,
    pub manifest_digest: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image: Option<EncapsulateReport>,
}

/// The `ostree.commit` of the image at `dest`, if one is there (anything unreadable counts
/// as absent: it gets rewritten).
pub fn commit_at(dest: &ImageRef, insecure: bool) -> Option<(String, String)> {
    let (digest, m): (String, layout::Manifest) = match dest {
        ImageRef::Oci { dir, tag } => {
            let oci = OciDir::open(dir).ok()?;
            let (d, m, _) = oci.image(tag.as_deref()).ok()?;
            (d.digest, m)
        }
        ImageRef::OciArchive { .. } => return None,
        ImageRef::Docker {
            registry,
            name,
            tag,
        } => {
            let client = arbor_container::registry::Client::new(registry, name, insecure).ok()?;
            let (bytes, _) = client.get_manifest(tag).ok()?;
            let d = arbor_container::digest::Digest::of(&bytes).to_string();
            (d, layout::from_json(&bytes, "manifest").ok()?)
        }
    };
    let c = m.annotations?.get(arbor_container::COMMIT_LABEL)?.clone();
    Some((c, digest))
}

/// Publish `commit` as an image to `dest` (the caller found, with [`commit_at`], that the
/// image there does not carry it).
pub fn release_image(
    repo: &arbor_repo::Repo,
    commit: &arbor_repo::Checksum,
    dest: &str,
    opts: &EncapsulateOpts,
    insecure: bool,
) -> Result<ContainerRelease> {
    let image_ref = ImageRef::parse(dest)?;
    let report = encapsulate_to(repo, commit, &image_ref, opts, insecure)
        .with_context(|| format!("publishing {commit} as the image {dest}"))?;
    Ok(ContainerRelease {
        dest: dest.into(),
        up_to_date: false,
        manifest_digest: Some(report.manifest_digest.clone()),
        image: Some(report),
    })
}
