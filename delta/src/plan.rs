//! What a delta must carry: the objects reachable from `to` and not from `from`, in a
//! deterministic order (depth-first, names in `strcmp` order), and which new regular
//! files resemble an old one closely enough to be sent as a bsdiff.
//!
//! Similar files are matched first by path (the same path in `from`), then the way
//! ostree does (`_ostree_delta_compute_similar_objects`): a shared basename — exact, then
//! the part before the first `.` — and a size within ±30 %, scanning old files by
//! increasing size. Empty files and `.xz`/`.bz2` files are never candidates; the old
//! file must be world-readable (ostree's rule, so bare-user clients can read it).

use std::collections::{HashMap, HashSet};

use arbor_repo::objects::{FileHeader, ObjectType};
use arbor_repo::{Checksum, Repo};
use rayon::prelude::*;

use crate::error::Result;

/// ostree's `CONTENT_SIZE_SIMILARITY_THRESHOLD_PERCENT`.
const SIMILARITY_PERCENT: u64 = 30;
const S_IROTH: u32 = 0o004;

/// Everything reachable from one commit (the commit object itself excluded).
#[derive(Debug, Default)]
pub struct Reachable {
    /// Dirtree and dirmeta objects, first occurrence order.
    pub meta: Vec<(ObjectType, Checksum)>,
    pub meta_set: HashSet<(ObjectType, Checksum)>,
    /// Every file entry: (path, content checksum), depth-first order.
    pub files: Vec<(String, Checksum)>,
    pub file_set: HashSet<Checksum>,
}

impl Reachable {
    /// Walk `commit`'s tree. `lookup` may supply dirtrees from elsewhere (objects a
    /// delta produced); otherwise they are read from `repo`.
    pub fn walk(repo: &Repo, commit: &Checksum) -> Result<Reachable> {
        let c = repo.read_commit(commit)?;
        let mut r = Reachable::default();
        let mut seen_trees: HashMap<Checksum, arbor_repo::DirTree> = HashMap::new();
        let mut stack = vec![(String::new(), c.root_tree, c.root_meta)];
        while let Some((path, tree, meta)) = stack.pop() {
            r.add_meta(ObjectType::DirTree, tree);
            r.add_meta(ObjectType::DirMeta, meta);
            let t = match seen_trees.get(&tree) {
                Some(t) => t.clone(),
                None => {
                    let t = repo.read_dirtree(&tree)?;
                    seen_trees.insert(tree, t.clone());
                    t
                }
            };
            for (name, csum) in &t.files {
                r.files.push((format!("{path}/{name}"), *csum));
                r.file_set.insert(*csum);
            }
            // Reverse so the stack pops subdirectories in name order.
            for (name, st, sm) in t.dirs.iter().rev() {
                stack.push((format!("{path}/{name}"), *st, *sm));
            }
        }
        Ok(r)
    }

    fn add_meta(&mut self, ty: ObjectType, c: Checksum) {
        if self.meta_set.insert((ty, c)) {
            self.meta.push((ty, c));
        }
    }

    pub fn contains(&self, ty: ObjectType, c: &Checksum) -> bool {
        match ty {
            ObjectType::File => self.file_set.contains(c),
            _ => self.meta_set.contains(&(ty, *c)),
        }
    }
}

/// A content object with its header and size.
#[derive(Debug, Clone)]
pub struct FileInfo {
    pub checksum: Checksum,
    pub header: FileHeader,
    pub size: u64,
    /// Every path it appears at (first one first).
    pub paths: Vec<String>,
}

impl FileInfo {
    pub fn is_regular(&self) -> bool {
        !self.header.is_symlink()
    }
}

/// Unique files of `files` (first-occurrence order) with their headers, read in parallel.
pub fn file_infos(
    repo: &Repo,
    files: &[(String, Checksum)],
    keep: impl Fn(&Checksum) -> bool,
) -> Result<Vec<FileInfo>> {
    let mut order: Vec<Checksum> = Vec::new();
    let mut paths: HashMap<Checksum, Vec<String>> = HashMap::new();
    for (p, c) in files {
        if !keep(c) {
            continue;
        }
        let e = paths.entry(*c).or_default();
        if e.is_empty() {
            order.push(*c);
        }
        e.push(p.clone());
    }
    let headers: Vec<(FileHeader, u64)> = order
        .par_iter()
        .map(|c| repo.read_file_header(c))
        .collect::<std::result::Result<_, _>>()?;
    Ok(order
        .into_iter()
        .zip(headers)
        .map(|(checksum, (header, size))| FileInfo {
            paths: paths.remove(&checksum).unwrap_or_default(),
            checksum,
            header,
            size,
        })
        .collect())
}

