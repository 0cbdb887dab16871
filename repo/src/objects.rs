//! OSTree objects as values: commit, dirtree, dirmeta, file headers, and their
//! checksums. Pure: bytes in, values out, never a path.
//!
//! ```text
//! commit   (a{sv} aya(say) s s t ay ay)   metadata, parent, related, subject, body,
//!                                         timestamp (BE), root dirtree, root dirmeta
//! dirtree  (a(say) a(sayay))              files (name, content csum), dirs (name, tree, meta);
//!                                         each array sorted bytewise by name
//! dirmeta  (u u u a(ayay))                uid, gid, mode (all BE), xattrs
//! FILE     u32 BE len ‖ 00000000 ‖ (u u u u s a(ayay)) ‖ content     <- checksummed stream
//! .filez   u32 BE len ‖ 00000000 ‖ (t u u u u s a(ayay)) ‖ raw deflate  <- archive file
//! ```

use crate::checksum::{Checksum, Hasher};
use crate::gvariant::{GvError, Type, Value, VarDict};

pub const S_IFMT: u32 = 0o170000;
pub const S_IFREG: u32 = 0o100000;
pub const S_IFDIR: u32 = 0o040000;
pub const S_IFLNK: u32 = 0o120000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ObjectType {
    File = 1,
    DirTree = 2,
    DirMeta = 3,
    Commit = 4,
    TombstoneCommit = 5,
    CommitMeta = 6,
}

