//! The scriptlets, triggers and file triggers an RPM header carries, as rpm stores them:
//!
//! ```text
//! %pre/%post/%posttrans/…   RPMTAG_{PREIN,POSTIN,POSTTRANS,…}        body (string)
//!                           RPMTAG_{…}PROG                            interpreter + args
//!                           RPMTAG_{…}FLAGS                           RPMSCRIPT_FLAG_*
//! %trigger*                 TRIGGERSCRIPTS[i], TRIGGERSCRIPTPROG[i], TRIGGERSCRIPTFLAGS[i]
//!                           TRIGGERNAME/VERSION/FLAGS[j] with TRIGGERINDEX[j] = i
//! %(trans)filetrigger*      the same shape, plus …PRIORITIES[i]; NAME[j] is a path prefix
//! ```
//!
//! Read through the bounds-checked header reader (`import::read_header`).

use std::path::Path;

use rpm::{IndexTag, PackageMetadata};

use crate::import::{self, ImportError};

/// `RPMSENSE_TRIGGER*` bits in `*TRIGGERFLAGS`.
pub const SENSE_TRIGGERIN: u32 = 1 << 16;
const SENSE_TRIGGERUN: u32 = 1 << 17;
const SENSE_TRIGGERPOSTUN: u32 = 1 << 18;
const SENSE_TRIGGERPREIN: u32 = 1 << 25;
/// Version comparison bits of a dependency (`RPMSENSE_LESS|GREATER|EQUAL`).
pub const SENSE_LESS: u32 = 1 << 1;
pub const SENSE_GREATER: u32 = 1 << 2;
pub const SENSE_EQUAL: u32 = 1 << 3;
/// `RPMSCRIPT_FLAG_EXPAND` (`-e`: expand macros when run) and `RPMSCRIPT_FLAG_QFORMAT`
/// (`-q`: expand query formats when run).
pub const SCRIPT_FLAG_EXPAND: u32 = 1 << 0;
pub const SCRIPT_FLAG_QFORMAT: u32 = 1 << 1;
/// rpm's default file trigger priority.
pub const DEFAULT_PRIORITY: u32 = 1_000_000;

/// When a scriptlet runs, in rpm's spelling.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    Pretrans,
    Pre,
    Post,
    Posttrans,
    Preun,
    Postun,
    Preuntrans,
    Postuntrans,
    Verify,
    TriggerPrein,
    TriggerIn,
    TriggerUn,
    TriggerPostun,
    FileTriggerIn,
    FileTriggerUn,
    FileTriggerPostun,
    TransFileTriggerIn,
    TransFileTriggerUn,
    TransFileTriggerPostun,
}

impl Kind {
    /// `%pre`, `%transfiletriggerin`, …
    pub fn label(self) -> &'static str {
        match self {
            Kind::Pretrans => "%pretrans",
            Kind::Pre => "%pre",
            Kind::Post => "%post",
            Kind::Posttrans => "%posttrans",
            Kind::Preun => "%preun",
            Kind::Postun => "%postun",
            Kind::Preuntrans => "%preuntrans",
            Kind::Postuntrans => "%postuntrans",
            Kind::Verify => "%verifyscript",
            Kind::TriggerPrein => "%triggerprein",
            Kind::TriggerIn => "%triggerin",
            Kind::TriggerUn => "%triggerun",
            Kind::TriggerPostun => "%triggerpostun",
            Kind::FileTriggerIn => "%filetriggerin",
            Kind::FileTriggerUn => "%filetriggerun",
            Kind::FileTriggerPostun => "%filetriggerpostun",
            Kind::TransFileTriggerIn => "%transfiletriggerin",
            Kind::TransFileTriggerUn => "%transfiletriggerun",
            Kind::TransFileTriggerPostun => "%transfiletriggerpostun",
        }
    }

    /// The name rpm-ostree (and the treefile's `scriptlet-overrides`) use: `pre`,
    /// `post`, `posttrans`, `transfiletriggerin`, … (rpm-ostree says `prein` for `%pre`;
    /// both spellings are accepted by [`Kind::matches`]).
    pub fn short(self) -> &'static str {
        &self.label()[1..]
    }

    /// Whether `name` (an override's `scriptlet`) names this kind.
    pub fn matches(self, name: &str) -> bool {
        let name = name.trim_start_matches('%');
        name == self.short()
            || (self == Kind::Pre && name == "prein")
            || (self == Kind::Post && name == "postin")
    }
}

