//! rpm-ostree treefiles: parsing (YAML by extension, JSON otherwise), `include` /
//! `arch-include` / `conditional-include` with rpm-ostree's merge rules, variable
//! substitution, and the flattened JSON. [`crate::plan::ComposePlan`] validates the
//! result; later stages never see YAML.
//!
//! ```text
//!   file ──parse_text──▶ JSON ──keys::parse_value──▶ Treefile (+ problems)
//!        ──include::Walk (depth-first, merge::merge_parent)──▶ one Treefile
//!        ──flatten::substitute_vars──▶ to_json (--print-only) / ComposePlan
//! ```
//!
//! Bad keys and values do not stop the walk: they are collected as [`Problem`]s, each
//! naming its file, and reported together in one [`TreefileError::Unsupported`].

mod flatten;
mod include;
mod keys;
mod merge;

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::path::{Path, PathBuf};

use serde_json::Value as Json;

pub use flatten::var_text;
pub use keys::{
    account_ids, add_files_dest, edition_of, split_whitespace_unless_quoted, CheckSpec,
    ConditionalInclude, Format, OneOrMany, RepoPackages, ScriptletOverrideSpec, Treefile,
    SCRIPTLETS,
};

/// rpm-ostree's include depth limit.
const MAX_INCLUDE_DEPTH: usize = 50;

#[derive(Debug, thiserror::Error)]
pub enum TreefileError {
    /// (The OS error is part of the message, not a source: printed once.)
    #[error("{path}: {err}")]
    Io { path: PathBuf, err: std::io::Error },
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
    /// Every unknown key and unsupported value found, each with its file.
    #[error("{}", Problems(.0))]
    Unsupported(Vec<Problem>),
}

/// One unknown key or unsupported value, and the file it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub path: PathBuf,
    /// The key (empty when the problem is the file as a whole).
    pub key: String,
    pub why: String,
}

impl Problem {
    pub fn new(path: &Path, key: &str, why: impl Into<String>) -> Problem {
        Problem {
            path: path.into(),
            key: key.into(),
            why: why.into(),
        }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.key.as_str() {
            "" => write!(f, "{}: {}", self.path.display(), self.why),
            key => write!(f, "{}: {key}: {}", self.path.display(), self.why),
        }
    }
}

struct Problems<'a>(&'a [Problem]);

impl fmt::Display for Problems<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            [one] => write!(f, "{one}"),
            many => {
                write!(f, "{} problems in the treefile:", many.len())?;
                for p in many {
                    write!(f, "\n  {p}")?;
                }
                Ok(())
            }
        }
    }
}

type Result<T> = std::result::Result<T, TreefileError>;

/// Deeper than any treefile: rpm-ostree's own manifests nest a handful of levels.
const MAX_YAML_NESTING: usize = 64;

/// Refuse flow collections (`[`, `{`) nested deeper than [`MAX_YAML_NESTING`] before the
/// YAML parser sees them: a sequence nested 100,000 deep cost serde_yaml 34 s before its
/// own recursion limit answered. Quoted scalars and comments are skipped; a bracket
/// inside a plain scalar counts, which can only over-count.
fn yaml_nesting_ok(text: &str) -> std::result::Result<(), String> {
    let (mut depth, mut line) = (0usize, 1usize);
    let mut chars = text.chars().peekable();
    let mut prev = '\n';
    while let Some(c) = chars.next() {
        match c {
            '\n' => line += 1,
            '#' if prev.is_whitespace() => {
                for c in chars.by_ref() {
                    if c == '\n' {
                        line += 1;
                        break;
                    }
                }
                prev = '\n';
                continue;
            }
            // A quote opens a scalar only where a scalar starts (not in `it's`).
            '"' | '\'' if prev.is_whitespace() || ":[{,-".contains(prev) => {
                while let Some(q) = chars.next() {
                    match q {
                        '\\' if c == '"' => {
                            chars.next();
                        }
                        '\n' => line += 1,
                        q if q == c => break,
                        _ => {}
                    }
                }
            }
            '[' | '{' => {
                depth += 1;
                if depth > MAX_YAML_NESTING {
                    return Err(format!(
                        "line {line}: collections nested more than {MAX_YAML_NESTING} deep"
                    ));
                }
            }
            ']' | '}' => depth = depth.saturating_sub(1),
            _ => {}
        }
        prev = c;
    }
    Ok(())
}

