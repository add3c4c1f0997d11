//! Host safety (issue 13, items 1-4 and 7): configs that point rrun at the
//! namespaces, cgroups or processes of its caller are refused with a clear
//! error, and a `create` (or `delete`) killed at any moment leaves nothing
//! that `delete --force` cannot remove. Nothing mounted in the container,
//! by rrun or by its process, appears in the caller's mount namespace.
//!
//! The configs here are aimed at the runtime's own world. Every runtime
//! command of those tests runs under `unshare` (a private mount, uts, ipc
//! and network namespace: [`SANDBOX`]), so a runtime that obeys such a
//! config wrecks a throwaway namespace, not the machine running the tests.
//!
//! Validate against runc with:
//! `RRUN_TEST_RUNTIME=/usr/sbin/runc cargo test --release --test host_safety`
//! (runc 1.1.5 refuses the mismatched namespace type, and fails the rest:
//! that is the point of them).

mod common;

use common::*;
use serde_json::{json, Value};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// A private mount, uts, ipc and network namespace for each runtime command.
const SANDBOX: &[&str] = &[
    "unshare",
    "--mount",
    "--uts",
    "--ipc",
    "--net",
    "--propagation",
    "private",
    "--",
];

/// A test env whose runtime runs in [`SANDBOX`].
fn sandboxed(name: &str) -> TestEnv {
    let mut env = TestEnv::new(name);
    env.rt = Runtime::new(env.dir.path()).wrapped(SANDBOX);
    env
}

/// Replaces (or adds) the namespace entry of `typ` in the config.
fn set_namespace(c: &mut Value, entry: Value) {
    let typ = entry["type"].as_str().unwrap().to_string();
    let list = c["linux"]["namespaces"].as_array_mut().unwrap();
    list.retain(|n| n["type"] != typ.as_str());
    list.push(entry);
}

/// A `create` that must be refused before anything exists: it fails with
/// an error naming one of `nouns`, and leaves nothing behind.
fn assert_refused(env: &TestEnv, nouns: &[&str]) -> String {
    let out = env.try_create(&[]);
    assert_error(&out, nouns);
    env.assert_nothing_left();
    stderr(&out)
}

// ---------------------------------------------------------------------------
// Items 1 and 2: namespaces
// ---------------------------------------------------------------------------

#[test]
fn namespace_path_of_another_type_is_refused() {
    // An ipc entry pointing at a mount namespace: joined as given, the
    // container would pivot_root rrun's own mount namespace.
    let mut env = sandboxed("ns_wrong_type");
    env.bundle.edit(|c| {
        set_namespace(c, json!({"type": "ipc", "path": "/proc/self/ns/mnt"}));
    });
    let err = assert_refused(&env, &["linux.namespaces", "namespace"]);
    if !is_reference_runtime() {
        assert!(
            err.contains("linux.namespaces[") && err.contains("/proc/self/ns/mnt"),
            "the error names the entry and its path: {err}"
        );
    }
}

#[test]
fn namespace_path_that_is_not_a_namespace_is_refused() {
    let mut env = sandboxed("ns_not_ns");
    env.bundle.edit(|c| {
        set_namespace(c, json!({"type": "network", "path": "/etc/hostname"}));
    });
    assert_refused(&env, &["linux.namespaces", "namespace"]);
}

#[test]
fn joining_the_runtimes_own_mount_namespace_is_refused() {
    // /proc/self is the runtime itself: its own mount namespace, which is
    // its caller's. runc 1.1.5 joins it and pivot_roots it.
    let mut env = sandboxed("ns_own_mnt");
    env.bundle.edit(|c| {
        set_namespace(c, json!({"type": "mount", "path": "/proc/self/ns/mnt"}));
    });
    assert_refused(&env, &["linux.namespaces", "mount"]);
}

#[test]
fn hostname_in_the_runtimes_own_uts_namespace_is_refused() {
    let mut env = sandboxed("ns_own_uts");
    env.bundle.edit(|c| {
        set_namespace(c, json!({"type": "uts", "path": "/proc/self/ns/uts"}));
        c["hostname"] = json!("not-the-host");
    });
    assert_refused(&env, &["hostname"]);
}

