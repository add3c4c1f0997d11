//! Cgroups: where a container's processes are placed (`linux.cgroupsPath`),
//! the resource limits of `linux.resources` as the kernel sees them, what
//! those limits do to the container (OOM kill, fork failure, device access),
//! and the cgroup-based commands `pause`, `resume`, `ps`, `events` (stats
//! and streamed OOM events), `update` and `kill --all`.
//!
//! Every test finds the layout at run time: cgroup v2 if
//! `/sys/fs/cgroup/cgroup.controllers` exists, else v1 (possibly hybrid, with
//! an extra cgroup2 hierarchy). A container's cgroup is found from
//! `/proc/<init pid>/cgroup` and the host's cgroup mounts, and every value is
//! read back from the kernel's files there, so a test checks what the kernel
//! enforces, not what the runtime says it did.
//!
//! Validate against runc with:
//! `RRUN_TEST_RUNTIME=/usr/sbin/runc cargo test --release --test cgroups -- --test-threads=2`
//!
//! Observed runc 1.1.5 behaviour the tests pin down (rrun must match):
//! - An absolute `cgroupsPath` is used as is under every hierarchy root,
//!   including `name=systemd` and, on a hybrid host, the cgroup2 hierarchy;
//!   a relative one is joined to the runtime's own cgroup in each hierarchy;
//!   without one the cgroup is `<own cgroup>/<id>`. `delete` removes them.
//! - `..` in `cgroupsPath` never escapes: runc cleans the path lexically
//!   (`/a/../../x` is `/x`); rrun refuses it, naming `cgroupsPath`.
//! - runc always appends its default device rules (null, zero, full, random,
//!   urandom, tty, console, ptmx, pts, tun, `c *:* m`, `b *:* m`) after the
//!   config's `linux.resources.devices`, so /dev/zero cannot be denied by the
//!   config; the device test therefore uses /dev/kmsg (c 1:11), which is not
//!   in that set.
//! - `pause` of a stopped container fails ("container not running"); `state`
//!   and `list` of a paused container say "paused"; `delete --force` of a
//!   paused container thaws and kills it.
//! - `events --stats ID` prints one line
//!   `{"type":"stats","id":ID,"data":{"cpu":{"usage":{"total":..}},
//!   "memory":{"usage":{"limit":..,"usage":..}},"pids":{"current":..,
//!   "limit":..},"blkio":{},..}}` (`pids.limit` only when a limit is set).
//! - `events ID` streams `{"type":"oom","id":ID}` (no `data`) for an OOM in
//!   the container's memory cgroup, also when the OOM kills the init; runc
//!   goes on printing stats after the init is gone, rrun's `events` ends
//!   with it.
//! - `ps --format json ID` prints a JSON array of host pids; `ps ID` prints
//!   `ps -ef`'s table (`UID PID PPID C STIME TTY TIME CMD`).
//! - `update` flags: `--memory`, `--memory-swap`, `--memory-reservation`
//!   (bytes, with k/m/g suffixes accepted), `--pids-limit`, `--cpu-share`
//!   (singular: `--cpu-shares` is rejected), `--cpu-quota`, `--cpu-period`,
//!   `--cpuset-cpus`, `--cpuset-mems`, `--blkio-weight`; `-r FILE` / `-r -`
//!   read LinuxResources JSON and ignore the other flags.
//! - `exec --cgroup PATH` (runc 1.2, not in 1.1.5) puts the process in an
//!   existing sub-cgroup of the container's in every hierarchy;
//!   `--cgroup CONTROLLER:PATH` in that v1 controller's only; `..` is refused.

mod common;

use common::*;
use serde_json::{json, Value};
use std::fs;
use std::ops::{Deref, DerefMut};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

const T: Duration = Duration::from_secs(10);
const MIB: u64 = 1024 * 1024;

// ---------------------------------------------------------------------------
// Cgroup layout
// ---------------------------------------------------------------------------

/// True on a pure cgroup v2 host.
fn is_v2() -> bool {
    Path::new("/sys/fs/cgroup/cgroup.controllers").exists()
}

/// The cgroup v1 or v2 form of the same thing (a file name, a controller),
/// for this host.
fn v1_or_v2<T>(v1: T, v2: T) -> T {
    if is_v2() {
        v2
    } else {
        v1
    }
}

/// One cgroup hierarchy mounted on the host: (mount point, mount root,
/// superblock options, is cgroup2).
struct Mount {
    point: PathBuf,
    root: String,
    opts: Vec<String>,
    v2: bool,
}

fn cgroup_mounts() -> Vec<Mount> {
    let info = fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let mut out = Vec::new();
    for line in info.lines() {
        let Some((left, right)) = line.split_once(" - ") else {
            continue;
        };
        let l: Vec<&str> = left.split(' ').collect();
        let r: Vec<&str> = right.split(' ').collect();
        if l.len() < 5 || r.len() < 3 || !(r[0] == "cgroup" || r[0] == "cgroup2") {
            continue;
        }
        out.push(Mount {
            point: PathBuf::from(unescape_mountinfo(l[4])),
            root: unescape_mountinfo(l[3]),
            opts: r[2].split(',').map(str::to_string).collect(),
            v2: r[0] == "cgroup2",
        });
    }
    out
}

/// `/proc/<pid>/cgroup` as (hierarchy id, controllers, path) triples.
fn proc_cgroups(pid: &str) -> Vec<(String, String, String)> {
    let text = fs::read_to_string(format!("/proc/{pid}/cgroup"))
        .unwrap_or_else(|e| panic!("read /proc/{pid}/cgroup: {e}"));
    text.lines()
        .filter_map(|l| {
            let mut it = l.splitn(3, ':');
            Some((
                it.next()?.to_string(),
                it.next()?.to_string(),
                it.next()?.to_string(),
            ))
        })
        .collect()
}

/// The host directory of the hierarchy described by a `/proc/<pid>/cgroup`
/// line (controllers field, e.g. `memory`, `cpu,cpuacct`, `name=systemd`, or
/// empty for cgroup2) holding cgroup `path`.
fn dir_for_line(controllers: &str, path: &str) -> Option<PathBuf> {
    let mounts = cgroup_mounts();
    let m = if controllers.is_empty() {
        mounts.iter().find(|m| m.v2)?
    } else {
        let want: Vec<&str> = controllers.split(',').collect();
        mounts
            .iter()
            .find(|m| !m.v2 && want.iter().all(|c| m.opts.iter().any(|o| o == c)))?
    };
    let rel = if m.root != "/" {
        path.strip_prefix(m.root.as_str()).unwrap_or(path)
    } else {
        path
    };
    Some(m.point.join(rel.trim_start_matches('/')))
}

/// The directory of process `pid`'s cgroup for `controller` (ignored on v2;
/// `"unified"` names the cgroup2 hierarchy of a hybrid host).
fn cgroup_dir_of(pid: &str, controller: &str) -> PathBuf {
    let lines = proc_cgroups(pid);
    let line = if is_v2() || controller == "unified" {
        lines.iter().find(|(h, c, _)| h == "0" && c.is_empty())
    } else {
        lines
            .iter()
            .find(|(_, c, _)| c.split(',').any(|x| x == controller))
    };
    let (_, c, p) = line.unwrap_or_else(|| {
        panic!("process {pid} has no {controller} cgroup: {lines:?}");
    });
    dir_for_line(c, p)
        .unwrap_or_else(|| panic!("no mount for cgroup hierarchy {c:?} (process {pid})"))
}

fn cgroup_dir(pid: i32, controller: &str) -> PathBuf {
    cgroup_dir_of(&pid.to_string(), controller)
}

/// The trimmed content of `file` in process `pid`'s `controller` cgroup, if
/// the file exists.
fn cgroup_file_opt(pid: i32, controller: &str, file: &str) -> Option<String> {
    fs::read_to_string(cgroup_dir(pid, controller).join(file))
        .ok()
        .map(|s| s.trim().to_string())
}

/// The trimmed content of `file` in process `pid`'s `controller` cgroup.
fn cgroup_file(pid: i32, controller: &str, file: &str) -> String {
    let p = cgroup_dir(pid, controller).join(file);
    fs::read_to_string(&p)
        .unwrap_or_else(|e| panic!("read {}: {e}", p.display()))
        .trim()
        .to_string()
}

/// The number in a v2 weight file (`io.weight`, `io.bfq.weight`), which reads
/// `default N` (plus per-device lines), or in a plain v1 file.
fn weight_value(text: &str) -> u64 {
    let first = text.lines().next().unwrap_or("").trim();
    let v = first.strip_prefix("default ").unwrap_or(first);
    v.trim()
        .parse()
        .unwrap_or_else(|_| panic!("not a weight: {text:?}"))
}

fn num(text: &str) -> u64 {
    text.trim()
        .parse()
        .unwrap_or_else(|_| panic!("not a number: {text:?}"))
}

/// runc's cpu shares → cgroup v2 cpu.weight conversion.
fn shares_to_weight(shares: u64) -> u64 {
    1 + ((shares - 2) * 9999) / 262142
}

/// runc's blkio weight → cgroup v2 io.weight conversion.
fn blkio_to_io_weight(w: u64) -> u64 {
    1 + ((w - 10) * 9999) / 990
}

/// The pids in a container's cgroup (the pids controller on v1).
fn cgroup_procs(pid: i32) -> Vec<i32> {
    let mut v: Vec<i32> = cgroup_file(pid, "pids", "cgroup.procs")
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect();
    v.sort();
    v
}

