//! Executing a delta: the opcode interpreter, `verify` (everything in memory, every
//! object checksum checked, the delta checked for completeness) and `apply_to_repo`
//! (write the objects into an archive repository that holds the from-commit).
//!
//! ostree's own `o`/`r` ops read old files with `_ostree_repo_load_file_bare` and abort
//! on archive repositories; here an op rebuilds the object's content in memory and the
//! store writes a `.filez`, so archive repositories are fine.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;
use std::sync::Mutex;

use arbor_repo::objects::{
    parse_commitmeta, Commit, DirMeta, DirTree, FileHeader, ObjectType, Xattrs, S_IFLNK, S_IFMT,
    S_IFREG,
};
use arbor_repo::progress::Progress;
use arbor_repo::{Checksum, Repo};
use rayon::prelude::*;

use crate::bspatch;
use crate::error::{DeltaError, Result};
use crate::format::{op, read_varint, Fallback, ObjectName, PartHeader, PartPayload};
use crate::plan::Reachable;
use crate::source::DeltaSource;

/// Where reconstructed, verified objects go.
pub trait ObjectSink: Sync {
    fn metadata(&self, ty: ObjectType, checksum: &Checksum, bytes: &[u8]) -> Result<()>;
    fn file(&self, checksum: &Checksum, header: &FileHeader, content: &[u8]) -> Result<()>;
}

/// Counts of each opcode executed, by ostree's op name.
pub type OpCounts = BTreeMap<&'static str, u64>;

struct Exec<'a> {
    delta: String,
    index: usize,
    header: &'a PartHeader,
    payload: PartPayload<'a>,
}

/// The most an `o` op reserves up front for the object it opens. The declared size is
/// the part's word (up to 2^64): reserving it whole let a few bytes of a hostile part
/// allocate a gigabyte per open object before any content arrived (an abort where
/// memory is not overcommitted). Content beyond this grows the buffer as it is written.
const MAX_RESERVE: u64 = 64 << 20;

/// Bytes to reserve for an object declared `size` bytes long.
fn reservation(size: u64) -> usize {
    size.min(MAX_RESERVE) as usize
}

/// An object being assembled by `o`/`w`/`B` until `c`.
struct OpenObject {
    header: FileHeader,
    size: u64,
    content: Vec<u8>,
}

