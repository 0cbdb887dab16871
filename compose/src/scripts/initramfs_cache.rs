//! The initramfs, cached: what `depmod` and the generator make is a function of the tree
//! they run on, their command line and `SOURCE_DATE_EPOCH` (the composes are
//! reproducible: two runs on one tree make the same image, which the release tests
//! check commit for commit). So the tree after them is remembered under a key over
//! exactly those — the tree's root dirtree and dirmeta checksums (every file, mode,
//! owner and xattr below), the argv, the timestamp — in the local cache
//! (`CACHEDIR/initramfs/<key>.json`: the tree after, whose objects live in the
//! repository) and in the shared cache (`initramfs/<key>.pack`: the entry and the
//! objects the tree before does not have, verified as import packs are). Any change to
//! the tree — a package, a config file, a module — is another key.

use std::collections::HashSet;
use std::fs;
use std::path::{Path, PathBuf};

use arbor_repo::checksum::{Checksum, Hasher};
use arbor_repo::tree::MutableTree;
use arbor_repo::{ObjectType, Repo};
use serde::{Deserialize, Serialize};

use super::ScriptOpts;
use crate::import::pack;
use crate::shared;

/// Bumped when what a cached entry means changes.
const VERSION: u32 = 1;

#[derive(Serialize, Deserialize)]
struct Entry {
    version: u32,
    /// The tree the initramfs was made from (root dirtree, dirmeta).
    before: (String, String),
    /// The tree after.
    after: (String, String),
}

/// The tree an initramfs is about to be made from, written to the repository.
pub struct Before {
    pub key: String,
    tree: Checksum,
    meta: Checksum,
}

fn hex_pair((t, m): (&Checksum, &Checksum)) -> (String, String) {
    (t.to_hex(), m.to_hex())
}

/// Write `tree`'s dirtrees (the commit writes most of them anyway) and compute the key.
pub fn before(repo: &Repo, tree: &MutableTree, argv: &[String], timestamp: u64) -> Option<Before> {
    let (t, m) = match repo.write_mtree(tree, &Default::default()) {
        Ok(r) => r,
        Err(e) => {
            tracing::warn!("initramfs cache: {e}; making the initramfs without it");
            return None;
        }
    };
    let mut h = Hasher::new();
    h.update(b"arbor-initramfs\0");
    h.update(&VERSION.to_le_bytes());
    h.update(&t.0);
    h.update(&m.0);
    h.update(&timestamp.to_le_bytes());
    for a in argv {
        h.update(&(a.len() as u64).to_le_bytes());
        h.update(a.as_bytes());
    }
    Some(Before {
        key: h.finish().to_hex(),
        tree: t,
        meta: m,
    })
}

fn entry_path(cachedir: &Path, key: &str) -> PathBuf {
    cachedir.join("initramfs").join(format!("{key}.json"))
}

fn parse(json: &[u8], b: &Before) -> Result<(Checksum, Checksum), String> {
    let e: Entry = serde_json::from_slice(json).map_err(|e| format!("entry: {e}"))?;
    if e.version != VERSION {
        return Err(format!("entry of version {}, not {VERSION}", e.version));
    }
    if e.before != hex_pair((&b.tree, &b.meta)) {
        return Err("entry for another tree".into());
    }
    let c = |h: &str| Checksum::from_hex(h).map_err(|e| format!("entry: {h:?}: {e}"));
    Ok((c(&e.after.0)?, c(&e.after.1)?))
}

/// The tree after, from the local cache, if its entry is sound and every object there.
fn load_local(repo: &Repo, cachedir: &Path, b: &Before) -> Option<MutableTree> {
    let path = entry_path(cachedir, &b.key);
    let json = fs::read(&path).ok()?;
    let (t, m) = match parse(&json, b) {
        Ok(r) => r,
        Err(e) => {
            tracing::warn!("{}: {e}; making the initramfs again", path.display());
            return None;
        }
    };
    let tree = repo.load_mtree(&t, &m).ok()?;
    if let Some((p, _)) = tree
        .files_recursive()
        .into_iter()
        .find(|(_, c)| !repo.has_object(c, ObjectType::File))
    {
        tracing::debug!("{}: {p} missing from the repository", path.display());
        return None;
    }
    Some(tree)
}

/// What the caches hold for `b`.
pub enum Found {
    Tree(MutableTree),
    /// Not cached; `replace`: the shared cache's pack was refused.
    Missing {
        replace: bool,
    },
}

