//! The per-package import cache: `CACHEDIR/imports/<key>.json` remembers the root
//! dirtree/dirmeta of an imported package, whose objects live in the repository.
//!
//! The key is SHA-256 over (RPM file SHA-256, [`IMPORTER_VERSION`], every import
//! option, the users mapping): any change to what the import would produce changes the
//! key, unlike rpm-ostree's pkgcache, which reuses imports across option changes
//! (rpm-ostree#3473). A hit whose objects are gone from the repository is a miss.

use std::collections::BTreeSet;
use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use arbor_repo::checksum::{Checksum, Hasher};
use arbor_repo::{ObjectType, Repo, RepoError};
use serde::{Deserialize, Serialize};

use super::error::ImportError;
use super::users::Users;
use super::{ImportOpts, ImportedPackage, IMPORTER_VERSION};

static TMP_COUNTER: AtomicU64 = AtomicU64::new(0);

#[derive(Serialize, Deserialize)]
struct Entry {
    importer_version: u32,
    rpm_sha256: String,
    nevra: String,
    name: String,
    tree: String,
    meta: String,
    owned_dirs: BTreeSet<String>,
    deferred: Vec<super::Deferred>,
    scriptlets: Vec<String>,
    files: u64,
    bytes: u64,
}

/// The cache key (hex) of an RPM with this content under these options.
pub fn key(rpm_sha256: &Checksum, opts: &ImportOpts, users: &Users) -> String {
    let mut h = Hasher::new();
    h.update(b"arbor-import\0");
    h.update(&IMPORTER_VERSION.to_le_bytes());
    h.update(rpm_sha256.to_hex().as_bytes());
    h.update(if opts.documentation {
        b"\0docs"
    } else {
        b"\0nodocs"
    });
    for (flag, on) in [
        ("readonly-executables", opts.readonly_executables),
        ("ignore-devices", opts.ignore_devices),
        ("ima", opts.ima),
    ] {
        if on {
            h.update(b"\0");
            h.update(flag.as_bytes());
        }
    }
    if let Some(l) = &opts.labels {
        h.update(b"\0selinux\0");
        h.update(l.digest.as_bytes());
    }
    for re in &opts.remove_from {
        h.update(b"\0remove\0");
        h.update(re.as_str().as_bytes());
    }
    h.update(b"\0users\0");
    h.update(users.digest().as_bytes());
    h.finish().to_hex()
}

pub(super) fn entry_path(cache_dir: &Path, key: &str) -> PathBuf {
    cache_dir.join("imports").join(format!("{key}.json"))
}

/// The cached import for `key`, if present, readable and complete in `repo`.
pub fn load(repo: &Repo, cache_dir: &Path, key: &str) -> Option<ImportedPackage> {
    let path = entry_path(cache_dir, key);
    let text = match fs::read(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return None,
        Err(e) => {
            tracing::warn!("{}: {e}; importing again", path.display());
            return None;
        }
    };
    let parsed = serde_json::from_slice::<Entry>(&text)
        .map_err(|e| e.to_string())
        .and_then(|e| {
            let tree = Checksum::from_hex(&e.tree).map_err(|e| e.to_string())?;
            let meta = Checksum::from_hex(&e.meta).map_err(|e| e.to_string())?;
            Ok((e, tree, meta))
        });
    let (entry, tree, meta) = match parsed {
        Ok(v) => v,
        Err(e) => {
            tracing::warn!(
                "{}: unreadable cache entry ({e}); importing again",
                path.display()
            );
            return None;
        }
    };
    if entry.importer_version != IMPORTER_VERSION {
        return None;
    }
    let tree = match repo.load_mtree(&tree, &meta) {
        Ok(t) => t,
        Err(RepoError::MissingObject { .. }) => {
            tracing::debug!("{}: objects missing from the repository", path.display());
            return None;
        }
        Err(e) => {
            tracing::warn!("{}: {e}; importing again", path.display());
            return None;
        }
    };
    if let Some((p, _)) = tree
        .files_recursive()
        .into_iter()
        .find(|(_, c)| !repo.has_object(c, ObjectType::File))
    {
        tracing::debug!("{}: {p} missing from the repository", entry.nevra);
        return None;
    }
    Some(ImportedPackage {
        nevra: entry.nevra,
        name: entry.name,
        tree,
        owned_dirs: entry.owned_dirs,
        deferred: entry.deferred,
        scriptlets: entry.scriptlets,
        files: entry.files,
        bytes: entry.bytes,
    })
}

