//! Mounts: binds (dir/file, ro/rw, recursive), created targets, tmpfs
//! options, per-mount flags, the standard pseudo file systems, propagation,
//! recursive attributes, a read-only root, `--no-pivot`, and mount
//! destinations that try to escape the rootfs through symlinks. Every check
//! is what the container sees (its own /proc/self/mountinfo, `stat`, `df`,
//! failed writes) or what lands on the host.
//!
//! Validate against runc with:
//! `RRUN_TEST_RUNTIME=/usr/bin/runc cargo test --test mounts -- --test-threads=2`
//!
//! runc 1.1.5 lacks recursive mount attributes (`rro`, `rnosymfollow`) and
//! idmapped mounts (mount `uidMappings`/`gidMappings`): those tests are
//! validated against rrun only and skipped for reference runtimes.

mod common;

use common::*;
use serde_json::{json, Value};
use std::ffi::CString;
use std::fs;
use std::os::unix::fs::{symlink, MetadataExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

const T: Duration = Duration::from_secs(10);

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

fn push_mount(env: &mut TestEnv, m: Value) {
    env.bundle
        .edit(|c| c["mounts"].as_array_mut().unwrap().push(m));
}

fn bind(src: &Path, dest: &str, options: &[&str]) -> Value {
    json!({
        "destination": dest,
        "type": "bind",
        "source": src.to_str().unwrap(),
        "options": options,
    })
}

/// One line of /proc/self/mountinfo.
#[derive(Debug, Clone)]
struct MountInfo {
    mount_point: String,
    /// Per-mount options (`rw,nosuid,...`).
    opts: Vec<String>,
    /// Optional fields (`shared:N`, `master:N`, ...).
    optional: Vec<String>,
    fstype: String,
    super_opts: Vec<String>,
}

impl MountInfo {
    fn has_opt(&self, o: &str) -> bool {
        self.opts.iter().any(|x| x == o)
    }
    fn has_super_opt(&self, o: &str) -> bool {
        self.super_opts.iter().any(|x| x == o)
    }
    fn tag(&self, prefix: &str) -> Option<&str> {
        self.optional
            .iter()
            .find_map(|f| f.strip_prefix(prefix).and_then(|r| r.strip_prefix(':')))
    }
}

fn parse_mountinfo(text: &str) -> Vec<MountInfo> {
    let mut v = Vec::new();
    for line in text.lines() {
        let f: Vec<&str> = line.split(' ').collect();
        let Some(sep) = f.iter().position(|x| *x == "-") else {
            continue;
        };
        if f.len() < 6 || f.len() < sep + 4 {
            continue;
        }
        v.push(MountInfo {
            mount_point: unescape_mountinfo(f[4]),
            opts: f[5].split(',').map(str::to_string).collect(),
            optional: f[6..sep].iter().map(|s| s.to_string()).collect(),
            fstype: f[sep + 1].to_string(),
            super_opts: f[sep + 3].split(',').map(str::to_string).collect(),
        });
    }
    v
}

/// The top-most mount at `mp` in a mountinfo text.
fn mount_at(info: &str, mp: &str) -> Option<MountInfo> {
    parse_mountinfo(info)
        .into_iter()
        .rev()
        .find(|m| m.mount_point == mp)
}

fn must_mount_at(info: &str, mp: &str) -> MountInfo {
    mount_at(info, mp).unwrap_or_else(|| panic!("no mount at {mp} in:\n{info}"))
}

/// The container output between `BEGIN-MOUNTINFO` and `END-MOUNTINFO`.
const DUMP_MOUNTINFO: &str = "echo BEGIN-MOUNTINFO; cat /proc/self/mountinfo; echo END-MOUNTINFO";

fn mountinfo_of(out: &str) -> String {
    let start = out
        .find("BEGIN-MOUNTINFO\n")
        .unwrap_or_else(|| panic!("no mountinfo dump in:\n{out}"))
        + "BEGIN-MOUNTINFO\n".len();
    let end = out[start..]
        .find("END-MOUNTINFO")
        .map(|e| start + e)
        .unwrap_or(out.len());
    out[start..end].to_string()
}

fn c(p: &Path) -> CString {
    CString::new(p.to_str().unwrap()).unwrap()
}

fn sys_mount(src: &str, target: &Path, fstype: &str, flags: libc::c_ulong, data: &str) {
    let (s, f, d) = (
        CString::new(src).unwrap(),
        CString::new(fstype).unwrap(),
        CString::new(data).unwrap(),
    );
    let t = c(target);
    let r = unsafe {
        libc::mount(
            s.as_ptr(),
            t.as_ptr(),
            if fstype.is_empty() {
                std::ptr::null()
            } else {
                f.as_ptr()
            },
            flags,
            if data.is_empty() {
                std::ptr::null()
            } else {
                d.as_ptr() as *const libc::c_void
            },
        )
    };
    assert_eq!(
        r,
        0,
        "mount {src} on {} ({fstype}): {}",
        target.display(),
        std::io::Error::last_os_error()
    );
}

/// A mount the test made on the host; detached on drop (even when the test
/// fails), before the TestDir goes.
struct HostMount(PathBuf);

impl HostMount {
    /// A small tmpfs at `target` (which must exist).
    fn tmpfs(target: &Path) -> HostMount {
        sys_mount("rrun-test", target, "tmpfs", 0, "size=1m,mode=755");
        HostMount(target.to_path_buf())
    }

    /// Bind `dir` onto itself and make it the only member of a new shared
    /// peer group, so mounts below it propagate to its slaves.
    fn shared_self_bind(dir: &Path) -> HostMount {
        let src = dir.to_str().unwrap();
        sys_mount(src, dir, "", libc::MS_BIND, "");
        let guard = HostMount(dir.to_path_buf());
        sys_mount("none", dir, "", libc::MS_PRIVATE, "");
        sys_mount("none", dir, "", libc::MS_SHARED, "");
        guard
    }
}

impl Drop for HostMount {
    fn drop(&mut self) {
        let t = c(&self.0);
        unsafe {
            libc::umount2(t.as_ptr(), libc::MNT_DETACH);
        }
    }
}

/// The host's mountinfo entry for a path (top-most).
fn host_mount_at(p: &Path) -> Option<MountInfo> {
    mount_at(
        &fs::read_to_string("/proc/self/mountinfo").unwrap(),
        p.to_str().unwrap(),
    )
}

fn is_host_mount_point(p: &Path) -> bool {
    mount_points().iter().any(|m| Path::new(m) == p)
}

/// A host dir with `file` (content "hello") and `sub/` (an empty dir, for a
/// submount).
fn make_src(env: &TestEnv, name: &str) -> PathBuf {
    let src = env.dir.join(name);
    fs::create_dir_all(src.join("sub")).unwrap();
    fs::write(src.join("file"), "hello").unwrap();
    src
}

/// Container script to wait (at most ~10s) for the host to create /go in the
/// rootfs, after signalling readiness with /ready.
const READY_THEN_WAIT_GO: &str =
    "touch /ready; i=0; while [ ! -e /go ] && [ $i -lt 200 ]; do sleep 0.05; i=$((i+1)); done";

/// Runs the env's container (its script starts with [`READY_THEN_WAIT_GO`]);
/// once it is ready, mounts a tmpfs on the host at `host_dir` holding
/// `marker` = "propagated", lets the container go on, asserts it exits 0
/// and returns its stdout.
fn run_with_late_host_mount(env: &TestEnv, host_dir: &Path) -> String {
    let mut sp = env
        .rt
        .spawn(&["run", "--bundle", env.bundle.path_str(), env.id()]);
    assert!(
        wait_for(T, || env.bundle.rootfs().join("ready").exists()),
        "container never became ready"
    );
    let late = HostMount::tmpfs(host_dir);
    fs::write(host_dir.join("marker"), "propagated").unwrap();
    fs::write(env.bundle.rootfs().join("go"), "").unwrap();
    let out = sp.wait_timeout(T);
    assert!(out.status.success(), "{}", describe(&out));
    drop(late);
    stdout(&out)
}

// ---------------------------------------------------------------------------
// Bind mounts
// ---------------------------------------------------------------------------

#[test]
fn rw_bind_mount_of_a_dir_writes_through_to_the_host() {
    let mut env = TestEnv::new("mnt_bind_rw");
    let src = make_src(&env, "src");
    push_mount(&mut env, bind(&src, "/data", &["bind", "rw"]));
    env.bundle
        .set_script("echo content=$(cat /data/file); echo inside > /data/new && echo wrote=yes");
    let out = run_ok(&env);
    assert_eq!(field(&out, "content"), "hello");
    assert_eq!(field(&out, "wrote"), "yes");
    assert_eq!(fs::read_to_string(src.join("new")).unwrap(), "inside\n");
    env.assert_nothing_left();
}

#[test]
fn ro_bind_mount_of_a_dir_refuses_writes() {
    let mut env = TestEnv::new("mnt_bind_ro");
    let src = make_src(&env, "src");
    push_mount(&mut env, bind(&src, "/data", &["bind", "ro"]));
    env.bundle.set_script(
        "echo content=$(cat /data/file); \
         if echo x > /data/new 2>/dev/null; then echo wrote=yes; else echo wrote=no; fi; \
         if rm /data/file 2>/dev/null; then echo removed=yes; else echo removed=no; fi",
    );
    let out = run_ok(&env);
    assert_eq!(field(&out, "content"), "hello");
    assert_eq!(field(&out, "wrote"), "no");
    assert_eq!(field(&out, "removed"), "no");
    assert!(!src.join("new").exists());
    assert_eq!(fs::read_to_string(src.join("file")).unwrap(), "hello");
    env.assert_nothing_left();
}

#[test]
fn bind_mounts_of_files_are_readable_and_honour_ro() {
    let mut env = TestEnv::new("mnt_bind_file");
    let rw = env.dir.join("rw.txt");
    let ro = env.dir.join("ro.txt");
    fs::write(&rw, "rw-content\n").unwrap();
    fs::write(&ro, "ro-content\n").unwrap();
    push_mount(&mut env, bind(&rw, "/etc/rw.txt", &["bind", "rw"]));
    push_mount(&mut env, bind(&ro, "/etc/ro.txt", &["bind", "ro"]));
    env.bundle.set_script(
        "echo rw=$(cat /etc/rw.txt); echo ro=$(cat /etc/ro.txt); \
         echo more >> /etc/rw.txt && echo rw_write=ok; \
         if echo more >> /etc/ro.txt 2>/dev/null; then echo ro_write=ok; else echo ro_write=refused; fi; \
         echo type=$(stat -c %F /etc/ro.txt)",
    );
    let out = run_ok(&env);
    assert_eq!(field(&out, "rw"), "rw-content");
    assert_eq!(field(&out, "ro"), "ro-content");
    assert_eq!(field(&out, "rw_write"), "ok");
    assert_eq!(field(&out, "ro_write"), "refused");
    assert_eq!(field(&out, "type"), "regular file");
    assert_eq!(fs::read_to_string(&rw).unwrap(), "rw-content\nmore\n");
    assert_eq!(fs::read_to_string(&ro).unwrap(), "ro-content\n");
    env.assert_nothing_left();
}

#[test]
fn rbind_includes_submounts_and_plain_bind_does_not() {
    let mut env = TestEnv::new("mnt_rbind_sub");
    let src = make_src(&env, "src");
    let sub = HostMount::tmpfs(&src.join("sub"));
    fs::write(src.join("sub/in-submount"), "submount-data").unwrap();
    push_mount(&mut env, bind(&src, "/recursive", &["rbind", "rw"]));
    push_mount(&mut env, bind(&src, "/single", &["bind", "rw"]));
    env.bundle.set_script(
        "echo r=$(cat /recursive/sub/in-submount 2>/dev/null || echo missing); \
         echo s=$(cat /single/sub/in-submount 2>/dev/null || echo missing); \
         echo rfile=$(cat /recursive/file); echo sfile=$(cat /single/file)",
    );
    let out = run_ok(&env);
    assert_eq!(field(&out, "r"), "submount-data", "{out}");
    assert_eq!(field(&out, "s"), "missing", "{out}");
    assert_eq!(field(&out, "rfile"), "hello");
    assert_eq!(field(&out, "sfile"), "hello");
    drop(sub);
    assert!(!is_host_mount_point(&src.join("sub")));
    env.assert_nothing_left();
}

#[test]
fn missing_mount_targets_are_created_inside_the_rootfs() {
    let mut env = TestEnv::new("mnt_missing_targets");
    let src = make_src(&env, "src");
    let file = env.dir.join("conf.txt");
    fs::write(&file, "conf").unwrap();
    push_mount(&mut env, bind(&src, "/deep/a/b", &["bind", "ro"]));
    push_mount(
        &mut env,
        bind(&file, "/etc/extra/dir/conf.txt", &["bind", "ro"]),
    );
    push_mount(
        &mut env,
        json!({"destination": "/var/cache/t", "type": "tmpfs", "source": "tmpfs"}),
    );
    env.bundle.set_script(
        "echo dir=$(cat /deep/a/b/file); echo file=$(cat /etc/extra/dir/conf.txt); \
         echo tmpfs=$(stat -f -c %T /var/cache/t)",
    );
    let out = run_ok(&env);
    assert_eq!(field(&out, "dir"), "hello");
    assert_eq!(field(&out, "file"), "conf");
    assert_eq!(field(&out, "tmpfs"), "tmpfs");
    let r = env.bundle.rootfs();
    assert!(
        r.join("deep/a/b").is_dir(),
        "dir target not created in rootfs"
    );
    assert!(
        fs::symlink_metadata(r.join("etc/extra/dir/conf.txt"))
            .map(|m| m.is_file())
            .unwrap_or(false),
        "file target not created as a regular file in rootfs"
    );
    assert!(r.join("var/cache/t").is_dir());
    env.assert_nothing_left();
}

// ---------------------------------------------------------------------------
// tmpfs and mount flags
// ---------------------------------------------------------------------------

#[test]
fn tmpfs_size_and_mode_options_apply() {
    let mut env = TestEnv::new("mnt_tmpfs_opts");
    push_mount(
        &mut env,
        json!({"destination": "/scratch", "type": "tmpfs", "source": "tmpfs",
               "options": ["size=2m", "mode=710"]}),
    );
    push_mount(
        &mut env,
        json!({"destination": "/scratch2", "type": "tmpfs", "source": "tmpfs",
               "options": ["size=512k", "mode=1777"]}),
    );
    env.bundle.set_script(
        "echo mode=$(stat -c %a /scratch); echo mode2=$(stat -c %a /scratch2); \
         echo kb=$(df -k /scratch | tail -n 1 | awk '{print $2}'); \
         echo kb2=$(df -k /scratch2 | tail -n 1 | awk '{print $2}')",
    );
    let out = run_ok(&env);
    assert_eq!(field(&out, "mode"), "710");
    assert_eq!(field(&out, "mode2"), "1777");
    assert_eq!(field(&out, "kb"), "2048");
    assert_eq!(field(&out, "kb2"), "512");
    env.assert_nothing_left();
}

#[test]
fn nosuid_nodev_noexec_are_visible_and_enforced() {
    let mut env = TestEnv::new("mnt_flags");
    push_mount(
        &mut env,
        json!({"destination": "/locked", "type": "tmpfs", "source": "tmpfs",
               "options": ["nosuid", "nodev", "noexec"]}),
    );
    push_mount(
        &mut env,
        json!({"destination": "/open", "type": "tmpfs", "source": "tmpfs",
               "options": ["exec"]}),
    );
    env.bundle.set_script(&format!(
        "cp /bin/busybox /locked/true; cp /bin/busybox /open/true; \
         if /locked/true 2>/dev/null; then echo locked_exec=ran; else echo locked_exec=refused; fi; \
         if /open/true; then echo open_exec=ran; else echo open_exec=refused; fi; {DUMP_MOUNTINFO}"
    ));
    let out = run_ok(&env);
    assert_eq!(field(&out, "locked_exec"), "refused");
    assert_eq!(field(&out, "open_exec"), "ran");
    let info = mountinfo_of(&out);
    let locked = must_mount_at(&info, "/locked");
    for o in ["nosuid", "nodev", "noexec"] {
        assert!(locked.has_opt(o), "{o} missing on /locked: {locked:?}");
    }
    let open = must_mount_at(&info, "/open");
    assert!(!open.has_opt("noexec"), "/open is noexec: {open:?}");
    env.assert_nothing_left();
}

#[test]
fn file_system_options_on_a_bind_mount_are_ignored_as_runc_does() {
    // runc hands a bind's data options to mount(2), which drops them; configs
    // written for runc carry them (`mode=755` on a bind), so they must run.
    let mut env = TestEnv::new("mnt_bind_data_opts");
    let src = make_src(&env, "src");
    fs::set_permissions(&src, std::os::unix::fs::PermissionsExt::from_mode(0o700)).unwrap();
    push_mount(
        &mut env,
        bind(
            &src,
            "/data",
            &["bind", "ro", "mode=755", "size=1m", "gid=5"],
        ),
    );
    env.bundle.set_script(
        "echo content=$(cat /data/file); echo mode=$(stat -c %a /data); \
         if touch /data/new 2>/dev/null; then echo wrote=yes; else echo wrote=no; fi",
    );
    let out = run_ok(&env);
    assert_eq!(field(&out, "content"), "hello");
    assert_eq!(
        field(&out, "mode"),
        "700",
        "the bind's mode= reached the source"
    );
    assert_eq!(field(&out, "wrote"), "no", "ro was not applied");
    env.assert_nothing_left();
}

#[test]
fn mounts_are_made_in_the_listed_order() {
    // config.md: the runtime MUST mount entries in the listed order. Two
    // mounts on one destination: the later one is on top; a mount inside
    // a tmpfs listed after it is inside that tmpfs.
    let mut env = TestEnv::new("mnt_order");
    let src = make_src(&env, "src");
    for size in ["1m", "2m"] {
        push_mount(
            &mut env,
            json!({"destination": "/stack", "type": "tmpfs", "source": "tmpfs",
                   "options": [format!("size={size}")]}),
        );
    }
    push_mount(
        &mut env,
        json!({"destination": "/outer", "type": "tmpfs", "source": "tmpfs"}),
    );
    push_mount(&mut env, bind(&src, "/outer/in", &["bind", "ro"]));
    env.bundle.set_script(
        "echo kb=$(df -k /stack | tail -n 1 | awk '{print $2}'); \
         echo content=$(cat /outer/in/file)",
    );
    let out = run_ok(&env);
    assert_eq!(
        field(&out, "kb"),
        "2048",
        "the first /stack mount is on top"
    );
    assert_eq!(field(&out, "content"), "hello");
    env.assert_nothing_left();
}

/// Options mount(8) keeps to itself (fstab and systemd's): none of them
/// reaches the kernel there.
const MOUNT8_ONLY: [&str; 12] = [
    "nofail",
    "auto",
    "noauto",
    "user",
    "nouser",
    "users",
    "owner",
    "group",
    "_netdev",
    "comment=systemd.automount",
    "x-systemd.device-timeout=5",
    "x-initrd.mount",
];

#[test]
fn mount8_only_options_are_ignored_on_any_mount() {
    // config.md: a custom option mount(8) recognizes SHOULD behave as in
    // mount(8), which never passes these to the kernel.
    if skip_on_reference("mount(8)'s own options (it passes them to the kernel)") {
        return;
    }
    let mut env = TestEnv::new("mnt_mount8_opts");
    let src = make_src(&env, "src");
    let mut tmpfs_opts: Vec<&str> = MOUNT8_ONLY.to_vec();
    tmpfs_opts.push("size=1m");
    push_mount(
        &mut env,
        json!({"destination": "/scratch", "type": "tmpfs", "source": "tmpfs",
               "options": tmpfs_opts}),
    );
    let mut bind_opts: Vec<&str> = vec!["bind", "ro"];
    bind_opts.extend(MOUNT8_ONLY);
    push_mount(&mut env, bind(&src, "/data", &bind_opts));
    env.bundle.set_script(
        "echo kb=$(df -k /scratch | tail -n 1 | awk '{print $2}'); \
         echo content=$(cat /data/file); \
         if touch /data/new 2>/dev/null; then echo wrote=yes; else echo wrote=no; fi",
    );
    let out = run_ok(&env);
    assert_eq!(field(&out, "kb"), "1024", "the tmpfs lost its size=");
    assert_eq!(field(&out, "content"), "hello");
    assert_eq!(field(&out, "wrote"), "no", "ro was not applied");
    env.assert_nothing_left();
}

#[test]
fn iversion_and_noiversion_are_accepted_on_any_mount() {
    // config.md lists both as MUST options (mount(8)'s MS_I_VERSION).
    let mut env = TestEnv::new("mnt_iversion");
    let src = make_src(&env, "src");
    for (dest, opt) in [("/iv", "iversion"), ("/noiv", "noiversion")] {
        push_mount(
            &mut env,
            json!({"destination": dest, "type": "tmpfs", "source": "tmpfs",
                   "options": [opt, "size=1m"]}),
        );
    }
    push_mount(&mut env, bind(&src, "/data", &["bind", "iversion"]));
    env.bundle.set_script(
        "echo iv=$(df -k /iv | tail -n 1 | awk '{print $2}'); \
         echo noiv=$(df -k /noiv | tail -n 1 | awk '{print $2}'); \
         echo content=$(cat /data/file)",
    );
    let out = run_ok(&env);
    assert_eq!(field(&out, "iv"), "1024");
    assert_eq!(field(&out, "noiv"), "1024");
    assert_eq!(field(&out, "content"), "hello");
    env.assert_nothing_left();
}

#[test]
fn relative_mount_destination_is_taken_from_the_root() {
    // config.md (1.2.0), Linux: a relative destination MUST be interpreted
    // as relative to "/" (deprecated, kept for old tools and configs).
    let mut env = TestEnv::new("mnt_relative_dest");
    let src = make_src(&env, "src");
    push_mount(&mut env, bind(&src, "data/in", &["rbind", "ro"]));
    push_mount(
        &mut env,
        json!({"destination": "scratch", "type": "tmpfs", "source": "tmpfs",
               "options": ["size=1m"]}),
    );
    // The process's cwd is elsewhere: relative to "/", not to the cwd.
    env.bundle.edit(|c| c["process"]["cwd"] = json!("/tmp"));
    env.bundle.set_script(
        "echo content=$(cat /data/in/file); \
         echo kb=$(df -k /scratch | tail -n 1 | awk '{print $2}'); \
         if [ -e /tmp/data ]; then echo under_cwd=yes; else echo under_cwd=no; fi",
    );
    let out = run_ok(&env);
    assert_eq!(field(&out, "content"), "hello");
    assert_eq!(field(&out, "kb"), "1024");
    assert_eq!(field(&out, "under_cwd"), "no");
    env.assert_nothing_left();
}

/// A host tmpfs mounted `noatime`, detached on drop.
fn noatime_host_tmpfs(target: &Path) -> HostMount {
    sys_mount("rrun-test", target, "tmpfs", libc::MS_NOATIME, "size=1m");
    HostMount(target.to_path_buf())
}

/// The atime mode mountinfo shows for a mount.
fn atime_mode(m: &MountInfo) -> &'static str {
    if m.has_opt("noatime") {
        "noatime"
    } else if m.has_opt("relatime") {
        "relatime"
    } else {
        "strictatime"
    }
}

