//! Rootless: the runtime run by a real unprivileged user (`rrunrl1`,
//! `rrunrl2`, made by the harness with /etc/subuid and /etc/subgid ranges:
//! see `common::rootless`), with the config `spec --rootless` writes as
//! that user. Each test checks what the user sees.
//!
//! Validate against runc with:
//! `RRUN_TEST_RUNTIME=/usr/sbin/runc cargo test --test rootless -- --test-threads=2`
//! runc 1.1.5 passes all but three, where rrun does more: without cgroups
//! its `ps` fails ("unable to get all container pids") and so `kill --all`
//! finds nothing, and it does not bind `/sys` when sysfs cannot be mounted
//! (later runc versions do).
//!
//! On a host whose cgroup tree the user cannot write (this development
//! host: cgroup v1), containers run without cgroups and limits are refused;
//! in the systemd VM the user's own systemd delegates a cgroup v2 subtree,
//! and the `delegated_` tests read limits back there (they skip elsewhere,
//! saying why).

mod common;

use common::console::*;
use common::rootless::*;
use common::*;
use serde_json::json;
use std::fs;
use std::os::fd::AsFd;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::time::Duration;

const T: Duration = Duration::from_secs(10);

fn env(name: &str) -> RootlessEnv {
    RootlessEnv::new(name, &test_user(1))
}

/// Runs `script` in a fresh container as the user; its stdout.
fn run_script(env: &mut RootlessEnv, script: &str) -> String {
    env.bundle.set_script(script);
    let out = env.run(&[]);
    assert!(
        out.status.success(),
        "run as {}: {}",
        env.user.name,
        describe(&out)
    );
    stdout(&out)
}

/// The (container, host, size) lines of an id map.
fn map_lines(text: &str) -> Vec<Vec<u64>> {
    text.lines()
        .map(|l| {
            l.split_whitespace()
                .filter_map(|x| x.parse().ok())
                .collect()
        })
        .filter(|v: &Vec<u64>| v.len() == 3)
        .collect()
}

/// True when `user` may make a directory in the cgroup the runtime would
/// use for it (only with a delegated subtree).
fn user_owns_a_cgroup(user: &TestUser) -> bool {
    let own = fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
    let unified = own
        .lines()
        .find_map(|l| l.strip_prefix("0::"))
        .unwrap_or("/");
    let dir = std::path::Path::new("/sys/fs/cgroup").join(unified.trim_start_matches('/'));
    fs::metadata(&dir).is_ok_and(|m| m.uid() == user.uid)
        && fs::read_to_string("/proc/self/mountinfo")
            .unwrap_or_default()
            .lines()
            .any(|l| l.contains(" /sys/fs/cgroup ") && l.contains(" - cgroup2 "))
}

#[test]
fn rootless_run_maps_container_root_to_the_caller() {
    let mut env = env("rl_maps_caller");
    let out = run_script(
        &mut env,
        "id -u; id -g; cat /proc/self/uid_map; echo --; cat /proc/self/gid_map",
    );
    let mut parts = out.split("--");
    let (ids, gids) = (parts.next().unwrap(), parts.next().unwrap_or(""));
    let mut lines = ids.lines();
    assert_eq!(lines.next(), Some("0"), "uid inside: {out}");
    assert_eq!(lines.next(), Some("0"), "gid inside: {out}");
    assert_eq!(
        map_lines(ids),
        vec![vec![0, env.user.uid as u64, 1]],
        "the container's uid 0 is the caller's uid: {out}"
    );
    assert_eq!(
        map_lines(gids),
        vec![vec![0, env.user.gid as u64, 1]],
        "the container's gid 0 is the caller's gid: {out}"
    );
    env.assert_nothing_left();
}

