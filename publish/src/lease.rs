//! Publishing and pruning one destination at the same time, made safe. A publisher
//! trusts that objects it finds at the destination stay there until its commits name
//! them; prune deletes objects nothing names. The two must not overlap, so each takes a
//! lease before it looks at anything:
//!
//! ```text
//! arbor-leases/publish-<id>    one per publisher (publish, mirror, release) in flight
//! arbor-leases/prune-<id>      one per prune in flight
//! arbor-leases/ref-<H>-<id>    one per ref a release moves (H: the ref name's digest)
//! ```
//!
//! Each writes its own lease first, then lists the others' (Dekker's order: with a
//! read-after-write consistent store, of two that start together at least one sees
//! the other) and backs off with an error naming the lease it met. Publishers do not
//! exclude each other (the summary update resolves them), except two releases of one
//! ref: a release checks that its commit descends from the published one and then moves
//! the ref, and on a store without conditional writes (garage) two releases could both
//! pass the check before either moves it. A lease older than the grace
//! period is a crashed run's, and ignored. Stock ostree ignores the directory. Lease
//! requests are not counted in the request statistics.

use std::time::{Duration, SystemTime};

use futures::TryStreamExt;
use object_store::path::Path as StorePath;
use object_store::{ObjectStoreExt, PutPayload};

use crate::error::{PublishError, Result};
use crate::location::LocationKind;
use crate::remote::Remote;

pub const LEASES_PREFIX: &str = "arbor-leases/";

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Role {
    Publish,
    Prune,
    /// Moving this ref (a release, which must descend from what is published).
    Ref(String),
}

impl Role {
    fn stem(&self) -> String {
        match self {
            Role::Publish => "publish-".into(),
            Role::Prune => "prune-".into(),
            Role::Ref(name) => {
                format!(
                    "ref-{}-",
                    &arbor_repo::Checksum::of(name.as_bytes()).to_hex()[..16]
                )
            }
        }
    }

    /// Whether a run of this role must not overlap one holding a lease named `other`.
    fn excludes(&self, other: &str) -> bool {
        match self {
            Role::Publish => other.starts_with("prune-"),
            Role::Prune => other.starts_with("publish-"),
            Role::Ref(_) => other.starts_with(&self.stem()),
        }
    }

    fn what(&self) -> String {
        match self {
            Role::Publish => "a prune is deleting unreferenced objects there".into(),
            Role::Prune => "a publish is in flight there".into(),
            Role::Ref(name) => format!("another release of ref {name:?} is in flight there"),
        }
    }
}

/// A lease held on a destination; [`Lease::release`] it when done (a lease dropped
/// without release expires after the grace period).
#[derive(Debug)]
pub struct Lease {
    key: Option<String>,
}

impl Lease {
    /// Take a lease for `role`, or fail naming the conflicting one. Read-only (HTTP)
    /// and in-memory stores need none.
    pub async fn take(dest: &Remote, role: &Role, grace: Duration) -> Result<Lease> {
        if matches!(dest.loc.kind, LocationKind::Http) {
            return Ok(Lease { key: None });
        }
        let now = SystemTime::now();
        let since = now
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default();
        let key = format!(
            "{LEASES_PREFIX}{}{}-{}-{}",
            role.stem(),
            since.as_secs(),
            std::process::id(),
            since.subsec_nanos()
        );
        let body = format!(
            "{{\"lease\":\"{}\",\"pid\":{},\"started\":{}}}\n",
            role.stem().trim_end_matches('-'),
            std::process::id(),
            since.as_secs()
        );
        let path = StorePath::from_iter(key.split('/'));
        dest.loc
            .store
            .put(&path, PutPayload::from(body.into_bytes()))
            .await
            .map_err(|e| dest.err(&key, e))?;
        let lease = Lease { key: Some(key) };
        match lease.conflict(dest, role, grace).await {
            Ok(None) => Ok(lease),
            Ok(Some(other)) => {
                lease.release(dest).await;
                let what = role.what();
                Err(PublishError::Busy {
                    url: dest.loc.url.clone(),
                    why: format!(
                        "{what} ({other}); retry when it has finished (a lease older than {} s is a crashed run's and ignored)",
                        grace.as_secs()
                    ),
                })
            }
            Err(e) => {
                lease.release(dest).await;
                Err(e)
            }
        }
    }

    /// The first live lease of a role that excludes `role`, other than this one.
    async fn conflict(
        &self,
        dest: &Remote,
        role: &Role,
        grace: Duration,
    ) -> Result<Option<String>> {
        let prefix = StorePath::from(LEASES_PREFIX.trim_end_matches('/'));
        let items: Vec<object_store::ObjectMeta> = dest
            .loc
            .store
            .list(Some(&prefix))
            .try_collect()
            .await
            .map_err(|e| dest.err(LEASES_PREFIX, e))?;
        let cutoff = cutoff_secs(grace);
        for m in items {
            let key = m.location.to_string();
            if Some(&key) == self.key.as_ref() {
                continue;
            }
            let name = key.strip_prefix(LEASES_PREFIX).unwrap_or(&key);
            if role.excludes(name) && m.last_modified.timestamp() >= cutoff {
                return Ok(Some(key));
            }
        }
        Ok(None)
    }

    /// Give the lease back (best effort: one left behind expires).
    pub async fn release(self, dest: &Remote) {
        if let Some(key) = self.key {
            let path = StorePath::from_iter(key.split('/'));
            if let Err(e) = dest.loc.store.delete(&path).await {
                tracing::warn!("{}: lease not removed: {e}", dest.url(&key));
            }
        }
    }
}

/// Seconds since the epoch of `now - grace`.
fn cutoff_secs(grace: Duration) -> i64 {
    SystemTime::now()
        .checked_sub(grace)
        .and_then(|t| t.duration_since(SystemTime::UNIX_EPOCH).ok())
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}
