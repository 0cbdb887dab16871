//! After merging: `${var}` substitution where rpm-ostree does it, and the flattened
//! JSON (`--print-only`, `/usr/share/rpm-ostree/treefile.json`, the input hash).

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value as Json;

use super::Treefile;

/// A variable's text: strings as they are, numbers and booleans as written.
pub fn var_text(v: &Json) -> String {
    match v {
        Json::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// The `envsubst` crate rpm-ostree uses: a string is only templated when a `${`
/// comes before the first `}`; then each known `${name}` is replaced and unknown ones
/// are left as written.
fn envsubst(s: &mut String, vars: &BTreeMap<String, String>) {
    let templated = matches!((s.find("${"), s.find('}')), (Some(a), Some(b)) if a < b);
    if templated {
        for (k, v) in vars {
            *s = s.replace(&format!("${{{k}}}"), v);
        }
    }
}

impl Treefile {
    /// The variables as text, for substitution. A name or value holding `$`, `{` or
    /// `}` is refused (as rpm-ostree does), since substitution would not be
    /// deterministic.
    pub fn var_texts(&self) -> Result<BTreeMap<String, String>, String> {
        let mut out = BTreeMap::new();
        for (k, v) in self.variables.iter().flatten() {
            if v.is_array() || v.is_object() {
                return Err(format!(
                    "variable {k:?} is a {}; variables are strings, numbers or booleans (as rpm-ostree's)",
                    if v.is_array() { "list" } else { "mapping" }
                ));
            }
            let v = var_text(v);
            for s in [k, &v] {
                if let Some(c) = s.chars().find(|c| matches!(c, '$' | '{' | '}')) {
                    return Err(format!(
                        "variable {k:?}: {s:?} contains the forbidden character {c:?}"
                    ));
                }
            }
            out.insert(k.clone(), v);
        }
        Ok(out)
    }

    /// Substitute `${var}` in the keys rpm-ostree substitutes: `ref`, `rojig`'s name,
    /// summary and description, the top-level strings of `metadata` and
    /// `add-commit-metadata`, `automatic-version-prefix`, `mutate-os-release` and
    /// `platform-module`. Unknown names stay as written.
    pub fn substitute_vars(&mut self) -> Result<(), String> {
        let vars = self.var_texts()?;
        let sub = |s: &mut String| envsubst(s, &vars);
        for s in [
            &mut self.ref_,
            &mut self.automatic_version_prefix,
            &mut self.mutate_os_release,
            &mut self.platform_module,
        ]
        .into_iter()
        .flatten()
        {
            sub(s);
        }
        if let Some(Json::Object(rojig)) = &mut self.rojig {
            for key in ["name", "summary", "description"] {
                if let Some(Json::String(s)) = rojig.get_mut(key) {
                    sub(s);
                }
            }
        }
        for map in [&mut self.metadata, &mut self.add_commit_metadata]
            .into_iter()
            .flatten()
        {
            for v in map.values_mut() {
                if let Json::String(s) = v {
                    sub(s);
                }
            }
        }
        Ok(())
    }

    /// The packages for `basearch`: `packages` and `packages-$basearch`, in order,
    /// without repeats.
    pub fn packages_for(&self, basearch: &str) -> Vec<String> {
        let mut out: Vec<String> = self.packages.clone().unwrap_or_default();
        for p in self.arch_packages.get(basearch).into_iter().flatten() {
            if !out.contains(p) {
                out.push(p.clone());
            }
        }
        out
    }

    /// The flattened treefile as rpm-ostree prints it: `packages` is one sorted set
    /// (this architecture's `packages-$basearch` folded in), `repo-packages` lists are
    /// sorted, a JSON top file's unknown keys are kept. Unlike rpm-ostree, `variables`
    /// are printed (arbor shows what conditions and substitutions saw).
    pub fn to_json(&self) -> Json {
        let mut v = serde_json::to_value(self).expect("a treefile serializes");
        let obj = v.as_object_mut().expect("a struct serializes to an object");
        let basearch = self.basearch.as_deref().unwrap_or_default();
        let packages: BTreeSet<String> = self.packages_for(basearch).into_iter().collect();
        obj.insert("packages".into(), serde_json::json!(packages));
        if let Some(Json::Array(rps)) = obj.get_mut("repo-packages") {
            for rp in rps {
                if let Some(Json::Array(p)) = rp.get_mut("packages") {
                    p.sort_by(|a, b| a.as_str().cmp(&b.as_str()));
                    p.dedup();
                }
            }
        }
        for (k, val) in &self.extra {
            obj.entry(k.clone()).or_insert_with(|| val.clone());
        }
        v
    }
}