#[test]
fn atime_and_norelatime_clear_only_their_own_flag() {
    let mut env = TestEnv::new("mnt_atime_clear");
    let src = env.dir.join("noatime-src");
    fs::create_dir(&src).unwrap();
    let _host = noatime_host_tmpfs(&src);
    let tmpfs = |dest: &str, options: &[&str]| json!({"destination": dest, "type": "tmpfs", "source": "tmpfs", "options": options});
    let cases: [(&str, &[&str], &str); 5] = [
        ("/a", &["noatime", "atime"], "relatime"),
        ("/b", &["norelatime"], "relatime"),
        ("/c", &["atime"], "relatime"),
        ("/d", &["strictatime", "norelatime"], "strictatime"),
        ("/e", &["noatime", "norelatime"], "noatime"),
    ];
    for (dest, options, _) in &cases {
        push_mount(&mut env, tmpfs(dest, options));
    }
    // A bind keeps its source's mode unless an option sets one: `atime`
    // clears a `noatime` the options did not set, so the source's stays.
    push_mount(&mut env, bind(&src, "/bound", &["bind", "nodev", "atime"]));
    env.bundle.set_script(DUMP_MOUNTINFO);
    let out = run_ok(&env);
    let info = mountinfo_of(&out);
    for (dest, options, want) in &cases {
        let m = must_mount_at(&info, dest);
        assert_eq!(atime_mode(&m), *want, "{dest} {options:?}: {m:?}");
    }
    let bound = must_mount_at(&info, "/bound");
    assert_eq!(atime_mode(&bound), "noatime", "{bound:?}");
    assert!(bound.has_opt("nodev"), "{bound:?}");
    env.assert_nothing_left();
}

