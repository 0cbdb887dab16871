//! Importing RPMs straight into OSTree objects: each payload is streamed once, every
//! file becomes a FILE object in the repository and a leaf of the package's
//! [`MutableTree`] — no temporary root filesystem, no `rpm` binary.
//!
//! ```text
//! RPM ─▶ sha256 (cache key) ─▶ cache hit? ─▶ load_mtree ─────────────────────────┐
//!                  │ miss                                                        ▼
//!                  └▶ header + payload digests ─▶ payload stream ─▶ objects + tree ─▶ ImportedPackage
//!                                                     │ /var, /run            (cached as dirtree)
//!                                                     └▶ usr/lib/rpm-ostree/tmpfiles.d/NAME.conf
//! ```
//!
//! Owners come from `Users`, file capabilities from the header (`security.capability`),
//! `%ghost` entries are skipped, `%doc` ones too with `documentation: false`; paths are
//! translated as rpm-ostree does (`paths.rs`). The headers are bounds-checked before
//! the `rpm` crate parses them (`rawheader.rs`); the payload (gzip, xz, lzma, zstd or
//! none) is read by our own cpio reader (`cpio.rs`), and its objects are hashed,
//! compressed and written on rayon while the stream goes on (`writer.rs`). Imports of
//! different RPMs are independent and run in parallel ([`import_rpms`]).

mod attrs;
mod cache;
mod caps;
mod content;
mod cpio;
mod error;
mod header;
pub(crate) mod pack;
pub(crate) use cache::write_atomic;
pub(crate) mod paths;
mod payload;
mod rawheader;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_bad;
mod users;
mod writer;

