//! Running the packages' scriptlets and the treefile's postprocess scripts, as
//! rpm-ostree does, on the tree being composed.
//!
//! ```text
//! tree (union of packages) ─▶ farm (hardlinks into CACHEDIR/bare) ─▶ overlay ─▶ bwrap
//!    sysusers ─▶ every %pre ─▶ owners the %pre scripts created ─▶ %post (+ %triggerin)
//!    ─▶ every %posttrans ─▶ %transfiletriggerin (matching paths on stdin)
//! upper layer ─▶ tree changes (capture)      session /var ─▶ tmpfiles.d lines
//! ```
//!
//! Order: rpm's install order (`order.rs`). `$1` as rpm passes it on a fresh install.
//! What is not run, and why, is reported: `%pretrans` (rpm-ostree never runs them),
//! `%filetriggerin`, `%triggerprein`, rpm-ostree's list of scripts it always ignores, a
//! Lua scriptlet with the `-- rpm-ostree-skip` marker, a shell scriptlet of only
//! comments, and whatever the treefile's `scriptlet-overrides` skip. Any other Lua
//! scriptlet, or one that expands macros at run time, is refused, naming the package
//! and the scriptlet, before anything runs.

pub mod accounts;
pub mod capture;
pub mod farm;
pub mod header;
pub mod initramfs_cache;
pub mod order;
pub mod sandbox;

use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use arbor_repo::objects::S_IFLNK;
use arbor_repo::progress::Progress;
use arbor_repo::tree::{default_dirmeta, MutableTree, TreeEntry};
use arbor_repo::{FileHeader, Repo};
use rayon::prelude::*;

use crate::import::Deferred;
use crate::plan::{BootLocation, ComposePlan};
use header::{Kind, PackageScripts, Script};
use sandbox::{Invocation, SandboxError, Session};

/// The default `--scriptlet-timeout`.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(600);
/// Where the variable-data lines of what scripts left in `/var` go (rpm-ostree's name).
pub const AUTOVAR_CONF: &str = "usr/lib/tmpfiles.d/rpm-ostree-1-autovar.conf";

#[derive(Debug, thiserror::Error)]
pub enum ScriptError {
    #[error("scriptlets: {0}")]
    Setup(String),
    #[error("{}", .0.join("\n"))]
    Refused(Vec<String>),
    #[error("{package}: {scriptlet} scriptlet failed: {error}")]
    Failed {
        package: String,
        scriptlet: String,
        error: SandboxError,
    },
    #[error("{what} failed: {error}")]
    Postprocess { what: String, error: SandboxError },
    #[error("{0}")]
    Accounts(String),
}

impl From<SandboxError> for ScriptError {
    fn from(e: SandboxError) -> Self {
        ScriptError::Setup(e.to_string())
    }
}

/// How scripts run.
#[derive(Debug, Clone)]
pub struct ScriptOpts {
    pub cachedir: PathBuf,
    pub timeout: Duration,
    /// `SOURCE_DATE_EPOCH` inside the sandbox (the commit's timestamp).
    pub timestamp: u64,
    /// The shared package cache, which also keeps initramfs results.
    pub shared: Option<std::sync::Arc<dyn crate::shared::SharedCache>>,
}

/// One package as the scriptlet stage sees it.
#[derive(Debug, Clone)]
pub struct PackageInput {
    pub nevra: String,
    pub rpm: PathBuf,
    /// Entries whose owners were unknown at import.
    pub deferred: Vec<Deferred>,
}

/// A script that ran (or, in a dry run, would run).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Ran {
    pub package: String,
    pub scriptlet: String,
    pub seconds: f64,
}

/// What the scriptlet stage did.
#[derive(Debug, Clone, Default)]
pub struct Report {
    pub ran: Vec<Ran>,
    /// NEVRA → scriptlets not run, each with the reason.
    pub skipped: BTreeMap<String, Vec<String>>,
    /// Paths the scripts wrote or removed.
    pub written: usize,
    pub removed: usize,
    /// Seconds per step (`order`, `farm`, `run`, `capture`).
    pub timings: BTreeMap<String, f64>,
}

/// What to do with one script.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Action {
    Run(Script),
    Skip(String),
}

/// Scripts rpm-ostree never runs (`rust/src/scripts.rs`, `IGNORED_PKG_SCRIPTS`), as
/// `package.script`.
const IGNORED: &[&str] = &[
    "glibc.prein",
    "glibc-headers.prein",
    "coreutils.prein",
    "ca-certificates.prein",
    "libgcc.post",
    "filesystem.posttrans",
    "setup.post",
    "pinentry.prein",
    "fedora-release.posttrans",
    "vagrant.prein",
    "vagrant-libvirt.prein",
    "bash.post",
    "gdb.prein",
    "systemd.transfiletriggerin",
    "man-db.transfiletriggerin",
    "filesystem.transfiletriggerin",
    "nfs-utils.post",
    "microcode_ctl.post",
    "microcode_ctl.posttrans",
];

/// rpm-ostree's shell replacements for Lua scriptlets of known packages (those that
/// need no rpm macros), as `package.script` → (interpreter, body).
const LUA_REPLACEMENTS: &[(&str, &str, &str)] = &[
    (
        "fedora-release.post",
        "/usr/bin/sh",
        "if ! test -L /usr/lib/os-release; then ln -s os.release.d/os-release-fedora /usr/lib/os-release; fi",
    ),
    (
        "fedora-release-coreos.post",
        "/usr/bin/sh",
        "ln -sf os.release.d/os-release-coreos /usr/lib/os-release",
    ),
    (
        "fedora-release-atomichost.post",
        "/usr/bin/sh",
        "ln -sf os.release.d/os-release-atomichost /usr/lib/os-release",
    ),
    ("glibc-common.transfiletriggerin", "/usr/bin/sh", "/sbin/ldconfig"),
    ("glibc.posttrans", "/usr/bin/true", ""),
];