impl Exec<'_> {
    fn err(&self, why: impl Into<String>) -> DeltaError {
        DeltaError::Part {
            delta: self.delta.clone(),
            index: self.index,
            why: why.into(),
        }
    }

    fn blob(&self, off: u64, len: u64) -> Result<&[u8]> {
        let end = off
            .checked_add(len)
            .ok_or_else(|| self.err("offset overflow"))?;
        usize::try_from(off)
            .ok()
            .zip(usize::try_from(end).ok())
            .and_then(|(o, e)| self.payload.blob.get(o..e))
            .ok_or_else(|| {
                self.err(format!(
                    "payload range {off}+{len} is outside the {}-byte payload",
                    self.payload.blob.len()
                ))
            })
    }

    fn file_header(&self, mode_idx: u64, xattr_idx: u64, target: String) -> Result<FileHeader> {
        let (uid, gid, mode) = *usize::try_from(mode_idx)
            .ok()
            .and_then(|i| self.payload.modes.get(i))
            .ok_or_else(|| self.err(format!("mode index {mode_idx} out of range")))?;
        let xattrs: Xattrs = usize::try_from(xattr_idx)
            .ok()
            .and_then(|i| self.payload.xattrs.get(i))
            .cloned()
            .ok_or_else(|| self.err(format!("xattr index {xattr_idx} out of range")))?;
        Ok(FileHeader {
            uid,
            gid,
            mode,
            symlink_target: target,
            xattrs,
        })
    }

    fn run(
        &self,
        sources: &dyn Fn(&Checksum) -> Result<Vec<u8>>,
        sink: &dyn ObjectSink,
    ) -> Result<OpCounts> {
        let ops = self.payload.ops;
        let mut pos = 0usize;
        let mut next = 0usize;
        let mut counts = OpCounts::new();
        let mut read_source: Option<(Checksum, Vec<u8>)> = None;
        let mut open: Option<OpenObject> = None;
        let arg = |pos: &mut usize| {
            read_varint(ops, pos)
                .ok_or_else(|| self.err(format!("truncated varint at op offset {pos}")))
        };
        let expect = |next: usize| -> Result<ObjectName> {
            self.header.objects.get(next).copied().ok_or_else(|| {
                self.err(format!(
                    "ops create more objects than the {} the header lists",
                    self.header.objects.len()
                ))
            })
        };
        while pos < ops.len() {
            let code = ops[pos];
            pos += 1;
            *counts.entry(op::name(code)).or_default() += 1;
            match code {
                op::OPEN_SPLICE_AND_CLOSE => {
                    if open.is_some() {
                        return Err(self.err("open-splice-and-close while an object is open"));
                    }
                    let (ty, csum) = expect(next)?;
                    if ty == ObjectType::File {
                        let (mi, xi, len, off) = (
                            arg(&mut pos)?,
                            arg(&mut pos)?,
                            arg(&mut pos)?,
                            arg(&mut pos)?,
                        );
                        let data = self.blob(off, len)?;
                        let mut header = self.file_header(mi, xi, String::new())?;
                        let content: &[u8] = match header.mode & S_IFMT {
                            S_IFLNK => {
                                header.symlink_target =
                                    String::from_utf8(data.to_vec()).map_err(|_| {
                                        self.err(format!("symlink {csum}: target is not UTF-8"))
                                    })?;
                                &[]
                            }
                            S_IFREG => data,
                            m => {
                                return Err(
                                    self.err(format!("object {csum}: invalid file mode {m:o}"))
                                )
                            }
                        };
                        self.finish_file(&csum, &header, content, sink)?;
                    } else {
                        let (len, off) = (arg(&mut pos)?, arg(&mut pos)?);
                        let data = self.blob(off, len)?;
                        self.finish_metadata(ty, &csum, data, sink)?;
                    }
                    next += 1;
                }
                op::OPEN => {
                    let (ty, csum) = expect(next)?;
                    if open.is_some() || ty != ObjectType::File {
                        return Err(self.err(format!(
                            "open of {csum}: not a file object, or one is already open"
                        )));
                    }
                    let (mi, xi, size) = (arg(&mut pos)?, arg(&mut pos)?, arg(&mut pos)?);
                    let header = self.file_header(mi, xi, String::new())?;
                    if header.mode & S_IFMT != S_IFREG {
                        return Err(self.err(format!(
                            "open of {csum}: mode {:o} is not a regular file",
                            header.mode
                        )));
                    }
                    open = Some(OpenObject {
                        header,
                        size,
                        content: Vec::with_capacity(reservation(size)),
                    });
                }
                op::WRITE => {
                    let (len, off) = (arg(&mut pos)?, arg(&mut pos)?);
                    let o = open
                        .as_mut()
                        .ok_or_else(|| self.err("write without an open object"))?;
                    if (o.content.len() as u64)
                        .checked_add(len)
                        .is_none_or(|end| end > o.size)
                    {
                        return Err(self.err("write past the object's declared size"));
                    }
                    match &read_source {
                        Some((src, data)) => {
                            let chunk = usize::try_from(off)
                                .ok()
                                .zip(usize::try_from(off.saturating_add(len)).ok())
                                .and_then(|(a, b)| data.get(a..b))
                                .ok_or_else(|| {
                                    self.err(format!(
                                        "write range {off}+{len} outside source {src}"
                                    ))
                                })?;
                            o.content.extend_from_slice(chunk);
                        }
                        None => o.content.extend_from_slice(self.blob(off, len)?),
                    }
                }
                op::SET_READ_SOURCE => {
                    let off = arg(&mut pos)?;
                    let src = Checksum::from_slice(self.blob(off, 32)?).expect("32 bytes");
                    let data =
                        sources(&src).map_err(|e| self.err(format!("read source {src}: {e}")))?;
                    read_source = Some((src, data));
                }
                op::UNSET_READ_SOURCE => read_source = None,
                op::BSPATCH => {
                    let (off, len) = (arg(&mut pos)?, arg(&mut pos)?);
                    let patch = self.blob(off, len)?;
                    let o = open
                        .as_mut()
                        .ok_or_else(|| self.err("bspatch without an open object"))?;
                    let (_, old) = read_source
                        .as_ref()
                        .ok_or_else(|| self.err("bspatch without a read source"))?;
                    let remaining = usize::try_from(o.size - o.content.len() as u64)
                        .map_err(|_| self.err("object too large"))?;
                    bspatch::apply(old, patch, remaining, &mut o.content)
                        .map_err(|e| self.err(e.to_string()))?;
                }
                op::CLOSE => {
                    let (_, csum) = expect(next)?;
                    let o = open
                        .take()
                        .ok_or_else(|| self.err("close without an open object"))?;
                    if o.content.len() as u64 != o.size {
                        return Err(self.err(format!(
                            "object {csum}: {} bytes written, {} declared",
                            o.content.len(),
                            o.size
                        )));
                    }
                    self.finish_file(&csum, &o.header, &o.content, sink)?;
                    read_source = None;
                    next += 1;
                }
                other => {
                    return Err(self.err(format!(
                        "unknown opcode {other:#04x} at op offset {}",
                        pos - 1
                    )))
                }
            }
        }
        if open.is_some() {
            return Err(self.err("ops end with an object still open"));
        }
        if next != self.header.objects.len() {
            return Err(self.err(format!(
                "ops create {next} objects, the header lists {}",
                self.header.objects.len()
            )));
        }
        Ok(counts)
    }

    fn finish_file(
        &self,
        csum: &Checksum,
        header: &FileHeader,
        content: &[u8],
        sink: &dyn ObjectSink,
    ) -> Result<()> {
        let actual = header.checksum(content);
        // A fuzzer cannot forge SHA-256: under `cfg(fuzzing)` a wrong checksum does not
        // end the part, so the ops after the first object are reached too.
        if actual != *csum && !cfg!(fuzzing) {
            return Err(self.err(format!(
                "corrupted file object; checksum expected={csum} actual={actual}"
            )));
        }
        sink.file(csum, header, content)
    }

    fn finish_metadata(
        &self,
        ty: ObjectType,
        csum: &Checksum,
        data: &[u8],
        sink: &dyn ObjectSink,
    ) -> Result<()> {
        let actual = Checksum::of(data);
        if actual != *csum && !cfg!(fuzzing) {
            return Err(self.err(format!(
                "corrupted {} object; checksum expected={csum} actual={actual}",
                ty.archive_extension()
            )));
        }
        let valid = match ty {
            ObjectType::DirTree => DirTree::from_bytes(data).map(|_| ()),
            ObjectType::DirMeta => DirMeta::from_bytes(data).map(|_| ()),
            ObjectType::Commit => Commit::from_bytes(data).map(|_| ()),
            _ => Ok(()),
        };
        valid.map_err(|e| self.err(format!("{}.{}: {e}", csum, ty.archive_extension())))?;
        sink.metadata(ty, csum, data)
    }
}

