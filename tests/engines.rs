//! Engine tests: containerd 1.6 (`ctr run --runc-binary`), Podman 4.3
//! (`containers.conf` `[engine.runtimes]`) and Docker 20.10 (`daemon.json`
//! `runtimes`) drive rrun as their OCI runtime, and every assertion is on
//! what a user of the engine sees: its output, its exit code, its error
//! message, and the container's cgroup as read back on the host.
//!
//! These tests are `#[ignore]`d in the plain `cargo test` run (they need the
//! engines installed and take a few minutes); `.ci/run`'s engines section
//! runs them:
//!
//! ```text
//! cargo test --release --test engines -- --ignored --test-threads=2
//! ```
//!
//! Check the tests themselves against runc (the engines' default runtime):
//! `RRUN_TEST_RUNTIME=/usr/sbin/runc cargo test --release --test engines -- --ignored`.
//! `RRUN_ENGINE_TRACE=1` puts a wrapper between the engines and the runtime
//! that logs every runtime command line and exit code to
//! `<workspace>/runtime-trace.log`, and `RRUN_ENGINE_KEEP=1` keeps the
//! workspace (daemon logs, bundles) after the run.
//!
//! Each engine gets its own root, state and socket under one workspace
//! (`/tmp/rrun-test-engines-<pid>/`); the daemons are started on first use,
//! shared by the tests, and stopped by pid (with every container, shim,
//! mount and cgroup they made) when the test binary exits, even after
//! failures. They are spawned from a thread that lives as long as the test
//! process, with `PR_SET_PDEATHSIG`, so a killed test run does not leave
//! them running either.
//!
//! The image is a busybox rootfs built by `tests/engines/mkimage.sh` from
//! busybox-static, imported into Podman and saved as archives for
//! containerd and Docker: no registry is needed.
//!
//! `RRUN_ENGINE_CGROUP_DRIVER=systemd` starts every engine with its systemd
//! cgroup driver, as on a current distribution (the default, `cgroupfs`, is
//! what this host without systemd needs): Docker with
//! `native.cgroupdriver=systemd`, Podman with `cgroup_manager = "systemd"`,
//! containerd's CRI runtime `rrun` with `SystemdCgroup = true` (pods whose
//! cgroup parent is a slice), `ctr run --runc-systemd-cgroup`. The engines
//! then pass `--systemd-cgroup` and rrun makes each container a transient
//! scope; every one goes under the slice `rrunteng<pid>.slice`, which is
//! stopped at exit. The `systemd_` scenarios run in that mode only (and
//! skip in the other); the mode is refused, every test skipping with the
//! reason, where systemd is not pid 1 on cgroup v2. The systemd VM runs
//! them: `RRUN_VM_INIT=systemd RRUN_VM_PLAN="RRUN_ENGINE_CGROUP_DRIVER=systemd
//! engines --ignored systemd_" tests/vm/run.sh`.

mod common;

use std::ffi::CString;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use common::nfs::NfsVolume;
use common::{unit_listed, unit_property};
use serde_json::Value;

const IMAGE: &str = "localhost/rrun-busybox:test";
/// Longest any single engine command may take.
const CMD_TIMEOUT: Duration = Duration::from_secs(90);
/// A container process that runs until it is stopped; exits 42 on SIGTERM,
/// so a test can tell that the engine's stop reached it through the runtime.
const SERVE: &[&str] = &[
    "sh",
    "-c",
    "trap 'echo got-term; exit 42' TERM; echo started; while :; do sleep 0.1; done",
];
const DOCKER: &str = "/usr/bin/docker";

// ---------------------------------------------------------------------------
// Running commands
// ---------------------------------------------------------------------------

/// What a user sees from one command.
#[derive(Debug, Clone)]
struct Out {
    cmd: String,
    code: i32,
    stdout: String,
    stderr: String,
}

impl Out {
    fn ok(&self) -> bool {
        self.code == 0
    }
    /// stdout and stderr together (engines differ in where they print).
    fn all(&self) -> String {
        format!("{}{}", self.stdout, self.stderr)
    }
    fn describe(&self) -> String {
        format!(
            "$ {}\nexit code: {}\n--- stdout ---\n{}--- stderr ---\n{}",
            self.cmd, self.code, self.stdout, self.stderr
        )
    }
    #[track_caller]
    fn expect_ok(self) -> Out {
        assert!(self.ok(), "command failed:\n{}{}", self.describe(), hints());
        self
    }
}

static SEQ: AtomicUsize = AtomicUsize::new(0);

fn seq() -> usize {
    SEQ.fetch_add(1, Ordering::SeqCst)
}