/// Every cgroup directory (up to depth 5) whose name contains `name`.
fn cgroup_dirs_containing(name: &str) -> Vec<PathBuf> {
    fn walk(dir: &Path, name: &str, depth: usize, found: &mut Vec<PathBuf>) {
        if depth > 5 {
            return;
        }
        let Ok(rd) = fs::read_dir(dir) else { return };
        for e in rd.flatten() {
            let Ok(ft) = e.file_type() else { continue };
            if !ft.is_dir() || ft.is_symlink() {
                continue;
            }
            if e.file_name().to_string_lossy().contains(name) {
                found.push(e.path());
            }
            walk(&e.path(), name, depth + 1, found);
        }
    }
    let mut found = Vec::new();
    walk(Path::new("/sys/fs/cgroup"), name, 0, &mut found);
    found
}

// ---------------------------------------------------------------------------
// Per-test environment with a cgroup named `rrun-test-<id>`
// ---------------------------------------------------------------------------

/// Thaws, kills and removes every cgroup whose name contains `name` when
/// dropped: a safety net for a runtime (or a failed test) that leaves a
/// paused container or its cgroups behind.
struct CgGuard {
    name: String,
}

impl Drop for CgGuard {
    fn drop(&mut self) {
        let mut dirs = cgroup_dirs_containing(&self.name);
        if dirs.is_empty() {
            return;
        }
        for d in &dirs {
            let _ = fs::write(d.join("freezer.state"), "THAWED");
            let _ = fs::write(d.join("cgroup.freeze"), "0");
        }
        let pids = || -> Vec<i32> {
            dirs.iter()
                .filter_map(|d| fs::read_to_string(d.join("cgroup.procs")).ok())
                .flat_map(|s| {
                    s.lines()
                        .filter_map(|l| l.trim().parse::<i32>().ok())
                        .collect::<Vec<_>>()
                })
                .collect()
        };
        for p in pids() {
            unsafe {
                libc::kill(p, libc::SIGKILL);
            }
        }
        wait_for(Duration::from_secs(3), || pids().is_empty());
        dirs.sort_by_key(|d| std::cmp::Reverse(d.as_os_str().len()));
        for d in &dirs {
            let _ = fs::remove_dir(d);
        }
    }
}

/// A [`TestEnv`] whose config puts the container in the absolute cgroup
/// `/rrun-test-<id>`. The env drops (force-deleting containers) before the
/// guard.
struct CgEnv {
    env: TestEnv,
    guard: CgGuard,
}

impl Deref for CgEnv {
    type Target = TestEnv;
    fn deref(&self) -> &TestEnv {
        &self.env
    }
}

impl DerefMut for CgEnv {
    fn deref_mut(&mut self) -> &mut TestEnv {
        &mut self.env
    }
}

impl CgEnv {
    fn new(name: &str) -> CgEnv {
        let guard = CgGuard {
            name: format!("rrun-test-{}", unique_id(name)),
        };
        let mut env = TestEnv::new(name);
        // With the systemd driver: the scope `rrun-test-<id>.scope`, whose
        // directory name contains the guard's.
        let path = if systemd_driver() {
            format!("system.slice:rrun-test:{}", unique_id(name))
        } else {
            format!("/{}", guard.name)
        };
        env.bundle.edit(|c| c["linux"]["cgroupsPath"] = json!(path));
        CgEnv { env, guard }
    }

    /// The cgroup name (`rrun-test-<id>`, the last component of the path).
    fn cg_name(&self) -> &str {
        &self.guard.name
    }

    /// Set `linux.resources.<key>` (keeping the device rules).
    fn set_resource(&mut self, key: &str, value: Value) {
        self.env
            .bundle
            .edit(|c| c["linux"]["resources"][key] = value);
    }

    /// `create`, asserting success; the init pid from `state`.
    fn create_pid(&self) -> i32 {
        self.env.create();
        self.env.rt.pid(self.env.id())
    }

    /// `run -d` with `script`, waiting for it to create /ready; the init pid.
    fn start_script(&mut self, script: &str) -> i32 {
        self.env.bundle.set_script(script);
        let out = self.env.rt.cmd(&[
            "run",
            "-d",
            "--bundle",
            self.env.bundle.path_str(),
            &self.env.id,
        ]);
        assert!(
            out.status.success(),
            "detached run failed: {}",
            describe(&out)
        );
        let ready = self.env.bundle.rootfs().join("ready");
        assert!(
            wait_for(T, || ready.exists()),
            "container never created /ready"
        );
        self.env.rt.pid(self.env.id())
    }

    /// No state, mounts or processes left, and no cgroup dir named after
    /// the container anywhere under /sys/fs/cgroup.
    /// `delete --force` the container, then [`CgEnv::assert_all_gone`].
    fn delete_force_all_gone(&self) {
        self.rt.run_ok(&["delete", "--force", self.id()]);
        self.assert_all_gone();
    }

    fn assert_all_gone(&self) {
        self.env.assert_nothing_left();
        let mut left = Vec::new();
        wait_for(Duration::from_secs(3), || {
            left = cgroup_dirs_containing(self.cg_name());
            left.is_empty()
        });
        assert!(left.is_empty(), "cgroup dirs left behind: {left:?}");
    }
}

/// A script that creates /ready and then sleeps.
const READY_SLEEP: &str = ": > /ready; exec sleep 1000";

fn skip(why: &str) {
    eprintln!("SKIPPED: {why}");
}

// ---------------------------------------------------------------------------
// Placement
// ---------------------------------------------------------------------------

#[test]
fn absolute_cgroups_path_is_used_under_every_hierarchy_and_removed_on_delete() {
    if systemd_driver() {
        return skip("cgroupfs placement: with --systemd-cgroup the cgroupsPath is slice:prefix:name (tests/systemd.rs)");
    }
    let env = CgEnv::new("cg_place_abs");
    let want = format!("/{}", env.cg_name());
    let pid = env.create_pid();
    let lines = proc_cgroups(&pid.to_string());
    let mut dirs = Vec::new();
    for (h, c, p) in &lines {
        assert_eq!(
            p, &want,
            "hierarchy {h}:{c} of init {pid} is not the configured cgroup: {lines:?}"
        );
        let d = dir_for_line(c, p).unwrap_or_else(|| panic!("no mount for hierarchy {c:?}"));
        assert!(d.is_dir(), "{} does not exist", d.display());
        let procs = fs::read_to_string(d.join("cgroup.procs")).unwrap();
        assert!(
            procs.lines().any(|l| l.trim() == pid.to_string()),
            "{} does not list init {pid}: {procs}",
            d.display()
        );
        dirs.push(d);
    }
    env.rt.run_ok(&["delete", "--force", env.id()]);
    for d in &dirs {
        assert!(!d.exists(), "{} still exists after delete", d.display());
    }
    env.assert_all_gone();
}

#[test]
fn relative_cgroups_path_is_under_the_runtimes_own_cgroup() {
    if systemd_driver() {
        return skip("cgroupfs placement: with --systemd-cgroup the cgroupsPath is slice:prefix:name (tests/systemd.rs)");
    }
    let mut env = CgEnv::new("cg_place_rel");
    let rel = env.cg_name().to_string();
    env.bundle.edit(|c| c["linux"]["cgroupsPath"] = json!(rel));
    let pid = env.create_pid();
    // The runtime runs in the test process's cgroups.
    let own = proc_cgroups("self");
    let lines = proc_cgroups(&pid.to_string());
    for (h, c, p) in &lines {
        let (_, _, mine) = own
            .iter()
            .find(|(oh, oc, _)| oh == h && oc == c)
            .unwrap_or_else(|| panic!("test process has no hierarchy {h}:{c}: {own:?}"));
        let want = format!("{}/{rel}", mine.trim_end_matches('/'));
        assert_eq!(
            p, &want,
            "hierarchy {h}:{c}: init {pid} should be in {want}: {lines:?}"
        );
        let d = dir_for_line(c, p).unwrap();
        assert!(d.is_dir(), "{} does not exist", d.display());
    }
    env.delete_force_all_gone();
}

#[test]
fn empty_cgroups_path_gives_a_cgroup_named_after_the_container() {
    if systemd_driver() {
        return skip("cgroupfs placement: with --systemd-cgroup the cgroupsPath is slice:prefix:name (tests/systemd.rs)");
    }
    let mut env = CgEnv::new("cg_place_empty");
    env.bundle.edit(|c| {
        c["linux"].as_object_mut().unwrap().remove("cgroupsPath");
    });
    let pid = env.create_pid();
    let lines = proc_cgroups(&pid.to_string());
    let suffix = format!("/{}", env.id());
    let mut dirs = Vec::new();
    for (h, c, p) in &lines {
        assert!(
            p.ends_with(&suffix),
            "hierarchy {h}:{c}: cgroup {p} of init {pid} is not named after {}: {lines:?}",
            env.id()
        );
        let d = dir_for_line(c, p).unwrap();
        assert!(d.is_dir(), "{} does not exist", d.display());
        dirs.push(d);
    }
    env.rt.run_ok(&["delete", "--force", env.id()]);
    for d in &dirs {
        assert!(!d.exists(), "{} still exists after delete", d.display());
    }
    env.assert_all_gone();
}

