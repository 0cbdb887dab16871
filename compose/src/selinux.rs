//! SELinux file labels from the policy shipped in the tree: `/etc/selinux/config` names
//! the policy (`SELINUXTYPE`), whose `contexts/files/file_contexts` (with `.local`,
//! `.homedirs`, `.subs`, `.subs_dist`) libselinux's `selabel_lookup` matches against
//! the path a file will have on a booted system (`/usr/etc/x` is looked up as `/etc/x`,
//! as ostree labels it). The regex matching stays libselinux's: this module is a thin
//! binding (the only `unsafe` here), and the policy files are handed to it from a
//! directory of their own, never the host's policy.
//!
//! A label is the `security.selinux` xattr: the context and a NUL, as the kernel
//! stores what `setfiles` writes.

#![allow(unsafe_code)]

use std::collections::{BTreeMap, HashMap};
use std::ffi::{c_char, c_int, c_uint, c_void, CStr, CString};
use std::path::{Path, PathBuf};

use arbor_repo::checksum::Hasher;
use arbor_repo::Xattrs;

/// The xattr a label lives in.
pub const XATTR: &[u8] = b"security.selinux";
/// `SELABEL_CTX_FILE`, `SELABEL_OPT_VALIDATE` and `SELABEL_OPT_PATH` (selinux/label.h),
/// `SELINUX_CB_VALIDATE` (selinux/selinux.h).
const SELABEL_CTX_FILE: c_uint = 0;
const SELABEL_OPT_VALIDATE: c_int = 1;
const SELABEL_OPT_PATH: c_int = 3;
const SELINUX_CB_VALIDATE: c_int = 2;
/// The files of a policy's `contexts/files/` that file labels come from.
pub const CONTEXT_FILES: &[&str] = &[
    "file_contexts",
    "file_contexts.local",
    "file_contexts.homedirs",
    "file_contexts.subs",
    "file_contexts.subs_dist",
];

/// `struct selinux_opt` (selinux/selinux.h).
#[repr(C)]
struct SelinuxOpt {
    kind: c_int,
    value: *const c_char,
}

/// `union selinux_callback`, the one member used here: a context validator.
#[repr(C)]
union SelinuxCallback {
    func_validate: extern "C" fn(*mut *mut c_char) -> c_int,
}

/// Contexts belong to the tree's policy, not the build host's: every context is
/// accepted (validation still compiles every regex, which is what catches a broken
/// file_contexts).
extern "C" fn accept_context(_ctx: *mut *mut c_char) -> c_int {
    0
}

#[link(name = "selinux")]
extern "C" {
    fn selinux_set_callback(kind: c_int, cb: SelinuxCallback);
    fn selabel_open(backend: c_uint, opts: *const SelinuxOpt, nopts: c_uint) -> *mut c_void;
    fn selabel_close(handle: *mut c_void);
    fn selabel_lookup_raw(
        handle: *mut c_void,
        con: *mut *mut c_char,
        key: *const c_char,
        kind: c_int,
    ) -> c_int;
    fn freecon(con: *mut c_char);
}

#[derive(Debug, thiserror::Error)]
pub enum LabelError {
    #[error("selinux: true, but the tree has no /etc/selinux/config (no SELinux policy package in the set; or set `selinux: false`)")]
    NoConfig,
    #[error("/etc/selinux/config names no SELINUXTYPE")]
    NoType,
    #[error("/etc/selinux/config says SELINUXTYPE={name}, but the tree has no /etc/selinux/{name}/contexts/files/file_contexts")]
    NoPolicy { name: String },
    #[error("{}: {why}", path.display())]
    Io { path: PathBuf, why: String },
    #[error(
        "libselinux cannot load the file contexts of policy {name} ({why}); its messages are above"
    )]
    Load { name: String, why: String },
    #[error("libselinux cannot label {path} with the file contexts of policy {name} ({why}); its messages are above")]
    Lookup {
        name: String,
        path: String,
        why: String,
    },
}

