//! The tar streams of the layers, entry for entry as ostree-ext writes them
//! (`tar/export.rs`): GNU headers, mtime 0, owner/mode from the commit.

use std::collections::HashSet;
use std::io::Write;

use arbor_repo::objects::ObjectType;
use arbor_repo::{Checksum, RepoError};
use tar::{EntryType, Header};

use crate::digest::{Digest, HashWriter};
use crate::layout::OciDir;
use crate::tree::{tar_path, TreeIndex};
use crate::{invalid, IoAt, Result};

const REPO: &str = "sysroot/ostree/repo";
const REPO_CONFIG: &[u8] = b"[core]\nrepo_version=1\nmode=bare-split-xattrs\n";
const S_IFMT: u32 = 0o170_000;

/// Layer compression.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    Gzip(u32),
    Zstd(i32),
    None,
}

impl Compression {
    pub fn media_type(self) -> &'static str {
        match self {
            Compression::Gzip(_) => crate::LAYER_GZIP_MEDIA_TYPE,
            Compression::Zstd(_) => crate::LAYER_ZSTD_MEDIA_TYPE,
            Compression::None => crate::LAYER_TAR_MEDIA_TYPE,
        }
    }
}

/// A layer written: its blob and its diff_id (the digest of the uncompressed tar).
#[derive(Debug, Clone)]
pub struct LayerBlob {
    pub digest: Digest,
    pub size: u64,
    pub diff_id: Digest,
    pub tar_size: u64,
}

type Tar<'a> = tar::Builder<&'a mut dyn Write>;

/// Write one layer blob into `oci`, its tar produced by `fill`.
pub(crate) fn layer(
    oci: &OciDir,
    compression: Compression,
    fill: impl FnOnce(&mut Tar<'_>) -> Result<()>,
) -> Result<LayerBlob> {
    let blob = oci.blob_writer()?;
    let at = oci.path().to_path_buf();
    let tar_into = |w: &mut dyn Write, fill: &mut dyn FnMut(&mut Tar<'_>) -> Result<()>| {
        let mut hw = HashWriter::new(w);
        {
            let mut b: Tar<'_> = tar::Builder::new(&mut hw);
            fill(&mut b)?;
            b.finish().at(&at)?;
        }
        let (_, diff_id, tar_size) = hw.finish();
        Ok::<_, crate::ContainerError>((diff_id, tar_size))
    };
    let mut fill = Some(fill);
    let mut once = |b: &mut Tar<'_>| (fill.take().expect("called once"))(b);
    let (blob, diff_id, tar_size) = match compression {
        Compression::Gzip(level) => {
            let mut gz = crate::pargz::ParGz::new(blob, level);
            let (d, n) = tar_into(&mut gz, &mut once)?;
            (gz.finish().at(&at)?, d, n)
        }
        Compression::Zstd(level) => {
            let mut z = zstd::Encoder::new(blob, level).at(&at)?;
            let (d, n) = tar_into(&mut z, &mut once)?;
            (z.finish().at(&at)?, d, n)
        }
        Compression::None => {
            let mut blob = blob;
            let (d, n) = tar_into(&mut blob, &mut once)?;
            (blob, d, n)
        }
    };
    let (digest, size) = blob.finish()?;
    Ok(LayerBlob {
        digest,
        size,
        diff_id,
        tar_size,
    })
}

fn object_path(c: &Checksum, ext: &str) -> String {
    let hex = c.to_hex();
    format!("{REPO}/objects/{}/{}.{ext}", &hex[..2], &hex[2..])
}

fn header(kind: EntryType, uid: u32, gid: u32, mode: u32) -> Header {
    let mut h = Header::new_gnu();
    h.set_entry_type(kind);
    h.set_uid(u64::from(uid));
    h.set_gid(u64::from(gid));
    h.set_mode(mode & !S_IFMT);
    h.set_mtime(0);
    h.set_size(0);
    h
}

fn tar_err(what: &str, e: std::io::Error) -> crate::ContainerError {
    invalid(format!("writing {what} into the layer: {e}"))
}

fn dir(b: &mut Tar<'_>, path: &str, uid: u32, gid: u32, mode: u32) -> Result<()> {
    let mut h = header(EntryType::Directory, uid, gid, mode);
    b.append_data(&mut h, path, std::io::empty())
        .map_err(|e| tar_err(path, e))
}

fn data(b: &mut Tar<'_>, path: &str, bytes: &[u8]) -> Result<()> {
    let mut h = header(EntryType::Regular, 0, 0, 0o644);
    h.set_size(bytes.len() as u64);
    b.append_data(&mut h, path, bytes)
        .map_err(|e| tar_err(path, e))
}

/// The `bare-split-xattrs` repository skeleton every layer starts with.
fn skeleton(b: &mut Tar<'_>) -> Result<()> {
    for d in [
        "sysroot",
        "sysroot/ostree",
        REPO,
        &format!("{REPO}/objects"),
    ] {
        dir(b, d, 0, 0, 0o755)?;
    }
    for i in 0..=0xffu32 {
        dir(b, &format!("{REPO}/objects/{i:02x}"), 0, 0, 0o755)?;
    }
    for d in [
        "extensions",
        "refs",
        "refs/heads",
        "refs/mirrors",
        "refs/remotes",
        "state",
        "tmp",
        "tmp/cache",
    ] {
        dir(b, &format!("{REPO}/{d}"), 0, 0, 0o755)?;
    }
    data(b, &format!("{REPO}/config"), REPO_CONFIG)
}

/// Writes content objects and their checkout paths into one layer.
pub(crate) struct ContentWriter<'a> {
    pub index: &'a TreeIndex,
    pub repo: &'a arbor_repo::Repo,
    /// Directories (tar paths) already in this layer.
    pub dirs_written: HashSet<String>,
    /// `.file-xattrs` objects already in this layer.
    xattrs_written: HashSet<Digest>,
}

