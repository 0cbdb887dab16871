//! yum `.repo` files (INI) next to the treefile: read leniently into sections, so
//! that only the repositories a treefile uses are checked (a broken section nobody
//! names is no error), then each used section becomes a [`RepoConfig`] with dnf's
//! variables substituted.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::RepoConfig;
use crate::treefile::TreefileError;

/// One `[section]` of a `.repo` file, as written.
#[derive(Debug, Clone)]
pub(crate) struct RepoSection {
    pub file: PathBuf,
    pub id: String,
    /// (key, value); a continuation line is appended to the previous value with a space.
    entries: Vec<(String, String)>,
    /// Lines of this section that could not be read.
    errors: Vec<String>,
}

/// A `.repo` file's sections, and the lines outside any section (which dnf would
/// refuse, failing every repository of the file).
pub(crate) fn read_sections(path: &Path, text: &str) -> (Vec<RepoSection>, Vec<String>) {
    let mut sections: Vec<RepoSection> = Vec::new();
    let mut outside = Vec::new();
    for raw in text.lines() {
        let line = raw.trim_end();
        let trimmed = line.trim_start();
        if trimmed.is_empty() || trimmed.starts_with('#') || trimmed.starts_with(';') {
            continue;
        }
        if let Some(id) = trimmed.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            sections.push(RepoSection {
                file: path.into(),
                id: id.trim().into(),
                entries: Vec::new(),
                errors: Vec::new(),
            });
            continue;
        }
        let Some(section) = sections.last_mut() else {
            outside.push(format!("line outside a [section]: {line:?}"));
            continue;
        };
        // Continuation lines (leading whitespace) extend the previous value.
        if raw.starts_with([' ', '\t']) {
            if let Some((_, v)) = section.entries.last_mut() {
                v.push(' ');
                v.push_str(trimmed);
                continue;
            }
        }
        match line.split_once('=') {
            Some((k, v)) => section
                .entries
                .push((k.trim().to_string(), v.trim().to_string())),
            None => section.errors.push(format!("cannot parse line {line:?}")),
        }
    }
    (sections, outside)
}

/// dnf's variables for `.repo` values.
#[derive(Debug, Clone, Default)]
pub(crate) struct RepoVars {
    pub releasever: Option<String>,
    pub basearch: String,
    /// The treefile's `repovars`.
    pub custom: BTreeMap<String, String>,
}

impl RepoSection {
    fn value(&self, key: &str) -> Option<&str> {
        self.entries
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// dnf's `enabled` (default on).
    pub fn enabled(&self) -> bool {
        self.value("enabled").is_none_or(is_true)
    }

    /// The repository this section describes; `vars` substitutes dnf variables in its
    /// URLs (`None`: as written). Errors are plain text; the caller names file and repo.
    pub fn config(&self, vars: Option<&RepoVars>) -> Result<RepoConfig, String> {
        if let Some(e) = self.errors.first() {
            return Err(e.clone());
        }
        let mut r = RepoConfig {
            id: self.id.clone(),
            name: self.id.clone(),
            ..RepoConfig::default()
        };
        let sub = |v: &str| match vars {
            Some(vars) => repo_vars(v, vars),
            None => Ok(v.to_string()),
        };
        for (k, v) in &self.entries {
            match k.as_str() {
                "name" => r.name = v.clone(),
                "baseurl" => {
                    for u in list(v) {
                        r.baseurls.push(sub(&u)?);
                    }
                }
                "mirrorlist" => r.mirrorlist = Some(sub(v)?),
                "metalink" => r.metalink = Some(sub(v)?),
                "enabled" => r.enabled = is_true(v),
                "priority" => {
                    r.priority = v
                        .parse()
                        .map_err(|_| format!("priority {v:?} is not a number"))?
                }
                "exclude" | "excludepkgs" => r.exclude.extend(list(v)),
                "includepkgs" => r.include_only.extend(list(v)),
                "gpgcheck" | "repo_gpgcheck" if is_true(v) && vars.is_some() => tracing::warn!(
                    "{}: repo {}: {k}={v}: arbor does not check signatures; packages are \
                     checked against the repository metadata's checksums only",
                    self.file.display(),
                    self.id
                ),
                _ => {}
            }
        }
        if r.baseurls.is_empty() && r.mirrorlist.is_none() && r.metalink.is_none() {
            return Err("has no baseurl, mirrorlist or metalink".into());
        }
        Ok(r)
    }
}

/// Parse a whole yum `.repo` file (INI), every section checked. `priority`,
/// `exclude`/`excludepkgs` and `includepkgs` are honoured as dnf does. URLs are kept as
/// written: the plan substitutes dnf's variables in the repos it uses.
pub fn parse_repo_file(path: &Path, text: &str) -> Result<Vec<RepoConfig>, TreefileError> {
    let invalid = |why: String| TreefileError::Invalid {
        path: path.into(),
        why,
    };
    let (sections, outside) = read_sections(path, text);
    if let Some(e) = outside.first() {
        return Err(invalid(e.clone()));
    }
    sections
        .iter()
        .map(|s| {
            s.config(None)
                .map_err(|e| invalid(format!("repo {}: {e}", s.id)))
        })
        .collect()
}

fn is_true(v: &str) -> bool {
    matches!(v.to_ascii_lowercase().as_str(), "1" | "true" | "yes" | "on")
}

/// dnf's lists in `.repo` files (URLs, package globs): separated by commas or spaces.
fn list(v: &str) -> Vec<String> {
    v.split([',', ' '])
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

/// dnf's variables in a `.repo` value: `$name` or `${name}` for `releasever`,
/// `releasever_major`, `releasever_minor`, `basearch`, `arch` and the treefile's
/// `repovars`; other names are left as they are (as dnf does). A `releasever` variable
/// without a `releasever` in the treefile is an error.
pub(crate) fn repo_vars(value: &str, vars: &RepoVars) -> Result<String, String> {
    let lookup = |name: &str| -> Result<Option<String>, String> {
        let rel = || {
            vars.releasever.as_deref().ok_or_else(|| {
                format!("{value:?} uses ${name}, but the treefile sets no releasever")
            })
        };
        Ok(match name {
            "basearch" | "arch" => Some(vars.basearch.clone()),
            "releasever" => Some(rel()?.to_string()),
            "releasever_major" => Some(rel()?.split('.').next().unwrap_or("").to_string()),
            "releasever_minor" => Some(rel()?.split_once('.').map_or("", |(_, m)| m).to_string()),
            other => vars.custom.get(other).cloned(),
        })
    };
    let mut out = String::new();
    let mut rest = value;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        let (name, len) = match after.strip_prefix('{') {
            Some(b) => match b.find('}') {
                Some(end) => (&b[..end], end + 2),
                None => ("", 0),
            },
            None => {
                let end = after
                    .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                    .unwrap_or(after.len());
                (&after[..end], end)
            }
        };
        match lookup(name)? {
            Some(v) if !name.is_empty() => {
                out.push_str(&v);
                rest = &after[len..];
            }
            _ => {
                out.push('$');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    Ok(out)
}