/// Execute part `index` of `delta`: read, check, decompress, run every op.
pub fn execute_part(
    delta: &DeltaSource,
    index: usize,
    sources: &dyn Fn(&Checksum) -> Result<Vec<u8>>,
    sink: &dyn ObjectSink,
) -> Result<OpCounts> {
    let raw = delta.read_part_payload(index)?;
    execute_payload(
        &delta.name().to_string(),
        index,
        &delta.superblock.parts[index],
        &raw,
        sources,
        sink,
    )
}

/// Run the ops of one decompressed part payload described by `header` (part `index`
/// of `delta`, for messages): [`execute_part`] without the part file, for the fuzz
/// target.
#[doc(hidden)]
pub fn execute_payload(
    delta: &str,
    index: usize,
    header: &PartHeader,
    payload: &[u8],
    sources: &dyn Fn(&Checksum) -> Result<Vec<u8>>,
    sink: &dyn ObjectSink,
) -> Result<OpCounts> {
    let exec = Exec {
        delta: delta.to_string(),
        index,
        header,
        payload: PartPayload::parse(payload).map_err(|e| DeltaError::Part {
            delta: delta.to_string(),
            index,
            why: format!("payload: {e}"),
        })?,
    };
    exec.run(sources, sink)
}

/// Records what a delta produced (metadata kept for the completeness walk).
#[derive(Default)]
struct Collect {
    metadata: Mutex<HashMap<(ObjectType, Checksum), Vec<u8>>>,
    files: Mutex<HashSet<Checksum>>,
}