#[test]
fn recursive_atime_clearing_options_leave_submounts_their_own_mode() {
    if skip_on_reference("working recursive atime options") {
        return;
    }
    let mut env = TestEnv::new("mnt_ratime_clear");
    let src = make_src(&env, "src");
    let _sub = noatime_host_tmpfs(&src.join("sub"));
    push_mount(
        &mut env,
        bind(&src, "/r", &["rbind", "rnoatime", "ratime", "rnorelatime"]),
    );
    push_mount(
        &mut env,
        bind(&src, "/s", &["rbind", "rstrictatime", "rnorelatime"]),
    );
    env.bundle.set_script(DUMP_MOUNTINFO);
    let out = run_ok(&env);
    let info = mountinfo_of(&out);
    let r = must_mount_at(&info, "/r/sub");
    assert_eq!(atime_mode(&r), "noatime", "{r:?}");
    let s = must_mount_at(&info, "/s/sub");
    assert_eq!(atime_mode(&s), "strictatime", "{s:?}");
    env.assert_nothing_left();
}

#[test]
fn proc_sysfs_devpts_and_mqueue_are_mounted_as_configured() {
    let mut env = TestEnv::new("mnt_pseudo");
    env.bundle.set_script(&format!(
        "echo self=$(readlink /proc/self); echo ptmx=$(stat -c %F /dev/pts/ptmx); \
         if touch /sys/kernel/x 2>/dev/null; then echo sys_write=ok; else echo sys_write=refused; fi; \
         {DUMP_MOUNTINFO}"
    ));
    let out = run_ok(&env);
    let info = mountinfo_of(&out);
    assert_eq!(must_mount_at(&info, "/proc").fstype, "proc");
    assert!(
        field(&out, "self").parse::<u32>().is_ok(),
        "/proc/self is not a pid: {out}"
    );
    let sys = must_mount_at(&info, "/sys");
    assert_eq!(sys.fstype, "sysfs");
    assert!(sys.has_opt("ro"), "/sys not read-only: {sys:?}");
    assert_eq!(field(&out, "sys_write"), "refused");
    let pts = must_mount_at(&info, "/dev/pts");
    assert_eq!(pts.fstype, "devpts");
    for o in ["mode=620", "ptmxmode=666", "gid=5"] {
        assert!(pts.has_super_opt(o), "devpts lacks {o}: {pts:?}");
    }
    assert_eq!(field(&out, "ptmx"), "character special file");
    assert_eq!(must_mount_at(&info, "/dev/mqueue").fstype, "mqueue");
    let shm = must_mount_at(&info, "/dev/shm");
    assert_eq!(shm.fstype, "tmpfs");
    assert!(shm.has_opt("noexec") && shm.has_opt("nodev") && shm.has_opt("nosuid"));
    env.assert_nothing_left();
}