#[test]
fn sysctl_in_the_runtimes_own_network_namespace_is_refused() {
    let mut env = sandboxed("ns_own_net");
    env.bundle.edit(|c| {
        set_namespace(c, json!({"type": "network", "path": "/proc/self/ns/net"}));
        c["linux"]["sysctl"] = json!({"net.ipv4.ip_forward": "1"});
    });
    assert_refused(&env, &["linux.sysctl", "sysctl"]);
}

#[test]
fn joining_a_namespace_of_the_right_type_still_works() {
    // The checks above must not refuse an ordinary join: the network
    // namespace of a running container, as pods share it.
    let env = TestEnv::new("ns_join_ok");
    let mut first = env.bundle.config().clone();
    first["process"]["args"] = json!(["sleep", "60"]);
    let mut env2 = TestEnv::new("ns_join_ok2");
    env2.bundle.edit(|c| *c = first);
    env2.create();
    let pid = env2.rt.pid(&env2.id);
    let mut env = env;
    env.bundle.edit(|c| {
        set_namespace(
            c,
            json!({"type": "network", "path": format!("/proc/{pid}/ns/net")}),
        );
        c["process"]["args"] = json!(["sh", "-c", "readlink /proc/self/ns/net"]);
    });
    let out = env.run(&[]);
    assert!(out.status.success(), "{}", describe(&out));
    let want = fs::read_link(format!("/proc/{pid}/ns/net")).unwrap();
    assert_eq!(stdout(&out).trim(), want.to_str().unwrap());
    env.assert_nothing_left();
}

// ---------------------------------------------------------------------------
// Item 3: signals and the caller's cgroups
// ---------------------------------------------------------------------------

/// A cgroup directory the test makes itself in the hierarchy holding
/// `controller` (or the cgroup2 root on a pure v2 host); on drop, thawed,
/// emptied and removed with everything below it.
struct TestCgroup {
    dir: PathBuf,
    v2: bool,
}

impl TestCgroup {
    fn new(controller: &str, name: &str) -> Option<TestCgroup> {
        let v2 = Path::new("/sys/fs/cgroup/cgroup.controllers").exists();
        let mount = if v2 {
            PathBuf::from("/sys/fs/cgroup")
        } else {
            PathBuf::from("/sys/fs/cgroup").join(controller)
        };
        if !mount.is_dir() {
            eprintln!(
                "skipped: no {controller} cgroup hierarchy at {}",
                mount.display()
            );
            return None;
        }
        let dir = mount.join(format!("rrun-test-{}-{name}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        if !v2 && controller == "cpuset" {
            for f in ["cpuset.cpus", "cpuset.mems"] {
                let parent = fs::read_to_string(mount.join(f)).unwrap();
                fs::write(dir.join(f), parent.trim()).unwrap();
            }
        }
        Some(TestCgroup { dir, v2 })
    }

    /// The cgroupsPath naming this cgroup (below the hierarchy's root).
    fn path(&self) -> String {
        format!("/{}", self.dir.file_name().unwrap().to_str().unwrap())
    }

    fn procs(&self) -> Vec<i32> {
        fs::read_to_string(self.dir.join("cgroup.procs"))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.trim().parse().ok())
            .collect()
    }

    fn freeze(&self, frozen: bool) {
        if self.v2 {
            fs::write(
                self.dir.join("cgroup.freeze"),
                if frozen { "1" } else { "0" },
            )
            .unwrap();
        } else {
            let want = if frozen { "FROZEN" } else { "THAWED" };
            fs::write(self.dir.join("freezer.state"), want).unwrap();
        }
    }
}

impl Drop for TestCgroup {
    fn drop(&mut self) {
        let _ = if self.v2 {
            fs::write(self.dir.join("cgroup.freeze"), "0")
        } else {
            fs::write(self.dir.join("freezer.state"), "THAWED")
        };
        let mut dirs = Vec::new();
        collect_dirs(&self.dir, &mut dirs);
        for d in &dirs {
            for pid in fs::read_to_string(d.join("cgroup.procs"))
                .unwrap_or_default()
                .lines()
                .filter_map(|l| l.trim().parse::<i32>().ok())
                .filter(|&p| p > 0)
            {
                unsafe { libc::kill(pid, libc::SIGKILL) };
            }
        }
        dirs.sort_by_key(|d| std::cmp::Reverse(d.as_os_str().len()));
        for d in dirs {
            wait_for(Duration::from_secs(3), || {
                fs::remove_dir(&d).is_ok() || !d.exists()
            });
        }
    }
}