impl ObjectType {
    /// Loose-object file extension in an archive repository.
    pub fn archive_extension(self) -> &'static str {
        match self {
            ObjectType::File => "filez",
            ObjectType::DirTree => "dirtree",
            ObjectType::DirMeta => "dirmeta",
            ObjectType::Commit => "commit",
            ObjectType::TombstoneCommit => "tombstone-commit",
            ObjectType::CommitMeta => "commitmeta",
        }
    }

    pub fn from_extension(ext: &str) -> Option<ObjectType> {
        Some(match ext {
            "filez" | "file" => ObjectType::File,
            "dirtree" => ObjectType::DirTree,
            "dirmeta" => ObjectType::DirMeta,
            "commit" => ObjectType::Commit,
            "tombstone-commit" => ObjectType::TombstoneCommit,
            "commitmeta" => ObjectType::CommitMeta,
            _ => return None,
        })
    }

    /// Metadata objects are named by the SHA-256 of their own bytes.
    pub fn is_content_addressed_metadata(self) -> bool {
        matches!(
            self,
            ObjectType::DirTree | ObjectType::DirMeta | ObjectType::Commit
        )
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ObjectError {
    #[error(transparent)]
    Variant(#[from] GvError),
    #[error("invalid {what}: {why}")]
    Invalid { what: &'static str, why: String },
}

fn invalid(what: &'static str, why: impl Into<String>) -> ObjectError {
    ObjectError::Invalid {
        what,
        why: why.into(),
    }
}

/// Extended attributes, kept sorted by name and free of duplicates, as ostree ≥ 2024.10
/// requires. Names are stored without the trailing NUL that the encoding adds.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Xattrs(Vec<(Vec<u8>, Vec<u8>)>);

impl Xattrs {
    /// Build from any order; sorts by name (bytewise = `strcmp` on the NUL-terminated
    /// names) and keeps the last value of a duplicated name.
    pub fn new(mut entries: Vec<(Vec<u8>, Vec<u8>)>) -> Xattrs {
        entries.sort_by(|a, b| a.0.cmp(&b.0));
        let mut out: Vec<(Vec<u8>, Vec<u8>)> = Vec::with_capacity(entries.len());
        for e in entries {
            match out.last_mut() {
                Some(last) if last.0 == e.0 => *last = e,
                _ => out.push(e),
            }
        }
        Xattrs(out)
    }

    pub fn entries(&self) -> &[(Vec<u8>, Vec<u8>)] {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// `a(ayay)`, names NUL-terminated: as in dirmeta, file headers and delta parts.
    pub fn to_value(&self) -> Value {
        let elem = Type::Tuple(vec![bytes_type(), bytes_type()]);
        Value::Array(
            elem,
            self.0
                .iter()
                .map(|(n, v)| {
                    let mut name = n.clone();
                    name.push(0);
                    Value::Tuple(vec![Value::Bytes(name), Value::Bytes(v.clone())])
                })
                .collect(),
        )
    }

    /// The `a(ayay)` encoding ([`Xattrs::to_value`]'s bytes).
    pub fn to_bytes(&self) -> Vec<u8> {
        self.to_value().to_bytes()
    }

    /// Parse an `a(ayay)` list (as ostree-container layers carry in `.file-xattrs`):
    /// names sorted, unique, NUL-terminated.
    pub fn from_bytes(data: &[u8]) -> Result<Xattrs, ObjectError> {
        let ty = Type::Array(Box::new(Type::Tuple(vec![bytes_type(), bytes_type()])));
        Xattrs::from_value(&Value::from_bytes(&ty, data)?)
    }

    fn from_value(v: &Value) -> Result<Xattrs, ObjectError> {
        let Value::Array(_, items) = v else {
            return Err(invalid("xattrs", "not an array"));
        };
        let mut out: Vec<(Vec<u8>, Vec<u8>)> = Vec::with_capacity(items.len());
        for it in items {
            let (name, value) = bytes_pair(it).ok_or_else(|| invalid("xattrs", "bad entry"))?;
            let Some((0, name)) = name.split_last() else {
                return Err(invalid("xattrs", "name without trailing NUL"));
            };
            if name.is_empty() || name.contains(&0) {
                return Err(invalid("xattrs", "empty name or embedded NUL"));
            }
            if let Some(prev) = out.last() {
                if prev.0.as_slice() >= name {
                    return Err(invalid("xattrs", "names not sorted or duplicated"));
                }
            }
            out.push((name.to_vec(), value.to_vec()));
        }
        Ok(Xattrs(out))
    }
}

fn bytes_type() -> Type {
    Type::Array(Box::new(Type::Byte))
}

fn bytes_pair(v: &Value) -> Option<(&[u8], &[u8])> {
    match v {
        Value::Tuple(m) if m.len() == 2 => match (&m[0], &m[1]) {
            (Value::Bytes(a), Value::Bytes(b)) => Some((a, b)),
            _ => None,
        },
        _ => None,
    }
}

fn tuple(v: Value, n: usize, what: &'static str) -> Result<Vec<Value>, ObjectError> {
    match v {
        Value::Tuple(m) if m.len() == n => Ok(m),
        _ => Err(invalid(what, "wrong shape")),
    }
}

fn take_u32(v: &Value, what: &'static str) -> Result<u32, ObjectError> {
    match v {
        Value::Uint32(x) => Ok(*x),
        _ => Err(invalid(what, "expected u32")),
    }
}

fn take_str(v: &Value, what: &'static str) -> Result<String, ObjectError> {
    v.as_str()
        .map(str::to_string)
        .ok_or_else(|| invalid(what, "expected string"))
}

fn take_csum(v: &Value, what: &'static str) -> Result<Checksum, ObjectError> {
    match v {
        Value::Bytes(b) => {
            Checksum::from_slice(b).ok_or_else(|| invalid(what, "checksum is not 32 bytes"))
        }
        _ => Err(invalid(what, "expected checksum bytes")),
    }
}

/// Validate a file or directory name as ostree does (`ot_util_filename_validate`).
pub fn validate_filename(name: &str) -> Result<(), ObjectError> {
    if name.is_empty() || name == "." || name == ".." || name.contains('/') || name.contains('\0') {
        return Err(invalid(
            "file name",
            format!("{name:?} is not a valid file name"),
        ));
    }
    Ok(())
}

/// Directory metadata `(uuua(ayay))`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DirMeta {
    pub uid: u32,
    pub gid: u32,
    /// Full mode including `S_IFDIR`.
    pub mode: u32,
    pub xattrs: Xattrs,
}

impl DirMeta {
    pub const TYPE_STR: &'static str = "(uuua(ayay))";

    pub fn to_bytes(&self) -> Vec<u8> {
        Value::Tuple(vec![
            Value::Uint32(self.uid.to_be()),
            Value::Uint32(self.gid.to_be()),
            Value::Uint32(self.mode.to_be()),
            self.xattrs.to_value(),
        ])
        .to_bytes()
    }

    pub fn checksum(&self) -> Checksum {
        Checksum::of(&self.to_bytes())
    }

    pub fn from_bytes(data: &[u8]) -> Result<DirMeta, ObjectError> {
        let v = Value::from_bytes(&Type::parse(Self::TYPE_STR)?, data)?;
        let m = tuple(v, 4, "dirmeta")?;
        let mode = u32::from_be(take_u32(&m[2], "dirmeta")?);
        if mode & S_IFMT != S_IFDIR || mode & !(S_IFMT | 0o7777) != 0 {
            return Err(invalid(
                "dirmeta",
                format!("invalid directory mode {mode:o}"),
            ));
        }
        Ok(DirMeta {
            uid: u32::from_be(take_u32(&m[0], "dirmeta")?),
            gid: u32::from_be(take_u32(&m[1], "dirmeta")?),
            mode,
            xattrs: Xattrs::from_value(&m[3])?,
        })
    }
}

/// The metadata part of a FILE object: `(uuuusa(ayay))`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct FileHeader {
    pub uid: u32,
    pub gid: u32,
    /// Full mode including `S_IFREG` or `S_IFLNK`.
    pub mode: u32,
    /// Empty for regular files.
    pub symlink_target: String,
    pub xattrs: Xattrs,
}

/// The 8-byte prefix in front of a file header GVariant: BE u32 length, 4 zero bytes.
const HEADER_PREFIX_LEN: usize = 8;

impl FileHeader {
    pub const TYPE_STR: &'static str = "(uuuusa(ayay))";
    pub const ARCHIVE_TYPE_STR: &'static str = "(tuuuusa(ayay))";

    pub fn is_symlink(&self) -> bool {
        self.mode & S_IFMT == S_IFLNK
    }

    fn members(&self) -> Vec<Value> {
        vec![
            Value::Uint32(self.uid.to_be()),
            Value::Uint32(self.gid.to_be()),
            Value::Uint32(self.mode.to_be()),
            Value::Uint32(0), // rdev
            Value::str(self.symlink_target.clone()),
            self.xattrs.to_value(),
        ]
    }

    /// The length-prefixed header that starts the checksummed content stream.
    pub fn to_stream_header(&self) -> Vec<u8> {
        lenprefixed(Value::Tuple(self.members()).to_bytes())
    }

    /// The length-prefixed header that starts a `.filez` file; `size` is the content length.
    pub fn to_archive_header(&self, size: u64) -> Vec<u8> {
        let mut m = vec![Value::Uint64(size.to_be())];
        m.extend(self.members());
        lenprefixed(Value::Tuple(m).to_bytes())
    }

    /// Checksum of the FILE object with this header and content.
    pub fn checksum(&self, content: &[u8]) -> Checksum {
        let mut h = Hasher::new();
        h.update(&self.to_stream_header());
        h.update(content);
        h.finish()
    }

    fn from_members(m: &[Value]) -> Result<FileHeader, ObjectError> {
        let what = "file header";
        let rdev = take_u32(&m[3], what)?;
        if rdev != 0 {
            return Err(invalid(what, "invalid rdev"));
        }
        let mode = u32::from_be(take_u32(&m[2], what)?);
        let target = take_str(&m[4], what)?;
        match mode & S_IFMT {
            S_IFREG if target.is_empty() => {}
            S_IFLNK if !target.is_empty() => {}
            _ => {
                return Err(invalid(
                    what,
                    format!("invalid mode {mode:o} for target {target:?}"),
                ))
            }
        }
        if mode & !(S_IFMT | 0o7777) != 0 {
            return Err(invalid(what, format!("invalid mode {mode:o}")));
        }
        Ok(FileHeader {
            uid: u32::from_be(take_u32(&m[0], what)?),
            gid: u32::from_be(take_u32(&m[1], what)?),
            mode,
            symlink_target: target,
            xattrs: Xattrs::from_value(&m[5])?,
        })
    }

    /// Parse a `.filez` file's header; returns the header, the content size, and the
    /// offset where the deflate stream starts.
    pub fn parse_archive(data: &[u8]) -> Result<(FileHeader, u64, usize), ObjectError> {
        let what = ".filez header";
        let body = split_lenprefixed(data).ok_or_else(|| invalid(what, "truncated header"))?;
        let v = Value::from_bytes(&Type::parse(Self::ARCHIVE_TYPE_STR)?, body)?;
        let m = tuple(v, 7, what)?;
        let size = match m[0] {
            Value::Uint64(s) => u64::from_be(s),
            _ => return Err(invalid(what, "expected size")),
        };
        let header = FileHeader::from_members(&m[1..])?;
        Ok((header, size, HEADER_PREFIX_LEN + body.len()))
    }
}

fn lenprefixed(body: Vec<u8>) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER_PREFIX_LEN + body.len());
    out.extend_from_slice(&(body.len() as u32).to_be_bytes());
    out.extend_from_slice(&[0; 4]);
    out.extend_from_slice(&body);
    out
}

