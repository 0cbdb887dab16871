//! Verifying a repository: every loose object re-checksummed and re-parsed, every
//! ref's commit graph present.

use std::collections::HashSet;
use std::fs;
use std::path::PathBuf;
use std::sync::Mutex;

use rayon::prelude::*;

use super::{IoContext, Repo, RepoError, Result};
use crate::checksum::Checksum;
use crate::filez::verify_archive_file_reader;
use crate::layout;
use crate::objects::{DirTree, ObjectType};
use crate::progress::Progress;

#[derive(Debug, Default)]
pub struct FsckReport {
    pub objects_checked: u64,
    pub commits_checked: u64,
    /// Commits held for their history only (no content; `arbor pull --metadata-only`).
    pub partial_commits: u64,
    /// One line per problem, each naming the object or ref.
    pub errors: Vec<String>,
}

impl Repo {
    /// Check every object under `objects/` and the reachability of every ref.
    pub fn fsck(&self, progress: &dyn Progress) -> Result<FsckReport> {
        let mut objects = Vec::new();
        let top = self.path().join(layout::OBJECTS_PREFIX);
        let mut report = FsckReport::default();
        for d in fs::read_dir(&top).at(&top)? {
            let d = d.at(&top)?;
            let prefix = d.file_name().to_string_lossy().into_owned();
            let dir = d.path();
            if !dir.is_dir() {
                continue;
            }
            for f in fs::read_dir(&dir).at(&dir)? {
                let f = f.at(&dir)?;
                objects.push((
                    prefix.clone(),
                    f.file_name().to_string_lossy().into_owned(),
                    f.path(),
                ));
            }
        }
        progress.start("fsck", Some(objects.len() as u64));
        let errors = Mutex::new(Vec::new());
        objects.par_iter().for_each(|(prefix, name, path)| {
            if let Err(e) = self.check_loose(prefix, name, path) {
                errors.lock().expect("errors lock").push(e);
            }
            progress.inc(1);
        });
        progress.finish();
        report.objects_checked = objects.len() as u64;
        report.errors = errors.into_inner().expect("errors lock");
        report.errors.sort();

        let mut seen = HashSet::new();
        for (name, commit) in self.list_refs()? {
            let mut next = Some(commit);
            // Walk the history until a commit is missing (allowed for parents: ostree
            // repos are routinely shallow) or already seen.
            let mut first = true;
            while let Some(c) = next {
                if !seen.insert(c) {
                    break;
                }
                match self.read_commit(&c) {
                    Ok(commit) if self.is_partial(&c) => {
                        // Fetched for its history only (`arbor pull --metadata-only`).
                        report.commits_checked += 1;
                        report.partial_commits += 1;
                        next = commit.parent;
                    }
                    Ok(commit) => {
                        report.commits_checked += 1;
                        if let Err(e) =
                            self.check_tree_present(&commit.root_tree, &commit.root_meta)
                        {
                            report.errors.push(format!("ref {name}: commit {c}: {e}"));
                        }
                        next = commit.parent;
                    }
                    Err(RepoError::MissingObject { .. }) if !first => break,
                    Err(e) => {
                        report.errors.push(format!("ref {name}: {e}"));
                        break;
                    }
                }
                first = false;
            }
        }
        Ok(report)
    }

    pub(super) fn check_loose(
        &self,
        prefix: &str,
        name: &str,
        path: &PathBuf,
    ) -> Result<(), String> {
        let rel = format!("{}{prefix}/{name}", layout::OBJECTS_PREFIX);
        let (checksum, ty) = layout::parse_object_key(&rel)
            .ok_or_else(|| format!("{rel}: not an object (objects/XX/<62 hex>.<type>)"))?;
        let fail = |e: RepoError| format!("{rel}: {e}");
        match ty {
            // Hashed as it is inflated: a large file is never held whole.
            ObjectType::File => fs::File::open(path)
                .map_err(|e| format!("{rel}: {e}"))
                .and_then(|f| verify_archive_file_reader(f, &checksum).map_err(fail)),
            ObjectType::Commit => self.read_commit(&checksum).map(drop).map_err(fail),
            ObjectType::DirTree => {
                let t = self.read_dirtree(&checksum).map_err(fail)?;
                if !t.is_sorted() {
                    return Err(format!(
                        "{rel}: dirtree entries are not sorted (path lookups would fail)"
                    ));
                }
                Ok(())
            }
            ObjectType::DirMeta => self.read_dirmeta(&checksum).map(drop).map_err(fail),
            ObjectType::CommitMeta => self.read_commitmeta(&checksum).map(drop).map_err(fail),
            ObjectType::TombstoneCommit => Ok(()),
        }
    }

    /// Every object below a root is present (contents are checked by the loose scan).
    fn check_tree_present(&self, tree: &Checksum, meta: &Checksum) -> Result<()> {
        let mut stack = vec![(*tree, *meta)];
        let mut seen = HashSet::new();
        while let Some((t, m)) = stack.pop() {
            if !seen.insert(t) {
                continue;
            }
            if !self.has_object(&m, ObjectType::DirMeta) {
                return Err(self.missing(m, ObjectType::DirMeta));
            }
            let dt: DirTree = self.read_dirtree(&t)?;
            for (_, c) in &dt.files {
                if !self.has_object(c, ObjectType::File) {
                    return Err(self.missing(*c, ObjectType::File));
                }
            }
            stack.extend(dt.dirs.iter().map(|(_, t, m)| (*t, *m)));
        }
        Ok(())
    }

    fn missing(&self, checksum: Checksum, ty: ObjectType) -> RepoError {
        RepoError::MissingObject {
            repo: self.path().to_path_buf(),
            checksum,
            ext: ty.archive_extension(),
        }
    }
}