fn quote(s: &str) -> String {
    if !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./=:,@+%".contains(c))
    {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

fn shell_line(argv: &[String]) -> String {
    argv.iter().map(|a| quote(a)).collect::<Vec<_>>().join(" ")
}

/// Run `argv` with stdin from /dev/null and stdout/stderr to files (a
/// container that inherits them can never make us wait for EOF), killing it
/// after `timeout`.
fn run_argv(argv: &[String], env: &[(String, String)], timeout: Duration) -> Out {
    run_argv_input(argv, env, timeout, None)
}

/// [`run_argv`] with `input` (from a file) as stdin.
fn run_argv_input(
    argv: &[String],
    env: &[(String, String)],
    timeout: Duration,
    input: Option<&str>,
) -> Out {
    let dir = ws().dir.join("out");
    let n = seq();
    let (o, e) = (dir.join(format!("{n}.out")), dir.join(format!("{n}.err")));
    let stdin = match input {
        None => Stdio::null(),
        Some(text) => {
            let i = dir.join(format!("{n}.in"));
            fs::write(&i, text).unwrap();
            let f = fs::File::open(&i).unwrap();
            let _ = fs::remove_file(&i);
            Stdio::from(f)
        }
    };
    let mut cmd = Command::new(&argv[0]);
    // In the workspace: conmon drops an `oom` file in its working
    // directory when a container is OOM-killed.
    cmd.current_dir(&ws().dir)
        .args(&argv[1..])
        .stdin(stdin)
        .stdout(fs::File::create(&o).unwrap())
        .stderr(fs::File::create(&e).unwrap());
    for (k, v) in env {
        cmd.env(k, v);
    }
    // Its own process group, so a timeout kills the client and anything it
    // started in the foreground.
    cmd.process_group(0);
    let line = shell_line(argv);
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(err) => {
            return Out {
                cmd: line,
                code: -1,
                stdout: String::new(),
                stderr: format!("spawn: {err}"),
            }
        }
    };
    let start = Instant::now();
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break Some(st);
        }
        if start.elapsed() > timeout {
            unsafe { libc::kill(-(child.id() as i32), libc::SIGKILL) };
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let stdout = fs::read_to_string(&o).unwrap_or_default();
    let mut stderr = fs::read_to_string(&e).unwrap_or_default();
    let _ = fs::remove_file(&o);
    let _ = fs::remove_file(&e);
    let code = match status {
        None => {
            stderr.push_str(&format!("\n[harness: killed after {timeout:?}]\n"));
            -1
        }
        Some(st) => st.code().unwrap_or_else(|| 128 + st.signal().unwrap_or(0)),
    };
    Out {
        cmd: line,
        code,
        stdout,
        stderr,
    }
}

/// Run `argv` on a pseudo-terminal (util-linux `script`), as a user at a
/// terminal would: for `-t`, which the clients only allow on a tty. The
/// output's `\r\n` become `\n`.
fn run_on_tty(argv: &[String], env: &[(String, String)]) -> Out {
    let line = shell_line(argv);
    let wrapped: Vec<String> = ["script", "-qefc", &line, "/dev/null"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let mut out = run_argv(&wrapped, env, CMD_TIMEOUT);
    out.cmd = format!("{line}   (on a tty)");
    out.stdout = out.stdout.replace("\r\n", "\n");
    out
}

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

fn wait_for<F: FnMut() -> bool>(timeout: Duration, mut f: F) -> bool {
    let start = Instant::now();
    loop {
        if f() {
            return true;
        }
        if start.elapsed() > timeout {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

// ---------------------------------------------------------------------------
// Workspace, daemons, cleanup
// ---------------------------------------------------------------------------

struct Ws {
    dir: PathBuf,
    /// What the engines are told the runtime is.
    runtime: PathBuf,
    /// The runtime binary under test (rrun, or runc when checking the tests).
    real_runtime: PathBuf,
}

static WS: OnceLock<Ws> = OnceLock::new();
/// Cleanups to run at exit, in reverse order of registration.
static CLEANUPS: Mutex<Vec<Box<dyn FnOnce() + Send>>> = Mutex::new(Vec::new());

fn ws() -> &'static Ws {
    WS.get_or_init(|| {
        let dir = PathBuf::from(format!("/tmp/rrun-test-engines-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(dir.join("out")).unwrap();
        extern "C" fn at_exit() {
            let _ = std::panic::catch_unwind(cleanup_all);
        }
        unsafe { libc::atexit(at_exit) };
        let real_runtime = common::runtime_bin();
        let runtime = if std::env::var_os("RRUN_ENGINE_TRACE").is_some_and(|v| !v.is_empty()) {
            let wrapper = dir.join("runtime-trace");
            let log = dir.join("runtime-trace.log");
            fs::write(
                &wrapper,
                format!(
                    "#!/bin/sh\nprintf '%s\\n' \"[$$ $(date +%T.%3N)] $0 $*\" >>{log}\n{rt} \"$@\"\nrc=$?\nprintf '%s\\n' \"[$$ $(date +%T.%3N)] exit $rc\" >>{log}\nexit $rc\n",
                    log = quote(log.to_str().unwrap()),
                    rt = quote(real_runtime.to_str().unwrap()),
                ),
            )
            .unwrap();
            fs::set_permissions(&wrapper, fs::Permissions::from_mode(0o755)).unwrap();
            wrapper
        } else {
            real_runtime.clone()
        };
        Ws { dir, runtime, real_runtime }
    })
}

// ---------------------------------------------------------------------------
// The cgroup driver
// ---------------------------------------------------------------------------

/// `RRUN_ENGINE_CGROUP_DRIVER=systemd`: the engines run with their systemd
/// cgroup driver.
fn systemd_mode() -> bool {
    match std::env::var("RRUN_ENGINE_CGROUP_DRIVER").as_deref() {
        Ok("systemd") => true,
        Ok("cgroupfs") | Ok("") | Err(_) => false,
        Ok(other) => panic!("RRUN_ENGINE_CGROUP_DRIVER={other:?}: must be systemd or cgroupfs"),
    }
}

/// systemd is pid 1 and cgroups are v2 only (what the `systemd_` scenarios
/// read back).
fn systemd_host() -> bool {
    Path::new("/run/systemd/system").is_dir()
        && Path::new("/sys/fs/cgroup/cgroup.controllers").exists()
}

/// Scenarios that only make sense with cgroupfs parents (paths).
const CGROUPFS_ONLY: &[&str] = &[
    "sibling_cgroups",
    "containerd_systemd_cgroup_without_systemd",
];

/// Whether `test` runs in this mode; when not, says why (the test then
/// passes without doing anything, as a skipped one). `RRUN_TEST_SYSTEMD`
/// (set in the systemd VM) turns the refusal of the systemd mode into a
/// failure.
fn runs_here(test: &str) -> bool {
    let systemd_only = test.starts_with("systemd_");
    if !systemd_mode() {
        if systemd_only {
            eprintln!("skipped: {test} runs with RRUN_ENGINE_CGROUP_DRIVER=systemd only");
        }
        return !systemd_only;
    }
    if !systemd_host() {
        assert!(
            std::env::var_os("RRUN_TEST_SYSTEMD").is_none(),
            "RRUN_TEST_SYSTEMD is set but systemd is not pid 1 on a cgroup v2 host here"
        );
        eprintln!(
            "skipped: RRUN_ENGINE_CGROUP_DRIVER=systemd needs systemd as pid 1 on a cgroup v2 host \
             (the systemd VM: RRUN_VM_INIT=systemd tests/vm/run.sh)"
        );
        return false;
    }
    if CGROUPFS_ONLY.contains(&test) {
        eprintln!("skipped: {test} runs with the cgroupfs driver only");
        return false;
    }
    true
}

/// The slice every container of the systemd mode goes under (stopped at
/// exit, with anything left in it).
fn test_slice() -> String {
    format!("rrunteng{}.slice", std::process::id())
}

/// A slice inside [`test_slice`]: `rrunteng<pid>-<name>.slice` (systemd
/// nests slices by their dashes).
fn sub_slice(name: &str) -> String {
    format!("rrunteng{}-{name}.slice", std::process::id())
}

/// Stop the test's slice and everything in it, saying what was still
/// running (the scenarios remove their containers themselves).
fn stop_test_slice() {
    let slice = test_slice();
    let out = run_argv(
        &strings(&[
            "systemctl",
            "list-units",
            "--all",
            "--plain",
            "--no-legend",
            "--no-pager",
            &format!("rrunteng{}*", std::process::id()),
        ]),
        &[],
        Duration::from_secs(30),
    );
    let left: Vec<&str> = out
        .stdout
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|u| u.ends_with(".scope"))
        .collect();
    if !left.is_empty() {
        eprintln!("engines: units left in {slice} at exit: {left:?}");
    }
    run_argv(
        &strings(&["systemctl", "stop", &slice]),
        &[],
        Duration::from_secs(60),
    );
}

fn on_exit(f: impl FnOnce() + Send + 'static) {
    CLEANUPS
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push(Box::new(f));
}

fn cleanup_all() {
    let fns: Vec<_> = std::mem::take(&mut *CLEANUPS.lock().unwrap_or_else(|e| e.into_inner()));
    for f in fns.into_iter().rev() {
        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
    }
    let Some(ws) = WS.get() else { return };
    if systemd_mode() && systemd_host() {
        stop_test_slice();
    }
    kill_procs_mentioning(&ws.dir);
    unmount_under(&ws.dir);
    if std::env::var_os("RRUN_ENGINE_KEEP").is_some_and(|v| !v.is_empty()) {
        eprintln!("engines: kept {}", ws.dir.display());
    } else if let Err(e) = fs::remove_dir_all(&ws.dir) {
        eprintln!("engines: cannot remove {}: {e}", ws.dir.display());
    }
}

/// The images, built once: rootfs, Podman store, archives.
fn image() -> &'static Result<PathBuf, String> {
    static IMG: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    IMG.get_or_init(|| {
        let ws = ws();
        let out_dir = ws.dir.join("image");
        fs::create_dir_all(&out_dir).unwrap();
        let mut argv = vec![
            concat!(env!("CARGO_MANIFEST_DIR"), "/tests/engines/mkimage.sh").to_string(),
            out_dir.to_str().unwrap().to_string(),
        ];
        argv.extend(podman_global_flags(&podman_dir()));
        let out = run_argv(&argv, &podman_env(), Duration::from_secs(120));
        if out.ok() {
            Ok(out_dir)
        } else {
            Err(format!(
                "building the test image failed:\n{}",
                out.describe()
            ))
        }
    })
}

type SpawnReq = (Command, mpsc::Sender<std::io::Result<Child>>);

/// Spawn a daemon from a thread that lives as long as the test process,
/// with PR_SET_PDEATHSIG: the daemon gets SIGTERM if the test process dies
/// in any way (the death signal follows the spawning *thread*, and the
/// test harness's threads end with each test).
fn spawn_daemon(mut cmd: Command) -> std::io::Result<Child> {
    static SPAWNER: OnceLock<Mutex<mpsc::Sender<SpawnReq>>> = OnceLock::new();
    let tx = SPAWNER.get_or_init(|| {
        let (tx, rx) = mpsc::channel::<SpawnReq>();
        std::thread::spawn(move || {
            for (mut cmd, reply) in rx {
                let _ = reply.send(cmd.spawn());
            }
            // Never reached while the process lives: the sender is static.
            loop {
                std::thread::park();
            }
        });
        Mutex::new(tx)
    });
    unsafe {
        cmd.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
            Ok(())
        });
    }
    cmd.process_group(0);
    let (rtx, rrx) = mpsc::channel();
    tx.lock().unwrap().send((cmd, rtx)).unwrap();
    rrx.recv().unwrap()
}

/// Stop a daemon by pid: SIGTERM, then SIGKILL after `grace`.
fn stop_pid(pid: i32, grace: Duration) {
    unsafe { libc::kill(pid, libc::SIGTERM) };
    if !wait_for(grace, || !alive(pid)) {
        unsafe { libc::kill(pid, libc::SIGKILL) };
        wait_for(Duration::from_secs(5), || !alive(pid));
    }
}

fn alive(pid: i32) -> bool {
    // A zombie child counts as gone; reap it.
    let mut status = 0;
    let r = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
    if r == pid {
        return false;
    }
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(s) => !s
            .rsplit(')')
            .next()
            .unwrap_or("")
            .trim_start()
            .starts_with('Z'),
        Err(_) => false,
    }
}

/// Kill (SIGKILL) every process whose command line mentions `dir`: shims,
/// conmon, a daemon's children that outlived it.
fn kill_procs_mentioning(dir: &Path) {
    let needle = dir.to_str().unwrap().as_bytes().to_vec();
    let me = std::process::id() as i32;
    for _ in 0..3 {
        let mut found = false;
        for pid in all_pids() {
            if pid == me {
                continue;
            }
            let cmdline = fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            if cmdline.windows(needle.len()).any(|w| w == needle) {
                found = true;
                unsafe { libc::kill(pid, libc::SIGKILL) };
            }
        }
        if !found {
            return;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn all_pids() -> Vec<i32> {
    fs::read_dir("/proc")
        .map(|d| {
            d.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

fn mount_points() -> Vec<String> {
    common::mount_points()
}

fn unmount_under(dir: &Path) {
    for _ in 0..3 {
        let mut mounts: Vec<String> = mount_points()
            .into_iter()
            .filter(|m| Path::new(m).starts_with(dir))
            .collect();
        if mounts.is_empty() {
            return;
        }
        mounts.sort_by_key(|m| std::cmp::Reverse(m.len()));
        for m in mounts {
            let c = CString::new(m).unwrap();
            unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) };
        }
    }
}

/// Remove a cgroup parent (and anything below it) from every hierarchy,
/// killing any process still in it.
fn remove_cgroup_tree(name: &str) {
    let Ok(hier) = fs::read_dir("/sys/fs/cgroup") else {
        return;
    };
    let mut roots: Vec<PathBuf> = hier.filter_map(|e| Some(e.ok()?.path())).collect();
    roots.push(PathBuf::from("/sys/fs/cgroup"));
    for root in roots {
        let top = root.join(name.trim_start_matches('/'));
        if top.is_dir() {
            remove_cgroup_dir(&top);
        }
    }
}

fn remove_cgroup_dir(dir: &Path) {
    if let Ok(rd) = fs::read_dir(dir) {
        for e in rd.flatten() {
            if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                remove_cgroup_dir(&e.path());
            }
        }
    }
    for _ in 0..50 {
        if fs::remove_dir(dir).is_ok() || !dir.exists() {
            return;
        }
        for f in ["cgroup.procs", "tasks"] {
            if let Ok(s) = fs::read_to_string(dir.join(f)) {
                for pid in s.lines().filter_map(|l| l.trim().parse::<i32>().ok()) {
                    unsafe { libc::kill(pid, libc::SIGKILL) };
                }
            }
        }
        let _ = fs::write(dir.join("freezer.state"), "THAWED");
        let _ = fs::write(dir.join("cgroup.freeze"), "0");
        std::thread::sleep(Duration::from_millis(100));
    }
    eprintln!("engines: cannot remove cgroup {}", dir.display());
}

fn tail(path: &Path, n: usize) -> String {
    let s = fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// Extra context for a failure: with `RRUN_ENGINE_TRACE`, the runtime
/// trace and the end of the daemons' logs (which a VM run cannot keep).
fn hints() -> String {
    let Some(ws) = WS.get() else {
        return String::new();
    };
    let trace = ws.dir.join("runtime-trace.log");
    if !trace.exists() {
        return String::new();
    }
    let mut s = format!(
        "\n--- runtime trace (last 30 lines of {}) ---\n{}\n",
        trace.display(),
        tail(&trace, 30)
    );
    for log in [
        "containerd/containerd.log",
        "containerd-cri/containerd.log",
        "docker/dockerd.log",
    ] {
        let path = ws.dir.join(log);
        if path.exists() {
            s.push_str(&format!(
                "--- last 15 lines of {} ---\n{}\n",
                path.display(),
                tail(&path, 15)
            ));
        }
    }
    s
}

// ---------------------------------------------------------------------------
// Cgroups as the host sees them
// ---------------------------------------------------------------------------

/// The host path of `file` in the cgroup of `pid` for `controller`, on a
/// v1 hierarchy (or v2 when the controller has none).
fn cgroup_file(pid: i32, controller: &str, v1_file: &str, v2_file: &str) -> PathBuf {
    let cg = fs::read_to_string(format!("/proc/{pid}/cgroup"))
        .unwrap_or_else(|e| panic!("read /proc/{pid}/cgroup: {e}"));
    let mountinfo = fs::read_to_string("/proc/self/mountinfo").unwrap();
    let mut v2_path = None;
    for line in cg.lines() {
        let mut parts = line.splitn(3, ':');
        let (_, ctrls, path) = (
            parts.next().unwrap(),
            parts.next().unwrap_or(""),
            parts.next().unwrap_or(""),
        );
        if ctrls.is_empty() {
            v2_path = Some(path.to_string());
            continue;
        }
        if ctrls.split(',').any(|c| c == controller) {
            // The mount of this v1 hierarchy.
            for m in mountinfo.lines() {
                let f: Vec<&str> = m.split(' ').collect();
                let Some(dash) = f.iter().position(|x| *x == "-") else {
                    continue;
                };
                if f.get(dash + 1) != Some(&"cgroup") {
                    continue;
                }
                let opts = f.get(dash + 3).unwrap_or(&"");
                if opts.split(',').any(|o| o == controller) && f[3] == "/" {
                    return Path::new(f[4])
                        .join(path.trim_start_matches('/'))
                        .join(v1_file);
                }
            }
        }
    }
    let path = v2_path.unwrap_or_else(|| panic!("pid {pid} has no {controller} cgroup:\n{cg}"));
    for m in mountinfo.lines() {
        let f: Vec<&str> = m.split(' ').collect();
        let Some(dash) = f.iter().position(|x| *x == "-") else {
            continue;
        };
        if f.get(dash + 1) == Some(&"cgroup2") && f[3] == "/" {
            return Path::new(f[4])
                .join(path.trim_start_matches('/'))
                .join(v2_file);
        }
    }
    panic!("no cgroup2 mount for pid {pid}")
}

fn read_cgroup(pid: i32, controller: &str, v1_file: &str, v2_file: &str) -> String {
    let p = cgroup_file(pid, controller, v1_file, v2_file);
    fs::read_to_string(&p)
        .unwrap_or_else(|e| panic!("read {}: {e}", p.display()))
        .trim()
        .to_string()
}

fn memory_limit(pid: i32) -> String {
    read_cgroup(pid, "memory", "memory.limit_in_bytes", "memory.max")
}

/// "quota period" (v1 files) or the v2 `cpu.max` line, both "50000 100000".
fn cpu_max(pid: i32) -> String {
    let p = cgroup_file(pid, "cpu", "cpu.cfs_quota_us", "cpu.max");
    if p.ends_with("cpu.max") {
        fs::read_to_string(&p).unwrap().trim().to_string()
    } else {
        let quota = fs::read_to_string(&p).unwrap();
        let period = fs::read_to_string(p.with_file_name("cpu.cfs_period_us")).unwrap();
        format!("{} {}", quota.trim(), period.trim())
    }
}

fn pids_max(pid: i32) -> String {
    read_cgroup(pid, "pids", "pids.max", "pids.max")
}

fn frozen(pid: i32) -> bool {
    let p = cgroup_file(pid, "freezer", "freezer.state", "cgroup.freeze");
    let s = fs::read_to_string(&p).unwrap_or_default();
    matches!(s.trim(), "FROZEN" | "1")
}

/// Pids of the processes in `pid`'s memory cgroup, as the host sees them.
fn cgroup_procs(pid: i32) -> Vec<i32> {
    let s = read_cgroup(pid, "pids", "cgroup.procs", "cgroup.procs");
    s.lines().filter_map(|l| l.trim().parse().ok()).collect()
}

// ---------------------------------------------------------------------------
// Engines
// ---------------------------------------------------------------------------

/// A container's state as the engine reports it, normalised.
#[derive(Debug, Clone, PartialEq)]
struct CState {
    status: String,
    pid: i32,
    exit_code: Option<i32>,
}

/// What a test asks of an engine. The defaults are the Docker-compatible
/// command line (Docker's and Podman's): an engine with that CLI gives its
/// name, `argv`, `argv_run` and what differs; containerd's `ctr` and the
/// CRI client implement it all.
trait Engine: Sync {
    fn name(&self) -> &'static str;
    /// The client's command line for `run` with `flags` (engine options).
    fn argv_run(&self, flags: &[&str], name: &str, opts: &[&str], cmd: &[&str]) -> Vec<String>;
    /// The client's command line for anything else.
    fn argv(&self, args: &[&str]) -> Vec<String>;
    fn env(&self) -> Vec<(String, String)> {
        Vec::new()
    }
    /// Run the client with `args`.
    fn cli(&self, args: &[&str]) -> Out {
        run_argv(&self.argv(args), &self.env(), CMD_TIMEOUT)
    }
    /// Run the client with `input` on stdin.
    fn cli_input(&self, argv: Vec<String>, input: &str) -> Out {
        run_argv_input(&argv, &self.env(), CMD_TIMEOUT, Some(input))
    }
    /// Foreground `run --rm`.
    fn run(&self, name: &str, opts: &[&str], cmd: &[&str]) -> Out {
        run_argv(
            &self.argv_run(&["--rm"], name, opts, cmd),
            &self.env(),
            CMD_TIMEOUT,
        )
    }
    /// Foreground `run --rm -t`, on a terminal.
    fn run_tty(&self, name: &str, cmd: &[&str]) -> Out {
        run_on_tty(&self.argv_run(&["--rm", "-t"], name, &[], cmd), &self.env())
    }
    /// `run -d`.
    fn run_detached(&self, name: &str, opts: &[&str], cmd: &[&str]) -> Out {
        run_argv(
            &self.argv_run(&["-d"], name, opts, cmd),
            &self.env(),
            CMD_TIMEOUT,
        )
    }
    fn exec(&self, name: &str, tty: bool, opts: &[&str], cmd: &[&str]) -> Out {
        let mut a = vec!["exec"];
        if tty {
            a.push("-t");
        }
        a.extend(opts);
        a.push(name);
        a.extend(cmd);
        if tty {
            run_on_tty(&self.argv(&a), &self.env())
        } else {
            self.cli(&a)
        }
    }
    fn stop(&self, name: &str) -> Out {
        self.cli(&["stop", "-t", "5", name])
    }
    fn kill(&self, name: &str) -> Out {
        self.cli(&["kill", name])
    }
    /// `kill -s SIGNAL` (a name like "USR1").
    fn signal(&self, name: &str, sig: &str) -> Out {
        self.cli(&["kill", "-s", sig, name])
    }
    /// Remove a stopped container.
    fn rm(&self, name: &str) -> Out {
        self.cli(&["rm", name])
    }
    fn rm_force(&self, name: &str) -> Out {
        self.cli(&["rm", "-f", name])
    }
    fn pause(&self, name: &str) -> Out {
        self.cli(&["pause", name])
    }
    fn unpause(&self, name: &str) -> Out {
        self.cli(&["unpause", name])
    }
    fn top(&self, name: &str) -> Out {
        self.cli(&["top", name])
    }
    fn logs(&self, name: &str) -> Out {
        self.cli(&["logs", name])
    }
    fn restart(&self, name: &str) -> Out {
        self.cli(&["restart", "-t", "5", name])
    }
    fn update_memory(&self, name: &str, bytes: u64) -> Out {
        let m = bytes.to_string();
        self.cli(&["update", "--memory", &m, name])
    }
    fn stats(&self, name: &str) -> Out {
        self.cli(&[
            "stats",
            "--no-stream",
            "--format",
            "{{.MemUsage}} {{.PIDs}}",
            name,
        ])
    }
    fn state(&self, name: &str) -> Option<CState> {
        let out = self.cli(&[
            "inspect",
            "-f",
            "{{.State.Status}} {{.State.Pid}} {{.State.ExitCode}}",
            name,
        ]);
        parse_state(&out)
    }
    /// Options for a 64 MiB memory, half-CPU, 64-pid limit (what the
    /// engine offers of it).
    fn limit_opts(&self) -> Vec<String> {
        strings(&["--memory", "64m", "--cpus", "0.5", "--pids-limit", "64"])
    }
    fn has_pids_limit(&self) -> bool {
        true
    }
    /// Options that bind the host directory `src` at `dst` (read-only with
    /// `ro`): Docker's and Podman's `--mount` syntax.
    fn bind_opts(&self, src: &Path, dst: &str, ro: bool) -> Vec<String> {
        let ro = if ro { ",readonly" } else { "" };
        strings(&[
            "--mount",
            &format!("type=bind,src={},dst={dst}{ro}", src.display()),
        ])
    }
    /// The container's full id (what the engine names its cgroup after).
    fn id(&self, name: &str) -> String {
        let argv = self.argv(&["inspect", "-f", "{{.Id}}", name]);
        let out = run_argv(&argv, &self.env(), CMD_TIMEOUT).expect_ok();
        out.stdout.trim().to_string()
    }
    /// The exit code of a stopped container, as the engine reports it.
    fn stopped_exit_code(&self, name: &str) -> Option<i32> {
        self.state(name).and_then(|s| s.exit_code)
    }
    /// With the systemd driver, a container is the scope
    /// `<prefix>-<id>.scope`: the engine's prefix.
    fn unit_prefix(&self) -> &'static str;
    /// Options that mount the container's cgroup at /sys/fs/cgroup (the
    /// engines do it by default, ctr does not).
    fn cgroup_mount_opts(&self) -> Vec<String> {
        Vec::new()
    }
}

fn container_name(engine: &dyn Engine, test: &str) -> String {
    format!("{}-{}-{}", engine.name(), test.replace('_', "-"), seq())
}

/// Removes the container when the test ends, whatever happened.
struct Guard<'a> {
    engine: &'a dyn Engine,
    name: String,
}

impl Drop for Guard<'_> {
    fn drop(&mut self) {
        let _ = self.engine.rm_force(&self.name);
    }
}

fn guard<'a>(engine: &'a dyn Engine, name: &str) -> Guard<'a> {
    Guard {
        engine,
        name: name.to_string(),
    }
}

#[track_caller]
fn state_of(e: &dyn Engine, name: &str) -> CState {
    e.state(name)
        .unwrap_or_else(|| panic!("{}: no state for container {name}{}", e.name(), hints()))
}

#[track_caller]
fn wait_status(e: &dyn Engine, name: &str, want: &str) -> CState {
    let mut last = None;
    let ok = wait_for(Duration::from_secs(20), || {
        last = e.state(name);
        last.as_ref().is_some_and(|s| s.status == want)
    });
    assert!(
        ok,
        "{}: container {name} never became {want}; last state {last:?}{}",
        e.name(),
        hints()
    );
    last.unwrap()
}

/// Start the long-running SERVE container and wait until it runs.
#[track_caller]
fn start_serving(e: &dyn Engine, name: &str, opts: &[&str]) -> CState {
    e.run_detached(name, opts, SERVE).expect_ok();
    wait_status(e, name, "running")
}

// --- Docker ----------------------------------------------------------------

struct Docker {
    sock: String,
}

fn docker() -> &'static Docker {
    static D: OnceLock<Result<Docker, String>> = OnceLock::new();
    match D.get_or_init(start_docker) {
        Ok(d) => d,
        Err(e) => panic!("{e}"),
    }
}