#[test]
fn cgroups_path_with_dotdot_never_escapes() {
    let mut env = CgEnv::new("cg_place_dotdot");
    let name = env.cg_name().to_string();
    let path = format!("../../{name}");
    env.bundle.edit(|c| c["linux"]["cgroupsPath"] = json!(path));
    let out = env.try_create(&[]);
    if out.status.success() && is_reference_runtime() {
        // runc cleans the path lexically: `../../x` is `x` under its own
        // cgroup, never above it.
        let pid = env.rt.pid(env.id());
        let own = proc_cgroups("self");
        for (h, c, p) in proc_cgroups(&pid.to_string()) {
            assert!(!p.contains(".."), "unclean cgroup path {p}");
            let (_, _, mine) = own.iter().find(|(oh, _, _)| *oh == h).unwrap();
            assert_eq!(
                p,
                format!("{}/{name}", mine.trim_end_matches('/')),
                "hierarchy {h}:{c}"
            );
        }
        eprintln!("reference runtime accepted {path:?} and confined it");
        env.rt.run_ok(&["delete", "--force", env.id()]);
    } else {
        assert_error(&out, &["cgroupsPath", "linux.cgroupsPath"]);
    }
    env.assert_all_gone();

    // An absolute path that climbs above the root.
    let path = format!("/{name}/../../{name}-up");
    env.bundle.edit(|c| c["linux"]["cgroupsPath"] = json!(path));
    let out = env.try_create(&[]);
    if out.status.success() && is_reference_runtime() {
        let pid = env.rt.pid(env.id());
        for (h, c, p) in proc_cgroups(&pid.to_string()) {
            assert_eq!(p, format!("/{name}-up"), "hierarchy {h}:{c}");
        }
        env.rt.run_ok(&["delete", "--force", env.id()]);
    } else {
        assert_error(&out, &["cgroupsPath", "linux.cgroupsPath"]);
    }
    env.assert_all_gone();
}

// ---------------------------------------------------------------------------
// Resources read back from the kernel
// ---------------------------------------------------------------------------

#[test]
fn memory_limit_is_set_and_visible_inside() {
    let mut env = CgEnv::new("cg_mem_limit");
    let limit = 96 * MIB;
    env.set_resource("memory", json!({ "limit": limit }));
    env.bundle.set_script(
        "if [ -e /sys/fs/cgroup/cgroup.controllers ]; then \
           p=$(sed -n 's/^0:://p' /proc/self/cgroup); { cat /sys/fs/cgroup$p/memory.max 2>/dev/null || cat /sys/fs/cgroup/memory.max; }; \
         else cat /sys/fs/cgroup/memory/memory.limit_in_bytes; fi > /out",
    );
    let pid = env.create_pid();
    let host = cgroup_file(
        pid,
        "memory",
        v1_or_v2("memory.limit_in_bytes", "memory.max"),
    );
    assert_eq!(num(&host), limit, "host view of the memory limit");
    env.rt.start(env.id());
    let inside =
        wait_for_file(&env.bundle.rootfs().join("out"), T).expect("container never wrote /out");
    assert_eq!(num(&inside), limit, "container's view of its memory limit");
    env.rt.wait_status(env.id(), "stopped", T);
    env.rt.run_ok(&["delete", env.id()]);
    env.assert_all_gone();
}

#[test]
fn memory_reservation_sets_the_soft_limit() {
    let mut env = CgEnv::new("cg_mem_resv");
    env.set_resource(
        "memory",
        json!({ "limit": 128 * MIB, "reservation": 48 * MIB }),
    );
    let pid = env.create_pid();
    let v = cgroup_file(
        pid,
        "memory",
        v1_or_v2("memory.soft_limit_in_bytes", "memory.low"),
    );
    assert_eq!(num(&v), 48 * MIB);
}

/// runc leaves swap alone unless `memory.swap` is given: a limit alone does
/// not also cap memory+swap.
#[test]
fn memory_limit_without_swap_leaves_swap_unlimited() {
    let mut env = CgEnv::new("cg_mem_noswap");
    env.set_resource("memory", json!({ "limit": 64 * MIB }));
    let file = v1_or_v2("memory.memsw.limit_in_bytes", "memory.swap.max");
    let pid = env.create_pid();
    let Some(v) = cgroup_file_opt(pid, "memory", file) else {
        return skip(&format!("{file} does not exist (no swap accounting)"));
    };
    if is_v2() {
        assert_eq!(v, "max", "{file}");
    } else {
        // "Unlimited" is the largest page-aligned value.
        assert!(num(&v) > (1u64 << 62), "{file} = {v}, not unlimited");
    }
}

#[test]
fn memory_swap_sets_the_memory_plus_swap_limit() {
    let mut env = CgEnv::new("cg_mem_swap");
    env.set_resource("memory", json!({ "limit": 64 * MIB, "swap": 160 * MIB }));
    let file = v1_or_v2("memory.memsw.limit_in_bytes", "memory.swap.max");
    let pid = env.create_pid();
    if cgroup_file_opt(pid, "memory", file).is_none() {
        return skip(&format!("{file} does not exist (no swap accounting)"));
    }
    let v = num(&cgroup_file(pid, "memory", file));
    if is_v2() {
        // v2 limits swap alone: swap.max = (memory+swap) - memory.
        assert_eq!(v, 96 * MIB, "memory.swap.max");
    } else {
        assert_eq!(v, 160 * MIB, "memory.memsw.limit_in_bytes");
    }
    let limit = cgroup_file(
        pid,
        "memory",
        v1_or_v2("memory.limit_in_bytes", "memory.max"),
    );
    assert_eq!(num(&limit), 64 * MIB);
}

#[test]
fn memory_swappiness_is_set_on_v1() {
    if is_v2() {
        return skip("memory.swappiness exists only in cgroup v1");
    }
    let mut env = CgEnv::new("cg_mem_swappiness");
    env.set_resource("memory", json!({ "limit": 128 * MIB, "swappiness": 7 }));
    let pid = env.create_pid();
    assert_eq!(cgroup_file(pid, "memory", "memory.swappiness"), "7");
}

#[test]
fn disable_oom_killer_sets_oom_kill_disable_on_v1() {
    if is_v2() {
        return skip("memory.oom_control exists only in cgroup v1");
    }
    let mut env = CgEnv::new("cg_mem_nooom");
    env.set_resource(
        "memory",
        json!({ "limit": 128 * MIB, "disableOOMKiller": true }),
    );
    let pid = env.create_pid();
    let oc = cgroup_file(pid, "memory", "memory.oom_control");
    assert!(
        oc.lines().any(|l| l.trim() == "oom_kill_disable 1"),
        "memory.oom_control: {oc}"
    );
}

#[test]
fn cpu_shares_set_cpu_weight() {
    let mut env = CgEnv::new("cg_cpu_shares");
    env.set_resource("cpu", json!({ "shares": 512 }));
    let pid = env.create_pid();
    if is_v2() {
        let w = num(&cgroup_file(pid, "cpu", "cpu.weight"));
        assert_eq!(w, shares_to_weight(512), "cpu.weight for 512 shares");
    } else {
        assert_eq!(cgroup_file(pid, "cpu", "cpu.shares"), "512");
    }
}

#[test]
fn cpu_quota_and_period_are_set() {
    let mut env = CgEnv::new("cg_cpu_quota");
    env.set_resource("cpu", json!({ "quota": 30000, "period": 60000 }));
    let pid = env.create_pid();
    if is_v2() {
        assert_eq!(cgroup_file(pid, "cpu", "cpu.max"), "30000 60000");
    } else {
        assert_eq!(cgroup_file(pid, "cpu", "cpu.cfs_quota_us"), "30000");
        assert_eq!(cgroup_file(pid, "cpu", "cpu.cfs_period_us"), "60000");
    }
}

#[test]
fn cpuset_cpus_and_mems_are_set_and_confine_the_container() {
    let mut env = CgEnv::new("cg_cpuset");
    env.set_resource("cpu", json!({ "cpus": "0", "mems": "0" }));
    env.bundle
        .set_script("grep Cpus_allowed_list /proc/self/status > /out");
    let pid = env.create_pid();
    assert_eq!(cgroup_file(pid, "cpuset", "cpuset.cpus"), "0");
    // v2 shows cpuset.mems too when the cpuset controller is enabled.
    if let Some(m) = cgroup_file_opt(pid, "cpuset", "cpuset.mems") {
        assert_eq!(m, "0", "cpuset.mems");
    } else {
        assert!(is_v2(), "v1 cpuset cgroup without cpuset.mems");
    }
    env.rt.start(env.id());
    let out = wait_for_file(&env.bundle.rootfs().join("out"), T).expect("no /out");
    assert_eq!(
        out.split_whitespace().last(),
        Some("0"),
        "container may run on other cpus: {out}"
    );
}

/// A v1 cpuset parent that already exists but has no cpus or mems (made by
/// an engine, or by another runtime a moment ago that has not filled it
/// yet) is filled from its parent, as runc does: otherwise the container's
/// cpuset inherits nothing and the kernel refuses its process (ENOSPC).
#[test]
fn existing_empty_v1_cpuset_parent_is_filled_before_the_container_joins() {
    if systemd_driver() {
        return skip("cgroupfs placement: with --systemd-cgroup the cgroupsPath is slice:prefix:name (tests/systemd.rs)");
    }
    let Some(m) = cgroup_mounts()
        .into_iter()
        .find(|m| !m.v2 && m.root == "/" && m.opts.iter().any(|o| o == "cpuset"))
    else {
        return skip("no v1 cpuset hierarchy");
    };
    let mut env = CgEnv::new("cg_cpuset_parent");
    let parent = m.point.join(env.cg_name());
    fs::create_dir(&parent).unwrap();
    assert_eq!(
        fs::read_to_string(parent.join("cpuset.cpus"))
            .unwrap()
            .trim(),
        "",
        "a new cpuset is expected to start empty"
    );
    let path = format!("/{}/inner", env.cg_name());
    env.bundle.edit(|c| c["linux"]["cgroupsPath"] = json!(path));
    let pid = env.create_pid();
    let root_cpus = fs::read_to_string(m.point.join("cpuset.cpus")).unwrap();
    let root_mems = fs::read_to_string(m.point.join("cpuset.mems")).unwrap();
    for (dir, what) in [
        (parent.clone(), "parent"),
        (cgroup_dir(pid, "cpuset"), "container"),
    ] {
        assert_eq!(
            fs::read_to_string(dir.join("cpuset.cpus")).unwrap().trim(),
            root_cpus.trim(),
            "{what} {}: cpuset.cpus",
            dir.display()
        );
        assert_eq!(
            fs::read_to_string(dir.join("cpuset.mems")).unwrap().trim(),
            root_mems.trim(),
            "{what} {}: cpuset.mems",
            dir.display()
        );
    }
    env.rt.run_ok(&["delete", "--force", env.id()]);
    assert!(
        parent.is_dir(),
        "delete removed a parent cgroup the runtime did not create"
    );
}