use std::collections::BTreeSet;
use std::fs::File;
use std::io::{BufReader, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use arbor_repo::checksum::Checksum;
use arbor_repo::objects::validate_filename;
use arbor_repo::tree::MutableTree;
use arbor_repo::Repo;
use rayon::prelude::*;

pub use attrs::Deferred;
pub use caps::text_to_xattr as capabilities_to_xattr;
pub use error::ImportError;
pub use paths::TMPFILES_DIR;
pub use users::{Users, UsersError};

/// Bumped whenever the importer would produce a different tree from the same RPM and
/// options; part of every cache key.
pub const IMPORTER_VERSION: u32 = 2;

/// What to import of each package.
#[derive(Debug, Clone)]
pub struct ImportOpts {
    /// Keep `%doc` files (treefile `documentation`, default true). `%license` files are
    /// always kept, as with rpm's `--excludedocs`.
    pub documentation: bool,
    /// rpm-ostree `remove-from-packages` for THIS package: entries whose RPM path
    /// (`/etc/hosts.allow`, before translation) matches any of these (unanchored) are
    /// not imported; a matching directory goes with everything of this package in it.
    pub remove_from: Vec<regex::Regex>,
    /// rpm-ostree's `readonly-executables`: regular files with an execute bit lose
    /// every write bit.
    pub readonly_executables: bool,
    /// rpm-ostree's `ignore-devices` (default true): character and block devices are
    /// dropped instead of refused.
    pub ignore_devices: bool,
    /// rpm-ostree's `ima`: the header's IMA file signatures become `security.ima`.
    pub ima: bool,
    /// Label files with this policy (`selinux: true`); directories are labeled when
    /// the tree is assembled.
    pub labels: Option<std::sync::Arc<crate::selinux::Labeler>>,
    /// Keep an uncompressed copy of every file object written in this bare cache too
    /// (the scriptlet sandbox's farm links them; not part of the import's result).
    pub bare: Option<std::sync::Arc<crate::scripts::farm::BareCache>>,
    /// A package cache shared between machines: an import missing from the local cache
    /// is fetched from it (`imports/<key>.pack`), and one made here is stored in it.
    /// Not part of the cache key (it changes where an import comes from, not what it is).
    pub shared: Option<std::sync::Arc<dyn crate::shared::SharedCache>>,
}

impl Default for ImportOpts {
    fn default() -> Self {
        ImportOpts {
            documentation: true,
            remove_from: Vec::new(),
            readonly_executables: false,
            ignore_devices: true,
            ima: false,
            labels: None,
            bare: None,
            shared: None,
        }
    }
}

/// One imported package: its tree (file objects already in the repository) and what
/// the compose reports about it.
#[derive(Debug, Clone)]
pub struct ImportedPackage {
    /// `name-[epoch:]version-release.arch`, epoch only when non-zero.
    pub nevra: String,
    pub name: String,
    pub tree: MutableTree,
    /// Directories (tree paths, no leading `/`) the RPM lists itself, so their metadata
    /// is the RPM's; the other directories in `tree` were created implicitly as
    /// root:root 0755 and yield to a package that owns them (see [`crate::union`]).
    pub owned_dirs: BTreeSet<String>,
    /// Entries of `tree` whose owner names the users database did not know (root
    /// until the compose resolves them after `%pre`; see [`Deferred`]).
    pub deferred: Vec<Deferred>,
    /// Scriptlets and triggers in the header (`%pre`, `%post`, `%posttrans`,
    /// `%triggerin`, …), none of which the importer runs.
    pub scriptlets: Vec<String>,
    /// Files and symlinks in `tree`.
    pub files: u64,
    /// Content bytes of the regular files in `tree` (uncompressed).
    pub bytes: u64,
}

/// Read the lead and headers of the RPM at `path`, every index entry bounds-checked
/// before the `rpm` crate parses it (a damaged header is an error, never a huge
/// allocation or a panic).
pub fn read_header(path: &Path) -> Result<rpm::PackageMetadata, ImportError> {
    let io_err = |err| ImportError::Io {
        path: path.to_path_buf(),
        err,
    };
    let mut file = File::open(path).map_err(io_err)?;
    let len = file.metadata().map_err(io_err)?.len();
    rawheader::read_metadata(path, &mut file, len)
}

/// Entry points for the fuzz targets (`fuzz/`): the header reader and the payload
/// reader on raw bytes, with no file and no repository. Not an API.
#[doc(hidden)]
pub mod fuzz {
    use std::io::{self, Cursor, Read};
    use std::path::Path;

    use super::cpio::{Archive, Header};
    use super::{caps, header, paths, rawheader, ImportError};

    /// Decompressed payload bytes read at most (a few bytes of zstd can stand for
    /// gigabytes; the importer streams them, the fuzzer must not spend seconds on it).
    const PAYLOAD_LIMIT: u64 = 64 << 20;

    /// `bytes` as an RPM's lead and headers, then everything the importer derives from
    /// them before the payload: NEVRA, file entries and their paths and capabilities,
    /// the hardlink index, the scriptlets.
    pub fn header(bytes: &[u8]) -> Result<(), ImportError> {
        let path = Path::new("fuzz.rpm");
        let meta = rawheader::read_metadata(path, &mut Cursor::new(bytes), bytes.len() as u64)?;
        let _ = meta.get_package_segment_offsets();
        let _ = header::nevra(path, &meta);
        let _ = header::scriptlets(&meta);
        let entries = meta.get_file_entries().map_err(|e| ImportError::NotRpm {
            path: path.to_path_buf(),
            why: super::error::short(e),
        })?;
        let index = header::file_index(&meta, &entries);
        debug_assert!(index.by_path.len() <= entries.len());
        for e in &entries {
            if let Ok(rel) = paths::normalize(&e.path().to_string_lossy()) {
                let _ = paths::place(&rel);
            }
            if let Some(text) = e.caps() {
                let _ = caps::text_to_xattr(text);
            }
        }
        Ok(())
    }

    /// `bytes` as a shared cache's import pack (`pack.rs`), unpacked into a repository
    /// of this process's: every record checked, what verifies written. Any entry is
    /// accepted here, so that the records are reached.
    pub fn pack(bytes: &[u8]) -> Result<(), String> {
        use std::sync::OnceLock;
        static REPO: OnceLock<(std::path::PathBuf, arbor_repo::Repo)> = OnceLock::new();
        let (dir, repo) = REPO.get_or_init(|| {
            let dir = std::env::temp_dir().join(format!("arbor-fuzz-pack-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).expect("a temporary directory");
            let repo = arbor_repo::Repo::init(&dir.join("repo")).expect("a repository");
            (dir, repo)
        });
        let path = dir.join("input.pack");
        std::fs::write(&path, bytes).map_err(|e| e.to_string())?;
        super::pack::unpack(repo, &path, |_| Ok(())).map(drop)
    }

    /// `bytes` as a payload: decompressed, then every cpio entry read to its end (a
    /// stripped entry's size, which the header would give, is made up from its index).
    /// Returns the data bytes read.
    pub fn payload(bytes: &[u8]) -> Result<u64, String> {
        let stream = super::cpio::decompress(bytes)?;
        let mut archive = Archive::new(Box::new(stream.take(PAYLOAD_LIMIT)));
        let mut total = 0u64;
        while let Some(h) = archive.next_header()? {
            if let Header::Named { name, .. } = &h {
                let _ = paths::normalize(name.strip_prefix('.').unwrap_or(name));
            }
            if let Header::Indexed { index } = h {
                archive.begin_data(u64::from(index % 4096));
            }
            total += io::copy(&mut archive, &mut io::sink()).map_err(|e| e.to_string())?;
        }
        Ok(total)
    }
}

/// Import one RPM into `repo`. With `cache_dir`, a package imported before with the
/// same content and options is loaded from the cache instead (the `bool` says so).
pub fn import_rpm(
    repo: &Repo,
    rpm_path: &Path,
    opts: &ImportOpts,
    users: &Users,
    cache_dir: Option<&Path>,
) -> Result<(ImportedPackage, bool), ImportError> {
    import_rpm_known(repo, rpm_path, opts, users, cache_dir, None)
}

/// [`import_rpm`] for an RPM whose file SHA-256 the caller already computed (the
/// fetcher verifies every RPM against the repodata): a cache hit then reads nothing of
/// the RPM. On a miss the file is hashed anyway (for the header and payload digest
/// checks) and must still have that digest.
pub fn import_rpm_known(
    repo: &Repo,
    rpm_path: &Path,
    opts: &ImportOpts,
    users: &Users,
    cache_dir: Option<&Path>,
    sha256: Option<&Checksum>,
) -> Result<(ImportedPackage, bool), ImportError> {
    let mut replace = false;
    if let (Some(dir), Some(sha)) = (cache_dir, sha256) {
        let key = cache::key(sha, opts, users);
        if let Some(pkg) = cache::load(repo, dir, &key) {
            tracing::debug!("{}: cache hit", pkg.nevra);
            return Ok((pkg, true));
        }
        if let Some(sc) = opts.shared.as_deref() {
            match pack::fetch(sc, repo, dir, &key, sha) {
                Ok(Some(pkg)) => {
                    tracing::debug!("{}: from the shared cache", pkg.nevra);
                    return Ok((pkg, true));
                }
                Ok(None) => {}
                Err(()) => replace = true,
            }
        }
    }
    let io_err = |err| ImportError::Io {
        path: rpm_path.to_path_buf(),
        err,
    };
    let mut file = File::open(rpm_path).map_err(io_err)?;
    let len = file.metadata().map_err(io_err)?.len();
    let meta = rawheader::read_metadata(rpm_path, &mut file, len)?;
    let offsets = meta.get_package_segment_offsets();
    let digests = header::digests(rpm_path, &file, offsets.header, offsets.payload)?;
    if sha256.is_some_and(|want| *want != digests.file) {
        return Err(ImportError::NotRpm {
            path: rpm_path.to_path_buf(),
            why: "the file changed after its digest was verified".into(),
        });
    }
    let key = cache_dir.map(|_| cache::key(&digests.file, opts, users));
    if let (Some(dir), Some(key)) = (cache_dir.filter(|_| sha256.is_none()), &key) {
        if let Some(pkg) = cache::load(repo, dir, key) {
            tracing::debug!("{}: cache hit", pkg.nevra);
            return Ok((pkg, true));
        }
    }
    let (nevra, name) = header::nevra(rpm_path, &meta)?;
    validate_filename(&name).map_err(|e| ImportError::NotRpm {
        path: rpm_path.to_path_buf(),
        why: format!("package name: {e}"),
    })?;
    header::verify(rpm_path, &nevra, &meta, &digests)?;
    let entries = meta.get_file_entries().map_err(|e| ImportError::NotRpm {
        path: rpm_path.to_path_buf(),
        why: error::short(e),
    })?;
    let index = header::file_index(&meta, &entries);
    let scriptlets = header::scriptlets(&meta);

    file.seek(SeekFrom::Start(offsets.payload))
        .map_err(io_err)?;
    let stream = cpio::decompress(BufReader::with_capacity(256 << 10, &file)).map_err(|why| {
        ImportError::Corrupt {
            path: rpm_path.to_path_buf(),
            nevra: nevra.clone(),
            why,
        }
    })?;
    let mut archive = cpio::Archive::new(stream);
    let ctx = payload::Ctx {
        repo,
        rpm: rpm_path,
        nevra: &nevra,
        name: &name,
        opts,
        users,
    };
    let out = payload::import(&ctx, &mut archive, &entries, &index)?;
    drop(archive);
    let pkg = ImportedPackage {
        nevra,
        name,
        tree: out.tree,
        owned_dirs: out.owned_dirs,
        deferred: out.deferred,
        scriptlets,
        files: out.files,
        bytes: out.bytes,
    };
    if let (Some(dir), Some(key)) = (cache_dir, &key) {
        cache::store(repo, dir, key, &digests.file, &pkg)?;
        if let (Some(sc), Some(_)) = (opts.shared.as_deref(), sha256) {
            pack::upload(sc, repo, dir, key, replace);
        }
    }
    Ok((pkg, false))
}

/// [`import_rpm`] for many RPMs, each with its options, in parallel on rayon (largest
/// file first, so that long imports do not start last); results in the input order.
/// The first error wins. `progress` counts packages.
pub fn import_rpms(
    repo: &Repo,
    jobs: &[(PathBuf, ImportOpts)],
    users: &Users,
    cache_dir: Option<&Path>,
    progress: &dyn arbor_repo::progress::Progress,
) -> Result<Vec<(ImportedPackage, bool)>, ImportError> {
    let jobs: Vec<_> = jobs
        .iter()
        .map(|(p, o)| (p.clone(), o.clone(), None))
        .collect();
    import_rpms_known(repo, &jobs, users, cache_dir, progress)
}

/// [`import_rpms`] with each RPM's already verified SHA-256, when known (see
/// [`import_rpm_known`]).
pub fn import_rpms_known(
    repo: &Repo,
    jobs: &[(PathBuf, ImportOpts, Option<Checksum>)],
    users: &Users,
    cache_dir: Option<&Path>,
    progress: &dyn arbor_repo::progress::Progress,
) -> Result<Vec<(ImportedPackage, bool)>, ImportError> {
    let mut order: Vec<(u64, usize)> = jobs
        .iter()
        .enumerate()
        .map(|(i, (p, _, _))| (std::fs::metadata(p).map_or(0, |m| m.len()), i))
        .collect();
    order.sort_by(|a, b| b.cmp(a));
    let mut done: Vec<(usize, (ImportedPackage, bool))> = order
        .par_iter()
        .with_max_len(1)
        .map(|&(_, i)| {
            let (path, opts, sha256) = &jobs[i];
            let r = import_rpm_known(repo, path, opts, users, cache_dir, sha256.as_ref());
            progress.inc(1); // one package done (imported or from the cache)
            r.map(|r| (i, r))
        })
        .collect::<Result<_, _>>()?;
    done.sort_by_key(|(i, _)| *i);
    Ok(done.into_iter().map(|(_, r)| r).collect())
}
