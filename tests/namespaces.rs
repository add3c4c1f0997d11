//! Namespaces: each kind created new, joined by path, and shared with the
//! host when the config does not list it. Every check is made from inside
//! the container (`readlink /proc/self/ns/*`, `/proc/net/dev`, `hostname`,
//! `/proc/self/uid_map`, ...) and compared with what the test process sees
//! on the host.
//!
//! Validate against runc with:
//! `RRUN_TEST_RUNTIME=/usr/bin/runc cargo test --test namespaces -- --test-threads=2`
//!
//! runc 1.1.5 has no time namespace support (`linux.timeOffsets` and the
//! `time` namespace type came with runc 1.2): `time_namespace_offsets_shift_uptime`
//! is validated against rrun only and skipped for reference runtimes.

mod common;

use common::*;
use serde_json::{json, Value};
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::process::{Command, Stdio};
use std::time::Duration;

const T: Duration = Duration::from_secs(10);

/// `readlink /proc/self/ns/<kind>` of the test process, e.g. `net:[4026531840]`.
fn host_ns(kind: &str) -> String {
    host_link(format!("/proc/self/ns/{kind}"))
}

/// The namespace link of a running process, seen from the host.
fn pid_ns(pid: i32, kind: &str) -> String {
    host_link(format!("/proc/{pid}/ns/{kind}"))
}

fn set_namespaces(c: &mut Value, ns: Value) {
    c["linux"]["namespaces"] = ns;
}

/// A script printing `ns_<kind>=<readlink /proc/self/ns/kind>` per kind.
fn print_ns_script(kinds: &[&str]) -> String {
    kinds
        .iter()
        .map(|k| format!("echo ns_{k}=$(readlink /proc/self/ns/{k})"))
        .collect::<Vec<_>>()
        .join("; ")
}

/// Start a detached container `id` from `bundle` running `sleep 1000`;
/// returns the pid of its init as the host sees it.
fn start_sleeper(env: &TestEnv, bundle: &Bundle, id: &str) -> i32 {
    let out = env
        .rt
        .cmd(&["run", "-d", "--bundle", bundle.path_str(), id]);
    assert!(
        out.status.success(),
        "detached run of {id} failed: {}",
        describe(&out)
    );
    env.rt.wait_status(id, "running", T);
    let pid = env.rt.pid(id);
    assert!(process_alive(pid), "init of {id} (pid {pid}) is not alive");
    pid
}

/// A second bundle inside the env's test dir (for a second container).
fn second_bundle(env: &TestEnv, name: &str) -> Bundle {
    let d = env.dir.join(name);
    fs::create_dir_all(&d).unwrap();
    Bundle::new(&d)
}

fn stop_and_delete(env: &TestEnv, id: &str) {
    env.rt.run_ok(&["kill", id, "KILL"]);
    env.rt.wait_status(id, "stopped", T);
    env.rt.run_ok(&["delete", id]);
}

// ---------------------------------------------------------------------------
// New namespaces
// ---------------------------------------------------------------------------

/// A SysV shared memory segment of the test process, removed on drop.
struct ShmSegment(i32);

impl ShmSegment {
    fn new() -> ShmSegment {
        let id = unsafe { libc::shmget(libc::IPC_PRIVATE, 4096, libc::IPC_CREAT | 0o600) };
        assert!(id >= 0, "shmget: {}", std::io::Error::last_os_error());
        ShmSegment(id)
    }
}

impl Drop for ShmSegment {
    fn drop(&mut self) {
        unsafe {
            libc::shmctl(self.0, libc::IPC_RMID, std::ptr::null_mut());
        }
    }
}

/// shmids listed in a `/proc/sysvipc/shm` text (header line skipped).
fn shm_ids(text: &str) -> Vec<i32> {
    text.lines()
        .skip(1)
        .filter_map(|l| l.split_whitespace().nth(1))
        .filter_map(|s| s.parse().ok())
        .collect()
}

