//! Reading a committed tree back: path lookup and the canonical text dump.
//!
//! Dump line (one per entry, sorted by path; see [`DumpEntry::to_line`]):
//! ```text
//! <d|-|l> <mode octal> <uid> <gid> <size> <checksum> <path>[ -> <target>][ xattrs=<name>=<hex>,…]
//! ```
//! For directories the checksum is `<dirtree>:<dirmeta>` and the size 0. Paths escape
//! `\`, control characters, spaces and non-ASCII-safe bytes as `\xNN` so one entry is
//! always one line.

use super::{Repo, RepoError, Result};
use crate::checksum::Checksum;
use crate::objects::{DirMeta, FileHeader, Xattrs};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryKind {
    Dir,
    File,
    Symlink,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DumpEntry {
    pub kind: EntryKind,
    /// Absolute path inside the commit, `/` for the root.
    pub path: String,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub size: u64,
    /// Content checksum (files/symlinks) or dirtree checksum (directories).
    pub checksum: Checksum,
    /// Dirmeta checksum (directories only).
    pub meta_checksum: Option<Checksum>,
    pub symlink_target: String,
    pub xattrs: Xattrs,
}

fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            ' ' => out.push_str("\\x20"),
            c if c.is_control() => {
                let mut b = [0u8; 4];
                for byte in c.encode_utf8(&mut b).bytes() {
                    out.push_str(&format!("\\x{byte:02x}"));
                }
            }
            c => out.push(c),
        }
    }
    out
}

impl DumpEntry {
    pub fn to_line(&self) -> String {
        let (t, sum) = match self.kind {
            EntryKind::Dir => (
                'd',
                format!(
                    "{}:{}",
                    self.checksum,
                    self.meta_checksum.unwrap_or_default()
                ),
            ),
            EntryKind::File => ('-', self.checksum.to_hex()),
            EntryKind::Symlink => ('l', self.checksum.to_hex()),
        };
        let mut line = format!(
            "{t} {:o} {} {} {} {sum} {}",
            self.mode,
            self.uid,
            self.gid,
            self.size,
            escape(&self.path)
        );
        if self.kind == EntryKind::Symlink {
            line.push_str(" -> ");
            line.push_str(&escape(&self.symlink_target));
        }
        if !self.xattrs.is_empty() {
            line.push(' ');
            line.push_str(&xattrs_text(&self.xattrs));
        }
        line
    }

    /// Mode, owner and xattrs as the dump shows them: `MODE UID GID[ xattrs=…]`.
    pub fn attrs_text(&self) -> String {
        let mut s = format!("{:o} {} {}", self.mode, self.uid, self.gid);
        if !self.xattrs.is_empty() {
            s.push(' ');
            s.push_str(&xattrs_text(&self.xattrs));
        }
        s
    }

    pub(crate) fn dir(
        path: String,
        tree: Checksum,
        meta_csum: Checksum,
        meta: &DirMeta,
    ) -> DumpEntry {
        DumpEntry {
            kind: EntryKind::Dir,
            path,
            mode: meta.mode,
            uid: meta.uid,
            gid: meta.gid,
            size: 0,
            checksum: tree,
            meta_checksum: Some(meta_csum),
            symlink_target: String::new(),
            xattrs: meta.xattrs.clone(),
        }
    }

    pub(crate) fn file(path: String, checksum: Checksum, h: FileHeader, size: u64) -> DumpEntry {
        DumpEntry {
            kind: if h.is_symlink() {
                EntryKind::Symlink
            } else {
                EntryKind::File
            },
            path,
            mode: h.mode,
            uid: h.uid,
            gid: h.gid,
            size,
            checksum,
            meta_checksum: None,
            symlink_target: h.symlink_target,
            xattrs: h.xattrs,
        }
    }
}

/// What a path inside a commit names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Node {
    Dir { tree: Checksum, meta: Checksum },
    File(Checksum),
}