/// rpm-ostree's key for a script (`%pre` is `prein`).
fn key(name: &str, kind: Kind) -> String {
    let short = match kind {
        Kind::Pre => "prein",
        other => other.short(),
    };
    format!("{name}.{short}")
}

fn decide(
    plan: &ComposePlan,
    ps: &PackageScripts,
    kind: Kind,
    script: &Script,
    refused: &mut Vec<String>,
) -> Action {
    if let Some(o) = plan
        .scriptlet_overrides
        .iter()
        .find(|o| o.package == ps.name && kind.matches(&o.scriptlet))
    {
        return match &o.script {
            Some(body) => Action::Run(Script {
                prog: vec!["/bin/sh".into()],
                body: Some(body.clone()),
                flags: 0,
            }),
            None => Action::Skip("skipped by the treefile's scriptlet-overrides".into()),
        };
    }
    let k = key(&ps.name, kind);
    if IGNORED.contains(&k.as_str()) {
        return Action::Skip("rpm-ostree never runs it".into());
    }
    if kind == Kind::Posttrans
        && ps.name.starts_with("kernel")
        && plan.boot_location != BootLocation::KernelInstall
    {
        return Action::Skip("kernel %posttrans: the compose handles the kernel".into());
    }
    if script.is_lua() {
        if let Some((_, prog, body)) = LUA_REPLACEMENTS.iter().find(|(n, ..)| *n == k) {
            return Action::Run(Script {
                prog: vec![prog.to_string()],
                body: (!body.is_empty()).then(|| body.to_string()),
                flags: 0,
            });
        }
        let skip_marker = script.body.as_deref().is_some_and(|b| {
            b.lines()
                .take(10)
                .any(|l| l.starts_with("-- rpm-ostree-skip"))
        });
        if skip_marker {
            return Action::Skip("Lua, marked -- rpm-ostree-skip".into());
        }
        refused.push(format!(
            "Package '{}' has (currently) unsupported <lua> script in '{}'; replace or \
             skip it with the treefile's scriptlet-overrides (package: {}, scriptlet: {})",
            ps.nevra,
            kind.label(),
            ps.name,
            kind.short()
        ));
        return Action::Skip("refused".into());
    }
    if script.flags & (header::SCRIPT_FLAG_EXPAND | header::SCRIPT_FLAG_QFORMAT) != 0 {
        refused.push(format!(
            "Package '{}': its {} scriptlet expands rpm macros or query formats when it \
             runs (-e/-q), which arbor cannot do; replace or skip it with the treefile's \
             scriptlet-overrides",
            ps.nevra,
            kind.label()
        ));
        return Action::Skip("refused".into());
    }
    if script.is_noop_shell() {
        return Action::Skip("does nothing (only comments, `:` or `exit 0`)".into());
    }
    Action::Run(script.clone())
}

/// `E:V-R` of a trigger condition against a package's NEVRA-derived EVR.
fn evr_cmp(a: &str, b: &str) -> Ordering {
    let split = |s: &str| -> (u64, String, Option<String>) {
        let (e, rest) = match s.split_once(':') {
            Some((e, r)) => (e.parse().unwrap_or(0), r),
            None => (0, s),
        };
        match rest.rsplit_once('-') {
            Some((v, r)) => (e, v.to_string(), Some(r.to_string())),
            None => (e, rest.to_string(), None),
        }
    };
    let (ea, va, ra) = split(a);
    let (eb, vb, rb) = split(b);
    ea.cmp(&eb)
        .then_with(|| crate::rpmdb::rpmvercmp(&va, &vb))
        .then_with(|| match (ra, rb) {
            (Some(x), Some(y)) => crate::rpmdb::rpmvercmp(&x, &y),
            _ => Ordering::Equal,
        })
}

/// Whether package `(name, evr)` satisfies a trigger condition.
fn fires(cond: &(String, u32, String), name: &str, evr: &str) -> bool {
    if cond.0 != name {
        return false;
    }
    let sense = cond.1;
    if sense == 0 || cond.2.is_empty() {
        return true;
    }
    match evr_cmp(evr, &cond.2) {
        Ordering::Less => sense & header::SENSE_LESS != 0,
        Ordering::Equal => sense & header::SENSE_EQUAL != 0,
        Ordering::Greater => sense & header::SENSE_GREATER != 0,
    }
}

/// `name-[e:]v-r.arch` → `[e:]v-r`.
fn evr_of(nevra: &str, name: &str) -> String {
    let rest = nevra.strip_prefix(name).unwrap_or(nevra);
    let rest = rest.strip_prefix('-').unwrap_or(rest);
    rest.rsplit_once('.')
        .map_or(rest, |(evr, _)| evr)
        .to_string()
}

/// One step of the run, in order.
#[derive(Debug, Clone)]
struct Step {
    package: usize,
    kind: Kind,
    script: Script,
    args: Vec<String>,
    stdin: Vec<u8>,
    /// `%triggerin` fired by this package.
    by: Option<String>,
}

/// The full schedule: what runs, in order, and what is skipped.
#[derive(Debug, Default)]
struct Schedule {
    sysusers: Option<String>,
    pre: Vec<Step>,
    post: Vec<Step>,
    posttrans: Vec<Step>,
    filetriggers: Vec<Step>,
    skipped: BTreeMap<String, Vec<String>>,
}

impl Schedule {
    fn len(&self) -> usize {
        self.sysusers.is_some() as usize
            + self.pre.len()
            + self.post.len()
            + self.posttrans.len()
            + self.filetriggers.len()
    }
}