/// A `cgroupsPath` naming a cgroup that already exists in every hierarchy
/// (made by an engine, say) puts the container there, and `delete` leaves
/// the directories: the runtime removes only what it made. create does not
/// look the container's own directory up before making it (see
/// `cgroups::plan`), so this checks that it still tells the two apart.
#[test]
fn existing_cgroup_named_by_cgroups_path_is_used_and_left_after_delete() {
    if systemd_driver() {
        return skip("cgroupfs placement: with --systemd-cgroup the cgroupsPath is slice:prefix:name (tests/systemd.rs)");
    }
    let env = CgEnv::new("cg_existing_leaf");
    let v2 = is_v2();
    let made: Vec<PathBuf> = cgroup_mounts()
        .into_iter()
        .filter(|m| m.root == "/" && m.v2 == v2)
        .map(|m| {
            let d = m.point.join(env.cg_name());
            fs::create_dir(&d).unwrap_or_else(|e| panic!("mkdir {}: {e}", d.display()));
            for f in ["cpuset.cpus", "cpuset.mems"] {
                if let Ok(v) = fs::read_to_string(m.point.join(f)) {
                    if !v.trim().is_empty() && !v2 {
                        fs::write(d.join(f), v.trim()).unwrap();
                    }
                }
            }
            d
        })
        .collect();
    assert!(!made.is_empty(), "no cgroup hierarchy mounted at its root");
    let pid = env.create_pid();
    let controller = if v2 { "unified" } else { "pids" };
    assert_eq!(
        cgroup_dir(pid, controller).file_name().unwrap(),
        env.cg_name(),
        "the container is not in the existing cgroup"
    );
    env.rt.run_ok(&["delete", "--force", env.id()]);
    for d in &made {
        assert!(
            d.is_dir(),
            "delete removed {}, which existed before create",
            d.display()
        );
    }
}

#[test]
fn pids_limit_sets_pids_max() {
    let mut env = CgEnv::new("cg_pids");
    env.set_resource("pids", json!({ "limit": 42 }));
    let pid = env.create_pid();
    assert_eq!(cgroup_file(pid, "pids", "pids.max"), "42");
}

/// The weight file a new cgroup of this host's block I/O hierarchy gets
/// (`blkio.weight` or `blkio.bfq.weight` on v1, `io.weight` or
/// `io.bfq.weight` on v2), found with a probe cgroup the test makes and
/// removes. None when the I/O scheduler supports no weight (mq-deadline
/// and none have none), so a config asking for one is refused.
fn block_io_weight_file() -> Option<&'static str> {
    // Probed once per test process: two tests probing the same directory
    // at once saw EEXIST and each a different answer.
    static FOUND: std::sync::OnceLock<Option<&'static str>> = std::sync::OnceLock::new();
    *FOUND.get_or_init(|| {
        let mount = PathBuf::from(v1_or_v2("/sys/fs/cgroup/blkio", "/sys/fs/cgroup"));
        let probe = mount.join(format!("rrun-test-probe-{}", std::process::id()));
        fs::create_dir(&probe).ok()?;
        let names: [&'static str; 2] = v1_or_v2(
            ["blkio.bfq.weight", "blkio.weight"],
            ["io.bfq.weight", "io.weight"],
        );
        let found = names.into_iter().find(|n| probe.join(n).exists());
        let _ = fs::remove_dir(&probe);
        found
    })
}

#[test]
fn blkio_weight_is_set() {
    let Some(file) = block_io_weight_file() else {
        return skip(
            "no block I/O weight file (the disks' I/O scheduler has no weights, e.g. mq-deadline)",
        );
    };
    let mut env = CgEnv::new("cg_blkio");
    env.set_resource("blockIO", json!({ "weight": 300 }));
    let out = env.try_create(&[]);
    assert!(out.status.success(), "create failed: {}", describe(&out));
    let pid = env.rt.pid(env.id());
    let controller = v1_or_v2("blkio", "io");
    let dir = cgroup_dir(pid, controller);
    let want = if file == "io.weight" {
        blkio_to_io_weight(300)
    } else {
        300
    };
    let text = fs::read_to_string(dir.join(file))
        .unwrap_or_else(|e| panic!("{}: {e}", dir.join(file).display()));
    assert_eq!(weight_value(&text), want, "{file}: {text}");
}

#[test]
fn blkio_weight_without_weight_support_is_refused_with_the_field() {
    if block_io_weight_file().is_some() {
        return skip("this host's I/O scheduler supports weights");
    }
    let mut env = CgEnv::new("cg_blkio_none");
    env.set_resource("blockIO", json!({ "weight": 300 }));
    let out = env.try_create(&[]);
    assert_error(&out, &["blockIO", "weight", "blkio.weight", "io.weight"]);
    env.assert_nothing_left();
}

/// On cgroup v1 the device lists change one rule at a time, the first
/// being `deny a`, so they must be complete before the container's first
/// process makes its device nodes (a v2 program is attached whole and may
/// come later, see `MadeCgroups::apply_devices`). Holding rrun's open of
/// `devices.allow` for a second (strace's fault injection, rrun's own
/// process only) leaves everything denied for that second: `create` must
/// still succeed.
#[test]
fn v1_device_rules_are_complete_before_the_container_makes_its_nodes() {
    if is_v2() {
        return skip("cgroup v1 only: a v2 device program is attached whole");
    }
    if systemd_driver() {
        return skip("cgroupfs paths: with --systemd-cgroup the cgroupsPath is slice:prefix:name");
    }
    let mut env = CgEnv::new("cg_devices_window");
    env.set_resource("devices", json!([{ "allow": false, "access": "rwm" }]));
    // The path as rrun opens it, relative to /sys/fs/cgroup.
    let held = format!("devices/{}/devices.allow", env.cg_name());
    let rt = env
        .rt
        .command(&["create", "--bundle", env.bundle.path_str(), &env.id]);
    let inject = ["-P", &held, "-e", "inject=openat:delay_enter=1000000"];
    let Some(traced) = under_strace(&inject, rt) else {
        return;
    };
    let (mut child, stderr) = spawn_with_stderr_file(traced, env.dir.path());
    let st = child.wait().unwrap();
    assert!(
        st.success(),
        "create with the device rules held half-written: {st}: {}",
        stderr()
    );
    assert_eq!(env.rt.status(&env.id), "created");
    env.delete_force_all_gone();
}

/// /dev/kmsg is not in runc's always-allowed device set, so the config's
/// rules decide: opening it for writing (and writing nothing, so nothing is logged) fails
/// with EPERM from the device cgroup unless a rule allows c 1:11.
#[test]
fn device_rules_deny_unlisted_devices_and_allow_listed_ones() {
    let mut env = CgEnv::new("cg_devices");
    env.bundle.edit(|c| {
        c["linux"]["devices"] = json!([{
            "path": "/dev/kmsg", "type": "c", "major": 1, "minor": 11,
            "fileMode": 438, "uid": 0, "gid": 0
        }]);
        c["linux"]["resources"]["devices"] = json!([
            { "allow": false, "access": "rwm" },
            { "allow": true, "type": "c", "major": 1, "minor": 3, "access": "rwm" }
        ]);
    });
    let script = "ls -l /dev/kmsg; \
        if (true > /dev/kmsg); then echo kmsg=ok; fi; \
        if echo x > /dev/null; then echo null=ok; fi; \
        if [ -e /sys/fs/cgroup/devices/devices.list ]; then \
          sed 's/^/list=/' /sys/fs/cgroup/devices/devices.list; fi";
    env.bundle.set_script(script);
    let out = env.run(&[]);
    let (so, se) = (stdout(&out), stderr(&out));
    assert_eq!(exit_code(&out), 0, "{}", describe(&out));
    assert!(
        so.contains("1,  11") || so.contains("1, 11"),
        "no /dev/kmsg node: {so}"
    );
    assert!(
        !so.contains("kmsg=ok"),
        "denied device could be opened: {so}"
    );
    assert!(
        se.contains("Operation not permitted"),
        "open of a denied device should fail with EPERM: {}",
        describe(&out)
    );
    assert!(
        so.contains("null=ok"),
        "/dev/null not writable: {}",
        describe(&out)
    );
    if !is_v2() {
        let list: Vec<&str> = so.lines().filter_map(|l| l.strip_prefix("list=")).collect();
        assert!(!list.is_empty(), "no devices.list inside: {so}");
        assert!(list.contains(&"c 1:3 rwm"), "devices.list: {list:?}");
        assert!(
            !list.contains(&"a *:* rwm"),
            "devices.list allows all: {list:?}"
        );
        assert!(
            !list.iter().any(|l| l.starts_with("c 1:11")),
            "devices.list: {list:?}"
        );
    }
    env.assert_all_gone();

    env.bundle.edit(|c| {
        c["linux"]["resources"]["devices"]
            .as_array_mut()
            .unwrap()
            .push(json!({ "allow": true, "type": "c", "major": 1, "minor": 11, "access": "w" }))
    });
    let out = env.run(&[]);
    let so = stdout(&out);
    assert_eq!(exit_code(&out), 0, "{}", describe(&out));
    assert!(
        so.contains("kmsg=ok"),
        "allowed device could not be opened: {}",
        describe(&out)
    );
    if !is_v2() {
        assert!(
            so.lines().any(|l| l == "list=c 1:11 w"),
            "devices.list: {so}"
        );
    }
    env.assert_all_gone();
}