fn collect_dirs(dir: &Path, out: &mut Vec<PathBuf>) {
    out.push(dir.to_path_buf());
    for e in fs::read_dir(dir).into_iter().flatten().flatten() {
        if e.file_type().is_ok_and(|t| t.is_dir()) {
            collect_dirs(&e.path(), out);
        }
    }
}

/// A shell that moves itself into `cg` and then execs the runtime with
/// `args`: the runtime's own cgroup is `cg`.
fn runtime_in_cgroup(env: &TestEnv, cg: &TestCgroup, args: &[&str]) -> std::process::Output {
    let rt = env.rt.command(args);
    let out = Command::new("/bin/sh")
        .arg("-c")
        .arg("echo $$ > \"$0/cgroup.procs\" && exec \"$@\"")
        .arg(&cg.dir)
        .arg(rt.get_program())
        .args(rt.get_args())
        .stdin(Stdio::null())
        .output()
        .unwrap();
    out
}

#[test]
fn cgroups_path_naming_the_runtimes_own_cgroup_is_refused() {
    let Some(cg) = TestCgroup::new("memory", "caller") else {
        return;
    };
    let limit_file = if cg.v2 {
        "memory.max"
    } else {
        "memory.limit_in_bytes"
    };
    let before = fs::read_to_string(cg.dir.join(limit_file)).unwrap();
    let mut env = TestEnv::new("cg_own");
    let path = cg.path();
    env.bundle.edit(|c| {
        c["linux"]["cgroupsPath"] = json!(path);
        c["linux"]["resources"]["memory"] = json!({"limit": 8 * 1024 * 1024});
    });
    let bundle = env.bundle.path_str().to_string();
    let out = runtime_in_cgroup(&env, &cg, &["create", "--bundle", &bundle, &env.id]);
    assert_error(&out, &["linux.cgroupsPath", "cgroupsPath"]);
    assert_eq!(
        fs::read_to_string(cg.dir.join(limit_file)).unwrap(),
        before,
        "the caller's memory limit must not change"
    );
    // An ancestor of the caller's cgroup (here the hierarchy's root).
    env.bundle.edit(|c| c["linux"]["cgroupsPath"] = json!("/"));
    let out = runtime_in_cgroup(&env, &cg, &["create", "--bundle", &bundle, &env.id]);
    assert_error(&out, &["linux.cgroupsPath", "cgroupsPath"]);
    env.assert_nothing_left();
}

/// An existing cgroup holding a `sleep` that is not any container's, and a
/// test env whose config names it: what a config pointing rrun at someone
/// else's cgroup looks like.
struct BusyCgroup {
    cg: TestCgroup,
    /// The cgroup the sleep is in.
    home: PathBuf,
    sleeper: std::process::Child,
    env: TestEnv,
}

impl BusyCgroup {
    /// The sleep is in the cgroup itself, or with `child` in a cgroup of
    /// that name below it; in the pids hierarchy (v1), or in the one rrun
    /// lists the container's processes from (`procs`: the cgroup2 one, also
    /// on a hybrid host).
    fn new(name: &str, child: Option<&str>, procs: bool) -> Option<BusyCgroup> {
        let unified = procs && Path::new("/sys/fs/cgroup/unified/cgroup.procs").exists();
        let cg = TestCgroup::new(if unified { "unified" } else { "pids" }, name)?;
        let sleeper = Command::new("sleep").arg("60").spawn().unwrap();
        let home = match child {
            Some(c) => {
                fs::create_dir(cg.dir.join(c)).unwrap();
                cg.dir.join(c)
            }
            None => cg.dir.clone(),
        };
        fs::write(home.join("cgroup.procs"), sleeper.id().to_string()).unwrap();
        let mut env = TestEnv::new(name);
        let path = cg.path();
        env.bundle.edit(|c| {
            c["linux"]["cgroupsPath"] = json!(path);
            c["process"]["args"] = json!(["sleep", "60"]);
        });
        Some(BusyCgroup {
            cg,
            home,
            sleeper,
            env,
        })
    }

