//! What the importer needs from an RPM's headers before touching the payload: the
//! whole-file and payload digests, header/payload digest checks, NEVRA, scriptlets, and
//! the hardlink identities of files.
//!
//! ```text
//! RPM file:  lead (96) ‖ signature header (padded to 8) ‖ main header ‖ payload (compressed cpio)
//!            └──────────── sha256 of everything: the cache key ────────────────────────┘
//!            signature header: SHA256 of the main header   main header: SHA256 of the payload
//! ```

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::Path;

use arbor_repo::checksum::{Checksum, Hasher};
use rpm::{FileEntry, IndexSignatureTag, IndexTag, PackageMetadata};

use super::error::{short, ImportError};

/// Digest algorithm number for SHA-256 in `RPMTAG_PAYLOADDIGESTALGO` (OpenPGP's ids).
const PGPHASHALGO_SHA256: u32 = 8;
/// Trigger type bits in `*TRIGGERFLAGS` (`RPMSENSE_TRIGGER*` in rpmds.h).
const TRIGGER_KINDS: [(u32, &str); 4] = [
    (1 << 25, "prein"),
    (1 << 16, "in"),
    (1 << 17, "un"),
    (1 << 18, "postun"),
];

/// SHA-256 of the whole file, of the main header and of the payload, in one read.
pub struct Digests {
    pub file: Checksum,
    pub header: Checksum,
    pub payload: Checksum,
}

/// Hash `file` whose main header starts at `header_offset` and whose payload starts at
/// `payload_offset`.
pub fn digests(
    path: &Path,
    mut file: &File,
    header_offset: u64,
    payload_offset: u64,
) -> Result<Digests, ImportError> {
    let io_err = |err| ImportError::Io {
        path: path.to_path_buf(),
        err,
    };
    file.seek(SeekFrom::Start(0)).map_err(io_err)?;
    let (mut whole, mut header, mut payload) = (Hasher::new(), Hasher::new(), Hasher::new());
    let mut buf = vec![0u8; 1 << 20];
    let mut pos = 0u64;
    loop {
        let n = match file.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(io_err(e)),
        };
        let chunk = &buf[..n];
        whole.update(chunk);
        // The parts of this chunk in [header_offset, payload_offset) and after it.
        let clamp = |off: u64| off.saturating_sub(pos).min(n as u64) as usize;
        header.update(&chunk[clamp(header_offset)..clamp(payload_offset)]);
        payload.update(&chunk[clamp(payload_offset)..]);
        pos += n as u64;
    }
    if pos < payload_offset {
        return Err(ImportError::NotRpm {
            path: path.to_path_buf(),
            why: "file ends inside the header".into(),
        });
    }
    Ok(Digests {
        file: whole.finish(),
        header: header.finish(),
        payload: payload.finish(),
    })
}

/// Check the header digest (in the signature header) and the payload digest (in the
/// main header) against the bytes of the file, where the package has them. Streaming
/// the payload checks neither, so a flipped bit would otherwise become a silently
/// wrong file.
pub fn verify(
    path: &Path,
    nevra: &str,
    meta: &PackageMetadata,
    digests: &Digests,
) -> Result<(), ImportError> {
    let corrupt = |why: String| ImportError::Corrupt {
        path: path.to_path_buf(),
        nevra: nevra.to_string(),
        why,
    };
    if let Ok(want) = meta
        .signature
        .get_entry_data_as_string(IndexSignatureTag::RPMSIGTAG_SHA256)
    {
        let actual = digests.header.to_hex();
        if !want.eq_ignore_ascii_case(&actual) {
            return Err(corrupt(format!(
                "header digest mismatch: signature says {want}, header is {actual}"
            )));
        }
    }
    // RPMTAG_PAYLOADDIGESTALGO (5093); the crate names it after its only real value.
    let algo = meta
        .header
        .get_entry_data_as_u32(IndexTag::RPMTAG_PAYLOADSHA256ALGO)
        .unwrap_or(PGPHASHALGO_SHA256);
    if algo != PGPHASHALGO_SHA256 {
        tracing::debug!(
            "{}: payload digest algorithm {algo} not checked",
            path.display()
        );
        return Ok(());
    }
    if let Ok(list) = meta
        .header
        .get_entry_data_as_string_array(IndexTag::RPMTAG_PAYLOADSHA256)
    {
        if let Some(want) = list.first() {
            let actual = digests.payload.to_hex();
            if !want.eq_ignore_ascii_case(&actual) {
                return Err(corrupt(format!(
                    "payload digest mismatch: header says {want}, payload is {actual}"
                )));
            }
        }
    }
    Ok(())
}

/// `name-[epoch:]version-release.arch`, the epoch only when non-zero (rpm's
/// `%{NEVRA}` for a package without epoch, dnf's for any).
pub fn nevra(path: &Path, meta: &PackageMetadata) -> Result<(String, String), ImportError> {
    let bad = |e: rpm::Error| ImportError::NotRpm {
        path: path.to_path_buf(),
        why: short(e),
    };
    let name = meta.get_name().map_err(bad)?.to_string();
    // get_epoch() errors when the tag is absent: that is epoch 0.
    let epoch = meta.get_epoch().unwrap_or(0);
    let version = meta.get_version().map_err(bad)?;
    let release = meta.get_release().map_err(bad)?;
    let arch = if meta.is_source_package() {
        "src"
    } else {
        meta.get_arch().map_err(bad)?
    };
    let evr = if epoch == 0 {
        format!("{version}-{release}")
    } else {
        format!("{epoch}:{version}-{release}")
    };
    Ok((format!("{name}-{evr}.{arch}"), name))
}

