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
    /// Where: `oci:DIR[:TAG]` or `oci-archive:FILE[:TAG]`.
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
        let report = encapsulate_to(&repo, &commit, &dest, &opts)?;
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
            let tmp = tempfile::Builder::new()
                .prefix(".oci-layout-")
                .tempdir_in(parent)
                .with_context(|| {
                    format!("creating a temporary directory in {}", parent.display())
                })?;
            let oci = OciDir::create(tmp.path())?;
            let report = arbor_container::encapsulate(repo, commit, &oci, tag.as_deref(), opts)?;
            layout::write_archive(tmp.path(), file)?;
            Ok(report)
        }
        ImageRef::Docker { .. } => {
            bail!("{dest}: pushing to a registry is not supported yet; write oci:DIR and push it with `skopeo copy`")
        }
    }
}

/// An image source opened as a layout (an archive is unpacked into a temporary directory).
struct Opened {
    oci: OciDir,
    tag: Option<String>,
    _tmp: Option<tempfile::TempDir>,
}

fn open_source(src: &str) -> Result<Opened> {
    match ImageRef::parse(src)? {
        ImageRef::Oci { dir, tag } => Ok(Opened {
            oci: OciDir::open(&dir)?,
            tag,
            _tmp: None,
        }),
        ImageRef::OciArchive { file, tag } => {
            let tmp = tempfile::Builder::new()
                .prefix("arbor-oci-archive-")
                .tempdir()
                .context("creating a temporary directory")?;
            layout::extract_archive(&file, tmp.path())?;
            Ok(Opened {
                oci: OciDir::open(tmp.path())?,
                tag,
                _tmp: Some(tmp),
            })
        }
        ImageRef::Docker { .. } => {
            bail!("{src}: reading from a registry is not supported yet; copy it to oci:DIR with `skopeo copy` first")
        }
    }
}

#[derive(Args)]
pub struct PullCmd {
    #[command(flatten)]
    repo: RepoArg,
    /// The image: `oci:DIR[:TAG]` or `oci-archive:FILE[:TAG]`.
    src: String,
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
        let src = open_source(&self.src)?;
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

#[derive(Args)]
pub struct DiffCmd {
    /// The image a client holds (`oci:DIR[:TAG]`, `oci-archive:FILE[:TAG]`).
    old: String,
    /// The image it updates to.
    new: String,
    /// Print a JSON object {layers, layers_reused, fetched: [{digest, size, components}],
    /// bytes_fetched, bytes_total, …}.
    #[arg(long)]
    json: bool,
}

impl DiffCmd {
    fn run(self) -> Result<ExitCode> {
        let old = open_source(&self.old)?;
        let new = open_source(&self.new)?;
        let (od, om, _) = old.oci.image(old.tag.as_deref())?;
        let (nd, nm, _) = new.oci.image(new.tag.as_deref())?;
        let d = arbor_container::diff::diff(&od.digest, &om, &nd.digest, &nm);
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