// ---------------------------------------------------------------------------
// Controllers not every host has: hugetlb, rdma, net_cls, net_prio
// ---------------------------------------------------------------------------
//
// Their tests are named `optional_controller_*` (the v1 VM pass selects
// them by that word). Each skips, saying why, when the host lacks the
// controller (or an RDMA device), unless $RRUN_TEST_REQUIRE_CONTROLLERS
// names it: the VM runs (tests/vm/init2) set that, so there a missing
// controller fails the test instead of skipping it.

/// Why `controller` cannot be tested here, or None when it can: on v1 a
/// hierarchy with it must be mounted, on v2 the root must offer it.
fn controller_missing(controller: &str) -> Option<String> {
    if is_v2() {
        let c = fs::read_to_string("/sys/fs/cgroup/cgroup.controllers").unwrap_or_default();
        if c.split_whitespace().any(|x| x == controller) {
            return None;
        }
        return Some(format!(
            "cgroup v2 offers no {controller} controller ({c:?})"
        ));
    }
    if cgroup_mounts()
        .iter()
        .any(|m| !m.v2 && m.opts.iter().any(|o| o == controller))
    {
        return None;
    }
    Some(format!(
        "no cgroup v1 hierarchy with {controller} is mounted"
    ))
}

/// Skips the test, unless $RRUN_TEST_REQUIRE_CONTROLLERS (space or comma
/// separated) names `controller`: then it fails.
fn skip_unless_required(controller: &str, why: &str) {
    let required = std::env::var("RRUN_TEST_REQUIRE_CONTROLLERS").unwrap_or_default();
    assert!(
        !required.split([' ', ',']).any(|c| c == controller),
        "{controller} is required here (RRUN_TEST_REQUIRE_CONTROLLERS={required:?}) but {why}"
    );
    skip(why);
}

#[test]
fn optional_controller_hugepage_limit_is_set() {
    if let Some(why) = controller_missing("hugetlb") {
        return skip_unless_required("hugetlb", &why);
    }
    if !Path::new("/sys/kernel/mm/hugepages/hugepages-2048kB").exists() {
        return skip_unless_required("hugetlb", "the kernel has no 2 MiB huge pages");
    }
    let mut env = CgEnv::new("cg_hugetlb");
    env.set_resource(
        "hugepageLimits",
        json!([{ "pageSize": "2MB", "limit": 8 * MIB }]),
    );
    let pid = env.create_pid();
    let file = v1_or_v2("hugetlb.2MB.limit_in_bytes", "hugetlb.2MB.max");
    assert_eq!(num(&cgroup_file(pid, "hugetlb", file)), 8 * MIB, "{file}");
    env.delete_force_all_gone();
}

/// The first RDMA device of the host (`siw0` in the VM).
fn rdma_device() -> Option<String> {
    let mut names: Vec<String> = fs::read_dir("/sys/class/infiniband")
        .ok()?
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names.into_iter().next()
}

#[test]
fn optional_controller_rdma_limits_are_set() {
    if let Some(why) = controller_missing("rdma") {
        return skip_unless_required("rdma", &why);
    }
    // rdma.max takes limits only for a device that exists.
    let Some(dev) = rdma_device() else {
        return skip_unless_required("rdma", "the host has no RDMA device");
    };
    let mut env = CgEnv::new("cg_rdma");
    env.set_resource(
        "rdma",
        json!({ dev.as_str(): { "hcaHandles": 3, "hcaObjects": 100 } }),
    );
    let pid = env.create_pid();
    let max = cgroup_file(pid, "rdma", "rdma.max");
    assert!(
        max.lines()
            .any(|l| l.trim() == format!("{dev} hca_handle=3 hca_object=100")),
        "rdma.max: {max:?}"
    );
    env.delete_force_all_gone();

    // A limit on handles alone leaves objects unlimited.
    env.set_resource("rdma", json!({ dev.as_str(): { "hcaHandles": 5 } }));
    let pid = env.create_pid();
    let max = cgroup_file(pid, "rdma", "rdma.max");
    assert!(
        max.lines()
            .any(|l| l.trim() == format!("{dev} hca_handle=5 hca_object=max")),
        "rdma.max: {max:?}"
    );
    env.delete_force_all_gone();
}

/// net_cls and net_prio exist only in cgroup v1: on v2 the config is
/// refused, naming the field, and nothing is left.
fn assert_network_refused_on_v2(env: &CgEnv) {
    let out = env.try_create(&[]);
    if out.status.success() && is_reference_runtime() {
        eprintln!("reference runtime accepted linux.resources.network on cgroup v2");
        return env.delete_force_all_gone();
    }
    assert_error(&out, &["linux.resources.network", "net_cls", "net_prio"]);
    env.assert_all_gone();
}

#[test]
fn optional_controller_net_cls_classid_is_set() {
    let mut env = CgEnv::new("cg_net_cls");
    env.set_resource("network", json!({ "classID": 0x0010_0001 }));
    if is_v2() {
        return assert_network_refused_on_v2(&env);
    }
    if let Some(why) = controller_missing("net_cls") {
        return skip_unless_required("net_cls", &why);
    }
    // Inside, through /sys/fs/cgroup/net_cls: on a host that mounts
    // net_cls,net_prio together that is a link to the combined directory.
    env.bundle
        .set_script("cat /sys/fs/cgroup/net_cls/net_cls.classid > /out");
    let pid = env.create_pid();
    assert_eq!(
        cgroup_file(pid, "net_cls", "net_cls.classid"),
        "1048577",
        "net_cls.classid (0x100001)"
    );
    env.rt.start(env.id());
    let inside =
        wait_for_file(&env.bundle.rootfs().join("out"), T).expect("container never wrote /out");
    assert_eq!(inside.trim(), "1048577", "net_cls.classid seen inside");
    env.rt.wait_status(env.id(), "stopped", T);
    env.rt.run_ok(&["delete", env.id()]);
    env.assert_all_gone();
}

#[test]
fn optional_controller_net_prio_ifpriomap_is_set() {
    let mut env = CgEnv::new("cg_net_prio");
    // The map names interfaces of the host's network namespace.
    env.set_resource(
        "network",
        json!({ "priorities": [{ "name": "lo", "priority": 5 }] }),
    );
    if is_v2() {
        return assert_network_refused_on_v2(&env);
    }
    if let Some(why) = controller_missing("net_prio") {
        return skip_unless_required("net_prio", &why);
    }
    env.bundle
        .set_script("cat /sys/fs/cgroup/net_prio/net_prio.ifpriomap > /out");
    let pid = env.create_pid();
    let map = cgroup_file(pid, "net_prio", "net_prio.ifpriomap");
    assert!(
        map.lines().any(|l| l.trim() == "lo 5"),
        "net_prio.ifpriomap: {map:?}"
    );
    env.rt.start(env.id());
    let inside =
        wait_for_file(&env.bundle.rootfs().join("out"), T).expect("container never wrote /out");
    assert!(
        inside.lines().any(|l| l.trim() == "lo 5"),
        "net_prio.ifpriomap seen inside: {inside:?}"
    );
    env.rt.wait_status(env.id(), "stopped", T);
    env.rt.run_ok(&["delete", env.id()]);
    env.assert_all_gone();
}

// ---------------------------------------------------------------------------
// What the kernel does with the limits
// ---------------------------------------------------------------------------

#[test]
fn memory_hog_is_oom_killed_with_exit_137() {
    let mut env = CgEnv::new("cg_oom");
    // limit == swap: no swap at all.
    env.set_resource("memory", json!({ "limit": 32 * MIB, "swap": 32 * MIB }));
    // Control: 8 MiB of anonymous memory fits.
    env.bundle
        .set_args(&["dd", "if=/dev/zero", "of=/dev/null", "bs=8M", "count=1"]);
    let out = env.run(&[]);
    assert_eq!(exit_code(&out), 0, "small dd failed: {}", describe(&out));
    env.assert_all_gone();

    // dd's 100 MiB buffer is anonymous memory, filled from /dev/zero.
    env.bundle
        .set_args(&["dd", "if=/dev/zero", "of=/dev/null", "bs=100M", "count=1"]);
    let out = env.run(&[]);
    assert_eq!(
        exit_code(&out),
        137,
        "a 100 MiB allocation under a 32 MiB limit should be OOM-killed: {}",
        describe(&out)
    );
    env.assert_all_gone();
}

