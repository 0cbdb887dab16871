//! The command line: one `Command` enum, one options struct per subcommand in its own file.

mod cat;
mod checkout;
mod commit;
mod compose;
mod container;
mod db;
mod delta;
mod diff;
mod fetch;
mod fsck;
mod import_rpms;
mod init;
mod log;
mod ls;
mod mirror;
mod prune;
mod publish;
mod pull;
mod refs;
mod release;
mod resolve;
mod show;
mod sign;
mod summary;
mod verify;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use arbor_repo::Repo;
use clap::{Args, Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "arbor",
    version,
    about = "Compose, delta and publish image-based Linux operating systems as OSTree repositories",
    long_about = "arbor builds OSTree repositories that stock ostree clients pull from and upgrade \
                  with. Data goes to stdout, logs and progress to stderr.\n\nExit codes: 0 success, \
                  1 error (including fsck finding corruption), 2 usage error."
)]
pub struct Cli {
    /// More log output on stderr (-v info, -vv debug, -vvv trace).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Progress on stderr: bars on a terminal (auto's choice there), plain log lines
    /// (auto's choice otherwise), JSON lines for CI, or none.
    #[arg(
        long,
        global = true,
        value_enum,
        value_name = "MODE",
        default_value = "auto"
    )]
    pub progress: crate::progress::Mode,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
    /// Create an archive-mode repository (like `ostree init --mode=archive`).
    Init(init::InitOpts),
    /// Commit a directory to a branch; prints the commit checksum.
    Commit(commit::CommitOpts),
    /// List the repository's branches.
    Refs(refs::RefsOpts),
    /// Show the history of a branch or commit.
    Log(log::LogOpts),
    /// Show one commit and its metadata.
    Show(show::ShowOpts),
    /// List files in a commit (canonical dump: type, mode, uid, gid, size, checksum, path).
    Ls(ls::LsOpts),
    /// Print a file's contents from a commit.
    Cat(cat::CatOpts),
    /// Check a commit out into a new directory.
    Checkout(checkout::CheckoutOpts),
    /// Verify every object and every ref in the repository.
    Fsck(fsck::FsckOpts),
    /// Regenerate (-u) or view the repository summary clients discover refs through.
    Summary(summary::SummaryOpts),
    /// Static deltas: generate, list, show, verify, apply.
    #[command(subcommand)]
    Delta(delta::DeltaCommand),
    /// The whole pipeline: compose a treefile, generate deltas, publish; skips what is done.
    Release(release::ReleaseOpts),
    /// Compose a treefile into a commit (resolve, fetch, import, assemble, commit).
    Compose(compose::ComposeCmdOpts),
    /// Resolve a treefile and download its RPMs into the cache, for `compose --offline`.
    Fetch(fetch::FetchOpts),
    /// Import RPMs and commit their union, without assembly (a debugging aid).
    #[command(name = "import-rpms", hide = true)]
    ImportRpms(import_rpms::ImportRpmsOpts),
    /// Resolve a treefile's packages (like dnf would) and print them, or a lockfile.
    Resolve(resolve::ResolveOpts),
    /// Publish a repository to object storage (file://, s3://), crash-safe.
    Publish(publish::PublishOpts),
    /// Fetch refs' history (commits, trees; content unless --metadata-only) from a
    /// published repository into a local one.
    Pull(pull::PullCmdOpts),
    /// Copy commits, objects and deltas between two stores.
    Mirror(mirror::MirrorOpts),
    /// Delete old commits and unreachable objects and deltas from a published repository.
    Prune(prune::PruneOpts),
    /// Paths added, removed and modified between two commits (as `ostree diff`), with
    /// what changed in each; `--json` for scripts.
    Diff(diff::DiffOpts),
    /// Add signatures to commits (`.commitmeta`) and the summary (`summary.sig`).
    Sign(sign::SignOpts),
    /// Check a commit's or the summary's signatures as a client would (exit 1 if invalid).
    Verify(verify::VerifyOpts),
    /// Packages in composed commits: list, and diff between two commits.
    #[command(subcommand)]
    Db(db::DbCommand),
    /// Bootable OCI images (ostree-container / bootc): encapsulate a commit, pull an image
    /// back into a repository, diff two images.
    #[command(subcommand)]
    Container(container::ContainerCommand),
}

/// The repository a command works on.
#[derive(Args, Clone)]
pub struct RepoArg {
    /// Path to the OSTree repository.
    #[arg(long, value_name = "PATH", env = "ARBOR_REPO")]
    pub repo: PathBuf,
}

impl RepoArg {
    pub fn open(&self) -> Result<Repo> {
        Repo::open(&self.repo)
            .with_context(|| format!("opening repository {}", self.repo.display()))
    }
}

pub fn run(command: Command) -> Result<ExitCode> {
    match command {
        Command::Init(o) => o.run(),
        Command::Commit(o) => o.run(),
        Command::Refs(o) => o.run(),
        Command::Log(o) => o.run(),
        Command::Show(o) => o.run(),
        Command::Ls(o) => o.run(),
        Command::Cat(o) => o.run(),
        Command::Checkout(o) => o.run(),
        Command::Fsck(o) => o.run(),
        Command::Summary(o) => o.run(),
        Command::Delta(c) => c.run(),
        Command::Release(o) => o.run(),
        Command::Compose(o) => o.run(),
        Command::Fetch(o) => o.run(),
        Command::ImportRpms(o) => o.run(),
        Command::Resolve(o) => o.run(),
        Command::Publish(o) => o.run(),
        Command::Pull(o) => o.run(),
        Command::Mirror(o) => o.run(),
        Command::Prune(o) => o.run(),
        Command::Diff(o) => o.run(),
        Command::Sign(o) => o.run(),
        Command::Verify(o) => o.run(),
        Command::Db(c) => c.run(),
        Command::Container(c) => c.run(),
    }
}

/// Print a `--json` report on stdout, one line.
pub fn print_json(report: &impl serde::Serialize) -> Result<()> {
    let line = serde_json::to_string(report).context("encoding the JSON report")?;
    println!("{line}");
    Ok(())
}
