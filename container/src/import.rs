//! An ostree-container image → the commit it carries, bit for bit, into a repository.
//!
//! Every byte is checked: each blob against its descriptor digest, each uncompressed layer
//! against its diff_id, each object against its name; metadata objects and xattr lists
//! are bounded; the commit is complete (every object it references present) before any
//! ref points at it.

use std::collections::HashMap;
use std::io::{self, Read, Seek};

use arbor_repo::objects::{parse_commitmeta, ObjectType};
use arbor_repo::{Checksum, FileHeader, Repo, Xattrs};
use serde::Serialize;

use crate::digest::{Digest, HashReader};
use crate::layout::{Descriptor, ImageConfig, Manifest, OciDir};
use crate::{invalid, IoAt, Result, DIFFID_LABEL};

/// Metadata objects: at most 10 MiB (ostree's OSTREE_MAX_METADATA_SIZE).
const MAX_METADATA: u64 = 10 << 20;
/// An xattr list: at most 1 MiB (ostree-ext's limit).
const MAX_XATTRS: u64 = 1 << 20;
/// Content held in memory up to this size; larger is spooled to a temporary file.
const IN_MEMORY: u64 = 64 << 20;
/// An uncompressed layer: at most this many bytes.
const MAX_LAYER_TAR: u64 = 1 << 40;
const REPO_OBJECTS: &str = "sysroot/ostree/repo/objects/";

#[derive(Debug, Clone, Default, Serialize)]
pub struct ImportReport {
    pub commit: String,
    pub manifest_digest: String,
    pub layers: usize,
    pub layer_bytes: u64,
    pub metadata_objects: u64,
    pub content_objects: u64,
    pub content_written: u64,
}

/// Which layers carry the commit: layer 0 and the chunks up to `ostree.final-diffid`.
pub fn ostree_layers<'a>(
    manifest: &'a Manifest,
    config: &ImageConfig,
    what: &str,
) -> Result<Vec<(&'a Descriptor, Digest)>> {
    let Some(final_diffid) = config.label(DIFFID_LABEL) else {
        return Err(invalid(format!(
            "{what}: not an ostree container image (no {DIFFID_LABEL} label)"
        )));
    };
    let final_diffid = Digest::parse(final_diffid)?;
    let diff_ids = &config.rootfs.diff_ids;
    if diff_ids.len() != manifest.layers.len() {
        return Err(invalid(format!(
            "{what}: {} layers but {} diff_ids",
            manifest.layers.len(),
            diff_ids.len()
        )));
    }
    let mut out = Vec::new();
    for (l, d) in manifest.layers.iter().zip(diff_ids) {
        let d = Digest::parse(d)?;
        out.push((l, d));
        if d == final_diffid {
            if out.len() < manifest.layers.len() {
                return Err(invalid(format!(
                    "{what}: {} layers were added after the ostree commit (a derived image); \
                     importing those is not supported",
                    manifest.layers.len() - out.len()
                )));
            }
            return Ok(out);
        }
    }
    Err(invalid(format!(
        "{what}: no layer has the diff_id {final_diffid} that {DIFFID_LABEL} names"
    )))
}

struct Importer<'a> {
    repo: &'a Repo,
    xattrs: HashMap<Digest, Xattrs>,
    next_xattrs: Option<(Checksum, Digest)>,
    commit: Option<Checksum>,
    report: ImportReport,
}

fn parse_object_path(path: &str) -> Option<(Checksum, &str)> {
    let rest = path.strip_prefix(REPO_OBJECTS)?;
    let (dir, name) = rest.split_once('/')?;
    let (name, ext) = name.split_once('.')?;
    if dir.len() != 2 || name.len() != 62 {
        return None;
    }
    let c = Checksum::from_hex(&format!("{dir}{name}")).ok()?;
    Some((c, ext))
}

fn read_bounded(r: &mut impl Read, size: u64, limit: u64, what: &str) -> Result<Vec<u8>> {
    if size > limit {
        return Err(invalid(format!(
            "{what}: {size} bytes, more than the {limit} allowed"
        )));
    }
    let mut data = Vec::with_capacity(size as usize);
    r.take(size)
        .read_to_end(&mut data)
        .map_err(|e| invalid(format!("{what}: {e}")))?;
    Ok(data)
}