/// Read every package's scripts and decide what runs, in rpm's order. Refusals (Lua,
/// run-time macros) are collected and returned together.
fn schedule(
    plan: &ComposePlan,
    pkgs: &[PackageInput],
    scratch: &Path,
    tree: &MutableTree,
    repo: &Repo,
) -> Result<(Schedule, Vec<PackageScripts>, Vec<usize>), ScriptError> {
    let scripts: Vec<PackageScripts> = pkgs
        .par_iter()
        .map(|p| header::read(&p.rpm, &p.nevra).map_err(|e| ScriptError::Setup(e.to_string())))
        .collect::<Result<_, _>>()?;
    let mut s = Schedule::default();
    let mut refused = Vec::new();
    let mut run_pre = vec![None; pkgs.len()];
    let mut run_post = vec![None; pkgs.len()];
    let mut run_posttrans = vec![None; pkgs.len()];
    let skip = |s: &mut Schedule, nevra: &str, what: String| {
        s.skipped.entry(nevra.to_string()).or_default().push(what);
    };
    let mut any = false;
    for (i, ps) in scripts.iter().enumerate() {
        for (kind, script) in &ps.scripts {
            let slot = match kind {
                Kind::Pre => &mut run_pre[i],
                Kind::Post => &mut run_post[i],
                Kind::Posttrans => &mut run_posttrans[i],
                Kind::Pretrans => {
                    skip(
                        &mut s,
                        &ps.nevra,
                        "%pretrans: not run (as rpm-ostree)".into(),
                    );
                    continue;
                }
                // Erase and verify scripts have no part in an install.
                _ => continue,
            };
            match decide(plan, ps, *kind, script, &mut refused) {
                Action::Run(script) => {
                    *slot = Some(script);
                    any = true;
                }
                Action::Skip(why) => skip(&mut s, &ps.nevra, format!("{}: {why}", kind.label())),
            }
        }
        for t in &ps.triggers {
            match t.kind {
                Kind::TriggerIn => {
                    if let Action::Skip(why) = decide(plan, ps, t.kind, &t.script, &mut refused) {
                        skip(&mut s, &ps.nevra, format!("%triggerin: {why}"));
                    } else {
                        any = true;
                    }
                }
                Kind::TriggerPrein => skip(
                    &mut s,
                    &ps.nevra,
                    "%triggerprein: not run (rpm-ostree refuses them)".into(),
                ),
                _ => {}
            }
        }
        for ft in &ps.file_triggers {
            match ft.kind {
                Kind::TransFileTriggerIn => {
                    if let Action::Skip(why) = decide(plan, ps, ft.kind, &ft.script, &mut refused) {
                        skip(&mut s, &ps.nevra, format!("%transfiletriggerin: {why}"));
                    } else {
                        any = true;
                    }
                }
                Kind::FileTriggerIn => skip(
                    &mut s,
                    &ps.nevra,
                    "%filetriggerin: not run (as rpm-ostree)".into(),
                ),
                _ => {}
            }
        }
    }
    if !refused.is_empty() {
        return Err(ScriptError::Refused(refused));
    }
    s.sysusers = sysusers_command(plan, tree, repo)?;
    if !any && s.sysusers.is_none() {
        return Ok((s, scripts, (0..pkgs.len()).collect()));
    }
    let order = order::install_order(
        &pkgs
            .iter()
            .map(|p| (p.nevra.clone(), p.rpm.clone()))
            .collect::<Vec<_>>(),
        scratch,
    )
    .map_err(ScriptError::Setup)?;
    let one = || vec!["1".to_string()];
    for &i in &order {
        if let Some(script) = run_pre[i].take() {
            s.pre.push(Step {
                package: i,
                kind: Kind::Pre,
                script,
                args: one(),
                stdin: Vec::new(),
                by: None,
            });
        }
    }
    // %post in order; after each, the %triggerin it fires: triggers of packages
    // already installed (itself included) on it, and its own on packages installed
    // before it. Each (trigger, triggering package) pair runs once.
    let mut installed: Vec<usize> = Vec::new();
    let mut fired: HashSet<(usize, usize, usize)> = HashSet::new();
    for &i in &order {
        if let Some(script) = run_post[i].take() {
            s.post.push(Step {
                package: i,
                kind: Kind::Post,
                script,
                args: one(),
                stdin: Vec::new(),
                by: None,
            });
        }
        installed.push(i);
        let mut pairs: Vec<(usize, usize)> = installed.iter().map(|&o| (o, i)).collect();
        pairs.extend(installed.iter().filter(|&&t| t != i).map(|&t| (i, t)));
        for (owner, target) in pairs {
            let tps = &scripts[target];
            let evr = evr_of(&tps.nevra, &tps.name);
            for (ti, t) in scripts[owner].triggers.iter().enumerate() {
                if t.kind != Kind::TriggerIn
                    || !t.conditions.iter().any(|c| fires(c, &tps.name, &evr))
                    || !fired.insert((owner, ti, target))
                {
                    continue;
                }
                if let Action::Run(script) =
                    decide(plan, &scripts[owner], t.kind, &t.script, &mut Vec::new())
                {
                    s.post.push(Step {
                        package: owner,
                        kind: Kind::TriggerIn,
                        script,
                        args: vec!["1".into(), "1".into()],
                        stdin: Vec::new(),
                        by: Some(tps.nevra.clone()),
                    });
                }
            }
        }
    }
    for &i in &order {
        if let Some(script) = run_posttrans[i].take() {
            s.posttrans.push(Step {
                package: i,
                kind: Kind::Posttrans,
                script,
                args: one(),
                stdin: Vec::new(),
                by: None,
            });
        }
    }
    // %transfiletriggerin: highest priority first, then install order, then header
    // index; stdin lists every file of the transaction under one of its prefixes
    // (rpm's string-prefix match), package by package in install order.
    let mut fts: Vec<(u32, usize, usize, &header::FileTrigger)> = Vec::new();
    for (pos, &i) in order.iter().enumerate() {
        for ft in &scripts[i].file_triggers {
            if ft.kind == Kind::TransFileTriggerIn {
                fts.push((ft.priority, pos, ft.index, ft));
            }
        }
    }
    fts.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)).then(a.2.cmp(&b.2)));
    for (_, pos, _, ft) in fts {
        let owner = order[pos];
        let Action::Run(script) =
            decide(plan, &scripts[owner], ft.kind, &ft.script, &mut Vec::new())
        else {
            continue;
        };
        let mut stdin = String::new();
        for &j in &order {
            let mut matched: Vec<&String> = scripts[j]
                .files
                .iter()
                .filter(|f| ft.prefixes.iter().any(|p| f.starts_with(p.as_str())))
                .collect();
            matched.sort();
            for f in matched {
                stdin.push_str(f);
                stdin.push('\n');
            }
        }
        if stdin.is_empty() {
            continue;
        }
        s.filetriggers.push(Step {
            package: owner,
            kind: Kind::TransFileTriggerIn,
            script,
            args: vec!["0".into()],
            stdin: stdin.into_bytes(),
            by: None,
        });
    }
    Ok((s, scripts, order))
}