pub(crate) fn join(parent: &str, name: &str) -> String {
    if parent == "/" {
        format!("/{name}")
    } else {
        format!("{parent}/{name}")
    }
}

impl Repo {
    /// Find `path` (absolute or relative to the root) in `commit`.
    pub fn lookup_path(&self, commit: &Checksum, path: &str) -> Result<Node> {
        let c = self.read_commit(commit)?;
        let mut node = Node::Dir {
            tree: c.root_tree,
            meta: c.root_meta,
        };
        let not_found = || RepoError::PathNotFound {
            commit: *commit,
            path: path.to_string(),
        };
        for seg in path.split('/').filter(|s| !s.is_empty() && *s != ".") {
            let Node::Dir { tree, .. } = node else {
                return Err(not_found());
            };
            let t = self.read_dirtree(&tree)?;
            node = if let Some(f) = t.find_file(seg) {
                Node::File(*f)
            } else if let Some((t, m)) = t.find_dir(seg) {
                Node::Dir { tree: *t, meta: *m }
            } else {
                return Err(not_found());
            };
        }
        Ok(node)
    }

    /// The canonical dump of `path` in `commit`: the entry itself, then (when
    /// `recursive`, or one level when not) its children, in path order.
    pub fn dump(&self, commit: &Checksum, path: &str, recursive: bool) -> Result<Vec<DumpEntry>> {
        let mut norm = String::from("/");
        for seg in path.split('/').filter(|s| !s.is_empty() && *s != ".") {
            norm = join(&norm, seg);
        }
        let mut out = Vec::new();
        match self.lookup_path(commit, &norm)? {
            Node::File(c) => {
                let (h, size) = self.read_file_header(&c)?;
                out.push(DumpEntry::file(norm, c, h, size));
            }
            Node::Dir { tree, meta } => {
                let m = self.read_dirmeta(&meta)?;
                out.push(DumpEntry::dir(norm.clone(), tree, meta, &m));
                self.dump_dir(
                    &norm,
                    &tree,
                    if recursive { usize::MAX } else { 1 },
                    &mut out,
                )?;
            }
        }
        Ok(out)
    }

    /// The entries under `tree` in path order, `depth` levels down, walked with an
    /// explicit stack: the depth comes from the commit, which may be hostile (a tree
    /// 20,000 directories deep overflowed the stack when this recursed).
    fn dump_dir(
        &self,
        path: &str,
        tree: &Checksum,
        depth: usize,
        out: &mut Vec<DumpEntry>,
    ) -> Result<()> {
        type Children = std::vec::IntoIter<(String, Checksum, Option<Checksum>)>;
        let children = |tree: &Checksum| -> Result<Children> {
            let t = self.read_dirtree(tree)?;
            // Merge files and dirs by name so the dump is in path order.
            let mut c: Vec<(String, Checksum, Option<Checksum>)> =
                t.files.into_iter().map(|(n, c)| (n, c, None)).collect();
            c.extend(t.dirs.into_iter().map(|(n, ct, cm)| (n, ct, Some(cm))));
            c.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
            Ok(c.into_iter())
        };
        if depth == 0 {
            return Ok(());
        }
        let mut stack: Vec<(String, Children, usize)> =
            vec![(path.to_string(), children(tree)?, depth)];
        while let Some((dir, next, depth)) = stack.last_mut() {
            let Some((name, c, meta)) = next.next() else {
                stack.pop();
                continue;
            };
            let child = join(dir, &name);
            let depth = *depth;
            if let Some(cm) = meta {
                let m = self.read_dirmeta(&cm)?;
                out.push(DumpEntry::dir(child.clone(), c, cm, &m));
                if depth > 1 {
                    stack.push((child, children(&c)?, depth - 1));
                }
            } else {
                let (h, size) = self.read_file_header(&c)?;
                out.push(DumpEntry::file(child, c, h, size));
            }
        }
        Ok(())
    }
}