impl Importer<'_> {
    fn entry(&mut self, mut e: tar::Entry<'_, impl Read>, layer: &str) -> Result<()> {
        let kind = e.header().entry_type();
        if kind.is_dir() {
            return Ok(());
        }
        let path = e
            .path()
            .map_err(|err| invalid(format!("{layer}: unreadable path: {err}")))?
            .to_string_lossy()
            .into_owned();
        if !path.starts_with(REPO_OBJECTS) {
            return Ok(());
        }
        let what = format!("{layer}: {path}");
        let Some((c, ext)) = parse_object_path(&path) else {
            return Err(invalid(format!("{what}: not an object name")));
        };
        let size = e.header().size().unwrap_or(u64::MAX);
        let metadata = |ty: ObjectType, e: &mut tar::Entry<'_, _>, me: &mut Self| -> Result<()> {
            if !kind.is_file() {
                return Err(invalid(format!("{what}: not a regular file")));
            }
            let data = read_bounded(e, size, MAX_METADATA, &what)?;
            let actual = Checksum::of(&data);
            if actual != c {
                return Err(invalid(format!("{what}: content has checksum {actual}")));
            }
            me.repo.write_metadata(ty, &data)?;
            me.report.metadata_objects += 1;
            Ok(())
        };
        match ext {
            "commit" => {
                metadata(ObjectType::Commit, &mut e, self)?;
                if let Some(prev) = self.commit.replace(c) {
                    if prev != c {
                        return Err(invalid(format!("{what}: a second commit (first {prev})")));
                    }
                }
            }
            "dirtree" => metadata(ObjectType::DirTree, &mut e, self)?,
            "dirmeta" => metadata(ObjectType::DirMeta, &mut e, self)?,
            "commitmeta" => {
                if self.commit != Some(c) {
                    return Err(invalid(format!(
                        "{what}: detached metadata of another commit than the image's"
                    )));
                }
                let data = read_bounded(&mut e, size, MAX_METADATA, &what)?;
                let dict =
                    parse_commitmeta(&data).map_err(|err| invalid(format!("{what}: {err}")))?;
                self.repo.write_commitmeta(&c, &dict)?;
            }
            "file-xattrs" => {
                let data = read_bounded(&mut e, size, MAX_XATTRS, &what)?;
                let d = Digest::of(&data);
                if d.0 != c.0 {
                    return Err(invalid(format!("{what}: content has digest {d}")));
                }
                self.cache_xattrs(&data, &what)?;
            }
            "file-xattrs-link" => {
                let d = if kind == tar::EntryType::Link {
                    let target = e
                        .link_name()
                        .ok()
                        .flatten()
                        .map(|t| t.to_string_lossy().into_owned())
                        .unwrap_or_default();
                    match parse_object_path(&target) {
                        Some((x, "file-xattrs")) => Digest(x.0),
                        _ => {
                            return Err(invalid(format!(
                                "{what}: links to {target:?}, not an xattrs object"
                            )))
                        }
                    }
                } else if kind.is_file() {
                    let data = read_bounded(&mut e, size, MAX_XATTRS, &what)?;
                    self.cache_xattrs(&data, &what)?
                } else {
                    return Err(invalid(format!("{what}: unexpected entry type {kind:?}")));
                };
                self.next_xattrs = Some((c, d));
            }
            "file" => {
                if kind == tar::EntryType::Link {
                    // A hardlink to an object written earlier in this layer.
                    return Ok(());
                }
                let (for_obj, xd) = self.next_xattrs.take().ok_or_else(|| {
                    invalid(format!("{what}: no .file-xattrs-link before the object"))
                })?;
                if for_obj != c {
                    return Err(invalid(format!(
                        "{what}: the xattrs before it are for object {for_obj}"
                    )));
                }
                let xattrs = self
                    .xattrs
                    .get(&xd)
                    .ok_or_else(|| invalid(format!("{what}: xattrs {xd} not in this layer")))?
                    .clone();
                let mode = e
                    .header()
                    .mode()
                    .map_err(|err| invalid(format!("{what}: {err}")))?
                    & 0o7777;
                let uid = e.header().uid().unwrap_or(u64::MAX);
                let gid = e.header().gid().unwrap_or(u64::MAX);
                let (uid, gid) = match (u32::try_from(uid), u32::try_from(gid)) {
                    (Ok(u), Ok(g)) => (u, g),
                    _ => return Err(invalid(format!("{what}: owner out of range"))),
                };
                self.content(&mut e, c, kind, uid, gid, mode, xattrs, size, &what)?;
            }
            _ => return Err(invalid(format!("{what}: unknown object type {ext:?}"))),
        }
        Ok(())
    }

    fn cache_xattrs(&mut self, data: &[u8], what: &str) -> Result<Digest> {
        let x = Xattrs::from_bytes(data).map_err(|e| invalid(format!("{what}: {e}")))?;
        let d = Digest::of(data);
        self.xattrs.insert(d, x);
        Ok(d)
    }

    #[allow(clippy::too_many_arguments)]
    fn content(
        &mut self,
        e: &mut tar::Entry<'_, impl Read>,
        c: Checksum,
        kind: tar::EntryType,
        uid: u32,
        gid: u32,
        mode: u32,
        xattrs: Xattrs,
        size: u64,
        what: &str,
    ) -> Result<()> {
        const S_IFREG: u32 = 0o100_000;
        const S_IFLNK: u32 = 0o120_000;
        self.report.content_objects += 1;
        let header = |mode: u32, target: String| FileHeader {
            uid,
            gid,
            mode,
            symlink_target: target,
            xattrs: xattrs.clone(),
        };
        let mismatch = |actual: Checksum| invalid(format!("{what}: content has checksum {actual}"));
        if kind == tar::EntryType::Symlink {
            let target = e
                .link_name_bytes()
                .map(|t| String::from_utf8_lossy(&t).into_owned())
                .unwrap_or_default();
            if target.is_empty() {
                return Err(invalid(format!("{what}: symlink without a target")));
            }
            let h = header(S_IFLNK | mode, target);
            let actual = h.checksum(&[]);
            if actual != c {
                return Err(mismatch(actual));
            }
            self.report.content_written += self.repo.write_file_object(&c, &h, &[])?;
            return Ok(());
        }
        if !kind.is_file() {
            return Err(invalid(format!("{what}: unexpected entry type {kind:?}")));
        }
        let h = header(S_IFREG | mode, String::new());
        if size <= IN_MEMORY {
            let data = read_bounded(e, size, IN_MEMORY, what)?;
            let actual = h.checksum(&data);
            if actual != c {
                return Err(mismatch(actual));
            }
            self.report.content_written += self.repo.write_file_object(&c, &h, &data)?;
        } else {
            let mut spool = tempfile::tempfile_in(self.repo.path().join("tmp"))
                .at(self.repo.path().join("tmp"))?;
            let mut hasher = arbor_repo::checksum::Hasher::new();
            hasher.update(&h.to_stream_header());
            let mut buf = vec![0u8; 1 << 20];
            let mut left = size;
            while left > 0 {
                let n = e
                    .read(&mut buf[..left.min(1 << 20) as usize])
                    .map_err(|err| invalid(format!("{what}: {err}")))?;
                if n == 0 {
                    return Err(invalid(format!("{what}: truncated")));
                }
                hasher.update(&buf[..n]);
                io::Write::write_all(&mut spool, &buf[..n]).at(self.repo.path())?;
                left -= n as u64;
            }
            let actual = hasher.finish();
            if actual != c {
                return Err(mismatch(actual));
            }
            spool.rewind().at(self.repo.path())?;
            self.report.content_written +=
                self.repo.write_file_object_from(&c, &h, size, &mut spool)?;
        }
        Ok(())
    }
}