/// Numbers of a `/proc/self/uid_map`-style text, one Vec per line.
fn id_map_lines(text: &str) -> Vec<Vec<u64>> {
    text.lines()
        .map(|l| {
            l.split_whitespace()
                .filter_map(|w| w.parse().ok())
                .collect::<Vec<u64>>()
        })
        .filter(|v| v.len() == 3)
        .collect()
}

// ---------------------------------------------------------------------------
// New namespaces
// ---------------------------------------------------------------------------

#[test]
fn new_pid_namespace_makes_the_process_pid_1() {
    let mut env = TestEnv::new("ns_pid_new");
    env.bundle.set_script(&format!(
        "echo self=$$; {}; echo procs=$(ls /proc | grep -c '^[0-9]')",
        print_ns_script(&["pid"])
    ));
    let out = run_ok(&env);
    assert_eq!(field(&out, "self"), "1", "{out}");
    assert_ne!(
        field(&out, "ns_pid"),
        host_ns("pid"),
        "container shares the host pid namespace"
    );
    // Only the container's own processes (sh, ls, grep) are in its /proc.
    let procs: usize = field(&out, "procs").parse().unwrap();
    assert!(
        (1..=4).contains(&procs),
        "container /proc lists {procs} processes: host processes visible?\n{out}"
    );
    env.assert_nothing_left();
}

/// A container script listing its network namespace and its interfaces as
/// procfs (`dev=`) and its sysfs (`sysfs=`) show them.
fn set_net_script(env: &mut TestEnv) {
    env.bundle.set_script(&format!(
        "{}; tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d ' ' | sed 's/^/dev=/'; \
         ls /sys/class/net | sed 's/^/sysfs=/'",
        print_ns_script(&["net"])
    ));
}

/// The container's network namespace is its own, with only a loopback
/// device, in `/proc/net/dev` and in its sysfs (mounted in that namespace).
fn assert_own_network_namespace(out: &str) {
    let listed = |key: &str| -> Vec<String> {
        out.lines()
            .filter_map(|l| l.strip_prefix(key))
            .map(str::to_string)
            .collect()
    };
    assert_eq!(
        listed("dev="),
        vec!["lo"],
        "devices in the container:\n{out}"
    );
    assert_eq!(
        listed("sysfs="),
        vec!["lo"],
        "/sys/class/net in the container (a sysfs of another namespace?):\n{out}"
    );
    assert_ne!(field(out, "ns_net"), host_ns("net"));
}

#[test]
fn new_network_namespace_has_only_loopback() {
    let mut env = TestEnv::new("ns_net_new");
    set_net_script(&mut env);
    let out = run_ok(&env);
    assert_own_network_namespace(&out);
    env.assert_nothing_left();
}

/// rrun makes a new network namespace in a helper process while it plans
/// the rest (src/launch/netns.rs), and the container joins it.
#[test]
fn new_network_namespace_is_made_beside_the_planning() {
    if skip_on_reference_because("the network namespace helper is rrun's own") {
        return;
    }
    let mut env = TestEnv::with_log("ns_net_helper");
    set_net_script(&mut env);
    let out = env
        .rt
        .run_ok(&["--debug", "run", "--bundle", env.bundle.path_str(), &env.id]);
    assert_own_network_namespace(&stdout(&out));
    let log = env.rt.log_contents();
    assert!(
        log.contains("network namespace made by the helper"),
        "no helper in the debug log:\n{log}"
    );
    env.assert_nothing_left();
}

/// `--debug create` of `env`'s bundle under strace with `strace_args` (its
/// fault injection); None (the test skips) without strace.
fn debug_create_under_strace(env: &TestEnv, strace_args: &[&str]) -> Option<Command> {
    let rt = env.rt.command(&[
        "--debug",
        "create",
        "--bundle",
        env.bundle.path_str(),
        &env.id,
    ]);
    let mut traced = under_strace(strace_args, rt)?;
    traced.stdin(Stdio::null());
    Some(traced)
}

