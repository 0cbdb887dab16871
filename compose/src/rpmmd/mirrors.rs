//! `.repo` `mirrorlist=` and `metalink=`: where a repository's mirrors are listed, and
//! (metalink) which checksums its `repomd.xml` must have.
//!
//! ```text
//! mirrorlist:  # comment            metalink (MirrorManager, metalink 3.0):
//!              https://m1/os/       <file name="repomd.xml">
//!              https://m2/os/         <size>6113</size>
//!                                     <verification><hash type="sha256">…</hash></verification>
//!                                     <mm0:alternates><mm0:alternate>… older versions …
//!                                     <resources><url preference="100">https://m1/os/repodata/repomd.xml</url>
//! ```
//!
//! Both lists come from the network, so their size is bounded, and so is the
//! `repomd.xml` fetched after a metalink (by the sizes it lists).

use super::{get_bounded, FetchError, Http};
use crate::plan::RepoConfig;

/// Largest mirrorlist or metalink accepted (Fedora's metalinks are ~30 KiB).
pub const MAX_LIST_BYTES: u64 = 4 << 20;
/// Largest `repomd.xml` accepted when no metalink states its size (Fedora's are
/// ~10 KiB; a hostile mirror must not make us allocate without bound).
pub const MAX_REPOMD_BYTES: u64 = 16 << 20;

/// What a metalink says `repomd.xml` must be: its current version and the
/// alternates (older versions mirrors may still serve), each as (type, hex) hashes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RepomdCheck {
    pub versions: Vec<Vec<(String, String)>>,
    /// The largest size listed: the bound for fetching `repomd.xml`.
    pub max_size: Option<u64>,
}

/// Where to look for a repository: base URLs in order, and a check for `repomd.xml`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Sources {
    pub bases: Vec<String>,
    pub check: Option<RepomdCheck>,
}

/// Hash types strong enough to trust, strongest first.
const TRUSTED: &[&str] = &["sha512", "sha256"];

impl RepomdCheck {
    /// Whether `data` is one of the listed versions, judged by the strongest trusted
    /// hash each version gives.
    pub fn verify(&self, data: &[u8]) -> Result<(), String> {
        let mut compared = false;
        for hashes in &self.versions {
            let Some((kind, want)) = TRUSTED
                .iter()
                .find_map(|t| hashes.iter().find(|(k, _)| k == t))
            else {
                continue;
            };
            compared = true;
            if super::digest(kind, data)? == want.to_ascii_lowercase() {
                return Ok(());
            }
        }
        if compared {
            Err("repomd.xml matches none of the metalink's checksums".into())
        } else {
            Err("the metalink lists no sha256 or sha512 checksum for repomd.xml".into())
        }
    }
}

/// The URLs of a mirrorlist: one per line, `#` comments and blank lines skipped.
pub fn parse_mirrorlist(text: &str) -> Vec<String> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_string)
        .collect()
}

fn attr<'a>(tag: &'a str, name: &str) -> Option<&'a str> {
    let key = format!(" {name}=\"");
    let i = tag.find(&key)? + key.len();
    let j = tag[i..].find('"')? + i;
    Some(&tag[i..j])
}

/// Every `<open …>text</close>` element's (opening tag, text) in `s`, for a tag name
/// that may carry a namespace prefix.
fn elements<'a>(s: &'a str, name: &str) -> Vec<(&'a str, &'a str)> {
    let mut out = Vec::new();
    let mut rest = s;
    let open = format!("<{name}");
    let close = format!("</{name}>");
    while let Some(i) = rest.find(&open) {
        let after = &rest[i + open.len()..];
        // `<hash>` must not match `<hashes>`.
        if !after.starts_with([' ', '>', '\t', '\n', '\r']) {
            rest = after;
            continue;
        }
        let Some(gt) = after.find('>') else { break };
        let tag = &after[..gt];
        let body = &after[gt + 1..];
        let Some(end) = body.find(&close) else { break };
        out.push((tag, &body[..end]));
        rest = &body[end + close.len()..];
    }
    out
}

