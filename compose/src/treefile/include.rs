//! The include graph: `include`, `arch-include` and `conditional-include`, walked as
//! rpm-ostree walks it (depth-first, each included file merged into its includer
//! in order), with the variables conditions see and the files keys refer to.

use std::collections::{BTreeMap, HashSet};
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::sync::OnceLock;

use serde_json::Value as Json;

use super::keys::{edition_of, parse_value, CheckSpec, Format, Treefile};
use super::{parent_dir, Problem, Result, TreefileError, MAX_INCLUDE_DEPTH};

/// Keys an inline `conditional-include` may not use: they name files or bring
/// variables, which only a file can (rpm-ostree's rule; arbor refuses instead of
/// ignoring).
const NOT_INLINE: &[&str] = &[
    "include",
    "arch-include",
    "conditional-include",
    "add-files",
    "postprocess-script",
    "variables",
];

/// Everything one walk of the graph shares.
pub(super) struct Walk<'a> {
    pub basearch: &'a str,
    pub seen: HashSet<(u64, u64)>,
    pub vars: BTreeMap<String, Json>,
    pub problems: Vec<Problem>,
}

/// Read one file as JSON: YAML for `.yaml`/`.yml`, JSON otherwise (as rpm-ostree).
fn read_value(path: &Path) -> Result<Json> {
    let text = crate::input::read_text_capped(path, crate::input::MAX_TEXT).map_err(|source| {
        TreefileError::Io {
            path: path.into(),
            err: source,
        }
    })?;
    super::parse_text(path, &text)
}

/// What `container: true` and `edition: 2024` imply, applied to the file that says so
/// (as rpm-ostree does when it parses that file): `container` overrides that file's own
/// values, `edition: 2024` only fills in what it leaves unset.
fn apply_implied(tf: &mut Treefile) {
    if tf.container == Some(true) {
        tf.boot_location = Some("modules".into());
        tf.selinux = Some(false);
        tf.tmp_is_dir = Some(true);
        tf.preserve_passwd = Some(false);
        tf.check_passwd = Some(CheckSpec::none());
        tf.check_groups = Some(CheckSpec::none());
    }
    if tf.edition.as_ref().and_then(edition_of) == Some(2024) {
        tf.boot_location.get_or_insert_with(|| "modules".into());
        tf.tmp_is_dir.get_or_insert(true);
    }
}

/// Resolve the files a file's keys name against its directory. Whether they exist is
/// the plan's check: `--print-only` only flattens.
fn resolve_externals(path: &Path, tf: &mut Treefile) {
    let dir = parent_dir(path);
    tf.add_files_resolved = tf
        .add_files
        .iter()
        .flatten()
        .map(|(src, dest)| (dir.join(src), dest.clone()))
        .collect();
    tf.postprocess_script_resolved = tf.postprocess_script.as_ref().map(|s| dir.join(s));
    for spec in [&mut tf.check_passwd, &mut tf.check_groups] {
        if let Some(spec) = spec.as_mut().filter(|s| s.kind == "file") {
            spec.resolved = spec.filename.as_ref().map(|f| dir.join(f));
        }
    }
}

impl Walk<'_> {
    /// Variables work as in rpm-ostree: one map for the whole include graph, filled in
    /// the order files are read (the including file before its includes, siblings in
    /// order), where a variable already seen wins over a later file's. `basearch`, and
    /// `releasever` where a file sets it, are added to each file's variables; defining
    /// them is an error. A file's `conditional-include`s are evaluated against the map
    /// as it stands when the file is read; inline ones are merged before any included
    /// file.
    pub fn load(&mut self, path: &Path, depth: usize) -> Result<Treefile> {
        if depth > MAX_INCLUDE_DEPTH {
            return Err(TreefileError::TooDeep { path: path.into() });
        }
        let meta = fs::metadata(path).map_err(|source| TreefileError::Io {
            path: path.into(),
            err: source,
        })?;
        if !self.seen.insert((meta.dev(), meta.ino())) {
            return Err(TreefileError::IncludeLoop { path: path.into() });
        }
        if path.extension().is_some_and(|e| e == "ks") {
            return Err(TreefileError::NotImplemented {
                path: path.into(),
                key: "include".into(),
                hint: " (kickstart files)".into(),
            });
        }
        let mut tf = parse_value(
            path,
            Format::of(path),
            read_value(path)?,
            &mut self.problems,
        );
        if let Some(arch) = tf.basearch.as_deref().filter(|a| *a != self.basearch) {
            self.problems.push(Problem::new(
                path,
                "basearch",
                format!(
                    "{arch} on {}: cross-composes are not supported",
                    self.basearch
                ),
            ));
        }
        tf.basearch = Some(self.basearch.to_string());
        apply_implied(&mut tf);
        resolve_externals(path, &mut tf);

        let mut own = tf.variables.take().unwrap_or_default();
        for reserved in ["releasever", "basearch"] {
            if own.remove(reserved).is_some() {
                self.problems.push(Problem::new(
                    path,
                    "variables",
                    format!("cannot define the reserved variable {reserved:?}"),
                ));
            }
        }
        own.insert("basearch".into(), Json::String(self.basearch.into()));
        if let Some(r) = &tf.releasever {
            own.insert("releasever".into(), r.clone());
        }
        own.append(&mut self.vars); // what was seen first wins
        self.vars = own;

        let mut includes = tf.include.take().map(|i| i.items()).unwrap_or_default();
        if let Some(arch) = tf
            .arch_include
            .take()
            .and_then(|mut m| m.remove(self.basearch))
        {
            includes.extend(arch.items());
        }
        for ci in tf.conditional_include.take().unwrap_or_default() {
            let invalid = |why: String| TreefileError::Invalid {
                path: path.into(),
                why: format!("conditional-include: {why}"),
            };
            // Every condition is evaluated, so that a type error is reported even
            // when an earlier one is false.
            let all = ci
                .condition
                .items()
                .iter()
                .map(|c| {
                    eval_condition(c, &self.vars).map_err(|why| TreefileError::Invalid {
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
                            return Err(invalid("include list items must be file names".into()));
                        };
                        includes.push(f);
                    }
                }
                Json::Object(inline) => {
                    if let Some(k) = NOT_INLINE.iter().find(|k| inline.contains_key(**k)) {
                        return Err(invalid(format!(
                            "an inline conditional-include may not use {k:?} (only a file can)"
                        )));
                    }
                    let mut parent = parse_value(
                        path,
                        Format::of(path),
                        Json::Object(inline),
                        &mut self.problems,
                    );
                    if parent
                        .check_passwd
                        .iter()
                        .chain(&parent.check_groups)
                        .any(|c| c.kind == "file")
                    {
                        return Err(invalid(
                            "an inline conditional-include may not use check-* of type file (only a file can)".into(),
                        ));
                    }
                    parent.basearch = None;
                    parent.extra.clear();
                    tf.merge_parent(parent);
                }
                _ => {
                    return Err(invalid(
                        "include must be a file, a list or a mapping".into(),
                    ))
                }
            }
        }
        let dir = parent_dir(path);
        for inc in &includes {
            let parent = self.load(&dir.join(inc), depth + 1)?;
            tf.merge_parent(parent);
        }
        Ok(tf)
    }
}