/// If the helper cannot be started (here: its `clone`, made to fail by
/// strace; the container's process comes from `clone3`), the clone makes
/// the namespace, as without a helper. Checked from the host, through the
/// created init's `/proc` files.
#[test]
fn new_network_namespace_is_made_by_the_clone_when_the_helper_cannot_start() {
    if skip_on_reference_because("the network namespace helper is rrun's own") {
        return;
    }
    let env = TestEnv::with_log("ns_net_helper_unstarted");
    let inject = [
        "-e",
        "trace=clone",
        "-e",
        "inject=clone:error=EAGAIN:when=1",
    ];
    let Some(mut traced) = debug_create_under_strace(&env, &inject) else {
        return;
    };
    let out = traced
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(
        out.success(),
        "create under strace: {out:?}\n{}",
        env.rt.log_contents()
    );
    let pid = env.rt.pid(&env.id);
    let devs = fs::read_to_string(format!("/proc/{pid}/net/dev")).unwrap();
    let devs: Vec<&str> = devs
        .lines()
        .skip(2)
        .filter_map(|l| l.split(':').next())
        .map(str::trim)
        .collect();
    let mut sysfs: Vec<String> = fs::read_dir(format!("/proc/{pid}/root/sys/class/net"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    sysfs.sort();
    assert_eq!(
        (devs, sysfs),
        (vec!["lo"], vec!["lo".to_string()]),
        "the container's interfaces (procfs, sysfs)"
    );
    assert_ne!(pid_ns(pid, "net"), host_ns("net"));
    let log = env.rt.log_contents();
    assert!(
        log.contains("network namespace helper: cannot start")
            && log.contains("the clone makes the namespace")
            && !log.contains("network namespace made by the helper"),
        "the helper's failure is not in the debug log:\n{log}"
    );
    let out = env.rt.cmd(&["delete", "--force", &env.id]);
    assert!(out.status.success(), "delete --force: {}", describe(&out));
    env.assert_nothing_left();
}

/// If the helper starts but cannot make the namespace (here: its
/// `unshare`, made to fail by strace), `create` fails saying so, as the
/// clone would have, and leaves nothing.
#[test]
fn create_fails_naming_the_network_namespace_when_the_helper_cannot_make_it() {
    if skip_on_reference_because("the network namespace helper is rrun's own") {
        return;
    }
    let env = TestEnv::with_log("ns_net_helper_fails");
    let inject = [
        "-f",
        "-e",
        "trace=unshare",
        "-e",
        "inject=unshare:error=ENOSPC:when=1",
    ];
    let Some(mut traced) = debug_create_under_strace(&env, &inject) else {
        return;
    };
    let out = traced.output().unwrap();
    assert!(
        !out.status.success(),
        "create succeeded: {}",
        describe(&out)
    );
    assert!(
        stderr(&out).contains(
            "linux.namespaces: cannot create the network namespace: No space left on device"
        ),
        "{}",
        describe(&out)
    );
    env.assert_nothing_left();
}

/// A create killed while its helper makes the network namespace leaves no
/// helper behind, and `delete --force` removes the rest. (The helper never
/// waits for anything, so it ends by itself; with rrun gone it is also
/// killed, `PDEATHSIG`. strace holds a traced process it delays even
/// then, so the delay here is short.)
#[test]
fn create_killed_while_its_network_helper_works_leaves_no_helper() {
    if skip_on_reference_because("the network namespace helper is rrun's own") {
        return;
    }
    let env = TestEnv::with_log("ns_net_helper_killed");
    // Every traced process's first unshare waits 1 s: the helper's.
    let delay = [
        "-f",
        "-e",
        "trace=unshare",
        "-e",
        "inject=unshare:delay_enter=1000000:when=1",
    ];
    let Some(mut traced) = debug_create_under_strace(&env, &delay) else {
        return;
    };
    let mut strace = traced
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut helper = None;
    // Killed once it waits for the helper, its container process cloned.
    let found = wait_for(Duration::from_secs(10), || {
        let rrun = children_of(strace.id());
        helper = rrun
            .first()
            .and_then(|&p| children_of(p as u32).first().copied());
        helper.is_some() && env.rt.log_contents().contains("create: cloned")
    });
    for pid in children_of(strace.id()) {
        // SAFETY: kill has no memory effects.
        unsafe { libc::kill(pid, libc::SIGKILL) };
    }
    let helper_died = helper.map(|h| wait_for(Duration::from_secs(5), || !process_alive(h)));
    let _ = strace.kill();
    let _ = strace.wait();
    assert!(found, "no helper process seen under the traced create");
    assert_eq!(
        helper_died,
        Some(true),
        "the network namespace helper ({helper:?}) outlived the killed create"
    );
    let out = env.rt.cmd(&["delete", "--force", &env.id]);
    assert!(out.status.success(), "delete --force: {}", describe(&out));
    env.assert_nothing_left();
}

#[test]
fn new_ipc_namespace_hides_host_sysv_objects() {
    let seg = ShmSegment::new();
    let host_ids = shm_ids(&fs::read_to_string("/proc/sysvipc/shm").unwrap());
    assert!(
        host_ids.contains(&seg.0),
        "host does not list its own segment"
    );
    let mut env = TestEnv::new("ns_ipc_new");
    env.bundle.set_script(&format!(
        "{}; cat /proc/sysvipc/shm",
        print_ns_script(&["ipc"])
    ));
    let out = run_ok(&env);
    assert_ne!(field(&out, "ns_ipc"), host_ns("ipc"));
    let shm_text: String = out
        .lines()
        .filter(|l| !l.starts_with("ns_"))
        .collect::<Vec<_>>()
        .join("\n");
    assert!(
        shm_text.contains("shmid"),
        "no /proc/sysvipc/shm header inside:\n{out}"
    );
    assert_eq!(
        shm_ids(&shm_text),
        Vec::<i32>::new(),
        "host shm segment {} visible in the container",
        seg.0
    );
    env.assert_nothing_left();
}

#[test]
fn new_uts_namespace_sets_hostname_from_config() {
    let host_name = fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    let mut env = TestEnv::new("ns_uts_new");
    env.bundle.edit(|c| c["hostname"] = json!("rrun-uts-test"));
    env.bundle.set_script(&format!(
        "echo name=$(hostname); {}",
        print_ns_script(&["uts"])
    ));
    let out = run_ok(&env);
    assert_eq!(field(&out, "name"), "rrun-uts-test");
    assert_ne!(field(&out, "ns_uts"), host_ns("uts"));
    assert_eq!(
        fs::read_to_string("/proc/sys/kernel/hostname").unwrap(),
        host_name,
        "the host's hostname changed"
    );
    env.assert_nothing_left();
}

#[test]
fn new_mount_namespace_keeps_container_mounts_off_the_host() {
    let mut env = TestEnv::new("ns_mnt_new");
    fs::create_dir_all(env.bundle.rootfs().join("mnt")).unwrap();
    env.bundle.add_capability("CAP_SYS_ADMIN");
    env.bundle.set_script(&format!(
        "{}; mount -t tmpfs none /mnt && touch /mnt/inside && echo mounted=yes",
        print_ns_script(&["mnt"])
    ));
    let out = run_ok(&env);
    assert_eq!(field(&out, "mounted"), "yes", "{out}");
    assert_ne!(field(&out, "ns_mnt"), host_ns("mnt"));
    let host_mnt = env.bundle.rootfs().join("mnt");
    assert!(
        !host_mnt.join("inside").exists(),
        "the container's tmpfs landed on the host's rootfs directory"
    );
    assert!(
        !mount_points()
            .iter()
            .any(|m| std::path::Path::new(m) == host_mnt),
        "the container's mount is visible in the host's mount table"
    );
    env.assert_nothing_left();
}

#[test]
fn new_cgroup_namespace_shows_root_cgroup_paths() {
    let mut env = TestEnv::new("ns_cgroup_new");
    // Control: without a cgroup namespace the container's own cgroup (named
    // after its id) shows in /proc/self/cgroup.
    env.bundle.set_script("cat /proc/self/cgroup");
    let out = run_ok(&env);
    assert!(
        out.lines().any(|l| l.rsplit(':').next() != Some("/")),
        "without a cgroup namespace some path should not be /:\n{out}"
    );

    env.bundle.edit(|c| push_namespace(c, "cgroup"));
    env.bundle.set_script(&format!(
        "cat /proc/self/cgroup; {}",
        print_ns_script(&["cgroup"])
    ));
    let out = run_ok(&env);
    let lines: Vec<&str> = out.lines().filter(|l| !l.starts_with("ns_")).collect();
    assert!(!lines.is_empty(), "empty /proc/self/cgroup:\n{out}");
    for l in &lines {
        assert_eq!(
            l.splitn(3, ':').nth(2),
            Some("/"),
            "cgroup path is not / inside a cgroup namespace: {l}\n{out}"
        );
    }
    assert_ne!(field(&out, "ns_cgroup"), host_ns("cgroup"));
    env.assert_nothing_left();
}

#[test]
fn user_namespace_maps_root_to_host_uid_100000() {
    let mut env = TestEnv::new("ns_user_new");
    let shared = env.dir.join("shared");
    fs::create_dir(&shared).unwrap();
    fs::set_permissions(&shared, fs::Permissions::from_mode(0o777)).unwrap();
    // Container root (host uid 100000) cannot create mount targets in a
    // rootfs owned by host root, so the target exists already.
    fs::create_dir(env.bundle.rootfs().join("data")).unwrap();
    env.bundle.add_bind_mount(&shared, "/data");
    env.bundle.edit(user_namespace_config);
    env.bundle.set_script(&format!(
        "cat /proc/self/uid_map | sed 's/^/uid_map /'; \
         cat /proc/self/gid_map | sed 's/^/gid_map /'; \
         echo uid=$(id -u); echo gid=$(id -g); {}; \
         touch /data/made-inside && echo touched=yes",
        print_ns_script(&["user"])
    ));
    let out = run_ok(&env);
    let map = |prefix: &str| -> Vec<Vec<u64>> {
        let text: String = out
            .lines()
            .filter_map(|l| l.strip_prefix(prefix))
            .map(|l| format!("{l}\n"))
            .collect();
        id_map_lines(&text)
    };
    assert_eq!(map("uid_map "), vec![vec![0, 100000, 65536]], "{out}");
    assert_eq!(map("gid_map "), vec![vec![0, 100000, 65536]], "{out}");
    assert_eq!(field(&out, "uid"), "0");
    assert_eq!(field(&out, "gid"), "0");
    assert_ne!(field(&out, "ns_user"), host_ns("user"));
    assert_eq!(field(&out, "touched"), "yes", "{out}");
    let md = fs::metadata(shared.join("made-inside")).expect("file made in the container");
    assert_eq!(
        (md.uid(), md.gid()),
        (100000, 100000),
        "container root must own files as host uid/gid 100000"
    );
    env.assert_nothing_left();
}

/// Seconds since boot (CLOCK_BOOTTIME) as the test process sees it.
fn host_uptime() -> f64 {
    fs::read_to_string("/proc/uptime")
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .parse()
        .unwrap()
}

/// runc 1.1.5 lacks time namespaces (`linux.timeOffsets`): validated
/// against rrun only.
#[test]
fn time_namespace_offsets_shift_uptime() {
    if skip_on_reference("time namespace support") {
        return;
    }
    let mut env = TestEnv::new("ns_time_new");
    env.bundle.edit(|c| {
        push_namespace(c, "time");
        c["linux"]["timeOffsets"] = json!({
            "monotonic": {"secs": 3600, "nanosecs": 0},
            "boottime": {"secs": 86400, "nanosecs": 0}
        });
    });
    env.bundle.set_script(&format!(
        "echo uptime=$(cut -d' ' -f1 /proc/uptime); {}",
        print_ns_script(&["time"])
    ));
    let before = host_uptime();
    let out = run_ok(&env);
    let after = host_uptime();
    let inside: f64 = field(&out, "uptime").parse().unwrap();
    assert!(
        inside >= before + 86400.0 - 0.5 && inside <= after + 86400.0 + 0.5,
        "uptime inside {inside} is not host uptime ({before}..{after}) + 86400"
    );
    assert_ne!(field(&out, "ns_time"), host_ns("time"));
    env.assert_nothing_left();
}

// ---------------------------------------------------------------------------
// Joined namespaces
// ---------------------------------------------------------------------------

#[test]
fn joined_network_uts_ipc_namespaces_are_shared_with_first_container() {
    let mut env = TestEnv::new("ns_join_net");
    env.bundle.edit(|c| c["hostname"] = json!("first-ctr"));
    env.bundle.set_args(&["sleep", "1000"]);
    let a_id = format!("{}-a", env.id);
    let a_pid = start_sleeper(&env, &env.bundle, &a_id);

    let mut b = second_bundle(&env, "second");
    b.edit(|c| {
        // Joining the uts namespace: setting a hostname would change A's.
        c.as_object_mut().unwrap().remove("hostname");
        set_namespaces(
            c,
            json!([
                {"type": "pid"},
                {"type": "mount"},
                {"type": "network", "path": format!("/proc/{a_pid}/ns/net")},
                {"type": "uts", "path": format!("/proc/{a_pid}/ns/uts")},
                {"type": "ipc", "path": format!("/proc/{a_pid}/ns/ipc")}
            ]),
        );
    });
    b.set_script(&format!(
        "echo name=$(hostname); {}",
        print_ns_script(&["net", "uts", "ipc", "pid"])
    ));
    let b_id = format!("{}-b", env.id);
    let out = env
        .rt
        .cmd(&["run", "--bundle", b.path_str(), b_id.as_str()]);
    assert!(out.status.success(), "second container: {}", describe(&out));
    let out = stdout(&out);
    assert_eq!(field(&out, "name"), "first-ctr", "{out}");
    for kind in ["net", "uts", "ipc"] {
        assert_eq!(
            field(&out, &format!("ns_{kind}")),
            pid_ns(a_pid, kind),
            "{kind} namespace not joined"
        );
        assert_ne!(field(&out, &format!("ns_{kind}")), host_ns(kind));
    }
    // Not joined: the pid namespace is B's own.
    assert_ne!(field(&out, "ns_pid"), pid_ns(a_pid, "pid"));
    assert!(process_alive(a_pid), "first container died");

    stop_and_delete(&env, &a_id);
    assert_nothing_left(&env.rt, &a_id, &env.bundle);
    assert_nothing_left(&env.rt, &b_id, &b);
}

/// Also: B's config asks for a new network namespace, which rrun starts
/// making as soon as it reads the config; joining a pid namespace needs two
/// stages, where the clone's child makes it instead, so that start is
/// stopped, and B gets a network namespace of its own all the same.
#[test]
fn joined_pid_namespace_sees_first_containers_processes() {
    let mut env = TestEnv::with_log("ns_join_pid");
    env.bundle.set_args(&["sleep", "1000"]);
    let a_id = format!("{}-a", env.id);
    let a_pid = start_sleeper(&env, &env.bundle, &a_id);

    let mut b = second_bundle(&env, "second");
    b.edit(|c| {
        set_namespaces(
            c,
            json!([
                {"type": "pid", "path": format!("/proc/{a_pid}/ns/pid")},
                {"type": "mount"}, {"type": "network"}, {"type": "ipc"}, {"type": "uts"}
            ]),
        );
    });
    b.set_script(&format!(
        "echo self=$$; echo init=$(tr '\\0' ' ' < /proc/1/cmdline); {}",
        print_ns_script(&["pid", "net"])
    ));
    let b_id = format!("{}-b", env.id);
    let out = env
        .rt
        .cmd(&["--debug", "run", "--bundle", b.path_str(), b_id.as_str()]);
    assert!(out.status.success(), "second container: {}", describe(&out));
    let out = stdout(&out);
    let net = field(&out, "ns_net");
    assert!(
        net != host_ns("net") && net != pid_ns(a_pid, "net"),
        "B's network namespace {net} is the host's or A's"
    );
    if !is_reference_runtime() {
        let log = env.rt.log_contents();
        assert!(
            log.contains("network namespace helper stopped")
                && !log.contains("network namespace made by the helper"),
            "the early network namespace helper was not stopped:\n{log}"
        );
    }
    assert_eq!(
        field(&out, "init").trim(),
        "sleep 1000",
        "pid 1 in the joined namespace should be A's sleep:\n{out}"
    );
    assert_ne!(
        field(&out, "self"),
        "1",
        "B must not be pid 1 of A's namespace"
    );
    assert_eq!(field(&out, "ns_pid"), pid_ns(a_pid, "pid"));

    stop_and_delete(&env, &a_id);
    assert_nothing_left(&env.rt, &a_id, &env.bundle);
    assert_nothing_left(&env.rt, &b_id, &b);
}

#[test]
fn joined_user_namespace_uses_first_containers_mapping() {
    let mut env = TestEnv::new("ns_join_user");
    env.bundle.edit(user_namespace_config);
    env.bundle.set_args(&["sleep", "1000"]);
    let a_id = format!("{}-a", env.id);
    let a_pid = start_sleeper(&env, &env.bundle, &a_id);
    let a_user = pid_ns(a_pid, "user");
    assert_ne!(a_user, host_ns("user"));

    let mut b = second_bundle(&env, "second");
    b.edit(|c| {
        user_namespace_config(c);
        // Same mappings as A (runc needs them to know the host root uid);
        // the namespace itself is A's.
        let ns = c["linux"]["namespaces"].as_array_mut().unwrap();
        ns.retain(|n| n["type"] != "user");
        ns.push(json!({"type": "user", "path": format!("/proc/{a_pid}/ns/user")}));
    });
    b.set_script(&format!(
        "cat /proc/self/uid_map; echo uid=$(id -u); {}",
        print_ns_script(&["user", "net"])
    ));
    let b_id = format!("{}-b", env.id);
    let out = env
        .rt
        .cmd(&["run", "--bundle", b.path_str(), b_id.as_str()]);
    assert!(out.status.success(), "second container: {}", describe(&out));
    let out = stdout(&out);
    assert_eq!(field(&out, "ns_user"), a_user, "user namespace not joined");
    assert_eq!(id_map_lines(&out), vec![vec![0, 100000, 65536]], "{out}");
    assert_eq!(field(&out, "uid"), "0");
    // B's own network namespace is new (owned by A's user namespace).
    assert_ne!(field(&out, "ns_net"), pid_ns(a_pid, "net"));
    assert_ne!(field(&out, "ns_net"), host_ns("net"));

    stop_and_delete(&env, &a_id);
    assert_nothing_left(&env.rt, &a_id, &env.bundle);
    assert_nothing_left(&env.rt, &b_id, &b);
}

// ---------------------------------------------------------------------------
// Namespaces not listed
// ---------------------------------------------------------------------------

#[test]
fn unlisted_namespaces_are_shared_with_the_host() {
    let mut env = TestEnv::new("ns_unlisted");
    env.bundle.edit(|c| {
        c.as_object_mut().unwrap().remove("hostname");
        set_namespaces(c, json!([{"type": "pid"}, {"type": "mount"}]));
    });
    env.bundle.set_script(&format!(
        "echo name=$(hostname); {}; \
         tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d ' ' | sed 's/^/dev=/'",
        print_ns_script(&["net", "ipc", "uts", "cgroup", "pid"])
    ));
    let out = run_ok(&env);
    for kind in ["net", "ipc", "uts", "cgroup"] {
        assert_eq!(
            field(&out, &format!("ns_{kind}")),
            host_ns(kind),
            "{kind} namespace is not the host's"
        );
    }
    // Control: the listed pid namespace is new.
    assert_ne!(field(&out, "ns_pid"), host_ns("pid"));
    let host_name = fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    assert_eq!(field(&out, "name"), host_name.trim());
    let host_devs: Vec<String> = fs::read_to_string("/proc/net/dev")
        .unwrap()
        .lines()
        .skip(2)
        .filter_map(|l| l.split(':').next())
        .map(|d| d.trim().to_string())
        .collect();
    let devs: Vec<&str> = out.lines().filter_map(|l| l.strip_prefix("dev=")).collect();
    assert!(host_devs.len() > 1);
    assert_eq!(
        devs, host_devs,
        "the container should see the host's devices"
    );
    env.assert_nothing_left();
}