/// The `sysusers` key: `compose-forced` runs `systemd-sysusers`; `compose-auto` (the
/// default) runs what the tree's `%__systemd_sysusers` macro names, when it has one.
fn sysusers_command(
    plan: &ComposePlan,
    tree: &MutableTree,
    repo: &Repo,
) -> Result<Option<String>, ScriptError> {
    match plan.sysusers.as_deref() {
        Some("compose-forced") => Ok(Some("/usr/bin/systemd-sysusers".into())),
        _ => {
            let Some(TreeEntry::File(c)) = tree.lookup("usr/lib/rpm/macros.d/macros.systemd")
            else {
                return Ok(None);
            };
            let (_, content) = repo
                .read_file(c)
                .map_err(|e| ScriptError::Setup(e.to_string()))?;
            Ok(String::from_utf8_lossy(&content)
                .lines()
                .find_map(|l| l.strip_prefix("%__systemd_sysusers"))
                .map(|v| v.trim().to_string())
                .filter(|v| v.starts_with('/') && !v.contains(['%', '$', '`'])))
        }
    }
}

/// `(name, target)` of the tree's top-level symlinks into `usr/` (bin → usr/bin).
fn root_links(repo: &Repo, tree: &MutableTree) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for (name, c) in &tree.files {
        if let Ok((h, _)) = repo.read_file_header(c) {
            if h.mode & 0o170000 == S_IFLNK && h.symlink_target.starts_with("usr/") {
                out.push((name.clone(), h.symlink_target.clone()));
            }
        }
    }
    out
}

/// A session over the tree's `/usr`: the persistent farm `label` brought up to date,
/// and a fresh directory under the cache for the overlay's upper layer and the rest.
fn start_session(
    repo: &Repo,
    tree: &mut MutableTree,
    opts: &ScriptOpts,
    label: &str,
) -> Result<(Session, PathBuf, farm::Farm), ScriptError> {
    sandbox::check_tools()?;
    tree.ensure_dir("usr/etc", &default_dirmeta())
        .map_err(|e| ScriptError::Setup(e.to_string()))?;
    // bwrap and the overlay resolve paths from other working directories.
    let cachedir = std::path::absolute(&opts.cachedir)
        .map_err(|e| ScriptError::Setup(format!("{}: {e}", opts.cachedir.display())))?;
    let dir = cachedir
        .join("tmp")
        .join(format!("{label}-{}", std::process::id()));
    farm::remove_tree(&dir).map_err(|e| ScriptError::Setup(format!("{}: {e}", dir.display())))?;
    std::fs::create_dir_all(&dir)
        .map_err(|e| ScriptError::Setup(format!("{}: {e}", dir.display())))?;
    let usr = match tree.lookup("usr") {
        Some(TreeEntry::Dir(d)) => d.clone(),
        _ => MutableTree::default(),
    };
    let cache = farm::BareCache::new(&cachedir);
    // One farm for every stage: between stages the tree changes little, and a sync
    // touches only the directories that changed.
    let farm = farm::Farm::open(&cachedir, "tree").map_err(ScriptError::Setup)?;
    let updated = farm.sync(repo, &cache, &usr).map_err(ScriptError::Setup)?;
    tracing::debug!("farm {label}: {updated} directories updated");
    let env = vec![
        ("PATH".into(), "/usr/sbin:/usr/bin:/sbin:/bin".into()),
        ("LANG".into(), "C".into()),
        ("SYSTEMD_OFFLINE".into(), "1".into()),
        ("SOURCE_DATE_EPOCH".into(), opts.timestamp.to_string()),
    ];
    let session = Session::start(
        &dir,
        &farm.lower(),
        root_links(repo, tree),
        opts.timeout,
        env,
    )?;
    if let Some(TreeEntry::Dir(modules)) = tree.lookup("usr/lib/modules") {
        for (kver, d) in &modules.dirs {
            for f in ["vmlinuz", "config", "System.map"] {
                if d.files.contains_key(f) {
                    session.boot_link(
                        &format!("{f}-{kver}"),
                        &format!("/usr/lib/modules/{kver}/{f}"),
                    )?;
                }
            }
        }
    }
    Ok((session, dir, farm))
}

/// Apply what a session changed to the tree and clean up its directory.
fn finish_session(
    repo: &Repo,
    tree: &mut MutableTree,
    session: Session,
    dir: &Path,
) -> Result<(usize, usize), ScriptError> {
    let upper = session.upper();
    let var = session.var();
    let t = Instant::now();
    session.finish();
    tracing::debug!("session ended in {:.3}s", t.elapsed().as_secs_f64());
    let t = Instant::now();
    let captured = capture::apply(repo, tree, &upper).map_err(ScriptError::Setup)?;
    tracing::debug!(
        "captured {} written, {} removed in {:.3}s",
        captured.written.len(),
        captured.removed.len(),
        t.elapsed().as_secs_f64()
    );
    let t = Instant::now();
    var_to_tmpfiles(repo, tree, &var)?;
    tracing::debug!("/var to tmpfiles.d in {:.3}s", t.elapsed().as_secs_f64());
    let t = Instant::now();
    if let Err(e) = farm::remove_tree(dir) {
        tracing::warn!("{}: {e}", dir.display());
    }
    tracing::debug!(
        "session directory removed in {:.3}s",
        t.elapsed().as_secs_f64()
    );
    Ok((captured.written.len(), captured.removed.len()))
}