fn start_docker() -> Result<Docker, String> {
    if !Path::new(DOCKER).exists() || which("dockerd").is_none() {
        return Err("docker.io is not installed (apt-get install docker.io)".into());
    }
    let ws = ws();
    let img = image().as_ref().map_err(|e| e.clone())?;
    let dir = ws.dir.join("docker");
    fs::create_dir_all(&dir).unwrap();
    let sock = format!("{}/docker.sock", dir.display());
    // With systemd, the parent is a slice (Docker refuses anything else).
    let (driver, cgroup_parent) = if systemd_mode() {
        ("systemd", sub_slice("docker"))
    } else {
        (
            "cgroupfs",
            format!("/rrun-test-engines-docker-{}", std::process::id()),
        )
    };
    let config = serde_json::json!({
        "data-root": dir.join("data"),
        "exec-root": dir.join("exec"),
        "pidfile": dir.join("dockerd.pid"),
        "hosts": [format!("unix://{sock}")],
        "bridge": "none",
        "iptables": false,
        "ip6tables": false,
        "ip-forward": false,
        "ip-masq": false,
        "exec-opts": [format!("native.cgroupdriver={driver}")],
        "cgroup-parent": cgroup_parent,
        "runtimes": { "rrun": { "path": ws.runtime } },
    });
    let conf_path = dir.join("daemon.json");
    fs::write(&conf_path, serde_json::to_string_pretty(&config).unwrap()).unwrap();
    let log = dir.join("dockerd.log");
    let mut cmd = Command::new("dockerd");
    cmd.arg("--config-file")
        .arg(&conf_path)
        .stdin(Stdio::null())
        .stdout(fs::File::create(&log).unwrap())
        .stderr(fs::File::create(&log).unwrap());
    let mut child = spawn_daemon(cmd).map_err(|e| format!("spawn dockerd: {e}"))?;
    let pid = child.id() as i32;
    {
        let sock = sock.clone();
        let cg = cgroup_parent.clone();
        on_exit(move || {
            // Containers first (dockerd would stop them itself, slowly).
            let out = run_argv(
                &strings(&[DOCKER, "-H", &format!("unix://{sock}"), "ps", "-aq"]),
                &[],
                Duration::from_secs(20),
            );
            let ids: Vec<&str> = out.stdout.split_whitespace().collect();
            if !ids.is_empty() {
                let mut argv = strings(&[DOCKER, "-H", &format!("unix://{sock}"), "rm", "-f"]);
                argv.extend(ids.iter().map(|s| s.to_string()));
                run_argv(&argv, &[], Duration::from_secs(60));
            }
            stop_pid(pid, Duration::from_secs(20));
            let _ = child.wait();
            remove_cgroup_tree(&cg);
        });
    }
    let d = Docker { sock };
    let up = wait_for(Duration::from_secs(60), || d.cli(&["version"]).ok());
    if !up {
        return Err(format!("dockerd did not come up; log:\n{}", tail(&log, 30)));
    }
    d.cli(&[
        "load",
        "-i",
        img.join("busybox.docker.tar").to_str().unwrap(),
    ])
    .expect_ok();
    Ok(d)
}

fn which(prog: &str) -> Option<PathBuf> {
    std::env::var("PATH")
        .unwrap_or_default()
        .split(':')
        .chain(["/usr/sbin", "/sbin", "/usr/bin"])
        .map(|d| Path::new(d).join(prog))
        .find(|p| p.is_file())
}

impl Docker {
    fn run_argv(&self, flags: &[&str], name: &str, opts: &[&str], cmd: &[&str]) -> Vec<String> {
        let mut a = vec![
            "run",
            "--runtime",
            "rrun",
            "--network",
            "none",
            "--name",
            name,
        ];
        a.extend(flags);
        a.extend(opts);
        a.push(IMAGE);
        a.extend(cmd);
        self.argv(&a)
    }
}

impl Engine for Docker {
    fn name(&self) -> &'static str {
        "docker"
    }
    fn argv_run(&self, flags: &[&str], name: &str, opts: &[&str], cmd: &[&str]) -> Vec<String> {
        self.run_argv(flags, name, opts, cmd)
    }
    fn argv(&self, args: &[&str]) -> Vec<String> {
        let mut v = strings(&[DOCKER, "-H", &format!("unix://{}", self.sock)]);
        v.extend(strings(args));
        v
    }
    fn update_memory(&self, name: &str, bytes: u64) -> Out {
        let m = bytes.to_string();
        let s = (bytes * 2).to_string();
        self.cli(&["update", "--memory", &m, "--memory-swap", &s, name])
    }
    fn unit_prefix(&self) -> &'static str {
        "docker"
    }
}

fn parse_state(out: &Out) -> Option<CState> {
    if !out.ok() {
        return None;
    }
    let f: Vec<&str> = out.stdout.split_whitespace().collect();
    let status = match *f.first()? {
        "stopped" => "exited",
        s => s,
    };
    Some(CState {
        status: status.to_string(),
        pid: f.get(1)?.parse().ok()?,
        exit_code: f.get(2).and_then(|c| c.parse().ok()),
    })
}

// --- Podman ----------------------------------------------------------------

struct Podman {
    /// The store: `root/`, `run/`, `tmp/` under it.
    store: PathBuf,
    cgroup_parent: String,
}

fn podman_dir() -> PathBuf {
    ws().dir.join("podman")
}

/// The containers.conf the tests use: the README's `[engine.runtimes]`
/// snippet with the cgroup manager of the mode, plus file events (this
/// host has no journald).
fn podman_conf() -> PathBuf {
    static CONF: OnceLock<PathBuf> = OnceLock::new();
    CONF.get_or_init(|| {
        let dir = podman_dir();
        fs::create_dir_all(&dir).unwrap();
        let conf = dir.join("containers.conf");
        fs::write(
            &conf,
            format!(
                concat!(
                    "[engine]\n",
                    "runtime = \"rrun\"\n",
                    // Podman passes --log-format=json and --log only to
                    // the runtimes named here (and then shows their
                    // error lines as it does runc's); the list replaces
                    // the default one.
                    "runtime_supports_json = [\"crun\", \"runc\", \"kata\", \"runsc\", \"youki\", \"krun\", \"rrun\"]\n",
                    "cgroup_manager = \"{}\"\n",
                    "events_logger = \"file\"\n",
                    "\n[engine.runtimes]\n",
                    "rrun = [\"{}\"]\n",
                ),
                if systemd_mode() { "systemd" } else { "cgroupfs" },
                ws().runtime.display()
            ),
        )
        .unwrap();
        conf
    })
    .clone()
}

fn podman_env() -> Vec<(String, String)> {
    vec![(
        "CONTAINERS_CONF".into(),
        podman_conf().to_str().unwrap().into(),
    )]
}

fn podman_global_flags(d: &Path) -> Vec<String> {
    vec![
        format!("--root={}", d.join("root").display()),
        format!("--runroot={}", d.join("run").display()),
        format!("--tmpdir={}", d.join("tmp").display()),
        "--storage-driver=vfs".into(),
    ]
}

fn podman() -> &'static Podman {
    static P: OnceLock<Result<Podman, String>> = OnceLock::new();
    match P.get_or_init(|| start_podman(podman_dir(), "podman")) {
        Ok(p) => p,
        Err(e) => panic!("{e}"),
    }
}

/// A second Podman store, for containers with their own id mapping
/// (`--uidmap`). Podman's vfs driver chowns its directory to the root of
/// the mapping each podman command uses, so in a store shared with
/// concurrent commands for unmapped containers the directory is owned by
/// host root (mode 0700) at random moments, and the mapped root cannot
/// reach its rootfs: the runtime's bind of `root.path` fails with EACCES,
/// for runc exactly as for rrun. One mapping per store avoids that race.
fn podman_userns() -> &'static Podman {
    static P: OnceLock<Result<Podman, String>> = OnceLock::new();
    match P.get_or_init(|| start_podman(ws().dir.join("podman-userns"), "podman-userns")) {
        Ok(p) => p,
        Err(e) => panic!("{e}"),
    }
}

/// A Podman store in `store` (the image built by mkimage.sh is loaded into
/// any store but the first), cleaned up at exit.
fn start_podman(store: PathBuf, cgroup_name: &str) -> Result<Podman, String> {
    if which("podman").is_none() {
        return Err("podman is not installed (apt-get install podman)".into());
    }
    let img = image().as_ref().map_err(|e| e.clone())?;
    let p = Podman {
        store,
        // With systemd, a slice (Podman refuses anything else).
        cgroup_parent: if systemd_mode() {
            sub_slice(&cgroup_name.replace('-', ""))
        } else {
            format!("/rrun-test-engines-{cgroup_name}-{}", std::process::id())
        },
    };
    {
        let cg = p.cgroup_parent.clone();
        let argv = p.argv(&["rm", "-a", "-f", "-t", "0"]);
        on_exit(move || {
            run_argv(&argv, &podman_env(), Duration::from_secs(60));
            remove_cgroup_tree(&cg);
        });
    }
    if p.store != podman_dir() {
        p.cli(&[
            "load",
            "-q",
            "-i",
            img.join("busybox.docker.tar").to_str().unwrap(),
        ])
        .expect_ok();
    }
    Ok(p)
}

impl Podman {
    fn run_argv(&self, flags: &[&str], name: &str, opts: &[&str], cmd: &[&str]) -> Vec<String> {
        let mut a = vec![
            "run",
            "--network",
            "none",
            // Podman asks for its own defaults (nofile 1048576), above this
            // host's hard limit; no runtime can raise it.
            "--ulimit",
            "nofile=1024:1024",
            "--ulimit",
            "nproc=1024:1024",
            "--cgroup-parent",
            &self.cgroup_parent,
            "--name",
            name,
        ];
        a.extend(flags);
        a.extend(opts);
        a.push(IMAGE);
        a.extend(cmd);
        self.argv(&a)
    }
}

impl Engine for Podman {
    fn name(&self) -> &'static str {
        "podman"
    }
    fn argv_run(&self, flags: &[&str], name: &str, opts: &[&str], cmd: &[&str]) -> Vec<String> {
        self.run_argv(flags, name, opts, cmd)
    }
    fn argv(&self, args: &[&str]) -> Vec<String> {
        let mut v = vec!["podman".to_string()];
        v.extend(podman_global_flags(&self.store));
        v.extend(strings(args));
        v
    }
    fn env(&self) -> Vec<(String, String)> {
        podman_env()
    }
    fn rm_force(&self, name: &str) -> Out {
        self.cli(&["rm", "-f", "-t", "0", name])
    }
    fn unit_prefix(&self) -> &'static str {
        "libpod"
    }
}

// --- containerd --------------------------------------------------------------

struct Containerd {
    sock: String,
    dir: PathBuf,
    ns: String,
}

fn containerd() -> &'static Containerd {
    static C: OnceLock<Result<Containerd, String>> = OnceLock::new();
    match C.get_or_init(|| start_containerd(false)) {
        Ok(c) => c,
        Err(e) => panic!("{e}"),
    }
}

/// A second containerd with the CRI plugin on and rrun as the runtime of
/// the `rrun` handler, configured as the README says.
fn containerd_cri() -> &'static Containerd {
    static C: OnceLock<Result<Containerd, String>> = OnceLock::new();
    match C.get_or_init(|| start_containerd(true)) {
        Ok(c) => c,
        Err(e) => panic!("{e}"),
    }
}