fn split_lenprefixed(data: &[u8]) -> Option<&[u8]> {
    let len = u32::from_be_bytes(data.get(..4)?.try_into().ok()?) as usize;
    if data.get(4..8)? != [0, 0, 0, 0] {
        return None;
    }
    data.get(HEADER_PREFIX_LEN..HEADER_PREFIX_LEN.checked_add(len)?)
}

/// A directory listing `(a(say)a(sayay))`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DirTree {
    /// (name, content checksum), sorted by name.
    pub files: Vec<(String, Checksum)>,
    /// (name, dirtree checksum, dirmeta checksum), sorted by name.
    pub dirs: Vec<(String, Checksum, Checksum)>,
}

impl DirTree {
    pub const TYPE_STR: &'static str = "(a(say)a(sayay))";

    /// Serialise; the arrays are sorted here so a caller cannot get the order wrong
    /// (unsorted dirtrees pass fsck but break path lookups in every client).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut files: Vec<_> = self.files.iter().collect();
        files.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
        let mut dirs: Vec<_> = self.dirs.iter().collect();
        dirs.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
        let csum = |c: &Checksum| Value::Bytes(c.0.to_vec());
        Value::Tuple(vec![
            Value::Array(
                Type::parse("(say)").expect("static type"),
                files
                    .iter()
                    .map(|(n, c)| Value::Tuple(vec![Value::str(n.clone()), csum(c)]))
                    .collect(),
            ),
            Value::Array(
                Type::parse("(sayay)").expect("static type"),
                dirs.iter()
                    .map(|(n, t, m)| Value::Tuple(vec![Value::str(n.clone()), csum(t), csum(m)]))
                    .collect(),
            ),
        ])
        .to_bytes()
    }

    pub fn checksum(&self) -> Checksum {
        Checksum::of(&self.to_bytes())
    }

    pub fn from_bytes(data: &[u8]) -> Result<DirTree, ObjectError> {
        let v = Value::from_bytes(&Type::parse(Self::TYPE_STR)?, data)?;
        let m = tuple(v, 2, "dirtree")?;
        let mut tree = DirTree::default();
        let (Value::Array(_, files), Value::Array(_, dirs)) = (&m[0], &m[1]) else {
            return Err(invalid("dirtree", "wrong shape"));
        };
        for f in files {
            let Value::Tuple(fm) = f else {
                return Err(invalid("dirtree", "wrong shape"));
            };
            let name = take_str(&fm[0], "dirtree")?;
            validate_filename(&name)?;
            tree.files.push((name, take_csum(&fm[1], "dirtree")?));
        }
        for d in dirs {
            let Value::Tuple(dm) = d else {
                return Err(invalid("dirtree", "wrong shape"));
            };
            let name = take_str(&dm[0], "dirtree")?;
            validate_filename(&name)?;
            tree.dirs.push((
                name,
                take_csum(&dm[1], "dirtree")?,
                take_csum(&dm[2], "dirtree")?,
            ));
        }
        // A name listed twice would make a checkout write one entry through the other
        // (a symlink first, then a file of the same name); ostree refuses it too.
        let mut names =
            std::collections::HashSet::with_capacity(tree.files.len() + tree.dirs.len());
        for name in tree
            .files
            .iter()
            .map(|(n, _)| n)
            .chain(tree.dirs.iter().map(|(n, _, _)| n))
        {
            if !names.insert(name.as_str()) {
                return Err(invalid("dirtree", format!("{name:?} is listed twice")));
            }
        }
        // Clients binary-search the arrays: an unsorted dirtree hides entries from path
        // lookups while a checkout still writes them.
        if !tree.is_sorted() {
            return Err(invalid("dirtree", "entries are not sorted by name"));
        }
        Ok(tree)
    }

    /// True when both arrays are strictly sorted (ostree's lookups binary-search them).
    pub fn is_sorted(&self) -> bool {
        self.files
            .windows(2)
            .all(|w| w[0].0.as_bytes() < w[1].0.as_bytes())
            && self
                .dirs
                .windows(2)
                .all(|w| w[0].0.as_bytes() < w[1].0.as_bytes())
    }

    pub fn find_file(&self, name: &str) -> Option<&Checksum> {
        self.files
            .binary_search_by(|(n, _)| n.as_bytes().cmp(name.as_bytes()))
            .ok()
            .map(|i| &self.files[i].1)
    }

    pub fn find_dir(&self, name: &str) -> Option<(&Checksum, &Checksum)> {
        self.dirs
            .binary_search_by(|(n, _, _)| n.as_bytes().cmp(name.as_bytes()))
            .ok()
            .map(|i| (&self.dirs[i].1, &self.dirs[i].2))
    }
}

