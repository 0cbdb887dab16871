//! OSTree commits as bootable OCI images, in the ostree-container format that bootc,
//! rpm-ostree and ostree-ext read (`../shared/spec/oci.md` §1):
//!
//! - layer 0, the *commit layer*: a `bare-split-xattrs` repository skeleton under
//!   `sysroot/ostree/repo`, the `.commit` (and `.commitmeta`, the signatures), every
//!   `.dirtree`/`.dirmeta`, the directory entries of the tree, and the content objects no
//!   chunk took;
//! - chunk layers: content objects (`.file-xattrs` + `.file-xattrs-link` hardlink, then
//!   the `.file`) with one hardlink per checkout path (`usr/etc` written as `etc`), grouped
//!   by package ([`plan`]), each layer with its parent directories so runtimes see the
//!   commit's modes and owners;
//! - the config labels `ostree.commit`, `ostree.final-diffid` (the last chunk layer's
//!   diff_id), `ostree.bootable`/`containers.bootc`, `ostree.linux`, the version, also as
//!   manifest annotations; `ostree.components` on every chunk layer.
//!
//! Everything is deterministic: the same commit gives the same manifest digest.

pub mod diff;
pub mod digest;
pub mod encapsulate;
pub mod import;
pub mod layout;
pub mod owners;
mod pargz;
pub mod plan;
pub mod reference;
pub mod registry;
pub mod tree;
mod write;

use std::path::PathBuf;

pub use encapsulate::{encapsulate, EncapsulateOpts, EncapsulateReport};
pub use reference::ImageRef;

/// `ostree.commit`: the encapsulated commit.
pub const COMMIT_LABEL: &str = "ostree.commit";
/// `ostree.final-diffid`: the diff_id of the last layer that belongs to the commit.
pub const DIFFID_LABEL: &str = "ostree.final-diffid";
/// `ostree.components`: the packages of a chunk layer, sorted, comma-separated.
pub const COMPONENTS_ANNOTATION: &str = "ostree.components";
/// `containers.bootc`: what bootc requires before it deploys an image.
pub const BOOTC_LABEL: &str = "containers.bootc";
pub const MANIFEST_MEDIA_TYPE: &str = "application/vnd.oci.image.manifest.v1+json";
pub const INDEX_MEDIA_TYPE: &str = "application/vnd.oci.image.index.v1+json";
pub const CONFIG_MEDIA_TYPE: &str = "application/vnd.oci.image.config.v1+json";
pub const LAYER_GZIP_MEDIA_TYPE: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
pub const LAYER_ZSTD_MEDIA_TYPE: &str = "application/vnd.oci.image.layer.v1.tar+zstd";
pub const LAYER_TAR_MEDIA_TYPE: &str = "application/vnd.oci.image.layer.v1.tar";
/// Docker's media types, which registries and skopeo may hand back.
pub const DOCKER_MANIFEST_MEDIA_TYPE: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const DOCKER_LAYER_GZIP_MEDIA_TYPE: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";

#[derive(Debug, thiserror::Error)]
pub enum ContainerError {
    #[error(transparent)]
    Repo(#[from] arbor_repo::RepoError),
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// An image, layout or reference that is not what it must be; the message names it.
    #[error("{0}")]
    Invalid(String),
    #[error("rpm: {0}")]
    Rpm(String),
}

pub type Result<T, E = ContainerError> = std::result::Result<T, E>;

pub(crate) fn invalid(why: impl Into<String>) -> ContainerError {
    ContainerError::Invalid(why.into())
}

pub(crate) trait IoAt<T> {
    fn at(self, path: impl Into<PathBuf>) -> Result<T>;
}

impl<T> IoAt<T> for std::io::Result<T> {
    fn at(self, path: impl Into<PathBuf>) -> Result<T> {
        self.map_err(|source| ContainerError::Io {
            path: path.into(),
            source,
        })
    }
}

/// `YYYY-MM-DDTHH:MM:SSZ` for seconds since the epoch (the form ostree-ext writes).
pub fn rfc3339(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn rfc3339_matches_known_dates() {
        assert_eq!(super::rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(super::rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(super::rfc3339(1_796_406_082), "2026-12-04T17:41:22Z");
    }
}