impl ObjectSink for Collect {
    fn metadata(&self, ty: ObjectType, checksum: &Checksum, bytes: &[u8]) -> Result<()> {
        self.metadata
            .lock()
            .expect("collect lock")
            .insert((ty, *checksum), bytes.to_vec());
        Ok(())
    }
    fn file(&self, checksum: &Checksum, _: &FileHeader, _: &[u8]) -> Result<()> {
        self.files.lock().expect("collect lock").insert(*checksum);
        Ok(())
    }
}

/// Writes objects into an archive repository and remembers what it produced.
struct RepoSink<'a> {
    repo: &'a Repo,
    inner: Collect,
}

impl ObjectSink for RepoSink<'_> {
    fn metadata(&self, ty: ObjectType, checksum: &Checksum, bytes: &[u8]) -> Result<()> {
        self.repo.write_metadata(ty, bytes)?;
        self.inner.metadata(ty, checksum, bytes)
    }
    fn file(&self, checksum: &Checksum, header: &FileHeader, content: &[u8]) -> Result<()> {
        self.repo.write_file_object(checksum, header, content)?;
        self.inner.file(checksum, header, content)
    }
}

/// What `verify` found.
#[derive(Debug, Default)]
pub struct VerifyReport {
    pub parts: usize,
    pub objects: u64,
    pub fallbacks: usize,
    pub ops: OpCounts,
    /// Objects reachable from `to` that neither `from`, the parts nor the fallbacks supply.
    pub missing: Vec<(ObjectType, Checksum)>,
}

/// Result of `apply_to_repo`.
#[derive(Debug, Default)]
pub struct ApplyReport {
    pub commit: Checksum,
    pub parts: usize,
    pub objects: u64,
    pub ops: OpCounts,
}

fn invalid(delta: &DeltaSource, why: impl Into<String>) -> DeltaError {
    DeltaError::Invalid {
        delta: delta.name().to_string(),
        why: why.into(),
    }
}

fn check_from(repo: &Repo, delta: &DeltaSource) -> Result<Option<Reachable>> {
    match delta.superblock.from {
        None => Ok(None),
        Some(from) => {
            if !repo.has_object(&from, ObjectType::Commit) {
                return Err(DeltaError::MissingFromCommit {
                    commit: from,
                    repo: repo.path().to_path_buf(),
                });
            }
            Ok(Some(Reachable::walk(repo, &from)?))
        }
    }
}

fn run_parts(
    repo: &Repo,
    delta: &DeltaSource,
    sink: &dyn ObjectSink,
    progress: &dyn Progress,
) -> Result<OpCounts> {
    let n = delta.superblock.parts.len();
    progress.start("parts", Some(n as u64));
    let sources = |c: &Checksum| -> Result<Vec<u8>> { Ok(repo.read_file(c)?.1) };
    let counts: Vec<OpCounts> = (0..n)
        .into_par_iter()
        .map(|i| {
            let r = execute_part(delta, i, &sources, sink);
            progress.inc(1);
            r
        })
        .collect::<Result<_>>()?;
    progress.finish();
    let mut total = OpCounts::new();
    for c in counts {
        for (k, v) in c {
            *total.entry(k).or_default() += v;
        }
    }
    Ok(total)
}