/// `xattrs=name="text",name=hex…` as the dump shows them.
fn xattrs_text(xattrs: &Xattrs) -> String {
    let parts: Vec<String> = xattrs
        .entries()
        .iter()
        .map(|(n, v)| {
            let name = escape(&String::from_utf8_lossy(n));
            // Text values (an SELinux label: printable ASCII and its NUL) are
            // shown as text, quoted; anything else as hex.
            let text = v.strip_suffix(b"\0").unwrap_or(v);
            if !text.is_empty()
                && text
                    .iter()
                    .all(|b| (0x20..0x7f).contains(b) && *b != b'"' && *b != b',')
            {
                format!("{name}=\"{}\"", String::from_utf8_lossy(text))
            } else {
                let hex: String = v.iter().map(|b| format!("{b:02x}")).collect();
                format!("{name}={hex}")
            }
        })
        .collect();
    format!("xattrs={}", parts.join(","))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::objects::{Commit, DirTree, ObjectType};

    /// A commit 20,000 directories deep (hostile: no filesystem could hold it) lists
    /// recursively without overflowing the stack.
    #[test]
    fn dump_of_a_very_deep_tree_does_not_recurse() {
        let dir = tempfile::tempdir().unwrap();
        let repo = Repo::init(&dir.path().join("r")).unwrap();
        let meta = DirMeta {
            uid: 0,
            gid: 0,
            mode: 0o40755,
            xattrs: Xattrs::default(),
        };
        let (m, _) = repo
            .write_metadata(ObjectType::DirMeta, &meta.to_bytes())
            .unwrap();
        let (mut t, _) = repo
            .write_metadata(ObjectType::DirTree, &DirTree::default().to_bytes())
            .unwrap();
        const DEPTH: usize = 20_000;
        for _ in 0..DEPTH {
            let tree = DirTree {
                files: vec![],
                dirs: vec![("d".into(), t, m)],
            };
            t = repo
                .write_metadata(ObjectType::DirTree, &tree.to_bytes())
                .unwrap()
                .0;
        }
        let commit = Commit {
            metadata: Default::default(),
            parent: None,
            subject: String::new(),
            body: String::new(),
            timestamp: 0,
            root_tree: t,
            root_meta: m,
        };
        let c = repo.write_commit(&commit).unwrap();
        // A thread with a small stack, as a recursing walk would need far more.
        let entries = std::thread::Builder::new()
            .stack_size(256 * 1024)
            .spawn(move || repo.dump(&c, "/", true).unwrap())
            .unwrap()
            .join()
            .unwrap();
        assert_eq!(entries.len(), DEPTH + 1);
        let one = std::thread::Builder::new()
            .stack_size(256 * 1024)
            .spawn(move || {
                let repo = Repo::open(&dir.path().join("r")).unwrap();
                repo.dump(&c, "/", false).unwrap().len()
            })
            .unwrap()
            .join()
            .unwrap();
        assert_eq!(one, 2);
    }

    /// A metadata object planted as a link to a device (or grown huge) is refused, not
    /// read without end.
    #[test]
    fn metadata_objects_are_bounded_regular_files() {
        let dir = tempfile::tempdir().unwrap();
        let repo = Repo::init(&dir.path().join("r")).unwrap();
        let c = Checksum::of(b"planted");
        let path = repo
            .path()
            .join(crate::layout::object_key(&c, ObjectType::DirTree));
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::os::unix::fs::symlink("/dev/zero", &path).unwrap();
        let e = repo.read_dirtree(&c).unwrap_err().to_string();
        assert!(e.contains("not a regular file"), "{e}");
        std::fs::remove_file(&path).unwrap();
        std::fs::File::create(&path)
            .unwrap()
            .set_len(super::super::MAX_METADATA_OBJECT + 1)
            .unwrap();
        let e = repo.read_dirtree(&c).unwrap_err().to_string();
        assert!(e.contains("more than"), "{e}");
    }
}