#[test]
fn fork_bomb_stops_at_pids_limit() {
    let mut env = CgEnv::new("cg_forkbomb");
    env.set_resource("pids", json!({ "limit": 20 }));
    // busybox sh gives up on the first failed fork, hence the subshell;
    // the orphaned sleeps stay in the cgroup.
    let pid = env.start_script(
        ": > /ready; (for i in $(seq 50); do sleep 30 & done) 2>/err; \
         echo done > /done; exec sleep 1000",
    );
    let done = env.bundle.rootfs().join("done");
    assert!(wait_for(T, || done.exists()), "fork loop never finished");
    let current = num(&cgroup_file(pid, "pids", "pids.current"));
    assert!(
        (2..=20).contains(&current),
        "pids.current {current} outside 2..=20"
    );
    assert_eq!(cgroup_file(pid, "pids", "pids.max"), "20");
    let err = env.bundle.read_rootfs_file("err").unwrap_or_default();
    assert!(
        err.contains("can't fork") || err.contains("Resource temporarily unavailable"),
        "no fork failure reported: {err:?}"
    );
    assert!(
        cgroup_procs(pid).len() <= 20,
        "more than 20 processes in the cgroup"
    );
    env.delete_force_all_gone();
}

// ---------------------------------------------------------------------------
// pause / resume
// ---------------------------------------------------------------------------

const COUNTER: &str =
    ": > /ready; i=0; while true; do i=$((i+1)); echo $i > /counter; sleep 0.05; done";

fn freezer_frozen(pid: i32) -> bool {
    if is_v2() {
        cgroup_file(pid, "unified", "cgroup.freeze") == "1"
    } else {
        cgroup_file(pid, "freezer", "freezer.state") == "FROZEN"
    }
}

fn list_status(env: &TestEnv) -> (String, String) {
    let out = env.rt.run_ok(&["list", "--format", "json"]);
    let v: Value = serde_json::from_slice(&out.stdout).expect("list --format json");
    let json_status = v
        .as_array()
        .and_then(|a| a.iter().find(|c| c["id"] == env.id()))
        .map(|c| c["status"].as_str().unwrap_or("").to_string())
        .unwrap_or_default();
    let table = stdout(&env.rt.run_ok(&["list"]));
    let table_status = table
        .lines()
        .find(|l| l.split_whitespace().next() == Some(env.id()))
        .and_then(|l| l.split_whitespace().nth(2))
        .unwrap_or("")
        .to_string();
    (json_status, table_status)
}

#[test]
fn pause_freezes_and_resume_thaws() {
    let mut env = CgEnv::new("cg_pause");
    let pid = env.start_script(COUNTER);
    let counter = env.bundle.rootfs().join("counter");
    let read = || fs::read_to_string(&counter).unwrap_or_default();
    assert!(wait_for(T, || !read().is_empty()), "counter never written");

    env.rt.run_ok(&["pause", env.id()]);
    assert_eq!(env.rt.status(env.id()), "paused");
    assert_eq!(
        list_status(&env),
        ("paused".to_string(), "paused".to_string()),
        "list (json, table)"
    );
    assert!(freezer_frozen(pid), "cgroup is not frozen");
    assert_eq!(env.rt.pid(env.id()), pid);
    let before = read();
    std::thread::sleep(Duration::from_millis(400));
    assert_eq!(read(), before, "a paused container's counter went on");

    env.rt.run_ok(&["resume", env.id()]);
    assert_eq!(env.rt.status(env.id()), "running");
    assert_eq!(
        list_status(&env),
        ("running".to_string(), "running".to_string())
    );
    assert!(!freezer_frozen(pid), "cgroup still frozen after resume");
    assert!(
        wait_for(T, || read() != before),
        "counter did not move after resume"
    );
    env.delete_force_all_gone();
}

#[test]
fn pause_of_a_stopped_container_fails() {
    let env = CgEnv::new("cg_pause_stopped");
    env.create();
    env.rt.start(env.id());
    env.rt.wait_status(env.id(), "stopped", T);
    let out = env.rt.cmd(&["pause", env.id()]);
    assert_error(&out, &["running", "stopped"]);
    assert_eq!(env.rt.status(env.id()), "stopped");
    let out = env.rt.cmd(&["resume", env.id()]);
    assert_error(&out, &["paused", "stopped", "running"]);
    env.rt.run_ok(&["delete", env.id()]);
    env.assert_all_gone();
}

#[test]
fn delete_force_removes_a_paused_container() {
    let mut env = CgEnv::new("cg_pause_delete");
    let pid = env.start_script(READY_SLEEP);
    env.rt.run_ok(&["pause", env.id()]);
    assert_eq!(env.rt.status(env.id()), "paused");
    let out = env.rt.cmd(&["delete", env.id()]);
    assert!(
        !out.status.success(),
        "delete of a paused container without --force should fail: {}",
        describe(&out)
    );
    env.rt.run_ok(&["delete", "--force", env.id()]);
    assert!(wait_for(T, || !process_alive(pid)), "init {pid} survived");
    env.assert_all_gone();
}

// ---------------------------------------------------------------------------
// ps / events --stats
// ---------------------------------------------------------------------------

#[test]
fn ps_lists_the_containers_processes() {
    let mut env = CgEnv::new("cg_ps");
    let pid = env.start_script("sleep 1000 & : > /ready; wait");
    let out = env.rt.run_ok(&["ps", "--format", "json", env.id()]);
    let v: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("ps --format json is not JSON ({e}): {}", describe(&out)));
    let mut pids: Vec<i32> = v
        .as_array()
        .unwrap_or_else(|| panic!("not an array: {v}"))
        .iter()
        .map(|p| p.as_i64().unwrap_or_else(|| panic!("not a pid: {p}")) as i32)
        .collect();
    pids.sort();
    assert!(pids.contains(&pid), "init {pid} missing from {pids:?}");
    assert_eq!(pids, cgroup_procs(pid), "ps vs cgroup.procs");
    assert_eq!(pids.len(), 2, "sh and sleep: {pids:?}");

    let out = env.rt.run_ok(&["ps", env.id()]);
    let table = stdout(&out);
    let mut lines = table.lines();
    let header: Vec<&str> = lines.next().unwrap_or("").split_whitespace().collect();
    let col = header
        .iter()
        .position(|h| *h == "PID")
        .unwrap_or_else(|| panic!("no PID column: {table}"));
    let listed: Vec<&str> = lines
        .filter_map(|l| l.split_whitespace().nth(col))
        .collect();
    assert!(
        listed.contains(&pid.to_string().as_str()),
        "init {pid} not in the PID column: {table}"
    );
    env.delete_force_all_gone();
}

#[test]
fn events_stats_prints_one_stats_object() {
    let mut env = CgEnv::new("cg_events");
    env.set_resource("memory", json!({ "limit": 128 * MIB }));
    env.set_resource("pids", json!({ "limit": 50 }));
    // Burn a little cpu first so the usage is clearly non-zero.
    let pid = env.start_script(
        "i=0; while [ $i -lt 20000 ]; do i=$((i+1)); done; : > /ready; exec sleep 1000",
    );
    let out = env.rt.run_ok(&["events", "--stats", env.id()]);
    let text = stdout(&out);
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(
        lines.len(),
        1,
        "events --stats should print one line: {text}"
    );
    let v: Value =
        serde_json::from_str(lines[0]).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"));
    assert_eq!(v["type"], "stats", "{v}");
    assert_eq!(v["id"], env.id(), "{v}");
    // runc's field order (like `state`, the output is compared verbatim by
    // some tools): type, id, data.
    let prefix = format!("{{\"type\":\"stats\",\"id\":\"{}\",\"data\":", env.id());
    assert!(
        lines[0].starts_with(&prefix),
        "events --stats should start with {prefix}: {text}"
    );
    let d = &v["data"];
    for k in ["cpu", "memory", "pids", "blkio", "hugetlb", "intel_rdt"] {
        assert!(d[k].is_object(), "data.{k} missing: {v}");
    }
    assert!(
        d.get("network_interfaces").is_some(),
        "data.network_interfaces missing (runc prints null): {v}"
    );
    let usage = d["memory"]["usage"]["usage"].as_u64().unwrap_or(0);
    assert!(usage > 0, "data.memory.usage.usage: {v}");
    assert_eq!(
        d["memory"]["usage"]["limit"].as_u64(),
        Some(128 * MIB),
        "data.memory.usage.limit: {v}"
    );
    let current = d["pids"]["current"].as_u64().unwrap_or(0);
    assert!(current >= 1, "data.pids.current: {v}");
    assert_eq!(
        current as usize,
        cgroup_procs(pid).len(),
        "data.pids.current vs cgroup.procs: {v}"
    );
    assert_eq!(
        d["pids"]["limit"].as_u64(),
        Some(50),
        "data.pids.limit: {v}"
    );
    let cpu = d["cpu"]["usage"]["total"].as_u64().unwrap_or(0);
    assert!(cpu > 0, "data.cpu.usage.total: {v}");
    env.delete_force_all_gone();
}

/// The kernel's count of OOM kills in process `pid`'s memory cgroup.
fn oom_kill_count(pid: i32) -> u64 {
    let file = v1_or_v2("memory.oom_control", "memory.events");
    let text = cgroup_file(pid, "memory", file);
    text.lines()
        .find_map(|l| l.strip_prefix("oom_kill "))
        .map(num)
        .unwrap_or_else(|| panic!("no oom_kill in {file}: {text}"))
}

/// The first `events` output line of type `oom`, parsed.
fn oom_event(events: &Spawned) -> Option<Value> {
    events
        .stdout_so_far()
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|v| v["type"] == "oom")
}

fn assert_oom_event(v: &Value, id: &str) {
    assert_eq!(v["id"], id, "oom event of another container: {v}");
    assert!(
        v.get("data").is_none_or(Value::is_null),
        "runc's oom event has no data: {v}"
    );
}

