//! Shared harness for the rrun integration tests.
//!
//! The runtime under test is `$RRUN_TEST_RUNTIME` if set, else the `rrun`
//! binary cargo builds for this package. Run the suite against runc to check
//! the tests themselves:
//!
//! ```text
//! RRUN_TEST_RUNTIME=/usr/bin/runc cargo test --test lifecycle -- --test-threads=2
//! ```
//!
//! Tests drive the runtime strictly as a subprocess. Every test gets its own
//! [`TestDir`], its own runtime `--root` and its own container ids, so tests
//! can run in parallel. Runtime invocations write stdout/stderr to files (not
//! pipes) so that a container that inherits the runtime's stdio can never make
//! the harness hang waiting for EOF.
#![allow(dead_code)]

pub mod console;
pub mod nfs;
pub mod rootless;

use std::cell::{Cell, RefCell};
use std::ffi::CString;
use std::fs;
use std::io::Write;
use std::os::unix::fs::symlink;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

/// How long a single runtime invocation may take before the harness kills it
/// and fails the test.
pub const CMD_TIMEOUT: Duration = Duration::from_secs(30);

// ---------------------------------------------------------------------------
// Runtime binary selection
// ---------------------------------------------------------------------------

/// The runtime binary under test.
pub fn runtime_bin() -> PathBuf {
    match std::env::var_os("RRUN_TEST_RUNTIME") {
        Some(p) if !p.is_empty() => PathBuf::from(p),
        _ => PathBuf::from(env!("CARGO_BIN_EXE_rrun")),
    }
}

/// True when the suite runs with the systemd cgroup driver
/// (`RRUN_TEST_CGROUP_DRIVER=systemd`, as the systemd VM pass sets it):
/// every runtime command gets `--systemd-cgroup`.
pub fn systemd_driver() -> bool {
    std::env::var("RRUN_TEST_CGROUP_DRIVER").is_ok_and(|d| d == "systemd")
}

/// True when the suite runs against a reference runtime (runc, crun, ...)
/// rather than rrun itself. Only used to relax assertions about things rrun
/// deliberately does differently (e.g. rrun prints exactly one error line).
pub fn is_reference_runtime() -> bool {
    let bin = runtime_bin();
    let name = bin.file_name().and_then(|n| n.to_str()).unwrap_or("");
    !name.starts_with("rrun")
}

// ---------------------------------------------------------------------------
// TestDir
// ---------------------------------------------------------------------------

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// A unique directory under /tmp, removed (after detaching any mount below
/// it) when dropped.
pub struct TestDir {
    path: PathBuf,
}

impl TestDir {
    pub fn new(name: &str) -> TestDir {
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let clean: String = name
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        let path = PathBuf::from(format!(
            "/tmp/rrun-test-{}-{}-{}",
            std::process::id(),
            n,
            clean
        ));
        if path.exists() {
            let _ = fs::remove_dir_all(&path);
        }
        fs::create_dir_all(&path).unwrap_or_else(|e| panic!("create {}: {e}", path.display()));
        TestDir { path }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn join<P: AsRef<Path>>(&self, p: P) -> PathBuf {
        self.path.join(p)
    }
}

impl Drop for TestDir {
    fn drop(&mut self) {
        // Just in case a runtime leaked a mount into our namespace.
        let mut mounts: Vec<String> = mount_points()
            .into_iter()
            .filter(|m| Path::new(m).starts_with(&self.path))
            .collect();
        // Deepest first.
        mounts.sort_by_key(|m| std::cmp::Reverse(m.len()));
        for m in mounts {
            if let Ok(c) = CString::new(m) {
                unsafe {
                    libc::umount2(c.as_ptr(), libc::MNT_DETACH);
                }
            }
        }
        let _ = fs::remove_dir_all(&self.path);
    }
}

/// Decode the octal escapes (`\040` etc.) used in /proc/self/mountinfo:
/// the runtime's own decoder, so the tests read mountinfo as rrun does.
pub use rrun::sys::unescape_mountinfo;

/// All mount points of the harness's mount namespace.
pub fn mount_points() -> Vec<String> {
    let info = fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    info.lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(unescape_mountinfo)
        .collect()
}

// ---------------------------------------------------------------------------
// Bundle
// ---------------------------------------------------------------------------

/// An OCI bundle: `<dir>/bundle/{config.json,rootfs}` with a busybox rootfs.
pub struct Bundle {
    path: PathBuf,
    config: Value,
}

/// Equivalent of `runc spec` output, but with `terminal: false`, a writable
/// rootfs and `args: ["sh", "-c", "true"]`.
pub fn base_config() -> Value {
    json!({
        "ociVersion": "1.0.2-dev",
        "process": {
            "terminal": false,
            "user": { "uid": 0, "gid": 0 },
            "args": ["sh", "-c", "true"],
            "env": [
                "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                "TERM=xterm"
            ],
            "cwd": "/",
            "capabilities": {
                "bounding": ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"],
                "effective": ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"],
                "permitted": ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"],
                "ambient": ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"]
            },
            "rlimits": [ { "type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024 } ],
            "noNewPrivileges": true
        },
        "root": { "path": "rootfs", "readonly": false },
        "hostname": "runc",
        "mounts": [
            { "destination": "/proc", "type": "proc", "source": "proc" },
            { "destination": "/dev", "type": "tmpfs", "source": "tmpfs",
              "options": ["nosuid", "strictatime", "mode=755", "size=65536k"] },
            { "destination": "/dev/pts", "type": "devpts", "source": "devpts",
              "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"] },
            { "destination": "/dev/shm", "type": "tmpfs", "source": "shm",
              "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"] },
            { "destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue",
              "options": ["nosuid", "noexec", "nodev"] },
            { "destination": "/sys", "type": "sysfs", "source": "sysfs",
              "options": ["nosuid", "noexec", "nodev", "ro"] },
            { "destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
              "options": ["nosuid", "noexec", "nodev", "relatime", "ro"] }
        ],
        "linux": {
            "resources": { "devices": [ { "allow": false, "access": "rwm" } ] },
            "namespaces": [
                { "type": "pid" }, { "type": "network" }, { "type": "ipc" },
                { "type": "uts" }, { "type": "mount" }
            ],
            "maskedPaths": [
                "/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys",
                "/proc/latency_stats", "/proc/timer_list", "/proc/timer_stats",
                "/proc/sched_debug", "/sys/firmware", "/proc/scsi"
            ],
            "readonlyPaths": [
                "/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"
            ]
        }
    })
}

fn busybox_applets() -> &'static [String] {
    use std::sync::OnceLock;
    static APPLETS: OnceLock<Vec<String>> = OnceLock::new();
    APPLETS.get_or_init(|| {
        let out = Command::new("/bin/busybox")
            .arg("--list")
            .output()
            .expect("run /bin/busybox --list");
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(|l| l.trim().to_string())
            .filter(|l| !l.is_empty() && !l.contains('/') && l != "busybox")
            .collect()
    })
}

