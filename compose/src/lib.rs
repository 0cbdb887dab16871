//! arbor-compose: an rpm-ostree-style treefile becomes an OSTree commit.
//!
//! ```text
//! treefile ─▶ ComposePlan ─▶ resolve (libsolv) ─▶ Lockfile ─▶ fetch ─▶ import (per RPM, cached)
//!          ─▶ union of package trees ─▶ assemble + postprocess ─▶ commit
//! ```

pub mod import;
pub mod union;
pub mod solve;
pub mod plan;
pub mod treefile;
pub mod rpmmd;
pub mod resolve;
pub mod assemble;
pub mod compose;