/// The policy files of a tree: its type and `contexts/files/*` contents.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    pub name: String,
    /// File name (from [`CONTEXT_FILES`]) → content.
    pub files: BTreeMap<String, Vec<u8>>,
}

impl Policy {
    /// From `/etc/selinux/config` and a reader of tree files (`read("etc/selinux/…")`,
    /// `None` when absent).
    pub fn find(read: &dyn Fn(&str) -> Option<Vec<u8>>) -> Result<Policy, LabelError> {
        let config = read("etc/selinux/config").ok_or(LabelError::NoConfig)?;
        let text = String::from_utf8_lossy(&config);
        let name = text
            .lines()
            .filter_map(|l| l.trim().strip_prefix("SELINUXTYPE="))
            .next_back()
            .map(|v| v.trim().trim_matches('"').to_string())
            .filter(|v| !v.is_empty())
            .ok_or(LabelError::NoType)?;
        if name.contains('/') || name == ".." {
            return Err(LabelError::NoPolicy { name });
        }
        let mut files = BTreeMap::new();
        for f in CONTEXT_FILES {
            if let Some(data) = read(&format!("etc/selinux/{name}/contexts/files/{f}")) {
                files.insert(f.to_string(), data);
            }
        }
        if !files.contains_key("file_contexts") {
            return Err(LabelError::NoPolicy { name });
        }
        Ok(Policy { name, files })
    }

    /// SHA-256 (hex) of the policy's name and files: labels made with equal digests are
    /// equal, so it belongs in every cache key of labeled content.
    pub fn digest(&self) -> String {
        let mut h = Hasher::new();
        h.update(self.name.as_bytes());
        for (f, data) in &self.files {
            h.update(format!("\0{f}\0{}\0", data.len()).as_bytes());
            h.update(data);
        }
        h.finish().to_hex()
    }
}