#[test]
fn rootless_container_cannot_write_a_host_file_its_user_cannot() {
    let mut env = env("rl_host_file");
    let host = env.dir.join("roots-file");
    fs::write(&host, "root's\n").unwrap();
    fs::set_permissions(&host, fs::Permissions::from_mode(0o644)).unwrap();
    std::os::unix::fs::chown(&host, Some(0), Some(0)).unwrap();
    env.bundle.add_bind_mount(&host, "/mnt/f");
    let out = run_script(
        &mut env,
        "if echo pwned > /mnt/f; then echo WROTE; else echo REFUSED; fi; \
         chown 0:0 /mnt/f 2>/dev/null && echo CHOWNED; \
         chmod 666 /mnt/f 2>/dev/null && echo CHMODDED; true",
    );
    assert!(out.contains("REFUSED"), "{out}");
    assert!(
        !out.contains("CHOWNED") && !out.contains("CHMODDED"),
        "{out}"
    );
    assert_eq!(fs::read_to_string(&host).unwrap(), "root's\n");
    assert_eq!(fs::metadata(&host).unwrap().mode() & 0o777, 0o644);
}

#[test]
fn rootless_multi_range_mapping_goes_through_newuidmap() {
    let mut env = env("rl_subids");
    env.map_subids();
    env.bundle.edit(|c| {
        c["process"]["user"] = json!({"uid": 1000, "gid": 1000});
        c["process"]["args"] = json!(["sleep", "30"]);
    });
    env.create();
    let pid = env.rt.pid(env.id());
    let inside = fs::read_to_string(format!("/proc/{pid}/uid_map")).unwrap();
    let u = &env.user;
    assert_eq!(
        map_lines(&inside),
        vec![
            vec![0, u.uid as u64, 1],
            vec![1, u.subid as u64, SUBIDS as u64]
        ],
        "uid_map"
    );
    let gmap = fs::read_to_string(format!("/proc/{pid}/gid_map")).unwrap();
    assert_eq!(
        map_lines(&gmap),
        vec![
            vec![0, u.gid as u64, 1],
            vec![1, u.subid as u64, SUBIDS as u64]
        ],
        "gid_map"
    );
    // The process's uid 1000 is the host's subid + 999.
    let status = fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let uid_line = status.lines().find(|l| l.starts_with("Uid:")).unwrap();
    let want = (u.subid + 999).to_string();
    assert!(
        uid_line.split_whitespace().skip(1).all(|x| x == want),
        "host uid of the container's uid 1000: {uid_line} (want {want})"
    );
    env.rt.run_ok(&["delete", "--force", env.id()]);
    env.assert_nothing_left();
}

#[test]
fn rootless_ranges_not_in_subuid_are_refused_naming_the_field() {
    let mut env = env("rl_bad_subids");
    let u = env.user.clone();
    env.bundle.edit(|c| {
        c["linux"]["uidMappings"] = json!([
            {"containerID": 0, "hostID": u.uid, "size": 1},
            {"containerID": 1, "hostID": 100000, "size": 1000}
        ]);
    });
    let out = env.run(&[]);
    assert_error_ref(&out, &["linux.uidMappings"], &["newuidmap", "uid"]);
    env.assert_nothing_left();
}

#[test]
fn rootless_default_root_is_xdg_runtime_dir_rrun_with_mode_0700() {
    let mut env = env("rl_default_root");
    env.bundle.set_args(&["sleep", "30"]);
    let bin = runtime_bin();
    let name = bin.file_name().unwrap().to_str().unwrap().to_string();
    let root = env.xdg.join(if name.starts_with("rrun") {
        "rrun"
    } else {
        &name
    });
    let as_user = |args: &[&str]| {
        let out = env
            .user
            .command(&env.xdg, &bin)
            .args(args)
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap();
        assert!(out.status.success(), "{args:?}: {}", describe(&out));
        out
    };
    as_user(&["run", "-d", "--bundle", env.bundle.path_str(), env.id()]);
    let guard = DeleteOnDrop(env.user.clone(), env.xdg.clone(), env.id().to_string());
    let m = fs::metadata(&root).expect("the default root exists");
    assert_eq!(m.uid(), env.user.uid, "owned by the user");
    assert_eq!(m.mode() & 0o777, 0o700, "mode of {}", root.display());
    assert!(root.join(env.id()).join("state.json").exists());
    let list = as_user(&["list", "-q"]);
    assert_eq!(stdout(&list).trim(), env.id());
    as_user(&["delete", "--force", env.id()]);
    assert!(!root.join(env.id()).exists());
    drop(guard);
}

/// Force-deletes a container from the user's default root when dropped.
struct DeleteOnDrop(TestUser, std::path::PathBuf, String);