/// A 32 MiB limit (and no swap) that a 64 MiB `dd` buffer exceeds.
fn small_memory(env: &mut CgEnv) {
    env.set_resource("memory", json!({ "limit": 32 * MIB, "swap": 32 * MIB }));
}

#[test]
fn events_streams_oom_when_a_process_hits_the_memory_limit() {
    let mut env = CgEnv::new("cg_events_oom");
    small_memory(&mut env);
    // The shell stays; each dd is killed when its buffer passes the limit.
    let pid = env.start_script(
        ": > /ready; while :; do dd if=/dev/zero of=/dev/null bs=64M count=1 2>/dev/null; \
         sleep 0.2; done",
    );
    let events = env.rt.spawn(&["events", "--interval", "1s", env.id()]);
    let mut oom = None;
    wait_for(Duration::from_secs(30), || {
        oom = oom_event(&events);
        oom.is_some()
    });
    let Some(oom) = oom else {
        panic!(
            "no oom event within 30 s (kernel oom_kill count {}); events printed:\n{}",
            oom_kill_count(pid),
            events.stdout_so_far()
        );
    };
    assert_oom_event(&oom, env.id());
    assert!(oom_kill_count(pid) > 0, "the kernel counted no OOM kill");
    assert_eq!(env.rt.status(env.id()), "running", "init should survive");
    drop(events);
    env.delete_force_all_gone();
}

#[test]
fn events_reports_the_oom_that_kills_the_init() {
    let mut env = CgEnv::new("cg_events_oom_init");
    small_memory(&mut env);
    env.bundle
        .set_args(&["dd", "if=/dev/zero", "of=/dev/null", "bs=100M", "count=1"]);
    env.create();
    let mut events = env.rt.spawn(&["events", "--interval", "1s", env.id()]);
    // The first stats line: events is watching (rrun sets its watches up
    // before it prints anything).
    assert!(
        wait_for(T, || !events.stdout_so_far().trim().is_empty()),
        "events printed nothing"
    );
    env.rt.start(env.id());
    let mut oom = None;
    wait_for(Duration::from_secs(30), || {
        oom = oom_event(&events);
        oom.is_some()
    });
    let Some(oom) = oom else {
        panic!(
            "no oom event within 30 s; events printed:\n{}",
            events.stdout_so_far()
        );
    };
    assert_oom_event(&oom, env.id());
    env.rt.wait_status(env.id(), "stopped", T);
    if !is_reference_runtime() {
        // rrun's events ends with the container's init.
        let out = events.wait_timeout(T);
        assert!(out.status.success(), "events: {}", describe(&out));
    }
    drop(events);
    env.rt.run_ok(&["delete", env.id()]);
    env.assert_all_gone();
}

// ---------------------------------------------------------------------------
// update
// ---------------------------------------------------------------------------

fn memory_limit(pid: i32) -> u64 {
    if is_v2() {
        num(&cgroup_file(pid, "memory", "memory.max"))
    } else {
        num(&cgroup_file(pid, "memory", "memory.limit_in_bytes"))
    }
}

fn cpu_shares_file(pid: i32) -> u64 {
    if is_v2() {
        num(&cgroup_file(pid, "cpu", "cpu.weight"))
    } else {
        num(&cgroup_file(pid, "cpu", "cpu.shares"))
    }
}

fn shares(s: u64) -> u64 {
    if is_v2() {
        shares_to_weight(s)
    } else {
        s
    }
}

/// Writes `resources` as `resources.json` in the env's dir, for
/// `update -r`; returns its path.
fn write_resources(env: &CgEnv, resources: Value) -> PathBuf {
    let f = env.dir.join("resources.json");
    fs::write(&f, resources.to_string()).unwrap();
    f
}

fn start_for_update(name: &str) -> (CgEnv, i32) {
    let mut env = CgEnv::new(name);
    env.set_resource("memory", json!({ "limit": 128 * MIB }));
    env.set_resource("pids", json!({ "limit": 50 }));
    env.set_resource("cpu", json!({ "shares": 1024 }));
    let pid = env.start_script(READY_SLEEP);
    assert_eq!(memory_limit(pid), 128 * MIB);
    assert_eq!(cgroup_file(pid, "pids", "pids.max"), "50");
    assert_eq!(cpu_shares_file(pid), shares(1024));
    (env, pid)
}

#[test]
fn update_flags_change_limits_of_a_running_container() {
    let (env, pid) = start_for_update("cg_update_flags");
    env.rt.run_ok(&[
        "update",
        "--memory",
        "64M",
        "--pids-limit",
        "30",
        "--cpu-share",
        "512",
        env.id(),
    ]);
    assert_eq!(memory_limit(pid), 64 * MIB, "--memory 64M");
    assert_eq!(cgroup_file(pid, "pids", "pids.max"), "30", "--pids-limit");
    assert_eq!(cpu_shares_file(pid), shares(512), "--cpu-share");

    env.rt.run_ok(&[
        "update",
        "--cpu-quota",
        "20000",
        "--cpu-period",
        "50000",
        "--memory-reservation",
        "16777216",
        env.id(),
    ]);
    if is_v2() {
        assert_eq!(cgroup_file(pid, "cpu", "cpu.max"), "20000 50000");
        assert_eq!(num(&cgroup_file(pid, "memory", "memory.low")), 16 * MIB);
    } else {
        assert_eq!(cgroup_file(pid, "cpu", "cpu.cfs_quota_us"), "20000");
        assert_eq!(cgroup_file(pid, "cpu", "cpu.cfs_period_us"), "50000");
        assert_eq!(
            num(&cgroup_file(pid, "memory", "memory.soft_limit_in_bytes")),
            16 * MIB
        );
    }
    // Untouched values stay.
    assert_eq!(memory_limit(pid), 64 * MIB);
    assert_eq!(cgroup_file(pid, "pids", "pids.max"), "30");
    assert_eq!(env.rt.status(env.id()), "running");
    env.delete_force_all_gone();
}

#[test]
fn update_resources_from_a_file() {
    let (env, pid) = start_for_update("cg_update_file");
    let f = write_resources(
        &env,
        json!({ "memory": { "limit": 48 * MIB }, "pids": { "limit": 25 } }),
    );
    env.rt
        .run_ok(&["update", "-r", f.to_str().unwrap(), env.id()]);
    assert_eq!(memory_limit(pid), 48 * MIB);
    assert_eq!(cgroup_file(pid, "pids", "pids.max"), "25");
    assert_eq!(cpu_shares_file(pid), shares(1024), "cpu shares changed");
    env.delete_force_all_gone();
}

#[test]
fn update_refuses_resources_the_spec_forbids_naming_the_field() {
    // config-linux.md: a blockIO.weightDevice entry MUST set weight,
    // leafWeight or both; `update` checks what `create` checks.
    let (env, pid) = start_for_update("cg_update_check");
    let f = write_resources(
        &env,
        json!({ "pids": { "limit": 33 }, "blockIO": { "weightDevice": [{ "major": 8, "minor": 0 }] } }),
    );
    let out = env.rt.cmd(&["update", "-r", f.to_str().unwrap(), env.id()]);
    assert!(
        !out.status.success(),
        "update accepted it: {}",
        describe(&out)
    );
    assert!(
        stderr(&out).contains("blockIO.weightDevice[0]"),
        "the error does not name the field: {}",
        describe(&out)
    );
    assert_ne!(
        cgroup_file(pid, "pids", "pids.max"),
        "33",
        "a refused update was partly applied"
    );
    env.delete_force_all_gone();
}

#[test]
fn update_resources_from_stdin() {
    let (env, pid) = start_for_update("cg_update_stdin");
    let f = write_resources(
        &env,
        json!({ "memory": { "limit": 80 * MIB }, "pids": { "limit": 35 } }),
    );
    let stdin = Stdio::from(fs::File::open(&f).unwrap());
    let mut sp = env.rt.spawn_stdin(&["update", "-r", "-", env.id()], stdin);
    let out = sp.wait_timeout(CMD_TIMEOUT);
    assert!(out.status.success(), "update -r -: {}", describe(&out));
    assert_eq!(memory_limit(pid), 80 * MIB);
    assert_eq!(cgroup_file(pid, "pids", "pids.max"), "35");
    env.delete_force_all_gone();
}

#[test]
fn update_accepts_minus_one_for_unlimited() {
    let mut env = CgEnv::new("cg_update_minus_one");
    env.set_resource("cpu", json!({ "quota": 50000, "period": 100000 }));
    env.set_resource("pids", json!({ "limit": 50 }));
    let pid = env.start_script(READY_SLEEP);
    env.rt.run_ok(&[
        "update",
        "--cpu-quota",
        "-1",
        "--pids-limit",
        "-1",
        "--memory",
        "-1",
        env.id(),
    ]);
    if is_v2() {
        assert_eq!(cgroup_file(pid, "cpu", "cpu.max"), "max 100000");
    } else {
        assert_eq!(cgroup_file(pid, "cpu", "cpu.cfs_quota_us"), "-1");
    }
    assert_eq!(cgroup_file(pid, "pids", "pids.max"), "max");
    env.delete_force_all_gone();
}

/// The host directory of the v1 cpu hierarchy's root.
fn v1_cpu_mount() -> PathBuf {
    cgroup_mounts()
        .into_iter()
        .find(|m| !m.v2 && m.opts.iter().any(|o| o == "cpu"))
        .map(|m| m.point)
        .expect("no v1 cpu hierarchy")
}

