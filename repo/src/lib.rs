//! arbor-repo: the OSTree object model (GVariant, checksums, commit/dirtree/dirmeta/file
//! objects, summary) and the archive-mode repository on a local directory (`store`).
//!
//! Everything outside `store` is pure: values to bytes and back. `store` is the one
//! module that opens paths.

pub mod checksum;
pub mod deflate;
pub mod gvariant;
pub mod objects;
pub mod progress;
pub mod store;
pub mod summary;
pub mod tree;

pub use checksum::Checksum;
pub use objects::{Commit, DirMeta, DirTree, FileHeader, ObjectType, Xattrs};
pub use store::{Repo, RepoError};