impl Drop for DeleteOnDrop {
    fn drop(&mut self) {
        let _ = self
            .0
            .command(&self.1, &runtime_bin())
            .args(["delete", "--force", &self.2])
            .output();
    }
}

#[test]
fn rootless_list_state_delete_never_see_another_users_containers() {
    let mut a = env("rl_isolation");
    let b_user = test_user(2);
    a.bundle.set_args(&["sleep", "30"]);
    // A root both users may write, as /tmp is: user A's runtime root.
    let shared = a.rt.root().to_path_buf();
    fs::create_dir(&shared).unwrap();
    fs::set_permissions(&shared, fs::Permissions::from_mode(0o1777)).unwrap();
    let shared_s = shared.to_str().unwrap();
    let out =
        a.rt.cmd(&["run", "-d", "--bundle", a.bundle.path_str(), a.id()]);
    assert!(out.status.success(), "{}", describe(&out));
    let pid = a.rt.pid(a.id());
    let b_xdg = a.dir.join("xdg-b");
    fs::create_dir(&b_xdg).unwrap();
    b_user.chown(&b_xdg);
    let as_b = |args: &[&str]| {
        b_user
            .command(&b_xdg, &runtime_bin())
            .args(["--root", shared_s])
            .args(args)
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap()
    };
    let list = as_b(&["list", "-q"]);
    assert!(
        !stdout(&list).contains(a.id()),
        "another user's list shows the container: {}",
        describe(&list)
    );
    let list = as_b(&["list", "--format", "json"]);
    assert!(!stdout(&list).contains(a.id()), "{}", describe(&list));
    let state = as_b(&["state", a.id()]);
    assert!(!state.status.success(), "{}", describe(&state));
    assert!(!stdout(&state).contains(&pid.to_string()));
    for args in [
        &["delete", "--force", a.id()][..],
        &["kill", a.id(), "KILL"][..],
    ] {
        let out = as_b(args);
        assert!(
            !out.status.success(),
            "{args:?} as another user: {}",
            describe(&out)
        );
    }
    assert!(
        process_alive(pid),
        "another user's command killed the container"
    );
    let del = a.rt.cmd(&["delete", "--force", a.id()]);
    assert!(del.status.success(), "{}", describe(&del));
    assert!(wait_for(T, || !process_alive(pid)));
}

#[test]
fn rootless_limits_are_refused_naming_the_field_when_the_cgroup_tree_is_not_writable() {
    let mut env = env("rl_limits_refused");
    if user_owns_a_cgroup(&env.user) {
        eprintln!("skipped: the user owns a delegated cgroup here (see delegated_ tests)");
        return;
    }
    env.bundle.edit(|c| {
        c["linux"]["resources"] = json!({"memory": {"limit": 67108864}});
    });
    let out = env.run(&[]);
    assert_error_ref(
        &out,
        &["linux.resources.memory"],
        &["cgroup", "memory", "rootless"],
    );
    if !is_reference_runtime() {
        let msg = error_message(&out);
        assert!(msg.contains("rootless"), "says why: {msg}");
    }
    env.assert_nothing_left();
}

#[test]
fn rootless_without_limits_runs_without_cgroups_and_says_so_in_the_debug_log() {
    let mut env = env("rl_no_cgroups");
    if user_owns_a_cgroup(&env.user) {
        eprintln!("skipped: the user owns a delegated cgroup here");
        return;
    }
    env.bundle.set_script("true");
    let id = env.id().to_string();
    let out = env
        .rt
        .cmd(&["--debug", "run", "--bundle", env.bundle.path_str(), &id]);
    assert!(out.status.success(), "{}", describe(&out));
    if !is_reference_runtime() {
        assert!(
            stderr(&out).contains("without cgroups"),
            "the debug log says why: {}",
            describe(&out)
        );
    }
    env.assert_nothing_left();
}

