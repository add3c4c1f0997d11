//! Self-tests of the shared harness in tests/common (no runtime involved,
//! except where noted), so the other suites' helpers can be trusted.

mod common;

use common::*;
use std::ffi::CString;
use std::fs;

#[test]
fn rfc3339_parsing() {
    assert_eq!(parse_rfc3339("1970-01-01T00:00:00Z"), Some(0));
    assert_eq!(
        parse_rfc3339("2026-11-25T03:54:27.131589614Z"),
        Some(1_795_578_867)
    );
    assert_eq!(
        parse_rfc3339("2000-03-01T00:00:00+01:00"),
        Some(951_865_200)
    );
    assert_eq!(
        parse_rfc3339("2000-03-01T00:00:00-00:30"),
        Some(951_870_600)
    );
    for bad in [
        "",
        "2026-11-25",
        "2026-11-25 03:54:27Z",
        "2026-11-25T03:54:27",
        "2026-13-25T03:54:27Z",
        "2026-11-25T03:54:27.Z",
        "2026-11-25T03:54:27+0100",
    ] {
        assert_eq!(parse_rfc3339(bad), None, "{bad:?}");
    }
}

#[test]
fn mentions_matches_whole_words_only() {
    assert!(mentions("invalid container ID format", "id"));
    assert!(!mentions("invalid container format", "id"));
    assert!(mentions("container \"abc-1\" does not exist", "abc-1"));
    assert!(!mentions("container abc-12 does not exist", "abc-1"));
    assert!(mentions("bad Process.process.args type", "process.args"));
    assert!(mentions("open config.json: no such file", "config.json"));
    assert!(mentions("stat /nonexistent: no such file", "/nonexistent"));
    assert!(!mentions("anything", ""));
}

#[test]
fn mountinfo_unescaping() {
    assert_eq!(unescape_mountinfo("/tmp/a\\040b"), "/tmp/a b");
    assert_eq!(unescape_mountinfo("/tmp/x\\011y\\134z"), "/tmp/x\ty\\z");
    assert_eq!(unescape_mountinfo("/plain"), "/plain");
    assert_eq!(unescape_mountinfo("/end\\04"), "/end\\04");
    // A backslash that no escape follows, before a multi-byte character,
    // is kept as it is (and must not split the character).
    assert_eq!(unescape_mountinfo("/a\\éé"), "/a\\éé");
}

#[test]
fn test_dir_drop_detaches_mounts_and_removes_dir() {
    let dir = TestDir::new("harness_mount");
    let path = dir.path().to_path_buf();
    let target = dir.join("mnt dir");
    fs::create_dir(&target).unwrap();
    let src = CString::new("tmpfs").unwrap();
    let tgt = CString::new(target.to_str().unwrap()).unwrap();
    let rc = unsafe {
        libc::mount(
            src.as_ptr(),
            tgt.as_ptr(),
            src.as_ptr(),
            0,
            std::ptr::null(),
        )
    };
    assert_eq!(rc, 0, "mount tmpfs: {}", std::io::Error::last_os_error());
    fs::write(target.join("f"), "x").unwrap();
    assert!(mount_points().iter().any(|m| m == target.to_str().unwrap()));
    drop(dir);
    assert!(
        !mount_points()
            .iter()
            .any(|m| m.starts_with(path.to_str().unwrap())),
        "mount survived TestDir drop"
    );
    assert!(!path.exists(), "TestDir not removed");
}

#[test]
fn bundle_rootfs_has_busybox_applets_and_users() {
    let dir = TestDir::new("harness_bundle");
    let b = Bundle::new(dir.path());
    for applet in ["sh", "echo", "cat", "sleep", "id", "mount", "ps", "wc"] {
        let p = b.rootfs().join("bin").join(applet);
        assert_eq!(
            fs::read_link(&p).ok().as_deref(),
            Some(std::path::Path::new("busybox")),
            "{applet}"
        );
    }
    let passwd = b.read_rootfs_file("/etc/passwd").unwrap();
    assert!(passwd.starts_with("root:x:0:0:"));
    assert!(passwd.contains(":1000:1000:"));
    let c: serde_json::Value = serde_json::from_slice(&fs::read(b.config_path()).unwrap()).unwrap();
    assert_eq!(c["process"]["terminal"], false);
    assert_eq!(c["root"]["path"], "rootfs");
}