fn argv(
    session: &mut Session,
    step_script: &Script,
    args: &[String],
) -> Result<Vec<String>, ScriptError> {
    let mut argv = step_script.prog.clone();
    if let Some(body) = &step_script.body {
        argv.push(session.script_file(body)?);
        argv.extend(args.iter().cloned());
    }
    Ok(argv)
}

/// Run the packages' scriptlets on `tree` (the union of their trees, with `/etc` at
/// `usr/etc`), then give the entries whose owners were unknown at import their owners.
/// With `dry_run`, only decide and order (the report lists what would run).
pub fn run_package_scripts(
    repo: &Repo,
    tree: &mut MutableTree,
    plan: &ComposePlan,
    pkgs: &[PackageInput],
    opts: &ScriptOpts,
    progress: &dyn Progress,
    dry_run: bool,
) -> Result<Report, ScriptError> {
    let scratch = opts
        .cachedir
        .join("tmp")
        .join(format!("order-{}", std::process::id()));
    let _ = farm::remove_tree(&scratch);
    let t0 = Instant::now();
    let scheduled = schedule(plan, pkgs, &scratch, tree, repo);
    let _ = farm::remove_tree(&scratch);
    let (sched, scripts, _order) = scheduled?;
    let mut report = Report {
        skipped: sched.skipped.clone(),
        ..Default::default()
    };
    report
        .timings
        .insert("order".into(), t0.elapsed().as_secs_f64());
    let label = |st: &Step| match &st.by {
        Some(by) => format!("{} ({by})", st.kind.label()),
        None => st.kind.label().to_string(),
    };
    if dry_run {
        for st in sched
            .pre
            .iter()
            .chain(&sched.post)
            .chain(&sched.posttrans)
            .chain(&sched.filetriggers)
        {
            report.ran.push(Ran {
                package: scripts[st.package].nevra.clone(),
                scriptlet: label(st),
                seconds: 0.0,
            });
        }
        return Ok(report);
    }
    let deferred: Vec<&Deferred> = pkgs.iter().flat_map(|p| &p.deferred).collect();
    if sched.len() == 0 {
        // Nothing runs: owners come from the tree's own databases.
        resolve_owners_in_tree(repo, tree, &deferred)?;
        return Ok(report);
    }
    let t0 = Instant::now();
    let (mut session, dir, _farm) = start_session(repo, tree, opts, "scriptlets")?;
    report
        .timings
        .insert("farm".into(), t0.elapsed().as_secs_f64());
    let t0 = Instant::now();
    progress.start("scriptlets", Some(sched.len() as u64));
    let result = (|| -> Result<(), ScriptError> {
        let run =
            |session: &mut Session, st: &Step, report: &mut Report| -> Result<(), ScriptError> {
                let t = Instant::now();
                let inv = Invocation {
                    argv: argv(session, &st.script, &st.args)?,
                    stdin: st.stdin.clone(),
                };
                let package = scripts[st.package].nevra.clone();
                tracing::debug!("{package}: running {}", label(st));
                match session.run(&inv) {
                    Ok(out) => {
                        for l in out.lines() {
                            tracing::debug!("{package} {}: {l}", st.kind.label());
                        }
                    }
                    Err(SandboxError::Setup(e)) => return Err(ScriptError::Setup(e)),
                    Err(error) => {
                        return Err(ScriptError::Failed {
                            package,
                            scriptlet: label(st),
                            error,
                        })
                    }
                }
                report.ran.push(Ran {
                    package,
                    scriptlet: label(st),
                    seconds: t.elapsed().as_secs_f64(),
                });
                progress.inc(1);
                Ok(())
            };
        if let Some(cmd) = &sched.sysusers {
            let t = Instant::now();
            session
                .run(&Invocation {
                    argv: vec![cmd.clone()],
                    stdin: Vec::new(),
                })
                .map_err(|error| ScriptError::Failed {
                    package: "(treefile sysusers)".into(),
                    scriptlet: cmd.clone(),
                    error,
                })?;
            report.ran.push(Ran {
                package: "(sysusers)".into(),
                scriptlet: cmd.clone(),
                seconds: t.elapsed().as_secs_f64(),
            });
            progress.inc(1);
        }
        for st in &sched.pre {
            run(&mut session, st, &mut report)?;
        }
        resolve_owners_in_session(&session, &deferred)?;
        for st in sched
            .post
            .iter()
            .chain(&sched.posttrans)
            .chain(&sched.filetriggers)
        {
            run(&mut session, st, &mut report)?;
        }
        Ok(())
    })();
    progress.end(result.is_ok());
    if let Err(e) = result {
        drop(session);
        let _ = farm::remove_tree(&dir);
        return Err(e);
    }
    report
        .timings
        .insert("run".into(), t0.elapsed().as_secs_f64());
    let t0 = Instant::now();
    let (written, removed) = finish_session(repo, tree, session, &dir)?;
    report
        .timings
        .insert("capture".into(), t0.elapsed().as_secs_f64());
    report.written = written;
    report.removed = removed;
    Ok(report)
}