#[test]
fn rootless_create_start_exec_ps_kill_delete() {
    let mut env = env("rl_lifecycle");
    env.bundle.set_args(&["sleep", "60"]);
    env.create();
    assert_eq!(env.rt.status(env.id()), "created");
    env.rt.start(env.id());
    env.rt.wait_status(env.id(), "running", T);
    let pid = env.rt.pid(env.id());
    let exec = env.rt.run_ok(&[
        "exec",
        env.id(),
        "sh",
        "-c",
        "id -u; cat /proc/self/uid_map",
    ]);
    let text = stdout(&exec);
    assert_eq!(text.lines().next(), Some("0"), "{text}");
    assert_eq!(
        map_lines(&text),
        vec![vec![0, env.user.uid as u64, 1]],
        "{text}"
    );
    let ps = env.rt.run_ok(&["ps", "--format", "json", env.id()]);
    let pids: Vec<i32> = serde_json::from_slice(&ps.stdout).unwrap();
    assert!(pids.contains(&pid), "ps lists init {pid}: {pids:?}");
    let table = env.rt.run_ok(&["ps", env.id()]);
    assert!(stdout(&table).contains("sleep"), "{}", describe(&table));
    env.rt.run_ok(&["kill", env.id(), "KILL"]);
    env.rt.wait_status(env.id(), "stopped", T);
    env.rt.run_ok(&["delete", env.id()]);
    env.assert_nothing_left();
}

#[test]
fn rootless_kill_all_reaches_every_process_of_the_container() {
    let mut env = env("rl_kill_all");
    env.bundle.set_script("sleep 60 & sleep 60 & wait");
    env.create();
    env.rt.start(env.id());
    let ok = wait_for(T, || {
        let ps = env.rt.cmd(&["ps", "--format", "json", env.id()]);
        serde_json::from_slice::<Vec<i32>>(&ps.stdout).is_ok_and(|p| p.len() >= 3)
    });
    assert!(ok, "ps lists init and both sleeps");
    let ps = env.rt.run_ok(&["ps", "--format", "json", env.id()]);
    let pids: Vec<i32> = serde_json::from_slice(&ps.stdout).unwrap();
    env.rt.run_ok(&["kill", "--all", env.id(), "KILL"]);
    assert!(
        wait_for(T, || pids.iter().all(|&p| !process_alive(p))),
        "{pids:?}"
    );
    env.rt.run_ok(&["delete", env.id()]);
    env.assert_nothing_left();
}

#[test]
fn rootless_pause_works_with_a_writable_freezer_and_fails_clearly_without() {
    let mut env = env("rl_pause");
    env.bundle.set_args(&["sleep", "60"]);
    env.create();
    env.rt.start(env.id());
    let out = env.rt.cmd(&["pause", env.id()]);
    if user_owns_a_cgroup(&env.user) {
        assert!(out.status.success(), "{}", describe(&out));
        assert_eq!(env.rt.status(env.id()), "paused");
        env.rt.run_ok(&["resume", env.id()]);
    } else {
        assert_error_ref(&out, &["freezer", "cgroup"], &["paused", "pause"]);
        assert_eq!(env.rt.status(env.id()), "running");
    }
    env.rt.run_ok(&["delete", "--force", env.id()]);
    env.assert_nothing_left();
}

#[test]
fn rootless_hooks_run_as_the_caller() {
    let mut env = env("rl_hooks");
    let out = env.dir.join("hooks.out");
    fs::write(&out, "").unwrap();
    env.user.chown(&out);
    let hook = |name: &str| {
        json!({"path": "/bin/sh", "args": ["sh", "-c",
            format!("echo {name}=$(id -u) >> {}", out.display())]})
    };
    env.bundle.edit(|c| {
        c["hooks"] = json!({
            "createRuntime": [hook("createRuntime")],
            "poststart": [hook("poststart")],
            "poststop": [hook("poststop")]
        });
    });
    let r = env.run(&[]);
    assert!(r.status.success(), "{}", describe(&r));
    let text = fs::read_to_string(&out).unwrap();
    for kind in ["createRuntime", "poststart", "poststop"] {
        assert!(
            text.contains(&format!("{kind}={}", env.user.uid)),
            "{kind} hook ran as uid {}: {text:?}",
            env.user.uid
        );
    }
    env.assert_nothing_left();
}