    /// The sleep still runs, alone in its cgroup, which is still there.
    fn assert_untouched(&mut self, after: &str) {
        assert!(
            self.sleeper.try_wait().unwrap().is_none(),
            "{after} killed a process that was never the container's"
        );
        let procs = fs::read_to_string(self.home.join("cgroup.procs")).unwrap();
        assert_eq!(procs.trim(), self.sleeper.id().to_string(), "{after}");
        assert!(self.cg.dir.is_dir(), "{after} removed the cgroup");
    }

    /// `delete --force`, which must leave the sleep and its cgroup alone.
    fn delete_force_and_check(&mut self) {
        let out = self.env.rt.cmd(&["delete", "--force", &self.env.id]);
        assert!(out.status.success(), "delete --force: {}", describe(&out));
        self.assert_untouched("delete --force");
        let _ = self.sleeper.kill();
        let _ = self.sleeper.wait();
        self.env.assert_nothing_left();
    }
}

impl Drop for BusyCgroup {
    fn drop(&mut self) {
        let _ = self.sleeper.kill();
        let _ = self.sleeper.wait();
    }
}

#[test]
fn cgroup_that_already_holds_processes_is_refused_and_they_keep_running() {
    // runc only warns, then writes the container's limits into that cgroup,
    // and `delete --force` kills everything in it.
    let Some(mut busy) = BusyCgroup::new("cg_busy", None, false) else {
        return;
    };
    busy.env
        .bundle
        .edit(|c| c["linux"]["resources"]["pids"] = json!({"limit": 1}));
    let before = fs::read_to_string(busy.cg.dir.join("pids.max")).unwrap();
    let out = busy.env.try_create(&[]);
    assert_error(
        &out,
        &["linux.cgroupsPath", &busy.cg.dir.display().to_string()],
    );
    assert!(
        stderr(&out).contains(&busy.sleeper.id().to_string()),
        "the error names a process found there: {}",
        describe(&out)
    );
    assert_eq!(
        fs::read_to_string(busy.cg.dir.join("pids.max")).unwrap(),
        before,
        "the cgroup's pids limit must not change"
    );
    busy.assert_untouched("a refused create");
    busy.delete_force_and_check();
}

#[test]
fn cgroup_whose_subtree_holds_processes_is_refused_and_their_limits_are_untouched() {
    // Limits and the freezer of a cgroup apply to everything below it: a
    // config naming a parent of the host's services (an empty v2 slice)
    // would limit and pause them.
    let Some(mut busy) = BusyCgroup::new("cg_busy_below", Some("service"), false) else {
        return;
    };
    busy.env
        .bundle
        .edit(|c| c["linux"]["resources"]["pids"] = json!({"limit": 1}));
    let out = busy.env.try_create(&[]);
    assert_error(
        &out,
        &["linux.cgroupsPath", &busy.cg.dir.display().to_string()],
    );
    assert!(
        stderr(&out).contains(&format!("{} in service", busy.sleeper.id())),
        "the error names the process and the cgroup below: {}",
        describe(&out)
    );
    assert_eq!(
        fs::read_to_string(busy.cg.dir.join("pids.max"))
            .unwrap()
            .trim(),
        "max",
        "the subtree's pids limit must not change"
    );
    busy.assert_untouched("a refused create");
    busy.delete_force_and_check();
}

#[test]
fn create_killed_before_it_checked_a_busy_cgroup_leaves_its_processes_to_delete_force() {
    // The record is written before the cgroup is looked at: a create killed
    // in between leaves a record naming a cgroup that holds someone else's
    // process. strace holds the create at its first cgroup mkdir.
    let Some(mut busy) = BusyCgroup::new("cg_busy_killed", None, true) else {
        return;
    };
    let env = &busy.env;
    let Some(recorded) = create_killed_after_its_record(env, &[], &env.id, "mkdirat") else {
        return;
    };
    assert!(recorded, "no debug line for the state record");
    // What containerd's shim runs before delete for a container sharing a
    // pid namespace.
    let _ = env.rt.cmd(&["kill", "--all", &env.id, "KILL"]);
    busy.assert_untouched("kill --all");
    busy.delete_force_and_check();
}