impl<'a> ContentWriter<'a> {
    pub fn new(repo: &'a arbor_repo::Repo, index: &'a TreeIndex) -> Self {
        ContentWriter {
            index,
            repo,
            dirs_written: HashSet::new(),
            xattrs_written: HashSet::new(),
        }
    }

    /// Parent directories of `path` (a commit path), with the commit's metadata.
    fn parents(&mut self, b: &mut Tar<'_>, path: &str) -> Result<()> {
        let mut todo = Vec::new();
        let mut p = path;
        while let Some((parent, _)) = p.rsplit_once('/') {
            if self.dirs_written.contains(tar_path(parent).as_ref()) {
                break;
            }
            todo.push(parent);
            p = parent;
        }
        for parent in todo.into_iter().rev() {
            let meta = self.index.dirmeta(parent).ok_or_else(|| {
                invalid(format!(
                    "commit {}: no directory {parent}",
                    self.index.checksum
                ))
            })?;
            let tp = tar_path(parent).into_owned();
            dir(b, &tp, meta.uid, meta.gid, meta.mode)?;
            self.dirs_written.insert(tp);
        }
        Ok(())
    }

    /// One content object: its xattrs object and link, the `.file`, then a hardlink per
    /// path (an empty regular file is written as itself instead, as ostree-ext does).
    pub fn object(&mut self, b: &mut Tar<'_>, c: &Checksum) -> Result<()> {
        let (fh, content) = self.repo.read_file(c)?;
        let xattrs = fh.xattrs.to_bytes();
        let xd = Digest::of(&xattrs);
        let xattrs_obj = {
            let hex = xd.hex();
            format!("{REPO}/objects/{}/{}.file-xattrs", &hex[..2], &hex[2..])
        };
        if self.xattrs_written.insert(xd) {
            data(b, &xattrs_obj, &xattrs)?;
        }
        let link_path = object_path(c, "file-xattrs-link");
        let mut h = header(EntryType::Link, 0, 0, 0o644);
        b.append_link(&mut h, &link_path, &xattrs_obj)
            .map_err(|e| tar_err(&link_path, e))?;

        // Every xattr but the SELinux label as a PAX record too, for container runtimes.
        let pax: Vec<(String, &[u8])> = fh
            .xattrs
            .entries()
            .iter()
            .filter(|(n, _)| n.as_slice() != b"security.selinux")
            .filter_map(|(n, v)| {
                std::str::from_utf8(n)
                    .ok()
                    .map(|n| (format!("SCHILY.xattr.{n}"), v.as_slice()))
            })
            .collect();
        if !pax.is_empty() {
            b.append_pax_extensions(pax.iter().map(|(k, v)| (k.as_str(), *v)))
                .map_err(|e| tar_err("xattrs", e))?;
        }
        let obj = object_path(c, "file");
        let symlink = fh.is_symlink();
        let mut h = header(
            if symlink {
                EntryType::Symlink
            } else {
                EntryType::Regular
            },
            fh.uid,
            fh.gid,
            fh.mode,
        );
        if symlink {
            if fh.symlink_target.contains("//") {
                // "Denormal" targets are kept literally (tar would normalize them).
                h.set_link_name_literal(&fh.symlink_target)
                    .map_err(|e| tar_err(&obj, e))?;
                b.append_data(&mut h, &obj, std::io::empty())
                    .map_err(|e| tar_err(&obj, e))?;
            } else {
                b.append_link(&mut h, &obj, &fh.symlink_target)
                    .map_err(|e| tar_err(&obj, e))?;
            }
        } else {
            h.set_size(content.len() as u64);
            b.append_data(&mut h, &obj, content.as_slice())
                .map_err(|e| tar_err(&obj, e))?;
        }
        let info = &self.index.objects[c];
        for path in &info.paths {
            self.parents(b, path)?;
            let tp = tar_path(path);
            let mut lh = h.clone();
            lh.set_size(0);
            if !symlink && content.is_empty() {
                lh.set_entry_type(EntryType::Regular);
                b.append_data(&mut lh, tp.as_ref(), std::io::empty())
                    .map_err(|e| tar_err(&tp, e))?;
            } else {
                lh.set_entry_type(EntryType::Link);
                b.append_link(&mut lh, tp.as_ref(), &obj)
                    .map_err(|e| tar_err(&tp, e))?;
            }
        }
        Ok(())
    }
}