/// Objects reachable from the to-commit that nothing supplies. `metadata` gives the
/// bytes of dirtrees the delta produced; others come from `repo` when `available`.
fn missing_objects(
    repo: &Repo,
    commit: &Commit,
    produced: &Collect,
    from: Option<&Reachable>,
    fallbacks: &[Fallback],
) -> Result<Vec<(ObjectType, Checksum)>> {
    let metadata = produced.metadata.lock().expect("collect lock");
    let files = produced.files.lock().expect("collect lock");
    let fb: HashSet<Checksum> = fallbacks.iter().map(|f| f.checksum).collect();
    let in_from = |ty, c: &Checksum| from.is_some_and(|r| r.contains(ty, c));
    let mut missing = Vec::new();
    let mut seen = HashSet::new();
    let mut stack = vec![(commit.root_tree, commit.root_meta)];
    while let Some((tree, meta)) = stack.pop() {
        if !seen.insert((tree, meta)) {
            continue;
        }
        if !metadata.contains_key(&(ObjectType::DirMeta, meta))
            && !in_from(ObjectType::DirMeta, &meta)
        {
            missing.push((ObjectType::DirMeta, meta));
        }
        let t = if let Some(b) = metadata.get(&(ObjectType::DirTree, tree)) {
            DirTree::from_bytes(b).map_err(|e| arbor_repo::RepoError::Corrupt {
                checksum: tree,
                ext: "dirtree",
                why: e.to_string(),
            })?
        } else if in_from(ObjectType::DirTree, &tree) {
            repo.read_dirtree(&tree)?
        } else {
            missing.push((ObjectType::DirTree, tree));
            continue;
        };
        for (_, c) in &t.files {
            if !files.contains(c) && !fb.contains(c) && !in_from(ObjectType::File, c) {
                missing.push((ObjectType::File, *c));
            }
        }
        for (_, st, sm) in &t.dirs {
            stack.push((*st, *sm));
        }
    }
    missing.sort();
    missing.dedup();
    Ok(missing)
}

/// Apply `delta` in memory against `repo` (which must hold the from-commit): check the
/// superblock, every part's size and checksum, every op, every object's checksum, that
/// the fallbacks are valid loose objects of `repo`, and that the delta is complete.
pub fn verify(repo: &Repo, delta: &DeltaSource, progress: &dyn Progress) -> Result<VerifyReport> {
    let commit = delta
        .superblock
        .commit()
        .map_err(|e| invalid(delta, e.to_string()))?;
    let from = check_from(repo, delta)?;
    let produced = Collect::default();
    let ops = run_parts(repo, delta, &produced, progress)?;
    for f in &delta.superblock.fallbacks {
        if f.objtype != ObjectType::File {
            return Err(invalid(
                delta,
                format!("fallback {} is a metadata object", f.checksum),
            ));
        }
        let (_, content) = repo
            .read_file(&f.checksum)
            .map_err(|e| invalid(delta, format!("fallback object: {e}")))?;
        if content.len() as u64 != f.usize {
            return Err(invalid(
                delta,
                format!(
                    "fallback {}: size {} but the superblock says {}",
                    f.checksum,
                    content.len(),
                    f.usize
                ),
            ));
        }
    }
    let missing = missing_objects(
        repo,
        &commit,
        &produced,
        from.as_ref(),
        &delta.superblock.fallbacks,
    )?;
    let objects = delta
        .superblock
        .parts
        .iter()
        .map(|p| p.objects.len() as u64)
        .sum();
    Ok(VerifyReport {
        parts: delta.superblock.parts.len(),
        objects,
        fallbacks: delta.superblock.fallbacks.len(),
        ops,
        missing,
    })
}