/// Decompress a layer blob by its media type.
fn decompressor<'r>(media_type: &str, r: impl Read + 'r, what: &str) -> Result<Box<dyn Read + 'r>> {
    Ok(match media_type {
        crate::LAYER_GZIP_MEDIA_TYPE | crate::DOCKER_LAYER_GZIP_MEDIA_TYPE => {
            Box::new(flate2::read::GzDecoder::new(r))
        }
        crate::LAYER_ZSTD_MEDIA_TYPE => {
            Box::new(zstd::Decoder::new(r).map_err(|e| invalid(format!("{what}: {e}")))?)
        }
        crate::LAYER_TAR_MEDIA_TYPE | "application/vnd.docker.image.rootfs.diff.tar" => Box::new(r),
        other => {
            return Err(invalid(format!(
                "{what}: unsupported layer media type {other:?}"
            )))
        }
    })
}

/// Import the image `tag` of layout `oci` into `repo`; returns the commit (complete and
/// verified). The caller points a ref at it.
pub fn import(repo: &Repo, oci: &OciDir, tag: Option<&str>) -> Result<ImportReport> {
    let (desc, manifest, config) = oci.image(tag)?;
    let what = format!("image {}", desc.digest);
    let layers = ostree_layers(&manifest, &config, &what)?;
    let mut imp = Importer {
        repo,
        xattrs: HashMap::new(),
        next_xattrs: None,
        commit: None,
        report: ImportReport {
            manifest_digest: desc.digest.clone(),
            layers: layers.len(),
            ..Default::default()
        },
    };
    for (i, (l, diff_id)) in layers.iter().enumerate() {
        let digest = l.digest()?;
        let lw = format!("{what}: layer {i} ({digest})");
        let blob = oci.open_blob(&digest, l.size)?;
        let mut outer = blob;
        {
            let inner = decompressor(&l.media_type, &mut outer, &lw)?;
            let mut tar_hash = HashReader::new(inner, MAX_LAYER_TAR);
            {
                let mut archive = tar::Archive::new(&mut tar_hash);
                let entries = archive
                    .entries()
                    .map_err(|e| invalid(format!("{lw}: {e}")))?;
                imp.xattrs.clear();
                imp.next_xattrs = None;
                for e in entries {
                    let e = e.map_err(|e| invalid(format!("{lw}: not a tar stream: {e}")))?;
                    imp.entry(e, &lw)?;
                }
            }
            let (got, _) = tar_hash
                .finish()
                .map_err(|e| invalid(format!("{lw}: {e}")))?;
            if got != *diff_id {
                return Err(invalid(format!(
                    "{lw}: uncompressed content has digest {got}, the config says {diff_id}"
                )));
            }
        }
        let (got, n) = outer.finish().map_err(|e| invalid(format!("{lw}: {e}")))?;
        if got != digest || n != l.size {
            return Err(invalid(format!(
                "{lw}: blob has digest {got} ({n} bytes), the manifest says {digest} ({} bytes)",
                l.size
            )));
        }
        imp.report.layer_bytes += n;
    }
    let commit = imp
        .commit
        .ok_or_else(|| invalid(format!("{what}: no commit object in its layers")))?;
    if let Some(label) = config.label(crate::COMMIT_LABEL) {
        if label != commit.to_hex() {
            return Err(invalid(format!(
                "{what}: carries commit {commit} but its label says {label}"
            )));
        }
    }
    check_complete(repo, &commit).map_err(|e| invalid(format!("{what}: {e}")))?;
    imp.report.commit = commit.to_hex();
    Ok(imp.report)
}

/// Every object `commit` references is in `repo`.
pub fn check_complete(repo: &Repo, commit: &Checksum) -> Result<()> {
    let c = repo.read_commit(commit)?;
    let mut stack = vec![(c.root_tree, c.root_meta)];
    let mut seen = std::collections::HashSet::new();
    while let Some((tree, meta)) = stack.pop() {
        if !seen.insert(tree) {
            continue;
        }
        repo.read_dirmeta(&meta)?;
        let t = repo.read_dirtree(&tree)?;
        for (name, f) in &t.files {
            if !repo.has_object(f, ObjectType::File) {
                return Err(invalid(format!(
                    "commit {commit} is incomplete: file {name} ({f}) is missing"
                )));
            }
        }
        for (_, sub, submeta) in &t.dirs {
            stack.push((*sub, *submeta));
        }
    }
    Ok(())
}