#[test]
fn read_only_dev_still_gets_its_mount_targets_and_devices() {
    // runc mounts /dev read-write and makes it read-only last.
    let mut env = TestEnv::new("mnt_ro_dev");
    env.bundle.add_mount_option("/dev", "ro");
    env.bundle.set_script(&format!(
        "echo null=$(stat -c %t:%T /dev/null); echo x > /dev/null && echo null_write=ok; \
         echo ptmx=$(readlink /dev/ptmx); echo stdout=$(readlink /dev/stdout); \
         if touch /dev/new 2>/dev/null; then echo dev_write=ok; else echo dev_write=refused; fi; \
         echo y > /dev/shm/y && echo shm_write=ok; {DUMP_MOUNTINFO}"
    ));
    let out = run_ok(&env);
    assert_eq!(field(&out, "null"), "1:3", "{out}");
    assert_eq!(field(&out, "null_write"), "ok", "{out}");
    assert_eq!(field(&out, "ptmx"), "pts/ptmx", "{out}");
    assert_eq!(field(&out, "stdout"), "/proc/self/fd/1", "{out}");
    assert_eq!(field(&out, "dev_write"), "refused", "{out}");
    assert_eq!(field(&out, "shm_write"), "ok", "{out}");
    let info = mountinfo_of(&out);
    let dev = must_mount_at(&info, "/dev");
    assert!(dev.has_opt("ro"), "/dev is not read-only: {dev:?}");
    assert_eq!(must_mount_at(&info, "/dev/pts").fstype, "devpts");
    assert_eq!(must_mount_at(&info, "/dev/mqueue").fstype, "mqueue");
    assert!(!must_mount_at(&info, "/dev/shm").has_opt("ro"));
    env.assert_nothing_left();
}

