//! The GKeyFile subset repository `config` files use: `[section]` headers, `key=value`
//! lines, `#` comments. Reading it, and setting one key while keeping every other line
//! (comments, other sections, remotes) as it is. Pure: text in, values or text out.

use std::collections::BTreeMap;

/// A parsed keyfile: (section, key) → value, whitespace around each trimmed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Keyfile(BTreeMap<(String, String), String>);

impl Keyfile {
    pub fn parse(text: &str) -> Keyfile {
        let mut out = BTreeMap::new();
        let mut section = String::new();
        for line in text.lines() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            if let Some(s) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
                section = s.trim().to_string();
            } else if let Some((k, v)) = line.split_once('=') {
                out.insert(
                    (section.clone(), k.trim().to_string()),
                    v.trim().to_string(),
                );
            }
        }
        Keyfile(out)
    }

    pub fn get(&self, section: &str, key: &str) -> Option<&str> {
        self.0
            .get(&(section.to_string(), key.to_string()))
            .map(String::as_str)
    }
}

/// `text` with `key=value` in `[section]` (replacing the key's line, or added after the
/// section's last entry, or in a new section at the top), or `None` if it already says
/// so.
pub fn with_value(text: &str, section: &str, key: &str, value: &str) -> Option<String> {
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    let entry = format!("{key}={value}");
    let mut current = String::new();
    let mut section_end = None;
    for (i, line) in lines.iter_mut().enumerate() {
        let t = line.trim();
        if let Some(s) = t.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            current = s.trim().to_string();
            if current == section {
                section_end = Some(i);
            }
            continue;
        }
        if current != section {
            continue;
        }
        if !t.is_empty() && !t.starts_with('#') {
            section_end = Some(i);
        }
        if let Some((k, v)) = t.split_once('=') {
            if k.trim() == key {
                if v.trim() == value {
                    return None;
                }
                *line = entry;
                return Some(lines.join("\n") + "\n");
            }
        }
    }
    match section_end {
        Some(i) => lines.insert(i + 1, entry),
        None => {
            lines.insert(0, format!("[{section}]"));
            lines.insert(1, entry);
        }
    }
    Some(lines.join("\n") + "\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse() {
        let k = Keyfile::parse(
            "[core]\nrepo_version=1\nmode = archive-z2\n# c\n[remote \"o\"]\nurl=x\n",
        );
        assert_eq!(k.get("core", "mode"), Some("archive-z2"));
        assert_eq!(k.get("remote \"o\"", "url"), Some("x"));
        assert_eq!(k.get("core", "url"), None);
    }

    #[test]
    fn set_a_value_keeping_the_rest() {
        let c = "[core]\nrepo_version=1\nmode=archive-z2\n\n[remote \"x\"]\nurl=y\n";
        assert_eq!(
            with_value(c, "core", "indexed-deltas", "true").unwrap(),
            "[core]\nrepo_version=1\nmode=archive-z2\nindexed-deltas=true\n\n[remote \"x\"]\nurl=y\n"
        );
        let done = "[core]\nrepo_version=1\nindexed-deltas=true\n";
        assert_eq!(with_value(done, "core", "indexed-deltas", "true"), None);
        assert_eq!(
            with_value(
                "[core]\nindexed-deltas=false\n",
                "core",
                "indexed-deltas",
                "true"
            )
            .unwrap(),
            "[core]\nindexed-deltas=true\n"
        );
        assert_eq!(
            with_value("[remote \"x\"]\nurl=y\n", "core", "k", "v").unwrap(),
            "[core]\nk=v\n[remote \"x\"]\nurl=y\n"
        );
        // An empty section gets the entry right after its header.
        assert_eq!(
            with_value("[core]\n[other]\na=b\n", "core", "k", "v").unwrap(),
            "[core]\nk=v\n[other]\na=b\n"
        );
    }
}