/// A commit `(a{sv}aya(say)sstayay)`.
#[derive(Debug, Clone, PartialEq)]
pub struct Commit {
    pub metadata: VarDict,
    pub parent: Option<Checksum>,
    pub subject: String,
    pub body: String,
    /// Seconds since the epoch, UTC.
    pub timestamp: u64,
    pub root_tree: Checksum,
    pub root_meta: Checksum,
}

impl Commit {
    pub const TYPE_STR: &'static str = "(a{sv}aya(say)sstayay)";

    pub fn to_bytes(&self) -> Vec<u8> {
        Value::Tuple(vec![
            self.metadata.to_value(),
            Value::Bytes(self.parent.map(|p| p.0.to_vec()).unwrap_or_default()),
            Value::Array(Type::parse("(say)").expect("static type"), vec![]),
            Value::str(self.subject.clone()),
            Value::str(self.body.clone()),
            Value::Uint64(self.timestamp.to_be()),
            Value::Bytes(self.root_tree.0.to_vec()),
            Value::Bytes(self.root_meta.0.to_vec()),
        ])
        .to_bytes()
    }

    pub fn from_bytes(data: &[u8]) -> Result<Commit, ObjectError> {
        let v = Value::from_bytes(&Type::parse(Self::TYPE_STR)?, data)?;
        let m = tuple(v, 8, "commit")?;
        let metadata = VarDict::from_value(&m[0])?;
        if metadata.0.iter().any(|(k, _)| k.is_empty()) {
            return Err(invalid("commit", "empty metadata key"));
        }
        let parent = match &m[1] {
            Value::Bytes(b) if b.is_empty() => None,
            other => Some(take_csum(other, "commit parent")?),
        };
        let timestamp = match m[5] {
            Value::Uint64(t) => u64::from_be(t),
            _ => return Err(invalid("commit", "expected timestamp")),
        };
        Ok(Commit {
            metadata,
            parent,
            subject: take_str(&m[3], "commit")?,
            body: take_str(&m[4], "commit")?,
            timestamp,
            root_tree: take_csum(&m[6], "commit root tree")?,
            root_meta: take_csum(&m[7], "commit root meta")?,
        })
    }

