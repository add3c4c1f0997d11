//! /dev inside the container: the default devices and links, devices from
//! `linux.devices`, devices in a user namespace (bound from the host), and a
//! rootfs whose `dev` is a symlink out to the host.
//!
//! Validate against runc with:
//! `RRUN_TEST_RUNTIME=/usr/bin/runc cargo test --test devices -- --test-threads=2`
//!
//! Against runc 1.1.5 every test passes except
//! `dev_symlink_to_a_host_dir_creates_nothing_there`: runc 1.1.5 follows a
//! `rootfs/dev` symlink when it makes the /dev links and creates `fd`,
//! `stdin`, `stdout`, `stderr` and `ptmx` in the host directory (the device
//! nodes themselves it resolves inside the rootfs). That is a runc defect
//! (the crun CVE-2019-18837 class), not a test error; rrun must pass.

mod common;

use common::*;
use serde_json::{json, Value};
use std::fs;
use std::os::unix::fs::symlink;
use std::path::Path;

/// Script printing `stat_<path>=<type> <major hex> <minor hex> <mode> <uid> <gid>`.
fn stat_script(paths: &[&str]) -> String {
    paths
        .iter()
        .map(|p| format!("echo stat_{p}=$(stat -c '%F %t %T %a %u %g' {p})"))
        .collect::<Vec<_>>()
        .join("; ")
}

fn stat_of<'a>(out: &'a str, path: &str) -> &'a str {
    field(out, &format!("stat_{path}"))
}

const DEFAULT_DEVICES: [(&str, &str); 6] = [
    ("/dev/null", "1 3"),
    ("/dev/zero", "1 5"),
    ("/dev/full", "1 7"),
    ("/dev/random", "1 8"),
    ("/dev/urandom", "1 9"),
    ("/dev/tty", "5 0"),
];

/// Exercises the default devices: each line is `<name>=<result>`.
const USE_DEVICES: &str = "\
    if echo x > /dev/null; then echo null=ok; else echo null=failed; fi; \
    echo null_read=$(wc -c < /dev/null); \
    echo zero=$(head -c 4 /dev/zero | od -An -tx1 | tr -d ' \\n'); \
    if echo x 2>/dev/null > /dev/full; then echo full=ok; else echo full=refused; fi; \
    echo urandom=$(head -c 16 /dev/urandom | wc -c)";

fn check_device_use(out: &str) {
    assert_eq!(field(out, "null"), "ok", "{out}");
    assert_eq!(field(out, "null_read"), "0");
    assert_eq!(field(out, "zero"), "00000000");
    assert_eq!(field(out, "full"), "refused", "writing /dev/full must fail");
    assert_eq!(field(out, "urandom"), "16");
}

// ---------------------------------------------------------------------------
// Defaults
// ---------------------------------------------------------------------------

#[test]
fn default_devices_exist_with_runc_numbers_and_modes() {
    let mut env = TestEnv::new("dev_defaults");
    let paths: Vec<&str> = DEFAULT_DEVICES.iter().map(|(p, _)| *p).collect();
    env.bundle
        .set_script(&format!("{}; {USE_DEVICES}", stat_script(&paths)));
    let out = run_ok(&env);
    for (path, numbers) in DEFAULT_DEVICES {
        assert_eq!(
            stat_of(&out, path),
            format!("character special file {numbers} 666 0 0"),
            "{path}"
        );
    }
    check_device_use(&out);
    env.assert_nothing_left();
}

#[test]
fn dev_links_and_dev_mounts_are_in_place() {
    let mut env = TestEnv::new("dev_links");
    // Writing through /dev/stdout comes last: the harness's stdout is a
    // file without O_APPEND, so later writes through fd 1 would overwrite it.
    env.bundle.set_script(
        "for l in fd stdin stdout stderr ptmx; do echo link_$l=$(readlink /dev/$l); done; \
         echo fds=$(ls /dev/fd/ | tr '\\n' ' '); \
         for m in /dev/pts /dev/shm /dev/mqueue; do \
           echo mnt_$m=$(awk -v m=$m '$5 == m {for (i = 7; i < NF; i++) if ($i == \"-\") {print $(i+1); break}}' /proc/self/mountinfo | tail -n 1); \
         done; \
         echo ptmx=$(stat -c '%F %t %T' /dev/pts/ptmx); \
         echo via-stdout >> /dev/stdout",
    );
    let out = run_ok(&env);
    assert_eq!(field(&out, "link_fd"), "/proc/self/fd");
    assert_eq!(field(&out, "link_stdin"), "/proc/self/fd/0");
    assert_eq!(field(&out, "link_stdout"), "/proc/self/fd/1");
    assert_eq!(field(&out, "link_stderr"), "/proc/self/fd/2");
    assert_eq!(field(&out, "link_ptmx"), "pts/ptmx");
    let fds: Vec<&str> = field(&out, "fds").split_whitespace().collect();
    for fd in ["0", "1", "2"] {
        assert!(fds.contains(&fd), "/dev/fd lacks {fd}: {fds:?}");
    }
    assert!(out.lines().any(|l| l == "via-stdout"), "{out}");
    assert_eq!(field(&out, "mnt_/dev/pts"), "devpts");
    assert_eq!(field(&out, "mnt_/dev/shm"), "tmpfs");
    assert_eq!(field(&out, "mnt_/dev/mqueue"), "mqueue");
    assert_eq!(field(&out, "ptmx"), "character special file 5 2");
    env.assert_nothing_left();
}