#[test]
fn kill_all_from_another_pid_namespace_never_signals_pid_zero() {
    // Run from a pid namespace of its own (rrun inside kind or Docker),
    // the runtime reads `0` in cgroup.procs for every process of the
    // container. kill(0, SIGKILL) would kill its own process group: the
    // runtime itself (here in a session of its own, so nothing else).
    let mut env = TestEnv::new("kill_all_pidns");
    env.bundle.set_args(&["sleep", "60"]);
    env.create();
    let init = env.rt.pid(&env.id);
    let rt = env.rt.command(&["kill", "--all", &env.id, "KILL"]);
    let mut cmd = Command::new("unshare");
    cmd.args(["--pid", "--fork", "--mount-proc", "--"])
        .arg(rt.get_program())
        .args(rt.get_args())
        .stdin(Stdio::null());
    // SAFETY: setsid in the forked child before exec touches no memory.
    unsafe {
        std::os::unix::process::CommandExt::pre_exec(&mut cmd, || {
            libc::setsid();
            Ok(())
        });
    }
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "kill --all must not kill itself: {}",
        describe(&out)
    );
    assert!(process_alive(init), "it could not see the container's init");
    env.rt.run_ok(&["delete", "--force", &env.id]);
    env.assert_nothing_left();
}

// ---------------------------------------------------------------------------
// Item 4: a frozen cgroup
// ---------------------------------------------------------------------------

#[test]
fn run_into_a_frozen_cgroup_is_refused_not_hung() {
    let Some(cg) = TestCgroup::new("freezer", "frozen") else {
        return;
    };
    cg.freeze(true);
    let mut env = TestEnv::new("cg_frozen");
    let path = format!("{}/c", cg.path());
    env.bundle.edit(|c| {
        c["linux"]["cgroupsPath"] = json!(path);
        c["process"]["args"] = json!(["sleep", "60"]);
    });
    let started = Instant::now();
    let out = env.run(&["-d"]);
    assert_error(&out, &["frozen"]);
    assert!(started.elapsed() < Duration::from_secs(10));
    cg.freeze(false);
    assert!(cg.procs().is_empty(), "no process left in the cgroup");
    env.assert_nothing_left();
    assert!(
        !cg.dir.join("c").exists(),
        "the container's cgroup is removed"
    );
}

// ---------------------------------------------------------------------------
// Item 7: crash consistency
// ---------------------------------------------------------------------------

/// Kills `rrun create` after `delay`, then checks `delete --force` leaves
/// nothing. Returns whether the create had finished by itself.
fn kill_create_after(env: &TestEnv, id: &str, delay: Duration) -> bool {
    let mut sp = env
        .rt
        .spawn(&["create", "--bundle", env.bundle.path_str(), id]);
    std::thread::sleep(delay);
    sp.signal(libc::SIGKILL);
    let out = sp.wait_timeout(Duration::from_secs(10));
    assert_force_delete_leaves_nothing(env, id);
    out.status.success()
}

fn assert_force_delete_leaves_nothing(env: &TestEnv, id: &str) {
    let out = env.rt.cmd(&["delete", "--force", id]);
    assert!(
        out.status.success(),
        "delete --force {id}: {}",
        describe(&out)
    );
    assert_nothing_left(&env.rt, id, &env.bundle);
}

#[test]
fn create_killed_at_any_moment_leaves_nothing_after_delete_force() {
    let mut env = TestEnv::new("crash_create");
    env.bundle.set_args(&["sleep", "60"]);
    // How long one create takes here (10-20 ms on the development host,
    // far more under emulation in the VM).
    let id = format!("{}-timed", env.id);
    let started = Instant::now();
    env.rt
        .run_ok(&["create", "--bundle", env.bundle.path_str(), &id]);
    let took = started.elapsed();
    assert_force_delete_leaves_nothing(&env, &id);
    // 30 moments spread over 1.2 times that.
    let mut finished = 0;
    for i in 0..30u32 {
        let id = format!("{}-{i}", env.id);
        if kill_create_after(&env, &id, took * i / 25) {
            finished += 1;
        }
    }
    assert!(finished < 30, "every create finished before the kill");
}