/// The treefile's `postprocess` scripts (each written to
/// `/usr/bin/rpmostree-postprocess-inline-N` and run by its path, so its `#!` line picks
/// the interpreter), then `postprocess-script` (as
/// `/usr/bin/rpmostree-treefile-postprocess-script`); each file is removed after it
/// ran, as rpm-ostree does.
pub fn run_postprocess(
    repo: &Repo,
    tree: &mut MutableTree,
    plan: &ComposePlan,
    opts: &ScriptOpts,
    progress: &dyn Progress,
) -> Result<Vec<Ran>, ScriptError> {
    let mut jobs: Vec<(String, String, Vec<u8>)> = Vec::new();
    for (i, text) in plan.postprocess.iter().enumerate() {
        jobs.push((
            format!("postprocess script #{} of the treefile", i + 1),
            format!("usr/bin/rpmostree-postprocess-inline-{i}"),
            text.clone().into_bytes(),
        ));
    }
    if let Some(p) = &plan.postprocess_script {
        let data = crate::input::read_capped(p, crate::input::MAX_TEXT)
            .map_err(|e| ScriptError::Setup(format!("postprocess-script {}: {e}", p.display())))?;
        jobs.push((
            format!("postprocess-script {}", p.display()),
            "usr/bin/rpmostree-treefile-postprocess-script".into(),
            data,
        ));
    }
    if jobs.is_empty() {
        return Ok(Vec::new());
    }
    let (mut session, dir, _farm) = start_session(repo, tree, opts, "postprocess")?;
    progress.start("postprocess", Some(jobs.len() as u64));
    let mut ran = Vec::new();
    let result = (|| -> Result<(), ScriptError> {
        for (what, path, data) in &jobs {
            let host = session.root().join(path);
            std::fs::write(&host, data)
                .map_err(|e| ScriptError::Setup(format!("{}: {e}", host.display())))?;
            std::fs::set_permissions(&host, std::fs::Permissions::from_mode(0o755))
                .map_err(|e| ScriptError::Setup(format!("{}: {e}", host.display())))?;
            let t = Instant::now();
            let r = session.run(&Invocation {
                argv: vec![format!("/{path}")],
                stdin: Vec::new(),
            });
            let _ = std::fs::remove_file(&host);
            r.map_err(|error| ScriptError::Postprocess {
                what: what.clone(),
                error,
            })?;
            ran.push(Ran {
                package: "(treefile)".into(),
                scriptlet: what.clone(),
                seconds: t.elapsed().as_secs_f64(),
            });
            progress.inc(1);
        }
        Ok(())
    })();
    progress.end(result.is_ok());
    if let Err(e) = result {
        drop(session);
        let _ = farm::remove_tree(&dir);
        return Err(e);
    }
    finish_session(repo, tree, session, &dir)?;
    Ok(ran)
}

/// Which initramfs generator a tree has.
fn initramfs_generator(tree: &MutableTree) -> Option<&'static str> {
    ["usr/bin/dracut", "usr/sbin/dracut", "usr/sbin/mkinitramfs"]
        .into_iter()
        .find(|p| matches!(tree.lookup(p), Some(TreeEntry::File(_))))
}

/// The initramfs of kernel `kver`, made by the tree's own generator in the sandbox, as
/// rpm-ostree does: `depmod` first, then dracut (`--no-hostonly --reproducible`, plus
/// the treefile's `initramfs-args`) or else initramfs-tools' `mkinitramfs`, written to
/// `/usr/lib/modules/KVER/initramfs.img` (0644). A kernel without a generator is an
/// error naming what is missing (`no-initramfs: true` skips the step).
pub fn run_initramfs(
    repo: &Repo,
    tree: &mut MutableTree,
    plan: &ComposePlan,
    kver: &str,
    opts: &ScriptOpts,
    progress: &dyn Progress,
) -> Result<Ran, ScriptError> {
    let generator = initramfs_generator(tree).ok_or_else(|| {
        ScriptError::Setup(format!(
            "the tree has kernel {kver} but no initramfs generator (dracut, or \
             initramfs-tools' mkinitramfs); add one to the packages, or set \
             `no-initramfs: true`"
        ))
    })?;
    let image = format!("/usr/lib/modules/{kver}/initramfs.img");
    // A package's own initramfs goes (rpm-ostree drops RPM-generated ones).
    tree.remove(&image);
    let mut cmd = vec![format!("/{generator}")];
    if generator.ends_with("dracut") {
        cmd.extend(["--no-hostonly", "--reproducible", "--tmpdir=/tmp", "-f"].map(String::from));
        cmd.extend(plan.initramfs_args.iter().cloned());
        cmd.extend([image.clone(), kver.to_string()]);
    } else {
        cmd.extend(["-o".to_string(), image.clone()]);
        cmd.extend(plan.initramfs_args.iter().cloned());
        cmd.push(kver.to_string());
    }
    let t = Instant::now();
    let before = initramfs_cache::before(repo, tree, &cmd, opts.timestamp);
    let mut replace = false;
    if let Some(b) = &before {
        match initramfs_cache::load(repo, opts, b) {
            initramfs_cache::Found::Tree(after) => {
                *tree = after;
                progress.start("initramfs (cached)", None);
                progress.finish();
                tracing::info!(
                    "initramfs: from the cache (key {}: the same tree, command and timestamp)",
                    b.key
                );
                return Ok(Ran {
                    package: "(initramfs)".into(),
                    scriptlet: cmd.join(" "),
                    seconds: t.elapsed().as_secs_f64(),
                });
            }
            initramfs_cache::Found::Missing { replace: r } => replace = r,
        }
    }
    let (mut session, dir, _farm) = start_session(repo, tree, opts, "initramfs")?;
    progress.start("initramfs", None);
    let what = format!("initramfs ({})", cmd.join(" "));
    let result = (|| -> Result<(), ScriptError> {
        let depmod = ["usr/sbin/depmod", "usr/bin/depmod"]
            .into_iter()
            .find(|p| matches!(tree.lookup(p), Some(TreeEntry::File(_))));
        if let Some(depmod) = depmod {
            session
                .run(&Invocation {
                    argv: vec![format!("/{depmod}"), "-a".into(), kver.into()],
                    stdin: Vec::new(),
                })
                .map_err(|error| ScriptError::Postprocess {
                    what: format!("depmod -a {kver}"),
                    error,
                })?;
        }
        session
            .run(&Invocation {
                argv: cmd.clone(),
                stdin: Vec::new(),
            })
            .map_err(|error| ScriptError::Postprocess {
                what: what.clone(),
                error,
            })?;
        let made = session.root().join(image.trim_start_matches('/'));
        let meta = std::fs::metadata(&made).map_err(|e| {
            ScriptError::Setup(format!("{what} exited 0 but wrote no {image}: {e}"))
        })?;
        if meta.len() == 0 {
            return Err(ScriptError::Setup(format!("{what} wrote an empty {image}")));
        }
        std::fs::set_permissions(&made, std::fs::Permissions::from_mode(0o644))
            .map_err(|e| ScriptError::Setup(format!("{}: {e}", made.display())))?;
        Ok(())
    })();
    progress.end(result.is_ok());
    if let Err(e) = result {
        drop(session);
        let _ = farm::remove_tree(&dir);
        return Err(e);
    }
    finish_session(repo, tree, session, &dir)?;
    if let Some(b) = &before {
        initramfs_cache::store(repo, opts, b, tree, replace);
    }
    Ok(Ran {
        package: "(initramfs)".into(),
        scriptlet: cmd.join(" "),
        seconds: t.elapsed().as_secs_f64(),
    })
}