/// Record `pkg` (whose file objects are in `repo`) under `key`: writes its dirtree and
/// dirmeta objects, then the JSON entry atomically.
pub fn store(
    repo: &Repo,
    cache_dir: &Path,
    key: &str,
    rpm_sha256: &Checksum,
    pkg: &ImportedPackage,
) -> Result<(), ImportError> {
    let (tree, meta) = repo
        .write_mtree(&pkg.tree, &Default::default())
        .map_err(|e| ImportError::Cache {
            path: repo.path().to_path_buf(),
            why: e.to_string(),
        })?;
    let entry = Entry {
        importer_version: IMPORTER_VERSION,
        rpm_sha256: rpm_sha256.to_hex(),
        nevra: pkg.nevra.clone(),
        name: pkg.name.clone(),
        tree: tree.to_hex(),
        meta: meta.to_hex(),
        owned_dirs: pkg.owned_dirs.clone(),
        deferred: pkg.deferred.clone(),
        scriptlets: pkg.scriptlets.clone(),
        files: pkg.files,
        bytes: pkg.bytes,
    };
    let json = serde_json::to_vec_pretty(&entry).expect("plain struct serializes");
    write_entry(cache_dir, key, &json).map_err(|e| ImportError::Cache {
        path: entry_path(cache_dir, key),
        why: e.to_string(),
    })
}

/// Write an entry's JSON under `key`, atomically.
pub(super) fn write_entry(cache_dir: &Path, key: &str, json: &[u8]) -> io::Result<()> {
    write_atomic(&entry_path(cache_dir, key), json)
}

/// Write `data` to `path` (its directory created) through a temporary file renamed
/// over it: a reader sees the old file or the new one, never half of one.
pub(crate) fn write_atomic(path: &Path, data: &[u8]) -> io::Result<()> {
    let dir = path.parent().expect("cache paths have a parent");
    fs::create_dir_all(dir)?;
    let tmp = dir.join(format!(
        ".tmp-{}-{}",
        std::process::id(),
        TMP_COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    let written = fs::File::create(&tmp)
        .and_then(|mut f| f.write_all(data))
        .and_then(|()| fs::rename(&tmp, path));
    if written.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    written
}

/// An entry's JSON (as stored) and its root dirtree and dirmeta.
pub(super) fn read_entry(
    cache_dir: &Path,
    key: &str,
) -> Result<(Vec<u8>, Checksum, Checksum), String> {
    let path = entry_path(cache_dir, key);
    let json = fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    let e: Entry = serde_json::from_slice(&json).map_err(|e| format!("{}: {e}", path.display()))?;
    let c = |h: &str| Checksum::from_hex(h).map_err(|e| format!("{}: {e}", path.display()));
    let (tree, meta) = (c(&e.tree)?, c(&e.meta)?);
    Ok((json, tree, meta))
}

/// Check an entry from elsewhere (the shared cache) before it is written here: it
/// parses, is of this importer version and of the RPM with this digest.
pub(super) fn check_entry(json: &[u8], rpm_sha256: &Checksum) -> Result<(), String> {
    let e: Entry = serde_json::from_slice(json).map_err(|e| format!("entry: {e}"))?;
    if e.importer_version != IMPORTER_VERSION {
        return Err(format!(
            "entry of importer version {}, not {IMPORTER_VERSION}",
            e.importer_version
        ));
    }
    if e.rpm_sha256 != rpm_sha256.to_hex() {
        return Err(format!(
            "entry for the RPM {}, not {}",
            arbor_repo::checksum::quote_prefix(&e.rpm_sha256),
            rpm_sha256
        ));
    }
    for h in [&e.tree, &e.meta] {
        Checksum::from_hex(h).map_err(|err| format!("entry: tree {h:?}: {err}"))?;
    }
    Ok(())
}