/// The scriptlets and triggers present in the header, as spec-file section names
/// (`%pre`, `%post`, `%posttrans`, `%triggerin`, `%filetriggerin`, …), in a fixed order.
pub fn scriptlets(meta: &PackageMetadata) -> Vec<String> {
    use IndexTag as T;
    let h = &meta.header;
    let mut out = Vec::new();
    let simple = [
        ("%pretrans", T::RPMTAG_PRETRANS, T::RPMTAG_PRETRANSPROG),
        ("%pre", T::RPMTAG_PREIN, T::RPMTAG_PREINPROG),
        ("%post", T::RPMTAG_POSTIN, T::RPMTAG_POSTINPROG),
        ("%posttrans", T::RPMTAG_POSTTRANS, T::RPMTAG_POSTTRANSPROG),
        ("%preun", T::RPMTAG_PREUN, T::RPMTAG_PREUNPROG),
        ("%postun", T::RPMTAG_POSTUN, T::RPMTAG_POSTUNPROG),
        (
            "%preuntrans",
            T::RPMTAG_PREUNTRANS,
            T::RPMTAG_PREUNTRANSPROG,
        ),
        (
            "%postuntrans",
            T::RPMTAG_POSTUNTRANS,
            T::RPMTAG_POSTUNTRANSPROG,
        ),
        (
            "%verifyscript",
            T::RPMTAG_VERIFYSCRIPT,
            T::RPMTAG_VERIFYSCRIPTPROG,
        ),
    ];
    for (name, script, prog) in simple {
        if h.entry_is_present(script) || h.entry_is_present(prog) {
            out.push(name.to_string());
        }
    }
    let triggers = [
        ("%trigger", T::RPMTAG_TRIGGERSCRIPTS, T::RPMTAG_TRIGGERFLAGS),
        (
            "%filetrigger",
            T::RPMTAG_FILETRIGGERSCRIPTS,
            T::RPMTAG_FILETRIGGERFLAGS,
        ),
        (
            "%transfiletrigger",
            T::RPMTAG_TRANSFILETRIGGERSCRIPTS,
            T::RPMTAG_TRANSFILETRIGGERFLAGS,
        ),
    ];
    for (prefix, scripts, flags) in triggers {
        if !h.entry_is_present(scripts) {
            continue;
        }
        let flags = h.get_entry_data_as_u32_array(flags).unwrap_or_default();
        let mut kinds: Vec<&str> = TRIGGER_KINDS
            .iter()
            .filter(|(bit, _)| flags.iter().any(|f| f & bit != 0))
            .map(|(_, k)| *k)
            .collect();
        if kinds.is_empty() {
            kinds.push("in");
        }
        out.extend(kinds.into_iter().map(|k| format!("{prefix}{k}")));
    }
    out
}

/// A file that shares its inode with other regular files of the package.
#[derive(Debug, Clone, Copy)]
pub struct Link {
    /// (device, inode) from the header: the same for every member of the set.
    pub id: (u32, u32),
    /// The last member in header order: the one whose payload entry carries the
    /// content (rpm writes the others with size 0).
    pub carrier: bool,
}

/// Header index of every file by path (without the leading `/`), and the hardlink
/// sets among regular files.
pub struct FileIndex {
    pub by_path: HashMap<String, usize>,
    pub links: HashMap<usize, Link>,
}

pub fn file_index(meta: &PackageMetadata, entries: &[FileEntry<'_>]) -> FileIndex {
    let devices = meta
        .header
        .get_entry_data_as_u32_array(IndexTag::RPMTAG_FILEDEVICES)
        .unwrap_or_default();
    let inodes = meta
        .header
        .get_entry_data_as_u32_array(IndexTag::RPMTAG_FILEINODES)
        .unwrap_or_default();
    let by_path = entries
        .iter()
        .enumerate()
        .map(|(i, e)| {
            let p = e.path().to_string_lossy().into_owned();
            (p.trim_start_matches('/').to_string(), i)
        })
        .collect();
    let mut groups: HashMap<(u32, u32), Vec<usize>> = HashMap::new();
    for (i, e) in entries.iter().enumerate() {
        if e.file_type() != rpm::FileType::Regular || e.flags().contains(rpm::FileFlags::GHOST) {
            continue;
        }
        if let (Some(d), Some(n)) = (devices.get(i), inodes.get(i)) {
            groups.entry((*d, *n)).or_default().push(i);
        }
    }
    let mut links = HashMap::new();
    for (id, members) in groups.into_iter().filter(|(_, m)| m.len() > 1) {
        let last = members.last().copied();
        for m in members {
            links.insert(
                m,
                Link {
                    id,
                    carrier: Some(m) == last,
                },
            );
        }
    }
    FileIndex { by_path, links }
}
