//! `arbor ls`: the canonical dump of a commit's tree.

use std::collections::BTreeMap;
use std::io::{self, BufWriter, Write};
use std::process::ExitCode;

use anyhow::Result;
use arbor_repo::store::{DumpEntry, EntryKind};
use clap::Args;
use serde::Serialize;

use super::RepoArg;

#[derive(Args)]
pub struct LsOpts {
    #[command(flatten)]
    repo: RepoArg,
    /// List subdirectories recursively.
    #[arg(short = 'R', long)]
    recursive: bool,
    /// One JSON object per entry instead of the text dump.
    #[arg(long)]
    json: bool,
    /// Branch name or commit checksum.
    rev: String,
    /// Path inside the commit (default: the root).
    #[arg(default_value = "/")]
    path: String,
}

/// One line of `arbor ls --json`: one entry of the tree.
#[derive(Serialize)]
struct EntryJson<'a> {
    /// `dir`, `file` or `symlink`.
    #[serde(rename = "type")]
    kind: &'static str,
    /// Absolute path inside the commit.
    path: &'a str,
    /// The full mode, file type bits included.
    mode: u32,
    uid: u32,
    gid: u32,
    size: u64,
    /// Content checksum (files, symlinks) or dirtree checksum (directories).
    checksum: String,
    /// Dirmeta checksum (directories; null otherwise).
    dirmeta: Option<String>,
    /// Symlink target (symlinks; null otherwise).
    target: Option<&'a str>,
    /// Extended attributes: name → value as hex.
    xattrs: BTreeMap<String, String>,
    /// The `security.selinux` label without its trailing NUL, if any.
    selinux: Option<String>,
}

impl<'a> EntryJson<'a> {
    fn new(e: &'a DumpEntry) -> Self {
        let xattrs = e
            .xattrs
            .entries()
            .iter()
            .map(|(n, v)| {
                let hex = v.iter().map(|b| format!("{b:02x}")).collect::<String>();
                (String::from_utf8_lossy(n).into_owned(), hex)
            })
            .collect();
        let selinux = e
            .xattrs
            .entries()
            .iter()
            .find(|(n, _)| n.as_slice() == b"security.selinux")
            .map(|(_, v)| String::from_utf8_lossy(v.strip_suffix(b"\0").unwrap_or(v)).into_owned());
        EntryJson {
            kind: kind_name(e.kind),
            path: &e.path,
            mode: e.mode,
            uid: e.uid,
            gid: e.gid,
            size: e.size,
            checksum: e.checksum.to_hex(),
            dirmeta: e.meta_checksum.map(|c| c.to_hex()),
            target: (e.kind == EntryKind::Symlink).then_some(e.symlink_target.as_str()),
            xattrs,
            selinux,
        }
    }
}

/// An entry's type as the JSON outputs name it.
pub fn kind_name(kind: EntryKind) -> &'static str {
    match kind {
        EntryKind::Dir => "dir",
        EntryKind::File => "file",
        EntryKind::Symlink => "symlink",
    }
}

impl LsOpts {
    pub fn run(self) -> Result<ExitCode> {
        let repo = self.repo.open()?;
        let commit = repo.resolve_rev(&self.rev)?;
        let entries = repo.dump(&commit, &self.path, self.recursive)?;
        let mut out = BufWriter::new(io::stdout().lock());
        for e in entries {
            if self.json {
                serde_json::to_writer(&mut out, &EntryJson::new(&e))?;
                writeln!(out)?;
            } else {
                writeln!(out, "{}", e.to_line())?;
            }
        }
        out.flush()?;
        Ok(ExitCode::SUCCESS)
    }
}