#[test]
fn update_of_cpu_quota_and_period_works_under_a_parent_limit() {
    if systemd_driver() {
        return skip("cgroupfs placement: with --systemd-cgroup the cgroupsPath is slice:prefix:name (tests/systemd.rs)");
    }
    if is_v2() {
        return skip("v1 only: cgroup v2's cpu.max takes quota and period in one write");
    }
    let mut env = CgEnv::new("cg_update_cpu_order");
    // A pod-level limit of half a CPU on the parent, made before the
    // container (the guard removes it: its name is the guard's).
    let pod = v1_cpu_mount().join(env.cg_name());
    fs::create_dir(&pod).unwrap();
    fs::write(pod.join("cpu.cfs_quota_us"), "50000").unwrap();
    let path = format!("/{0}/{0}-ctr", env.cg_name());
    env.bundle.edit(|c| c["linux"]["cgroupsPath"] = json!(path));
    env.set_resource("cpu", json!({ "quota": 50000, "period": 100000 }));
    let pid = env.start_script(READY_SLEEP);
    // Each step keeps half a CPU, which the parent allows; but the old
    // quota over the new period (first step), or the new quota over the old
    // period (second), would be a whole CPU or more, which it does not.
    for (quota, period) in [("25000", "50000"), ("100000", "200000")] {
        env.rt.run_ok(&[
            "update",
            "--cpu-quota",
            quota,
            "--cpu-period",
            period,
            env.id(),
        ]);
        assert_eq!(cgroup_file(pid, "cpu", "cpu.cfs_quota_us"), quota);
        assert_eq!(cgroup_file(pid, "cpu", "cpu.cfs_period_us"), period);
    }
    env.rt.run_ok(&["delete", "--force", env.id()]);
    fs::remove_dir(&pod).unwrap_or_else(|e| panic!("rmdir {}: {e}", pod.display()));
    if is_reference_runtime() {
        // runc leaves the parent levels it made in the other hierarchies.
        env.assert_nothing_left();
    } else {
        env.assert_all_gone();
    }
}

#[test]
fn ps_of_a_stopped_container_lists_nothing() {
    let mut env = CgEnv::new("cg_ps_stopped");
    env.bundle.set_script("true");
    env.create();
    env.rt.start(env.id());
    env.rt.wait_status(env.id(), "stopped", T);
    let out = env.rt.run_ok(&["ps", env.id()]);
    let table = stdout(&out);
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines.len(), 1, "only the header: {table}");
    assert!(lines[0].split_whitespace().any(|h| h == "PID"), "{table}");
    let out = env.rt.run_ok(&["ps", "--format", "json", env.id()]);
    let v: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("ps --format json is not JSON ({e}): {}", describe(&out)));
    if is_reference_runtime() {
        // runc 1.1.5 prints `null` (a nil Go slice).
        assert!(v.is_null() || v == json!([]), "{v}");
    } else {
        assert_eq!(v, json!([]));
    }
    env.rt.run_ok(&["delete", env.id()]);
    env.assert_all_gone();
}

// ---------------------------------------------------------------------------
// kill --all
// ---------------------------------------------------------------------------

#[test]
fn kill_all_kills_every_process_without_a_pid_namespace() {
    let mut env = CgEnv::new("cg_kill_all");
    // Without its own pid namespace, killing init leaves the others alive.
    env.bundle.edit(|c| drop_namespace(c, "pid"));
    let pid = env.start_script("sleep 1000 & sleep 1000 & : > /ready; wait");
    let procs = cgroup_procs(pid);
    assert_eq!(procs.len(), 3, "sh and two sleeps: {procs:?}");
    env.rt.run_ok(&["kill", "--all", env.id(), "KILL"]);
    for p in &procs {
        assert!(
            wait_for(T, || !process_alive(*p)),
            "process {p} survived kill --all"
        );
    }
    env.rt.wait_status(env.id(), "stopped", T);
    env.rt.run_ok(&["delete", env.id()]);
    env.assert_all_gone();
}

// ---------------------------------------------------------------------------
// Bad input
// ---------------------------------------------------------------------------

fn assert_create_fails(env: &CgEnv, nouns: &[&str]) {
    let out = env.try_create(&[]);
    assert_error(&out, nouns);
    let list = env.rt.cmd(&["list", "-q"]);
    assert!(
        !stdout(&list).lines().any(|l| l.trim() == env.id()),
        "failed create left a container: {}",
        stdout(&list)
    );
    env.assert_all_gone();
}

#[test]
fn memory_limit_below_usage_fails_create_naming_memory() {
    let mut env = CgEnv::new("cg_bad_memory");
    env.set_resource("memory", json!({ "limit": 1 }));
    assert_create_fails(&env, &["memory", "memory.limit_in_bytes", "memory.max"]);
}

#[test]
fn cpu_period_the_kernel_rejects_fails_create_naming_cpu() {
    let mut env = CgEnv::new("cg_bad_period");
    env.set_resource("cpu", json!({ "quota": 50000, "period": 1 }));
    assert_create_fails(&env, &["cpu", "cpu.cfs_period_us", "cpu.max", "period"]);
}

#[test]
fn cpuset_with_a_nonexistent_cpu_fails_create_naming_cpuset() {
    let mut env = CgEnv::new("cg_bad_cpuset");
    env.set_resource("cpu", json!({ "cpus": "99" }));
    assert_create_fails(&env, &["cpuset", "cpuset.cpus", "cpus"]);
}

// ---------------------------------------------------------------------------
// exec --cgroup (runc 1.2)
// ---------------------------------------------------------------------------

/// The cgroup paths of process `pid` as `(controllers, path)`, one per
/// hierarchy.
fn cgroup_paths_of(pid: &str) -> Vec<(String, String)> {
    proc_cgroups(pid)
        .into_iter()
        .map(|(_, c, p)| (c, p))
        .collect()
}

/// What `exec --cgroup ARG cat /proc/self/cgroup` printed, as
/// `(controllers, path)` pairs; panics if it failed.
fn exec_cgroups(env: &CgEnv, arg: &str) -> Vec<(String, String)> {
    let out = env.rt.cmd(&[
        "exec",
        "--cgroup",
        arg,
        env.id(),
        "cat",
        "/proc/self/cgroup",
    ]);
    assert!(
        out.status.success(),
        "exec --cgroup {arg}: {}",
        describe(&out)
    );
    stdout(&out)
        .lines()
        .filter_map(|l| {
            let mut it = l.splitn(3, ':');
            it.next()?;
            Some((it.next()?.to_string(), it.next()?.to_string()))
        })
        .collect()
}

#[test]
fn exec_cgroup_runs_the_process_in_a_sub_cgroup_of_the_containers() {
    if is_reference_runtime() {
        return skip("runc 1.1.5 has no exec --cgroup (runc 1.2 does)");
    }
    let mut env = CgEnv::new("cg_exec_sub");
    let pid = env.start_script(READY_SLEEP);
    let own = cgroup_paths_of(&pid.to_string());
    // The sub-cgroup must exist already: make it in every hierarchy. Its
    // name contains the guard's, so the guard removes it if the test fails.
    let sub = format!("{}-sub", env.cg_name());
    for (c, p) in &own {
        let d = dir_for_line(c, p).unwrap().join(&sub);
        fs::create_dir(&d).unwrap_or_else(|e| panic!("mkdir {}: {e}", d.display()));
        // A new v1 cpuset takes no process until it has cpus and mems
        // (a v2 one inherits its parent's; its files refuse an empty value).
        if !is_v2() {
            for f in ["cpuset.cpus", "cpuset.mems"] {
                if let Ok(v) = fs::read_to_string(d.parent().unwrap().join(f)) {
                    fs::write(d.join(f), v.trim()).unwrap();
                }
            }
        }
    }
    // One path: every hierarchy; a leading "/" is the container's cgroup.
    for arg in [sub.clone(), format!("/{sub}")] {
        let got = exec_cgroups(&env, &arg);
        let want: Vec<(String, String)> = own
            .iter()
            .map(|(c, p)| (c.clone(), format!("{p}/{sub}")))
            .collect();
        assert_eq!(got, want, "exec --cgroup {arg}");
    }
    assert_eq!(exec_cgroups(&env, "/"), own, "exec --cgroup /");
    if !is_v2() {
        // Per controller: only that hierarchy moves.
        let got = exec_cgroups(&env, &format!("memory:{sub}"));
        let want: Vec<(String, String)> = own
            .iter()
            .map(|(c, p)| {
                if c.split(',').any(|x| x == "memory") {
                    (c.clone(), format!("{p}/{sub}"))
                } else {
                    (c.clone(), p.clone())
                }
            })
            .collect();
        assert_eq!(got, want, "exec --cgroup memory:{sub}");
    }
    // Refused: escaping the container's cgroup, a sub-cgroup that does not
    // exist, a controller the container has no cgroup of.
    for (arg, nouns) in [
        ("..", &["..", "cgroup"][..]),
        (&format!("{sub}/../.."), &["..", "cgroup"][..]),
        ("missing", &["missing", "cgroup"][..]),
        (
            "nosuchcontroller:x",
            &["nosuchcontroller", "controller"][..],
        ),
    ] {
        let out = env.rt.cmd(&["exec", "--cgroup", arg, env.id(), "true"]);
        assert_error(&out, nouns);
    }
    for (c, p) in &own {
        let d = dir_for_line(c, p).unwrap().join(&sub);
        fs::remove_dir(&d).unwrap_or_else(|e| panic!("rmdir {}: {e}", d.display()));
    }
    env.delete_force_all_gone();
}