/// Open `selabel` handles over one policy's file contexts. libselinux's file backend
/// is thread-safe, but every regex of a handle has one mutex around its match data, so
/// threads sharing a handle take turns on every regex they try (measured: a labeled
/// import 2.5× slower than an unlabeled one on 2 cores). So each rayon thread gets a
/// handle of its own (up to [`MAX_HANDLES`], opened on first use, from the policy files
/// kept in the labeler's directory); other threads share the first.
#[derive(Debug)]
pub struct Labeler {
    /// Raw `struct selabel_handle *`s (0 until opened, the error if that failed);
    /// never changed once set.
    handles: Vec<std::sync::OnceLock<Result<usize, String>>>,
    /// Where the policy files are (libselinux reads them when a handle is opened).
    dir: PathBuf,
    /// The spec files (`file_contexts`, `.homedirs`, `.local`): each line with the
    /// literal prefix every path it can match starts with.
    specs: Vec<(&'static str, Vec<(String, String)>)>,
    /// The sources of the policy's path substitutions (`.subs`, `.subs_dist`).
    subs: Vec<String>,
    /// Handles over the specs that can match below one directory, by (directory, slot).
    groups: std::sync::Mutex<HashMap<(String, usize), Result<usize, String>>>,
    pub digest: String,
    pub policy: String,
}

/// The spec files of a policy, in the order libselinux reads them.
const SPEC_FILES: &[&str] = &[
    "file_contexts",
    "file_contexts.homedirs",
    "file_contexts.local",
];
/// Paths are grouped by their first directories, this many deep at most.
const GROUP_DEPTH: usize = 3;

/// The literal text every string an anchored file_contexts regex matches starts with
/// (libselinux compiles `^REGEX$`): up to the first metacharacter, escaped punctuation
/// taken literally, a character made optional by the quantifier after it left out.
/// Empty when a top-level alternation could defeat the anchor.
fn literal_prefix(regex: &str) -> String {
    let mut depth = 0i32;
    let mut escaped = false;
    for c in regex.chars() {
        if escaped {
            escaped = false;
            continue;
        }
        match c {
            '\\' => escaped = true,
            '(' => depth += 1,
            ')' => depth -= 1,
            '|' if depth <= 0 => return String::new(),
            _ => {}
        }
    }
    let mut out = String::new();
    let mut chars = regex.chars().peekable();
    while let Some(c) = chars.next() {
        let lit = match c {
            '\\' => match chars.peek() {
                Some(&n) if !n.is_ascii_alphanumeric() => {
                    chars.next();
                    n
                }
                _ => break,
            },
            '.' | '[' | ']' | '(' | ')' | '*' | '+' | '?' | '{' | '}' | '|' | '^' | '$' => break,
            c => c,
        };
        if matches!(chars.peek(), Some('*' | '?' | '{')) {
            break;
        }
        out.push(lit);
    }
    out
}

/// `file_contexts` lines with their literal prefixes (comments and blank lines dropped).
fn parse_specs(data: &[u8]) -> Vec<(String, String)> {
    String::from_utf8_lossy(data)
        .lines()
        .filter_map(|l| {
            let t = l.trim();
            if t.is_empty() || t.starts_with('#') {
                return None;
            }
            let regex = t.split_whitespace().next()?;
            Some((l.to_string(), literal_prefix(regex)))
        })
        .collect()
}

/// The directory (with a trailing `/`) whose specs label `path`: its parent, at most
/// [`GROUP_DEPTH`] deep; `None` for a path right under `/`.
fn group_of(path: &str) -> Option<&str> {
    let parent = &path[..path.rfind('/')?];
    let mut end = 0;
    for (n, (i, _)) in parent
        .match_indices('/')
        .chain([(parent.len(), "")])
        .enumerate()
    {
        if n > GROUP_DEPTH {
            break;
        }
        end = i;
    }
    (end > 0).then(|| &path[..=end])
}

/// Handles a labeler opens at most (each holds the policy's compiled regexes).
pub const MAX_HANDLES: usize = 8;

/// Open `file_contexts` under `dir`; `validate` compiles every entry now (a broken
/// regex is an error here, not a file silently left unlabeled later).
fn open_handle(dir: &Path, validate: bool) -> Result<usize, String> {
    let path = dir.join("file_contexts");
    let c_path = CString::new(path.to_string_lossy().into_owned())
        .map_err(|_| format!("{}: NUL in path", path.display()))?;
    static VALIDATOR: std::sync::Once = std::sync::Once::new();
    VALIDATOR.call_once(|| {
        // SAFETY: installs a plain function pointer as libselinux's (process-wide)
        // context validator; no lookup is running (the Once runs before any
        // handle of this module exists).
        unsafe {
            selinux_set_callback(
                SELINUX_CB_VALIDATE,
                SelinuxCallback {
                    func_validate: accept_context,
                },
            )
        }
    });
    let opts = [
        SelinuxOpt {
            kind: SELABEL_OPT_PATH,
            value: c_path.as_ptr(),
        },
        // Non-NULL: validate.
        SelinuxOpt {
            kind: SELABEL_OPT_VALIDATE,
            value: c_path.as_ptr(),
        },
    ];
    let n = if validate { 2 } else { 1 };
    // SAFETY: `opts` points at valid `selinux_opt`s whose string outlives the call;
    // libselinux copies what it keeps.
    let handle = unsafe { selabel_open(SELABEL_CTX_FILE, opts.as_ptr(), n) };
    if handle.is_null() {
        return Err(std::io::Error::last_os_error().to_string());
    }
    Ok(handle as usize)
}

impl Labeler {
    /// Write `policy`'s files into `dir` (which must not exist; the labeler removes it
    /// when dropped) and open them.
    pub fn open(policy: &Policy, dir: &Path) -> Result<Labeler, LabelError> {
        let io = |p: &Path, e: std::io::Error| LabelError::Io {
            path: p.to_path_buf(),
            why: e.to_string(),
        };
        std::fs::create_dir_all(dir).map_err(|e| io(dir, e))?;
        let specs = SPEC_FILES
            .iter()
            .filter_map(|f| policy.files.get(*f).map(|d| (*f, parse_specs(d))))
            .collect();
        let subs = ["file_contexts.subs", "file_contexts.subs_dist"]
            .iter()
            .filter_map(|f| policy.files.get(*f))
            .flat_map(|d| {
                String::from_utf8_lossy(d)
                    .lines()
                    .filter_map(|l| {
                        let t = l.trim();
                        (!t.is_empty() && !t.starts_with('#'))
                            .then(|| t.split_whitespace().next().map(str::to_string))
                            .flatten()
                    })
                    .collect::<Vec<_>>()
            })
            .collect();
        let l = Labeler {
            handles: (0..MAX_HANDLES.min(rayon::current_num_threads()) + 1)
                .map(|_| std::sync::OnceLock::new())
                .collect(),
            dir: dir.to_path_buf(),
            specs,
            subs,
            groups: std::sync::Mutex::new(HashMap::new()),
            digest: policy.digest(),
            policy: policy.name.clone(),
        };
        for (f, data) in &policy.files {
            let p = dir.join(f);
            std::fs::write(&p, data).map_err(|e| io(&p, e))?;
        }
        let first = open_handle(dir, true).map_err(|why| LabelError::Load {
            name: policy.name.clone(),
            why,
        })?;
        let _ = l.handles[0].set(Ok(first));
        Ok(l)
    }