/// The CRI pods' cgroup parent: with systemd a slice, which is what makes
/// containerd give the runtime a `slice:cri-containerd:ID` cgroupsPath (it
/// looks at the suffix, as the kubelet's systemd driver sends
/// `kubepods-burstable-pod<uid>.slice`).
fn cri_cgroup_parent() -> String {
    if systemd_mode() {
        sub_slice("k8s")
    } else {
        format!("/rrun-test-engines-k8s-{}", std::process::id())
    }
}

/// The `options.Root` of the CRI `rrun` runtime: rrun's `--root` is
/// `<Root>/k8s.io`.
fn cri_runtime_root() -> PathBuf {
    ws().dir.join("containerd-cri").join("rrun-root")
}

fn start_containerd(cri: bool) -> Result<Containerd, String> {
    let Some(bin) = which("containerd") else {
        return Err("containerd is not installed (apt-get install containerd)".into());
    };
    let ws = ws();
    let img = image().as_ref().map_err(|e| e.clone())?;
    let dir = ws
        .dir
        .join(if cri { "containerd-cri" } else { "containerd" });
    fs::create_dir_all(&dir).unwrap();
    let sock = format!("{}/containerd.sock", dir.display());
    let cri_config = if cri {
        format!(
            r#"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "localhost/rrun-pause:test"
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  # This host lacks CAP_SYS_RESOURCE: no runtime can give the sandbox the
  # CRI's oom_score_adj of -998.
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "{d}/cni/bin"
    conf_dir = "{d}/cni/conf"
  [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
    runtime_type = "io.containerd.runc.v2"
  [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.rrun]
    runtime_type = "io.containerd.runc.v2"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.rrun.options]
      BinaryName = "{rt}"
      Root = "{root}"{systemd}
"#,
            d = dir.display(),
            rt = ws.runtime.display(),
            root = cri_runtime_root().display(),
            systemd = if systemd_mode() {
                "\n      SystemdCgroup = true"
            } else {
                ""
            },
        )
    } else {
        "disabled_plugins = [\"io.containerd.grpc.v1.cri\"]\n".to_string()
    };
    let config = format!(
        r#"version = 2
root = "{d}/root"
state = "{d}/state"
{cri_top}
[grpc]
  address = "{sock}"

[ttrpc]
  address = "{sock}.ttrpc"

[debug]
  address = "{d}/debug.sock"

[plugins."io.containerd.internal.v1.opt"]
  path = "{d}/opt"
{cri_plugin}"#,
        d = dir.display(),
        cri_top = if cri { "" } else { cri_config.as_str() },
        cri_plugin = if cri { cri_config.as_str() } else { "" },
    );
    let conf_path = dir.join("config.toml");
    fs::write(&conf_path, config).unwrap();
    let log = dir.join("containerd.log");
    let mut cmd = Command::new(bin);
    cmd.arg("--config")
        .arg(&conf_path)
        .stdin(Stdio::null())
        .stdout(fs::File::create(&log).unwrap())
        .stderr(fs::File::create(&log).unwrap());
    let mut child = spawn_daemon(cmd).map_err(|e| format!("spawn containerd: {e}"))?;
    let pid = child.id() as i32;
    // ctr's containers get the cgroup /<namespace>/<id>; the CRI's
    // namespace is k8s.io, its pods' cgroups go under cri_cgroup_parent().
    let ns = if cri {
        "k8s.io".to_string()
    } else {
        format!("rrun-test-engines-{}", std::process::id())
    };
    let cg = if cri { cri_cgroup_parent() } else { ns.clone() };
    let c = Containerd {
        sock,
        dir,
        ns: ns.clone(),
    };
    {
        let argv0 = c.argv(&[]);
        on_exit(move || {
            let ctr = |args: &[&str]| {
                let mut a = argv0.clone();
                a.extend(strings(args));
                run_argv(&a, &[], Duration::from_secs(30))
            };
            let tasks = ctr(&["task", "ls", "-q"]);
            for t in tasks.stdout.split_whitespace() {
                ctr(&["task", "kill", "-s", "SIGKILL", t]);
                ctr(&["task", "delete", "-f", t]);
            }
            let cs = ctr(&["container", "ls", "-q"]);
            for t in cs.stdout.split_whitespace() {
                ctr(&["container", "delete", t]);
            }
            stop_pid(pid, Duration::from_secs(10));
            let _ = child.wait();
            remove_cgroup_tree(&cg);
        });
    }
    let up = wait_for(Duration::from_secs(30), || c.cli(&["version"]).ok());
    if !up {
        return Err(format!(
            "containerd did not come up; log:\n{}",
            tail(&log, 30)
        ));
    }
    c.cli(&[
        "image",
        "import",
        img.join("busybox.oci.tar").to_str().unwrap(),
    ])
    .expect_ok();
    if cri {
        c.cli(&[
            "image",
            "import",
            img.join("pause.oci.tar").to_str().unwrap(),
        ])
        .expect_ok();
    }
    Ok(c)
}

impl Containerd {
    fn argv(&self, args: &[&str]) -> Vec<String> {
        let mut v = strings(&["ctr", "--address", &self.sock, "--namespace", &self.ns]);
        v.extend(strings(args));
        v
    }
    fn cli(&self, args: &[&str]) -> Out {
        run_argv(&self.argv(args), &[], CMD_TIMEOUT)
    }
    fn runtime_flags(&self) -> Vec<String> {
        let mut v = strings(&[
            "--runc-binary",
            ws().runtime.to_str().unwrap(),
            "--runc-root",
            self.dir.join("runc-root").to_str().unwrap(),
            "--fifo-dir",
            self.dir.join("fifo").to_str().unwrap(),
        ]);
        if systemd_mode() {
            v.push("--runc-systemd-cgroup".into());
        }
        v
    }
    fn run_argv(&self, flags: &[&str], name: &str, opts: &[&str], cmd: &[&str]) -> Vec<String> {
        let mut v = self.argv(&["run"]);
        v.extend(self.runtime_flags());
        v.extend(strings(flags));
        // ctr's default cgroupsPath is /<namespace>/<id>; systemd needs
        // slice:prefix:name.
        if systemd_mode() && !opts.contains(&"--cgroup") {
            v.push("--cgroup".into());
            v.push(format!("{}:ctr:{name}", sub_slice("ctr")));
        }
        v.extend(strings(opts));
        v.push(IMAGE.into());
        v.push(name.into());
        v.extend(strings(cmd));
        v
    }
    fn exec_id() -> String {
        format!("exec-{}", seq())
    }
    /// The exit code `ctr task delete` reports (it warns about non-zero
    /// ones and says nothing for 0).
    fn delete_task(&self, name: &str) -> (Out, Option<i32>) {
        let out = self.cli(&["task", "delete", name]);
        let code = if out.ok() {
            Some(
                out.all()
                    .split("exit code ")
                    .nth(1)
                    .and_then(|s| s.split(|c: char| !c.is_ascii_digit()).next())
                    .and_then(|s| s.parse().ok())
                    .unwrap_or(0),
            )
        } else {
            None
        };
        (out, code)
    }
}

impl Engine for Containerd {
    fn name(&self) -> &'static str {
        "containerd"
    }
    fn argv_run(&self, flags: &[&str], name: &str, opts: &[&str], cmd: &[&str]) -> Vec<String> {
        self.run_argv(flags, name, opts, cmd)
    }
    fn argv(&self, args: &[&str]) -> Vec<String> {
        Containerd::argv(self, args)
    }
    fn signal(&self, name: &str, sig: &str) -> Out {
        let sig = format!("SIG{sig}");
        self.cli(&["task", "kill", "-s", &sig, name])
    }
    // run, run_tty, run_detached: the defaults (`ctr run` takes --rm, -t, -d).
    fn exec(&self, name: &str, tty: bool, opts: &[&str], cmd: &[&str]) -> Out {
        let id = Self::exec_id();
        let mut a = vec!["task", "exec", "--exec-id", &id];
        if tty {
            a.push("-t");
        }
        a.extend(opts);
        a.push(name);
        a.extend(cmd);
        if tty {
            run_on_tty(&self.argv(&a), &[])
        } else {
            self.cli(&a)
        }
    }
    /// `ctr task kill` (SIGTERM) and wait for the task to stop.
    fn stop(&self, name: &str) -> Out {
        let out = self.cli(&["task", "kill", name]);
        if out.ok() {
            wait_for(Duration::from_secs(10), || {
                self.state(name).is_some_and(|s| s.status == "exited")
            });
        }
        out
    }
    fn kill(&self, name: &str) -> Out {
        let out = self.cli(&["task", "kill", "-s", "SIGKILL", name]);
        if out.ok() {
            wait_for(Duration::from_secs(10), || {
                self.state(name).is_some_and(|s| s.status == "exited")
            });
        }
        out
    }
    /// Deletes the task (unless `stopped_exit_code` did) and the container.
    fn rm(&self, name: &str) -> Out {
        let (out, _) = self.delete_task(name);
        if !out.ok() && !out.stderr.contains("not found") {
            return out;
        }
        self.cli(&["container", "delete", name])
    }
    fn rm_force(&self, name: &str) -> Out {
        self.cli(&["task", "delete", "-f", name]);
        self.cli(&["container", "delete", name])
    }
    fn pause(&self, name: &str) -> Out {
        self.cli(&["task", "pause", name])
    }
    fn unpause(&self, name: &str) -> Out {
        self.cli(&["task", "resume", name])
    }
    fn top(&self, name: &str) -> Out {
        self.cli(&["task", "ps", name])
    }
    fn logs(&self, _name: &str) -> Out {
        unreachable!("ctr has no logs command")
    }
    /// What `restart` is with ctr: stop the task, delete it, start a new
    /// one in the same container.
    fn restart(&self, name: &str) -> Out {
        let out = self.kill(name);
        if !out.ok() {
            return out;
        }
        let (out, _) = self.delete_task(name);
        if !out.ok() {
            return out;
        }
        let mut a = self.argv(&["task", "start", "-d"]);
        a.extend(strings(&[
            "--fifo-dir",
            self.dir.join("fifo").to_str().unwrap(),
            name,
        ]));
        run_argv(&a, &[], CMD_TIMEOUT)
    }
    fn update_memory(&self, _name: &str, _bytes: u64) -> Out {
        unreachable!("ctr 1.6 has no task update command")
    }
    fn stats(&self, name: &str) -> Out {
        self.cli(&["task", "metrics", name])
    }
    fn state(&self, name: &str) -> Option<CState> {
        let out = self.cli(&["task", "ls"]);
        let line = out
            .stdout
            .lines()
            .find(|l| l.split_whitespace().next() == Some(name))?;
        let f: Vec<&str> = line.split_whitespace().collect();
        let status = match f.get(2)?.to_ascii_lowercase().as_str() {
            "stopped" => "exited".to_string(),
            s => s.to_string(),
        };
        Some(CState {
            status,
            pid: f.get(1)?.parse().ok()?,
            exit_code: None,
        })
    }
    fn limit_opts(&self) -> Vec<String> {
        strings(&["--memory-limit", "67108864", "--cpus", "0.5"])
    }
    fn has_pids_limit(&self) -> bool {
        false
    }
    fn bind_opts(&self, src: &Path, dst: &str, ro: bool) -> Vec<String> {
        let mode = if ro { "ro" } else { "rw" };
        strings(&[
            "--mount",
            &format!(
                "type=bind,src={},dst={dst},options=rbind:{mode}",
                src.display()
            ),
        ])
    }
    fn id(&self, name: &str) -> String {
        name.to_string()
    }
    /// ctr reports the exit code when it deletes the task.
    fn stopped_exit_code(&self, name: &str) -> Option<i32> {
        let (out, code) = self.delete_task(name);
        assert!(out.ok(), "{}", out.describe());
        code
    }
    fn unit_prefix(&self) -> &'static str {
        "ctr"
    }
    fn cgroup_mount_opts(&self) -> Vec<String> {
        strings(&[
            "--mount",
            "type=cgroup,src=cgroup,dst=/sys/fs/cgroup,options=ro:nosuid:noexec:nodev",
        ])
    }
}

// --- The CRI (containerd's, as the kubelet drives it) ------------------------

const CRI_PY: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/engines/cri.py");

/// The kubelet's path: each container in a pod of its own, made through
/// containerd's CRI plugin with `runtime_handler: rrun` by `cri.py`'s
/// single calls (RunPodSandbox, CreateContainer, StartContainer, ExecSync,
/// StopContainer, ...), which one `cri.py serve` process makes. The CRI
/// has no pause: `ctr task pause` on the CRI's namespace stands in for it,
/// as it does for the task state.
struct Cri {
    /// The CRI daemon (namespace k8s.io) for ctr.
    c: &'static Containerd,
    pods: Mutex<std::collections::HashMap<String, CriPod>>,
    server: Mutex<Option<CriServer>>,
}

/// `cri.py SOCKET serve`: calls in, answers out, one JSON line each.
struct CriServer {
    child: Child,
    stdin: std::process::ChildStdin,
    stdout: std::io::BufReader<std::process::ChildStdout>,
}

#[derive(Clone)]
struct CriPod {
    sandbox: String,
    container: String,
    /// The pod's cgroup parent: with systemd its own slice, which the
    /// kubelet stops when it removes the pod.
    parent: String,
    /// The pod's log directory (the container's log is `main.log`).
    logs: PathBuf,
}

fn cri() -> &'static Cri {
    static C: OnceLock<Cri> = OnceLock::new();
    C.get_or_init(|| Cri {
        c: containerd_cri(),
        pods: Mutex::new(Default::default()),
        server: Mutex::new(None),
    })
}

