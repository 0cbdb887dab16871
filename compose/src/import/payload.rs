//! One pass over an RPM payload: every cpio entry becomes a FILE object and a node in
//! the package's [`MutableTree`], or a tmpfiles.d line, or nothing — no rootfs on disk.
//!
//! Metadata (mode, owner names, flags, capabilities, symlink targets) comes from the
//! header, never from the cpio entry headers. Hardlink sets ship their content only
//! with the last member in header order; earlier members wait in `pending` until it
//! arrives.

use std::collections::{BTreeSet, HashMap};
use std::path::Path;

use arbor_repo::checksum::Checksum;
use arbor_repo::objects::S_IFREG;
use arbor_repo::tree::{default_dirmeta, MutableTree};
use arbor_repo::{FileHeader, Repo, RepoError, Xattrs};
use rpm::{FileEntry, FileFlags, FileType};

use super::attrs::Attrs;
use super::content::{Content, ReadError};
use super::cpio::{Archive, Header};
use super::error::ImportError;
use super::header::FileIndex;
use super::paths::{self, Placement};
use super::users::Users;
use super::writer::{Item, Shared, Writer};
use super::ImportOpts;

/// Who and what is being imported.
pub struct Ctx<'a> {
    pub repo: &'a Repo,
    pub rpm: &'a Path,
    pub nevra: &'a str,
    pub name: &'a str,
    pub opts: &'a ImportOpts,
    pub users: &'a Users,
}

/// The result of one payload pass.
pub struct Output {
    pub tree: MutableTree,
    /// Tree paths of the directories the header lists (their metadata is the RPM's).
    pub owned_dirs: BTreeSet<String>,
    /// Entries in `tree` whose owner names were unknown (tree paths).
    pub deferred: Vec<super::attrs::Deferred>,
    pub files: u64,
    pub bytes: u64,
}

struct State<'a> {
    ctx: &'a Ctx<'a>,
    tree: MutableTree,
    owned_dirs: BTreeSet<String>,
    tmpfiles: Vec<String>,
    compat_links: BTreeSet<String>,
    removed: Vec<String>,
    sizes: HashMap<String, u64>,
    pending: HashMap<(u32, u32), Vec<usize>>,
    attrs: Attrs<'a>,
}