    /// This thread's handle slot.
    fn slot(&self) -> usize {
        rayon::current_thread_index()
            .map(|i| 1 + i % (self.handles.len() - 1))
            .unwrap_or(0)
    }

    /// This thread's handle over the whole policy.
    fn handle(&self) -> Result<*mut c_void, LabelError> {
        match self.handles[self.slot()].get_or_init(|| open_handle(&self.dir, false)) {
            Ok(h) => Ok(*h as *mut c_void),
            Err(why) => Err(self.load_error(why.clone())),
        }
    }

    fn load_error(&self, why: String) -> LabelError {
        LabelError::Load {
            name: self.policy.clone(),
            why,
        }
    }

    /// The handle to look `path` up with. libselinux tries a path against every spec
    /// of its first component, last to first, until one matches (2,700 regexes for a
    /// `/usr` path with Debian's policy, the bulk of a labeled compose's cost). A spec
    /// whose literal prefix neither starts nor is started by the path's group (its
    /// first directories) cannot match any path in the group, so a handle over the
    /// group's specs alone — the same lines, in the same order and files — gives every
    /// path in it the label the whole policy gives (tests compare them, and the
    /// integration test compares every path with `setfiles`). Paths a substitution
    /// could rewrite are looked up in the whole policy.
    fn handle_for(&self, path: &str) -> Result<*mut c_void, LabelError> {
        let substituted = self.subs.iter().any(|s| {
            path.strip_prefix(s.as_str())
                .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
        });
        let Some(group) = group_of(path).filter(|_| !substituted) else {
            return self.handle();
        };
        let key = (group.to_string(), self.slot());
        let mut groups = self.groups.lock().unwrap_or_else(|p| p.into_inner());
        let n = groups.len();
        let h = groups
            .entry(key)
            .or_insert_with(|| self.open_group(group, n));
        match h {
            Ok(h) => Ok(*h as *mut c_void),
            Err(why) => Err(self.load_error(why.clone())),
        }
    }

    /// Open a handle over the specs that can match below `group`, written to a
    /// directory of its own (`g-N`).
    fn open_group(&self, group: &str, n: usize) -> Result<usize, String> {
        let dir = self.dir.join(format!("g-{n}"));
        std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let mut any = false;
        for (name, specs) in &self.specs {
            let mut text = String::new();
            for (line, prefix) in specs {
                if prefix.starts_with(group) || group.starts_with(prefix.as_str()) {
                    text.push_str(line);
                    text.push('\n');
                    any = true;
                }
            }
            let p = dir.join(name);
            std::fs::write(&p, text).map_err(|e| format!("{}: {e}", p.display()))?;
        }
        // No spec can match in the group: no label (the null handle), as the whole
        // policy would say, without asking libselinux to open an empty file.
        if !any {
            return Ok(0);
        }
        open_handle(&dir, false)
    }