/// Append a new namespace of `kind` (`"user"`, `"cgroup"`, ...) to a
/// config's `linux.namespaces`.
pub fn push_namespace(c: &mut Value, kind: &str) {
    c["linux"]["namespaces"]
        .as_array_mut()
        .unwrap()
        .push(json!({ "type": kind }));
}

/// Remove the namespace of `kind` from a config's `linux.namespaces`, so
/// the container shares the runtime's.
pub fn drop_namespace(c: &mut Value, kind: &str) {
    c["linux"]["namespaces"]
        .as_array_mut()
        .unwrap()
        .retain(|n| n["type"] != kind);
}

/// A user namespace mapping the container's ids 0-65535 to host ids
/// 100000-165535 (see [`Bundle::add_user_namespace`]).
pub fn user_namespace_config(c: &mut Value) {
    push_namespace(c, "user");
    c["linux"]["uidMappings"] = json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
    c["linux"]["gidMappings"] = json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
}

impl Bundle {
    /// Create `<dir>/bundle` with a busybox rootfs and the base config.
    pub fn new(dir: &Path) -> Bundle {
        let path = dir.join("bundle");
        let rootfs = path.join("rootfs");
        for d in ["bin", "etc", "proc", "sys", "dev", "tmp", "root"] {
            fs::create_dir_all(rootfs.join(d)).unwrap();
        }
        fs::copy("/bin/busybox", rootfs.join("bin/busybox")).expect("copy /bin/busybox");
        for applet in busybox_applets() {
            let _ = symlink("busybox", rootfs.join("bin").join(applet));
        }
        fs::write(
            rootfs.join("etc/passwd"),
            "root:x:0:0:root:/root:/bin/sh\n\
             nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n\
             user:x:1000:1000:user:/tmp:/bin/sh\n",
        )
        .unwrap();
        fs::write(
            rootfs.join("etc/group"),
            "root:x:0:\nnogroup:x:65534:\nuser:x:1000:\n",
        )
        .unwrap();
        let b = Bundle {
            path,
            config: base_config(),
        };
        b.write();
        b
    }

    /// Absolute bundle path (pass to `--bundle`).
    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn path_str(&self) -> &str {
        self.path.to_str().unwrap()
    }

    pub fn rootfs(&self) -> PathBuf {
        self.path.join("rootfs")
    }

    pub fn config_path(&self) -> PathBuf {
        self.path.join("config.json")
    }

    /// Mutable access to the in-memory config; call [`Bundle::write`] after.
    pub fn config_mut(&mut self) -> &mut Value {
        &mut self.config
    }

    pub fn config(&self) -> &Value {
        &self.config
    }

    /// Edit the config and write it to disk.
    pub fn edit<F: FnOnce(&mut Value)>(&mut self, f: F) -> &mut Self {
        f(&mut self.config);
        self.write();
        self
    }

    /// Set `process.args` and write the config.
    pub fn set_args(&mut self, args: &[&str]) -> &mut Self {
        self.edit(|c| c["process"]["args"] = json!(args))
    }

    /// Shorthand for `set_args(&["sh", "-c", script])`.
    pub fn set_script(&mut self, script: &str) -> &mut Self {
        self.set_args(&["sh", "-c", script])
    }

    /// Give the container a user namespace mapping its ids 0-65535 to host
    /// ids 100000-165535, and write the config.
    pub fn add_user_namespace(&mut self) -> &mut Self {
        self.edit(user_namespace_config)
    }

    /// Give the container's process `cap` (bounding, effective and
    /// permitted), and write the config.
    pub fn add_capability(&mut self, cap: &str) -> &mut Self {
        self.edit(|c| {
            for set in ["bounding", "effective", "permitted"] {
                c["process"]["capabilities"][set]
                    .as_array_mut()
                    .unwrap()
                    .push(json!(cap));
            }
        })
    }

    /// Append `option` to the options of the config's mount at `dest`, and
    /// write the config.
    pub fn add_mount_option(&mut self, dest: &str, option: &str) -> &mut Self {
        self.edit(|c| {
            let m = c["mounts"]
                .as_array_mut()
                .unwrap()
                .iter_mut()
                .find(|m| m["destination"] == dest)
                .unwrap_or_else(|| panic!("no mount at {dest}"));
            if m["options"].is_null() {
                m["options"] = json!([]);
            }
            m["options"].as_array_mut().unwrap().push(json!(option));
        })
    }

    /// Add a bind mount of a host path into the container and write config.
    pub fn add_bind_mount(&mut self, host: &Path, dest: &str) -> &mut Self {
        let m = json!({
            "destination": dest,
            "type": "bind",
            "source": host.to_str().unwrap(),
            "options": ["rbind", "rw"]
        });
        self.edit(|c| c["mounts"].as_array_mut().unwrap().push(m))
    }

    /// Write config.json from the in-memory config.
    pub fn write(&self) {
        let s = serde_json::to_string_pretty(&self.config).unwrap();
        fs::write(self.config_path(), s).expect("write config.json");
    }

    /// Write raw text to config.json (for malformed-config tests).
    pub fn write_raw(&self, text: &str) {
        fs::write(self.config_path(), text).expect("write config.json");
    }

    /// Read a file from the rootfs (path relative to the container's `/`).
    pub fn read_rootfs_file(&self, p: &str) -> Option<String> {
        fs::read_to_string(self.rootfs().join(p.trim_start_matches('/'))).ok()
    }
}

// ---------------------------------------------------------------------------
// Runtime
// ---------------------------------------------------------------------------