/// The mirrors and `repomd.xml` checksums of a metalink.
pub fn parse_metalink(xml: &str) -> Result<(Vec<String>, RepomdCheck), String> {
    let file = elements(xml, "file")
        .into_iter()
        .find(|(tag, _)| attr(tag, "name") == Some("repomd.xml"))
        .map(|(_, body)| body)
        .ok_or("no <file name=\"repomd.xml\"> element")?;
    let mut check = RepomdCheck::default();
    for (_, v) in elements(file, "verification") {
        let hashes: Vec<(String, String)> = elements(v, "hash")
            .into_iter()
            .filter_map(|(tag, hex)| Some((attr(tag, "type")?.to_string(), hex.trim().to_string())))
            .collect();
        check.versions.push(hashes);
    }
    check.max_size = elements(file, "size")
        .into_iter()
        .filter_map(|(_, n)| n.trim().parse::<u64>().ok())
        .max();
    let mut urls: Vec<(i64, String)> = elements(file, "url")
        .into_iter()
        .filter_map(|(tag, url)| {
            let base = url.trim().strip_suffix("repodata/repomd.xml")?;
            let preference = attr(tag, "preference").and_then(|p| p.parse().ok());
            Some((preference.unwrap_or(0), base.to_string()))
        })
        .collect();
    // Highest preference first, as librepo orders them; ties keep the listed order.
    urls.sort_by_key(|(p, _)| std::cmp::Reverse(*p));
    Ok((urls.into_iter().map(|(_, u)| u).collect(), check))
}

fn usable(url: &str) -> bool {
    ["file://", "http://", "https://"]
        .iter()
        .any(|s| url.starts_with(s))
}