#[test]
fn read_only_tmpfs_still_gets_the_targets_of_later_mounts() {
    let mut env = TestEnv::new("mnt_ro_tmpfs_sub");
    let src = make_src(&env, "src");
    push_mount(
        &mut env,
        json!({"destination": "/outer", "type": "tmpfs", "source": "tmpfs",
               "options": ["ro", "mode=755"]}),
    );
    push_mount(
        &mut env,
        json!({"destination": "/outer/inner/tmp", "type": "tmpfs", "source": "tmpfs"}),
    );
    push_mount(&mut env, bind(&src, "/outer/data", &["bind", "ro"]));
    env.bundle.set_script(&format!(
        "echo content=$(cat /outer/data/file); echo mode=$(stat -c %a /outer); \
         if touch /outer/x 2>/dev/null; then echo outer_write=ok; else echo outer_write=refused; fi; \
         touch /outer/inner/tmp/y && echo inner_write=ok; {DUMP_MOUNTINFO}"
    ));
    let out = run_ok(&env);
    assert_eq!(field(&out, "content"), "hello", "{out}");
    assert_eq!(field(&out, "mode"), "755", "{out}");
    assert_eq!(field(&out, "outer_write"), "refused", "{out}");
    assert_eq!(field(&out, "inner_write"), "ok", "{out}");
    assert!(must_mount_at(&mountinfo_of(&out), "/outer").has_opt("ro"));
    env.assert_nothing_left();
}

#[test]
fn read_only_cgroup_mount_refuses_writes() {
    // On a pure cgroup v2 host the view is one directory: the container's
    // own cgroup; on v1/hybrid it has one directory per hierarchy.
    let v2 = Path::new("/sys/fs/cgroup/cgroup.controllers").exists();
    let sub = if v2 { "" } else { "memory/" };
    let mut env = TestEnv::new("mnt_cgroup_ro");
    env.bundle.set_script(&format!(
        "ls /sys/fs/cgroup | sed 's/^/hier=/'; \
         if mkdir /sys/fs/cgroup/{sub}escape 2>/dev/null; then echo mkdir=ok; else echo mkdir=refused; fi; \
         if touch /sys/fs/cgroup/newfile 2>/dev/null; then echo touch=ok; else echo touch=refused; fi; \
         echo procs=$(cat /sys/fs/cgroup/{sub}cgroup.procs | tr '\\n' ' '); {DUMP_MOUNTINFO}"
    ));
    let out = run_ok(&env);
    let hier: Vec<&str> = out
        .lines()
        .filter_map(|l| l.strip_prefix("hier="))
        .collect();
    if v2 {
        assert!(
            hier.contains(&"cgroup.controllers"),
            "no cgroup2 view: {out}"
        );
    } else {
        assert!(hier.contains(&"memory"), "no memory hierarchy: {out}");
    }
    assert_eq!(field(&out, "mkdir"), "refused");
    assert_eq!(field(&out, "touch"), "refused");
    // The container's own cgroup is what it sees: its init (pid 1) is in it.
    assert!(
        field(&out, "procs").split_whitespace().any(|p| p == "1"),
        "the container's cgroup.procs should list its init: {out}"
    );
    let info = mountinfo_of(&out);
    let at = if v2 {
        "/sys/fs/cgroup"
    } else {
        "/sys/fs/cgroup/memory"
    };
    assert!(must_mount_at(&info, at).has_opt("ro"));
    let memory_dir = PathBuf::from(if v2 {
        "/sys/fs/cgroup"
    } else {
        "/sys/fs/cgroup/memory"
    });
    let escaped: Vec<PathBuf> = fs::read_dir(&memory_dir)
        .map(|rd| {
            rd.flatten()
                .map(|e| e.path())
                .filter(|p| p.ends_with("escape"))
                .collect()
        })
        .unwrap_or_default();
    assert!(
        escaped.is_empty(),
        "cgroup created on the host: {escaped:?}"
    );
    env.assert_nothing_left();
}

// ---------------------------------------------------------------------------
// Propagation
// ---------------------------------------------------------------------------

#[test]
fn bind_propagation_options_show_in_mountinfo() {
    let mut env = TestEnv::new("mnt_prop_fields");
    let src = make_src(&env, "src");
    let shared = HostMount::shared_self_bind(&src);
    let host_group = host_mount_at(&src)
        .and_then(|m| m.tag("shared").map(str::to_string))
        .expect("the host source is a shared mount");
    push_mount(&mut env, bind(&src, "/p-private", &["rbind", "rprivate"]));
    push_mount(&mut env, bind(&src, "/p-slave", &["rbind", "rslave"]));
    push_mount(&mut env, bind(&src, "/p-shared", &["rbind", "rshared"]));
    env.bundle.set_script(DUMP_MOUNTINFO);
    let out = run_ok(&env);
    let info = mountinfo_of(&out);
    let private = must_mount_at(&info, "/p-private");
    assert!(
        private.optional.is_empty(),
        "rprivate mount has propagation fields: {private:?}"
    );
    let slave = must_mount_at(&info, "/p-slave");
    assert_eq!(
        slave.tag("master"),
        Some(host_group.as_str()),
        "rslave mount should be a slave of the host's peer group: {slave:?}"
    );
    assert!(
        slave.tag("shared").is_none(),
        "rslave mount is shared: {slave:?}"
    );
    let sh = must_mount_at(&info, "/p-shared");
    assert!(
        sh.tag("shared").is_some(),
        "rshared mount is not shared: {sh:?}"
    );
    drop(shared);
    env.assert_nothing_left();
}