/// Drives the runtime binary with its own `--root` directory.
pub struct Runtime {
    bin: PathBuf,
    /// A program (with its arguments) that every command runs under, e.g.
    /// `unshare --mount`: see [`Runtime::wrapped`].
    wrapper: Vec<String>,
    root: PathBuf,
    io_dir: PathBuf,
    log: Option<PathBuf>,
    ids: RefCell<Vec<String>>,
    n: Cell<usize>,
}

/// A runtime process started in the background (e.g. a foreground `run`).
pub struct Spawned {
    pub child: Child,
    out: PathBuf,
    err: PathBuf,
    done: bool,
}

impl Spawned {
    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    pub fn signal(&self, sig: i32) {
        unsafe {
            libc::kill(self.pid(), sig);
        }
    }

    /// Current stdout content (while still running, too).
    pub fn stdout_so_far(&self) -> String {
        fs::read_to_string(&self.out).unwrap_or_default()
    }

    /// Wait for exit (killing it and panicking after `timeout`).
    pub fn wait_timeout(&mut self, timeout: Duration) -> Output {
        let status = wait_child(&mut self.child, timeout);
        self.done = true;
        Output {
            status,
            stdout: fs::read(&self.out).unwrap_or_default(),
            stderr: fs::read(&self.err).unwrap_or_default(),
        }
    }
}

