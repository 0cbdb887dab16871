//! Hashing, compressing and storing one package's file objects on rayon while the
//! payload stream goes on: a large package (a kernel: ~1,000 modules, 100 MB) would
//! otherwise be one long single-threaded tail of a parallel import.
//!
//! ```text
//! payload stream ──(content, headers, tree paths)──▶ batch of ≥ BATCH bytes
//!        │                                              └─▶ rayon job: sha256 + deflate + write
//!        │  waits (running jobs itself) while more than MAX_IN_FLIGHT bytes are queued
//!        └── end of stream: last batch written on this thread; results ──▶ tree inserts
//! ```
//!
//! A package smaller than one batch never touches the thread pool, so small imports
//! pay no hand-off between threads.

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use arbor_repo::checksum::Checksum;
use arbor_repo::{FileHeader, Repo, RepoError};

use super::content::Content;
use crate::scripts::farm::BareCache;
use crate::selinux::Labeler;

/// Bytes of content held in memory by queued jobs before the stream waits.
const MAX_IN_FLIGHT: u64 = 64 << 20;
/// What a spooled content costs in memory (its read buffer), for the budget.
const SPOOLED_COST: u64 = 1 << 20;
/// Contents are handed to the pool in batches of at least this many bytes.
const BATCH: u64 = 4 << 20;

/// One tree entry a content is written for.
pub struct Item {
    pub header: FileHeader,
    /// The RPM path, for error messages.
    pub raw: String,
    /// The tree path.
    pub path: String,
}

/// A written entry, to be inserted into the tree.
pub struct Done {
    pub raw: String,
    pub path: String,
    pub checksum: Checksum,
    pub size: u64,
}

/// State shared by the jobs of one package.
#[derive(Default)]
pub struct Shared {
    done: Mutex<Vec<Done>>,
    failed: Mutex<Option<RepoError>>,
    in_flight: AtomicU64,
}

impl Shared {
    /// The written entries, or the first error a job hit.
    pub fn finish(self) -> Result<Vec<Done>, RepoError> {
        match self.failed.into_inner().unwrap_or_else(|p| p.into_inner()) {
            Some(e) => Err(e),
            None => Ok(self.done.into_inner().unwrap_or_else(|p| p.into_inner())),
        }
    }
}

type Batch = Vec<(Content, Vec<Item>)>;

/// Submits batches of contents into a rayon scope. Used from the streaming thread only.
pub struct Writer<'scope, 'env> {
    scope: &'scope rayon::Scope<'env>,
    repo: &'env Repo,
    labels: Option<&'env Labeler>,
    bare: Option<&'env BareCache>,
    shared: &'env Shared,
    batch: RefCell<(Batch, u64)>,
}

impl<'scope, 'env> Writer<'scope, 'env> {
    pub fn new(
        scope: &'scope rayon::Scope<'env>,
        repo: &'env Repo,
        labels: Option<&'env Labeler>,
        bare: Option<&'env BareCache>,
        shared: &'env Shared,
    ) -> Self {
        Writer {
            scope,
            repo,
            labels,
            bare,
            shared,
            batch: RefCell::new((Vec::new(), 0)),
        }
    }

    /// Write `content` once per distinct header among `items`, in the background.
    pub fn submit(&self, content: Content, items: Vec<Item>) {
        let cost = match &content {
            Content::Memory(v) => v.len() as u64 + 4096,
            Content::Spooled(_) => SPOOLED_COST,
        };
        let full = {
            let mut b = self.batch.borrow_mut();
            b.0.push((content, items));
            b.1 += cost;
            b.1 >= BATCH
        };
        if full {
            self.spawn_batch();
        }
    }

    /// Write what is left on this thread (jobs already spawned finish with the scope).
    pub fn flush(&self) {
        let (batch, _) = std::mem::take(&mut *self.batch.borrow_mut());
        write_batch(self.repo, self.labels, self.bare, self.shared, batch);
    }

    fn spawn_batch(&self) {
        let (batch, cost) = std::mem::take(&mut *self.batch.borrow_mut());
        while self.shared.in_flight.load(Ordering::Acquire) > MAX_IN_FLIGHT {
            // Run queued jobs on this thread rather than block it: every pool thread
            // may be streaming a payload, and blocked streams would starve their jobs.
            if rayon::yield_now() != Some(rayon::Yield::Executed) {
                std::thread::sleep(Duration::from_micros(200));
            }
        }
        self.shared.in_flight.fetch_add(cost, Ordering::AcqRel);
        let (repo, labels, bare, shared) = (self.repo, self.labels, self.bare, self.shared);
        self.scope.spawn(move |_| {
            write_batch(repo, labels, bare, shared, batch);
            shared.in_flight.fetch_sub(cost, Ordering::AcqRel);
        });
    }
}

fn write_batch(
    repo: &Repo,
    labels: Option<&Labeler>,
    bare: Option<&BareCache>,
    shared: &Shared,
    batch: Batch,
) {
    let mut out = Vec::new();
    for (content, items) in batch {
        let size = content.len();
        let mut by_header: HashMap<FileHeader, Checksum> = HashMap::new();
        for mut item in items {
            if let Some(l) = labels {
                match l.label_for(&item.path, item.header.mode) {
                    Ok(label) => {
                        item.header.xattrs = crate::selinux::with_label(&item.header.xattrs, label)
                    }
                    Err(e) => {
                        let mut failed = shared.failed.lock().unwrap_or_else(|p| p.into_inner());
                        failed.get_or_insert(RepoError::Input {
                            path: item.raw.into(),
                            why: e.to_string(),
                        });
                        return;
                    }
                }
            }
            let checksum = match by_header.get(&item.header) {
                Some(c) => *c,
                None => match content.write(repo, &item.header).and_then(|(c, _)| {
                    if let Some(bare) = bare {
                        bare.put(&c, &item.header, |f| content.copy_to(f))
                            .map_err(|e| RepoError::Io {
                                path: bare.dir().to_path_buf(),
                                source: std::io::Error::other(format!(
                                    "keeping the scriptlet sandbox's copy: {e}"
                                )),
                            })?;
                    }
                    Ok(c)
                }) {
                    Ok(c) => {
                        by_header.insert(item.header, c);
                        c
                    }
                    Err(e) => {
                        let mut failed = shared.failed.lock().unwrap_or_else(|p| p.into_inner());
                        failed.get_or_insert(e);
                        return;
                    }
                },
            };
            out.push(Done {
                raw: item.raw,
                path: item.path,
                checksum,
                size,
            });
        }
    }
    shared
        .done
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .extend(out);
}