/// One script: interpreter (with its arguments) and body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Script {
    /// `["/bin/sh"]`, `["/sbin/ldconfig"]`, `["<lua>"]`, …
    pub prog: Vec<String>,
    /// `None` for `-p PROG` without a body (rpm runs PROG with no arguments).
    pub body: Option<String>,
    pub flags: u32,
}

impl Script {
    pub fn is_lua(&self) -> bool {
        self.prog.first().is_some_and(|p| p == "<lua>")
    }

    /// A shell script of only blank lines, comments, `:` and `exit 0` does nothing
    /// when run (as the corpus's converted Debian scripts: the original commented out).
    pub fn is_noop_shell(&self) -> bool {
        let shell = matches!(
            self.prog.first().map(String::as_str),
            Some("/bin/sh" | "/usr/bin/sh" | "/bin/bash" | "/usr/bin/bash")
        ) && self.prog.len() == 1;
        shell
            && self.body.as_deref().is_some_and(|b| {
                b.lines()
                    .map(str::trim)
                    .all(|l| l.is_empty() || l.starts_with('#') || l == ":" || l == "exit 0")
            })
    }
}

/// A `%trigger*` script and what fires it: package names with optional versions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Trigger {
    pub kind: Kind,
    pub script: Script,
    /// (name, version comparison flags, version)
    pub conditions: Vec<(String, u32, String)>,
}

/// A `%filetrigger*`/`%transfiletrigger*` script and the path prefixes it watches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileTrigger {
    pub kind: Kind,
    pub script: Script,
    pub prefixes: Vec<String>,
    pub priority: u32,
    /// Index in the header (rpm's tie-break after the priority).
    pub index: usize,
}

/// Every script of one package, and the paths it installs (for file triggers).
#[derive(Debug, Clone, Default)]
pub struct PackageScripts {
    pub nevra: String,
    pub name: String,
    pub scripts: Vec<(Kind, Script)>,
    pub triggers: Vec<Trigger>,
    pub file_triggers: Vec<FileTrigger>,
    /// Absolute paths of the package's files, as the header lists them.
    pub files: Vec<String>,
}

fn strings(meta: &PackageMetadata, tag: IndexTag) -> Vec<String> {
    meta.header
        .get_entry_data_as_string_array(tag)
        .map(|v| v.into_iter().map(str::to_string).collect())
        .unwrap_or_default()
}

fn numbers(meta: &PackageMetadata, tag: IndexTag) -> Vec<u32> {
    meta.header
        .get_entry_data_as_u32_array(tag)
        .unwrap_or_default()
}

/// Read the scripts of the RPM at `path` (whose NEVRA the caller knows).
pub fn read(path: &Path, nevra: &str) -> Result<PackageScripts, ImportError> {
    let meta = import::read_header(path)?;
    let bad = |why: String| ImportError::Corrupt {
        path: path.to_path_buf(),
        nevra: nevra.to_string(),
        why,
    };
    parse(&meta, nevra).map_err(bad)
}