#[test]
fn create_killed_after_each_step_leaves_nothing_after_delete_force() {
    // `--debug` logs each step of create; kill it as soon as one appears.
    let mut env = TestEnv::new("crash_steps");
    env.bundle.set_args(&["sleep", "60"]);
    let log = env.dir.join("debug.log");
    for (i, step) in [
        "state recorded",
        "cgroups created",
        "resources applied",
        "cloned",
        "init ready",
        "created",
    ]
    .iter()
    .enumerate()
    {
        let id = format!("{}-{i}", env.id);
        let _ = fs::remove_file(&log);
        let mut sp = env.rt.spawn(&[
            "--debug",
            "--log",
            log.to_str().unwrap(),
            "create",
            "--bundle",
            env.bundle.path_str(),
            &id,
        ]);
        let seen = wait_for(Duration::from_secs(10), || {
            fs::read_to_string(&log).is_ok_and(|t| t.contains(&format!("create: {step}")))
        });
        sp.signal(libc::SIGKILL);
        let _ = sp.wait_timeout(Duration::from_secs(10));
        assert!(seen, "no debug line for step {step:?}");
        assert_force_delete_leaves_nothing(&env, &id);
    }
}

#[test]
fn create_killed_while_a_hook_runs_leaves_nothing_after_delete_force() {
    // A prestart hook holds create half-way: namespaces, mounts and the
    // cgroup exist, the container's init waits before pivot_root.
    let mut env = TestEnv::new("crash_hook");
    let marker = env.dir.join("hook-ran");
    env.bundle.edit(|c| {
        c["process"]["args"] = json!(["sleep", "60"]);
        c["hooks"] = json!({"prestart": [{
            "path": "/bin/sh",
            "args": ["sh", "-c", format!("echo $$ > {}; exec sleep 30", marker.display())]
        }]});
    });
    let mut sp = env
        .rt
        .spawn(&["create", "--bundle", env.bundle.path_str(), &env.id]);
    assert!(
        wait_for(Duration::from_secs(10), || marker.exists()),
        "the hook never ran"
    );
    assert_eq!(env.rt.status(&env.id), "creating");
    sp.signal(libc::SIGKILL);
    let _ = sp.wait_timeout(Duration::from_secs(10));
    // The hook is not the container's but the caller's: the caller ends it.
    if let Some(pid) = fs::read_to_string(&marker)
        .ok()
        .and_then(|s| s.trim().parse::<i32>().ok())
    {
        unsafe { libc::kill(pid, libc::SIGKILL) };
    }
    assert_force_delete_leaves_nothing(&env, &env.id);
}

#[test]
fn delete_killed_half_way_can_be_run_again() {
    let mut env = TestEnv::new("crash_delete");
    env.bundle.set_args(&["sleep", "60"]);
    for i in 0..10u64 {
        let id = format!("{}-{i}", env.id);
        env.rt
            .run_ok(&["create", "--bundle", env.bundle.path_str(), &id]);
        let mut sp = env.rt.spawn(&["delete", "--force", &id]);
        std::thread::sleep(Duration::from_micros(i * 500));
        sp.signal(libc::SIGKILL);
        let _ = sp.wait_timeout(Duration::from_secs(10));
        assert_force_delete_leaves_nothing(&env, &id);
    }
}

// ---------------------------------------------------------------------------
// Mount propagation: nothing mounted in the container reaches the caller
// ---------------------------------------------------------------------------

/// A wrapper like [`SANDBOX`] in which `/dev` and each of `shared` (a
/// directory, bound onto itself) are shared mounts, as on a systemd host.
/// After the runtime's command it exits 98, naming them, if any mount
/// appeared on `/dev/null` or below one of `shared` in that namespace: a
/// mount the container's setup or its process made that propagated back.
fn shared_sandbox(shared: &[&Path]) -> Vec<String> {
    let dirs = shared
        .iter()
        .map(|p| p.to_str().unwrap())
        .collect::<Vec<_>>()
        .join(" ");
    let script = format!(
        "{{ mount --make-shared /dev 2>/dev/null || \
             {{ mount --bind /dev /dev && mount --make-shared /dev; }}; }} || exit 97; \
         for d in {dirs}; do \
             mount --bind $d $d && mount --make-private $d && mount --make-shared $d || exit 97; \
         done; \
         \"$@\"; rc=$?; \
         leaked=$(awk -v dirs='{dirs}' 'BEGIN {{ n = split(dirs, d, \" \") }} \
             $5 == \"/dev/null\" {{ print $5 }} \
             {{ for (i = 1; i <= n; i++) if (index($5, d[i] \"/\") == 1) print $5 }}' \
             /proc/self/mountinfo); \
         if [ -n \"$leaked\" ]; then \
             echo \"mounted in the caller's namespace:\" $leaked >&2; exit 98; \
         fi; \
         exit $rc"
    );
    let mut argv: Vec<String> = SANDBOX.iter().map(|s| s.to_string()).collect();
    argv.extend(["sh".into(), "-c".into(), script, "sh".into()]);
    argv
}

