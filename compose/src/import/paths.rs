//! Where an RPM path goes in an OSTree tree: rpm-ostree's path translations and the
//! tmpfiles.d lines that stand in for content under `/var` and `/run`.
//!
//! ```text
//! RPM path                      tree path / tmpfiles.d
//! /etc/…                   →    usr/etc/…
//! /boot/…                  →    usr/lib/ostree-boot/…
//! /opt/X/…                 →    usr/lib/opt/X/…          + L /opt/X - - - - ../../usr/lib/opt/X
//! /var/lib/alternatives/…  →    usr/lib/alternatives/…   + L /var/lib/alternatives … (also vagrant)
//! /var/lib/rpm/…           →    (dropped: the rpmdb is written at assembly)
//! /var/…, /run/…           →    d /var/… MODE USER GROUP - -   (directories)
//!                               L /var/… - - - - TARGET        (symlinks; files dropped)
//! /var, /run               →    (dropped: the root skeleton provides them)
//! anything else            →    the same path
//! ```
//!
//! Line formats follow rpm-ostree's `rust/src/importer.rs` (`translate_to_tmpfiles_d`,
//! `tmpfiles_symlink_entries`) and `rpmostree-importer.cxx` (only directories and
//! symlinks become tmpfiles.d entries; regular files there are "spurious content").

use std::borrow::Cow;

use arbor_repo::objects::validate_filename;

/// Where rpm-ostree keeps the per-package tmpfiles.d fragments.
pub const TMPFILES_DIR: &str = "usr/lib/rpm-ostree/tmpfiles.d";

/// `/var/lib` directories that rpm-ostree moves under `/usr/lib` with a compat symlink.
const VARLIB_MOVED: [&str; 2] = ["alternatives", "vagrant"];

/// What happens to one RPM path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Placement {
    /// Into the tree at this relative path.
    Tree(String),
    /// Into the package's tmpfiles.d fragment, for this absolute path.
    Tmpfiles(String),
    /// Nowhere.
    Drop,
}

/// Turn an absolute RPM path into validated relative components joined by `/`
/// (`""` for the root). Refuses relative paths and any `..` component: nothing in a
/// payload may point outside the tree.
pub fn normalize(raw: &str) -> Result<String, String> {
    if !raw.starts_with('/') {
        return Err("not an absolute path".into());
    }
    let mut parts = Vec::new();
    for seg in raw.split('/') {
        match seg {
            "" | "." => continue,
            ".." => return Err("a '..' component would escape the root".into()),
            _ => {
                validate_filename(seg).map_err(|e| e.to_string())?;
                parts.push(seg);
            }
        }
    }
    Ok(parts.join("/"))
}

/// `rel` is `prefix` itself or below it.
fn under<'a>(rel: &'a str, prefix: &str) -> Option<&'a str> {
    if rel == prefix {
        Some("")
    } else {
        rel.strip_prefix(prefix)?.strip_prefix('/')
    }
}

fn join(base: &str, rest: &str) -> String {
    if rest.is_empty() {
        base.to_string()
    } else {
        format!("{base}/{rest}")
    }
}

/// Decide where a normalized path goes.
pub fn place(rel: &str) -> Placement {
    if rel.is_empty() || rel == "var" || rel == "run" || under(rel, "var/lib/rpm").is_some() {
        return Placement::Drop;
    }
    for moved in VARLIB_MOVED {
        if let Some(rest) = under(rel, &format!("var/lib/{moved}")) {
            return Placement::Tree(join(&format!("usr/lib/{moved}"), rest));
        }
    }
    if rel.starts_with("var/") || rel.starts_with("run/") {
        return Placement::Tmpfiles(format!("/{rel}"));
    }
    for (from, to) in [
        ("etc", "usr/etc"),
        ("boot", "usr/lib/ostree-boot"),
        ("opt", "usr/lib/opt"),
    ] {
        if let Some(rest) = under(rel, from) {
            return Placement::Tree(join(to, rest));
        }
    }
    Placement::Tree(rel.to_string())
}

/// The compat symlink a translated path needs, as the absolute link path:
/// `/opt/X` for anything under `opt/X`, `/var/lib/alternatives` for that directory.
pub fn compat_link(rel: &str) -> Option<String> {
    if let Some(rest) = under(rel, "opt") {
        let first = rest.split('/').next().unwrap_or("");
        return (!first.is_empty()).then(|| format!("/opt/{first}"));
    }
    VARLIB_MOVED
        .iter()
        .find(|m| under(rel, &format!("var/lib/{m}")).is_some())
        .map(|m| format!("/var/lib/{m}"))
}

/// The tmpfiles.d line for a compat link from [`compat_link`]; the target is relative
/// (`../../usr/lib/…`) so it also resolves inside a checkout.
pub fn compat_link_line(link: &str) -> String {
    let target = match link.strip_prefix("/opt/") {
        Some(name) => format!("../../usr/lib/opt/{name}"),
        None => format!("../../usr/lib/{}", link.rsplit('/').next().unwrap_or("")),
    };
    format!("L {} - - - - {target}", quote(link))
}

/// `d PATH MODE USER GROUP - -`, the mode as 4+ octal digits. Refused when the path,
/// user or group could not be one field of one line (see [`tmpfiles_safe`]).
pub fn dir_line(abs: &str, mode: u32, user: &str, group: &str) -> Result<String, String> {
    tmpfiles_safe("path", abs)?;
    for (what, name) in [("user", user), ("group", group)] {
        tmpfiles_safe(what, name)?;
        if name.is_empty() || name.contains(char::is_whitespace) {
            return Err(format!("{what} {name:?} cannot be a tmpfiles.d field"));
        }
    }
    Ok(format!(
        "d {} {:04o} {user} {group} - -",
        quote(&fix_var_run(abs)),
        mode & 0o7777
    ))
}

