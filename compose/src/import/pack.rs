//! One package's import as a single blob for the shared cache (`imports/<key>.pack`):
//! the import-cache entry and every object it needs, so that a runner with an empty
//! repository takes the import with one GET instead of decompressing, hashing and
//! deflating the RPM's files again.
//!
//! Format: `ARBORPK1`, the entry's length (u64 LE) and JSON, then records — object
//! type (u8: 1 file, 2 dirtree, 3 dirmeta), its checksum (32 bytes), length (u64 LE),
//! the object's bytes as an archive repository stores them — and a 0 byte at the end.
//!
//! Unpacking trusts nothing: bounded lengths, every metadata object hashed and parsed,
//! every content object inflated and hashed ([`filez::verify_archive_file_reader`]), the
//! entry of this importer version and of the RPM the key names, no bytes after the end.
//! An object reaches the repository only verified; the entry, which makes the objects a
//! cached import, only once the whole pack is.

use std::collections::{BTreeSet, HashSet};
use std::fs::{self, File};
use std::io::{self, BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use arbor_repo::checksum::Checksum;
use arbor_repo::objects::DirTree;
use arbor_repo::{filez, ObjectType, Repo};

use super::{cache, ImportedPackage};
use crate::shared::{self, SharedCache};

const MAGIC: &[u8; 8] = b"ARBORPK1";
/// An entry (JSON) is a few KiB; metadata objects are bounded as clients bound them.
const MAX_ENTRY: u64 = 16 << 20;
const MAX_METADATA: u64 = 10 << 20;
/// Content objects up to this size are read into memory once, verified and written.
const IN_MEMORY: u64 = 16 << 20;
/// A whole pack: an RPM's import is never larger than a few GiB.
pub const MAX_PACK: u64 = 16 << 30;

fn type_byte(ty: ObjectType) -> u8 {
    match ty {
        ObjectType::File => 1,
        ObjectType::DirTree => 2,
        _ => 3,
    }
}

/// Write a pack with `entry` (JSON) to `dest`: the dirtrees and dirmeta under
/// `(tree, meta)` and every file they name, but for what `known` holds (objects the
/// reader has already: a dirtree there is skipped with everything below it).
pub fn write(
    repo: &Repo,
    entry: &[u8],
    (tree, meta): (&Checksum, &Checksum),
    known: &HashSet<Checksum>,
    dest: &Path,
) -> Result<(), String> {
    let mut out = BufWriter::new(File::create(dest).map_err(|e| e.to_string())?);
    let w = |out: &mut BufWriter<File>, b: &[u8]| out.write_all(b).map_err(|e| e.to_string());
    w(&mut out, MAGIC)?;
    w(&mut out, &(entry.len() as u64).to_le_bytes())?;
    w(&mut out, entry)?;
    let mut files = BTreeSet::new();
    let mut seen = BTreeSet::new();
    let mut stack = vec![(*tree, *meta)];
    let record = |out: &mut BufWriter<File>, ty: ObjectType, c: &Checksum, len: u64| {
        w(out, &[type_byte(ty)])?;
        w(out, &c.0)?;
        w(out, &len.to_le_bytes())
    };
    while let Some((t, m)) = stack.pop() {
        // Before the dirtree: two directories with the same contents (two empty ones)
        // share a dirtree but not always their dirmeta (modes, owners).
        if !known.contains(&m) && seen.insert(m) {
            let data = repo
                .read_metadata(ObjectType::DirMeta, &m)
                .map_err(|e| e.to_string())?;
            record(&mut out, ObjectType::DirMeta, &m, data.len() as u64)?;
            w(&mut out, &data)?;
        }
        if known.contains(&t) || !seen.insert(t) {
            continue;
        }
        let data = repo
            .read_metadata(ObjectType::DirTree, &t)
            .map_err(|e| e.to_string())?;
        let dt = DirTree::from_bytes(&data).map_err(|e| e.to_string())?;
        record(&mut out, ObjectType::DirTree, &t, data.len() as u64)?;
        w(&mut out, &data)?;
        files.extend(
            dt.files
                .iter()
                .map(|(_, c)| *c)
                .filter(|c| !known.contains(c)),
        );
        stack.extend(dt.dirs.iter().map(|(_, t, m)| (*t, *m)));
    }
    for c in &files {
        let path = repo.object_path(c, ObjectType::File);
        let mut f = File::open(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        let len = f.metadata().map_err(|e| e.to_string())?.len();
        record(&mut out, ObjectType::File, c, len)?;
        let copied = io::copy(&mut (&mut f).take(len), &mut out).map_err(|e| e.to_string())?;
        if copied != len {
            return Err(format!("{}: changed while packed", path.display()));
        }
    }
    w(&mut out, &[0])?;
    out.into_inner()
        .map_err(|e| e.to_string())?
        .sync_all()
        .map_err(|e| e.to_string())
}

fn read_u64(r: &mut impl Read) -> io::Result<u64> {
    let mut b = [0u8; 8];
    r.read_exact(&mut b)?;
    Ok(u64::from_le_bytes(b))
}

/// Verify the pack at `path` (see the module doc; `check` judges its entry) and, when
/// it is sound, write its objects to `repo`; returns the entry.
pub fn unpack(
    repo: &Repo,
    path: &Path,
    check: impl Fn(&[u8]) -> Result<(), String>,
) -> Result<Vec<u8>, String> {
    let mut file = File::open(path).map_err(|e| e.to_string())?;
    let total = file.metadata().map_err(|e| e.to_string())?.len();
    let mut r = BufReader::new(&mut file);
    let mut magic = [0u8; 8];
    r.read_exact(&mut magic)
        .map_err(|_| "truncated header".to_string())?;
    if &magic != MAGIC {
        return Err("not an arbor import pack".into());
    }
    let elen = read_u64(&mut r).map_err(|_| "truncated header".to_string())?;
    if elen > MAX_ENTRY {
        return Err(format!("entry of {elen} bytes (at most {MAX_ENTRY})"));
    }
    let mut entry = vec![0u8; elen as usize];
    r.read_exact(&mut entry)
        .map_err(|_| "truncated entry".to_string())?;
    check(&entry)?;
    // First pass: every record verified; their places remembered for the second.
    // One pass: each record verified and written as it is read (an object is only
    // ever written verified; the entry, which makes them a cached import, comes last).
    // Content objects larger than IN_MEMORY are verified streaming and written after.
    let mut large: Vec<(Checksum, u64, u64)> = Vec::new();
    let mut pos = 8 + 8 + elen;
    let write = |ty: ObjectType, c: &Checksum, data: &[u8]| {
        repo.write_raw_object(c, ty, data)
            .map(drop)
            .map_err(|e| e.to_string())
    };
    loop {
        let mut ty = [0u8; 1];
        r.read_exact(&mut ty)
            .map_err(|_| "truncated: no end mark".to_string())?;
        pos += 1;
        let ty = match ty[0] {
            0 => break,
            1 => ObjectType::File,
            2 => ObjectType::DirTree,
            3 => ObjectType::DirMeta,
            t => return Err(format!("record of unknown type {t} at byte {}", pos - 1)),
        };
        let mut c = [0u8; 32];
        r.read_exact(&mut c)
            .map_err(|_| "truncated record".to_string())?;
        let c = Checksum(c);
        let len = read_u64(&mut r).map_err(|_| "truncated record".to_string())?;
        pos += 40;
        if len > total.saturating_sub(pos) {
            return Err(format!("{ty:?} {c}: {len} bytes past the end of the pack"));
        }
        if ty == ObjectType::File && len > IN_MEMORY {
            filez::verify_archive_file_reader((&mut r).take(len), &c).map_err(|e| e.to_string())?;
            large.push((c, pos, len));
            pos += len;
            continue;
        }
        if ty != ObjectType::File && len > MAX_METADATA {
            return Err(format!("{ty:?} {c}: {len} bytes (at most {MAX_METADATA})"));
        }
        let mut data = vec![0u8; len as usize];
        r.read_exact(&mut data)
            .map_err(|_| "truncated record".to_string())?;
        pos += len;
        if ty == ObjectType::File {
            if !repo.has_object(&c, ty) {
                filez::verify_archive_file_streaming(&data, &c).map_err(|e| e.to_string())?;
                write(ty, &c, &data)?;
            }
            continue;
        }
        if Checksum::of(&data) != c {
            return Err(format!(
                "{ty:?} {c}: its bytes hash to {}",
                Checksum::of(&data)
            ));
        }
        let parsed = if ty == ObjectType::DirTree {
            DirTree::from_bytes(&data).map(drop)
        } else {
            arbor_repo::DirMeta::from_bytes(&data).map(drop)
        };
        parsed.map_err(|e| format!("{ty:?} {c}: {e}"))?;
        write(ty, &c, &data)?;
    }
    let mut rest = [0u8; 1];
    if r.read(&mut rest).map_err(|e| e.to_string())? != 0 {
        return Err("bytes after the end mark".into());
    }
    drop(r);
    for (c, at, len) in large {
        if repo.has_object(&c, ObjectType::File) {
            continue;
        }
        file.seek(SeekFrom::Start(at)).map_err(|e| e.to_string())?;
        repo.write_raw_object_from(&c, ObjectType::File, &mut (&mut file).take(len))
            .map_err(|e| e.to_string())?;
    }
    Ok(entry)
}

pub(crate) fn spool(cache_dir: &Path, key: &str) -> PathBuf {
    let dir = cache_dir.join("tmp");
    let _ = fs::create_dir_all(&dir);
    dir.join(format!("{key}.{}.pack", std::process::id()))
}

/// Fetch the pack of `key` from the shared cache into the local cache and repository.
/// `Ok(Some)`: the import; `Ok(None)`: not there; `Err(())`: there but refused (to be
/// replaced).
pub fn fetch(
    sc: &dyn SharedCache,
    repo: &Repo,
    cache_dir: &Path,
    key: &str,
    rpm_sha256: &Checksum,
) -> Result<Option<ImportedPackage>, ()> {
    let name = shared::import_key(key);
    let tmp = spool(cache_dir, key);
    let got = sc.get(&name, &tmp, MAX_PACK);
    let out = match got {
        Ok(false) => Ok(None),
        Err(why) => {
            shared::failed(sc, &format!("GET {name}"), &why);
            Ok(None)
        }
        Ok(true) => {
            let len = fs::metadata(&tmp).map(|m| m.len()).unwrap_or(0);
            let unpacked = unpack(repo, &tmp, |e| cache::check_entry(e, rpm_sha256))
                .and_then(|entry| {
                    cache::write_entry(cache_dir, key, &entry).map_err(|e| e.to_string())
                })
                .and_then(|()| {
                    cache::load(repo, cache_dir, key).ok_or_else(|| {
                        let _ = fs::remove_file(cache::entry_path(cache_dir, key));
                        "its tree needs objects it does not carry".to_string()
                    })
                });
            match unpacked {
                Ok(pkg) => {
                    shared::bump(&sc.stats().imports_fetched, 1);
                    shared::bump(&sc.stats().bytes_fetched, len);
                    Ok(Some(pkg))
                }
                Err(why) => {
                    shared::rejected(sc, &name, &why, "importing the package instead");
                    Err(())
                }
            }
        }
    };
    let _ = fs::remove_file(&tmp);
    out
}

/// Store the import `key` (just written to the local cache and `repo`) in the shared
/// cache, unless there (`replace`: it was refused).
pub fn upload(sc: &dyn SharedCache, repo: &Repo, cache_dir: &Path, key: &str, replace: bool) {
    if !sc.writable() {
        return;
    }
    let name = shared::import_key(key);
    let tmp = spool(cache_dir, key);
    let made = cache::read_entry(cache_dir, key)
        .and_then(|(json, tree, meta)| write(repo, &json, (&tree, &meta), &HashSet::new(), &tmp));
    match made {
        Ok(()) => shared::store(sc, &name, &tmp, replace, &sc.stats().imports_stored),
        Err(why) => shared::failed(sc, &format!("packing {name}"), &why),
    }
    let _ = fs::remove_file(&tmp);
}
