//! arbor-publish: a working OSTree repository ⇄ any object store (`file://`, `s3://`,
//! `gs://`, `az://`, `memory://`, read-only `http(s)://`): crash-safe ordered publish,
//! mirroring between stores, and pruning, with the summary regenerated from what the
//! destination holds. Keys and the summary are `arbor_repo::layout`'s and
//! `arbor_repo::summary`'s, the same as the local repository's.
//!
//! The API is blocking: each call builds its own tokio runtime, since async is only
//! needed at this network edge. The transport is passed in: the `Arc<dyn ObjectStore>`
//! inside a [`Location`] (built from a URL by `location`, or by the caller), so tests
//! (in-memory, local directories) and production (S3, GCS, Azure) run the same code.

mod blobs;
mod body;
mod error;
mod lease;
mod location;
mod prune;
mod pull;
mod remote;
mod signing;
mod source;
mod summary;
mod transfer;
mod walk;

use arbor_repo::progress::Progress;
use arbor_repo::Repo;

pub use blobs::Blobs;
pub use error::{error_chain, PublishError, Result, StoreFailure};
pub use location::{Location, LocationKind, StoreOpts};
pub use prune::{PruneOpts, PruneReport, Removed, Retention, DEFAULT_GRACE};
pub use pull::{descends, PullOpts, PullReport};
pub use remote::RequestCounts;
pub use signing::Signing;
pub use summary::LOCK_FILE;
pub use transfer::{TransferOpts, TransferReport};

fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(PublishError::Runtime)
}

/// Refuse read-only destinations (`http(s)://`) before any work.
fn writable(dest: &Location) -> Result<()> {
    if dest.kind == LocationKind::Http {
        return Err(PublishError::ReadOnly {
            url: dest.url.clone(),
        });
    }
    Ok(())
}

/// Check that `dest` is writable, reachable, and that the credentials can list it (one
/// request), so that a long job can fail before it starts rather than at the end.
pub fn preflight(dest: &Location) -> Result<()> {
    writable(dest)?;
    runtime()?.block_on(async {
        let remote = remote::Remote::new(dest);
        remote
            .list(arbor_repo::layout::REFS_PREFIX)
            .await
            .map(|_| ())
    })
}

/// Publish `refs` (all branches when empty) of a local archive repository to `dest`.
pub fn publish(
    repo: &Repo,
    dest: &Location,
    refs: &[String],
    opts: &TransferOpts,
    progress: &dyn Progress,
) -> Result<TransferReport> {
    writable(dest)?;
    runtime()?.block_on(async {
        let remote = remote::Remote::new(dest);
        transfer::run(&source::Source::Local(repo), &remote, refs, opts, progress).await
    })
}

/// Copy `refs` (all the source advertises when empty), their history up to
/// `opts.depth`, objects and deltas from `src` to `dest`, and regenerate the summary.
pub fn mirror(
    src: &Location,
    dest: &Location,
    refs: &[String],
    opts: &TransferOpts,
    progress: &dyn Progress,
) -> Result<TransferReport> {
    writable(dest)?;
    runtime()?.block_on(async {
        let from = remote::Remote::new(src);
        let to = remote::Remote::new(dest);
        let mut report =
            transfer::run(&source::Source::Store(&from), &to, refs, opts, progress).await?;
        report.source_requests = from.stats.snapshot();
        Ok(report)
    })
}

/// Fetch `refs` (all the source advertises when empty) from a published repository into
/// a local one: see [`pull`](crate::pull).
pub fn pull(
    src: &Location,
    repo: &Repo,
    refs: &[String],
    opts: &PullOpts,
    progress: &dyn Progress,
) -> Result<PullReport> {
    runtime()?.block_on(async {
        let from = remote::Remote::new(src);
        pull::run(&from, repo, refs, opts, progress).await
    })
}

/// Fetch these content objects from a published repository where the local one lacks
/// them; returns (objects, bytes).
pub fn fetch_files(
    src: &Location,
    repo: &Repo,
    files: &[arbor_repo::Checksum],
    jobs: usize,
    progress: &dyn Progress,
) -> Result<(u64, u64)> {
    runtime()?.block_on(async {
        let from = remote::Remote::new(src);
        pull::fetch_files(&from, repo, files, jobs, progress).await
    })
}

/// The commit a published ref points at (`refs/heads/REF`), if any.
pub fn published_head(dest: &Location, name: &str) -> Result<Option<arbor_repo::Checksum>> {
    runtime()?.block_on(async {
        let remote = remote::Remote::new(dest);
        source::read_ref(&remote, &arbor_repo::layout::ref_key(name)).await
    })
}

/// Apply a retention policy to a published repository and delete what nothing reaches.
pub fn prune(dest: &Location, opts: &PruneOpts, progress: &dyn Progress) -> Result<PruneReport> {
    writable(dest)?;
    runtime()?.block_on(async {
        let remote = remote::Remote::new(dest);
        prune::run(&remote, opts, progress).await
    })
}

#[cfg(test)]
mod tests;
