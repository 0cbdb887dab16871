//! Files a treefile names — includes, `.repo` files, `add-files`, `postprocess-script`,
//! `check-passwd`/`check-groups` files — read as what they must be: regular files (a
//! symlink to one is fine), of bounded size, opened so that a FIFO or a device can
//! never block or flood the compose. Anything else is an error naming the file.

use std::fs;
use std::io::{self, Read};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// Treefiles, `.repo` files, scripts, passwd/group files: text a person writes.
pub const MAX_TEXT: u64 = 16 << 20;
/// An `add-files` source (held in memory while it is written as an object).
pub const MAX_ADD_FILE: u64 = 1 << 30;

/// The bytes of `path`: a regular file of at most `max` bytes.
pub fn read_capped(path: &Path, max: u64) -> io::Result<Vec<u8>> {
    let flags = rustix::fs::OFlags::NONBLOCK;
    let file = fs::File::options()
        .read(true)
        .custom_flags(flags.bits() as i32)
        .open(path)?;
    let meta = file.metadata()?;
    if !meta.is_file() {
        let kind = if meta.is_dir() {
            "a directory"
        } else {
            "a FIFO, socket or device"
        };
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("is {kind}, not a regular file"),
        ));
    }
    if meta.len() > max {
        return Err(too_large(max));
    }
    let mut data = Vec::with_capacity(meta.len() as usize);
    file.take(max + 1).read_to_end(&mut data)?;
    if data.len() as u64 > max {
        return Err(too_large(max));
    }
    Ok(data)
}

/// The text of `path`: a regular UTF-8 file of at most `max` bytes.
pub fn read_text_capped(path: &Path, max: u64) -> io::Result<String> {
    String::from_utf8(read_capped(path, max)?)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "is not UTF-8 text"))
}

fn too_large(max: u64) -> io::Error {
    io::Error::new(
        io::ErrorKind::FileTooLarge,
        format!("is larger than the {} MiB limit for this input", max >> 20),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_bounded_regular_files() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("f");
        fs::write(&f, b"hello").unwrap();
        assert_eq!(read_capped(&f, 5).unwrap(), b"hello");
        let e = read_capped(&f, 4).unwrap_err();
        assert!(e.to_string().contains("larger than"), "{e}");
        // A symlink to a regular file is read.
        std::os::unix::fs::symlink(&f, dir.path().join("l")).unwrap();
        assert_eq!(read_capped(&dir.path().join("l"), 5).unwrap(), b"hello");
        // /dev/zero would never end; a FIFO would block forever.
        let e = read_capped(Path::new("/dev/zero"), MAX_TEXT).unwrap_err();
        assert!(e.to_string().contains("not a regular file"), "{e}");
        let fifo = dir.path().join("fifo");
        rustix::fs::mkfifoat(
            rustix::fs::CWD,
            &fifo,
            rustix::fs::Mode::from_raw_mode(0o600),
        )
        .unwrap();
        let e = read_capped(&fifo, MAX_TEXT).unwrap_err();
        assert!(e.to_string().contains("not a regular file"), "{e}");
        let e = read_capped(dir.path(), MAX_TEXT).unwrap_err();
        assert!(e.to_string().contains("directory"), "{e}");
        fs::write(&f, [0xff, 0xfe]).unwrap();
        assert!(read_text_capped(&f, MAX_TEXT).is_err());
    }
}