// ---------------------------------------------------------------------------
// linux.devices
// ---------------------------------------------------------------------------

fn device(path: &str, major: i64, minor: i64, mode: u32, uid: u32, gid: u32) -> Value {
    json!({"path": path, "type": "c", "major": major, "minor": minor,
           "fileMode": mode, "uid": uid, "gid": gid})
}

#[test]
fn configured_devices_get_their_numbers_mode_and_owner() {
    let mut env = TestEnv::new("dev_configured");
    env.bundle.edit(|c| {
        c["linux"]["devices"] = json!([
            device("/dev/fuse", 10, 229, 0o666, 1000, 1000),
            device("/dev/net/tun", 10, 200, 0o600, 0, 0),
            device("/dev/custom/deep/kmsg", 1, 11, 0o640, 0, 5),
        ]);
        // Allow reading the devices in the device cgroup, as a user would.
        c["linux"]["resources"]["devices"]
            .as_array_mut()
            .unwrap()
            .push(json!({"allow": true, "type": "c", "major": 10, "access": "rwm"}));
    });
    env.bundle.set_script(&format!(
        "{}; echo netdir=$(stat -c %F /dev/net)",
        stat_script(&["/dev/fuse", "/dev/net/tun", "/dev/custom/deep/kmsg"])
    ));
    let out = run_ok(&env);
    assert_eq!(
        stat_of(&out, "/dev/fuse"),
        "character special file a e5 666 1000 1000"
    );
    assert_eq!(
        stat_of(&out, "/dev/net/tun"),
        "character special file a c8 600 0 0"
    );
    assert_eq!(
        stat_of(&out, "/dev/custom/deep/kmsg"),
        "character special file 1 b 640 0 5"
    );
    assert_eq!(field(&out, "netdir"), "directory");
    // Nothing leaked into the rootfs's own /dev (a tmpfs is mounted there).
    assert!(!env.bundle.rootfs().join("dev/fuse").exists());
    env.assert_nothing_left();
}

// ---------------------------------------------------------------------------
// User namespace
// ---------------------------------------------------------------------------

#[test]
fn devices_in_a_user_namespace_are_bound_from_the_host_and_work() {
    let mut env = TestEnv::new("dev_userns");
    env.bundle.add_user_namespace();
    let paths: Vec<&str> = DEFAULT_DEVICES.iter().map(|(p, _)| *p).collect();
    env.bundle.set_script(&format!(
        "{}; {USE_DEVICES}; echo uid=$(id -u)",
        paths
            .iter()
            .map(|p| format!("echo num_{p}=$(stat -c '%F %t %T' {p})"))
            .collect::<Vec<_>>()
            .join("; ")
    ));
    let out = run_ok(&env);
    for (path, numbers) in DEFAULT_DEVICES {
        assert_eq!(
            field(&out, &format!("num_{path}")),
            format!("character special file {numbers}"),
            "{path}"
        );
    }
    check_device_use(&out);
    assert_eq!(field(&out, "uid"), "0");
    env.assert_nothing_left();
}

// ---------------------------------------------------------------------------
// A /dev symlink out of the rootfs
// ---------------------------------------------------------------------------

fn entries(dir: &Path) -> Vec<String> {
    fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn dev_symlink_to_a_host_dir_creates_nothing_there() {
    for relative in [false, true] {
        let name = if relative {
            "dev_symlink_rel"
        } else {
            "dev_symlink_abs"
        };
        let mut env = TestEnv::new(name);
        let hostdev = env.dir.join("hostdev");
        fs::create_dir(&hostdev).unwrap();
        let dev = env.bundle.rootfs().join("dev");
        fs::remove_dir(&dev).unwrap();
        if relative {
            symlink(
                format!("../../../../../../../..{}", hostdev.display()),
                &dev,
            )
            .unwrap();
        } else {
            symlink(&hostdev, &dev).unwrap();
        }
        env.bundle.edit(|c| {
            // Nothing mounted on /dev: the runtime must create devices itself.
            c["mounts"]
                .as_array_mut()
                .unwrap()
                .retain(|m| !m["destination"].as_str().unwrap().starts_with("/dev"));
            c["linux"]["devices"] = json!([device("/dev/fuse", 10, 229, 0o666, 0, 0)]);
        });
        env.bundle.set_script("ls /dev");
        let out = env.try_create(&[]);
        let created = entries(&hostdev);
        assert!(
            created.is_empty(),
            "{name}: the runtime created {created:?} in the host dir {} ({})",
            hostdev.display(),
            describe(&out)
        );
        if out.status.success() {
            env.rt.run_ok(&["delete", "--force", env.id()]);
        } else {
            assert!(!stderr(&out).trim().is_empty(), "{}", describe(&out));
        }
        assert!(entries(&hostdev).is_empty());
        env.assert_nothing_left();
    }
}
