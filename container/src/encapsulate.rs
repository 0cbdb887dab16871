//! An OSTree commit → an ostree-container image in an OCI layout.

use std::collections::BTreeMap;
use std::time::Instant;

use arbor_repo::gvariant::Value;
use arbor_repo::{Checksum, Repo};
use rayon::prelude::*;
use serde::Serialize;

use crate::layout::{
    to_json, ContainerConfig, Descriptor, History, ImageConfig, Manifest, OciDir, Platform, RootFs,
};
use crate::owners::Owners;
use crate::plan::{self, Plan};
use crate::tree::TreeIndex;
pub use crate::write::Compression;
use crate::write::{self, LayerBlob};
use crate::{Result, BOOTC_LABEL, COMMIT_LABEL, COMPONENTS_ANNOTATION, DIFFID_LABEL};

#[derive(Debug, Clone)]
pub struct EncapsulateOpts {
    /// At most this many chunk layers (the commit layer comes on top); 1: one layer.
    pub max_layers: u32,
    pub compression: Compression,
    /// Labels added to (or replacing) the ones taken from the commit.
    pub labels: BTreeMap<String, String>,
    /// The image's architecture (GOARCH spelling); default: the packages', else the host's.
    pub arch: Option<String>,
    /// Overrides the commit's `ostree.container-cmd`.
    pub cmd: Option<Vec<String>>,
}

impl Default for EncapsulateOpts {
    fn default() -> Self {
        EncapsulateOpts {
            max_layers: plan::DEFAULT_MAX_LAYERS,
            compression: Compression::Gzip(6),
            labels: BTreeMap::new(),
            arch: None,
            cmd: None,
        }
    }
}

/// One layer of the image written.
#[derive(Debug, Clone, Serialize)]
pub struct LayerReport {
    pub digest: String,
    /// Compressed bytes.
    pub size: u64,
    pub diff_id: String,
    /// The history name: `ostree commit`, a package, `N components`.
    pub name: String,
    pub components: Vec<String>,
    pub objects: usize,
    /// Content bytes of its objects (uncompressed).
    pub content_size: u64,
    /// Bytes of its tar stream.
    pub tar_size: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct EncapsulateReport {
    pub commit: String,
    pub manifest_digest: String,
    pub manifest_size: u64,
    pub config_digest: String,
    pub architecture: String,
    pub packages: usize,
    pub layers: Vec<LayerReport>,
    /// Sum of the layers' compressed sizes.
    pub image_size: u64,
    pub seconds: f64,
    /// Set when the image went to a registry.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pushed: Option<crate::registry::PushReport>,
}

fn unwrap_variant(v: &Value) -> &Value {
    match v {
        Value::Variant(b) => unwrap_variant(b),
        v => v,
    }
}

fn meta_str<'a>(md: &'a arbor_repo::gvariant::VarDict, key: &str) -> Option<&'a str> {
    md.get(key).map(unwrap_variant).and_then(Value::as_str)
}

/// GOARCH for an RPM architecture.
pub fn goarch(rpm_arch: &str) -> &str {
    match rpm_arch {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "i686" | "i386" => "386",
        "armv7hl" | "armhfp" => "arm",
        other => other,
    }
}

fn architecture(commit: &arbor_repo::objects::Commit) -> String {
    if let Some(Value::Array(_, pkgs)) = commit
        .metadata
        .get("rpmostree.rpmdb.pkglist")
        .map(unwrap_variant)
    {
        for p in pkgs {
            if let Value::Tuple(m) = p {
                if let Some(arch) = m.get(4).and_then(Value::as_str) {
                    if arch != "noarch" {
                        return goarch(arch).to_string();
                    }
                }
            }
        }
    }
    goarch(std::env::consts::ARCH).to_string()
}

/// The labels ostree-ext derives from a commit (`commit_meta_to_labels`, plus
/// rpm-ostree's `rpmostree.inputhash`).
fn labels_of(index: &TreeIndex) -> BTreeMap<String, String> {
    let md = &index.commit.metadata;
    let mut l = BTreeMap::new();
    l.insert(COMMIT_LABEL.into(), index.checksum.to_hex());
    if let Some(Value::Bool(b)) = md.get("ostree.bootable").map(unwrap_variant) {
        l.insert("ostree.bootable".into(), b.to_string());
        l.insert(BOOTC_LABEL.into(), "1".into());
    }
    if let Some(v) = meta_str(md, "ostree.linux") {
        l.insert("ostree.linux".into(), v.into());
    }
    if let Some(v) = meta_str(md, "version") {
        l.insert("org.opencontainers.image.version".into(), v.into());
    }
    if let Some(v) = meta_str(md, "rpmostree.inputhash") {
        l.insert("rpmostree.inputhash".into(), v.into());
    }
    l
}

fn container_cmd(index: &TreeIndex) -> Option<Vec<String>> {
    match index
        .commit
        .metadata
        .get("ostree.container-cmd")
        .map(unwrap_variant)
    {
        Some(Value::Array(_, items)) => items
            .iter()
            .map(|v| v.as_str().map(str::to_string))
            .collect(),
        _ => None,
    }
}

