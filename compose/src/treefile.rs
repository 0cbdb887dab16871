//! rpm-ostree treefiles: parsing (YAML by extension, JSON otherwise), `include` /
//! `arch-include` / `conditional-include` with rpm-ostree's merge rules, variable
//! substitution, and validation into a [`ComposePlan`]. Later stages never see YAML.
//!
//! Merge rules (child = the including file, parent = the included one):
//! scalars: the child wins (first set wins); arrays: parent items first, then the
//! child's; maps: `dict.update` with the child winning; `packages`: union.

use std::collections::{BTreeMap, HashSet};
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::Value as Json;

/// rpm-ostree's include depth limit.
const MAX_INCLUDE_DEPTH: usize = 50;

#[derive(Debug, thiserror::Error)]
pub enum TreefileError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {why}")]
    Parse { path: PathBuf, why: String },
    #[error("{path}: unknown key {key:?}")]
    UnknownKey { path: PathBuf, key: String },
    #[error("{path}: key {key:?} is not implemented by arbor yet{hint}")]
    NotImplemented {
        path: PathBuf,
        key: String,
        hint: String,
    },
    #[error("{path}: include loop detected")]
    IncludeLoop { path: PathBuf },
    #[error("{path}: includes nested deeper than {MAX_INCLUDE_DEPTH}")]
    TooDeep { path: PathBuf },
    #[error("{path}: {why}")]
    Invalid { path: PathBuf, why: String },
}

type Result<T> = std::result::Result<T, TreefileError>;

/// Keys of rpm-ostree treefiles that arbor recognises but does not implement: naming
/// them is an error that says so, never silently ignored.
const NOT_IMPLEMENTED: &[&str] = &[
    "postprocess",
    "postprocess-script",
    "install-langs",
    "initramfs-args",
    "no-initramfs",
    "ostree-layers",
    "ostree-override-layers",
    "lockfile-repos",
    "repovars",
    "gpg-key",
    "gpg_key",
    "mutate-os-release",
    "preserve-passwd",
    "ignore-removed-users",
    "ignore-removed-groups",
    "sysusers",
    "selinux-label-version",
    "readonly-executables",
    "opt-usrlocal",
    "cliwrap",
    "cliwrap-binaries",
    "container-cmd",
    "repo-metadata",
    "advisories-metadata",
    "rpmdb-normalize",
    "ima",
    "ignore-devices",
    "modules",
    "platform-module",
    "bootstrap_packages",
    "automatic-version-suffix",
];

