//! arbor-delta: OSTree static deltas. Generating them (`generate`, with bsdiff (`diff`,
//! byte-identical to the `bsdiff` crate but faster) for modified files and xz-compressed
//! parts, on rayon under a memory budget), reading and
//! inspecting them (`source`, `inspect`), and executing them (`apply`: verify in memory
//! or write the objects into an archive repository), for deltas written by arbor or by
//! stock `ostree static-delta generate` alike. `format` owns the bytes; `policy`
//! decides which deltas a ref should have; `index` writes `delta-indexes/`.

pub mod apply;
pub mod bspatch;
mod budget;
pub mod diff;
mod error;
pub mod format;
pub mod generate;
mod gvread;
pub mod index;
pub mod inspect;
mod plan;
pub mod policy;
pub mod source;

pub use apply::{apply_to_repo, verify, ApplyReport, VerifyReport};
pub use error::{DeltaError, Result};
pub use format::Superblock;
pub use generate::{generate, GenerateOpts, GenerateReport};
pub use index::{refresh, reindex, ReindexReport};
pub use inspect::{show, DeltaInfo};
pub use source::DeltaSource;