#[test]
fn rootless_console_socket_receives_the_pty() {
    let mut env = env("rl_console");
    env.bundle.edit(|c| {
        c["process"]["terminal"] = json!(true);
        c["process"]["args"] = json!(["sh", "-c", "echo tty=$(tty); echo DONE; sleep 5"]);
    });
    let sock = ConsoleSocket::bind(env.dir.path());
    fs::set_permissions(sock.path_str(), fs::Permissions::from_mode(0o777)).unwrap();
    env.rt.run_ok(&[
        "create",
        "--bundle",
        env.bundle.path_str(),
        "--console-socket",
        sock.path_str(),
        env.id(),
    ]);
    let master = sock.receive_master();
    env.rt.start(env.id());
    let text = read_until(master.as_fd(), "DONE", T);
    assert!(text.contains("tty=/dev/pts/"), "{text:?}");
    env.rt.run_ok(&["delete", "--force", env.id()]);
    env.assert_nothing_left();
}

#[test]
fn rootless_devices_are_the_hosts_nodes_bound_in() {
    let mut env = env("rl_devices");
    let out = run_script(
        &mut env,
        "stat -c '%n %t:%T' /dev/null /dev/zero /dev/urandom /dev/tty; \
         echo x > /dev/null && echo NULL_OK; head -c 4 /dev/zero | wc -c",
    );
    for want in [
        "/dev/null 1:3",
        "/dev/zero 1:5",
        "/dev/urandom 1:9",
        "/dev/tty 5:0",
        "NULL_OK",
    ] {
        assert!(out.contains(want), "{want}: {out}");
    }
    assert_eq!(out.lines().last().map(str::trim), Some("4"), "{out}");
}

#[test]
fn rootless_sysfs_is_bound_read_only_when_it_cannot_be_mounted() {
    let mut env = env("rl_sysfs");
    // A sysfs mount (not the bind spec --rootless writes), and no network
    // namespace of the container's own: the kernel refuses the mount.
    env.bundle.edit(|c| {
        for m in c["mounts"].as_array_mut().unwrap() {
            if m["destination"] == "/sys" {
                *m = json!({"destination": "/sys", "type": "sysfs", "source": "sysfs",
                            "options": ["nosuid", "noexec", "nodev", "ro"]});
            }
        }
    });
    let out = run_script(
        &mut env,
        "ls /sys/kernel >/dev/null && echo SYS_OK; \
         if touch /sys/kernel/rrun-x 2>/dev/null; then echo WRITABLE; fi; true",
    );
    assert!(out.contains("SYS_OK"), "{out}");
    assert!(!out.contains("WRITABLE"), "{out}");
    env.assert_nothing_left();
}

#[test]
fn rootless_oom_score_adj_below_the_current_value_is_refused() {
    let mut env = env("rl_oom_low");
    let own: i32 = fs::read_to_string("/proc/self/oom_score_adj")
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    env.bundle
        .edit(|c| c["process"]["oomScoreAdj"] = json!(own - 100));
    let out = env.run(&[]);
    assert_error_ref(&out, &["process.oomScoreAdj"], &["oom_score_adj"]);
    env.assert_nothing_left();
    // Raising it is fine.
    let want = (own + 100).min(1000);
    env.bundle
        .edit(|c| c["process"]["oomScoreAdj"] = json!(want));
    let out = run_script(&mut env, "cat /proc/self/oom_score_adj");
    assert_eq!(out.trim(), want.to_string());
}

#[test]
fn rootless_without_a_user_namespace_is_refused_naming_the_field() {
    let mut env = env("rl_no_userns");
    env.bundle.edit(|c| {
        let ns = c["linux"]["namespaces"].as_array_mut().unwrap();
        ns.retain(|n| n["type"] != "user");
        let linux = c["linux"].as_object_mut().unwrap();
        linux.remove("uidMappings");
        linux.remove("gidMappings");
    });
    let out = env.run(&[]);
    assert_error_ref(&out, &["linux.namespaces"], &["namespaces"]);
    env.assert_nothing_left();
}

/// Rootless Podman as a test user: its own storage, runtime dir and home
/// under the test dir, rrun as its runtime, no network. Kills Podman's
/// pause process (which holds its user namespace) when dropped.
struct RootlessPodman<'a> {
    env: &'a RootlessEnv,
    home: std::path::PathBuf,
    /// With the user's systemd: Podman's systemd cgroup manager (its
    /// default on systemd hosts), which passes `--systemd-cgroup` to rrun;
    /// otherwise cgroupfs.
    systemd: Option<&'a UserManager>,
}