/// Where to fetch `repo` from: its base URLs, then the mirrors of its metalink (or,
/// without one, its mirrorlist — which may itself hold a metalink, as dnf accepts).
/// A list that cannot be had is an error naming the repo and the URL when the repo
/// has no base URL to fall back on; otherwise it is a warning.
pub fn sources(http: &Http, repo: &RepoConfig) -> Result<Sources, FetchError> {
    let mut out = Sources {
        bases: repo.baseurls.clone(),
        check: None,
    };
    let Some(list_url) = repo.metalink.as_ref().or(repo.mirrorlist.as_ref()) else {
        return Ok(out);
    };
    let fail = |why: String| FetchError::Repo {
        repo: repo.id.clone(),
        why: format!("{list_url}: {why}"),
    };
    let listed = get_bounded(http, list_url, MAX_LIST_BYTES)
        .map_err(|e| fail(e.to_string()))
        .and_then(|body| String::from_utf8(body).map_err(|_| fail("not UTF-8".into())))
        .and_then(|text| {
            let is_metalink = repo.metalink.is_some() || text.trim_start().starts_with('<');
            if is_metalink {
                parse_metalink(&text)
                    .map(|(urls, check)| (urls, Some(check)))
                    .map_err(|why| fail(format!("bad metalink: {why}")))
            } else {
                Ok((parse_mirrorlist(&text), None))
            }
        });
    match listed {
        Ok((urls, check)) => {
            for u in urls.into_iter().filter(|u| usable(u)) {
                if !out.bases.contains(&u) {
                    out.bases.push(u);
                }
            }
            out.check = check;
        }
        Err(e) if !out.bases.is_empty() => {
            tracing::warn!("{e}; using the repository's baseurl only");
        }
        Err(e) => return Err(e),
    }
    if out.bases.is_empty() {
        return Err(fail("lists no usable (file, http, https) mirror".into()));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::io::{BufRead, BufReader, Write};
    use std::net::TcpListener;
    use std::path::Path;

    use super::*;
    use crate::rpmmd::{digest, load_repo};

    const PRIMARY: &[u8] = b"<metadata packages=\"0\"/>";

    /// A one-file repository under `dir`; returns its repomd.xml.
    fn write_repo(dir: &Path) -> Vec<u8> {
        std::fs::create_dir_all(dir.join("repodata")).unwrap();
        std::fs::write(dir.join("repodata/primary.xml"), PRIMARY).unwrap();
        let repomd = format!(
            "<repomd><data type=\"primary\"><checksum type=\"sha256\">{}</checksum>\
             <location href=\"repodata/primary.xml\"/></data></repomd>",
            digest("sha256", PRIMARY).unwrap()
        );
        std::fs::write(dir.join("repodata/repomd.xml"), &repomd).unwrap();
        repomd.into_bytes()
    }

    fn metalink(repomd: &[u8], hash_type: &str, urls: &[(&str, u32)]) -> String {
        let urls: String = urls
            .iter()
            .map(|(u, pref)| {
                format!(
                    "<url protocol=\"https\" preference=\"{pref}\">{u}repodata/repomd.xml</url>\n"
                )
            })
            .collect();
        format!(
            r#"<?xml version="1.0" encoding="utf-8"?>
<metalink version="3.0" xmlns="http://www.metalinker.org/" xmlns:mm0="http://fedorahosted.org/mirrormanager">
 <files>
  <file name="repomd.xml">
   <mm0:timestamp>1700000000</mm0:timestamp>
   <size>{}</size>
   <verification>
    <hash type="md5">00</hash>
    <hash type="{hash_type}">{}</hash>
   </verification>
   <mm0:alternates><mm0:alternate><size>9</size>
    <verification><hash type="sha256">{}</hash></verification>
   </mm0:alternate></mm0:alternates>
   <resources maxconnections="1">
{urls}   </resources>
  </file>
 </files>
</metalink>
"#,
            repomd.len(),
            digest(hash_type, repomd).unwrap(),
            digest("sha256", b"an older repomd").unwrap(),
        )
    }

    fn repo(id: &str) -> RepoConfig {
        RepoConfig {
            id: id.into(),
            ..RepoConfig::default()
        }
    }

    #[test]
    fn parse_lists() {
        assert_eq!(
            parse_mirrorlist("# mirrors\n\nhttp://a/os/\n  https://b/os/ \n"),
            ["http://a/os/", "https://b/os/"]
        );
        let ml = metalink(
            b"x",
            "sha512",
            &[
                ("https://low/", 10),
                ("https://high/", 100),
                ("rsync://r/", 50),
            ],
        );
        let (urls, check) = parse_metalink(&ml).unwrap();
        assert_eq!(urls, ["https://high/", "rsync://r/", "https://low/"]);
        assert_eq!(check.max_size, Some(9));
        assert_eq!(check.versions.len(), 2);
        check.verify(b"x").unwrap();
        check.verify(b"an older repomd").unwrap();
        assert!(check.verify(b"y").unwrap_err().contains("none of"));
        let weak = RepomdCheck {
            versions: vec![vec![("md5".into(), "00".into())]],
            max_size: None,
        };
        assert!(weak
            .verify(b"x")
            .unwrap_err()
            .contains("no sha256 or sha512"));
        assert!(parse_metalink("<metalink/>").is_err());
    }

    /// file:// lists: mirrors are tried in order (a dead one skipped), repomd.xml is
    /// checked against the metalink, and errors name the repo and the URL.
    #[test]
    fn file_metalink_and_mirrorlist() {
        let d = tempfile::tempdir().unwrap();
        let good = d.path().join("good");
        let repomd = write_repo(&good);
        let good_url = format!("file://{}/", good.display());
        let dead_url = format!("file://{}/dead/", d.path().display());
        let ml = d.path().join("metalink.xml");
        std::fs::write(
            &ml,
            metalink(&repomd, "sha256", &[(&dead_url, 100), (&good_url, 90)])
                .replace("https://", "file://"),
        )
        .unwrap();
        let http = Http::default();
        let r = RepoConfig {
            metalink: Some(format!("file://{}", ml.display())),
            ..repo("fedora")
        };
        let loaded = load_repo(&http, &r, false, None).unwrap();
        assert_eq!(loaded.baseurl, good_url);
        assert_eq!(loaded.metadata.primary_xml, PRIMARY);

        // The mirror serves another repomd.xml than the metalink lists.
        std::fs::write(
            good.join("repodata/repomd.xml"),
            b"<repomd>tampered</repomd>",
        )
        .unwrap();
        let e = load_repo(&http, &r, false, None).unwrap_err().to_string();
        assert!(
            e.contains("repository fedora")
                && e.contains(&good_url)
                && e.contains("none of the metalink"),
            "{e}"
        );
        write_repo(&good);

        let list = d.path().join("mirrorlist");
        std::fs::write(&list, format!("# list\n{dead_url}\n{good_url}\n")).unwrap();
        let r = RepoConfig {
            mirrorlist: Some(format!("file://{}", list.display())),
            ..repo("updates")
        };
        assert_eq!(load_repo(&http, &r, false, None).unwrap().baseurl, good_url);

        let r = RepoConfig {
            mirrorlist: Some(format!("file://{}/missing", d.path().display())),
            ..repo("gone")
        };
        let e = load_repo(&http, &r, false, None).unwrap_err().to_string();
        assert!(
            e.contains("repository gone") && e.contains("/missing"),
            "{e}"
        );
        // With a baseurl to fall back on, a missing list is only a warning.
        let r = RepoConfig {
            baseurls: vec![good_url.clone()],
            ..r
        };
        assert_eq!(load_repo(&http, &r, false, None).unwrap().baseurl, good_url);
    }

    /// A local HTTP server: `paths` answered with 200, `/endless` streams forever,
    /// anything else is a 404. Returns the base URL.
    fn serve(paths: BTreeMap<String, Vec<u8>>) -> String {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { break };
                let mut line = String::new();
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                if reader.read_line(&mut line).is_err() {
                    continue;
                }
                // Skip the headers.
                let mut h = String::new();
                while reader.read_line(&mut h).is_ok_and(|n| n > 2) {
                    h.clear();
                }
                let path = line.split_whitespace().nth(1).unwrap_or("").to_string();
                if path == "/endless" {
                    let _ = stream.write_all(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n");
                    let chunk = [b'x'; 65536];
                    while stream.write_all(&chunk).is_ok() {}
                    continue;
                }
                let _ = match paths.get(&path) {
                    Some(body) => stream
                        .write_all(
                            format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n", body.len())
                                .as_bytes(),
                        )
                        .and_then(|_| stream.write_all(body)),
                    None => stream.write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"),
                };
            }
        });
        url
    }

    #[test]
    fn http_metalink_and_bounds() {
        let d = tempfile::tempdir().unwrap();
        let repomd = write_repo(d.path());
        let mirror = serve(BTreeMap::from([
            ("/os/repodata/repomd.xml".to_string(), repomd.clone()),
            ("/os/repodata/primary.xml".to_string(), PRIMARY.to_vec()),
        ]));
        let ml = metalink(
            &repomd,
            "sha512",
            &[
                (&format!("{mirror}/dead/"), 100),
                (&format!("{mirror}/os/"), 50),
            ],
        );
        let url = serve(BTreeMap::from([(
            "/metalink".to_string(),
            ml.replace("https://", "http://").into_bytes(),
        )]));
        let http = Http::default();
        let r = RepoConfig {
            metalink: Some(format!("{url}/metalink")),
            ..repo("fedora")
        };
        assert_eq!(
            load_repo(&http, &r, false, None).unwrap().baseurl,
            format!("{mirror}/os/")
        );
        // A server that never stops: read no more than the bound.
        let e = get_bounded(&http, &format!("{url}/endless"), 1 << 16)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("/endless") && e.contains("larger than the 65536 bytes"),
            "{e}"
        );
        let r = RepoConfig {
            mirrorlist: Some(format!("{url}/endless")),
            ..repo("hostile")
        };
        let e = load_repo(&http, &r, false, None).unwrap_err().to_string();
        assert!(
            e.contains("repository hostile") && e.contains("larger than"),
            "{e}"
        );
    }
}