/// Name → id.
type Ids = BTreeMap<String, u32>;

/// The users database of a session's merged tree: (user → uid, group → gid).
fn ids_from(passwd: &str, group: &str) -> Result<(Ids, Ids), ScriptError> {
    let p = accounts::parse(passwd, false).map_err(ScriptError::Accounts)?;
    let g = accounts::parse(group, true).map_err(ScriptError::Accounts)?;
    let first = |v: Vec<accounts::Entry>| {
        let mut m = BTreeMap::new();
        for e in v {
            m.entry(e.name).or_insert(e.id);
        }
        m
    };
    Ok((first(p), first(g)))
}

/// What a deferred entry's owner resolves to: `(uid, gid, perms)`, or `None` (with a
/// warning) when a name is still unknown — it stays root-owned without setuid/setgid,
/// as rpm installs it.
fn resolve(
    d: &Deferred,
    users: &Ids,
    groups: &Ids,
    warned: &mut BTreeSet<String>,
) -> Option<(u32, u32, u32)> {
    let uid = if d.user == "root" {
        Some(0)
    } else {
        users.get(&d.user).copied()
    };
    let gid = if d.group == "root" {
        Some(0)
    } else {
        groups.get(&d.group).copied()
    };
    let mut perms = d.perms;
    if uid.is_none() {
        if warned.insert(format!("u:{}", d.user)) {
            tracing::warn!(
                "/{}: user {} does not exist after the scriptlets - using root",
                d.path,
                d.user
            );
        }
        perms &= !0o4000;
    }
    if gid.is_none() {
        if warned.insert(format!("g:{}", d.group)) {
            tracing::warn!(
                "/{}: group {} does not exist after the scriptlets - using root",
                d.path,
                d.group
            );
        }
        perms &= !0o2000;
    }
    if uid.is_none() && gid.is_none() {
        return None;
    }
    Some((uid.unwrap_or(0), gid.unwrap_or(0), perms))
}

/// After `%pre`: chown/chmod deferred entries in the merged tree (rpm-ostree's
/// ownership overrides); a copy-up puts them in the upper layer.
fn resolve_owners_in_session(session: &Session, deferred: &[&Deferred]) -> Result<(), ScriptError> {
    if deferred.is_empty() {
        return Ok(());
    }
    let root = session.root();
    let read = |f: &str| std::fs::read_to_string(root.join("usr/etc").join(f)).unwrap_or_default();
    let (users, groups) = ids_from(&read("passwd"), &read("group"))?;
    let mut warned = BTreeSet::new();
    for d in deferred {
        let Some((uid, gid, perms)) = resolve(d, &users, &groups, &mut warned) else {
            continue;
        };
        let p = root.join(&d.path);
        let Ok(meta) = std::fs::symlink_metadata(&p) else {
            continue; // removed by a script
        };
        let e = |e: std::io::Error| ScriptError::Setup(format!("{}: {e}", p.display()));
        std::os::unix::fs::lchown(&p, Some(uid), Some(gid)).map_err(e)?;
        if !meta.file_type().is_symlink() {
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(perms)).map_err(e)?;
        }
        let _ = meta.mode();
    }
    Ok(())
}

/// Without a sandbox: rewrite the deferred entries' objects with the owners the
/// tree's own passwd/group give.
fn resolve_owners_in_tree(
    repo: &Repo,
    tree: &mut MutableTree,
    deferred: &[&Deferred],
) -> Result<(), ScriptError> {
    if deferred.is_empty() {
        return Ok(());
    }
    let read = |t: &MutableTree, f: &str| -> String {
        match t.lookup(&format!("usr/etc/{f}")) {
            Some(TreeEntry::File(c)) => repo
                .read_file(c)
                .map(|(_, b)| String::from_utf8_lossy(&b).into_owned())
                .unwrap_or_default(),
            _ => String::new(),
        }
    };
    let (users, groups) = ids_from(&read(tree, "passwd"), &read(tree, "group"))?;
    let mut warned = BTreeSet::new();
    let err = |e: arbor_repo::RepoError| ScriptError::Setup(e.to_string());
    for d in deferred {
        let Some((uid, gid, perms)) = resolve(d, &users, &groups, &mut warned) else {
            continue;
        };
        match tree.lookup(&d.path) {
            Some(TreeEntry::File(c)) => {
                let c = *c;
                let (h, content) = repo.read_file(&c).map_err(err)?;
                let h = FileHeader {
                    uid,
                    gid,
                    mode: if h.is_symlink() {
                        h.mode
                    } else {
                        (h.mode & 0o170000) | perms
                    },
                    ..h
                };
                let new = h.checksum(&content);
                repo.write_file_object(&new, &h, &content).map_err(err)?;
                tree.insert_file(&d.path, new, &default_dirmeta())
                    .map_err(|e| ScriptError::Setup(e.to_string()))?;
            }
            Some(TreeEntry::Dir(_)) => {
                if let Ok(dir) = tree.ensure_dir(&d.path, &default_dirmeta()) {
                    dir.meta.uid = uid;
                    dir.meta.gid = gid;
                    dir.meta.mode = (dir.meta.mode & 0o170000) | perms;
                }
            }
            None => {}
        }
    }
    Ok(())
}

