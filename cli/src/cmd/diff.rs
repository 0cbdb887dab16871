//! `arbor diff`: the paths added, removed and modified between two commits, as `ostree
//! diff` lists them, with what changed in each (content, type, target, mode, owner,
//! xattrs) and in the commit objects themselves — the view that explains why two
//! composes that should be identical are not. `arbor db diff` is the package view.

use std::io::{self, BufWriter, Write};
use std::process::ExitCode;

use anyhow::{Context, Result};
use arbor_repo::store::{ChangeKind, DumpEntry, EntryKind, PathChange};
use clap::Args;
use serde::Serialize;

use super::ls::kind_name;
use super::RepoArg;

#[derive(Args)]
pub struct DiffOpts {
    #[command(flatten)]
    repo: RepoArg,
    /// Print one JSON object: {from, to, commit: [{field, from, to}], modified, removed,
    /// added}, each path with its entries on both sides and, when modified, what changed.
    #[arg(long)]
    json: bool,
    /// After each modified path, what changed (`content`, `mode 644 -> 755`, …); first,
    /// the commit fields that differ (timestamp, metadata keys, root directory).
    #[arg(long, conflicts_with = "json")]
    details: bool,
    /// The older revision (branch, checksum, REV^), or the newer one when it is the only
    /// argument (then it is compared with its parent).
    from: String,
    /// The newer revision.
    to: Option<String>,
}

/// `arbor diff --json`: what differs between two commits.
#[derive(Serialize)]
struct DiffJson<'a> {
    /// The older commit (hex).
    from: String,
    /// The newer commit (hex).
    to: String,
    /// The commit fields that differ.
    commit: Vec<CommitFieldJson<'a>>,
    modified: Vec<ChangeJson<'a>>,
    removed: Vec<ChangeJson<'a>>,
    added: Vec<ChangeJson<'a>>,
}

/// A commit field that differs: `timestamp`, `subject`, `metadata:KEY`, …; each side's
/// value as text, null where absent.
#[derive(Serialize)]
struct CommitFieldJson<'a> {
    field: &'a str,
    from: Option<&'a str>,
    to: Option<&'a str>,
}

/// A path added, removed or modified, with its entry on each side (null where absent).
#[derive(Serialize)]
struct ChangeJson<'a> {
    path: &'a str,
    from: Option<DiffEntryJson<'a>>,
    to: Option<DiffEntryJson<'a>>,
    /// For a modified path, what changed: `type`, `content`, `target`, `mode`, `uid`,
    /// `gid`, `xattrs`.
    changed: Vec<&'static str>,
}

impl<'a> ChangeJson<'a> {
    fn new(c: &'a PathChange) -> Self {
        ChangeJson {
            path: &c.path,
            from: c.from.as_ref().map(DiffEntryJson::new),
            to: c.to.as_ref().map(DiffEntryJson::new),
            changed: c.aspects.iter().map(|a| a.name()).collect(),
        }
    }
}

/// One side of a changed path.
#[derive(Serialize)]
struct DiffEntryJson<'a> {
    /// `dir`, `file` or `symlink`.
    #[serde(rename = "type")]
    kind: &'static str,
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
    /// Mode (octal), uid, gid and xattrs as the text dump writes them.
    attrs: String,
}

impl<'a> DiffEntryJson<'a> {
    fn new(e: &'a DumpEntry) -> Self {
        DiffEntryJson {
            kind: kind_name(e.kind),
            mode: e.mode,
            uid: e.uid,
            gid: e.gid,
            size: e.size,
            checksum: e.checksum.to_hex(),
            dirmeta: e.meta_checksum.map(|c| c.to_hex()),
            target: (e.kind == EntryKind::Symlink).then_some(e.symlink_target.as_str()),
            attrs: e.attrs_text(),
        }
    }
}

/// `content`, `mode 644 -> 755`, `uid 0 -> 998`, … for one modified path.
fn details(c: &PathChange) -> String {
    let (Some(a), Some(b)) = (&c.from, &c.to) else {
        return String::new();
    };
    let parts: Vec<String> = c
        .aspects
        .iter()
        .map(|x| {
            use arbor_repo::store::Aspect::*;
            match x {
                Type => format!("type {:?} -> {:?}", a.kind, b.kind).to_lowercase(),
                Content => format!("content ({} -> {} bytes)", a.size, b.size),
                Target => format!("target {} -> {}", a.symlink_target, b.symlink_target),
                Mode => format!("mode {:o} -> {:o}", a.mode & 0o7777, b.mode & 0o7777),
                Uid => format!("uid {} -> {}", a.uid, b.uid),
                Gid => format!("gid {} -> {}", a.gid, b.gid),
                Xattrs => "xattrs".to_string(),
            }
        })
        .collect();
    parts.join(", ")
}

impl DiffOpts {
    pub fn run(self) -> Result<ExitCode> {
        let repo = self.repo.open()?;
        let (from, to) = match &self.to {
            Some(to) => (self.from.clone(), to.clone()),
            None => (format!("{}^", self.from), self.from.clone()),
        };
        let fc = repo
            .resolve_rev(&from)
            .with_context(|| format!("resolving {from}"))?;
        let tc = repo
            .resolve_rev(&to)
            .with_context(|| format!("resolving {to}"))?;
        let d = repo
            .diff_commits(&fc, &tc)
            .with_context(|| format!("comparing {fc} with {tc}"))?;
        let mut out = BufWriter::new(io::stdout().lock());
        if self.json {
            let of = |k: ChangeKind| {
                d.changes
                    .iter()
                    .filter(|c| c.kind == k)
                    .map(ChangeJson::new)
                    .collect::<Vec<_>>()
            };
            let json = DiffJson {
                from: fc.to_hex(),
                to: tc.to_hex(),
                commit: d
                    .commit
                    .iter()
                    .map(|c| CommitFieldJson {
                        field: &c.field,
                        from: c.from.as_deref(),
                        to: c.to.as_deref(),
                    })
                    .collect(),
                modified: of(ChangeKind::Modified),
                removed: of(ChangeKind::Removed),
                added: of(ChangeKind::Added),
            };
            serde_json::to_writer(&mut out, &json)?;
            writeln!(out)?;
        } else {
            if self.details {
                for c in &d.commit {
                    let show = |v: &Option<String>| v.clone().unwrap_or_else(|| "(none)".into());
                    writeln!(
                        out,
                        "commit {}: {} -> {}",
                        c.field,
                        show(&c.from),
                        show(&c.to)
                    )?;
                }
            }
            // ostree diff's format, byte for byte: the letter, four spaces, the path.
            for c in &d.changes {
                write!(out, "{}    {}", c.kind.letter(), c.path)?;
                if self.details && c.kind == ChangeKind::Modified {
                    write!(out, "    [{}]", details(c))?;
                }
                writeln!(out)?;
            }
        }
        out.flush()?;
        Ok(ExitCode::SUCCESS)
    }
}