    /// The context for `path` (absolute, as on a booted system) of file type `mode`
    /// (`S_IFREG`, `S_IFDIR`, `S_IFLNK`, … with or without permission bits); `None`
    /// when the policy gives none (`<<none>>`).
    /// A lookup that fails otherwise than by finding nothing (a regex of the policy
    /// that does not compile, say) is an error.
    pub fn lookup(&self, path: &str, mode: u32) -> Result<Option<String>, LabelError> {
        self.lookup_in(self.handle_for(path)?, path, mode)
    }

    fn lookup_in(
        &self,
        handle: *mut c_void,
        path: &str,
        mode: u32,
    ) -> Result<Option<String>, LabelError> {
        let Ok(key) = CString::new(path) else {
            return Ok(None);
        };
        if handle.is_null() {
            return Ok(None);
        }
        let mut con: *mut c_char = std::ptr::null_mut();
        // SAFETY: the handle is open (closed only in Drop), `key` is a valid C string,
        // `con` receives a string libselinux allocated, freed below with freecon.
        let rc = unsafe {
            selabel_lookup_raw(handle, &mut con, key.as_ptr(), (mode & 0o170000) as c_int)
        };
        if rc != 0 || con.is_null() {
            let e = std::io::Error::last_os_error();
            return match e.raw_os_error() {
                // No entry (or `<<none>>`): no label.
                Some(libc::ENOENT) => Ok(None),
                _ => Err(LabelError::Lookup {
                    name: self.policy.clone(),
                    path: path.to_string(),
                    why: e.to_string(),
                }),
            };
        }
        // SAFETY: `con` is a NUL-terminated string from libselinux.
        let out = unsafe { CStr::from_ptr(con) }
            .to_string_lossy()
            .into_owned();
        // SAFETY: allocated by selabel_lookup_raw, freed once.
        unsafe { freecon(con) };
        Ok(Some(out))
    }

