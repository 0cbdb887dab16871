//! The OCI image layout (`oci-layout`, `index.json`, `blobs/sha256/<hex>`) and the JSON
//! documents in it: written deterministically (fields in a fixed order, maps sorted),
//! read with bounds and every blob checked against its digest.

use std::collections::BTreeMap;
use std::fs;
use std::io::{self, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::digest::{Digest, HashReader, HashWriter};
use crate::{invalid, IoAt, Result, INDEX_MEDIA_TYPE, MANIFEST_MEDIA_TYPE};

/// Manifests, configs and indexes: at most this many bytes (registries use 4 MiB).
pub const MAX_JSON: u64 = 4 << 20;
/// The annotation of an index entry that names its tag.
pub const REF_NAME: &str = "org.opencontainers.image.ref.name";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Platform {
    pub architecture: String,
    pub os: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Descriptor {
    #[serde(rename = "mediaType")]
    pub media_type: String,
    pub digest: String,
    pub size: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<Platform>,
}

impl Descriptor {
    pub fn digest(&self) -> Result<Digest> {
        Digest::parse(&self.digest)
    }

    pub fn annotation(&self, key: &str) -> Option<&str> {
        self.annotations.as_ref()?.get(key).map(String::as_str)
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Manifest {
    #[serde(rename = "schemaVersion")]
    pub schema_version: u32,
    #[serde(rename = "mediaType", default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    pub config: Descriptor,
    pub layers: Vec<Descriptor>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ContainerConfig {
    #[serde(rename = "Cmd", default, skip_serializing_if = "Option::is_none")]
    pub cmd: Option<Vec<String>>,
    #[serde(rename = "Labels", default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<BTreeMap<String, String>>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RootFs {
    #[serde(rename = "type")]
    pub kind: String,
    pub diff_ids: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct History {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_by: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ImageConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
    pub architecture: String,
    pub os: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config: Option<ContainerConfig>,
    pub rootfs: RootFs,
    #[serde(default)]
    pub history: Vec<History>,
}

impl ImageConfig {
    pub fn labels(&self) -> Option<&BTreeMap<String, String>> {
        self.config.as_ref()?.labels.as_ref()
    }
    pub fn label(&self, key: &str) -> Option<&str> {
        self.labels()?.get(key).map(String::as_str)
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Index {
    #[serde(rename = "schemaVersion")]
    pub schema_version: u32,
    #[serde(rename = "mediaType", default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    pub manifests: Vec<Descriptor>,
}

/// Serialize a document the one way arbor does (compact, fields in declaration order).
pub fn to_json<T: Serialize>(v: &T) -> Vec<u8> {
    serde_json::to_vec(v).expect("image documents serialize")
}

pub fn from_json<T: for<'de> Deserialize<'de>>(data: &[u8], what: &str) -> Result<T> {
    serde_json::from_slice(data).map_err(|e| invalid(format!("{what}: not a valid document: {e}")))
}

/// An OCI image layout directory.
#[derive(Debug)]
pub struct OciDir {
    root: PathBuf,
}

impl OciDir {
    /// Open or create a layout at `root` (created with `oci-layout` and `blobs/sha256`).
    pub fn create(root: &Path) -> Result<OciDir> {
        fs::create_dir_all(root.join("blobs/sha256")).at(root)?;
        let marker = root.join("oci-layout");
        if !marker.exists() {
            fs::write(&marker, br#"{"imageLayoutVersion":"1.0.0"}"#).at(&marker)?;
        }
        Ok(OciDir {
            root: root.to_path_buf(),
        })
    }

    /// Open an existing layout (it must have `oci-layout` and `index.json`).
    pub fn open(root: &Path) -> Result<OciDir> {
        for f in ["oci-layout", "index.json"] {
            let p = root.join(f);
            if !p.is_file() {
                return Err(invalid(format!(
                    "{}: not an OCI image layout (no {f})",
                    root.display()
                )));
            }
        }
        Ok(OciDir {
            root: root.to_path_buf(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.root
    }

    pub fn blob_path(&self, d: &Digest) -> PathBuf {
        self.root.join("blobs/sha256").join(d.hex())
    }

    pub fn has_blob(&self, d: &Digest) -> bool {
        self.blob_path(d).is_file()
    }

    /// A writer for a new blob; [`BlobWriter::finish`] names it by its digest.
    pub fn blob_writer(&self) -> Result<BlobWriter> {
        let dir = self.root.join("blobs/sha256");
        let tmp = tempfile::Builder::new()
            .prefix(".tmp-blob-")
            .tempfile_in(&dir)
            .at(&dir)?;
        Ok(BlobWriter {
            dir,
            inner: HashWriter::new(BufWriter::with_capacity(1 << 20, tmp)),
        })
    }

    pub fn write_blob(&self, data: &[u8]) -> Result<(Digest, u64)> {
        let d = Digest::of(data);
        let p = self.blob_path(&d);
        if !p.is_file() {
            let mut w = self.blob_writer()?;
            w.write_all(data).at(&p)?;
            w.finish()?;
        }
        Ok((d, data.len() as u64))
    }

    /// Open a blob for reading; the reader fails past `limit` bytes. The caller checks
    /// the digest with [`HashReader::finish`].
    pub fn open_blob(&self, d: &Digest, limit: u64) -> Result<HashReader<fs::File>> {
        let p = self.blob_path(d);
        let f = fs::File::open(&p).map_err(|e| {
            if e.kind() == io::ErrorKind::NotFound {
                invalid(format!("{}: blob {d} is missing", self.root.display()))
            } else {
                crate::ContainerError::Io { path: p, source: e }
            }
        })?;
        Ok(HashReader::new(f, limit))
    }

    /// Read a whole (JSON) blob of at most `limit` bytes and check its digest.
    pub fn read_blob(&self, d: &Digest, limit: u64) -> Result<Vec<u8>> {
        let mut r = self.open_blob(d, limit)?;
        let mut data = Vec::new();
        r.read_to_end(&mut data)
            .map_err(|e| invalid(format!("{}: blob {d}: {e}", self.root.display())))?;
        let (got, _) = r.finish().at(self.blob_path(d))?;
        if got != *d {
            return Err(invalid(format!(
                "{}: blob {d} is corrupt: its content has digest {got}",
                self.root.display()
            )));
        }
        Ok(data)
    }

    pub fn read_index(&self) -> Result<Index> {
        let p = self.root.join("index.json");
        let data = read_bounded(&p, MAX_JSON)?;
        from_json(&data, &p.display().to_string())
    }

    /// Point `tag` (or, without a tag, the layout's only entry) at a manifest; other tags
    /// stay. Written atomically.
    pub fn set_manifest(&self, desc: Descriptor, tag: Option<&str>) -> Result<()> {
        let mut index = match self.read_index() {
            Ok(i) => i,
            Err(_) if !self.root.join("index.json").exists() => Index {
                schema_version: 2,
                media_type: Some(INDEX_MEDIA_TYPE.into()),
                manifests: Vec::new(),
            },
            Err(e) => return Err(e),
        };
        let mut desc = desc;
        match tag {
            Some(t) => {
                index
                    .manifests
                    .retain(|m| m.annotation(REF_NAME) != Some(t));
                desc.annotations
                    .get_or_insert_with(BTreeMap::new)
                    .insert(REF_NAME.into(), t.into());
            }
            None => index.manifests.clear(),
        }
        index.manifests.push(desc);
        let p = self.root.join("index.json");
        let tmp = self.root.join(".index.json.tmp");
        fs::write(&tmp, to_json(&index)).at(&tmp)?;
        fs::rename(&tmp, &p).at(&p)
    }

    /// The manifest `tag` names (without a tag: the only manifest of the layout).
    pub fn resolve(&self, tag: Option<&str>) -> Result<Descriptor> {
        let index = self.read_index()?;
        let found: Vec<&Descriptor> = match tag {
            Some(t) => index
                .manifests
                .iter()
                .filter(|m| m.annotation(REF_NAME) == Some(t))
                .collect(),
            None => index.manifests.iter().collect(),
        };
        match found.as_slice() {
            [one] => Ok((*one).clone()),
            [] => Err(invalid(format!(
                "{}: no image{}",
                self.root.display(),
                tag.map(|t| format!(" tagged {t:?}")).unwrap_or_default()
            ))),
            _ => Err(invalid(format!(
                "{}: {} images; name one with :TAG",
                self.root.display(),
                found.len()
            ))),
        }
    }

    /// The manifest and config of the image `tag` names, both checked.
    pub fn image(&self, tag: Option<&str>) -> Result<(Descriptor, Manifest, ImageConfig)> {
        let desc = self.resolve(tag)?;
        let m = self.read_blob(&desc.digest()?, MAX_JSON)?;
        let manifest: Manifest = from_json(&m, &format!("manifest {}", desc.digest))?;
        if let Some(mt) = &manifest.media_type {
            if mt != MANIFEST_MEDIA_TYPE && mt != crate::DOCKER_MANIFEST_MEDIA_TYPE {
                return Err(invalid(format!(
                    "manifest {}: media type {mt:?} is not an image manifest",
                    desc.digest
                )));
            }
        }
        let c = self.read_blob(&manifest.config.digest()?, MAX_JSON)?;
        let config: ImageConfig = from_json(&c, &format!("config {}", manifest.config.digest))?;
        Ok((desc, manifest, config))
    }
}

/// A blob being written; dropped unfinished, its temporary file goes.
pub struct BlobWriter {
    dir: PathBuf,
    inner: HashWriter<BufWriter<tempfile::NamedTempFile>>,
}

impl BlobWriter {
    pub fn finish(self) -> Result<(Digest, u64)> {
        let (buf, d, len) = self.inner.finish();
        let tmp = buf.into_inner().map_err(|e| e.into_error()).at(&self.dir)?;
        let dest = self.dir.join(d.hex());
        tmp.persist(&dest).map_err(|e| e.error).at(&dest)?;
        Ok((d, len))
    }
}

impl Write for BlobWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.inner.write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// A regular file of at most `limit` bytes.
pub(crate) fn read_bounded(p: &Path, limit: u64) -> Result<Vec<u8>> {
    let f = fs::File::open(p).at(p)?;
    let meta = f.metadata().at(p)?;
    if !meta.is_file() {
        return Err(invalid(format!("{}: not a regular file", p.display())));
    }
    let mut data = Vec::new();
    f.take(limit + 1).read_to_end(&mut data).at(p)?;
    if data.len() as u64 > limit {
        return Err(invalid(format!(
            "{}: larger than {limit} bytes",
            p.display()
        )));
    }
    Ok(data)
}

/// Write the layout at `dir` as an `oci-archive` tar file (`oci-layout`, `index.json`,
/// `blobs/sha256/…`, in that order; mtime 0), atomically.
pub fn write_archive(dir: &Path, file: &Path) -> Result<()> {
    let parent = file
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let tmp = tempfile::Builder::new()
        .prefix(".oci-archive-")
        .tempfile_in(parent)
        .at(parent)?;
    {
        let mut b = tar::Builder::new(BufWriter::with_capacity(1 << 20, tmp.as_file()));
        let mut add = |name: &str, p: &Path| -> Result<()> {
            let f = fs::File::open(p).at(p)?;
            let len = f.metadata().at(p)?.len();
            let mut h = tar::Header::new_gnu();
            h.set_entry_type(tar::EntryType::Regular);
            h.set_mode(0o644);
            h.set_mtime(0);
            h.set_size(len);
            b.append_data(&mut h, name, f).at(p)
        };
        add("oci-layout", &dir.join("oci-layout"))?;
        add("index.json", &dir.join("index.json"))?;
        let mut blobs: Vec<String> = fs::read_dir(dir.join("blobs/sha256"))
            .at(dir)?
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| !n.starts_with('.'))
            .collect();
        blobs.sort();
        for n in blobs {
            add(
                &format!("blobs/sha256/{n}"),
                &dir.join("blobs/sha256").join(&n),
            )?;
        }
        b.into_inner().at(file)?.flush().at(file)?;
    }
    tmp.as_file().sync_all().at(file)?;
    tmp.persist(file).map_err(|e| e.error).at(file)?;
    Ok(())
}

/// Unpack an `oci-archive` into the empty directory `dir`: only `oci-layout`,
/// `index.json` and `blobs/sha256/<digest>` regular files are taken; anything else in the
/// archive is an error (it could name a path outside `dir`).
pub fn extract_archive(file: &Path, dir: &Path) -> Result<()> {
    let f = fs::File::open(file).at(file)?;
    let mut a = tar::Archive::new(io::BufReader::new(f));
    fs::create_dir_all(dir.join("blobs/sha256")).at(dir)?;
    let entries = a
        .entries()
        .map_err(|e| invalid(format!("{}: {e}", file.display())))?;
    for e in entries {
        let mut e = e.map_err(|e| invalid(format!("{}: not a tar file: {e}", file.display())))?;
        let kind = e.header().entry_type();
        let name = e
            .path()
            .map_err(|err| invalid(format!("{}: {err}", file.display())))?
            .to_string_lossy()
            .trim_start_matches("./")
            .to_string();
        if kind.is_dir() {
            continue;
        }
        let ok = name == "oci-layout"
            || name == "index.json"
            || name
                .strip_prefix("blobs/sha256/")
                .is_some_and(|h| Digest::parse(&format!("sha256:{h}")).is_ok());
        if !ok || !kind.is_file() {
            return Err(invalid(format!(
                "{}: unexpected entry {:?} in an OCI archive",
                file.display(),
                arbor_repo::checksum::quote_prefix(&name)
            )));
        }
        let dest = dir.join(&name);
        let mut out = fs::File::create(&dest).at(&dest)?;
        io::copy(&mut e, &mut out).at(&dest)?;
    }
    Ok(())
}