fn basename(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

/// ostree's `sizename_is_delta_candidate`.
fn is_candidate(f: &FileInfo) -> bool {
    f.is_regular()
        && f.size > 0
        && !f.paths.iter().any(|p| {
            let b = basename(p);
            b.rsplit_once('.')
                .is_some_and(|(_, ext)| ext == "xz" || ext == "bz2")
        })
}

/// ostree's `string_array_nonempty_intersection`.
fn names_intersect(a: &[String], b: &[String], fuzzy: bool) -> bool {
    a.iter().any(|x| {
        let x = basename(x);
        b.iter().any(|y| {
            let y = basename(y);
            match (fuzzy, x.find('.'), y.find('.')) {
                (true, Some(i), Some(j)) if i > 0 && i == j => x[..i] == y[..j],
                _ => x == y,
            }
        })
    })
}

/// For each new regular file, the old file to diff against (new → old).
pub fn similar_files(new: &[FileInfo], old: &[FileInfo]) -> HashMap<Checksum, Checksum> {
    let usable: Vec<&FileInfo> = old
        .iter()
        .filter(|f| is_candidate(f) && f.header.mode & S_IROTH != 0)
        .collect();
    let mut by_path: HashMap<&str, &FileInfo> = HashMap::new();
    for f in &usable {
        for p in &f.paths {
            by_path.insert(p.as_str(), f);
        }
    }
    let mut by_size = usable.clone();
    by_size.sort_by_key(|f| (f.size, f.checksum));

    let mut out = HashMap::new();
    for f in new.iter().filter(|f| is_candidate(f)) {
        if let Some(o) = f.paths.iter().find_map(|p| by_path.get(p.as_str())) {
            out.insert(f.checksum, o.checksum);
            continue;
        }
        let min = f.size - f.size * SIMILARITY_PERCENT / 100;
        let max = f.size + f.size * SIMILARITY_PERCENT / 100;
        let lower = by_size.partition_point(|o| o.size < min);
        'fuzzy: for fuzzy in [false, true] {
            for o in &by_size[lower..] {
                if o.size > max {
                    break;
                }
                if names_intersect(&o.paths, &f.paths, fuzzy) {
                    out.insert(f.checksum, o.checksum);
                    break 'fuzzy;
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use arbor_repo::objects::Xattrs;

    fn info(name: &str, size: u64, paths: &[&str]) -> FileInfo {
        FileInfo {
            checksum: Checksum::of(name.as_bytes()),
            header: FileHeader {
                uid: 0,
                gid: 0,
                mode: 0o100644,
                symlink_target: String::new(),
                xattrs: Xattrs::default(),
            },
            size,
            paths: paths.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn matches_by_path_then_basename_and_size() {
        let old = vec![
            info("o1", 1000, &["/usr/bin/tool"]),
            info("o2", 5000, &["/lib/modules/1.0/ext4.ko"]),
            info("o3", 100, &["/etc/libfoo.so.1"]),
            info("o4", 10, &["/data.xz"]),
            info("o5", 0, &["/empty"]),
        ];
        let new = vec![
            info("n1", 9000, &["/usr/bin/tool"]), // path wins, size ignored
            info("n2", 5100, &["/lib/modules/2.0/ext4.ko"]), // basename + size
            info("n3", 9000, &["/lib/modules/2.0/xfs.ko"]), // no match
            info("n4", 110, &["/etc/libfoo.so.2"]), // fuzzy: "libfoo"
            info("n5", 11, &["/data.xz"]),        // never for .xz
            info("n6", 1, &["/empty"]),           // old is empty
        ];
        let m = similar_files(&new, &old);
        let c = |s: &str| Checksum::of(s.as_bytes());
        assert_eq!(m.get(&c("n1")), Some(&c("o1")));
        assert_eq!(m.get(&c("n2")), Some(&c("o2")));
        assert_eq!(m.get(&c("n3")), None);
        assert_eq!(m.get(&c("n4")), Some(&c("o3")));
        assert_eq!(m.get(&c("n5")), None);
        assert_eq!(m.get(&c("n6")), None);
    }
}
