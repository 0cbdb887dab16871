//! arbor-repo: the OSTree object model (GVariant, checksums, commit/dirtree/dirmeta/file
//! objects, summary), the repository layout, and the archive-mode repository on a local
//! directory (`store`).
//!
//! Everything outside `store` is pure: values to bytes and back. `store` is the one
//! module that opens paths. `layout` and `summary` are the one definition of where
//! things live and what the summary says, for the local repository, static deltas and
//! published repositories alike.

pub mod checksum;
pub mod deflate;
mod error;
pub mod filez;
pub mod gvariant;
pub mod keyfile;
pub mod layout;
pub mod objects;
pub mod progress;
pub mod store;
pub mod summary;
pub mod tree;

pub use checksum::Checksum;
pub use error::RepoError;
pub use layout::DeltaName;
pub use objects::{Commit, DirMeta, DirTree, FileHeader, ObjectType, Xattrs};
pub use store::Repo;