/// Paths tmpfiles.d fragments in the tree already declare.
fn declared_tmpfiles(repo: &Repo, tree: &MutableTree) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for dir in ["usr/lib/tmpfiles.d", crate::import::TMPFILES_DIR] {
        let Some(TreeEntry::Dir(d)) = tree.lookup(dir) else {
            continue;
        };
        for c in d.files.values() {
            if let Ok((h, content)) = repo.read_file(c) {
                if h.is_symlink() {
                    continue;
                }
                for l in String::from_utf8_lossy(&content).lines() {
                    if let Some(p) = l.split_whitespace().nth(1) {
                        out.insert(p.to_string());
                    }
                }
            }
        }
    }
    out
}

/// What scripts left under the session's `/var` becomes tmpfiles.d lines (directories
/// and symlinks; files are dropped with a warning, as rpm-ostree does), in
/// `usr/lib/tmpfiles.d/rpm-ostree-1-autovar.conf`, skipping paths already declared.
fn var_to_tmpfiles(repo: &Repo, tree: &mut MutableTree, var: &Path) -> Result<(), ScriptError> {
    let names = |f: &str| -> BTreeMap<u32, String> {
        let text = match tree.lookup(&format!("usr/etc/{f}")) {
            Some(TreeEntry::File(c)) => repo
                .read_file(c)
                .map(|(_, b)| String::from_utf8_lossy(&b).into_owned())
                .unwrap_or_default(),
            _ => String::new(),
        };
        accounts::parse(&text, f == "group")
            .unwrap_or_default()
            .into_iter()
            .map(|e| (e.id, e.name))
            .collect()
    };
    let (users, groups) = (names("passwd"), names("group"));
    let declared = declared_tmpfiles(repo, tree);
    let mut lines = Vec::new();
    let mut stack = vec![(var.to_path_buf(), "/var".to_string())];
    while let Some((dir, abs)) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&dir) else {
            continue;
        };
        let mut entries: Vec<_> = rd.flatten().collect();
        entries.sort_by_key(|e| e.file_name());
        for e in entries {
            let name = e.file_name().to_string_lossy().into_owned();
            let path = format!("{abs}/{name}");
            if path == "/var/tmp" || path.contains(|c: char| c.is_whitespace() || c.is_control()) {
                tracing::warn!("{path:?}: a scriptlet left a path in /var that cannot be a tmpfiles.d line; it is not kept");
                continue;
            }
            let Ok(m) = std::fs::symlink_metadata(e.path()) else {
                continue;
            };
            if m.file_type().is_dir() {
                if !declared.contains(&path) {
                    lines.push(format!(
                        "d {path} {:04o} {} {} - -",
                        m.mode() & 0o7777,
                        users
                            .get(&m.uid())
                            .cloned()
                            .unwrap_or_else(|| m.uid().to_string()),
                        groups
                            .get(&m.gid())
                            .cloned()
                            .unwrap_or_else(|| m.gid().to_string())
                    ));
                }
                stack.push((e.path(), path));
            } else if m.file_type().is_symlink() {
                if !declared.contains(&path) {
                    if let Ok(t) = std::fs::read_link(e.path()) {
                        let t = t.to_string_lossy();
                        crate::import::paths::tmpfiles_safe("symlink target", &t).map_err(
                            |why| ScriptError::Setup(format!("a scriptlet's {path}: {why}")),
                        )?;
                        lines.push(format!("L {path} - - - - {t}"));
                    }
                }
            } else {
                tracing::warn!("{path}: a scriptlet left a file in /var; it is not kept (only directories and symlinks become tmpfiles.d lines)");
            }
        }
    }
    if lines.is_empty() {
        return Ok(());
    }
    lines.sort();
    let mut text = match tree.lookup(AUTOVAR_CONF) {
        Some(TreeEntry::File(c)) => repo
            .read_file(c)
            .map(|(_, b)| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default(),
        _ => "# This file was generated by rpm-ostree.\n".to_string(),
    };
    for l in lines {
        text.push_str(&l);
        text.push('\n');
    }
    let h = FileHeader {
        uid: 0,
        gid: 0,
        mode: arbor_repo::objects::S_IFREG | 0o644,
        symlink_target: String::new(),
        xattrs: Default::default(),
    };
    let c = h.checksum(text.as_bytes());
    repo.write_file_object(&c, &h, text.as_bytes())
        .map_err(|e| ScriptError::Setup(e.to_string()))?;
    tree.insert_file(AUTOVAR_CONF, c, &default_dirmeta())
        .map_err(|e| ScriptError::Setup(e.to_string()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trigger_conditions() {
        let c = |f: u32, v: &str| ("b".to_string(), f, v.to_string());
        assert!(fires(&c(0, ""), "b", "1.0-1"));
        assert!(!fires(&c(0, ""), "a", "1.0-1"));
        let ge = header::SENSE_GREATER | header::SENSE_EQUAL;
        assert!(fires(&c(ge, "1.0"), "b", "1.0-1"));
        assert!(fires(&c(ge, "1.0"), "b", "2.0-1"));
        assert!(!fires(&c(header::SENSE_LESS, "1.0"), "b", "1.0-1"));
        assert!(fires(&c(header::SENSE_LESS, "1:0.5"), "b", "2.0-1"));
        assert_eq!(evr_of("tiny-2:1.2-3.x86_64", "tiny"), "2:1.2-3");
    }

    #[test]
    fn keys_are_rpm_ostrees() {
        assert_eq!(key("glibc", Kind::Pre), "glibc.prein");
        assert_eq!(
            key("systemd", Kind::TransFileTriggerIn),
            "systemd.transfiletriggerin"
        );
        assert!(
            Kind::Pre.matches("pre") && Kind::Pre.matches("%pre") && Kind::Pre.matches("prein")
        );
    }
}