#[test]
fn rslave_bind_receives_host_mounts_and_rprivate_does_not() {
    let mut env = TestEnv::new("mnt_prop_behaviour");
    let src = make_src(&env, "src");
    let shared = HostMount::shared_self_bind(&src);
    push_mount(&mut env, bind(&src, "/slave", &["rbind", "rslave"]));
    push_mount(&mut env, bind(&src, "/private", &["rbind", "rprivate"]));
    env.bundle.set_script(&format!(
        "{READY_THEN_WAIT_GO}; \
         echo slave=$(cat /slave/sub/marker 2>/dev/null || echo none); \
         echo private=$(cat /private/sub/marker 2>/dev/null || echo none)"
    ));
    // Mounted on the host after the container started.
    let out = run_with_late_host_mount(&env, &src.join("sub"));
    assert_eq!(field(&out, "slave"), "propagated", "{out}");
    assert_eq!(field(&out, "private"), "none", "{out}");
    drop(shared);
    env.assert_nothing_left();
}

#[test]
fn rootfs_propagation_slave_receives_host_mounts_and_private_does_not() {
    for (prop, expect) in [
        (None, "propagated"),
        (Some("rslave"), "propagated"),
        (Some("private"), "none"),
    ] {
        let mut env = TestEnv::new(&format!("mnt_rootfs_prop_{}", prop.unwrap_or("default")));
        let shared = HostMount::shared_self_bind(env.dir.path());
        let hostmnt = env.bundle.rootfs().join("mnt/hostmnt");
        fs::create_dir_all(&hostmnt).unwrap();
        if let Some(p) = prop {
            env.bundle
                .edit(|c| c["linux"]["rootfsPropagation"] = json!(p));
        }
        env.bundle.set_script(&format!(
            "{READY_THEN_WAIT_GO}; echo seen=$(cat /mnt/hostmnt/marker 2>/dev/null || echo none)"
        ));
        let out = run_with_late_host_mount(&env, &hostmnt);
        assert_eq!(
            field(&out, "seen"),
            expect,
            "rootfsPropagation {prop:?}: {out}"
        );
        drop(shared);
        env.assert_nothing_left();
    }
}

/// runc 1.1.5 leaves `/` private with `rootfsPropagation: rshared` (runc
/// issue 1755, fixed only in runc 1.2.x/1.3 by re-applying the propagation
/// after pivot_root): validated against rrun only.
#[test]
fn rootfs_propagation_shared_makes_root_a_shared_mount() {
    if skip_on_reference("a working rootfsPropagation=shared (runc issue 1755)") {
        return;
    }
    let mut env = TestEnv::new("mnt_rootfs_shared");
    env.bundle
        .edit(|c| c["linux"]["rootfsPropagation"] = json!("rshared"));
    env.bundle.set_script(DUMP_MOUNTINFO);
    let out = run_ok(&env);
    let root = must_mount_at(&mountinfo_of(&out), "/");
    assert!(root.tag("shared").is_some(), "/ is not shared: {root:?}");

    env.bundle
        .edit(|c| c["linux"]["rootfsPropagation"] = json!("rprivate"));
    let out = run_ok(&env);
    let root = must_mount_at(&mountinfo_of(&out), "/");
    assert!(root.optional.is_empty(), "/ is not private: {root:?}");
    env.assert_nothing_left();
}

// ---------------------------------------------------------------------------
// Recursive attributes and idmapped mounts (runc 1.1.5 lacks them)
// ---------------------------------------------------------------------------

#[test]
fn rro_makes_submounts_read_only_too() {
    if skip_on_reference("recursive mount attributes (rro)") {
        return;
    }
    let mut env = TestEnv::new("mnt_rro");
    let src = make_src(&env, "src");
    let sub = HostMount::tmpfs(&src.join("sub"));
    push_mount(&mut env, bind(&src, "/rro", &["rbind", "rro"]));
    // Control: plain `ro` on an rbind only affects the top mount.
    push_mount(&mut env, bind(&src, "/ro", &["rbind", "ro"]));
    env.bundle.set_script(&format!(
        "for d in rro ro; do \
           if touch /$d/top 2>/dev/null; then echo ${{d}}_top=ok; else echo ${{d}}_top=refused; fi; \
           if touch /$d/sub/x-$d 2>/dev/null; then echo ${{d}}_sub=ok; else echo ${{d}}_sub=refused; fi; \
         done; {DUMP_MOUNTINFO}"
    ));
    let out = run_ok(&env);
    assert_eq!(field(&out, "rro_top"), "refused", "{out}");
    assert_eq!(field(&out, "rro_sub"), "refused", "{out}");
    assert_eq!(field(&out, "ro_top"), "refused", "{out}");
    assert_eq!(field(&out, "ro_sub"), "ok", "{out}");
    let info = mountinfo_of(&out);
    assert!(must_mount_at(&info, "/rro/sub").has_opt("ro"));
    assert!(!src.join("sub/x-rro").exists());
    drop(sub);
    env.assert_nothing_left();
}

#[test]
fn rnosymfollow_refuses_symlinks_in_submounts() {
    if skip_on_reference("recursive mount attributes (rnosymfollow)") {
        return;
    }
    let mut env = TestEnv::new("mnt_rnosymfollow");
    let src = make_src(&env, "src");
    symlink("file", src.join("link")).unwrap();
    let sub = HostMount::tmpfs(&src.join("sub"));
    fs::write(src.join("sub/target"), "in-sub").unwrap();
    symlink("target", src.join("sub/link")).unwrap();
    push_mount(
        &mut env,
        bind(&src, "/nofollow", &["rbind", "rnosymfollow"]),
    );
    push_mount(&mut env, bind(&src, "/follow", &["rbind"]));
    env.bundle.set_script(
        "for d in nofollow follow; do \
           echo ${d}_top=$(cat /$d/link 2>/dev/null || echo refused); \
           echo ${d}_sub=$(cat /$d/sub/link 2>/dev/null || echo refused); \
           echo ${d}_direct=$(cat /$d/sub/target); \
           echo ${d}_readlink=$(readlink /$d/sub/link); \
         done",
    );
    let out = run_ok(&env);
    assert_eq!(field(&out, "nofollow_top"), "refused", "{out}");
    assert_eq!(field(&out, "nofollow_sub"), "refused", "{out}");
    assert_eq!(field(&out, "nofollow_direct"), "in-sub");
    assert_eq!(field(&out, "nofollow_readlink"), "target");
    assert_eq!(field(&out, "follow_top"), "hello");
    assert_eq!(field(&out, "follow_sub"), "in-sub");
    drop(sub);
    env.assert_nothing_left();
}

