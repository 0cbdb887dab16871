//! `arbor show`, and the commit rendering `arbor log` shares.

use std::collections::BTreeMap;
use std::process::ExitCode;

use anyhow::{Context, Result};
use arbor_repo::gvariant::Value;
use arbor_repo::objects::Commit;
use arbor_repo::Checksum;
use clap::Args;
use serde::{Serialize, Serializer};

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
                super::print_json(&MetadataJson(v))?;
            } else {
                println!("{}", v.to_text());
            }
        } else if self.json {
            super::print_json(&CommitJson::new(&checksum, &commit))?;
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

/// `arbor show --json`, and each line of `arbor log --json`: one commit.
#[derive(Serialize)]
pub struct CommitJson<'a> {
    /// The commit's checksum (hex).
    commit: String,
    /// The parent commit's checksum; null for a root commit.
    parent: Option<String>,
    subject: &'a str,
    body: &'a str,
    /// Seconds since the epoch.
    timestamp: u64,
    /// The timestamp in RFC 3339 (UTC).
    date: String,
    /// Checksum of the root directory's dirtree object.
    root_dirtree: String,
    /// Checksum of the root directory's dirmeta object.
    root_dirmeta: String,
    /// Every metadata key with its value (see [`MetadataJson`]).
    metadata: BTreeMap<&'a str, MetadataJson<'a>>,
}

impl<'a> CommitJson<'a> {
    pub fn new(checksum: &Checksum, c: &'a Commit) -> Self {
        CommitJson {
            commit: checksum.to_hex(),
            parent: c.parent.map(|p| p.to_hex()),
            subject: &c.subject,
            body: &c.body,
            timestamp: c.timestamp,
            date: time::rfc3339(c.timestamp),
            root_dirtree: c.root_tree.to_hex(),
            root_dirmeta: c.root_meta.to_hex(),
            metadata: c
                .metadata
                .0
                .iter()
                .map(|(k, v)| (k.as_str(), MetadataJson(v)))
                .collect(),
        }
    }
}

/// A GVariant metadata value as JSON: numbers, booleans and strings as themselves, byte
/// arrays as hex strings, non-empty dictionaries with string keys as objects (the last
/// value wins for a repeated key), other arrays and tuples as arrays, a dictionary entry
/// as `[key, value]`, a variant as its content, an empty maybe as null.
pub struct MetadataJson<'a>(pub &'a Value);

impl Serialize for MetadataJson<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        match self.0 {
            Value::Bool(b) => s.serialize_bool(*b),
            Value::Byte(x) => s.serialize_u8(*x),
            Value::Int16(x) => s.serialize_i16(*x),
            Value::Uint16(x) => s.serialize_u16(*x),
            Value::Int32(x) | Value::Handle(x) => s.serialize_i32(*x),
            Value::Uint32(x) => s.serialize_u32(*x),
            Value::Int64(x) => s.serialize_i64(*x),
            Value::Uint64(x) => s.serialize_u64(*x),
            Value::Double(x) => s.serialize_f64(*x),
            Value::String(v) | Value::ObjectPath(v) | Value::Signature(v) => s.serialize_str(v),
            Value::Variant(v) => MetadataJson(v).serialize(s),
            Value::Bytes(b) => {
                s.serialize_str(&b.iter().map(|x| format!("{x:02x}")).collect::<String>())
            }
            Value::Array(_, items) => {
                let dictionary = !items.is_empty()
                    && items
                        .iter()
                        .all(|i| matches!(i, Value::DictEntry(k, _) if k.as_str().is_some()));
                if dictionary {
                    let m: BTreeMap<&str, MetadataJson> = items
                        .iter()
                        .filter_map(|i| match i {
                            Value::DictEntry(k, v) => Some((k.as_str()?, MetadataJson(v))),
                            _ => None,
                        })
                        .collect();
                    m.serialize(s)
                } else {
                    s.collect_seq(items.iter().map(MetadataJson))
                }
            }
            Value::Maybe(_, v) => match v {
                Some(v) => MetadataJson(v).serialize(s),
                None => s.serialize_none(),
            },
            Value::Tuple(ms) => s.collect_seq(ms.iter().map(MetadataJson)),
            Value::DictEntry(k, v) => (MetadataJson(k), MetadataJson(v)).serialize(s),
        }
    }
}