impl Cri {
    fn argv(&self, args: &[&str]) -> Vec<String> {
        let mut v = strings(&["/usr/bin/python3", CRI_PY, &self.c.sock]);
        v.extend(strings(args));
        v
    }
    /// One CRI call, as `cri.py SOCKET ARGS...` would make it (and the
    /// failure message shows), through the `serve` process.
    fn call(&self, args: &[&str]) -> Out {
        use std::io::{BufRead, Write};
        let mut guard = self.server.lock().unwrap_or_else(|e| e.into_inner());
        if guard.is_none() {
            let mut cmd = Command::new("/usr/bin/python3");
            cmd.args([CRI_PY, self.c.sock.as_str(), "serve"])
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(fs::File::create(ws().dir.join("cri-serve.log")).unwrap());
            let mut child = spawn_daemon(cmd).expect("spawn cri.py serve");
            let stdin = child.stdin.take().unwrap();
            let stdout = std::io::BufReader::new(child.stdout.take().unwrap());
            *guard = Some(CriServer {
                child,
                stdin,
                stdout,
            });
        }
        let server = guard.as_mut().unwrap();
        let request = serde_json::to_string(args).unwrap();
        let mut line = String::new();
        let sent = writeln!(server.stdin, "{request}").and_then(|_| server.stdin.flush());
        let read = sent.and_then(|_| server.stdout.read_line(&mut line));
        let answer: Option<Value> = match read {
            Ok(n) if n > 0 => serde_json::from_str(&line).ok(),
            _ => None,
        };
        let cmd = shell_line(&self.argv(args));
        let Some(answer) = answer else {
            let _ = server.child.kill();
            let _ = server.child.wait();
            *guard = None;
            return Out {
                cmd,
                code: -1,
                stdout: String::new(),
                stderr: format!(
                    "[harness: cri.py serve failed ({read:?}, {line:?}); its log:\n{}]\n",
                    tail(&ws().dir.join("cri-serve.log"), 20)
                ),
            };
        };
        let text = |k: &str| answer[k].as_str().unwrap_or("").to_string();
        Out {
            cmd,
            code: answer["code"].as_i64().unwrap_or(-1) as i32,
            stdout: text("stdout"),
            stderr: text("stderr"),
        }
    }
    fn pod(&self, name: &str) -> Option<CriPod> {
        self.pods.lock().unwrap().get(name).cloned()
    }
    #[track_caller]
    fn cid(&self, name: &str) -> String {
        self.pod(name)
            .unwrap_or_else(|| panic!("cri: no pod for {name}"))
            .container
    }
    /// The container's log (CRI format: `TIME STREAM TAG TEXT`) as the
    /// stdout and stderr a client would have shown.
    fn log(&self, name: &str) -> (String, String) {
        let Some(pod) = self.pod(name) else {
            return Default::default();
        };
        let text = fs::read_to_string(pod.logs.join("main.log")).unwrap_or_default();
        let (mut out, mut err) = (String::new(), String::new());
        for line in text.lines() {
            let f: Vec<&str> = line.splitn(4, ' ').collect();
            let [_, stream, tag, msg] = f[..] else {
                continue;
            };
            let s = if stream == "stderr" {
                &mut err
            } else {
                &mut out
            };
            s.push_str(msg);
            if tag == "F" {
                s.push('\n');
            }
        }
        (out, err)
    }
    /// The CRI's own view: ContainerStatus.
    fn status(&self, name: &str) -> Option<CState> {
        let pod = self.pod(name)?;
        parse_state(&self.call(&["status", &pod.container]))
    }
}

impl Engine for Cri {
    fn name(&self) -> &'static str {
        "cri"
    }
    /// RunPodSandbox, CreateContainer (`opts`: cri.py create's
    /// `--memory`, `--cpu-quota`, `--cpu-period`), StartContainer; the
    /// container's id on stdout.
    fn run_detached(&self, name: &str, opts: &[&str], cmd: &[&str]) -> Out {
        let n = seq();
        let parent = if systemd_mode() {
            cri_cgroup_parent().replace(".slice", &format!("-pod{n}.slice"))
        } else {
            format!("{}/pod{n}", cri_cgroup_parent())
        };
        let logs = ws().dir.join("cri-logs").join(name);
        fs::create_dir_all(&logs).unwrap();
        let logs_s = logs.to_str().unwrap();
        let out = self.call(&["runp", "rrun", name, &parent, logs_s]);
        if !out.ok() {
            return out;
        }
        let sandbox = out.stdout.trim().to_string();
        let mut pod = CriPod {
            sandbox: sandbox.clone(),
            container: String::new(),
            parent: parent.clone(),
            logs: logs.clone(),
        };
        self.pods
            .lock()
            .unwrap()
            .insert(name.to_string(), pod.clone());
        let mut a = vec!["create"];
        a.extend(opts);
        a.extend([sandbox.as_str(), name, &parent, logs_s, IMAGE, "--"]);
        a.extend(cmd);
        let out = self.call(&a);
        if !out.ok() {
            return out;
        }
        pod.container = out.stdout.trim().to_string();
        self.pods
            .lock()
            .unwrap()
            .insert(name.to_string(), pod.clone());
        let started = self.call(&["start", &pod.container]);
        if !started.ok() {
            return started;
        }
        out
    }
    /// A pod whose container runs to its end: its log and exit code, as
    /// `run --rm` shows them.
    fn run(&self, name: &str, opts: &[&str], cmd: &[&str]) -> Out {
        let out = self.run_detached(name, opts, cmd);
        if !out.ok() {
            return out;
        }
        let exited = wait_for(CMD_TIMEOUT, || {
            self.state(name).is_some_and(|s| s.status == "exited")
        });
        let (stdout, stderr) = self.log(name);
        let code = if exited {
            self.stopped_exit_code(name).unwrap_or(-1)
        } else {
            -1
        };
        self.rm_force(name);
        Out {
            cmd: format!("(cri) run {} {}", opts.join(" "), cmd.join(" ")),
            code,
            stdout,
            stderr: if exited {
                stderr
            } else {
                format!("{stderr}\n[harness: still running after {CMD_TIMEOUT:?}]\n")
            },
        }
    }
    fn run_tty(&self, _name: &str, _cmd: &[&str]) -> Out {
        unreachable!("the CRI's tty needs its streaming server")
    }
    /// ExecSync (no tty, no options: the kubelet's exec probes).
    fn exec(&self, name: &str, tty: bool, opts: &[&str], cmd: &[&str]) -> Out {
        assert!(!tty && opts.is_empty(), "ExecSync has no tty or options");
        let cid = self.cid(name);
        let mut a = vec!["exec", cid.as_str(), "--"];
        a.extend(cmd);
        self.call(&a)
    }
    /// StopContainer: SIGTERM, SIGKILL after 5 s.
    fn stop(&self, name: &str) -> Out {
        self.call(&["stop", &self.cid(name), "5"])
    }
    /// StopContainer with no grace period: SIGKILL.
    fn kill(&self, name: &str) -> Out {
        self.call(&["stop", &self.cid(name), "0"])
    }
    /// RemoveContainer, StopPodSandbox, RemovePodSandbox, then (with
    /// systemd) stop the pod's slice, as the kubelet does.
    fn rm(&self, name: &str) -> Out {
        let Some(pod) = self.pod(name) else {
            return Out {
                cmd: format!("(cri) rm {name}"),
                code: 1,
                stdout: String::new(),
                stderr: format!("no pod for {name}\n"),
            };
        };
        let mut steps = Vec::new();
        if !pod.container.is_empty() {
            steps.push(vec!["rm", pod.container.as_str()]);
        }
        steps.push(vec!["stopp", pod.sandbox.as_str()]);
        steps.push(vec!["rmp", pod.sandbox.as_str()]);
        let mut last = None;
        for step in steps {
            let out = self.call(&step);
            if !out.ok() {
                return out;
            }
            last = Some(out);
        }
        self.pods.lock().unwrap().remove(name);
        if systemd_mode() {
            run_argv(
                &strings(&["systemctl", "stop", &pod.parent]),
                &[],
                CMD_TIMEOUT,
            )
            .expect_ok();
        }
        last.unwrap()
    }
    fn rm_force(&self, name: &str) -> Out {
        match self.pod(name) {
            Some(pod) if !pod.container.is_empty() => {
                self.call(&["stop", &pod.container, "0"]);
                self.rm(name)
            }
            Some(_) => self.rm(name),
            None => Out {
                cmd: format!("(cri) rm -f {name}"),
                code: 0,
                stdout: String::new(),
                stderr: String::new(),
            },
        }
    }
    fn pause(&self, name: &str) -> Out {
        self.c.pause(&self.cid(name))
    }
    fn unpause(&self, name: &str) -> Out {
        self.c.unpause(&self.cid(name))
    }
    fn top(&self, name: &str) -> Out {
        self.c.top(&self.cid(name))
    }
    fn logs(&self, name: &str) -> Out {
        let (stdout, stderr) = self.log(name);
        Out {
            cmd: format!("(cri) logs {name}"),
            code: 0,
            stdout,
            stderr,
        }
    }
    fn restart(&self, _name: &str) -> Out {
        unreachable!("the kubelet restarts by making a new container")
    }
    fn update_memory(&self, _name: &str, _bytes: u64) -> Out {
        unreachable!("not tested through the CRI")
    }
    fn stats(&self, _name: &str) -> Out {
        unreachable!("not tested through the CRI")
    }
    /// The task as ctr sees it while there is one (the CRI has no
    /// "paused"); once the CRI deleted it, ContainerStatus.
    fn state(&self, name: &str) -> Option<CState> {
        let pod = self.pod(name)?;
        if pod.container.is_empty() {
            return None;
        }
        self.c.state(&pod.container).or_else(|| self.status(name))
    }
    fn limit_opts(&self) -> Vec<String> {
        strings(&[
            "--memory",
            "67108864",
            "--cpu-quota",
            "50000",
            "--cpu-period",
            "100000",
        ])
    }
    fn has_pids_limit(&self) -> bool {
        false
    }
    /// A hostPath volume: a CRI Mount (container_path, host_path, readonly).
    fn bind_opts(&self, src: &Path, dst: &str, ro: bool) -> Vec<String> {
        let ro = if ro { ":ro" } else { "" };
        strings(&["--mount", &format!("{}:{dst}{ro}", src.display())])
    }
    fn argv_run(&self, _flags: &[&str], _name: &str, _opts: &[&str], _cmd: &[&str]) -> Vec<String> {
        unreachable!("the CRI runs a container in several calls")
    }
    fn argv(&self, args: &[&str]) -> Vec<String> {
        Cri::argv(self, args)
    }
    fn signal(&self, name: &str, sig: &str) -> Out {
        self.c.signal(&self.cid(name), sig)
    }
    fn id(&self, name: &str) -> String {
        self.cid(name)
    }
    /// ContainerStatus's exit code, once the CRI saw the exit.
    fn stopped_exit_code(&self, name: &str) -> Option<i32> {
        let mut last = None;
        wait_for(Duration::from_secs(10), || {
            last = self.status(name);
            last.as_ref().is_some_and(|s| s.status == "exited")
        });
        last.filter(|s| s.status == "exited")
            .and_then(|s| s.exit_code)
    }
    fn unit_prefix(&self) -> &'static str {
        "cri-containerd"
    }
}

// ---------------------------------------------------------------------------
// Scenarios, one per engine each
// ---------------------------------------------------------------------------

/// `run`: the container's stdout and stderr reach the user, and its exit
/// code is the engine's.
fn run_output_and_exit_code(e: &dyn Engine) {
    let name = container_name(e, "run");
    let _g = guard(e, &name);
    let out = e.run(
        &name,
        &[],
        &[
            "sh",
            "-c",
            "echo hello from $(hostname -s 2>/dev/null || echo c); echo to-stderr >&2; exit 7",
        ],
    );
    assert_eq!(out.code, 7, "{}{}", out.describe(), hints());
    assert!(out.stdout.contains("hello from"), "{}", out.describe());
    assert!(out.all().contains("to-stderr"), "{}", out.describe());
    let out = e.run(&name, &[], &["true"]);
    assert_eq!(out.code, 0, "{}{}", out.describe(), hints());
}

/// `run -t`: the process gets a terminal (the engine's console socket
/// receives the pty master from the runtime).
fn run_tty(e: &dyn Engine) {
    let name = container_name(e, "run-tty");
    let _g = guard(e, &name);
    let out = e.run_tty(
        &name,
        &[
            "sh",
            "-c",
            "tty; test -t 0 && test -t 1 && echo both-ttys; exit 3",
        ],
    );
    assert_eq!(out.code, 3, "{}{}", out.describe(), hints());
    assert!(out.stdout.contains("/dev/pts/"), "{}", out.describe());
    assert!(out.stdout.contains("both-ttys"), "{}", out.describe());
}

/// A detached container, then `exec` into it: output, exit code, env,
/// working directory, user.
fn exec(e: &dyn Engine) {
    let name = container_name(e, "exec");
    let _g = guard(e, &name);
    let st = start_serving(e, &name, &[]);
    let out = e.exec(
        &name,
        false,
        &[],
        &["sh", "-c", "echo in-container; echo err >&2; exit 5"],
    );
    assert_eq!(out.code, 5, "{}{}", out.describe(), hints());
    assert!(out.stdout.contains("in-container"), "{}", out.describe());
    // The exec'd process is in the container's pid namespace and cgroup.
    let out = e
        .exec(
            &name,
            false,
            &[],
            &["sh", "-c", "echo $$; cat /proc/1/cmdline | tr '\\0' ' '"],
        )
        .expect_ok();
    assert!(
        out.stdout.contains("trap"),
        "pid 1 is not the container's process:\n{}",
        out.describe()
    );
    let procs = cgroup_procs(st.pid);
    assert!(
        procs.contains(&st.pid),
        "container pid {} not in its own cgroup {procs:?}",
        st.pid
    );
    // Environment, cwd and user options.
    // (ctr's exec has no --env.)
    let (opts, want): (&[&str], &str) = match e.name() {
        "containerd" => (&["--cwd", "/tmp", "--user", "1000"], "cwd=/tmp uid=1000"),
        _ => (
            &["-e", "FOO=bar", "-w", "/tmp", "-u", "1000"],
            "foo=bar cwd=/tmp uid=1000",
        ),
    };
    let out = e
        .exec(
            &name,
            false,
            opts,
            &["sh", "-c", "echo foo=$FOO cwd=$(pwd) uid=$(id -u)"],
        )
        .expect_ok();
    assert!(out.stdout.contains(want), "{}", out.describe());
    assert_eq!(state_of(e, &name).status, "running");
}

/// `exec -t`: the exec'd process gets its own terminal.
fn exec_tty(e: &dyn Engine) {
    let name = container_name(e, "exec-tty");
    let _g = guard(e, &name);
    start_serving(e, &name, &[]);
    let out = e.exec(
        &name,
        true,
        &[],
        &["sh", "-c", "tty; test -t 1 && echo is-a-tty; exit 4"],
    );
    assert_eq!(out.code, 4, "{}{}", out.describe(), hints());
    assert!(out.stdout.contains("/dev/pts/"), "{}", out.describe());
    assert!(out.stdout.contains("is-a-tty"), "{}", out.describe());
    // And without -t, no terminal.
    let out = e
        .exec(&name, false, &[], &["sh", "-c", "test -t 1 || echo no-tty"])
        .expect_ok();
    assert!(out.stdout.contains("no-tty"), "{}", out.describe());
}