/// Parse treefile text; `path` decides the format and names errors.
pub fn parse_text(path: &Path, text: &str) -> Result<Json> {
    let v: Json = match Format::of(path) {
        // The one place YAML is read; swap the crate here if serde_yaml must go.
        Format::Yaml => {
            let parse = |why: String| TreefileError::Parse {
                path: path.into(),
                why,
            };
            yaml_nesting_ok(text).map_err(parse)?;
            // Through serde_yaml's own Value, which refuses duplicate keys (a
            // serde_json map would keep the last one silently).
            let v: serde_yaml::Value =
                serde_yaml::from_str(text).map_err(|e| parse(e.to_string()))?;
            serde_json::to_value(v).map_err(|e| parse(e.to_string()))?
        }
        Format::Json => serde_json::from_str(text).map_err(|e| TreefileError::Parse {
            path: path.into(),
            why: e.to_string(),
        })?,
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

/// Load `path` with all its includes resolved for `basearch`, variables substituted;
/// any problem is an error.
pub fn load(path: &Path, basearch: &str) -> Result<Treefile> {
    let (tf, problems) = load_collecting(path, basearch)?;
    if problems.is_empty() {
        Ok(tf)
    } else {
        Err(TreefileError::Unsupported(problems))
    }
}

/// [`load`], returning the problems found instead of failing on them, so that a
/// caller can add its own and report all at once. Errors that stop the walk (a file
/// that cannot be read or parsed, an include loop) are still errors.
pub fn load_collecting(path: &Path, basearch: &str) -> Result<(Treefile, Vec<Problem>)> {
    let mut walk = include::Walk {
        basearch,
        seen: HashSet::new(),
        vars: BTreeMap::new(),
        problems: Vec::new(),
    };
    let mut tf = walk.load(path, 0)?;
    tf.variables = Some(walk.vars);
    if let Err(why) = tf.substitute_vars() {
        walk.problems.push(Problem::new(path, "variables", why));
    }
    Ok((tf, walk.problems))
}

/// The flattened treefile, as `--print-only` prints it: no `ref`, repository or
/// `.repo` file is needed.
pub fn flatten(path: &Path, basearch: &str) -> Result<Json> {
    Ok(load(path, basearch)?.to_json())
}

/// The directory a path is relative to: its parent, or `.` for a bare file name.
pub fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    }
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
    use super::include::eval_condition;
    use super::*;
    use std::fs;

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let p = dir.join(name);
        fs::write(&p, text).unwrap();
        p
    }

    /// Hostile YAML: deep nesting refused before the parser spends time on it, duplicate
    /// keys refused, brackets inside quotes and comments not counted.
    #[test]
    fn yaml_depth_and_duplicate_keys() {
        let p = Path::new("t.yaml");
        let deep = format!(
            "packages: {}x{}\n",
            "[".repeat(100_000),
            "]".repeat(100_000)
        );
        let e = parse_text(p, &deep).unwrap_err().to_string();
        assert!(e.contains("nested more than 64"), "{e}");
        let e = parse_text(p, "ref: a\nref: b\n").unwrap_err().to_string();
        assert!(e.contains("duplicate"), "{e}");
        let fine = format!(
            "# {}\nref: 'it''s [[['\nsummary: \"{{{{\\\" [\"\nbody: it's [a]\npackages: [[a], {{b: c}}]\n",
            "[".repeat(100)
        );
        let v = parse_text(p, &fine).unwrap();
        assert_eq!(v["ref"], "it's [[[");
        let shallow = format!("packages: {}x{}\n", "[".repeat(60), "]".repeat(60));
        assert!(parse_text(p, &shallow).is_ok());
    }

    /// A list or mapping as a variable (here `releasever`) is refused, not substituted
    /// as JSON text.
    #[test]
    fn non_scalar_variables_are_refused() {
        let d = tempfile::tempdir().unwrap();
        let top = write(
            d.path(),
            "t.yaml",
            "ref: \"x/${releasever}\"\nreleasever: [40, 41]\n",
        );
        let e = load(&top, "x86_64").unwrap_err().to_string();
        assert!(e.contains("\"releasever\" is a list"), "{e}");
        let top = write(d.path(), "u.yaml", "ref: x\nvariables: {v: {a: 1}}\n");
        let e = load(&top, "x86_64").unwrap_err().to_string();
        assert!(e.contains("\"v\" is a mapping"), "{e}");
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
        // Kickstart includes are the one input rpm-ostree reads that arbor does not.
        write(d.path(), "k.ks", "%packages\nbash\n%end\n");
        let p = write(d.path(), "u.yaml", "include: k.ks\n");
        let e = load(&p, "x86_64").unwrap_err().to_string();
        assert!(
            e.contains("not implemented") && e.contains("kickstart"),
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

    /// Each key merges by its rpm-ostree rule; files named by keys are resolved
    /// against the file that names them.
    #[test]
    fn every_key_merges_by_its_rule() {
        let d = tempfile::tempdir().unwrap();
        fs::create_dir(d.path().join("sub")).unwrap();
        write(
            &d.path().join("sub"),
            "kernel.yaml",
            "postprocess: [kernel]\npostprocess-script: k.sh\ncheck-passwd: {type: file, filename: passwd}\nignore-removed-users: [a, b]\nrepovars: {x: kernel, y: kernel}\ncontainer-cmd: [/bin/k]\ninstall-langs: [en_US]\nplatform-module: 'platform:f40'\ngpg_key: KEY\nbootstrap-packages: ['p q']\nopt-usrlocal: stateoverlay\nscriptlet-overrides: [{package: p, scriptlet: post}]\n",
        );
        write(
            d.path(),
            "bootupd.yaml",
            "postprocess: [bootupd]\npostprocess-script: b.sh\nignore-removed-users: ['*']\ninstall-langs: [fr_FR]\nautomatic-version-suffix: '-'\nscriptlet-overrides: [{package: q, scriptlet: pretrans, script: 'true'}]\n",
        );
        let top = write(
            d.path(),
            "top.yaml",
            "include: [sub/kernel.yaml, bootupd.yaml]\npostprocess: [top]\nrepovars: {x: top}\ncontainer-cmd: [/bin/top]\ninstall-langs: [de_DE]\n",
        );
        let t = load(&top, "x86_64").unwrap();
        // rpm-ostree's documented order: later include, earlier include, the includer.
        assert_eq!(
            t.postprocess.as_deref().unwrap(),
            ["bootupd", "kernel", "top"]
        );
        // First wins among siblings; the path travels with the key.
        assert_eq!(t.postprocess_script.as_deref(), Some("k.sh"));
        assert_eq!(
            t.postprocess_script_resolved.as_deref(),
            Some(d.path().join("sub/k.sh").as_path())
        );
        let check = t.check_passwd.as_ref().unwrap();
        assert_eq!(
            check.resolved.as_deref(),
            Some(d.path().join("sub/passwd").as_path())
        );
        assert_eq!(
            t.ignore_removed_users
                .clone()
                .unwrap()
                .into_iter()
                .collect::<Vec<_>>(),
            ["*", "a", "b"]
        );
        let repovars = t.repovars.clone().unwrap();
        assert_eq!(
            (repovars["x"].as_str(), repovars["y"].as_str()),
            ("top", "kernel")
        );
        assert_eq!(
            t.container_cmd.clone().unwrap(),
            ["/bin/top"],
            "a scalar, not appended"
        );
        assert_eq!(
            t.install_langs.clone().unwrap(),
            ["fr_FR", "en_US", "de_DE"]
        );
        assert_eq!(t.platform_module, None, "not merged, as in rpm-ostree");
        assert_eq!(
            t.gpg_key.as_deref(),
            Some("KEY"),
            "legacy spelling migrated"
        );
        assert_eq!(
            t.packages.as_deref().unwrap(),
            ["p", "q"],
            "bootstrap-packages folded in"
        );
        assert_eq!(t.automatic_version_suffix.as_deref(), Some("-"));
        assert_eq!(
            t.opt_usrlocal.as_deref(),
            Some("state-overlay"),
            "the canonical spelling"
        );
        let overrides = t.scriptlet_overrides.as_ref().unwrap();
        assert_eq!(
            (overrides[0].package.as_str(), overrides[1].package.as_str()),
            ("q", "p")
        );
        let flat = t.to_json();
        assert!(
            flat.get("repovars").is_none(),
            "not printed, as in rpm-ostree"
        );
        assert!(flat.get("bootstrap-packages").is_none());
        assert_eq!(flat["basearch"], "x86_64");
        assert_eq!(flat["gpg-key"], "KEY");
    }

    /// Every unknown key and unsupported value of the whole include graph is reported
    /// at once, each with its file.
    #[test]
    fn one_error_lists_every_problem() {
        let d = tempfile::tempdir().unwrap();
        write(
            d.path(),
            "inc.yaml",
            "sysusers: sometimes\ncheck-groups: {type: data, entries: {wheel: [10, 10]}}\n",
        );
        let p = write(
            d.path(),
            "t.yaml",
            "include: inc.yaml\nmodules: {enable: [x]}\nboot-location: elsewhere\nautomatic-version-suffix: '--'\ngpg-key: a\ngpg_key: b\npackages: [\"'unterminated\"]\n",
        );
        let e = load(&p, "x86_64").unwrap_err();
        let TreefileError::Unsupported(problems) = &e else {
            panic!("{e}")
        };
        let got: Vec<(String, &str)> = problems
            .iter()
            .map(|p| {
                (
                    p.path.file_name().unwrap().to_string_lossy().into_owned(),
                    p.key.as_str(),
                )
            })
            .collect();
        for want in [
            ("t.yaml", ""), // modules: unknown
            ("t.yaml", "boot-location"),
            ("t.yaml", "automatic-version-suffix"),
            ("t.yaml", "gpg-key"),
            ("t.yaml", "packages"),
            ("inc.yaml", "sysusers"),
            ("inc.yaml", "check-groups"),
        ] {
            assert!(
                got.iter().any(|(f, k)| f == want.0 && *k == want.1),
                "{want:?} missing from\n{e}"
            );
        }
        let text = e.to_string();
        assert!(text.starts_with("7 problems in the treefile:"), "{text}");
        assert!(text.contains("t.yaml: unknown key \"modules\""), "{text}");
        assert!(
            text.contains("inc.yaml: sysusers: unknown value \"sometimes\""),
            "{text}"
        );
    }

    /// JSON treefiles keep unknown keys (the top file's are printed), YAML refuses
    /// them; substitution leaves unknown variables as written, as rpm-ostree does.
    #[test]
    fn json_unknown_keys_and_substitution() {
        let d = tempfile::tempdir().unwrap();
        write(
            d.path(),
            "inc.json",
            r#"{"comment-inc": 1, "packages": ["b"]}"#,
        );
        let p = write(
            d.path(),
            "t.json",
            r#"{"include": "inc.json", "comment-top": "kept", "ref": "os/${basearch}/${stream}",
               "variables": {"stream": "next"}, "metadata": {"a": "${stream}", "b": "${nope}"},
               "mutate-os-release": "${releasever}", "releasever": 41, "packages": ["a 'c >= 1'"],
               "packages-x86_64": ["x"], "packages-s390x": ["s"],
               "rojig": {"name": "n-${stream}", "summary": "s", "license": "MIT"}}"#,
        );
        let flat = flatten(&p, "x86_64").unwrap();
        assert_eq!(flat["comment-top"], "kept");
        assert!(
            flat.get("comment-inc").is_none(),
            "only the top file's survive"
        );
        assert_eq!(flat["ref"], "os/x86_64/next");
        assert_eq!(flat["metadata"]["a"], "next");
        assert_eq!(flat["metadata"]["b"], "${nope}");
        assert_eq!(flat["mutate-os-release"], "41");
        assert_eq!(flat["rojig"]["name"], "n-next");
        assert_eq!(
            flat["packages"],
            serde_json::json!(["a", "b", "c >= 1", "x"])
        );
        let y = write(d.path(), "t.yaml", "comment: no\n");
        assert!(load(&y, "x86_64")
            .unwrap_err()
            .to_string()
            .contains("unknown key"));
        let x = write(d.path(), "x.yaml", "basearch: s390x\n");
        assert!(load(&x, "x86_64")
            .unwrap_err()
            .to_string()
            .contains("cross-composes are not supported"));
    }
}