impl Drop for Spawned {
    fn drop(&mut self) {
        if !self.done {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn wait_child(child: &mut Child, timeout: Duration) -> ExitStatus {
    let start = Instant::now();
    loop {
        match child.try_wait() {
            Ok(Some(st)) => return st,
            Ok(None) => {}
            Err(e) => panic!("waiting for runtime: {e}"),
        }
        if start.elapsed() > timeout {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "runtime process {} did not exit within {timeout:?}",
                child.id()
            );
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

impl Runtime {
    /// A runtime whose root is `<dir>/root` (not created: the runtime must
    /// create it itself).
    pub fn new(dir: &Path) -> Runtime {
        let io_dir = dir.join("io");
        fs::create_dir_all(&io_dir).unwrap();
        Runtime {
            bin: runtime_bin(),
            wrapper: Vec::new(),
            root: dir.join("root"),
            io_dir,
            log: None,
            ids: RefCell::new(Vec::new()),
            n: Cell::new(0),
        }
    }

    /// Also pass `--log <dir>/runtime.log --log-format json` to every command.
    pub fn with_log(mut self) -> Runtime {
        let p = self.io_dir.parent().unwrap().join("runtime.log");
        self.log = Some(p);
        self
    }

    /// Runs every command under `argv` (`cleanup` excepted), e.g.
    /// `["unshare", "--mount", "--propagation", "private", "--"]`: for tests
    /// of configs aimed at the caller's own namespaces, so that a runtime
    /// that obeys them harms a throwaway namespace, not the test machine.
    pub fn wrapped(mut self, argv: &[&str]) -> Runtime {
        self.wrapper = argv.iter().map(|s| s.to_string()).collect();
        self
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn root_str(&self) -> &str {
        self.root.to_str().unwrap()
    }

    pub fn log_path(&self) -> Option<&Path> {
        self.log.as_deref()
    }

    pub fn log_contents(&self) -> String {
        self.log
            .as_ref()
            .and_then(|p| fs::read_to_string(p).ok())
            .unwrap_or_default()
    }

    /// Remember `id` so Drop force-deletes it.
    pub fn track(&self, id: &str) {
        let mut ids = self.ids.borrow_mut();
        if !ids.iter().any(|i| i == id) {
            ids.push(id.to_string());
        }
    }

    fn global_args(&self) -> Vec<String> {
        let mut v = vec!["--root".to_string(), self.root_str().to_string()];
        if systemd_driver() {
            v.push("--systemd-cgroup".into());
        }
        if let Some(l) = &self.log {
            v.push("--log".into());
            v.push(l.to_str().unwrap().into());
            v.push("--log-format".into());
            v.push("json".into());
        }
        v
    }

    /// Track the id of `create`/`run`/`restore` for cleanup, unless it could name a
    /// path outside the root (`delete --force ..` against a runtime that does
    /// not validate ids would remove the root's parent).
    fn maybe_track(&self, args: &[&str]) {
        // Global flags (`--systemd-cgroup`, `--debug`) may come first.
        let command = args.iter().find(|a| !a.starts_with('-'));
        if matches!(command, Some(&"create") | Some(&"run") | Some(&"restore")) {
            if let Some(id) = args.last() {
                if !id.is_empty() && !id.contains('/') && *id != "." && *id != ".." {
                    self.track(id);
                }
            }
        }
    }

    fn io_files(&self) -> (PathBuf, PathBuf) {
        let n = self.n.get();
        self.n.set(n + 1);
        (
            self.io_dir.join(format!("{n}.out")),
            self.io_dir.join(format!("{n}.err")),
        )
    }

    /// A `Command` for `<bin> --root <root> [--log ..] <args..>`, without
    /// any stdio set up. Ids of `create`/`run` are tracked for cleanup.
    pub fn command(&self, args: &[&str]) -> Command {
        self.maybe_track(args);
        let mut c = match self.wrapper.split_first() {
            Some((prog, rest)) => {
                let mut c = Command::new(prog);
                c.args(rest).arg(&self.bin);
                c
            }
            None => Command::new(&self.bin),
        };
        c.args(self.global_args()).args(args);
        c
    }

    /// Run the runtime with `--root <root>` and wait (at most
    /// [`CMD_TIMEOUT`]). Stdin is /dev/null; stdout/stderr are captured via
    /// files, so a container inheriting them cannot block us.
    pub fn cmd(&self, args: &[&str]) -> Output {
        self.cmd_timeout(args, CMD_TIMEOUT)
    }

    pub fn cmd_timeout(&self, args: &[&str], timeout: Duration) -> Output {
        let mut sp = self.spawn(args);
        sp.wait_timeout(timeout)
    }

    /// Start the runtime in the background; stdio as in [`Runtime::cmd`].
    pub fn spawn(&self, args: &[&str]) -> Spawned {
        self.spawn_stdin(args, Stdio::null())
    }

    /// Like [`Runtime::spawn`] with the given stdin.
    pub fn spawn_stdin(&self, args: &[&str], stdin: Stdio) -> Spawned {
        let (out, err) = self.io_files();
        let mut c = self.command(args);
        c.stdin(stdin)
            .stdout(fs::File::create(&out).unwrap())
            .stderr(fs::File::create(&err).unwrap());
        let child = c
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {}: {e}", self.bin.display()));
        Spawned {
            child,
            out,
            err,
            done: false,
        }
    }

    /// Like [`Runtime::cmd`], run with working directory `cwd`.
    pub fn cmd_in(&self, cwd: &Path, args: &[&str]) -> Output {
        let (out, err) = self.io_files();
        let mut c = self.command(args);
        c.current_dir(cwd)
            .stdin(Stdio::null())
            .stdout(fs::File::create(&out).unwrap())
            .stderr(fs::File::create(&err).unwrap());
        let child = c
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {}: {e}", self.bin.display()));
        let mut sp = Spawned {
            child,
            out,
            err,
            done: false,
        };
        sp.wait_timeout(CMD_TIMEOUT)
    }

    /// Run with stdout/stderr going to the given files (which keep receiving
    /// whatever a container that inherited them writes later on).
    pub fn cmd_to_files(&self, args: &[&str], out: &Path, err: &Path) -> ExitStatus {
        let mut c = self.command(args);
        c.stdin(Stdio::null())
            .stdout(fs::File::create(out).unwrap())
            .stderr(fs::File::create(err).unwrap());
        let mut child = c
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {}: {e}", self.bin.display()));
        wait_child(&mut child, CMD_TIMEOUT)
    }

    /// Like [`Runtime::cmd`] but panics (with stdout/stderr) unless exit 0.
    pub fn run_ok(&self, args: &[&str]) -> Output {
        let out = self.cmd(args);
        assert!(
            out.status.success(),
            "`{} {}` failed: {}",
            self.bin.display(),
            args.join(" "),
            describe(&out)
        );
        out
    }

    /// `create --bundle <bundle> <id>`, asserting success.
    pub fn create(&self, bundle: &Bundle, id: &str) -> Output {
        self.run_ok(&["create", "--bundle", bundle.path_str(), id])
    }

    /// `start <id>`, asserting success.
    pub fn start(&self, id: &str) -> Output {
        self.run_ok(&["start", id])
    }

    /// `state <id>` parsed as JSON; panics if the command fails.
    pub fn state(&self, id: &str) -> Value {
        let out = self.run_ok(&["state", id]);
        serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("state output is not JSON ({e}): {}", describe(&out)))
    }

    /// `state.status`.
    pub fn status(&self, id: &str) -> String {
        self.state(id)["status"]
            .as_str()
            .expect("state.status is a string")
            .to_string()
    }

    /// `state.pid`.
    pub fn pid(&self, id: &str) -> i32 {
        self.state(id)["pid"]
            .as_i64()
            .expect("state.pid is a number") as i32
    }

    /// Poll until the container has `status` (panics after `timeout`).
    pub fn wait_status(&self, id: &str, status: &str, timeout: Duration) {
        let mut last = String::new();
        let ok = wait_for(timeout, || {
            last = self.status(id);
            last == status
        });
        assert!(
            ok,
            "container {id} did not reach status {status:?} within {timeout:?} (last {last:?})"
        );
    }

    /// Delete every tracked container with `delete --force`.
    pub fn cleanup(&self) {
        let ids: Vec<String> = self.ids.borrow().clone();
        for id in ids {
            // Never panics: this runs from Drop, possibly while unwinding.
            let spawned = Command::new(&self.bin)
                .args(self.global_args())
                .args(["delete", "--force", id.as_str()])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn();
            let Ok(mut child) = spawned else { continue };
            let start = Instant::now();
            loop {
                match child.try_wait() {
                    Ok(None) if start.elapsed() < Duration::from_secs(10) => {
                        std::thread::sleep(Duration::from_millis(10));
                    }
                    Ok(None) => {
                        let _ = child.kill();
                        let _ = child.wait();
                        break;
                    }
                    _ => break,
                }
            }
        }
        // Give killed processes a moment to be reaped by the host init.
        std::thread::sleep(Duration::from_millis(50));
        // Safety net for a runtime whose `delete --force` is broken: kill
        // whatever still sits in a cgroup named after one of our (unique) ids.
        for id in self.ids.borrow().iter() {
            let pids = pids_in_cgroup_named(id);
            for &pid in &pids {
                unsafe {
                    libc::kill(pid, libc::SIGKILL);
                }
            }
            if !pids.is_empty() {
                wait_for(Duration::from_secs(2), || {
                    pids_in_cgroup_named(id).is_empty()
                });
            }
            // And remove (empty) cgroup dirs it left behind, deepest first.
            let mut dirs = Vec::new();
            find_dirs_named(Path::new("/sys/fs/cgroup"), id, 0, 5, &mut dirs);
            dirs.sort_by_key(|d| std::cmp::Reverse(d.as_os_str().len()));
            for d in dirs {
                let _ = fs::remove_dir(&d);
            }
        }
    }
}

/// Live processes with a cgroup path component equal to `name`.
pub fn pids_in_cgroup_named(name: &str) -> Vec<i32> {
    let mut pids = Vec::new();
    if name.is_empty() {
        return pids;
    }
    let Ok(rd) = fs::read_dir("/proc") else {
        return pids;
    };
    for e in rd.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
            continue;
        };
        if pid == std::process::id() as i32 || !process_alive(pid) {
            continue;
        }
        let Ok(cg) = fs::read_to_string(e.path().join("cgroup")) else {
            continue;
        };
        if cg.lines().any(|l| {
            l.splitn(3, ':')
                .nth(2)
                .is_some_and(|p| p.split('/').any(|c| c == name))
        }) {
            pids.push(pid);
        }
    }
    pids
}

impl Drop for Runtime {
    fn drop(&mut self) {
        self.cleanup();
    }
}

// ---------------------------------------------------------------------------
// A complete per-test environment
// ---------------------------------------------------------------------------

/// Everything a typical test needs. Fields drop in declaration order: the
/// runtime first (force-deleting containers), then the bundle, then the dir.
pub struct TestEnv {
    pub rt: Runtime,
    pub bundle: Bundle,
    pub dir: TestDir,
    /// A container id unique to this test and process.
    pub id: String,
}

impl TestEnv {
    pub fn new(name: &str) -> TestEnv {
        let dir = TestDir::new(name);
        let rt = Runtime::new(dir.path());
        let bundle = Bundle::new(dir.path());
        TestEnv {
            rt,
            bundle,
            id: unique_id(name),
            dir,
        }
    }

    /// Same, with `--log <file> --log-format json` on every command.
    pub fn with_log(name: &str) -> TestEnv {
        let dir = TestDir::new(name);
        let rt = Runtime::new(dir.path()).with_log();
        let bundle = Bundle::new(dir.path());
        TestEnv {
            rt,
            bundle,
            id: unique_id(name),
            dir,
        }
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    /// `create --bundle <bundle> <id>` for this env's id, asserting success.
    pub fn create(&self) -> Output {
        self.rt.create(&self.bundle, &self.id)
    }

    /// `create` with extra arguments before the id, returning the output.
    pub fn try_create(&self, extra: &[&str]) -> Output {
        let mut args = vec!["create", "--bundle", self.bundle.path_str()];
        args.extend_from_slice(extra);
        args.push(&self.id);
        self.rt.cmd(&args)
    }

    /// `run --bundle <bundle> [extra..] <id>`, returning the output.
    pub fn run(&self, extra: &[&str]) -> Output {
        let mut args = vec!["run", "--bundle", self.bundle.path_str()];
        args.extend_from_slice(extra);
        args.push(&self.id);
        self.rt.cmd(&args)
    }

    pub fn assert_nothing_left(&self) {
        assert_nothing_left(&self.rt, &self.id, &self.bundle);
    }
}

/// A container id derived from the test name, unique to this process.
pub fn unique_id(name: &str) -> String {
    format!("{}-{}", name.replace('_', "-"), std::process::id())
}

// ---------------------------------------------------------------------------
// Assertions and helpers
// ---------------------------------------------------------------------------

/// Poll `cond` every 20ms until it is true or `timeout` passes.
/// `systemctl show -p PROP --value UNIT` (empty when systemctl fails).
pub fn unit_property(unit: &str, prop: &str) -> String {
    let out = Command::new("systemctl")
        .args(["show", "-p", prop, "--value", unit])
        .output()
        .expect("systemctl");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Whether systemd knows the unit at all (`systemctl list-units --all`,
/// which also lists failed and inactive units not yet collected).
pub fn unit_listed(unit: &str) -> bool {
    let out = Command::new("systemctl")
        .args([
            "list-units",
            "--all",
            "--plain",
            "--no-legend",
            "--no-pager",
            unit,
        ])
        .output()
        .expect("systemctl");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .any(|l| l.split_whitespace().next() == Some(unit))
}

/// Runs `rrun [ARGS] create` of `env`'s bundle as `id` under strace, which
/// holds the create at its first `syscall` (5 s), and kills it once its
/// debug log says the state was recorded: a create killed after writing
/// its record and before acting on it (its cgroups or its systemd unit).
/// None (the test skips) without strace; else whether the record was seen.
pub fn create_killed_after_its_record(
    env: &TestEnv,
    args: &[&str],
    id: &str,
    syscall: &str,
) -> Option<bool> {
    let log = env.dir.join(format!("{id}-debug.log"));
    let log_str = log.to_str().unwrap();
    let mut full = vec!["--debug", "--log", log_str];
    full.extend_from_slice(args);
    full.extend_from_slice(&["create", "--bundle", env.bundle.path_str(), id]);
    let trace = format!("trace={syscall}");
    let inject = format!("inject={syscall}:delay_enter=5000000");
    let mut strace = under_strace(&["-e", &trace, "-e", &inject], env.rt.command(&full))?
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let recorded = wait_for(Duration::from_secs(20), || {
        fs::read_to_string(&log).is_ok_and(|t| t.contains("create: state recorded"))
    });
    // The traced create is strace's only child; it dies before strace
    // could let it go on.
    for pid in children_of(strace.id()) {
        // SAFETY: kill has no memory effects.
        unsafe { libc::kill(pid, libc::SIGKILL) };
    }
    let _ = strace.kill();
    let _ = strace.wait();
    Some(recorded)
}

/// Starts `c` (a `create`, often [`under_strace`]) with no stdin or
/// stdout and its stderr in `DIR/create.stderr`: a file, not a pipe, since
/// the container's process inherits it and would hold a pipe open. Returns
/// the child and a reader of that stderr.
pub fn spawn_with_stderr_file(
    mut c: Command,
    dir: &Path,
) -> (std::process::Child, impl Fn() -> String) {
    let err_path = dir.join("create.stderr");
    let child = c
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(fs::File::create(&err_path).unwrap())
        .spawn()
        .unwrap();
    (child, move || {
        fs::read_to_string(&err_path).unwrap_or_default()
    })
}

/// `rt` (a runtime command) under `strace -o /dev/null STRACE_ARGS`, for
/// its fault injection (`-e inject=...`). None, and a "skipped" line,
/// without strace.
pub fn under_strace(strace_args: &[&str], rt: Command) -> Option<Command> {
    if Command::new("strace").arg("-V").output().is_err() {
        eprintln!("skipped: no strace");
        return None;
    }
    let mut c = Command::new("strace");
    c.args(["-o", "/dev/null"])
        .args(strace_args)
        .arg(rt.get_program())
        .args(rt.get_args());
    Some(c)
}

/// `strace -o /dev/null STRACE_ARGS -p PID`, returned once it has
/// attached (`TracerPid` set), for fault injection into a running process;
/// ends (detaching) on SIGTERM. None, and a "skipped" line, without strace.
pub fn strace_attached(pid: i32, strace_args: &[&str]) -> Option<std::process::Child> {
    if Command::new("strace").arg("-V").output().is_err() {
        eprintln!("skipped: no strace");
        return None;
    }
    let child = Command::new("strace")
        .args(["-o", "/dev/null"])
        .args(strace_args)
        .args(["-p", &pid.to_string()])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start strace");
    let attached = wait_for(Duration::from_secs(10), || {
        fs::read_to_string(format!("/proc/{pid}/status"))
            .unwrap_or_default()
            .lines()
            .any(|l| l.starts_with("TracerPid:") && l.split_whitespace().nth(1) != Some("0"))
    });
    assert!(attached, "strace never attached to {pid}");
    Some(child)
}

/// The pids of `pid`'s children (`/proc/PID/task/PID/children`).
pub fn children_of(pid: u32) -> Vec<i32> {
    fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|p| p.parse().ok())
        .collect()
}

pub fn wait_for<F: FnMut() -> bool>(timeout: Duration, mut cond: F) -> bool {
    let start = Instant::now();
    loop {
        if cond() {
            return true;
        }
        if start.elapsed() > timeout {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Wait for a file to exist and be non-empty; returns its content.
pub fn wait_for_file(path: &Path, timeout: Duration) -> Option<String> {
    let mut content = None;
    wait_for(timeout, || {
        content = fs::read_to_string(path).ok().filter(|s| !s.is_empty());
        content.is_some()
    });
    content
}

pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Exit code, or 128+signal if killed by a signal.
pub fn exit_code(out: &Output) -> i32 {
    out.status
        .code()
        .unwrap_or_else(|| 128 + out.status.signal().unwrap_or(0))
}

/// Human-readable summary of a command's result, for assertion messages.
pub fn describe(out: &Output) -> String {
    format!(
        "status={:?}\n--- stdout ---\n{}\n--- stderr ---\n{}",
        out.status,
        stdout(out),
        stderr(out)
    )
}

// ---------------------------------------------------------------------------
// Container output and what the host sees of a process
// ---------------------------------------------------------------------------

/// `run` the env's bundle in the foreground, assert exit 0, return stdout.
pub fn run_ok(env: &TestEnv) -> String {
    let out = env.run(&[]);
    assert!(
        out.status.success(),
        "container run failed: {}",
        describe(&out)
    );
    stdout(&out)
}

/// The value of the first `key=value` line of a container's output.
pub fn field<'a>(out: &'a str, key: &str) -> &'a str {
    let prefix = format!("{key}=");
    out.lines()
        .find_map(|l| l.strip_prefix(prefix.as_str()))
        .unwrap_or_else(|| panic!("no {key}= line in container output:\n{out}"))
}

/// A `/proc/self/status` line value (`CapEff`, `NoNewPrivs`, ...) from a
/// container that printed its status.
pub fn status_value<'a>(out: &'a str, key: &str) -> &'a str {
    let prefix = format!("{key}:");
    out.lines()
        .find_map(|l| l.strip_prefix(prefix.as_str()))
        .map(str::trim)
        .unwrap_or_else(|| panic!("no {key}: line in:\n{out}"))
}

/// The target of a symlink on the host, e.g. `net:[4026531840]` for
/// `/proc/<pid>/ns/net`.
pub fn host_link<P: AsRef<Path>>(p: P) -> String {
    let p = p.as_ref();
    fs::read_link(p)
        .unwrap_or_else(|e| panic!("readlink {}: {e}", p.display()))
        .to_string_lossy()
        .into_owned()
}

/// For a test of what the reference runtime (runc 1.1.5) does not do:
/// true, saying why, when the suite runs against one (`why` is the whole
/// reason, e.g. "runc 1.1.5 accepts ...").
pub fn skip_on_reference_because(why: &str) -> bool {
    if is_reference_runtime() {
        eprintln!("skipped: {why}");
        return true;
    }
    false
}

/// [`skip_on_reference_because`] for a feature runc 1.1.5 lacks.
pub fn skip_on_reference(what: &str) -> bool {
    skip_on_reference_because(&format!("runc 1.1.5 lacks {what}"))
}

/// True if a process with this pid exists and is not a zombie.
pub fn process_alive(pid: i32) -> bool {
    if pid <= 0 {
        return false;
    }
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => {
            // Field 3 (after the parenthesised comm) is the state.
            let after = stat
                .rsplit_once(')')
                .map(|(_, r)| r.trim_start())
                .unwrap_or("");
            !after.starts_with('Z') && !after.starts_with('X')
        }
        Err(_) => false,
    }
}

/// True if `haystack` contains `word` (case-insensitive) not directly
/// preceded or followed by an alphanumeric character, so that "id" does not
/// match inside "invalid".
pub fn mentions(haystack: &str, word: &str) -> bool {
    let h = haystack.to_lowercase();
    let w = word.to_lowercase();
    if w.is_empty() {
        return false;
    }
    let is_word = |c: char| c.is_alphanumeric() || c == '_';
    let mut start = 0;
    while let Some(pos) = h[start..].find(&w) {
        let i = start + pos;
        let before_ok = !matches!(h[..i].chars().next_back(), Some(c) if is_word(c));
        let after_ok = !matches!(h[i + w.len()..].chars().next(), Some(c) if is_word(c));
        if before_ok && after_ok {
            return true;
        }
        start = i + h[i..].chars().next().map_or(1, |c| c.len_utf8());
    }
    false
}

/// Assert the command failed with a useful error: non-zero exit, non-empty
/// stderr mentioning one of `nouns` (case-insensitive, as a whole word). For
/// rrun itself, the error must be exactly one line; reference runtimes may
/// print more.
pub fn assert_error(out: &Output, nouns: &[&str]) {
    assert_error_ref(out, nouns, &[]);
}

/// Like [`assert_error`], but when running against a reference runtime
/// (runc), mentioning one of `reference_nouns` is accepted too. Use this where
/// rrun deliberately gives a more specific message than runc.
pub fn assert_error_ref(out: &Output, nouns: &[&str], reference_nouns: &[&str]) {
    assert!(
        !out.status.success(),
        "expected failure, got success: {}",
        describe(out)
    );
    let err = stderr(out);
    let lines: Vec<&str> = err.lines().filter(|l| !l.trim().is_empty()).collect();
    assert!(
        !lines.is_empty(),
        "expected an error message on stderr: {}",
        describe(out)
    );
    let mut accepted: Vec<&str> = nouns.to_vec();
    if is_reference_runtime() {
        accepted.extend_from_slice(reference_nouns);
    } else {
        assert_eq!(
            err.trim_end_matches('\n').lines().count(),
            1,
            "rrun must print exactly one non-empty error line: {}",
            describe(out)
        );
    }
    assert!(
        accepted.iter().any(|n| mentions(&err, n)),
        "error message should mention one of {accepted:?}: {}",
        describe(out)
    );
}

/// The `key=value` pairs of a logrus text line; values bare or quoted as
/// Go's `%q` quotes them (`time="…" level=error msg="…"`).
pub fn logrus_fields(line: &str) -> Vec<(String, String)> {
    let mut fields = Vec::new();
    let mut rest = line.trim_end_matches('\n');
    while !rest.is_empty() {
        let (key, after) = rest
            .split_once('=')
            .unwrap_or_else(|| panic!("not a logrus line: {line:?}"));
        let mut value = String::new();
        let mut chars = after.char_indices();
        let end = if after.starts_with('"') {
            chars.next();
            let mut end = None;
            while let Some((i, c)) = chars.next() {
                match c {
                    '"' => {
                        end = Some(i + 1);
                        break;
                    }
                    '\\' => match chars.next().map(|(_, c)| c) {
                        Some('n') => value.push('\n'),
                        Some('t') => value.push('\t'),
                        Some(c) => value.push(c),
                        None => {}
                    },
                    c => value.push(c),
                }
            }
            end.unwrap_or_else(|| panic!("unterminated value in {line:?}"))
        } else {
            let end = after.find(' ').unwrap_or(after.len());
            value.push_str(&after[..end]);
            end
        };
        fields.push((key.to_string(), value));
        rest = after[end..].trim_start_matches(' ');
    }
    fields
}

/// The message of a failed command's error on stderr: the `msg` of its
/// logrus line (`time="…" level=error msg="…"`, unquoted), or stderr as it
/// is when it is not one (a bare message, as with `--log`).
pub fn error_message(out: &Output) -> String {
    let err = stderr(out);
    let Some(line) = err.lines().rfind(|l| l.starts_with("time=")) else {
        return err;
    };
    logrus_fields(line)
        .into_iter()
        .find(|(k, _)| k == "msg")
        .map(|(_, v)| v)
        .unwrap_or(err)
}

/// Parse an RFC 3339 timestamp (`2024-01-02T03:04:05.123456789Z` or with a
/// `+hh:mm` offset) into Unix seconds.
pub fn parse_rfc3339(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || (b[10] != b'T' && b[10] != b't') {
        return None;
    }
    if b[13] != b':' || b[16] != b':' {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let t = s.get(r)?;
        if !t.bytes().all(|c| c.is_ascii_digit()) {
            return None;
        }
        t.parse().ok()
    };
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi, se) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || se > 60 {
        return None;
    }
    let mut rest = &s[19..];
    if let Some(r) = rest.strip_prefix('.') {
        let n = r.bytes().take_while(|c| c.is_ascii_digit()).count();
        if n == 0 {
            return None;
        }
        rest = &r[n..];
    }
    let offset = if rest == "Z" || rest == "z" {
        0
    } else {
        let rb = rest.as_bytes();
        if rb.len() != 6 || (rb[0] != b'+' && rb[0] != b'-') || rb[3] != b':' {
            return None;
        }
        let oh: i64 = rest[1..3].parse().ok()?;
        let om: i64 = rest[4..6].parse().ok()?;
        let o = oh * 3600 + om * 60;
        if rb[0] == b'-' {
            -o
        } else {
            o
        }
    };
    // Days from civil (Howard Hinnant's algorithm).
    let y2 = if mo <= 2 { y - 1 } else { y };
    let era = y2.div_euclid(400);
    let yoe = y2 - era * 400;
    let mp = (mo + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146097 + doe - 719468;
    Some(days * 86400 + h * 3600 + mi * 60 + se - offset)
}

/// Current Unix time in seconds.
pub fn now_unix() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// Check that nothing of container `id` survives: no state dir, no mount
/// mentioning the bundle or runtime root, no cgroup dir named like the id, and
/// no process inside the bundle or in a cgroup named like the id.
pub fn assert_nothing_left(rt: &Runtime, id: &str, bundle: &Bundle) {
    let problems = leftovers(rt, id, bundle);
    assert!(
        problems.is_empty(),
        "leftovers of container {id:?}:\n{}",
        problems.join("\n")
    );
}

/// The list of things [`assert_nothing_left`] complains about. Retries for a
/// short while, since a killed process may take a moment to disappear.
pub fn leftovers(rt: &Runtime, id: &str, bundle: &Bundle) -> Vec<String> {
    let mut problems = Vec::new();
    wait_for(Duration::from_secs(3), || {
        problems = leftovers_once(rt, id, bundle);
        problems.is_empty()
    });
    problems
}

fn leftovers_once(rt: &Runtime, id: &str, bundle: &Bundle) -> Vec<String> {
    let mut problems = Vec::new();
    let bundle_path = bundle.path().to_str().unwrap().to_string();
    let root = rt.root_str().to_string();

    // State dir. Only meaningful for ids that are valid path components.
    if !id.is_empty() && !id.contains('/') && id != "." && id != ".." {
        let state_dir = rt.root().join(id);
        if state_dir.exists() {
            problems.push(format!("state dir {} still exists", state_dir.display()));
        }
    }

    // Mounts.
    let info = fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    for line in info.lines() {
        let decoded = unescape_mountinfo(line);
        if decoded.contains(&bundle_path) || decoded.contains(&root) {
            problems.push(format!("mount left: {line}"));
        }
    }

    // Cgroups named like the id.
    if !id.is_empty() && id != "." && id != ".." {
        let leaf = id.rsplit('/').next().unwrap_or(id);
        if !leaf.is_empty() {
            let mut found = Vec::new();
            find_dirs_named(Path::new("/sys/fs/cgroup"), leaf, 0, 5, &mut found);
            for f in found {
                problems.push(format!("cgroup left: {}", f.display()));
            }
        }
    }

    // Processes.
    if let Ok(rd) = fs::read_dir("/proc") {
        for e in rd.flatten() {
            let name = e.file_name();
            let Some(pid) = name.to_str().and_then(|s| s.parse::<i32>().ok()) else {
                continue;
            };
            if pid == std::process::id() as i32 || !process_alive(pid) {
                continue;
            }
            let p = e.path();
            let mut why = Vec::new();
            if let Ok(cmd) = fs::read(p.join("cmdline")) {
                let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
                if cmd.contains(&bundle_path) {
                    why.push(format!("cmdline {cmd:?}"));
                }
            }
            for link in ["cwd", "root"] {
                if let Ok(t) = fs::read_link(p.join(link)) {
                    if t.starts_with(bundle.path()) {
                        why.push(format!("{link} -> {}", t.display()));
                    }
                }
            }
            if !id.is_empty() {
                if let Ok(cg) = fs::read_to_string(p.join("cgroup")) {
                    for l in cg.lines() {
                        let path = l.splitn(3, ':').nth(2).unwrap_or("");
                        if path.split('/').any(|c| c == id) {
                            why.push(format!("cgroup {l}"));
                            break;
                        }
                    }
                }
            }
            if !why.is_empty() {
                problems.push(format!("process {pid} left: {}", why.join(", ")));
            }
        }
    }
    problems
}

fn find_dirs_named(dir: &Path, name: &str, depth: usize, max: usize, found: &mut Vec<PathBuf>) {
    if depth > max {
        return;
    }
    let Ok(rd) = fs::read_dir(dir) else { return };
    for e in rd.flatten() {
        let Ok(ft) = e.file_type() else { continue };
        if !ft.is_dir() || ft.is_symlink() {
            continue;
        }
        let p = e.path();
        if e.file_name().to_str() == Some(name) {
            found.push(p.clone());
        }
        find_dirs_named(&p, name, depth + 1, max, found);
    }
}

/// Parse the runtime's `--log-format json` log file into JSON values (one per
/// non-empty line); panics on a line that is not JSON.
pub fn parse_json_log(text: &str) -> Vec<Value> {
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            serde_json::from_str(l).unwrap_or_else(|e| panic!("log line is not JSON ({e}): {l}"))
        })
        .collect()
}

/// Append a line to a file (creating it).
pub fn append(path: &Path, text: &str) {
    let mut f = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap();
    f.write_all(text.as_bytes()).unwrap();
}

// ---------------------------------------------------------------------------
// Runtime invocations with extra environment or an inherited fd 3
// ---------------------------------------------------------------------------

impl Runtime {
    /// Like [`Runtime::spawn`], with `env` added to the runtime's environment.
    pub fn spawn_env(&self, args: &[&str], env: &[(&str, &str)]) -> Spawned {
        let (out, err) = self.io_files();
        let mut c = self.command(args);
        c.envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(fs::File::create(&out).unwrap())
            .stderr(fs::File::create(&err).unwrap());
        let child = c
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {}: {e}", self.bin.display()));
        Spawned {
            child,
            out,
            err,
            done: false,
        }
    }

