//! User and group names → numeric ids, from the target tree's `passwd` and `group`.
//!
//! RPM headers carry owners as names (`root`, `tss`, `shadow`), never as ids; the
//! importer resolves them here, exactly once per name, the way rpm does inside the
//! target root: the first matching line wins, and `root` is always 0.

use std::collections::BTreeMap;

use arbor_repo::checksum::Hasher;

/// A malformed line in a passwd or group file.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{file} line {line}: {why}")]
pub struct UsersError {
    /// `passwd` or `group`.
    pub file: &'static str,
    /// 1-based line number.
    pub line: usize,
    pub why: String,
}

/// User name → uid and group name → gid.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Users {
    users: BTreeMap<String, u32>,
    groups: BTreeMap<String, u32>,
}

impl Users {
    /// Only `root` (uid 0, gid 0): every other name falls back to root.
    pub fn root_only() -> Users {
        Users::default()
    }

    /// Parse `/etc/passwd` and `/etc/group` text. Blank lines, `#` comments and NIS
    /// `+`/`-` lines are skipped, as glibc does; a line without a numeric id is an error.
    pub fn parse(passwd: &str, group: &str) -> Result<Users, UsersError> {
        Ok(Users {
            users: parse_db(passwd, "passwd", 3)?,
            groups: parse_db(group, "group", 3)?,
        })
    }

    /// The uid of `name`, if known. `root` is always 0.
    pub fn uid(&self, name: &str) -> Option<u32> {
        match name {
            "root" => Some(0),
            _ => self.users.get(name).copied(),
        }
    }

    /// The gid of `name`, if known. `root` is always 0.
    pub fn gid(&self, name: &str) -> Option<u32> {
        match name {
            "root" => Some(0),
            _ => self.groups.get(name).copied(),
        }
    }

    /// SHA-256 (hex) of the whole mapping, for cache keys: two mappings that resolve
    /// every name the same way have the same digest.
    pub fn digest(&self) -> String {
        let mut h = Hasher::new();
        for (kind, map) in [("u", &self.users), ("g", &self.groups)] {
            for (name, id) in map {
                h.update(format!("{kind}\0{name}\0{id}\n").as_bytes());
            }
        }
        h.finish().to_hex()
    }
}

/// `name:password:id:...` lines; the id is field `id_field` (1-based).
fn parse_db(
    text: &str,
    file: &'static str,
    id_field: usize,
) -> Result<BTreeMap<String, u32>, UsersError> {
    let mut out = BTreeMap::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim_end_matches('\r');
        if line.trim().is_empty() || line.starts_with('#') || line.starts_with(['+', '-']) {
            continue;
        }
        let err = |why: String| UsersError {
            file,
            line: n + 1,
            why,
        };
        let fields: Vec<&str> = line.split(':').collect();
        let (Some(name), Some(id)) = (fields.first(), fields.get(id_field - 1)) else {
            return Err(err(format!(
                "expected at least {id_field} ':'-separated fields"
            )));
        };
        if name.is_empty() {
            return Err(err("empty name".into()));
        }
        let id: u32 = id
            .parse()
            .map_err(|_| err(format!("{name}: id {id:?} is not a number")))?;
        // First match wins, as with getpwnam().
        out.entry(name.to_string()).or_insert(id);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_lookup() {
        let u = Users::parse(
            "# comment\nroot:x:0:0:root:/root:/bin/sh\n\nmessagebus:x:100:101::/:/bin/false\n\
             messagebus:x:999:999::/:/bin/false\n+nis\n",
            "root:x:0:\nshadow:x:42:\ntss:x:103:a,b\n",
        )
        .unwrap();
        assert_eq!(u.uid("root"), Some(0));
        assert_eq!(u.uid("messagebus"), Some(100));
        assert_eq!(u.uid("nobody"), None);
        assert_eq!(u.gid("shadow"), Some(42));
        assert_eq!(u.gid("tss"), Some(103));
        assert_eq!(Users::root_only().gid("root"), Some(0));
        assert_ne!(u.digest(), Users::root_only().digest());
        assert_eq!(u.digest(), u.clone().digest());
    }

    #[test]
    fn malformed_lines_are_errors() {
        let e = Users::parse("root:x:zero:0::/:/bin/sh\n", "").unwrap_err();
        assert_eq!((e.file, e.line), ("passwd", 1));
        let e = Users::parse("", "root:x:0:\nbroken\n").unwrap_err();
        assert_eq!((e.file, e.line), ("group", 2));
        assert!(e.to_string().contains("group line 2"));
    }
}
