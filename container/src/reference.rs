//! Image references as skopeo spells them: `oci:DIR[:TAG]`, `oci-archive:FILE[:TAG]`,
//! `docker://REGISTRY/NAME[:TAG]`.

use std::fmt;
use std::path::PathBuf;

use crate::{invalid, Result};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImageRef {
    /// An OCI image layout directory, and the tag in its index.
    Oci { dir: PathBuf, tag: Option<String> },
    /// An OCI layout in a tar file.
    OciArchive { file: PathBuf, tag: Option<String> },
    /// A registry (OCI distribution API): host[:port], repository name, tag.
    Docker {
        registry: String,
        name: String,
        tag: String,
    },
}

fn split_tag(s: &str) -> (&str, Option<String>) {
    match s.rsplit_once(':') {
        Some((p, t)) if !t.contains('/') && !p.is_empty() => (p, Some(t.to_string())),
        _ => (s, None),
    }
}

/// A tag as the distribution spec allows: `[A-Za-z0-9_][A-Za-z0-9._-]{0,127}`.
pub fn valid_tag(t: &str) -> bool {
    let b = t.as_bytes();
    !b.is_empty()
        && b.len() <= 128
        && (b[0].is_ascii_alphanumeric() || b[0] == b'_')
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || b"._-".contains(c))
}

/// A repository name as the distribution spec allows (lowercase path components of
/// `[a-z0-9]+([._-][a-z0-9]+)*`, separated by `/`).
pub fn valid_name(n: &str) -> bool {
    !n.is_empty()
        && n.len() <= 255
        && n.split('/').all(|c| {
            !c.is_empty()
                && c.bytes().next().is_some_and(|b| b.is_ascii_alphanumeric())
                && c.bytes().last().is_some_and(|b| b.is_ascii_alphanumeric())
                && c.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b))
        })
}

impl ImageRef {
    pub fn parse(s: &str) -> Result<ImageRef> {
        let bad_tag = |t: &str| {
            invalid(format!(
                "{s:?}: tag {t:?} is not a valid tag ([A-Za-z0-9_][A-Za-z0-9._-]*, at most 128)"
            ))
        };
        if let Some(rest) = s.strip_prefix("oci:") {
            let (dir, tag) = split_tag(rest);
            if let Some(t) = &tag {
                if !valid_tag(t) {
                    return Err(bad_tag(t));
                }
            }
            if dir.is_empty() {
                return Err(invalid(format!("{s:?}: no directory")));
            }
            return Ok(ImageRef::Oci {
                dir: dir.into(),
                tag,
            });
        }
        if let Some(rest) = s.strip_prefix("oci-archive:") {
            let (file, tag) = split_tag(rest);
            if let Some(t) = &tag {
                if !valid_tag(t) {
                    return Err(bad_tag(t));
                }
            }
            if file.is_empty() {
                return Err(invalid(format!("{s:?}: no file")));
            }
            return Ok(ImageRef::OciArchive {
                file: file.into(),
                tag,
            });
        }
        if let Some(rest) = s.strip_prefix("docker://") {
            let (registry, path) = rest
                .split_once('/')
                .ok_or_else(|| invalid(format!("{s:?}: expected docker://REGISTRY/NAME:TAG")))?;
            let (name, tag) = split_tag(path);
            let tag = tag.unwrap_or_else(|| "latest".into());
            if !valid_tag(&tag) {
                return Err(bad_tag(&tag));
            }
            if !valid_name(name) {
                return Err(invalid(format!(
                    "{s:?}: {name:?} is not a valid repository name (lowercase a-z, 0-9, ._- and /)"
                )));
            }
            if registry.is_empty()
                || !registry
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b".-:[]".contains(&b))
            {
                return Err(invalid(format!(
                    "{s:?}: {registry:?} is not a registry host"
                )));
            }
            return Ok(ImageRef::Docker {
                registry: registry.into(),
                name: name.into(),
                tag,
            });
        }
        Err(invalid(format!(
            "{s:?}: expected oci:DIR[:TAG], oci-archive:FILE[:TAG] or docker://REGISTRY/NAME:TAG"
        )))
    }
}

impl fmt::Display for ImageRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let tag = |t: &Option<String>| t.as_ref().map(|t| format!(":{t}")).unwrap_or_default();
        match self {
            ImageRef::Oci { dir, tag: t } => write!(f, "oci:{}{}", dir.display(), tag(t)),
            ImageRef::OciArchive { file, tag: t } => {
                write!(f, "oci-archive:{}{}", file.display(), tag(t))
            }
            ImageRef::Docker {
                registry,
                name,
                tag,
            } => write!(f, "docker://{registry}/{name}:{tag}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_parse_as_skopeo_spells_them() {
        assert_eq!(
            ImageRef::parse("oci:/tmp/x:v1").unwrap(),
            ImageRef::Oci {
                dir: "/tmp/x".into(),
                tag: Some("v1".into())
            }
        );
        assert_eq!(
            ImageRef::parse("oci:out").unwrap(),
            ImageRef::Oci {
                dir: "out".into(),
                tag: None
            }
        );
        assert_eq!(
            ImageRef::parse("docker://127.0.0.1:5000/os/fedora:41").unwrap(),
            ImageRef::Docker {
                registry: "127.0.0.1:5000".into(),
                name: "os/fedora".into(),
                tag: "41".into()
            }
        );
        assert_eq!(
            ImageRef::parse("docker://quay.io/x/y").unwrap().to_string(),
            "docker://quay.io/x/y:latest"
        );
        for bad in [
            "oci:",
            "oci:x:bad tag",
            "docker://host",
            "docker://host/UPPER:1",
            "docker://host/a/../b:1",
            "http://x",
            "docker://ho st/a:1",
        ] {
            assert!(ImageRef::parse(bad).is_err(), "{bad}");
        }
    }
}