/// The storage path of a Kubernetes node: a CSI driver (NetApp Trident,
/// say) mounts an NFS-backed PersistentVolume on the node and the engine
/// hands it to the runtime as a host path; here one NFSv4 export of the
/// machine itself, bound read-write at /data and read-only at /data-ro.
/// What the container writes is read back on the server's directory.
/// Skips (saying so) where the kernel has no NFS; the systemd VM runs it
/// with `RRUN_TEST_NFS=1`, where a missing NFS fails.
fn nfs_volume(e: &dyn Engine) {
    let dir = ws().dir.join(format!("nfs-{}", seq()));
    fs::create_dir_all(&dir).unwrap();
    let Some(pv) = NfsVolume::new(&dir) else {
        return;
    };
    pv.seed();
    let name = container_name(e, "nfs");
    let _g = guard(e, &name);
    let mut opts = e.bind_opts(&pv.mount, "/data", false);
    opts.extend(e.bind_opts(&pv.mount, "/data-ro", true));
    let opts: Vec<&str> = opts.iter().map(String::as_str).collect();
    start_serving(e, &name, &opts);
    let out = e.exec(&name, false, &[], &["sh", "-c", NfsVolume::SCRIPT]);
    assert_eq!(out.code, 0, "{}{}", out.describe(), hints());
    pv.assert_seen(&out.stdout, &out.describe());
    e.rm_force(&name).expect_ok();
}

/// `stop` (a 5 s grace period) and the proof that SIGTERM reached the
/// container: its trap's exit code 42, not the 137 of the SIGKILL that
/// follows the grace period. (Not the time `stop` took: under TCG with a
/// busy host, Docker alone takes seconds.)
fn stop_through_the_trap(e: &dyn Engine, name: &str) {
    let t = Instant::now();
    e.stop(name).expect_ok();
    wait_status(e, name, "exited");
    assert_eq!(
        e.stopped_exit_code(name),
        Some(42),
        "stop took {:?}: SIGTERM did not reach the container (no exit code 42 from its trap)",
        t.elapsed()
    );
}

/// `stop` sends SIGTERM through the runtime (the container's trap exits
/// 42), then `rm` removes it and its cgroup.
fn stop_and_rm(e: &dyn Engine) {
    let name = container_name(e, "stop");
    let _g = guard(e, &name);
    let st = start_serving(e, &name, &[]);
    let mem_cg = cgroup_file(st.pid, "memory", "", "");
    stop_through_the_trap(e, &name);
    e.rm(&name).expect_ok();
    assert!(e.state(&name).is_none(), "{name} still there after rm");
    assert!(
        wait_for(Duration::from_secs(5), || !mem_cg.exists()),
        "cgroup {} left behind",
        mem_cg.display()
    );
}

/// `kill` (SIGKILL) ends the container; its exit is 137.
fn kill(e: &dyn Engine) {
    let name = container_name(e, "kill");
    let _g = guard(e, &name);
    let st = start_serving(e, &name, &[]);
    e.kill(&name).expect_ok();
    wait_status(e, &name, "exited");
    assert!(!alive(st.pid), "container process {} still alive", st.pid);
    assert_eq!(e.stopped_exit_code(&name), Some(137));
}

/// `rm -f` on a running container kills and removes it.
fn rm_force_running(e: &dyn Engine) {
    let name = container_name(e, "rm-force");
    let _g = guard(e, &name);
    let st = start_serving(e, &name, &[]);
    e.rm_force(&name).expect_ok();
    assert!(e.state(&name).is_none(), "{name} still there after rm -f");
    assert!(
        wait_for(Duration::from_secs(5), || !alive(st.pid)),
        "container process {} still alive",
        st.pid
    );
}

/// `pause` freezes the container's cgroup, `unpause` thaws it; exec works
/// again after.
fn pause_unpause(e: &dyn Engine) {
    let name = container_name(e, "pause");
    let _g = guard(e, &name);
    let st = start_serving(e, &name, &[]);
    e.pause(&name).expect_ok();
    wait_status(e, &name, "paused");
    assert!(
        frozen(st.pid),
        "cgroup of {} not frozen after pause",
        st.pid
    );
    e.unpause(&name).expect_ok();
    wait_status(e, &name, "running");
    assert!(
        !frozen(st.pid),
        "cgroup of {} still frozen after unpause",
        st.pid
    );
    e.exec(&name, false, &[], &["true"]).expect_ok();
}

/// `top` / `task ps` lists the container's processes (the engine asks the
/// runtime's `ps`, or reads the cgroup the runtime put them in).
fn top(e: &dyn Engine) {
    let name = container_name(e, "top");
    let _g = guard(e, &name);
    let st = start_serving(e, &name, &[]);
    let out = e.top(&name).expect_ok();
    // Podman's top reads the container's /proc and shows pids as the
    // container sees them; Docker and ctr ask the runtime's `ps` for host
    // pids.
    let pid = if e.name() == "podman" {
        "1".to_string()
    } else {
        st.pid.to_string()
    };
    // "PID INFO" (ctr), "UID PID PPID ..." (docker), "USER PID PPID ..." (podman)
    let pid_column = if e.name() == "containerd" { 0 } else { 1 };
    let listed = out
        .stdout
        .lines()
        .skip(1)
        .any(|l| l.split_whitespace().nth(pid_column) == Some(pid.as_str()));
    assert!(
        listed,
        "container pid {pid} not listed:\n{}",
        out.describe()
    );
}

/// `logs` shows what the container printed, after it exited.
fn logs(e: &dyn Engine) {
    let name = container_name(e, "logs");
    let _g = guard(e, &name);
    e.run_detached(
        &name,
        &[],
        &["sh", "-c", "echo line-one; echo line-two >&2"],
    )
    .expect_ok();
    wait_status(e, &name, "exited");
    let out = e.logs(&name).expect_ok();
    assert!(
        out.all().contains("line-one") && out.all().contains("line-two"),
        "{}",
        out.describe()
    );
}

/// `restart`: a new container process, running, reachable by exec.
fn restart(e: &dyn Engine) {
    let name = container_name(e, "restart");
    let _g = guard(e, &name);
    let before = start_serving(e, &name, &[]);
    e.restart(&name).expect_ok();
    let after = wait_status(e, &name, "running");
    assert_ne!(before.pid, after.pid, "restart kept the old process");
    assert!(!alive(before.pid), "old process {} still alive", before.pid);
    e.exec(&name, false, &[], &["true"]).expect_ok();
}

/// Memory, CPU and pids limits reach the container's cgroup on the host.
fn limits(e: &dyn Engine) {
    let name = container_name(e, "limits");
    let _g = guard(e, &name);
    let opts = e.limit_opts();
    let opts: Vec<&str> = opts.iter().map(|s| s.as_str()).collect();
    let st = start_serving(e, &name, &opts);
    assert_eq!(memory_limit(st.pid), "67108864");
    assert_eq!(cpu_max(st.pid), "50000 100000");
    if e.has_pids_limit() {
        assert_eq!(pids_max(st.pid), "64");
    }
}

/// `stats` reads the container's cgroup: memory usage and limit.
fn stats(e: &dyn Engine) {
    let name = container_name(e, "stats");
    let _g = guard(e, &name);
    let opts = e.limit_opts();
    let opts: Vec<&str> = opts.iter().map(|s| s.as_str()).collect();
    start_serving(e, &name, &opts);
    let out = e.stats(&name).expect_ok();
    match e.name() {
        "containerd" => {
            // "memory.limit_in_bytes  67108864" (v1) / "memory.max" (v2)
            assert!(out.stdout.contains("67108864"), "{}", out.describe());
        }
        _ => {
            // "1.2MiB / 64MiB 2"
            assert!(
                out.stdout.contains("/ 64MiB") || out.stdout.contains("/ 67.11MB"),
                "{}",
                out.describe()
            );
            let pids: i64 = out
                .stdout
                .split_whitespace()
                .last()
                .unwrap_or("0")
                .parse()
                .unwrap_or(0);
            assert!(pids >= 1, "no pids counted:\n{}", out.describe());
        }
    }
}

/// `update --memory` changes the running container's limit (the engine
/// calls the runtime's `update`).
fn update(e: &dyn Engine) {
    let name = container_name(e, "update");
    let _g = guard(e, &name);
    let opts = e.limit_opts();
    let opts: Vec<&str> = opts.iter().map(|s| s.as_str()).collect();
    let st = start_serving(e, &name, &opts);
    assert_eq!(memory_limit(st.pid), "67108864");
    e.update_memory(&name, 100 << 20).expect_ok();
    assert_eq!(memory_limit(st.pid), (100u64 << 20).to_string());
    e.exec(&name, false, &[], &["true"]).expect_ok();
}

/// An image without the executable: the engine fails with the runtime's
/// message (naming the path and "no such file or directory", which Docker
/// and Podman turn into exit code 127).
fn error_missing_executable(e: &dyn Engine) {
    let name = container_name(e, "err-exe");
    let _g = guard(e, &name);
    let out = e.run(&name, &[], &["/no/such/binary", "arg"]);
    assert_ne!(out.code, 0, "{}", out.describe());
    assert!(
        out.stderr.contains("/no/such/binary"),
        "message does not name the executable:\n{}{}",
        out.describe(),
        hints()
    );
    assert!(
        out.stderr.contains("no such file or directory"),
        "{}{}",
        out.describe(),
        hints()
    );
    if e.name() != "containerd" {
        assert_eq!(out.code, 127, "{}", out.describe());
    }
}

/// A bind mount of a file onto a directory: the runtime fails the mount and
/// the engine shows why. runc says "not a directory", on which Docker adds
/// its "Are you trying to mount a directory onto a file" hint.
fn error_bad_mount(e: &dyn Engine) {
    let name = container_name(e, "err-mount");
    let _g = guard(e, &name);
    let file = ws().dir.join("a-file");
    fs::write(&file, "x").unwrap();
    let spec = match e.name() {
        "containerd" => format!("type=bind,src={},dst=/bin,options=rbind:ro", file.display()),
        _ => format!("type=bind,src={},dst=/bin", file.display()),
    };
    let out = e.run(&name, &["--mount", &spec], &["true"]);
    assert_ne!(out.code, 0, "{}", out.describe());
    assert!(
        out.stderr.contains("/bin"),
        "message does not name the mount:\n{}{}",
        out.describe(),
        hints()
    );
    assert!(
        out.stderr.contains("not a directory"),
        "{}{}",
        out.describe(),
        hints()
    );
}

/// `exec` into a stopped container fails with a message; `exec` of a
/// missing executable into a running one fails with the runtime's message.
fn error_exec(e: &dyn Engine) {
    let name = container_name(e, "err-exec");
    let _g = guard(e, &name);
    start_serving(e, &name, &[]);
    let out = e.exec(&name, false, &[], &["/no/such/binary"]);
    assert_ne!(out.code, 0, "{}", out.describe());
    assert!(
        out.all().contains("/no/such/binary"),
        "{}{}",
        out.describe(),
        hints()
    );
    assert!(
        out.all().contains("no such file or directory"),
        "{}{}",
        out.describe(),
        hints()
    );
    e.stop(&name).expect_ok();
    wait_status(e, &name, "exited");
    let out = e.exec(&name, false, &[], &["true"]);
    assert_ne!(out.code, 0, "{}", out.describe());
    let msg = out.all().to_lowercase();
    assert!(
        msg.contains("not running") || msg.contains("stopped") || msg.contains("state improper"),
        "{}",
        out.describe()
    );
}