/// One file's keys, before merging. Unknown keys are rejected by [`parse_value`].
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Treefile {
    #[serde(rename = "ref", skip_serializing_if = "Option::is_none")]
    pub ref_: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub edition: Option<Json>,
    #[serde(skip_serializing)]
    pub include: Option<OneOrMany>,
    #[serde(skip_serializing)]
    pub arch_include: Option<BTreeMap<String, OneOrMany>>,
    #[serde(skip_serializing)]
    pub conditional_include: Option<Vec<ConditionalInclude>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub repos: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub releasever: Option<Json>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub variables: Option<BTreeMap<String, Json>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub packages: Option<Vec<String>>,
    /// `packages-$basearch`, collected before strict deserialisation.
    #[serde(skip)]
    pub arch_packages: BTreeMap<String, Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exclude_packages: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub repo_packages: Option<Vec<RepoPackages>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recommends: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub documentation: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub automatic_version_prefix: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub add_commit_metadata: Option<BTreeMap<String, Json>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub add_files: Option<Vec<(String, String)>>,
    /// `add-files` as (source path, destination), the source resolved against the
    /// directory of the file that lists it (as in rpm-ostree); merged like `add_files`.
    #[serde(skip)]
    pub add_files_resolved: Vec<(PathBuf, String)>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub remove_files: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub remove_from_packages: Option<Vec<Vec<String>>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub units: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub default_target: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub boot_location: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tmp_is_dir: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub machineid_compat: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub etc_group_members: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub check_passwd: Option<CheckSpec>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub check_groups: Option<CheckSpec>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub selinux: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rpmdb: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub container: Option<bool>,
    /// Carried for other tools (`--print-only`); not part of the input hash, as in
    /// rpm-ostree.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metadata: Option<BTreeMap<String, Json>>,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(untagged)]
pub enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

impl OneOrMany {
    fn items(&self) -> Vec<String> {
        match self {
            OneOrMany::One(s) => vec![s.clone()],
            OneOrMany::Many(v) => v.clone(),
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ConditionalInclude {
    #[serde(rename = "if")]
    pub condition: OneOrMany,
    pub include: Json,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RepoPackages {
    pub repo: String,
    pub packages: Vec<String>,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct CheckSpec {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub filename: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub entries: Option<Json>,
}

/// Read one file as JSON: YAML for `.yaml`/`.yml`, JSON otherwise (as rpm-ostree).
fn read_value(path: &Path) -> Result<Json> {
    let text = fs::read_to_string(path).map_err(|source| TreefileError::Io {
        path: path.into(),
        source,
    })?;
    parse_text(path, &text)
}

/// Parse treefile text; `path` decides the format and names errors.
pub fn parse_text(path: &Path, text: &str) -> Result<Json> {
    let yaml = matches!(
        path.extension().and_then(|e| e.to_str()),
        Some("yaml" | "yml")
    );
    let v: Json = if yaml {
        // The one place YAML is read; swap the crate here if serde_yaml must go.
        serde_yaml::from_str(text).map_err(|e| TreefileError::Parse {
            path: path.into(),
            why: e.to_string(),
        })?
    } else {
        serde_json::from_str(text).map_err(|e| TreefileError::Parse {
            path: path.into(),
            why: e.to_string(),
        })?
    };
    if v.is_null() {
        return Ok(Json::Object(Default::default()));
    }
    if !v.is_object() {
        return Err(TreefileError::Parse {
            path: path.into(),
            why: "the top level must be a mapping".into(),
        });
    }
    Ok(v)
}

/// Turn one file's JSON into a [`Treefile`], rejecting unknown and unimplemented keys.
pub fn parse_value(path: &Path, mut v: Json) -> Result<Treefile> {
    let obj = v.as_object_mut().expect("parse_text returns objects");
    let mut arch_packages = BTreeMap::new();
    let keys: Vec<String> = obj.keys().cloned().collect();
    for k in keys {
        if let Some(arch) = k.strip_prefix("packages-") {
            let list: Vec<String> = serde_json::from_value(obj.remove(&k).expect("key exists"))
                .map_err(|e| TreefileError::Parse {
                    path: path.into(),
                    why: format!("{k}: {e}"),
                })?;
            arch_packages.insert(arch.to_string(), list);
        } else if NOT_IMPLEMENTED.contains(&k.as_str()) {
            return Err(TreefileError::NotImplemented {
                path: path.into(),
                key: k,
                hint: String::new(),
            });
        }
    }
    let mut t: Treefile = serde_json::from_value(v).map_err(|e| {
        let msg = e.to_string();
        match msg
            .strip_prefix("unknown field `")
            .and_then(|m| m.split_once('`'))
        {
            Some((key, _)) => TreefileError::UnknownKey {
                path: path.into(),
                key: key.to_string(),
            },
            None => TreefileError::Parse {
                path: path.into(),
                why: msg,
            },
        }
    })?;
    t.arch_packages = arch_packages;
    edition_2024(path, &t)?;
    if let Some((k, _)) = t
        .variables
        .iter()
        .flatten()
        .find(|(_, v)| !matches!(v, Json::String(_) | Json::Number(_) | Json::Bool(_)))
    {
        return Err(TreefileError::Invalid {
            path: path.into(),
            why: format!("variables: {k:?} must be a string, a number or a boolean"),
        });
    }
    Ok(t)
}

fn merge_opt<T>(dest: &mut Option<T>, src: Option<T>) {
    if dest.is_none() {
        *dest = src;
    }
}

fn merge_vec<T>(dest: &mut Option<Vec<T>>, src: Option<Vec<T>>) {
    if let Some(mut parent) = src {
        if let Some(child) = dest.take() {
            parent.extend(child);
        }
        *dest = Some(parent);
    }
}

fn merge_map<V>(dest: &mut Option<BTreeMap<String, V>>, src: Option<BTreeMap<String, V>>) {
    if let Some(mut parent) = src {
        if let Some(child) = dest.take() {
            parent.extend(child);
        }
        *dest = Some(parent);
    }
}

impl Treefile {
    /// Merge the included `parent` into `self` (the including file) by rpm-ostree's rules.
    pub fn merge_parent(&mut self, parent: Treefile) {
        merge_opt(&mut self.ref_, parent.ref_);
        merge_opt(&mut self.edition, parent.edition);
        merge_vec(&mut self.repos, parent.repos);
        merge_opt(&mut self.releasever, parent.releasever);
        merge_map(&mut self.variables, parent.variables);
        // Set semantics: union, parent first.
        if let Some(pp) = parent.packages {
            let child = self.packages.take().unwrap_or_default();
            let mut all = pp;
            for p in child {
                if !all.contains(&p) {
                    all.push(p);
                }
            }
            self.packages = Some(all);
        }
        for (arch, pkgs) in parent.arch_packages {
            let e = self.arch_packages.entry(arch).or_default();
            let mut all = pkgs;
            all.extend(std::mem::take(e));
            *e = all;
        }
        merge_vec(&mut self.exclude_packages, parent.exclude_packages);
        merge_vec(&mut self.repo_packages, parent.repo_packages);
        merge_opt(&mut self.recommends, parent.recommends);
        merge_opt(&mut self.documentation, parent.documentation);
        merge_opt(
            &mut self.automatic_version_prefix,
            parent.automatic_version_prefix,
        );
        merge_map(&mut self.add_commit_metadata, parent.add_commit_metadata);
        let mut resolved = parent.add_files_resolved;
        resolved.append(&mut self.add_files_resolved);
        self.add_files_resolved = resolved;
        merge_vec(&mut self.add_files, parent.add_files);
        merge_vec(&mut self.remove_files, parent.remove_files);
        merge_vec(&mut self.remove_from_packages, parent.remove_from_packages);
        merge_vec(&mut self.units, parent.units);
        merge_opt(&mut self.default_target, parent.default_target);
        merge_opt(&mut self.boot_location, parent.boot_location);
        merge_opt(&mut self.tmp_is_dir, parent.tmp_is_dir);
        merge_opt(&mut self.machineid_compat, parent.machineid_compat);
        merge_vec(&mut self.etc_group_members, parent.etc_group_members);
        merge_opt(&mut self.check_passwd, parent.check_passwd);
        merge_opt(&mut self.check_groups, parent.check_groups);
        merge_opt(&mut self.selinux, parent.selinux);
        merge_opt(&mut self.rpmdb, parent.rpmdb);
        merge_opt(&mut self.container, parent.container);
        merge_map(&mut self.metadata, parent.metadata);
    }
}

/// Load `path` with all its includes resolved for `basearch`.
///
/// Variables work as in rpm-ostree: one map for the whole include graph, filled in the
/// order files are read (the including file before its includes, siblings in order),
/// where a variable already seen wins over a later file's. `basearch`, and `releasever`
/// where a file sets it, are added to each file's variables; defining them is an error.
/// A file's `conditional-include`s are evaluated against the map as it stands when the
/// file is read; inline ones are merged before any included file.
pub fn load(path: &Path, basearch: &str) -> Result<Treefile> {
    let mut seen = HashSet::new();
    let mut vars = BTreeMap::new();
    let mut tf = load_rec(path, basearch, 0, &mut seen, &mut vars)?;
    tf.variables = Some(vars);
    Ok(tf)
}

/// The directory a path is relative to: its parent, or `.` for a bare file name.
pub fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    }
}

/// Keys an inline `conditional-include` may not use: they name files or variables,
/// which only a file can bring (rpm-ostree's rule; arbor refuses instead of ignoring).
const NOT_INLINE: &[&str] = &[
    "include",
    "arch-include",
    "conditional-include",
    "add-files",
    "variables",
];

/// What `container: true` and `edition: 2024` imply, applied to the file that says so
/// (as rpm-ostree does when it parses that file): `container` overrides that file's own
/// values, `edition: 2024` only fills in what it leaves unset.
fn apply_implied(path: &Path, tf: &mut Treefile) -> Result<()> {
    if tf.container == Some(true) {
        tf.boot_location = Some("modules".into());
        tf.selinux = Some(false);
        tf.tmp_is_dir = Some(true);
        let none = CheckSpec {
            kind: "none".into(),
            filename: None,
            entries: None,
        };
        tf.check_passwd = Some(none.clone());
        tf.check_groups = Some(none);
    }
    if edition_2024(path, tf)? {
        tf.boot_location.get_or_insert_with(|| "modules".into());
        tf.tmp_is_dir.get_or_insert(true);
    }
    Ok(())
}

/// Whether `edition` is 2024 (else 2014, the default); any other value is an error.
fn edition_2024(path: &Path, tf: &Treefile) -> Result<bool> {
    match tf.edition.as_ref().map(|e| e.to_string()) {
        None => Ok(false),
        Some(e) => match e.trim_matches('"') {
            "2014" => Ok(false),
            "2024" => Ok(true),
            other => Err(TreefileError::Invalid {
                path: path.into(),
                why: format!("edition {other:?}: known editions are 2014 and 2024"),
            }),
        },
    }
}

fn load_rec(
    path: &Path,
    basearch: &str,
    depth: usize,
    seen: &mut HashSet<(u64, u64)>,
    vars: &mut BTreeMap<String, Json>,
) -> Result<Treefile> {
    if depth > MAX_INCLUDE_DEPTH {
        return Err(TreefileError::TooDeep { path: path.into() });
    }
    let meta = fs::metadata(path).map_err(|source| TreefileError::Io {
        path: path.into(),
        source,
    })?;
    if !seen.insert((meta.dev(), meta.ino())) {
        return Err(TreefileError::IncludeLoop { path: path.into() });
    }
    let mut tf = parse_value(path, read_value(path)?)?;
    apply_implied(path, &mut tf)?;
    let dir = parent_dir(path);
    tf.add_files_resolved = tf
        .add_files
        .iter()
        .flatten()
        .map(|(src, dest)| (dir.join(src), dest.clone()))
        .collect();

    let mut own = tf.variables.take().unwrap_or_default();
    for reserved in ["releasever", "basearch"] {
        if own.contains_key(reserved) {
            return Err(TreefileError::Invalid {
                path: path.into(),
                why: format!("variables: cannot define the reserved variable {reserved:?}"),
            });
        }
    }
    own.insert("basearch".into(), Json::String(basearch.into()));
    if let Some(r) = &tf.releasever {
        own.insert("releasever".into(), r.clone());
    }
    own.append(vars); // what was seen first wins
    *vars = own;

    let mut includes = tf.include.take().map(|i| i.items()).unwrap_or_default();
    if let Some(arch) = tf.arch_include.take().and_then(|mut m| m.remove(basearch)) {
        includes.extend(arch.items());
    }
    for ci in tf.conditional_include.take().unwrap_or_default() {
        let all = ci
            .condition
            .items()
            .iter()
            .map(|c| {
                eval_condition(c, vars).map_err(|why| TreefileError::Invalid {
                    path: path.into(),
                    why,
                })
            })
            .collect::<Result<Vec<bool>>>()?;
        if !all.iter().all(|b| *b) {
            continue;
        }
        match ci.include {
            Json::String(f) => includes.push(f),
            Json::Array(files) => {
                for f in files {
                    let Json::String(f) = f else {
                        return Err(TreefileError::Invalid {
                            path: path.into(),
                            why: "conditional-include: include list items must be file names"
                                .into(),
                        });
                    };
                    includes.push(f);
                }
            }
            Json::Object(inline) => {
                if let Some(k) = NOT_INLINE.iter().find(|k| inline.contains_key(**k)) {
                    return Err(TreefileError::Invalid {
                        path: path.into(),
                        why: format!(
                            "an inline conditional-include may not use {k:?} (only a file can)"
                        ),
                    });
                }
                let parent = parse_value(path, Json::Object(inline))?;
                tf.merge_parent(parent);
            }
            _ => {
                return Err(TreefileError::Invalid {
                    path: path.into(),
                    why: "conditional-include: include must be a file, a list or a mapping".into(),
                })
            }
        }
    }
    for inc in &includes {
        let parent = load_rec(&dir.join(inc), basearch, depth + 1, seen, vars)?;
        tf.merge_parent(parent);
    }
    Ok(tf)
}

/// `"<var> <op> <value>"` with `== != < <= > >=`.
fn eval_condition(cond: &str, vars: &BTreeMap<String, Json>) -> std::result::Result<bool, String> {
    let parts: Vec<&str> = cond.split_whitespace().collect();
    let [var, op, value] = parts[..] else {
        return Err(format!(
            "conditional-include: cannot parse condition {cond:?}"
        ));
    };
    let actual = vars
        .get(var)
        .ok_or_else(|| format!("conditional-include: unknown variable {var:?}"))?;
    // The literal's type is its spelling: "quoted" or bare text is a string, true/false a
    // boolean, digits a number; it must match the variable's type (rpm-ostree refuses a
    // mismatch — and comparing "10" with 9 as text would be silently wrong).
    let quoted = value.len() >= 2 && value.starts_with('"') && value.ends_with('"');
    let mismatch = |want: &str| {
        format!(
            "conditional-include: {cond:?}: {var} is {}, {value} is {want}",
            match actual {
                Json::String(_) => "a string",
                Json::Number(_) => "a number",
                Json::Bool(_) => "a boolean",
                _ => "neither a string, a number nor a boolean",
            }
        )
    };
    let ord = if quoted {
        match actual {
            Json::String(s) => Some(s.as_str().cmp(&value[1..value.len() - 1])),
            _ => return Err(mismatch("a string")),
        }
    } else if let Ok(b) = value.parse::<bool>() {
        match actual {
            Json::Bool(a) => Some(a.cmp(&b)),
            _ => return Err(mismatch("a boolean")),
        }
    } else if let Ok(n) = value.parse::<f64>() {
        match actual {
            Json::Number(a) => a.as_f64().and_then(|a| a.partial_cmp(&n)),
            _ => return Err(mismatch("a number")),
        }
    } else {
        match actual {
            Json::String(s) => Some(s.as_str().cmp(value)),
            _ => return Err(mismatch("a string")),
        }
    }
    .ok_or_else(|| format!("conditional-include: cannot compare {var} with {value:?}"))?;
    use std::cmp::Ordering::*;
    Ok(match op {
        "==" => ord == Equal,
        "!=" => ord != Equal,
        "<" => ord == Less,
        "<=" => ord != Greater,
        ">" => ord == Greater,
        ">=" => ord != Less,
        _ => return Err(format!("conditional-include: unknown operator {op:?}")),
    })
}

/// Replace `${name}` with variables; an unknown name is an error.
pub fn substitute(s: &str, vars: &BTreeMap<String, String>) -> std::result::Result<String, String> {
    let mut out = String::new();
    let mut rest = s;
    while let Some(i) = rest.find("${") {
        out.push_str(&rest[..i]);
        let after = &rest[i + 2..];
        let end = after
            .find('}')
            .ok_or_else(|| format!("unterminated ${{ in {s:?}"))?;
        let name = &after[..end];
        out.push_str(
            vars.get(name)
                .ok_or_else(|| format!("unknown variable ${{{name}}} in {s:?}"))?,
        );
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let p = dir.join(name);
        fs::write(&p, text).unwrap();
        p
    }

    #[test]
    fn include_merge_rules() {
        let d = tempfile::tempdir().unwrap();
        write(d.path(), "base.yaml", "ref: base\nrecommends: true\nrepos: [a]\npackages: [x, y]\nunits: [u1]\nadd-commit-metadata: {k: base, only-base: 1}\n");
        write(
            d.path(),
            "extra.json",
            r#"{"packages": ["z"], "units": ["u2"], "documentation": false}"#,
        );
        let top = write(
            d.path(),
            "top.yaml",
            "include: [base.yaml, extra.json]\nref: top\npackages: [y, w]\npackages-x86_64: [ax]\nunits: [u3]\nadd-commit-metadata: {k: top}\narch-include: {aarch64: nope.yaml}\n",
        );
        let t = load(&top, "x86_64").unwrap();
        assert_eq!(t.ref_.as_deref(), Some("top"));
        assert_eq!(t.recommends, Some(true));
        assert_eq!(t.documentation, Some(false));
        // A later sibling's array items come before an earlier sibling's.
        assert_eq!(t.units.unwrap(), ["u2", "u1", "u3"]);
        assert_eq!(t.packages.unwrap(), ["z", "x", "y", "w"]);
        assert_eq!(t.arch_packages["x86_64"], ["ax"]);
        let md = t.add_commit_metadata.unwrap();
        assert_eq!(md["k"], "top");
        assert_eq!(md["only-base"], 1);
    }

    #[test]
    fn errors_name_key_and_file() {
        let d = tempfile::tempdir().unwrap();
        let p = write(d.path(), "t.yaml", "ref: x\nbogus-key: 1\n");
        let e = load(&p, "x86_64").unwrap_err().to_string();
        assert!(e.contains("t.yaml") && e.contains("bogus-key"), "{e}");
        let p = write(d.path(), "u.yaml", "postprocess: ['#!/bin/sh']\n");
        let e = load(&p, "x86_64").unwrap_err().to_string();
        assert!(
            e.contains("not implemented") && e.contains("postprocess"),
            "{e}"
        );
        write(d.path(), "a.yaml", "include: b.yaml\n");
        let b = write(d.path(), "b.yaml", "include: a.yaml\n");
        assert!(matches!(
            load(&b, "x86_64"),
            Err(TreefileError::IncludeLoop { .. })
        ));
    }

    /// Condition literals are typed by their spelling and must match the variable.
    #[test]
    fn condition_types() {
        let vars = BTreeMap::from([
            ("rel".to_string(), Json::String("10".into())),
            ("n".to_string(), serde_json::json!(10)),
            ("prod".to_string(), Json::Bool(false)),
        ]);
        let ev = |c: &str| eval_condition(c, &vars);
        assert_eq!(ev("n >= 9"), Ok(true), "numbers compare as numbers");
        assert_eq!(ev("rel == \"10\""), Ok(true));
        assert_eq!(
            ev("rel == 10"),
            Err("conditional-include: \"rel == 10\": rel is a string, 10 is a number".into())
        );
        assert!(
            ev("rel >= 9").is_err(),
            "\"10\" >= 9 as text would be false"
        );
        assert_eq!(ev("prod == false"), Ok(true));
        assert!(ev("prod == \"false\"").is_err());
        assert!(ev("n == ten").is_err());
    }

    #[test]
    fn conditional_include_and_substitution() {
        let d = tempfile::tempdir().unwrap();
        let p = write(
            d.path(),
            "t.yaml",
            "variables: {stream: stable, n: 3}\nconditional-include:\n  - if: stream == stable\n    include: {packages: [s]}\n  - if: [n >= 4]\n    include: {packages: [big]}\n  - if: basearch == x86_64\n    include: {packages: [x]}\n",
        );
        let t = load(&p, "x86_64").unwrap();
        assert_eq!(t.packages.unwrap(), ["x", "s"]);
        let vars = BTreeMap::from([("basearch".to_string(), "x86_64".to_string())]);
        assert_eq!(
            substitute("os/${basearch}/stable", &vars).unwrap(),
            "os/x86_64/stable"
        );
        assert!(substitute("${nope}", &vars).is_err());
    }

    /// rpm-ostree's variable scoping: one map for the include graph, filled as files
    /// are read, the first definition winning; includes see the includer's variables.
    #[test]
    fn variables_reach_includes_and_the_first_definition_wins() {
        let d = tempfile::tempdir().unwrap();
        fs::create_dir(d.path().join("sub")).unwrap();
        write(
            &d.path().join("sub"),
            "inc.yaml",
            "variables: {stream: testing, extra: 1}\nadd-files: [[f2.txt, /usr/share/f2]]\nconditional-include:\n  - if: stream == stable\n    include: stable.yaml\n  - if: [releasever == 40, extra == 1]\n    include: {packages: [forty]}\n",
        );
        write(&d.path().join("sub"), "stable.yaml", "packages: [s]\n");
        let top = write(
            d.path(),
            "top.yaml",
            "variables: {stream: stable}\nreleasever: 40\nadd-files: [[f1.txt, /usr/share/f1]]\ninclude: sub/inc.yaml\n",
        );
        let t = load(&top, "x86_64").unwrap();
        assert_eq!(t.packages.as_deref().unwrap(), ["s", "forty"]);
        let vars = t.variables.unwrap();
        assert_eq!(vars["stream"], "stable", "the includer's definition wins");
        assert_eq!(vars["extra"], 1);
        assert_eq!(vars["basearch"], "x86_64");
        assert_eq!(vars["releasever"], 40);
        // add-files sources are relative to the file that lists them.
        let files: Vec<_> = t
            .add_files_resolved
            .into_iter()
            .map(|(src, _)| src)
            .collect();
        assert_eq!(
            files,
            [d.path().join("sub/f2.txt"), d.path().join("f1.txt")]
        );

        let p = write(d.path(), "r.yaml", "variables: {basearch: arm}\n");
        let e = load(&p, "x86_64").unwrap_err().to_string();
        assert!(e.contains("reserved") && e.contains("basearch"), "{e}");
        let p = write(d.path(), "n.yaml", "variables: {x: null}\n");
        assert!(load(&p, "x86_64")
            .unwrap_err()
            .to_string()
            .contains("\"x\""));
    }

    /// Inline conditional-includes merge before included files (so an inline scalar
    /// beats an included file's) and may not bring files or variables.
    #[test]
    fn inline_conditional_includes() {
        let d = tempfile::tempdir().unwrap();
        write(
            d.path(),
            "r.yaml",
            "recommends: false\nunits: [from-file]\n",
        );
        let p = write(
            d.path(),
            "t.yaml",
            "include: r.yaml\nconditional-include:\n  - if: basearch == x86_64\n    include: {recommends: true, units: [inline]}\n",
        );
        let t = load(&p, "x86_64").unwrap();
        assert_eq!(t.recommends, Some(true));
        assert_eq!(t.units.unwrap(), ["from-file", "inline"]);
        for key in [
            "include: x.yaml",
            "conditional-include: []",
            "arch-include: {}",
            "variables: {a: 1}",
        ] {
            let body = format!(
                "conditional-include:\n  - if: basearch == x86_64\n    include: {{{key}}}\n"
            );
            let p = write(d.path(), "n.yaml", &body);
            let e = load(&p, "x86_64").unwrap_err().to_string();
            assert!(
                e.contains("inline") && e.contains(key.split(':').next().unwrap()),
                "{e}"
            );
        }
    }

    /// `container: true` and `edition: 2024` set what they imply in the file that
    /// says so; unknown editions are refused.
    #[test]
    fn container_and_edition_imply_settings() {
        let d = tempfile::tempdir().unwrap();
        let p = write(d.path(), "c.yaml", "container: true\nselinux: true\n");
        let t = load(&p, "x86_64").unwrap();
        assert_eq!(t.selinux, Some(false));
        assert_eq!(t.tmp_is_dir, Some(true));
        assert_eq!(t.boot_location.as_deref(), Some("modules"));
        assert_eq!(t.check_passwd.unwrap().kind, "none");
        let p = write(d.path(), "e.yaml", "edition: 2024\nboot-location: new\n");
        let t = load(&p, "x86_64").unwrap();
        assert_eq!(
            t.boot_location.as_deref(),
            Some("new"),
            "set in the file: kept"
        );
        assert_eq!(t.tmp_is_dir, Some(true), "unset: the 2024 default");
        let p = write(d.path(), "x.yaml", "edition: 2099\n");
        assert!(load(&p, "x86_64").unwrap_err().to_string().contains("2099"));
        let p = write(
            d.path(),
            "i.yaml",
            "conditional-include:\n  - if: basearch == x86_64\n    include: {edition: 2099}\n",
        );
        assert!(load(&p, "x86_64").unwrap_err().to_string().contains("2099"));
    }
}