/// The tree after the initramfs, from the local cache or else the shared one.
pub fn load(repo: &Repo, opts: &ScriptOpts, b: &Before) -> Found {
    if let Some(t) = load_local(repo, &opts.cachedir, b) {
        return Found::Tree(t);
    }
    let Some(sc) = opts.shared.as_deref() else {
        return Found::Missing { replace: false };
    };
    let name = format!("initramfs/{}.pack", b.key);
    let tmp = pack::spool(&opts.cachedir, &b.key);
    let found = match sc.get(&name, &tmp, pack::MAX_PACK) {
        Ok(false) => Found::Missing { replace: false },
        Err(why) => {
            shared::failed(sc, &format!("GET {name}"), &why);
            Found::Missing { replace: false }
        }
        Ok(true) => {
            let len = fs::metadata(&tmp).map(|m| m.len()).unwrap_or(0);
            let got = pack::unpack(repo, &tmp, |e| parse(e, b).map(drop)).and_then(|entry| {
                write_entry(&opts.cachedir, &b.key, &entry)?;
                load_local(repo, &opts.cachedir, b)
                    .ok_or_else(|| "its tree needs objects it does not carry".to_string())
            });
            match got {
                Ok(t) => {
                    shared::bump(&sc.stats().initramfs_fetched, 1);
                    shared::bump(&sc.stats().bytes_fetched, len);
                    Found::Tree(t)
                }
                Err(why) => {
                    let _ = fs::remove_file(entry_path(&opts.cachedir, &b.key));
                    shared::rejected(sc, &name, &why, "making the initramfs instead");
                    Found::Missing { replace: true }
                }
            }
        }
    };
    let _ = fs::remove_file(&tmp);
    found
}

fn write_entry(cachedir: &Path, key: &str, json: &[u8]) -> Result<(), String> {
    let path = entry_path(cachedir, key);
    crate::import::write_atomic(&path, json).map_err(|e| format!("{}: {e}", path.display()))
}

/// Every object of the tree under (tree, meta), as the repository holds it.
fn objects(repo: &Repo, tree: &Checksum, meta: &Checksum) -> Result<HashSet<Checksum>, String> {
    let mut out = HashSet::new();
    let mut stack = vec![(*tree, *meta)];
    while let Some((t, m)) = stack.pop() {
        out.insert(m);
        if !out.insert(t) {
            continue;
        }
        let dt = repo.read_dirtree(&t).map_err(|e| e.to_string())?;
        out.extend(dt.files.iter().map(|(_, c)| *c));
        stack.extend(dt.dirs.iter().map(|(_, t, m)| (*t, *m)));
    }
    Ok(out)
}

