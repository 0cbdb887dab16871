//! `arbor ls`: the canonical dump of a commit's tree.

use std::io::{self, BufWriter, Write};
use std::process::ExitCode;

use anyhow::Result;
use arbor_repo::store::EntryKind;
use clap::Args;
use serde_json::json;

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

impl LsOpts {
    pub fn run(self) -> Result<ExitCode> {
        let repo = self.repo.open()?;
        let commit = repo.resolve_rev(&self.rev)?;
        let entries = repo.dump(&commit, &self.path, self.recursive)?;
        let mut out = BufWriter::new(io::stdout().lock());
        for e in entries {
            if self.json {
                let xattrs: serde_json::Map<String, serde_json::Value> = e
                    .xattrs
                    .entries()
                    .iter()
                    .map(|(n, v)| {
                        (
                            String::from_utf8_lossy(n).into_owned(),
                            v.iter()
                                .map(|b| format!("{b:02x}"))
                                .collect::<String>()
                                .into(),
                        )
                    })
                    .collect();
                let kind = match e.kind {
                    EntryKind::Dir => "dir",
                    EntryKind::File => "file",
                    EntryKind::Symlink => "symlink",
                };
                let selinux = e
                    .xattrs
                    .entries()
                    .iter()
                    .find(|(n, _)| n.as_slice() == b"security.selinux")
                    .map(|(_, v)| {
                        String::from_utf8_lossy(v.strip_suffix(b"\0").unwrap_or(v)).into_owned()
                    });
                let v = json!({
                    "type": kind, "path": e.path, "mode": e.mode, "uid": e.uid, "gid": e.gid,
                    "size": e.size, "checksum": e.checksum.to_hex(),
                    "dirmeta": e.meta_checksum.map(|c| c.to_hex()),
                    "target": (e.kind == EntryKind::Symlink).then_some(&e.symlink_target),
                    "xattrs": xattrs,
                    "selinux": selinux,
                });
                writeln!(out, "{v}")?;
            } else {
                writeln!(out, "{}", e.to_line())?;
            }
        }
        out.flush()?;
        Ok(ExitCode::SUCCESS)
    }
}