/// `"<var> <op> <value>"` as rpm-ostree reads it, with `== != < <= > >=`. The value's
/// type is its spelling: `true`/`false`, digits, or `"quoted"` text; arbor also takes
/// bare text as a string. It must match the variable's type, and only numbers order.
pub(super) fn eval_condition(
    cond: &str,
    vars: &BTreeMap<String, Json>,
) -> std::result::Result<bool, String> {
    static RE: OnceLock<regex::Regex> = OnceLock::new();
    let re = RE.get_or_init(|| {
        regex::Regex::new(
            r#"^\s*(?P<var>[[:alnum:]_]+)\s*(?P<op>[=!<>]+)\s*(?:(?P<bool>true|false)|(?P<number>[[:digit:]]+)|"(?P<string>.*)"|(?P<bare>\S+))\s*$"#,
        )
        .expect("valid regex")
    });
    eval_parsed(re, cond, vars).map_err(|e| format!("conditional-include: {e}"))
}

fn eval_parsed(
    re: &regex::Regex,
    cond: &str,
    vars: &BTreeMap<String, Json>,
) -> std::result::Result<bool, String> {
    let caps = re
        .captures(cond)
        .ok_or_else(|| format!("cannot parse condition {cond:?}"))?;
    let var = &caps["var"];
    let op = &caps["op"];
    let value = caps
        .name("bool")
        .or(caps.name("number"))
        .or(caps.name("string"))
        .or(caps.name("bare"))
        .map_or("", |m| m.as_str());
    let actual = vars
        .get(var)
        .ok_or_else(|| format!("unknown variable {var:?}"))?;
    let mismatch = |want: &str| {
        format!(
            "{cond:?}: {var} is {}, {value} is {want}",
            match actual {
                Json::String(_) => "a string",
                Json::Number(_) => "a number",
                Json::Bool(_) => "a boolean",
                _ => "neither a string, a number nor a boolean",
            }
        )
    };
    let ord = if caps.name("bool").is_some() {
        match actual {
            Json::Bool(a) => a.cmp(&(value == "true")),
            _ => return Err(mismatch("a boolean")),
        }
    } else if caps.name("number").is_some() {
        let n: u64 = value
            .parse()
            .map_err(|_| format!("{cond:?}: {value} is too large"))?;
        match actual.as_u64() {
            Some(a) => a.cmp(&n),
            None => return Err(mismatch("a number")),
        }
    } else {
        match actual {
            Json::String(s) => s.as_str().cmp(value),
            _ => return Err(mismatch("a string")),
        }
    };
    use std::cmp::Ordering::*;
    let ordered = || {
        if actual.is_number() {
            Ok(())
        } else {
            Err(format!("{cond:?}: {op} only compares numbers"))
        }
    };
    Ok(match op {
        "==" => ord == Equal,
        "!=" => ord != Equal,
        "<" => ordered().map(|_| ord == Less)?,
        "<=" => ordered().map(|_| ord != Greater)?,
        ">" => ordered().map(|_| ord == Greater)?,
        ">=" => ordered().map(|_| ord != Less)?,
        _ => return Err(format!("unknown operator {op:?} in {cond:?}")),
    })
}