/// Kernel (and runc 1.2) semantics of a mount's mappings: a file owned by
/// `containerID` on disk appears owned by `hostID` through the mount. So a
/// host dir owned by uid 1000 shows as root with `{1000 -> 0}`, and a
/// root-owned file shows as 1000 with `{0 -> 1000}`.
#[test]
fn idmapped_bind_mount_shows_mapped_owner() {
    if skip_on_reference("idmapped mounts (mount uidMappings/gidMappings)") {
        return;
    }
    let mut env = TestEnv::new("mnt_idmap");
    let src = make_src(&env, "src");
    for p in [src.clone(), src.join("file")] {
        std::os::unix::fs::chown(&p, Some(1000), Some(1000)).unwrap();
    }
    let rootowned = make_src(&env, "rootowned");
    let idmapped = |src: &Path, dest: &str, from: u32, to: u32| {
        let mut m = bind(src, dest, &["bind"]);
        m["uidMappings"] = json!([{"containerID": from, "hostID": to, "size": 1}]);
        m["gidMappings"] = json!([{"containerID": from, "hostID": to, "size": 1}]);
        m
    };
    push_mount(&mut env, idmapped(&src, "/data", 1000, 0));
    push_mount(&mut env, idmapped(&rootowned, "/rootowned", 0, 1000));
    push_mount(&mut env, bind(&src, "/plain", &["bind"]));
    env.bundle.set_script(
        "echo dir=$(stat -c '%u:%g' /data); echo file=$(stat -c '%u:%g' /data/file); \
         echo content=$(cat /data/file); echo rootowned=$(stat -c '%u:%g' /rootowned/file); \
         echo plain=$(stat -c '%u:%g' /plain/file)",
    );
    let out = run_ok(&env);
    assert_eq!(field(&out, "dir"), "0:0", "{out}");
    assert_eq!(field(&out, "file"), "0:0", "{out}");
    assert_eq!(field(&out, "content"), "hello");
    assert_eq!(field(&out, "rootowned"), "1000:1000", "{out}");
    // Control: the same dir without mappings shows the on-disk owner.
    assert_eq!(field(&out, "plain"), "1000:1000", "{out}");
    // The host's view is unchanged.
    let md = fs::metadata(src.join("file")).unwrap();
    assert_eq!((md.uid(), md.gid()), (1000, 1000));
    env.assert_nothing_left();
}

// ---------------------------------------------------------------------------
// Root file system
// ---------------------------------------------------------------------------

#[test]
fn readonly_root_refuses_writes_but_tmp_tmpfs_stays_writable() {
    let mut env = TestEnv::new("mnt_ro_root");
    env.bundle.edit(|c| c["root"]["readonly"] = json!(true));
    push_mount(
        &mut env,
        json!({"destination": "/tmp", "type": "tmpfs", "source": "tmpfs"}),
    );
    env.bundle.set_script(&format!(
        "if touch /x 2>/dev/null; then echo root=ok; else echo root=refused; fi; \
         if touch /tmp/y; then echo tmp=ok; else echo tmp=refused; fi; {DUMP_MOUNTINFO}"
    ));
    let out = run_ok(&env);
    assert_eq!(field(&out, "root"), "refused");
    assert_eq!(field(&out, "tmp"), "ok");
    assert!(must_mount_at(&mountinfo_of(&out), "/").has_opt("ro"));
    assert!(!env.bundle.rootfs().join("x").exists());
    env.assert_nothing_left();
}

#[test]
fn no_pivot_runs_with_the_rootfs_as_root() {
    let mut env = TestEnv::new("mnt_no_pivot");
    fs::write(env.bundle.rootfs().join("marker"), "in-rootfs").unwrap();
    let host_only = env.dir.join("host-only");
    fs::write(&host_only, "host").unwrap();
    env.bundle.set_script(&format!(
        "echo marker=$(cat /marker); \
         if [ -e {} ]; then echo host=visible; else echo host=hidden; fi; \
         echo passwd=$(head -n 1 /etc/passwd)",
        host_only.display()
    ));
    let out = env.run(&["--no-pivot"]);
    assert!(out.status.success(), "{}", describe(&out));
    let out = stdout(&out);
    assert_eq!(field(&out, "marker"), "in-rootfs");
    assert_eq!(field(&out, "host"), "hidden");
    assert_eq!(field(&out, "passwd"), "root:x:0:0:root:/root:/bin/sh");
    env.assert_nothing_left();
}

/// A container script that mounts a fresh procfs from a user namespace of
/// its own, as any unprivileged process may try: `fresh_proc=mounted` when
/// the kernel allows it, which it does only while a procfs with nothing
/// masked is in the mount namespace (mount_too_revealing), otherwise
/// `fresh_proc=refused (why)`. The container runs as uid 1000: mapping uid 0
/// into a new user namespace would need CAP_SETFCAP.
const FRESH_PROC: &str = "why=$(unshare -mrpf sh -c 'mount -t proc none /proc && echo MOUNTED' 2>&1); \
     case $why in *MOUNTED*) echo fresh_proc=mounted;; *) echo \"fresh_proc=refused ($why)\";; esac";

/// Runs the container as uid:gid 1000:1000 with the `FRESH_PROC` script.
fn try_a_fresh_proc(env: &mut TestEnv, extra_script: &str) {
    env.bundle
        .edit(|c| c["process"]["user"] = json!({"uid": 1000, "gid": 1000}));
    env.bundle
        .set_script(&format!("{FRESH_PROC}; {extra_script}"));
}

/// Asserts the kernel refused the mount itself (not unshare or anything
/// else before it).
fn assert_fresh_proc_refused(out: &str, what: &str) {
    let v = field(out, "fresh_proc");
    assert!(
        v.starts_with("refused")
            && v.contains("mount")
            && (v.contains("not permitted") || v.contains("permission denied")),
        "{what}: {v}\n{out}"
    );
}

/// Whether this kernel lets an unprivileged process make a user namespace.
fn user_namespaces_allowed() -> bool {
    fs::read_to_string("/proc/sys/user/max_user_namespaces")
        .is_ok_and(|v| v.trim().parse::<u64>().unwrap_or(0) > 0)
}