    /// The `security.selinux` value for a tree path (`usr/etc/x` is `/etc/x`).
    pub fn label_for(&self, tree_path: &str, mode: u32) -> Result<Option<Vec<u8>>, LabelError> {
        let booted = booted_path(tree_path);
        Ok(self.lookup(&booted, mode)?.map(|c| {
            let mut v = c.into_bytes();
            v.push(0);
            v
        }))
    }
}

impl Drop for Labeler {
    fn drop(&mut self) {
        let groups = std::mem::take(self.groups.get_mut().unwrap_or_else(|p| p.into_inner()));
        let grouped = groups.into_values().filter_map(Result::ok);
        let whole = self.handles.iter_mut().filter_map(|h| h.take()?.ok());
        for h in whole.chain(grouped).filter(|&h| h != 0) {
            {
                // SAFETY: the handle came from selabel_open and is closed once, when no
                // lookup can run any more (`&mut self`).
                unsafe { selabel_close(h as *mut c_void) };
            }
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

// SAFETY: the handle is only read after `open`; libselinux's file backend supports
// concurrent lookups on one handle (see the type's documentation).
unsafe impl Send for Labeler {}
unsafe impl Sync for Labeler {}

/// `xattrs` with its `security.selinux` replaced by `label` (or removed when `None`).
pub fn with_label(xattrs: &Xattrs, label: Option<Vec<u8>>) -> Xattrs {
    let mut all: Vec<(Vec<u8>, Vec<u8>)> = xattrs
        .entries()
        .iter()
        .filter(|(n, _)| n.as_slice() != XATTR)
        .cloned()
        .collect();
    if let Some(l) = label {
        all.push((XATTR.to_vec(), l));
    }
    Xattrs::new(all)
}

/// The label an object carries, if any.
pub fn label_of(xattrs: &Xattrs) -> Option<&[u8]> {
    xattrs
        .entries()
        .iter()
        .find(|(n, _)| n.as_slice() == XATTR)
        .map(|(_, v)| v.as_slice())
}

/// The path a tree path has on a booted system: `/usr/etc/x` is `/etc/x`.
pub fn booted_path(tree_path: &str) -> String {
    let p = tree_path.trim_start_matches('/');
    match p.strip_prefix("usr/etc") {
        Some("") => "/etc".into(),
        Some(rest) if rest.starts_with('/') => format!("/etc{rest}"),
        _ => format!("/{p}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_group_no_spec_can_match_has_no_label() {
        let tmp = tempfile::tempdir().unwrap();
        let mut files = BTreeMap::new();
        files.insert(
            "file_contexts".to_string(),
            b"/etc(/.*)?\tsystem_u:object_r:etc_t:s0\n".to_vec(),
        );
        let policy = Policy {
            name: "t".into(),
            files,
        };
        let l = Labeler::open(&policy, &tmp.path().join("p")).unwrap();
        let whole = l.handle().unwrap();
        for path in ["/var/lib/x/y", "/etc/ssl/certs/a.pem", "/usr/bin/ls"] {
            assert_eq!(
                l.lookup(path, 0o100644).unwrap(),
                l.lookup_in(whole, path, 0o100644).unwrap(),
                "{path}"
            );
        }
        assert_eq!(l.lookup("/var/lib/x/y", 0o100644).unwrap(), None);
        assert_eq!(
            l.lookup("/etc/ssl/certs/a.pem", 0o100644)
                .unwrap()
                .as_deref(),
            Some("system_u:object_r:etc_t:s0")
        );
    }

    #[test]
    fn literal_prefixes_and_groups() {
        for (regex, prefix) in [
            ("/usr/lib/modules(/.*)?", "/usr/lib/modules"),
            ("/usr/lib(64)?/ld\\.so", "/usr/lib"),
            ("/usr/sbin/ldconfig\\.real", "/usr/sbin/ldconfig.real"),
            ("/usrx?/bin", "/usr"),
            ("/etc/a{2}", "/etc/"),
            ("/usr/bin/python[0-9]", "/usr/bin/python"),
            ("/a\\d", "/a"),
            ("/usr/x|/opt/y", ""),
            ("/usr/(x|y)/z", "/usr/"),
            (".*", ""),
        ] {
            assert_eq!(literal_prefix(regex), prefix, "{regex}");
        }
        assert_eq!(
            group_of("/usr/lib/modules/6.1/x.ko"),
            Some("/usr/lib/modules/")
        );
        assert_eq!(group_of("/usr/bin/bash"), Some("/usr/bin/"));
        assert_eq!(group_of("/usr/lib"), Some("/usr/"));
        assert_eq!(group_of("/usr"), None);
    }

    /// Every path of the host's /usr, /etc and /var (up to a bound) gets the same label
    /// from the grouped handles as from the whole policy, with Debian's real policy
    /// (installed by ci/install-deps.sh) and with alternations, optional characters
    /// and substitutions added.
    #[test]
    fn grouped_lookups_equal_the_whole_policy() {
        let base = Path::new("/etc/selinux/default/contexts/files");
        let mut files = BTreeMap::new();
        for f in CONTEXT_FILES {
            if let Ok(d) = std::fs::read(base.join(f)) {
                files.insert(f.to_string(), d);
            }
        }
        let main = files
            .get_mut("file_contexts")
            .expect("selinux-policy-default installed (ci/install-deps.sh)");
        main.extend_from_slice(
            b"/usr/share/zon|/usr/lib/x86_64-linux-gnu/libz.*\tsystem_u:object_r:alt_t:s0\n\
              /usr/libx?/os-release\tsystem_u:object_r:opt_t:s0\n\
              /etc/ssl/certs/[^/]*\\.pem\t--\tsystem_u:object_r:pem_t:s0\n",
        );
        files.insert(
            "file_contexts.subs".to_string(),
            b"/usr/local/lib /usr/lib\n/opt/sub /usr/share\n".to_vec(),
        );
        let policy = Policy {
            name: "default".into(),
            files,
        };
        let tmp = tempfile::tempdir().unwrap();
        let l = Labeler::open(&policy, &tmp.path().join("p")).unwrap();
        let whole = l.handle().unwrap();
        let mut n = 0;
        let mut synthetic = 0;
        for root in [
            "/usr/lib/x86_64-linux-gnu",
            "/usr/share/zoneinfo",
            "/etc/ssl/certs",
            "/usr/lib",
            "/usr/share",
            "/usr/bin",
            "/etc",
            "/var",
        ] {
            let mut stack = vec![PathBuf::from(root)];
            let mut in_root = 0;
            while let Some(d) = stack.pop() {
                let Ok(rd) = std::fs::read_dir(&d) else {
                    continue;
                };
                for e in rd.flatten() {
                    let p = e.path();
                    let Ok(m) = std::fs::symlink_metadata(&p) else {
                        continue;
                    };
                    use std::os::unix::fs::MetadataExt;
                    let path = p.to_string_lossy().into_owned();
                    for path in [path.clone(), path.replacen("/usr/share", "/opt/sub", 1)] {
                        let want = l.lookup_in(whole, &path, m.mode()).unwrap();
                        assert_eq!(l.lookup(&path, m.mode()).unwrap(), want, "{path}");
                        if want.is_some_and(|c| {
                            ["alt_t", "opt_t", "pem_t"].iter().any(|t| c.contains(t))
                        }) {
                            synthetic += 1;
                        }
                    }
                    n += 1;
                    in_root += 1;
                    if m.is_dir() && in_root < 6_000 {
                        stack.push(p);
                    }
                }
            }
        }
        assert!(n > 5000, "only {n} paths compared");
        assert!(
            synthetic > 10,
            "the added specs labeled only {synthetic} paths"
        );
        let groups = l.groups.lock().unwrap().len();
        assert!(groups > 20, "{groups} groups");
    }

    #[test]
    fn labels_from_a_file_contexts() {
        let tmp = tempfile::tempdir().unwrap();
        let mut files = BTreeMap::new();
        files.insert(
            "file_contexts".to_string(),
            b"/.*\tsystem_u:object_r:default_t:s0\n\
              /etc(/.*)?\tsystem_u:object_r:etc_t:s0\n\
              /etc/shadow\t--\tsystem_u:object_r:shadow_t:s0\n\
              /usr/bin(/.*)?\tsystem_u:object_r:bin_t:s0\n\
              /usr/lib/modules\t-d\tsystem_u:object_r:modules_object_t:s0\n\
              /proc\t<<none>>\n"
                .to_vec(),
        );
        files.insert(
            "file_contexts.subs_dist".to_string(),
            b"/usr/lib64 /usr/lib\n".to_vec(),
        );
        let policy = Policy {
            name: "t".into(),
            files,
        };
        let l = Labeler::open(&policy, &tmp.path().join("p")).unwrap();
        assert_eq!(
            l.label_for("usr/etc/shadow", 0o100644).unwrap().unwrap(),
            b"system_u:object_r:shadow_t:s0\0"
        );
        assert_eq!(
            l.lookup("/etc/shadow", 0o040755).unwrap().as_deref(),
            Some("system_u:object_r:etc_t:s0")
        );
        assert_eq!(
            l.lookup("/usr/bin/ls", 0o100755).unwrap().as_deref(),
            Some("system_u:object_r:bin_t:s0")
        );
        assert_eq!(
            l.lookup("/usr/lib64/modules", 0o040755).unwrap().as_deref(),
            Some("system_u:object_r:modules_object_t:s0")
        );
        assert_eq!(l.lookup("/proc", 0o040755).unwrap(), None);
        assert_eq!(booted_path("usr/etc"), "/etc");
        assert_eq!(booted_path("usr/etcetera"), "/usr/etcetera");
        let read = |p: &str| match p {
            "etc/selinux/config" => Some(b"SELINUX=enforcing\nSELINUXTYPE=t\n".to_vec()),
            _ => None,
        };
        assert!(matches!(
            Policy::find(&read),
            Err(LabelError::NoPolicy { name }) if name == "t"
        ));
        assert!(matches!(Policy::find(&|_| None), Err(LabelError::NoConfig)));
    }
}