    /// Like [`Runtime::cmd`], with `env` added to the runtime's environment.
    pub fn cmd_env(&self, args: &[&str], env: &[(&str, &str)]) -> Output {
        self.spawn_env(args, env).wait_timeout(CMD_TIMEOUT)
    }

    /// Start the runtime with `file` open read-only on fd 3 (and nothing
    /// else above stderr), through `sh -c 'exec 3<file; exec runtime ..'`, so
    /// the runtime's pid is the shell's `$$`. `env` is added to the
    /// runtime's environment; a value of exactly `"$$"` becomes the
    /// runtime's own pid (for `LISTEN_PID`).
    pub fn spawn_with_fd3(&self, args: &[&str], file: &Path, env: &[(&str, &str)]) -> Spawned {
        let (out, err) = self.io_files();
        let rt = self.command(args);
        let mut script = String::from("exec 3<\"$0\"; ");
        for (k, _) in env.iter().filter(|(_, v)| *v == "$$") {
            script.push_str(&format!("export {k}=$$; "));
        }
        script.push_str("exec \"$@\"");
        let mut c = Command::new("/bin/sh");
        c.arg("-c")
            .arg(script)
            .arg(file)
            .arg(rt.get_program())
            .args(rt.get_args())
            .envs(env.iter().filter(|(_, v)| *v != "$$").copied())
            .stdin(Stdio::null())
            .stdout(fs::File::create(&out).unwrap())
            .stderr(fs::File::create(&err).unwrap());
        let child = c.spawn().unwrap_or_else(|e| panic!("spawn /bin/sh: {e}"));
        Spawned {
            child,
            out,
            err,
            done: false,
        }
    }
}

/// What an agent on one of the runtime's unix sockets (a console socket, a
/// seccomp listener) received: the connection, still open; the message's
/// bytes; the fds it carried (SCM_RIGHTS).
pub struct AgentMessage {
    pub stream: std::os::unix::net::UnixStream,
    pub bytes: Vec<u8>,
    pub fds: Vec<std::os::fd::OwnedFd>,
}

/// Accepts one connection on `listener` and receives one message of at most
/// `max` bytes with its fds, each wait bounded by `timeout`. Errors as text,
/// for agents that run on a thread of their own.
pub fn accept_one_message(
    listener: &std::os::unix::net::UnixListener,
    max: usize,
    timeout: Duration,
) -> Result<AgentMessage, String> {
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
    let deadline = Instant::now() + timeout;
    listener.set_nonblocking(true).map_err(|e| e.to_string())?;
    let stream = loop {
        match listener.accept() {
            Ok((s, _)) => break s,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                if Instant::now() > deadline {
                    return Err(format!("no connection on the socket within {timeout:?}"));
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(e) => return Err(format!("accept: {e}")),
        }
    };
    stream.set_nonblocking(false).map_err(|e| e.to_string())?;
    stream
        .set_read_timeout(Some(
            deadline
                .saturating_duration_since(Instant::now())
                .max(Duration::from_millis(1)),
        ))
        .map_err(|e| e.to_string())?;
    let mut bytes = vec![0u8; max];
    let mut iov = [std::io::IoSliceMut::new(&mut bytes)];
    let mut space = nix::cmsg_space!([RawFd; 8]);
    let msg = nix::sys::socket::recvmsg::<()>(
        stream.as_raw_fd(),
        &mut iov,
        Some(&mut space),
        nix::sys::socket::MsgFlags::MSG_CMSG_CLOEXEC,
    )
    .map_err(|e| format!("recvmsg: {e}"))?;
    let mut fds = Vec::new();
    for c in msg.cmsgs().map_err(|e| format!("control messages: {e}"))? {
        if let nix::sys::socket::ControlMessageOwned::ScmRights(v) = c {
            // SAFETY: the kernel just installed these fds for us.
            fds.extend(v.into_iter().map(|fd| unsafe { OwnedFd::from_raw_fd(fd) }));
        }
    }
    let n = msg.bytes;
    bytes.truncate(n);
    stream.set_read_timeout(None).map_err(|e| e.to_string())?;
    Ok(AgentMessage { stream, bytes, fds })
}