    /// `version` metadata, if present and a string.
    pub fn version(&self) -> Option<&str> {
        self.metadata.get("version").and_then(Value::as_str)
    }
}

/// Detached commit metadata (`.commitmeta`), an `a{sv}`.
pub fn parse_commitmeta(data: &[u8]) -> Result<VarDict, ObjectError> {
    let v = Value::from_bytes(&Type::parse(VarDict::TYPE_STR)?, data)?;
    Ok(VarDict::from_value(&v)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A dirtree naming an entry twice is refused (a checkout would write one through
    /// the other).
    #[test]
    fn unsorted_dirtree_is_refused() {
        let c = Value::Bytes(Checksum::of(b"x").0.to_vec());
        let file = |n: &str| Value::Tuple(vec![Value::str(n.to_string()), c.clone()]);
        let bytes = Value::Tuple(vec![
            Value::Array(Type::parse("(say)").unwrap(), vec![file("b"), file("a")]),
            Value::Array(Type::parse("(sayay)").unwrap(), vec![]),
        ])
        .to_bytes();
        let e = DirTree::from_bytes(&bytes).unwrap_err();
        assert!(e.to_string().contains("not sorted"), "{e}");
    }

    #[test]
    fn dirtree_with_a_name_twice_is_refused() {
        let c = Checksum::of(b"x");
        let twice = DirTree {
            files: vec![("x".into(), c), ("x".into(), c)],
            dirs: vec![],
        };
        let e = DirTree::from_bytes(&twice.to_bytes()).unwrap_err();
        assert!(e.to_string().contains("\"x\" is listed twice"), "{e}");
        let across = DirTree {
            files: vec![("x".into(), c)],
            dirs: vec![("x".into(), c, c)],
        };
        assert!(DirTree::from_bytes(&across.to_bytes()).is_err());
        let fine = DirTree {
            files: vec![("x".into(), c)],
            dirs: vec![("y".into(), c, c)],
        };
        assert_eq!(DirTree::from_bytes(&fine.to_bytes()).unwrap(), fine);
    }

    fn hex(b: &[u8]) -> String {
        b.iter().map(|x| format!("{x:02x}")).collect()
    }

    #[test]
    fn spec_worked_examples() {
        // ../shared/spec/ostree-format.md §2.3, §2.4, §2.5
        let empty = DirTree::default();
        assert_eq!(empty.to_bytes(), vec![0]);
        assert_eq!(
            empty.checksum().to_hex(),
            "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"
        );
        let root = DirMeta {
            uid: 0,
            gid: 0,
            mode: 0o40755,
            xattrs: Xattrs::default(),
        };
        assert_eq!(hex(&root.to_bytes()), "0000000000000000000041ed");
        assert_eq!(
            root.checksum().to_hex(),
            "446a0ef11b7cc167f3b603e585c7eeeeb675faa412d5ec73f62988eb0b6c5488"
        );
        let hello = FileHeader {
            uid: 0,
            gid: 0,
            mode: 0o100644,
            symlink_target: String::new(),
            xattrs: Xattrs::default(),
        };
        assert_eq!(
            hex(&hello.to_stream_header()),
            "00000012000000000000000000000000000081a4000000000011"
        );
        assert_eq!(
            hello.checksum(b"hello\n").to_hex(),
            "44f778e59f0a4748d6b0c90a47347212a231c4ad1e8f7ea5c5dffc7749153a6b"
        );
        assert!(hello.checksum(b"").to_hex().starts_with("cc700d46"));
    }

    #[test]
    fn xattr_header_example() {
        let h = FileHeader {
            uid: 0,
            gid: 0,
            mode: 0,
            symlink_target: String::new(),
            xattrs: Xattrs::new(vec![(b"user.a".to_vec(), b"xy".to_vec())]),
        };
        let body = &h.to_stream_header()[8..];
        assert_eq!(body.len(), 29);
        assert_eq!(&body[16..], b"\0user.a\0xy\x07\x0a\x11");
    }

    #[test]
    fn objects_round_trip() {
        let tree = DirTree {
            files: vec![
                ("b".into(), Checksum::of(b"1")),
                ("a".into(), Checksum::of(b"2")),
            ],
            dirs: vec![("d".into(), Checksum::of(b"3"), Checksum::of(b"4"))],
        };
        let parsed = DirTree::from_bytes(&tree.to_bytes()).unwrap();
        assert!(parsed.is_sorted());
        assert_eq!(parsed.files[0].0, "a");
        let mut md = VarDict::new();
        md.insert("version", Value::str("1"));
        let c = Commit {
            metadata: md,
            parent: Some(Checksum::of(b"p")),
            subject: "s".into(),
            body: "".into(),
            timestamp: 1577836800,
            root_tree: Checksum::of(b"t"),
            root_meta: Checksum::of(b"m"),
        };
        assert_eq!(Commit::from_bytes(&c.to_bytes()).unwrap(), c);
        let h = FileHeader {
            uid: 1000,
            gid: 1000,
            mode: 0o120777,
            symlink_target: "../x".into(),
            xattrs: Xattrs::default(),
        };
        let (p, size, off) = FileHeader::parse_archive(&h.to_archive_header(0)).unwrap();
        assert_eq!((p, size), (h.clone(), 0));
        assert_eq!(off, h.to_archive_header(0).len());
    }

    #[test]
    fn rejects_bad_input_without_panicking() {
        for data in [
            &b""[..],
            b"\x00",
            b"\xff\xff\xff\xff\0\0\0\0",
            b"\0\0\0\x02\0\0\0\0ab",
        ] {
            assert!(FileHeader::parse_archive(data).is_err());
            assert!(Commit::from_bytes(data).is_err());
        }
        // mode with a device type
        let h = DirMeta {
            uid: 0,
            gid: 0,
            mode: 0o20644,
            xattrs: Xattrs::default(),
        }
        .to_bytes();
        assert!(DirMeta::from_bytes(&h).is_err());
    }
}