/// Encapsulate `commit` into the layout `oci` under `tag` (without a tag, the layout then
/// holds just this image).
pub fn encapsulate(
    repo: &Repo,
    commit: &Checksum,
    oci: &OciDir,
    tag: Option<&str>,
    opts: &EncapsulateOpts,
) -> Result<EncapsulateReport> {
    let start = Instant::now();
    let index = TreeIndex::build(repo, commit)?;
    let owners = Owners::read(repo, &index)?;
    let Plan { chunks, remainder } = plan::plan(&index, &owners, opts.max_layers);
    tracing::info!(
        "container: {} objects, {} packages → {} chunk layers + the commit layer ({} objects)",
        index.objects.len(),
        owners.packages,
        chunks.len(),
        remainder.len()
    );

    // Layer 0 is the commit layer; the biggest layers start first so two cores finish
    // together.
    let remainder_size: u64 = remainder.iter().map(|c| index.objects[c].size).sum();
    let mut jobs: Vec<(usize, u64)> = std::iter::once((0, remainder_size))
        .chain(chunks.iter().enumerate().map(|(i, c)| (i + 1, c.size)))
        .collect();
    jobs.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    let mut blobs: Vec<(usize, LayerBlob)> = jobs
        .par_iter()
        .map(|&(i, _)| {
            let blob = write::layer(oci, opts.compression, |b| {
                if i == 0 {
                    write::commit_layer(b, repo, &index, &remainder)
                } else {
                    write::chunk(b, repo, &index, &chunks[i - 1].objects)
                }
            })?;
            Ok((i, blob))
        })
        .collect::<Result<_>>()?;
    blobs.sort_by_key(|(i, _)| *i);

    let created = crate::rfc3339(index.commit.timestamp);
    let subject = if index.commit.subject.is_empty() {
        format!("ostree export of commit {commit}")
    } else {
        index.commit.subject.clone()
    };
    let mut labels = labels_of(&index);
    let final_diffid = blobs.last().expect("the commit layer").1.diff_id;
    labels.insert(DIFFID_LABEL.into(), final_diffid.to_string());
    labels.extend(opts.labels.clone());

    let mut layers = Vec::new();
    let mut reports = Vec::new();
    let mut history = Vec::new();
    for (i, blob) in &blobs {
        let (name, components, objects, content_size, annotations) = if *i == 0 {
            (
                subject.clone(),
                Vec::new(),
                remainder.len(),
                remainder_size,
                None,
            )
        } else {
            let c = &chunks[i - 1];
            (
                c.name.clone(),
                c.components.clone(),
                c.objects.len(),
                c.size,
                Some(BTreeMap::from([(
                    COMPONENTS_ANNOTATION.to_string(),
                    c.components.join(","),
                )])),
            )
        };
        layers.push(Descriptor {
            media_type: opts.compression.media_type().into(),
            digest: blob.digest.to_string(),
            size: blob.size,
            annotations,
            platform: None,
        });
        history.push(History {
            created: Some(created.clone()),
            created_by: Some(name.clone()),
        });
        reports.push(LayerReport {
            digest: blob.digest.to_string(),
            size: blob.size,
            diff_id: blob.diff_id.to_string(),
            name,
            components,
            objects,
            content_size,
            tar_size: blob.tar_size,
        });
    }
    let architecture = opts
        .arch
        .clone()
        .unwrap_or_else(|| architecture(&index.commit));
    let config = ImageConfig {
        created: Some(created),
        architecture: architecture.clone(),
        os: "linux".into(),
        config: Some(ContainerConfig {
            cmd: opts.cmd.clone().or_else(|| container_cmd(&index)),
            labels: Some(labels.clone()),
        }),
        rootfs: RootFs {
            kind: "layers".into(),
            diff_ids: blobs.iter().map(|(_, b)| b.diff_id.to_string()).collect(),
        },
        history,
    };
    let (config_digest, config_size) = oci.write_blob(&to_json(&config))?;
    let manifest = Manifest {
        schema_version: 2,
        media_type: Some(crate::MANIFEST_MEDIA_TYPE.into()),
        config: Descriptor {
            media_type: crate::CONFIG_MEDIA_TYPE.into(),
            digest: config_digest.to_string(),
            size: config_size,
            annotations: None,
            platform: None,
        },
        layers,
        annotations: Some(labels),
    };
    let (manifest_digest, manifest_size) = oci.write_blob(&to_json(&manifest))?;
    oci.set_manifest(
        Descriptor {
            media_type: crate::MANIFEST_MEDIA_TYPE.into(),
            digest: manifest_digest.to_string(),
            size: manifest_size,
            annotations: None,
            platform: Some(Platform {
                architecture: architecture.clone(),
                os: "linux".into(),
            }),
        },
        tag,
    )?;
    Ok(EncapsulateReport {
        commit: commit.to_hex(),
        manifest_digest: manifest_digest.to_string(),
        manifest_size,
        config_digest: config_digest.to_string(),
        architecture,
        packages: owners.packages,
        image_size: reports.iter().map(|l| l.size).sum(),
        layers: reports,
        seconds: start.elapsed().as_secs_f64(),
        pushed: None,
    })
}
