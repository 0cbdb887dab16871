//! arbor-compose: an rpm-ostree-style treefile becomes an OSTree commit.
//!
//! ```text
//! treefile ─▶ ComposePlan ─▶ resolve (libsolv) ─▶ Lockfile ─▶ fetch ─▶ import (per RPM, cached)
//!          ─▶ union of package trees ─▶ assemble + postprocess ─▶ commit
//! ```

pub mod assemble;
pub mod bootstrap;
pub mod compose;
pub mod decompress;
pub mod import;
pub mod input;
pub mod plan;
pub mod relabel;
pub mod resolve;
pub mod rpmdb;
pub mod rpmdb_write;
pub mod rpmmd;
pub mod scripts;
pub mod selinux;
pub mod shared;
pub mod solve;
pub mod time;
pub mod treefile;
pub mod union;