/// A chunk layer: the skeleton, then its objects.
pub(crate) fn chunk(
    b: &mut Tar<'_>,
    repo: &arbor_repo::Repo,
    index: &TreeIndex,
    objects: &[Checksum],
) -> Result<()> {
    skeleton(b)?;
    let mut w = ContentWriter::new(repo, index);
    for c in objects {
        w.object(b, c)?;
    }
    Ok(())
}

/// The commit layer: root, skeleton, `.commit`, `.commitmeta`, every dirmeta/dirtree with
/// the directory entries of the tree, `var/tmp` if the tree lacks it, then the remainder.
pub(crate) fn commit_layer(
    b: &mut Tar<'_>,
    repo: &arbor_repo::Repo,
    index: &TreeIndex,
    remainder: &[Checksum],
) -> Result<()> {
    let commit = &index.commit;
    let root_meta = repo.read_dirmeta(&commit.root_meta)?;
    dir(b, "./", root_meta.uid, root_meta.gid, root_meta.mode)?;
    skeleton(b)?;
    let c = index.checksum;
    data(
        b,
        &object_path(&c, "commit"),
        &repo.read_metadata(ObjectType::Commit, &c)?,
    )?;
    match repo.read_metadata(ObjectType::CommitMeta, &c) {
        Ok(meta) => data(b, &object_path(&c, "commitmeta"), &meta)?,
        Err(RepoError::MissingObject { .. }) => {}
        Err(e) => return Err(e.into()),
    }
    let mut metas_written = HashSet::new();
    let mut trees_written = HashSet::new();
    let mut meta_object = |b: &mut Tar<'_>, m: &Checksum| -> Result<()> {
        if metas_written.insert(*m) {
            data(
                b,
                &object_path(m, "dirmeta"),
                &repo.read_metadata(ObjectType::DirMeta, m)?,
            )?;
        }
        Ok(())
    };
    meta_object(b, &commit.root_meta)?;
    // (path, dirtree, dirmeta, write directory entries); depth first, in dirtree order.
    let mut stack = vec![(String::new(), commit.root_tree, None, true)];
    let mut dirs_written = HashSet::new();
    while let Some((path, tree, meta, entries)) = stack.pop() {
        if let Some(m) = meta {
            meta_object(b, &m)?;
            if entries {
                let dm = index
                    .dirmetas
                    .get(&m)
                    .ok_or_else(|| invalid(format!("commit {c}: dirmeta {m} not indexed")))?;
                let tp = tar_path(&path).into_owned();
                dir(b, &tp, dm.uid, dm.gid, dm.mode)?;
                dirs_written.insert(tp);
            }
        }
        let bytes = repo.read_metadata(ObjectType::DirTree, &tree)?;
        let t = arbor_repo::DirTree::from_bytes(&bytes)
            .map_err(|e| invalid(format!("dirtree {tree}: {e}")))?;
        if trees_written.insert(tree) {
            data(b, &object_path(&tree, "dirtree"), &bytes)?;
        }
        for (name, sub, submeta) in t.dirs.iter().rev() {
            let sub_path = if path.is_empty() {
                name.clone()
            } else {
                format!("{path}/{name}")
            };
            // `sysroot` is the repository's own directory in the stream.
            let sub_entries = entries && !(path.is_empty() && name == "sysroot");
            stack.push((sub_path, *sub, Some(*submeta), sub_entries));
        }
    }
    if !index.dirs.contains_key("var/tmp") {
        dir(b, "var/tmp", 0, 0, 0o1777)?;
        dirs_written.insert("var/tmp".into());
    }
    let mut w = ContentWriter::new(repo, index);
    w.dirs_written = dirs_written;
    for c in remainder {
        w.object(b, c)?;
    }
    Ok(())
}