/// Apply `delta` into the archive repository `repo`, which must hold the from-commit.
/// Objects are written as loose objects; the detached metadata and the commit come
/// last, and only once every object the commit reaches is present. Fallback objects
/// cannot be fetched offline, so they must already be in `repo`. Refs are not touched.
pub fn apply_to_repo(
    repo: &Repo,
    delta: &DeltaSource,
    progress: &dyn Progress,
) -> Result<ApplyReport> {
    let sb = &delta.superblock;
    let commit = sb.commit().map_err(|e| invalid(delta, e.to_string()))?;
    let from = check_from(repo, delta)?;
    let absent: Vec<&Fallback> = sb
        .fallbacks
        .iter()
        .filter(|f| !repo.has_object(&f.checksum, ObjectType::File))
        .collect();
    if let Some(first) = absent.first() {
        return Err(invalid(
            delta,
            format!(
                "cannot apply offline: {} fallback object(s) are not in {} (first: {}.filez); \
                 copy them from the delta's repository or pull over HTTP",
                absent.len(),
                repo.path().display(),
                first.checksum
            ),
        ));
    }
    let sink = RepoSink {
        repo,
        inner: Collect::default(),
    };
    let ops = run_parts(repo, delta, &sink, progress)?;
    let missing = missing_objects(repo, &commit, &sink.inner, from.as_ref(), &sb.fallbacks)?;
    if let Some((ty, c)) = missing.first() {
        return Err(invalid(
            delta,
            format!(
                "incomplete: {} object(s) reachable from {} are not supplied (first: {c}.{}); commit not written",
                missing.len(),
                sb.to,
                ty.archive_extension()
            ),
        ));
    }
    if let Some(cm) = sb.commitmeta() {
        parse_commitmeta(cm).map_err(|e| invalid(delta, format!("embedded commitmeta: {e}")))?;
        repo.sync()?;
        repo.write_atomic(
            Path::new(&arbor_repo::layout::object_key(
                &sb.to,
                ObjectType::CommitMeta,
            )),
            cm,
        )?;
    }
    repo.sync()?;
    repo.write_metadata(ObjectType::Commit, &sb.commit_bytes)?;
    Ok(ApplyReport {
        commit: sb.to,
        parts: sb.parts.len(),
        objects: sb.parts.iter().map(|p| p.objects.len() as u64).sum(),
        ops,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::{write_part_payload, write_varint};

    struct Discard;

    impl ObjectSink for Discard {
        fn metadata(&self, _: ObjectType, _: &Checksum, _: &[u8]) -> Result<()> {
            Ok(())
        }
        fn file(&self, _: &Checksum, _: &FileHeader, _: &[u8]) -> Result<()> {
            Ok(())
        }
    }

    /// fuzz target delta_part, an `o` op declaring a huge object (a hand-made input;
    /// the fuzz harness's allocation cap aborts on it): it used to reserve
    /// min(size, 1 GiB) before any content, 1 GiB from 9 bytes of ops.
    #[test]
    fn open_of_a_huge_object_reserves_little() {
        let mut ops = vec![op::OPEN];
        for v in [0, 0, 1 << 30] {
            write_varint(&mut ops, v);
        }
        ops.push(op::CLOSE);
        let mut payload = Vec::new();
        let modes = [(0, 0, S_IFREG | 0o644)];
        write_part_payload(&mut payload, &modes, &[Xattrs::default()], &[], &ops).unwrap();
        let header = PartHeader {
            version: 0,
            checksum: Checksum::of(b""),
            size: 0,
            usize: 0,
            objects: vec![(ObjectType::File, Checksum::of(b"x"))],
        };
        let none = |_: &Checksum| -> Result<Vec<u8>> { Ok(Vec::new()) };
        let err = execute_payload("d", 0, &header, &payload, &none, &Discard).unwrap_err();
        assert!(
            err.to_string()
                .contains("0 bytes written, 1073741824 declared"),
            "{err}"
        );
        assert_eq!(reservation(1 << 30), 64 << 20);
        assert_eq!(reservation(u64::MAX), 64 << 20);
        assert_eq!(reservation(10), 10);
    }
}