/// Stream the cpio `archive` into objects; `entries` and `index` come from the same
/// package's header.
pub fn import(
    ctx: &Ctx<'_>,
    archive: &mut Archive<'_>,
    entries: &[FileEntry<'_>],
    index: &FileIndex,
) -> Result<Output, ImportError> {
    let mut st = State {
        ctx,
        tree: MutableTree::default(),
        owned_dirs: BTreeSet::new(),
        tmpfiles: Vec::new(),
        compat_links: BTreeSet::new(),
        removed: Vec::new(),
        sizes: HashMap::new(),
        pending: HashMap::new(),
        attrs: Attrs::new(ctx.users, ctx.nevra, ctx.opts),
    };
    let shared = Shared::default();
    // In place: the stream stays on this thread even when it is not a pool thread.
    let streamed = rayon::in_place_scope(|scope| {
        let writer = Writer::new(
            scope,
            ctx.repo,
            ctx.opts.labels.as_deref(),
            ctx.opts.bare.as_deref(),
            &shared,
        );
        let r = stream(&mut st, &writer, archive, entries, index);
        if r.is_ok() {
            writer.flush();
        }
        r
    });
    let done = shared.finish().map_err(|e| st.repo_err(e));
    streamed?;
    for d in done? {
        st.insert(&d.raw, d.path, d.checksum, d.size)?;
    }
    st.finish()
}

/// The payload loop: match entries to the header, dispatch them, check completeness.
fn stream(
    st: &mut State<'_>,
    writer: &Writer<'_, '_>,
    archive: &mut Archive<'_>,
    entries: &[FileEntry<'_>],
    index: &FileIndex,
) -> Result<(), ImportError> {
    let mut seen = vec![false; entries.len()];
    while let Some(h) = archive.next_header().map_err(|e| st.corrupt(e))? {
        let idx = match &h {
            Header::Named { name, .. } => {
                let key = name
                    .strip_prefix("./")
                    .unwrap_or(name)
                    .trim_start_matches('/');
                index.by_path.get(key).copied().ok_or_else(|| {
                    st.corrupt(format!("payload entry {name:?} is not in the header"))
                })?
            }
            Header::Indexed { index } => {
                let i = *index as usize;
                if i >= entries.len() {
                    return Err(st.corrupt(format!("payload entry #{i} is not in the header")));
                }
                i
            }
        };
        if std::mem::replace(&mut seen[idx], true) {
            let p = entries[idx].path();
            return Err(st.corrupt(format!("{} appears twice in the payload", p.display())));
        }
        let e = &entries[idx];
        let link = index.links.get(&idx);
        if let Header::Indexed { .. } = h {
            // Stripped entries carry no size: rpm writes the header size for regular
            // files (0 for hardlinks but the last) and symlinks, nothing for the rest.
            let size = match e.file_type() {
                FileType::Regular if link.is_some_and(|l| !l.carrier) => 0,
                FileType::Regular | FileType::SymbolicLink => e.size() as u64,
                _ => 0,
            };
            archive.begin_data(size);
        }
        match link {
            Some(l) if !e.flags().contains(FileFlags::GHOST) => {
                st.hardlink(l.id, idx, entries, archive, l.carrier, writer)?
            }
            _ => st.entry(e, archive, writer)?,
        }
    }
    if let Some(members) = st.pending.values().next() {
        let paths: Vec<String> = members
            .iter()
            .map(|m| entries[*m].path().display().to_string())
            .collect();
        return Err(st.corrupt(format!(
            "hardlink set {} has no member carrying the content",
            paths.join(", ")
        )));
    }
    let missing: Vec<usize> = (0..entries.len())
        .filter(|i| !seen[*i] && !entries[*i].flags().contains(FileFlags::GHOST))
        .collect();
    if let Some(first) = missing.first() {
        return Err(st.corrupt(format!(
            "the payload lacks {} file(s) listed in the header, e.g. {}",
            missing.len(),
            entries[*first].path().display()
        )));
    }
    Ok(())
}

impl State<'_> {
    fn corrupt(&self, why: String) -> ImportError {
        ImportError::Corrupt {
            path: self.ctx.rpm.to_path_buf(),
            nevra: self.ctx.nevra.to_string(),
            why,
        }
    }

    fn refuse(&self, file: &str, why: impl Into<String>) -> ImportError {
        ImportError::Entry {
            path: self.ctx.rpm.to_path_buf(),
            nevra: self.ctx.nevra.to_string(),
            file: file.to_string(),
            why: why.into(),
        }
    }

    fn repo_err(&self, err: RepoError) -> ImportError {
        ImportError::Repo {
            path: self.ctx.rpm.to_path_buf(),
            nevra: self.ctx.nevra.to_string(),
            err: Box::new(err),
        }
    }

    fn read_content(
        &self,
        e: &FileEntry<'_>,
        r: &mut dyn std::io::Read,
    ) -> Result<Content, ImportError> {
        Content::read(self.ctx.repo, r, e.size() as u64).map_err(|err| match err {
            ReadError::Payload(why) => self.corrupt(format!("{}: {why}", e.path().display())),
            ReadError::Spool(path, err) => ImportError::Io { path, err },
        })
    }

    /// Where `e` goes, after docs filtering and `remove-from-packages`.
    fn placement(&mut self, e: &FileEntry<'_>) -> Result<Placement, ImportError> {
        let raw = e.path().to_string_lossy().into_owned();
        let rel = paths::normalize(&raw).map_err(|why| self.refuse(&raw, why))?;
        let placement = paths::place(&rel);
        if !self.ctx.opts.documentation && e.flags().contains(FileFlags::DOC) {
            return Ok(Placement::Drop);
        }
        if self.ctx.opts.remove_from.iter().any(|re| re.is_match(&raw)) {
            if let Placement::Tree(p) = placement {
                self.removed.push(p);
            }
            return Ok(Placement::Drop);
        }
        if matches!(placement, Placement::Tree(_)) {
            if let Some(link) = paths::compat_link(&rel) {
                self.compat_links.insert(link);
            }
        }
        Ok(placement)
    }

    /// Any entry that is not part of a hardlink set.
    fn entry(
        &mut self,
        e: &FileEntry<'_>,
        r: &mut dyn std::io::Read,
        writer: &Writer<'_, '_>,
    ) -> Result<(), ImportError> {
        if e.flags().contains(FileFlags::GHOST) {
            return Ok(());
        }
        let raw = e.path().to_string_lossy().into_owned();
        let placement = match e.file_type() {
            FileType::Dir | FileType::SymbolicLink | FileType::Regular => self.placement(e)?,
            // rpm-ostree's ignore-devices (default true): device nodes are dropped.
            FileType::CharacterDevice | FileType::BlockDevice if self.ctx.opts.ignore_devices => {
                tracing::debug!("{}: {raw}: device node dropped (ignore-devices)", self.ctx.nevra);
                return Ok(());
            }
            other => {
                return Err(self.refuse(
                    &raw,
                    format!("{other:?} entries (device nodes, FIFOs, sockets) cannot be stored in an OSTree commit"),
                ))
            }
        };
        match (e.file_type(), placement) {
            (_, Placement::Drop) => {}
            (FileType::Dir, Placement::Tmpfiles(abs)) => {
                let line = paths::dir_line(&abs, e.mode().raw_mode().into(), e.user(), e.group())
                    .map_err(|why| self.refuse(&raw, why))?;
                self.tmpfiles.push(line);
            }
            (FileType::SymbolicLink, Placement::Tmpfiles(abs)) => {
                let header = self
                    .attrs
                    .symlink(e)
                    .map_err(|why| self.refuse(&raw, why))?;
                let line = paths::symlink_line(&abs, &header.symlink_target)
                    .map_err(|why| self.refuse(&raw, why))?;
                self.tmpfiles.push(line);
            }
            // Regular files under /var and /run: rpm-ostree drops them too.
            (_, Placement::Tmpfiles(_)) => {}
            (FileType::Dir, Placement::Tree(p)) => {
                let meta = self.attrs.dir(e).map_err(|why| self.refuse(&raw, why))?;
                match self.tree.ensure_dir(&p, &default_dirmeta()) {
                    Ok(dir) => dir.meta = meta,
                    Err(err) => return Err(self.refuse(&raw, err.to_string())),
                }
                self.owned_dirs.insert(p);
            }
            (FileType::SymbolicLink, Placement::Tree(p)) => {
                let mut header = self
                    .attrs
                    .symlink(e)
                    .map_err(|why| self.refuse(&raw, why))?;
                self.label(&p, &mut header)
                    .map_err(|why| self.refuse(&raw, why))?;
                let c = header.checksum(b"");
                self.ctx
                    .repo
                    .write_file_object(&c, &header, b"")
                    .map_err(|err| self.repo_err(err))?;
                self.insert(&raw, p, c, 0)?;
            }
            (_, Placement::Tree(path)) => {
                let content = self.read_content(e, r)?;
                let mut header = self
                    .attrs
                    .regular(e)
                    .map_err(|why| self.refuse(&raw, why))?;
                self.label(&path, &mut header)
                    .map_err(|why| self.refuse(&raw, why))?;
                writer.submit(content, vec![Item { header, raw, path }]);
            }
        }
        Ok(())
    }

    /// A member of a hardlink set: wait for the member that carries the content, then
    /// give every member (that is placed in the tree) an object with that content.
    fn hardlink(
        &mut self,
        id: (u32, u32),
        idx: usize,
        entries: &[FileEntry<'_>],
        r: &mut dyn std::io::Read,
        carrier: bool,
        writer: &Writer<'_, '_>,
    ) -> Result<(), ImportError> {
        let mut members = self.pending.remove(&id).unwrap_or_default();
        members.push(idx);
        if !carrier {
            self.pending.insert(id, members);
            return Ok(());
        }
        let mut placed = Vec::new();
        for &m in &members {
            if let Placement::Tree(p) = self.placement(&entries[m])? {
                placed.push((m, p));
            }
        }
        if placed.is_empty() {
            return Ok(());
        }
        let content = self.read_content(&entries[idx], r)?;
        let mut items = Vec::with_capacity(placed.len());
        for (m, path) in placed {
            let raw = entries[m].path().to_string_lossy().into_owned();
            // Labeled by the writer's job (the lookups are the costly part of a
            // labeled import: on the pool, not on this streaming thread).
            let header = (self.attrs.regular(&entries[m])).map_err(|why| self.refuse(&raw, why))?;
            items.push(Item { header, raw, path });
        }
        writer.submit(content, items);
        Ok(())
    }

    /// The SELinux label of a file at tree path `path`, when labeling.
    fn label(&self, path: &str, header: &mut FileHeader) -> Result<(), String> {
        if let Some(l) = &self.ctx.opts.labels {
            let label = l.label_for(path, header.mode).map_err(|e| e.to_string())?;
            header.xattrs = crate::selinux::with_label(&header.xattrs, label);
        }
        Ok(())
    }

    fn insert(&mut self, raw: &str, p: String, c: Checksum, size: u64) -> Result<(), ImportError> {
        match self.tree.insert_file(&p, c, &default_dirmeta()) {
            Ok(Some(old)) if old != c => {
                Err(self.refuse(raw, format!("two entries of this package land on {p}")))
            }
            Ok(_) => {
                self.sizes.insert(p, size);
                Ok(())
            }
            Err(err) => Err(self.refuse(raw, err.to_string())),
        }
    }

    fn finish(mut self) -> Result<Output, ImportError> {
        for p in std::mem::take(&mut self.removed) {
            self.tree.remove(&p);
            self.owned_dirs
                .retain(|d| d != &p && !d.starts_with(&format!("{p}/")));
        }
        let links = std::mem::take(&mut self.compat_links);
        self.tmpfiles
            .extend(links.iter().map(|l| paths::compat_link_line(l)));
        if !self.tmpfiles.is_empty() {
            let name = format!("{}.conf", self.ctx.name);
            let path = format!("{}/{name}", paths::TMPFILES_DIR);
            let mut text = self.tmpfiles.join("\n");
            text.push('\n');
            let mut header = FileHeader {
                uid: 0,
                gid: 0,
                mode: S_IFREG | 0o644,
                symlink_target: String::new(),
                xattrs: Xattrs::default(),
            };
            self.label(&path, &mut header)
                .map_err(|why| self.refuse(&path, why))?;
            let c = header.checksum(text.as_bytes());
            self.ctx
                .repo
                .write_file_object(&c, &header, text.as_bytes())
                .map_err(|err| self.repo_err(err))?;
            self.insert(&path, path.clone(), c, text.len() as u64)?;
        }
        let mut deferred = Vec::new();
        let mut seen = BTreeSet::new();
        for mut d in std::mem::take(&mut self.attrs.deferred) {
            let Ok(rel) = paths::normalize(&d.path) else {
                continue;
            };
            if let Placement::Tree(p) = paths::place(&rel) {
                if self.tree.lookup(&p).is_some() && seen.insert(p.clone()) {
                    d.path = p;
                    deferred.push(d);
                }
            }
        }
        let mut files = 0;
        let mut bytes = 0;
        for (p, _) in self.tree.files_recursive() {
            files += 1;
            bytes += self.sizes.get(&p[1..]).copied().unwrap_or(0);
        }
        Ok(Output {
            tree: self.tree,
            owned_dirs: self.owned_dirs,
            deferred,
            files,
            bytes,
        })
    }
}
