//! Unit tests of the importer on bad input: paths escaping the root, device nodes,
//! and RPMs corrupted or truncated anywhere, which must give errors naming the file
//! and never a panic.

use std::fs;

use rpm::{CompressionWithLevel, FileOptions};

use super::tests::{builder, everything, setup, users, write_rpm};
use super::*;

#[test]
fn refuses_escaping_paths_and_devices() {
    let (tmp, repo) = setup();
    let mut b = builder("escape", CompressionWithLevel::Gzip(1));
    b.with_file_contents("pwned", FileOptions::new("/usr/../../etc/shadow"))
        .unwrap();
    let rpm = write_rpm(tmp.path(), &mut b);
    let e = import_rpm(&repo, &rpm, &ImportOpts::default(), &users(), None)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("escape.rpm") && e.contains("escape-1.0-1.x86_64") && e.contains("'..'"),
        "{e}"
    );

    for (name, opts) in [
        (
            "chardev",
            FileOptions::character_device("/usr/lib/null", 1, 3),
        ),
        ("fifo", FileOptions::fifo("/usr/lib/pipe")),
    ] {
        let mut b = builder(name, CompressionWithLevel::Gzip(1));
        b.with_special_file(opts).unwrap();
        let rpm = write_rpm(tmp.path(), &mut b);
        // Device nodes are dropped by default (rpm-ostree's ignore-devices), refused
        // without it; FIFOs are always refused.
        if name == "chardev" {
            let (pkg, _) = import_rpm(&repo, &rpm, &ImportOpts::default(), &users(), None).unwrap();
            assert!(pkg.tree.lookup("usr/lib/null").is_none());
        }
        let strict = ImportOpts {
            ignore_devices: false,
            ..ImportOpts::default()
        };
        let e = import_rpm(&repo, &rpm, &strict, &users(), None)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains(&format!("{name}.rpm"))
                && e.contains("/usr/lib/")
                && e.contains("cannot be stored"),
            "{e}"
        );
    }
}

#[test]
fn corrupt_and_truncated_rpms_are_errors() {
    let (tmp, repo) = setup();
    let rpm = everything(tmp.path(), CompressionWithLevel::Zstd(3));
    let good = fs::read(&rpm).unwrap();
    let bad = tmp.path().join("bad.rpm");
    let check = |data: &[u8], what: &str| {
        fs::write(&bad, data).unwrap();
        match import_rpm(&repo, &bad, &ImportOpts::default(), &users(), None) {
            Ok(_) => panic!("{what}: imported"),
            Err(e) => assert!(e.to_string().contains("bad.rpm"), "{what}: {e}"),
        }
    };
    check(b"", "empty");
    check(b"not an rpm at all, just text\n", "text");
    for cut in [
        10,
        96,
        200,
        1000,
        good.len() / 2,
        good.len() - 1000,
        good.len() - 1,
    ] {
        check(&good[..cut], &format!("truncated at {cut}"));
    }
    let offsets = rpm::PackageMetadata::parse(&mut good.as_slice())
        .unwrap()
        .get_package_segment_offsets();
    let (header, payload) = (offsets.header as usize, offsets.payload as usize);
    // A header index entry, the header data store, the payload's middle and its end.
    for at in [
        header + 20,
        (header + payload) / 2,
        (payload + good.len()) / 2,
        good.len() - 3,
    ] {
        let mut flipped = good.clone();
        flipped[at] ^= 0x40;
        check(&flipped, &format!("bit flip at {at}"));
    }
}

/// Every single-byte corruption and every truncation of the lead and headers, and a
/// sample through the payload, gives an error or (for bytes no digest covers, like the
/// signature header's reserved space) a successful import — never a panic.
#[test]
fn no_panic_on_any_corruption() {
    let (tmp, repo) = setup();
    let mut b = builder("small", CompressionWithLevel::Gzip(1));
    b.with_file_contents("abc", FileOptions::new("/usr/bin/a"))
        .unwrap()
        .with_symlink(FileOptions::symlink("/usr/bin/b", "a"))
        .unwrap();
    let good = fs::read(write_rpm(tmp.path(), &mut b)).unwrap();
    let payload = rpm::PackageMetadata::parse(&mut good.as_slice())
        .unwrap()
        .get_package_segment_offsets()
        .payload as usize;
    let bad = tmp.path().join("bad.rpm");
    let positions = (0..payload).chain((payload..good.len()).step_by(7));
    for at in positions {
        for data in [good[..at].to_vec(), {
            let mut d = good.clone();
            d[at] ^= 0xa5;
            d
        }] {
            fs::write(&bad, &data).unwrap();
            if let Err(e) = import_rpm(&repo, &bad, &ImportOpts::default(), &users(), None) {
                assert!(e.to_string().contains("bad.rpm"), "{e}");
            }
        }
    }
}

/// An RPM whose bytes no longer have the digest the fetcher verified (replaced between
/// fetch and import) is refused, on a cache miss and with no cache at all.
#[test]
fn refuses_an_rpm_that_changed_after_verification() {
    let (tmp, repo) = setup();
    let rpm = everything(tmp.path(), CompressionWithLevel::Gzip(1));
    let verified = Checksum::of(b"the bytes the fetcher saw");
    let cache = tmp.path().join("cache");
    for dir in [Some(cache.as_path()), None] {
        let e = import_rpm_known(
            &repo,
            &rpm,
            &ImportOpts::default(),
            &users(),
            dir,
            Some(&verified),
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("everything.rpm") && e.contains("changed after its digest was verified"),
            "{e}"
        );
    }
}
