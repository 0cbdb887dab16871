//! `arbor show`, and the commit rendering `arbor log` shares.

use std::process::ExitCode;

use anyhow::{Context, Result};
use arbor_repo::gvariant::Value;
use arbor_repo::objects::Commit;
use arbor_repo::Checksum;
use clap::Args;
use serde_json::json;

use super::RepoArg;
use arbor_compose::time;

#[derive(Args)]
pub struct ShowOpts {
    #[command(flatten)]
    repo: RepoArg,
    /// Print one metadata key's value only.
    #[arg(long, value_name = "KEY")]
    print_metadata_key: Option<String>,
    /// Print the commit as a JSON object.
    #[arg(long)]
    json: bool,
    /// Branch name or commit checksum (append `^` for the parent).
    rev: String,
}

impl ShowOpts {
    pub fn run(self) -> Result<ExitCode> {
        let repo = self.repo.open()?;
        let checksum = repo.resolve_rev(&self.rev)?;
        let commit = repo.read_commit(&checksum)?;
        if let Some(key) = &self.print_metadata_key {
            let v = commit
                .metadata
                .get(key)
                .with_context(|| format!("commit {checksum} has no metadata key {key:?}"))?;
            if self.json {
                super::print_json(&to_json(v))?;
            } else {
                println!("{}", v.to_text());
            }
        } else if self.json {
            super::print_json(&commit_json(&checksum, &commit))?;
        } else {
            print!("{}", render(&checksum, &commit, true));
        }
        Ok(ExitCode::SUCCESS)
    }
}

/// `ostree log`-style text; with `metadata`, every key follows.
pub fn render(checksum: &Checksum, c: &Commit, metadata: bool) -> String {
    let mut s = format!("commit {checksum}\n");
    if let Some(p) = c.parent {
        s.push_str(&format!("Parent:  {p}\n"));
    }
    s.push_str(&format!("Date:  {}\n", time::format_utc(c.timestamp)));
    if let Some(v) = c.version() {
        s.push_str(&format!("Version: {v}\n"));
    }
    s.push('\n');
    s.push_str(&format!("    {}\n", c.subject));
    if !c.body.is_empty() {
        s.push('\n');
        for line in c.body.lines() {
            s.push_str(&format!("    {line}\n"));
        }
    }
    s.push('\n');
    if metadata && !c.metadata.is_empty() {
        s.push_str("Metadata:\n");
        for (k, v) in &c.metadata.0 {
            s.push_str(&format!("  {k} = {}\n", v.to_text()));
        }
        s.push('\n');
    }
    s
}

pub fn commit_json(checksum: &Checksum, c: &Commit) -> serde_json::Value {
    let md: serde_json::Map<String, serde_json::Value> = c
        .metadata
        .0
        .iter()
        .map(|(k, v)| (k.clone(), to_json(v)))
        .collect();
    json!({
        "commit": checksum.to_hex(),
        "parent": c.parent.map(|p| p.to_hex()),
        "subject": c.subject,
        "body": c.body,
        "timestamp": c.timestamp,
        "date": time::rfc3339(c.timestamp),
        "root_dirtree": c.root_tree.to_hex(),
        "root_dirmeta": c.root_meta.to_hex(),
        "metadata": md,
    })
}

/// Metadata values as JSON: byte arrays become hex strings, dictionaries objects.
pub fn to_json(v: &Value) -> serde_json::Value {
    match v {
        Value::Bool(b) => json!(b),
        Value::Byte(x) => json!(x),
        Value::Int16(x) => json!(x),
        Value::Uint16(x) => json!(x),
        Value::Int32(x) | Value::Handle(x) => json!(x),
        Value::Uint32(x) => json!(x),
        Value::Int64(x) => json!(x),
        Value::Uint64(x) => json!(x),
        Value::Double(x) => json!(x),
        Value::String(s) | Value::ObjectPath(s) | Value::Signature(s) => json!(s),
        Value::Variant(v) => to_json(v),
        Value::Bytes(b) => json!(b.iter().map(|x| format!("{x:02x}")).collect::<String>()),
        Value::Array(_, items) => {
            if items
                .iter()
                .all(|i| matches!(i, Value::DictEntry(k, _) if k.as_str().is_some()))
                && !items.is_empty()
            {
                let m: serde_json::Map<String, serde_json::Value> = items
                    .iter()
                    .filter_map(|i| match i {
                        Value::DictEntry(k, v) => Some((k.as_str()?.to_string(), to_json(v))),
                        _ => None,
                    })
                    .collect();
                m.into()
            } else {
                items.iter().map(to_json).collect()
            }
        }
        Value::Maybe(_, v) => v.as_deref().map(to_json).unwrap_or(serde_json::Value::Null),
        Value::Tuple(ms) => ms.iter().map(to_json).collect(),
        Value::DictEntry(k, v) => json!([to_json(k), to_json(v)]),
    }
}