/// Remember `after` (the tree the initramfs step left) for `b`, locally and in the
/// shared cache. Best effort: a cache that cannot be written costs the next compose
/// time, not this one.
pub fn store(repo: &Repo, opts: &ScriptOpts, b: &Before, after: &MutableTree, replace: bool) {
    let (t, m) = match repo.write_mtree(after, &Default::default()) {
        Ok(r) => r,
        Err(e) => {
            tracing::warn!("initramfs cache: {e}");
            return;
        }
    };
    let entry = Entry {
        version: VERSION,
        before: hex_pair((&b.tree, &b.meta)),
        after: hex_pair((&t, &m)),
    };
    let json = serde_json::to_vec_pretty(&entry).expect("plain struct serializes");
    if let Err(e) = write_entry(&opts.cachedir, &b.key, &json) {
        tracing::warn!("initramfs cache: {e}");
    }
    let Some(sc) = opts.shared.as_deref().filter(|s| s.writable()) else {
        return;
    };
    let name = format!("initramfs/{}.pack", b.key);
    let tmp = pack::spool(&opts.cachedir, &b.key);
    let made = objects(repo, &b.tree, &b.meta)
        .and_then(|known| pack::write(repo, &json, (&t, &m), &known, &tmp));
    match made {
        Ok(()) => shared::store(sc, &name, &tmp, replace, &sc.stats().initramfs_stored),
        Err(why) => shared::failed(sc, &format!("packing {name}"), &why),
    }
    let _ = fs::remove_file(&tmp);
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::Ordering::Relaxed;
    use std::sync::Arc;

    use arbor_repo::tree::default_dirmeta;
    use arbor_repo::{FileHeader, Xattrs};

    use super::*;
    use crate::shared::testing::DirCache;
    use crate::shared::SharedCache;

    fn file(repo: &Repo, content: &[u8]) -> Checksum {
        let h = FileHeader {
            uid: 0,
            gid: 0,
            mode: 0o100644,
            symlink_target: String::new(),
            xattrs: Xattrs::new(Vec::new()),
        };
        let c = h.checksum(content);
        repo.write_file_object(&c, &h, content).unwrap();
        c
    }

    /// A runner stores the tree after its initramfs step; another (empty but for the
    /// tree before) takes it from the shared cache; another timestamp is another key; a
    /// pack whose tree needs objects it lacks, or a damaged one, is refused and replaced.
    #[test]
    fn initramfs_result_goes_through_the_shared_cache() {
        let tmp = tempfile::tempdir().unwrap();
        let blobs = tmp.path().join("shared");
        let argv = ["/usr/sbin/mkinitramfs".to_string(), "-o".into(), "x".into()];
        let runner = |name: &str| {
            fs::create_dir_all(tmp.path().join(name)).unwrap();
            let repo = Repo::init(&tmp.path().join(name).join("repo")).unwrap();
            let sc = Arc::new(DirCache::new(&blobs));
            let opts = ScriptOpts {
                cachedir: tmp.path().join(name).join("cache"),
                timeout: std::time::Duration::from_secs(1),
                timestamp: 1_700_000_000,
                shared: Some(sc.clone() as Arc<dyn SharedCache>),
            };
            let mut before = MutableTree::new(default_dirmeta());
            let m = default_dirmeta();
            // Incompressible, so that a pack carrying it would show in its size.
            let kernel: Vec<u8> = (0u32..200_000)
                .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
                .collect();
            before
                .insert_file("usr/lib/modules/1/vmlinuz", file(&repo, &kernel), &m)
                .unwrap();
            (repo, sc, opts, before)
        };
        let (repo_a, sc_a, opts_a, before_a) = runner("a");
        let b_a = before(&repo_a, &before_a, &argv, opts_a.timestamp).unwrap();
        assert!(matches!(
            load(&repo_a, &opts_a, &b_a),
            Found::Missing { replace: false }
        ));
        let mut after = before_a.clone();
        let m = default_dirmeta();
        after
            .insert_file(
                "usr/lib/modules/1/initramfs.img",
                file(&repo_a, b"image"),
                &m,
            )
            .unwrap();
        store(&repo_a, &opts_a, &b_a, &after, false);
        assert_eq!(sc_a.stats.initramfs_stored.load(Relaxed), 1);
        // The same runner: from its local cache.
        assert!(matches!(load(&repo_a, &opts_a, &b_a), Found::Tree(t) if t == after));

        let (repo_b, sc_b, opts_b, before_b) = runner("b");
        let b_b = before(&repo_b, &before_b, &argv, opts_b.timestamp).unwrap();
        assert_eq!(b_a.key, b_b.key);
        assert!(matches!(load(&repo_b, &opts_b, &b_b), Found::Tree(t) if t == after));
        assert_eq!(sc_b.stats.initramfs_fetched.load(Relaxed), 1);
        // Another timestamp: another key.
        let other = before(&repo_b, &before_b, &argv, 1).unwrap();
        assert_ne!(other.key, b_b.key);

        let pack = blobs.join(format!("initramfs/{}.pack", b_a.key));
        let good = fs::read(&pack).unwrap();
        // The pack carries what the tree before lacks: the image, not the kernel.
        assert!(good.len() < 50_000, "{} bytes", good.len());
        for (i, bad) in [good[..good.len() - 30].to_vec(), {
            let mut p = good.clone();
            let at = p.len() - 10;
            p[at] ^= 1;
            p
        }]
        .into_iter()
        .enumerate()
        {
            fs::write(&pack, &bad).unwrap();
            let (repo_c, sc_c, opts_c, before_c) = runner(&format!("c{i}"));
            let b_c = before(&repo_c, &before_c, &argv, opts_c.timestamp).unwrap();
            assert!(
                matches!(
                    load(&repo_c, &opts_c, &b_c),
                    Found::Missing { replace: true }
                ),
                "bad pack {i}"
            );
            assert_eq!(sc_c.stats.rejected.load(Relaxed), 1, "bad pack {i}");
            file(&repo_c, b"image"); // what making it here writes
            store(&repo_c, &opts_c, &b_c, &after, true);
            assert_eq!(fs::read(&pack).unwrap(), good, "bad pack {i} replaced");
        }
    }
}