/// The scripts of a parsed header.
pub fn parse(meta: &PackageMetadata, nevra: &str) -> Result<PackageScripts, String> {
    use IndexTag as T;
    let h = &meta.header;
    let mut out = PackageScripts {
        nevra: nevra.to_string(),
        name: meta.get_name().map_err(|e| e.to_string())?.to_string(),
        ..Default::default()
    };
    let simple = [
        (
            Kind::Pretrans,
            T::RPMTAG_PRETRANS,
            T::RPMTAG_PRETRANSPROG,
            T::RPMTAG_PRETRANSFLAGS,
        ),
        (
            Kind::Pre,
            T::RPMTAG_PREIN,
            T::RPMTAG_PREINPROG,
            T::RPMTAG_PREINFLAGS,
        ),
        (
            Kind::Post,
            T::RPMTAG_POSTIN,
            T::RPMTAG_POSTINPROG,
            T::RPMTAG_POSTINFLAGS,
        ),
        (
            Kind::Posttrans,
            T::RPMTAG_POSTTRANS,
            T::RPMTAG_POSTTRANSPROG,
            T::RPMTAG_POSTTRANSFLAGS,
        ),
        (
            Kind::Preun,
            T::RPMTAG_PREUN,
            T::RPMTAG_PREUNPROG,
            T::RPMTAG_PREUNFLAGS,
        ),
        (
            Kind::Postun,
            T::RPMTAG_POSTUN,
            T::RPMTAG_POSTUNPROG,
            T::RPMTAG_POSTUNFLAGS,
        ),
        (
            Kind::Verify,
            T::RPMTAG_VERIFYSCRIPT,
            T::RPMTAG_VERIFYSCRIPTPROG,
            T::RPMTAG_VERIFYSCRIPTFLAGS,
        ),
    ];
    for (kind, body, prog, flags) in simple {
        if !(h.entry_is_present(body) || h.entry_is_present(prog)) {
            continue;
        }
        let mut prog = strings(meta, prog);
        if prog.is_empty() {
            prog.push("/bin/sh".into());
        }
        out.scripts.push((
            kind,
            Script {
                prog,
                body: h.get_entry_data_as_string(body).ok().map(str::to_string),
                flags: h.get_entry_data_as_u32(flags).unwrap_or(0),
            },
        ));
    }
    for (kind, tag) in [
        (Kind::Preuntrans, T::RPMTAG_PREUNTRANS),
        (Kind::Postuntrans, T::RPMTAG_POSTUNTRANS),
    ] {
        if h.entry_is_present(tag) {
            out.scripts.push((
                kind,
                Script {
                    prog: vec!["/bin/sh".into()],
                    body: None,
                    flags: 0,
                },
            ));
        }
    }

    // %trigger*: one script per index, fired by the names that point at it.
    let bodies = strings(meta, T::RPMTAG_TRIGGERSCRIPTS);
    let progs = strings(meta, T::RPMTAG_TRIGGERSCRIPTPROG);
    let sflags = numbers(meta, T::RPMTAG_TRIGGERSCRIPTFLAGS);
    let names = strings(meta, T::RPMTAG_TRIGGERNAME);
    let versions = strings(meta, T::RPMTAG_TRIGGERVERSION);
    let tflags = numbers(meta, T::RPMTAG_TRIGGERFLAGS);
    let index = numbers(meta, T::RPMTAG_TRIGGERINDEX);
    if names.len() != tflags.len() || names.len() != index.len() {
        return Err("trigger tags of different lengths".into());
    }
    for (i, body) in bodies.iter().enumerate() {
        let mut conditions = Vec::new();
        let mut kind = None;
        for j in (0..names.len()).filter(|&j| index[j] as usize == i) {
            let f = tflags[j];
            kind = kind.or(Some(trigger_kind(f)));
            conditions.push((
                names[j].clone(),
                f & (SENSE_LESS | SENSE_GREATER | SENSE_EQUAL),
                versions.get(j).cloned().unwrap_or_default(),
            ));
        }
        out.triggers.push(Trigger {
            kind: kind.unwrap_or(Kind::TriggerIn),
            script: Script {
                prog: vec![progs.get(i).cloned().unwrap_or_else(|| "/bin/sh".into())],
                body: Some(body.clone()),
                flags: sflags.get(i).copied().unwrap_or(0),
            },
            conditions,
        });
    }

    // File triggers, in the package and in the transaction.
    for (transaction, scripts, prog, sflags, name, flags, index, prio) in [
        (
            false,
            T::RPMTAG_FILETRIGGERSCRIPTS,
            T::RPMTAG_FILETRIGGERSCRIPTPROG,
            T::RPMTAG_FILETRIGGERSCRIPTFLAGS,
            T::RPMTAG_FILETRIGGERNAME,
            T::RPMTAG_FILETRIGGERFLAGS,
            T::RPMTAG_FILETRIGGERINDEX,
            T::RPMTAG_FILETRIGGERPRIORITIES,
        ),
        (
            true,
            T::RPMTAG_TRANSFILETRIGGERSCRIPTS,
            T::RPMTAG_TRANSFILETRIGGERSCRIPTPROG,
            T::RPMTAG_TRANSFILETRIGGERSCRIPTFLAGS,
            T::RPMTAG_TRANSFILETRIGGERNAME,
            T::RPMTAG_TRANSFILETRIGGERFLAGS,
            T::RPMTAG_TRANSFILETRIGGERINDEX,
            T::RPMTAG_TRANSFILETRIGGERPRIORITIES,
        ),
    ] {
        let bodies = strings(meta, scripts);
        let progs = strings(meta, prog);
        let sflags = numbers(meta, sflags);
        let names = strings(meta, name);
        let flags = numbers(meta, flags);
        let index = numbers(meta, index);
        let prios = numbers(meta, prio);
        if names.len() != flags.len() || names.len() != index.len() {
            return Err("file trigger tags of different lengths".into());
        }
        for (i, body) in bodies.iter().enumerate() {
            let members: Vec<usize> = (0..names.len())
                .filter(|&j| index[j] as usize == i)
                .collect();
            let f = members.first().map_or(SENSE_TRIGGERIN, |&j| flags[j]);
            let kind = match (transaction, trigger_kind(f)) {
                (false, Kind::TriggerUn) => Kind::FileTriggerUn,
                (false, Kind::TriggerPostun) => Kind::FileTriggerPostun,
                (false, _) => Kind::FileTriggerIn,
                (true, Kind::TriggerUn) => Kind::TransFileTriggerUn,
                (true, Kind::TriggerPostun) => Kind::TransFileTriggerPostun,
                (true, _) => Kind::TransFileTriggerIn,
            };
            out.file_triggers.push(FileTrigger {
                kind,
                script: Script {
                    prog: vec![progs.get(i).cloned().unwrap_or_else(|| "/bin/sh".into())],
                    body: Some(body.clone()),
                    flags: sflags.get(i).copied().unwrap_or(0),
                },
                prefixes: members.iter().map(|&j| names[j].clone()).collect(),
                priority: prios.get(i).copied().unwrap_or(DEFAULT_PRIORITY),
                index: i,
            });
        }
    }

    // Any package's file triggers may match this package's files.
    out.files = file_paths(meta)?;
    Ok(out)
}

/// Absolute paths of a header's files.
pub fn file_paths(meta: &PackageMetadata) -> Result<Vec<String>, String> {
    Ok(meta
        .get_file_paths()
        .map_err(|e| e.to_string())?
        .into_iter()
        .map(|p| p.to_string_lossy().into_owned())
        .collect())
}

fn trigger_kind(flags: u32) -> Kind {
    if flags & SENSE_TRIGGERPREIN != 0 {
        Kind::TriggerPrein
    } else if flags & SENSE_TRIGGERUN != 0 {
        Kind::TriggerUn
    } else if flags & SENSE_TRIGGERPOSTUN != 0 {
        Kind::TriggerPostun
    } else {
        Kind::TriggerIn
    }
}