/// `L PATH - - - - TARGET`. The target is not quoted: systemd takes the rest of the
/// line verbatim. Refused when either could break out of its line.
pub fn symlink_line(abs: &str, target: &str) -> Result<String, String> {
    tmpfiles_safe("path", abs)?;
    tmpfiles_safe("symlink target", target)?;
    Ok(format!("L {} - - - - {target}", quote(&fix_var_run(abs))))
}

/// A tmpfiles.d line is one line of text: a newline (or any other control character)
/// in a packaged path or symlink target would start another line — a boot-time
/// directive, run as root, that the package's file list does not show.
pub fn tmpfiles_safe(what: &str, s: &str) -> Result<(), String> {
    if s.chars().any(char::is_control) {
        return Err(format!(
            "{what} {s:?} has a control character; it cannot be written as a tmpfiles.d line"
        ));
    }
    Ok(())
}

/// systemd-tmpfiles warns about `/var/run/…`; rpm-ostree writes `/run/…` instead.
fn fix_var_run(abs: &str) -> Cow<'_, str> {
    match abs.strip_prefix("/var/run/") {
        Some(rest) => Cow::Owned(format!("/run/{rest}")),
        None => Cow::Borrowed(abs),
    }
}

/// Quote like rpm-ostree's `shellsafe_quote`: unchanged when every character is ASCII
/// alphanumeric or one of `-._/=:`, else GLib's `g_shell_quote` (single quotes, `'`
/// written as `'\''`).
pub fn quote(s: &str) -> Cow<'_, str> {
    if !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-._/=:".contains(c))
    {
        Cow::Borrowed(s)
    } else {
        Cow::Owned(format!("'{}'", s.replace('\'', "'\\''")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalize_refuses_escapes() {
        assert_eq!(normalize("/usr/./bin//x").unwrap(), "usr/bin/x");
        assert_eq!(normalize("/").unwrap(), "");
        assert!(normalize("/usr/../../etc/shadow").is_err());
        assert!(normalize("/..").is_err());
        assert!(normalize("usr/bin/x").is_err());
        assert!(normalize("./usr/bin").is_err());
    }

    #[test]
    fn placements() {
        let t = |s: &str| Placement::Tree(s.to_string());
        assert_eq!(place("etc"), t("usr/etc"));
        assert_eq!(place("etc/tiny/a.conf"), t("usr/etc/tiny/a.conf"));
        assert_eq!(place("etcetera"), t("etcetera"));
        assert_eq!(place("boot"), t("usr/lib/ostree-boot"));
        assert_eq!(place("boot/vmlinuz-6"), t("usr/lib/ostree-boot/vmlinuz-6"));
        assert_eq!(place("opt/app/bin"), t("usr/lib/opt/app/bin"));
        assert_eq!(place("var"), Placement::Drop);
        assert_eq!(place("run"), Placement::Drop);
        assert_eq!(place("var/lib/rpm/Packages"), Placement::Drop);
        assert_eq!(
            place("var/lib/rpmstate"),
            Placement::Tmpfiles("/var/lib/rpmstate".into())
        );
        assert_eq!(place("var/lib/alternatives/x"), t("usr/lib/alternatives/x"));
        assert_eq!(place("run/foo"), Placement::Tmpfiles("/run/foo".into()));
        assert_eq!(place("usr/bin/sh"), t("usr/bin/sh"));
        assert_eq!(place(""), Placement::Drop);
    }

    /// Expected lines copied from rpm-ostree's importer tests.
    #[test]
    fn tmpfiles_lines_match_rpm_ostree() {
        assert_eq!(
            dir_line("/var/foo bar", 0o40721, "testuser", "testgroup").unwrap(),
            "d '/var/foo bar' 0721 testuser testgroup - -"
        );
        assert_eq!(
            symlink_line("/var/foo bar", "/mytarget").unwrap(),
            "L '/var/foo bar' - - - - /mytarget"
        );
        assert_eq!(
            dir_line("/var/run/x", 0o1777, "root", "root").unwrap(),
            "d /run/x 1777 root root - -"
        );
        // A newline would start another (root, boot-time) line: refused, not written.
        assert!(symlink_line("/var/x", "/t\nL /etc/cron.d/evil - - - - /tmp/x").is_err());
        assert!(dir_line("/var/a\nd /etc/evil", 0o755, "root", "root").is_err());
        assert!(dir_line("/var/a", 0o755, "root\nx", "root").is_err());
        assert!(dir_line("/var/a", 0o755, "ro ot", "root").is_err());
        assert_eq!(quote("/var/foo"), "/var/foo");
        assert_eq!(quote("/var/it's"), "'/var/it'\\''s'");
        assert_eq!(compat_link("opt/bar/first").as_deref(), Some("/opt/bar"));
        assert_eq!(compat_link("opt"), None);
        assert_eq!(
            compat_link("var/lib/vagrant").as_deref(),
            Some("/var/lib/vagrant")
        );
        assert_eq!(
            compat_link_line("/opt/bar"),
            "L /opt/bar - - - - ../../usr/lib/opt/bar"
        );
        assert_eq!(
            compat_link_line("/var/lib/alternatives"),
            "L /var/lib/alternatives - - - - ../../usr/lib/alternatives"
        );
    }
}