#[test]
fn no_pivot_leaves_no_host_procfs_to_mount_a_fresh_one_from() {
    if !user_namespaces_allowed() {
        eprintln!("skipped: user namespaces are disabled (max_user_namespaces is 0)");
        return;
    }
    let mut env = TestEnv::new("mnt_no_pivot_proc");
    try_a_fresh_proc(&mut env, DUMP_MOUNTINFO);
    // With pivot_root the kernel refuses (the container's /proc has masked
    // paths): what --no-pivot must match.
    let out = run_ok(&env);
    assert_fresh_proc_refused(&out, "with pivot_root");
    let out = env.run(&["--no-pivot"]);
    assert!(out.status.success(), "{}", describe(&out));
    let out = stdout(&out);
    assert_fresh_proc_refused(
        &out,
        "a host procfs is still in the --no-pivot container's mount namespace",
    );
    // Only the container's own mounts are listed.
    let info = mountinfo_of(&out);
    let config = env.bundle.config().clone();
    let ours: Vec<&str> = config["mounts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["destination"].as_str().unwrap())
        .collect();
    for m in parse_mountinfo(&info) {
        let mp = m.mount_point.as_str();
        assert!(
            mp == "/"
                || ours
                    .iter()
                    .any(|d| mp == *d || mp.starts_with(&format!("{d}/"))),
            "a mount that is not the container's: {m:?}\n{info}"
        );
    }
    env.assert_nothing_left();
}

#[test]
fn no_pivot_in_a_user_namespace_leaves_no_host_procfs_to_mount_a_fresh_one_from() {
    if !user_namespaces_allowed() {
        eprintln!("skipped: user namespaces are disabled (max_user_namespaces is 0)");
        return;
    }
    // The host's mounts are locked in a user namespace's mount namespace
    // and cannot be detached; they must be covered instead.
    let mut env = TestEnv::new("mnt_no_pivot_proc_userns");
    env.bundle.add_user_namespace();
    try_a_fresh_proc(&mut env, "");
    let out = run_ok(&env);
    assert_fresh_proc_refused(&out, "with pivot_root");
    let out = env.run(&["--no-pivot"]);
    assert!(out.status.success(), "{}", describe(&out));
    let out = stdout(&out);
    assert_fresh_proc_refused(&out, "--no-pivot");
    env.assert_nothing_left();
}

// ---------------------------------------------------------------------------
// Symlinked mount destinations must stay inside the rootfs
// ---------------------------------------------------------------------------

#[test]
fn symlinked_mount_destination_cannot_escape_to_the_host() {
    let mut env = TestEnv::new("mnt_symlink_escape");
    let src = make_src(&env, "src");
    let host_abs = env.dir.join("host-abs");
    let host_rel = env.dir.join("host-rel");
    fs::create_dir(&host_abs).unwrap();
    fs::create_dir(&host_rel).unwrap();
    let mnt = env.bundle.rootfs().join("mnt");
    fs::create_dir_all(&mnt).unwrap();
    // Absolute symlink to a host path, and a relative one climbing out.
    symlink(&host_abs, mnt.join("evil")).unwrap();
    symlink(
        format!("../../../../../../../../..{}", host_rel.display()),
        mnt.join("evil2"),
    )
    .unwrap();
    push_mount(&mut env, bind(&src, "/mnt/evil/a/b", &["bind", "ro"]));
    push_mount(
        &mut env,
        json!({"destination": "/mnt/evil2", "type": "tmpfs", "source": "tmpfs"}),
    );
    env.bundle.set_script(
        "echo a=$(cat /mnt/evil/a/b/file 2>/dev/null || echo none); \
         echo t=$(stat -f -c %T /mnt/evil2/ 2>/dev/null || echo none)",
    );
    let out = env.run(&[]);
    let check_host = |when: &str| {
        for h in [&host_abs, &host_rel] {
            let entries: Vec<_> = fs::read_dir(h)
                .unwrap()
                .flatten()
                .map(|e| e.path())
                .collect();
            assert!(
                entries.is_empty(),
                "{when}: created on the host: {entries:?}"
            );
            assert!(
                !is_host_mount_point(h),
                "{when}: {} is mounted on the host",
                h.display()
            );
        }
    };
    check_host("after run");
    if out.status.success() {
        // Accepted: the mounts must have landed inside the rootfs.
        let o = stdout(&out);
        assert_eq!(field(&o, "a"), "hello", "{o}");
        assert_eq!(field(&o, "t"), "tmpfs", "{o}");
        let inside = env
            .bundle
            .rootfs()
            .join(host_abs.strip_prefix("/").unwrap());
        assert!(
            inside.join("a/b").is_dir(),
            "target not created in the rootfs"
        );
    } else {
        assert!(!stderr(&out).trim().is_empty(), "{}", describe(&out));
    }
    env.assert_nothing_left();
}

// ---------------------------------------------------------------------------
// Steps after sysfs, run before the network namespace arrives
// (src/rootfs/late.rs): the result is the config's order
// ---------------------------------------------------------------------------

/// The container's view of sysfs paths: how many entries `/sys/kernel/mm`
/// lists, what `/sys/kernel/uevent_seqnum` reads, and the network devices
/// sysfs shows.
const SYSFS_VIEW: &str = "echo mm=$(ls /sys/kernel/mm | wc -l); \
     echo seqnum=$(cat /sys/kernel/uevent_seqnum | wc -c); \
     echo net=$(ls /sys/class/net | tr '\\n' ' ')";

fn assert_sysfs_view(out: &str, masked: bool) {
    let (mm, seqnum) = (field(out, "mm"), field(out, "seqnum"));
    if masked {
        assert_eq!(mm, "0", "/sys/kernel/mm is not masked: {out}");
        assert_eq!(
            seqnum, "0",
            "/sys/kernel/uevent_seqnum is not masked: {out}"
        );
    } else {
        assert_ne!(mm, "0", "{out}");
    }
    // sysfs mounted in the container's network namespace.
    assert_eq!(field(out, "net").trim(), "lo", "{out}");
}

#[test]
fn masked_paths_under_sys_are_masked_in_the_containers_sysfs() {
    for p in ["/sys/kernel/mm", "/sys/kernel/uevent_seqnum"] {
        assert!(Path::new(p).exists(), "this kernel has no {p}");
    }
    let mut env = TestEnv::new("mnt_late_sys_masked");
    env.bundle.edit(|c| {
        let masked = c["linux"]["maskedPaths"].as_array_mut().unwrap();
        masked.push(json!("/sys/kernel/mm"));
        masked.push(json!("/proc/timer_list"));
        masked.push(json!("/sys/kernel/uevent_seqnum"));
    });
    env.bundle.set_script(SYSFS_VIEW);
    let out = run_ok(&env);
    assert_sysfs_view(&out, true);
    env.assert_nothing_left();
}

#[test]
fn paths_through_a_symlink_into_sys_resolve_in_the_containers_sysfs() {
    // `/k` -> `/sys/kernel` in the rootfs. In the config's order sysfs is
    // mounted first, so a masked path and a mount through `/k` land in
    // sysfs; resolved before sysfs they would land in the rootfs's own
    // `sys/kernel` (and create it) and be hidden under sysfs.
    for (name, edit) in [
        (
            "masked",
            Box::new(|c: &mut Value| {
                let masked = c["linux"]["maskedPaths"].as_array_mut().unwrap();
                masked.push(json!("/k/mm"));
                masked.push(json!("/k/uevent_seqnum"));
            }) as Box<dyn Fn(&mut Value)>,
        ),
        (
            "mount",
            Box::new(|c: &mut Value| {
                let mounts = c["mounts"].as_array_mut().unwrap();
                mounts.push(json!({"destination": "/k/mm", "type": "tmpfs", "source": "tmpfs"}));
                let masked = c["linux"]["maskedPaths"].as_array_mut().unwrap();
                masked.push(json!("/sys/kernel/uevent_seqnum"));
            }),
        ),
    ] {
        let mut env = TestEnv::new(&format!("mnt_late_link_{name}"));
        symlink("/sys/kernel", env.bundle.rootfs().join("k")).unwrap();
        env.bundle.edit(|c| edit(c));
        env.bundle.set_script(SYSFS_VIEW);
        let out = run_ok(&env);
        assert_sysfs_view(&out, true);
        assert!(
            !env.bundle.rootfs().join("sys/kernel").exists(),
            "{name}: made in the rootfs under sysfs"
        );
        env.assert_nothing_left();
    }
}