impl<'a> RootlessPodman<'a> {
    /// None (the test skips) when Podman is not installed.
    fn new(env: &'a RootlessEnv) -> Option<RootlessPodman<'a>> {
        if std::process::Command::new("podman")
            .arg("--version")
            .output()
            .is_err()
        {
            return None;
        }
        let home = env.dir.join("home");
        fs::create_dir_all(&home).unwrap();
        env.user.chown(&home);
        Some(RootlessPodman {
            env,
            home,
            systemd: None,
        })
    }

    /// Podman with the systemd cgroup manager of `manager`'s user.
    fn with_systemd(mut self, manager: &'a UserManager) -> RootlessPodman<'a> {
        self.systemd = Some(manager);
        self
    }

    /// `run -d --name NAME --network=none OPTS IMAGE sleep 300`.
    fn run_sleeper(&self, name: &str, image: &str, opts: &[&str]) {
        let mut args = vec!["run", "-d", "--name", name, "--network=none"];
        args.extend_from_slice(opts);
        args.extend([image, "sleep", "300"]);
        self.ok(&args);
    }

    /// Imports the test's busybox root file system as `image`.
    fn import_rootfs(&self, image: &str) {
        let tar = self.env.dir.join("rootfs.tar");
        let st = std::process::Command::new("tar")
            .arg("-C")
            .arg(self.env.bundle.rootfs())
            .arg("-cf")
            .arg(&tar)
            .arg(".")
            .status()
            .unwrap();
        assert!(st.success());
        self.env.user.chown(&tar);
        self.ok(&["import", tar.to_str().unwrap(), image]);
    }

    fn cmd(&self, args: &[&str]) -> std::process::Output {
        let d = self.env.dir.path();
        let (mut c, manager) = match self.systemd {
            // As in a login session: in the user's own subtree (a transient
            // service of the user's manager), where its systemd may move
            // Podman's processes into scopes; with the user's bus, for
            // Podman and for rrun (through conmon).
            Some(m) => {
                let mut w = m.wrapper();
                // A detached container's conmon outlives the podman command
                // (in a scope of its own when Podman can move it there):
                // the transient service must not take it down when podman
                // exits (`systemd-run --wait` would wait for that, then
                // report the kill).
                let end = w.len() - 1;
                w.splice(end..end, ["-p".to_string(), "KillMode=process".to_string()]);
                let mut c = std::process::Command::new(&w[0]);
                c.args(&w[1..]).arg("env").arg(format!(
                    "DBUS_SESSION_BUS_ADDRESS=unix:path={}",
                    m.runtime_dir.join("bus").display()
                ));
                (c, "--cgroup-manager=systemd")
            }
            None => (
                self.env
                    .user
                    .command(&self.env.xdg, std::path::Path::new("env")),
                "--cgroup-manager=cgroupfs",
            ),
        };
        c.arg(format!("HOME={}", self.home.display()));
        c.args(["timeout", "120"])
            .arg("podman")
            .arg(format!("--root={}", d.join("pstore").display()))
            .arg(format!("--runroot={}", d.join("prun").display()))
            .args(["--storage-driver=vfs", manager])
            .args(["--events-backend=file"])
            .arg(format!("--runtime={}", runtime_bin().display()))
            .args(args)
            // Podman re-enters its working directory in its user
            // namespace: one the user may reach.
            .current_dir(&self.home)
            .stdin(std::process::Stdio::null());
        c.output().expect("run podman")
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.cmd(args);
        assert!(
            out.status.success(),
            "podman {}: {}",
            args.join(" "),
            describe(&out)
        );
        stdout(&out)
    }
}

impl Drop for RootlessPodman<'_> {
    fn drop(&mut self) {
        let _ = self.cmd(&["rm", "--force", "--all", "--time", "0"]);
        let xdg = self.systemd.map_or(&self.env.xdg, |m| &m.runtime_dir);
        let pause = xdg.join("libpod/tmp/pause.pid");
        if let Some(pid) = fs::read_to_string(pause)
            .ok()
            .and_then(|p| p.trim().parse::<i32>().ok())
            .filter(|&p| p > 0)
        {
            // SAFETY: a positive pid Podman recorded for this test's user.
            unsafe { libc::kill(pid, libc::SIGKILL) };
            wait_for(T, || !process_alive(pid));
        }
    }
}

#[test]
#[ignore = "engine test: CI's engine pass runs it (cargo test --test rootless -- --ignored)"]
fn rootless_podman_runs_execs_stops_and_removes_a_container() {
    let env = env("rl_podman");
    let Some(podman) = RootlessPodman::new(&env) else {
        eprintln!("skipped: podman is not installed");
        return;
    };
    let image = "localhost/rrun-rootless:test";
    podman.import_rootfs(image);
    let out = podman.ok(&["run", "--rm", "--network=none", image, "echo", "hello"]);
    assert_eq!(out.trim(), "hello");
    let name = env.id();
    podman.run_sleeper(name, image, &[]);
    let out = podman.ok(&["exec", name, "sh", "-c", "id -u; cat /proc/self/uid_map"]);
    assert_eq!(out.lines().next(), Some("0"), "{out}");
    let maps = map_lines(&out);
    assert_eq!(
        maps.first(),
        Some(&vec![0, env.user.uid as u64, 1]),
        "the container's root is the user: {out}"
    );
    let top = podman.ok(&["top", name]);
    assert!(top.contains("sleep"), "{top}");
    podman.ok(&["stop", "--time", "1", name]);
    let state = podman.ok(&["inspect", "--format", "{{.State.Status}}", name]);
    assert_eq!(state.trim(), "exited");
    podman.ok(&["rm", name]);
    let left = podman.ok(&["ps", "--all", "--quiet"]);
    assert!(left.trim().is_empty(), "containers left: {left}");
}

/// What current distributions run: rootless Podman with its default
/// cgroup manager, systemd (the user's own, on the systemd VM), which
/// makes rrun create the container as a scope of the user's manager
/// (`--systemd-cgroup`, the user's bus): the container's cgroup is that
/// scope in the user's delegated subtree, with the memory limit in its
/// file and in the unit; `podman stop` and `rm` leave no scope.
#[test]
#[ignore = "engine test: the systemd VM runs it (with the user's systemd)"]
fn rootless_podman_with_the_systemd_cgroup_manager_runs_the_container_in_a_user_scope() {
    let env = env("rl_podman_sd");
    let Some(manager) = user_manager_or_skip(&env.user) else {
        return;
    };
    let Some(podman) = RootlessPodman::new(&env) else {
        eprintln!("skipped: podman is not installed");
        return;
    };
    let podman = podman.with_systemd(&manager);
    let image = "localhost/rrun-rootless:test";
    podman.import_rootfs(image);
    let name = env.id();
    podman.run_sleeper(name, image, &["--memory=64m"]);
    let pid: i32 = podman
        .ok(&["inspect", "--format", "{{.State.Pid}}", name])
        .trim()
        .parse()
        .expect("the container's pid");
    let id = podman.ok(&["inspect", "--format", "{{.Id}}", name]);
    let unit = format!("libpod-{}.scope", id.trim());
    let dir = cgroup_dir_of(pid);
    assert!(dir.ends_with(&unit), "{}", dir.display());
    assert!(
        dir.to_string_lossy()
            .contains(&format!("user@{}.service", env.user.uid)),
        "in the user's delegated subtree: {}",
        dir.display()
    );
    assert_eq!(
        fs::read_to_string(dir.join("memory.max")).unwrap().trim(),
        "67108864",
        "{}",
        dir.display()
    );
    let show = manager.systemctl(&["show", "-p", "MemoryMax", "-p", "ActiveState", &unit]);
    assert!(show.contains("MemoryMax=67108864"), "{show}");
    assert!(show.contains("ActiveState=active"), "{show}");
    podman.ok(&["stop", "--time", "1", name]);
    podman.ok(&["rm", name]);
    let state = manager.systemctl(&["show", "-p", "LoadState", &unit]);
    assert!(!state.contains("LoadState=loaded"), "{unit} left: {state}");
    assert!(!dir.exists(), "{} removed", dir.display());
}

/// The user's own systemd (the systemd VM), or None and a "skipped" line
/// where it cannot start (a failure when the harness says it must).
fn user_manager_or_skip(user: &TestUser) -> Option<UserManager> {
    match UserManager::start(user) {
        Ok(m) => Some(m),
        Err(why) => {
            assert!(
                std::env::var_os("RRUN_TEST_SYSTEMD").is_none(),
                "RRUN_TEST_SYSTEMD is set but the user's manager cannot start: {why}"
            );
            eprintln!("skipped: {why}");
            None
        }
    }
}

/// The cgroup v2 directory of a process, from /proc/PID/cgroup.
fn cgroup_dir_of(pid: i32) -> std::path::PathBuf {
    let text = fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    let path = text.lines().find_map(|l| l.strip_prefix("0::")).unwrap();
    std::path::Path::new("/sys/fs/cgroup").join(path.trim_start_matches('/'))
}

/// On a systemd host (the systemd VM): the user's own manager delegates a
/// cgroup v2 subtree; rrun, run as the user inside it, makes the
/// container's cgroup there (cgroupfs), or has the user's manager make a
/// scope through the user's bus (`--systemd-cgroup`), and the memory and
/// pids limits read back from the cgroup files and from `systemctl --user
/// show`; pause works with that cgroup's freezer.
#[test]
fn rootless_delegated_cgroup_v2_subtree_gets_the_limits_in_both_drivers() {
    let user = test_user(1);
    let Some(manager) = user_manager_or_skip(&user) else {
        return;
    };
    for systemd in [false, true] {
        let name = if systemd {
            "rl_deleg_sd"
        } else {
            "rl_deleg_fs"
        };
        let mut env = RootlessEnv::new(name, &user);
        let w = manager.wrapper();
        let w: Vec<&str> = w.iter().map(String::as_str).collect();
        env.rt = Runtime::new(env.dir.path()).wrapped(&w);
        env.bundle.edit(|c| {
            c["process"]["args"] = json!(["sleep", "60"]);
            c["linux"]["resources"] = json!({
                "memory": {"limit": 67108864},
                "pids": {"limit": 42}
            });
        });
        let mut args = vec!["create", "--bundle", env.bundle.path_str()];
        if systemd {
            args.insert(0, "--systemd-cgroup");
        }
        args.push(env.id());
        let out = env.rt.cmd(&args);
        assert!(
            out.status.success(),
            "systemd={systemd}: {}",
            describe(&out)
        );
        let pid = env.rt.pid(env.id());
        let dir = cgroup_dir_of(pid);
        let read = |f: &str| fs::read_to_string(dir.join(f)).unwrap_or_default();
        assert_eq!(read("memory.max").trim(), "67108864", "{}", dir.display());
        assert_eq!(read("pids.max").trim(), "42", "{}", dir.display());
        let owner = fs::metadata(&dir).unwrap().uid();
        assert_eq!(owner, user.uid, "{} is the user's", dir.display());
        assert!(
            dir.to_string_lossy()
                .contains(&format!("user@{}.service", user.uid)),
            "in the user's delegated subtree: {}",
            dir.display()
        );
        if systemd {
            let unit = format!("rrun-{}.scope", env.id());
            assert!(dir.ends_with(&unit), "{}", dir.display());
            let show = manager.systemctl(&["show", "-p", "MemoryMax", "-p", "TasksMax", &unit]);
            assert!(show.contains("MemoryMax=67108864"), "{show}");
            assert!(show.contains("TasksMax=42"), "{show}");
        }
        env.rt.start(env.id());
        env.rt.run_ok(&["pause", env.id()]);
        assert_eq!(env.rt.status(env.id()), "paused");
        env.rt.run_ok(&["resume", env.id()]);
        let mut del = vec!["delete", "--force", env.id()];
        if systemd {
            del.insert(0, "--systemd-cgroup");
        }
        env.rt.run_ok(&del);
        assert!(!dir.exists(), "{} removed", dir.display());
        if systemd {
            let unit = format!("rrun-{}.scope", env.id());
            let state = manager.systemctl(&["show", "-p", "LoadState", &unit]);
            assert!(!state.contains("LoadState=loaded"), "{unit} left: {state}");
        }
        env.assert_nothing_left();
    }
}