/// A test env whose runtime runs in [`shared_sandbox`], its container
/// with CAP_SYS_ADMIN (to mount things itself).
fn shared_sandboxed(name: &str, shared: &[&Path]) -> TestEnv {
    let mut env = TestEnv::new(name);
    let argv = shared_sandbox(shared);
    let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
    env.rt = Runtime::new(env.dir.path()).wrapped(&argv);
    env.bundle.add_capability("CAP_SYS_ADMIN");
    env
}

#[test]
fn masked_and_read_only_paths_never_mount_on_the_callers_dev_null() {
    // Masked files get the caller's /dev/null bound over them. A copy of
    // a shared mount is its peer: a read-only path over a masked one (a
    // nodev bind), or the container mounting over a masked file, landed
    // on the caller's /dev/null, which then nothing could open.
    for p in ["/proc/keys", "/proc/timer_list"] {
        assert!(Path::new(p).exists(), "this kernel has no {p} to mask");
    }
    let mut env = shared_sandboxed("prop_dev_null", &[]);
    env.bundle.edit(|c| {
        c["linux"]["maskedPaths"] = json!(["/proc/keys", "/proc/timer_list"]);
        c["linux"]["readonlyPaths"] = json!(["/proc/keys"]);
    });
    env.bundle.set_script(
        "echo keys=$(cat /proc/keys 2>/dev/null | wc -c); \
         mount --bind /bin/busybox /proc/timer_list && echo mounted=yes",
    );
    let out = env.run(&[]);
    assert!(out.status.success(), "{}", describe(&out));
    let text = stdout(&out);
    assert_eq!(
        field(&text, "keys"),
        "0",
        "/proc/keys is not masked: {text}"
    );
    assert_eq!(field(&text, "mounted"), "yes", "{text}");
    env.assert_nothing_left();
}

#[test]
fn mounts_below_a_bind_of_a_shared_host_dir_stay_in_the_container() {
    // A bind of a shared host directory, with rrun's own mounts below it
    // (a tmpfs, a read-only and a masked path) and one the container
    // makes: none may appear below the host's directory, with the default
    // propagation or with `rshared` asked for (runc's `rshared` with
    // `rootfsPropagation: rshared` propagates them back; rrun keeps the
    // container's mounts in the container).
    for (name, options, root) in [
        ("default", &["rbind"][..], None),
        ("rshared", &["rbind", "rshared"][..], Some("rshared")),
    ] {
        let dir = TestDir::new(&format!("prop_bind_src_{name}"));
        let src = dir.join("src");
        for d in ["sub", "ro", "masked", "mine"] {
            fs::create_dir_all(src.join(d)).unwrap();
        }
        let mut env = shared_sandboxed(&format!("prop_bind_{name}"), &[&src]);
        env.bundle.edit(|c| {
            let mounts = c["mounts"].as_array_mut().unwrap();
            mounts.push(json!({
                "destination": "/data", "type": "bind",
                "source": src.to_str().unwrap(), "options": options,
            }));
            mounts.push(json!({
                "destination": "/data/sub", "type": "tmpfs", "source": "tmpfs",
            }));
            c["linux"]["readonlyPaths"]
                .as_array_mut()
                .unwrap()
                .push(json!("/data/ro"));
            c["linux"]["maskedPaths"]
                .as_array_mut()
                .unwrap()
                .push(json!("/data/masked"));
            if let Some(r) = root {
                c["linux"]["rootfsPropagation"] = json!(r);
            }
        });
        env.bundle
            .set_script("mount -t tmpfs mine /data/mine && echo mounted=yes");
        let out = env.run(&[]);
        assert!(out.status.success(), "{name}: {}", describe(&out));
        assert_eq!(field(&stdout(&out), "mounted"), "yes", "{name}");
        env.assert_nothing_left();
    }
}