/// Engine-specific spelling of the same option.
fn pick<'a>(e: &dyn Engine, containerd: &'a [&'a str], others: &'a [&'a str]) -> &'a [&'a str] {
    if e.name() == "containerd" {
        containerd
    } else {
        others
    }
}

/// `run -i` / `exec -i`: the user's stdin reaches the container's process
/// (ctr always attaches stdin).
fn stdin(e: &dyn Engine) {
    let name = container_name(e, "stdin");
    let _g = guard(e, &name);
    // ctr does not pass on the end of its stdin; the others do.
    let script = pick(
        e,
        &["read a; read b; echo got=$a,$b"],
        &["read a; read b; echo got=$a,$b; cat | wc -c"],
    )[0];
    let argv = e.argv_run(
        pick(e, &["--rm"], &["--rm", "-i"]),
        &name,
        &[],
        &["sh", "-c", script],
    );
    let out = e.cli_input(argv, "one\ntwo\n12345\n");
    assert_eq!(out.code, 0, "{}{}", out.describe(), hints());
    assert!(out.stdout.contains("got=one,two"), "{}", out.describe());
    if e.name() != "containerd" {
        assert_eq!(
            out.stdout.lines().last().map(str::trim),
            Some("6"),
            "{}",
            out.describe()
        );
    }
    // And into an exec.
    let name = container_name(e, "stdin-exec");
    let _g2 = guard(e, &name);
    start_serving(e, &name, &[]);
    let argv = if e.name() == "containerd" {
        let id = format!("exec-{}", seq());
        e.argv(&[
            "task",
            "exec",
            "--exec-id",
            &id,
            &name,
            "sh",
            "-c",
            "read a; echo exec-got=$a",
        ])
    } else {
        e.argv(&["exec", "-i", &name, "sh", "-c", "read a; echo exec-got=$a"])
    };
    let out = e.cli_input(argv, "three\n");
    assert_eq!(out.code, 0, "{}{}", out.describe(), hints());
    assert!(out.stdout.contains("exec-got=three"), "{}", out.describe());
}

/// Process options of `run`: user, working directory, environment,
/// hostname, read-only root.
fn run_process_options(e: &dyn Engine) {
    let name = container_name(e, "procopts");
    let _g = guard(e, &name);
    let script = "echo id=$(id -u):$(id -g) cwd=$(pwd) foo=$FOO host=$(hostname); \
                  touch /rootfs-write 2>/dev/null && echo root-writable || echo root-readonly";
    let (opts, want): (&[&str], &str) = match e.name() {
        // ctr run has no --user or --hostname.
        "containerd" => (
            &["--cwd", "/tmp", "--env", "FOO=bar", "--read-only"],
            "id=0:0 cwd=/tmp foo=bar",
        ),
        _ => (
            &[
                "-u",
                "1000:1000",
                "-w",
                "/tmp",
                "-e",
                "FOO=bar",
                "--hostname",
                "h1",
                "--read-only",
            ],
            "id=1000:1000 cwd=/tmp foo=bar host=h1",
        ),
    };
    let out = e.run(&name, opts, &["sh", "-c", script]);
    assert_eq!(out.code, 0, "{}{}", out.describe(), hints());
    assert!(
        out.stdout.contains(want),
        "want {want:?}:\n{}",
        out.describe()
    );
    assert!(out.stdout.contains("root-readonly"), "{}", out.describe());
}

/// Mounts the engine asks for: a read-only bind of a host directory, a
/// tmpfs (Docker and Podman), a named volume shared between containers.
fn mounts(e: &dyn Engine) {
    let name = container_name(e, "mounts");
    let _g = guard(e, &name);
    let host = ws().dir.join(format!("bind-{}", seq()));
    fs::create_dir_all(&host).unwrap();
    fs::write(host.join("hello"), "from-the-host\n").unwrap();
    let bind = e.bind_opts(&host, "/data", true);
    let mut opts: Vec<&str> = bind.iter().map(String::as_str).collect();
    if e.name() != "containerd" {
        opts.extend(["--tmpfs", "/scratch:size=1m"]);
    }
    let script = "cat /data/hello; touch /data/x 2>/dev/null && echo data-writable || echo data-readonly; \
                  if [ -d /scratch ]; then echo s > /scratch/f && grep -w /scratch /proc/mounts; fi";
    let out = e.run(&name, &opts, &["sh", "-c", script]);
    assert_eq!(out.code, 0, "{}{}", out.describe(), hints());
    assert!(out.stdout.contains("from-the-host"), "{}", out.describe());
    assert!(out.stdout.contains("data-readonly"), "{}", out.describe());
    assert!(!host.join("x").exists());
    if e.name() != "containerd" {
        assert!(
            out.stdout.contains("tmpfs /scratch tmpfs"),
            "{}",
            out.describe()
        );
        assert!(out.stdout.contains("size=1024k"), "{}", out.describe());
        // A named volume outlives the container that wrote to it.
        let vol = format!("vol-{}", seq());
        let spec = format!("{vol}:/vol");
        let n1 = container_name(e, "vol-writer");
        let _g1 = guard(e, &n1);
        e.run(
            &n1,
            &["-v", &spec],
            &["sh", "-c", "echo persisted > /vol/f"],
        )
        .expect_ok();
        let n2 = container_name(e, "vol-reader");
        let _g2 = guard(e, &n2);
        let out = e.run(&n2, &["-v", &spec], &["cat", "/vol/f"]).expect_ok();
        assert!(out.stdout.contains("persisted"), "{}", out.describe());
        run_argv(&e.argv(&["volume", "rm", &vol]), &e.env(), CMD_TIMEOUT);
    }
}

/// `--device`: the node is there and usable; a node the container makes
/// itself is refused by the device cgroup.
fn devices(e: &dyn Engine) {
    let name = container_name(e, "devices");
    let _g = guard(e, &name);
    let (opts, dev): (&[&str], &str) = match e.name() {
        "containerd" => (&["--device", "/dev/zero"], "/dev/zero"),
        _ => (
            &["--device", "/dev/zero:/dev/myzero", "--cap-add", "MKNOD"],
            "/dev/myzero",
        ),
    };
    let script = format!(
        "head -c 5 {dev} | wc -c; mknod /tmp/mem c 1 1 && (head -c 1 /tmp/mem >/dev/null 2>&1 && echo mem-readable || echo mem-denied)"
    );
    let out = e.run(&name, opts, &["sh", "-c", &script]);
    assert_eq!(out.code, 0, "{}{}", out.describe(), hints());
    assert_eq!(
        out.stdout.lines().next().map(str::trim),
        Some("5"),
        "{}",
        out.describe()
    );
    assert!(
        out.stdout.contains("mem-denied"),
        "device cgroup let the container read /dev/mem:\n{}",
        out.describe()
    );
}

/// `--privileged`: every capability, the host's devices, writable /sys.
fn privileged(e: &dyn Engine) {
    let name = container_name(e, "privileged");
    let _g = guard(e, &name);
    let script = "grep CapEff /proc/self/status; ls /dev; \
                  grep -w /sys /proc/mounts | grep -q ' rw,' && echo sys-rw || echo sys-ro";
    let out = e.run(&name, &["--privileged"], &["sh", "-c", script]);
    assert_eq!(out.code, 0, "{}{}", out.describe(), hints());
    // Every capability this host has (it lacks CAP_SYS_RESOURCE, so
    // Docker's --privileged, which asks for all of them, fails even with
    // runc here and is not tested).
    let bounding = fs::read_to_string("/proc/self/status").unwrap();
    let bounding = bounding.lines().find(|l| l.starts_with("CapBnd:")).unwrap();
    let want = bounding.replace("CapBnd:", "CapEff:");
    assert!(
        out.stdout.contains(&want),
        "want {want:?}:\n{}",
        out.describe()
    );
    assert!(
        out.stdout.lines().any(|l| l == "kmsg"),
        "host devices missing:\n{}",
        out.describe()
    );
    assert!(out.stdout.contains("sys-rw"), "{}", out.describe());
}

/// The engines' default confinement: a seccomp filter, a reduced
/// capability set, masked /proc paths.
fn default_confinement(e: &dyn Engine) {
    let name = container_name(e, "confined");
    let _g = guard(e, &name);
    let opts: &[&str] = pick(e, &["--seccomp"], &[]);
    let script = "grep -E '^(Seccomp|CapEff):' /proc/self/status; \
                  cat /proc/kcore >/dev/null 2>&1 && echo kcore-readable || echo kcore-masked";
    let out = e.run(&name, opts, &["sh", "-c", script]);
    assert_eq!(out.code, 0, "{}{}", out.describe(), hints());
    assert!(
        out.stdout.contains("Seccomp:\t2"),
        "no seccomp filter:\n{}",
        out.describe()
    );
    assert!(
        !out.stdout.contains("CapEff:\t000001ffffffffff"),
        "{}",
        out.describe()
    );
    assert!(out.stdout.contains("kcore-masked"), "{}", out.describe());
}

/// A second container joins the first one's pid namespace (by path, which
/// is how engines pass it to the runtime) and sees its processes.
fn join_pid_namespace(e: &dyn Engine) {
    let a = container_name(e, "ns-a");
    let _ga = guard(e, &a);
    let st = start_serving(e, &a, &[]);
    let b = container_name(e, "ns-b");
    let _gb = guard(e, &b);
    let join = match e.name() {
        "containerd" => format!("pid:/proc/{}/ns/pid", st.pid),
        _ => format!("container:{a}"),
    };
    let flag = if e.name() == "containerd" {
        "--with-ns"
    } else {
        "--pid"
    };
    let out = e.run(&b, &[flag, &join], &["sh", "-c", "ps -o pid,args"]);
    assert_eq!(out.code, 0, "{}{}", out.describe(), hints());
    assert!(
        out.stdout.contains("got-term"),
        "the first container's process is not visible:\n{}",
        out.describe()
    );
}

/// `kill -s USR1` reaches the container's process with that signal.
fn kill_signal(e: &dyn Engine) {
    let name = container_name(e, "signal");
    let _g = guard(e, &name);
    let script = "trap 'echo usr1 > /tmp/got' USR1; echo started; while :; do sleep 0.1; done";
    e.run_detached(&name, &[], &["sh", "-c", script])
        .expect_ok();
    wait_status(e, &name, "running");
    e.signal(&name, "USR1").expect_ok();
    let mut last = None;
    let ok = wait_for(Duration::from_secs(5), || {
        let out = e.exec(&name, false, &[], &["cat", "/tmp/got"]);
        let hit = out.stdout.contains("usr1");
        last = Some(out);
        hit
    });
    assert!(ok, "USR1 never arrived:\n{}", last.unwrap().describe());
    assert_eq!(state_of(e, &name).status, "running");
}

/// A memory limit is enforced: a process that outgrows it is OOM-killed,
/// and the engine says so.
fn oom_kill(e: &dyn Engine) {
    let name = container_name(e, "oom");
    let _g = guard(e, &name);
    let opts: &[&str] = match e.name() {
        "containerd" => &["--memory-limit", "33554432"],
        _ => &["--memory", "32m", "--memory-swap", "32m"],
    };
    // `tail` of an endless line keeps all of it in memory. It starts a
    // second after the container: the engine watches for the OOM only once
    // `start` returned (containerd's shim registers the cgroup's OOM event
    // then), and a process killed before that is reported as a plain
    // SIGKILL (Docker's OOMKilled false, seen once in CI).
    e.run_detached(&name, opts, &["sh", "-c", "sleep 1; exec tail /dev/zero"])
        .expect_ok();
    wait_status(e, &name, "exited");
    assert_eq!(e.stopped_exit_code(&name), Some(137));
    // Docker reads the OOM event from containerd (Podman 4.3's conmon does
    // not report it on cgroup v1).
    if e.name() == "docker" {
        let out = run_argv(
            &e.argv(&["inspect", "-f", "{{.State.OOMKilled}}", &name]),
            &e.env(),
            CMD_TIMEOUT,
        );
        assert_eq!(out.stdout.trim(), "true", "{}", out.describe());
    }
}

/// Podman and containerd map the container's root to an unprivileged host
/// uid range (`--uidmap`): the runtime writes the maps and the process runs
/// as that uid on the host.
fn user_namespace(e: &dyn Engine) {
    let name = container_name(e, "userns");
    let _g = guard(e, &name);
    let opts: &[&str] = match e.name() {
        "containerd" => &["--uidmap", "0:200000:65536", "--gidmap", "0:200000:65536"],
        _ => &["--uidmap", "0:200000:65536", "--gidmap", "0:200000:65536"],
    };
    e.run_detached(&name, opts, SERVE).expect_ok();
    let st = wait_status(e, &name, "running");
    let out = e.exec(
        &name,
        false,
        &[],
        &[
            "sh",
            "-c",
            "cat /proc/self/uid_map; id -u; touch /tmp/ok && echo can-write",
        ],
    );
    assert_eq!(out.code, 0, "{}{}", out.describe(), hints());
    let map: Vec<&str> = out
        .stdout
        .lines()
        .next()
        .unwrap_or("")
        .split_whitespace()
        .collect();
    assert_eq!(map, ["0", "200000", "65536"], "{}", out.describe());
    assert!(out.stdout.contains("can-write"), "{}", out.describe());
    let status = fs::read_to_string(format!("/proc/{}/status", st.pid)).unwrap();
    let uid = status.lines().find(|l| l.starts_with("Uid:")).unwrap_or("");
    assert!(
        uid.split_whitespace().nth(1) == Some("200000"),
        "host uid of the container: {uid}"
    );
}

/// Docker's `--init`: docker-init (bind-mounted by Docker) is pid 1 and
/// reaps; the command runs under it.
fn init(e: &dyn Engine) {
    let name = container_name(e, "init");
    let _g = guard(e, &name);
    let out = e.run(
        &name,
        &["--init"],
        &["sh", "-c", "cat /proc/1/cmdline | tr '\\0' ' '; exit 3"],
    );
    assert_eq!(out.code, 3, "{}{}", out.describe(), hints());
    assert!(out.stdout.contains("docker-init"), "{}", out.describe());
}

/// Two containers under one cgroup parent that did not exist before them
/// (as with a fresh host's `/docker`, or containerd's `/<namespace>`):
/// removing the first must not fail because its sibling still uses the
/// parent, and must leave the parent to the sibling.
fn sibling_cgroups(e: &dyn Engine) {
    let parent = format!("/rrun-test-engines-sib-{}-{}", std::process::id(), seq());
    struct Parent(String);
    impl Drop for Parent {
        fn drop(&mut self) {
            remove_cgroup_tree(&self.0);
        }
    }
    let _p = Parent(parent.clone());
    let opts = |name: &str| -> Vec<String> {
        match e.name() {
            "containerd" => vec!["--cgroup".into(), format!("{parent}/{name}")],
            _ => vec!["--cgroup-parent".into(), parent.clone()],
        }
    };
    let a = container_name(e, "sib-a");
    let _ga = guard(e, &a);
    let oa = opts(&a);
    let oa: Vec<&str> = oa.iter().map(|s| s.as_str()).collect();
    let sa = start_serving(e, &a, &oa);
    let b = container_name(e, "sib-b");
    let _gb = guard(e, &b);
    let ob = opts(&b);
    let ob: Vec<&str> = ob.iter().map(|s| s.as_str()).collect();
    let sb = start_serving(e, &b, &ob);
    let parent_dir = cgroup_file(sa.pid, "memory", "", "")
        .parent()
        .unwrap()
        .to_path_buf();
    assert!(
        parent_dir.ends_with(parent.trim_start_matches('/')),
        "{}",
        parent_dir.display()
    );
    e.kill(&a).expect_ok();
    wait_status(e, &a, "exited");
    let out = e.rm(&a);
    assert!(
        out.ok(),
        "removing a container whose cgroup parent a sibling uses failed:\n{}{}",
        out.describe(),
        hints()
    );
    assert!(e.state(&a).is_none());
    assert_eq!(state_of(e, &b).status, "running");
    assert!(
        parent_dir.is_dir(),
        "the shared parent {} was removed",
        parent_dir.display()
    );
    assert!(cgroup_procs(sb.pid).contains(&sb.pid));
    e.kill(&b).expect_ok();
    wait_status(e, &b, "exited");
    e.rm(&b).expect_ok();
}

/// A container that shares another's pid namespace: when its main process
/// exits, the engine has the runtime kill what it left behind
/// (`kill --all`, which runc allows on a stopped container).
fn shared_pid_namespace_leftovers(e: &dyn Engine) {
    let a = container_name(e, "leftover-a");
    let _ga = guard(e, &a);
    let st = start_serving(e, &a, &[]);
    let b = container_name(e, "leftover-b");
    let _gb = guard(e, &b);
    let join = match e.name() {
        "containerd" => format!("pid:/proc/{}/ns/pid", st.pid),
        _ => format!("container:{a}"),
    };
    let flag = if e.name() == "containerd" {
        "--with-ns"
    } else {
        "--pid"
    };
    e.run_detached(&b, &[flag, &join], &["sh", "-c", "sleep 1234 & exit 0"])
        .expect_ok();
    wait_status(e, &b, "exited");
    let mut last = None;
    let gone = wait_for(Duration::from_secs(10), || {
        let out = e.exec(&a, false, &[], &["ps", "-o", "pid,args"]);
        let g = out.ok() && !out.stdout.contains("sleep 1234");
        last = Some(out);
        g
    });
    assert!(
        gone,
        "the exited container's child is still running:\n{}{}",
        last.unwrap().describe(),
        hints()
    );
    let out = e.rm(&b);
    assert!(out.ok(), "{}{}", out.describe(), hints());
}

// ---------------------------------------------------------------------------
// Scenarios of the systemd driver (RRUN_ENGINE_CGROUP_DRIVER=systemd)
// ---------------------------------------------------------------------------

/// A container process's cgroup v2 path (from /proc/PID/cgroup) and its
/// last component: with the systemd driver, the container's unit.
#[track_caller]
fn unit_of(pid: i32) -> (String, String) {
    let cg = fs::read_to_string(format!("/proc/{pid}/cgroup"))
        .unwrap_or_else(|e| panic!("read /proc/{pid}/cgroup: {e}"));
    let path = cg
        .lines()
        .find_map(|l| l.strip_prefix("0::"))
        .unwrap_or_else(|| panic!("pid {pid} has no cgroup v2 path:\n{cg}"))
        .to_string();
    let unit = path.rsplit('/').next().unwrap_or("").to_string();
    (path, unit)
}

/// The container's unit as systemd shows it: the engine's
/// `<prefix>-<id>.scope`, in a slice of the test's, active, delegated, with
/// the container's cgroup as its own. Returns (cgroup path, unit).
#[track_caller]
fn check_scope(e: &dyn Engine, name: &str, pid: i32) -> (String, String) {
    let (path, unit) = unit_of(pid);
    let want = format!("{}-{}.scope", e.unit_prefix(), e.id(name));
    assert_eq!(unit, want, "{name}'s cgroup is {path}");
    assert!(
        path.starts_with(&format!("/{}/", test_slice())),
        "{unit} is not in {}: {path}",
        test_slice()
    );
    let parent = path.rsplit('/').nth(1).unwrap_or("");
    for (prop, want) in [
        ("ActiveState", "active"),
        ("Delegate", "yes"),
        ("ControlGroup", path.as_str()),
        ("Slice", parent),
    ] {
        assert_eq!(
            unit_property(&unit, prop),
            want,
            "systemctl show -p {prop} {unit}{}",
            hints()
        );
    }
    (path, unit)
}

/// After the container's removal, systemd no longer lists its unit and its
/// cgroup is gone.
#[track_caller]
fn assert_unit_gone(path: &str, unit: &str) {
    assert!(
        wait_for(Duration::from_secs(10), || !unit_listed(unit)),
        "{unit} still in systemctl list-units --all after the container's removal: {}{}",
        unit_property(unit, "ActiveState"),
        hints()
    );
    let dir = Path::new("/sys/fs/cgroup").join(path.trim_start_matches('/'));
    assert!(!dir.exists(), "{} left behind", dir.display());
}

/// `run`: output and exit code; `run -d`: the container is the engine's
/// scope in the test's slice, and `rm -f` stops it.
fn systemd_run(e: &dyn Engine) {
    let name = container_name(e, "sd-run");
    let _g = guard(e, &name);
    let out = e.run(
        &name,
        &[],
        &[
            "sh",
            "-c",
            "echo hello from the scope; echo to-stderr >&2; exit 7",
        ],
    );
    assert_eq!(out.code, 7, "{}{}", out.describe(), hints());
    assert!(
        out.stdout.contains("hello from the scope"),
        "{}",
        out.describe()
    );
    assert!(out.all().contains("to-stderr"), "{}", out.describe());
    let name = container_name(e, "sd-run-d");
    let _g2 = guard(e, &name);
    let st = start_serving(e, &name, &[]);
    let (path, unit) = check_scope(e, &name, st.pid);
    assert!(cgroup_procs(st.pid).contains(&st.pid));
    e.rm_force(&name).expect_ok();
    assert_unit_gone(&path, &unit);
}

/// `exec`: output and exit code, and the exec'd process is in the
/// container's scope (its cgroup is the root of the container's cgroup
/// namespace, or the scope's path without one).
fn systemd_exec(e: &dyn Engine) {
    let name = container_name(e, "sd-exec");
    let _g = guard(e, &name);
    let st = start_serving(e, &name, &[]);
    let (path, _) = unit_of(st.pid);
    let out = e.exec(
        &name,
        false,
        &[],
        &["sh", "-c", "echo in-container; echo err >&2; exit 5"],
    );
    assert_eq!(out.code, 5, "{}{}", out.describe(), hints());
    assert!(out.stdout.contains("in-container"), "{}", out.describe());
    assert!(out.all().contains("err"), "{}", out.describe());
    let out = e
        .exec(&name, false, &[], &["cat", "/proc/self/cgroup"])
        .expect_ok();
    let line = out.stdout.trim();
    assert!(
        line == "0::/" || line == format!("0::{path}"),
        "the exec'd process is not in the container's scope {path}:\n{}",
        out.describe()
    );
    assert_eq!(state_of(e, &name).status, "running");
}

/// `pause` freezes the scope's cgroup (the unit stays active), `unpause`
/// thaws it.
fn systemd_pause_resume(e: &dyn Engine) {
    let name = container_name(e, "sd-pause");
    let _g = guard(e, &name);
    let st = start_serving(e, &name, &[]);
    let (_, unit) = unit_of(st.pid);
    e.pause(&name).expect_ok();
    wait_status(e, &name, "paused");
    assert!(frozen(st.pid), "{unit} not frozen after pause");
    assert_eq!(unit_property(&unit, "ActiveState"), "active");
    e.unpause(&name).expect_ok();
    wait_status(e, &name, "running");
    assert!(!frozen(st.pid), "{unit} still frozen after unpause");
    e.exec(&name, false, &[], &["true"]).expect_ok();
}

/// `stop`: SIGTERM reaches the container through the runtime (its trap
/// exits 42); after `rm` systemd no longer lists the unit.
fn systemd_stop(e: &dyn Engine) {
    let name = container_name(e, "sd-stop");
    let _g = guard(e, &name);
    let st = start_serving(e, &name, &[]);
    let (path, unit) = unit_of(st.pid);
    stop_through_the_trap(e, &name);
    e.rm(&name).expect_ok();
    assert!(e.state(&name).is_none(), "{name} still there after rm");
    assert_unit_gone(&path, &unit);
}

/// A 64 MiB memory limit (with the engine's CPU and pids limits) is the
/// unit's `MemoryMax` in `systemctl show` and what the container reads in
/// its own cgroup's memory.max.
fn systemd_memory_limit(e: &dyn Engine) {
    let name = container_name(e, "sd-memory");
    let _g = guard(e, &name);
    let mut opts = e.limit_opts();
    opts.extend(e.cgroup_mount_opts());
    let opts: Vec<&str> = opts.iter().map(|s| s.as_str()).collect();
    let st = start_serving(e, &name, &opts);
    let (path, unit) = check_scope(e, &name, st.pid);
    let out = e
        .exec(
            &name,
            false,
            &[],
            &[
                "sh",
                "-c",
                // rrun mounts the container's own cgroup there, with or
                // without a cgroup namespace; runc the whole hierarchy
                // when there is none (ctr's containers).
                "f=/sys/fs/cgroup/memory.max; [ -e $f ] || \
                 f=\"/sys/fs/cgroup$(sed -n 's/^0:://p' /proc/self/cgroup)/memory.max\"; \
                 cat $f || grep cgroup /proc/self/mountinfo",
            ],
        )
        .expect_ok();
    assert_eq!(out.stdout.trim(), "67108864", "{}", out.describe());
    assert_eq!(memory_limit(st.pid), "67108864");
    assert_eq!(unit_property(&unit, "MemoryMax"), "67108864");
    assert_eq!(unit_property(&unit, "CPUQuotaPerSecUSec"), "500ms");
    if e.has_pids_limit() {
        assert_eq!(unit_property(&unit, "TasksMax"), "64");
    }
    e.rm_force(&name).expect_ok();
    assert_unit_gone(&path, &unit);
}

// ---------------------------------------------------------------------------
// The tests
// ---------------------------------------------------------------------------

macro_rules! engine_tests {
    ($engine:ident: $($scenario:ident),* $(,)?) => {
        mod $engine {
            $(
                #[test]
                #[ignore = "engine suite: needs containerd/podman/docker.io; run by .ci/run's engines section"]
                fn $scenario() {
                    if super::runs_here(stringify!($scenario)) {
                        super::$scenario(super::$engine());
                    }
                }
            )*
        }
    };
}

engine_tests!(containerd:
    run_output_and_exit_code, run_tty, exec, exec_tty, stop_and_rm, kill, rm_force_running,
    pause_unpause, top, restart, limits, stats,
    error_missing_executable, error_bad_mount, error_exec,
    stdin, run_process_options, mounts, devices, privileged, default_confinement,
    join_pid_namespace, kill_signal, oom_kill, user_namespace,
    sibling_cgroups, shared_pid_namespace_leftovers,
    systemd_run, systemd_exec, systemd_pause_resume, systemd_stop, systemd_memory_limit,
    nfs_volume,
);
engine_tests!(podman:
    run_output_and_exit_code, run_tty, exec, exec_tty, stop_and_rm, kill, rm_force_running,
    pause_unpause, top, logs, restart, limits, stats, update,
    error_missing_executable, error_bad_mount, error_exec,
    stdin, run_process_options, mounts, devices, privileged, default_confinement,
    join_pid_namespace, kill_signal, oom_kill,
    sibling_cgroups, shared_pid_namespace_leftovers,
    systemd_run, systemd_exec, systemd_pause_resume, systemd_stop, systemd_memory_limit,
    nfs_volume,
);
// In a store of its own: see podman_userns().
engine_tests!(podman_userns: user_namespace);
engine_tests!(docker:
    run_output_and_exit_code, run_tty, exec, exec_tty, stop_and_rm, kill, rm_force_running,
    pause_unpause, top, logs, restart, limits, stats, update,
    error_missing_executable, error_bad_mount, error_exec,
    stdin, run_process_options, mounts, devices, default_confinement,
    join_pid_namespace, kill_signal, oom_kill, init,
    sibling_cgroups, shared_pid_namespace_leftovers,
    systemd_run, systemd_exec, systemd_pause_resume, systemd_stop, systemd_memory_limit,
    nfs_volume,
);
// Kubernetes' path: pods through containerd's CRI plugin (see Cri).
engine_tests!(cri:
    run_output_and_exit_code, stop_and_rm, kill, rm_force_running, pause_unpause, logs, limits,
    kill_signal,
    systemd_run, systemd_exec, systemd_pause_resume, systemd_stop, systemd_memory_limit,
    nfs_volume,
);

/// containerd's `SystemdCgroup` option (`ctr run --runc-systemd-cgroup`)
/// passes `--systemd-cgroup`: on a host without systemd the runtime fails
/// with a clear error that ctr shows (on a systemd host the `systemd_`
/// scenarios run instead).
#[test]
#[ignore = "engine suite"]
fn containerd_systemd_cgroup_without_systemd() {
    if !runs_here("containerd_systemd_cgroup_without_systemd") {
        return;
    }
    if systemd_host() {
        eprintln!("skipped: systemd is pid 1 here");
        return;
    }
    let c = containerd();
    let name = container_name(c, "systemd");
    let _g = guard(c, &name);
    let out = c.run(&name, &["--runc-systemd-cgroup"], &["true"]);
    assert_ne!(out.code, 0, "{}", out.describe());
    assert!(
        out.stderr.contains("systemd"),
        "{}{}",
        out.describe(),
        hints()
    );
}

/// Kubernetes' path: the CRI plugin runs a pod with `runtime_handler:
/// rrun` (what the kubelet sends for a RuntimeClass whose handler is
/// `rrun`), which the `runtimes.rrun` section of config.toml maps to rrun
/// through `BinaryName`. While the pod runs, `rrun state` in the runtime's
/// root shows its container running: rrun, not runc, made it.
#[test]
#[ignore = "engine suite"]
fn containerd_cri_runtime_handler() {
    if !runs_here("containerd_cri_runtime_handler") {
        return;
    }
    let c = containerd_cri();
    let root = cri_runtime_root().join("k8s.io");
    let argv = strings(&[
        "/usr/bin/python3",
        CRI_PY,
        &c.sock,
        "rrun",
        IMAGE,
        &cri_cgroup_parent(),
        ws().real_runtime.to_str().unwrap(),
        "--root",
        root.to_str().unwrap(),
        "state",
        "{container}",
    ]);
    let out = run_argv(&argv, &[], Duration::from_secs(180));
    assert!(out.ok(), "{}{}", out.describe(), hints());
    let container = out
        .stdout
        .lines()
        .find_map(|l| l.strip_prefix("container "))
        .unwrap_or_else(|| panic!("no container:\n{}", out.describe()))
        .to_string();
    let check: String = out
        .stdout
        .lines()
        .filter_map(|l| l.strip_prefix("check "))
        .collect::<Vec<_>>()
        .join("\n");
    let state: Value = serde_json::from_str(&check).unwrap_or_else(|e| {
        panic!(
            "rrun state in {} ({e}):\n{}",
            root.display(),
            out.describe()
        )
    });
    assert_eq!(state["id"], container.as_str(), "{}", out.describe());
    assert_eq!(state["status"], "running", "{}", out.describe());
    assert!(out.stdout.contains("exec-exit 3"), "{}", out.describe());
    assert!(
        out.stdout.contains("exec-stdout exec-in-pod"),
        "{}",
        out.describe()
    );
    assert!(
        out.stdout.contains("sleep 100000"),
        "pid 1 of the container:\n{}",
        out.describe()
    );
    assert!(out.stdout.contains("removed "), "{}", out.describe());
}

/// `rrun features` prints the JSON document engines read.
#[test]
#[ignore = "engine suite"]
fn features_json() {
    if !runs_here("features_json") {
        return;
    }
    let out = run_argv(
        &[
            ws().real_runtime.to_str().unwrap().to_string(),
            "features".into(),
        ],
        &[],
        CMD_TIMEOUT,
    )
    .expect_ok();
    let v: Value = serde_json::from_str(&out.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}):\n{}", out.describe()));
    for key in [
        "ociVersionMin",
        "ociVersionMax",
        "hooks",
        "mountOptions",
        "linux",
    ] {
        assert!(
            v.get(key).is_some(),
            "features has no {key}:\n{}",
            out.stdout
        );
    }
    let ns = v["linux"]["namespaces"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert!(ns.iter().any(|n| n == "pid"), "{}", out.stdout);
}
