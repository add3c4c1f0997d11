//! The OCI lifecycle (spec, create, start, state, kill, delete, run, list)
//! as runc does it.
//!
//! Validate against runc with:
//! `RRUN_TEST_RUNTIME=/usr/bin/runc cargo test --test lifecycle -- --test-threads=2`
//!
//! Against runc 1.1.5 every test here passes. Observed runc behaviour the
//! tests pin down (rrun must match):
//! - `state` JSON: ociVersion, id, pid, status, bundle (absolute), rootfs,
//!   created (RFC 3339, nanoseconds, UTC "Z"), annotations (only when the
//!   config has some), owner ("" in `state`, the user name in `list`). A
//!   stopped container has pid 0.
//! - `run` exits with the container's exit code, or 128+N if it was killed by
//!   signal N; foreground `run` forwards signals it receives to the container.
//! - `list` prints a tabwriter table `ID PID STATUS BUNDLE CREATED OWNER`
//!   (aligned columns), `-q` ids only, `--format json` a JSON array (`null`
//!   when there are no containers).
//! - `kill` without a signal sends SIGTERM, accepts `KILL`, `SIGKILL`, `9`.
//! - `delete` of a created or stopped container works without `--force`, of
//!   a running one fails unless `--force`.

mod common;

use common::*;
use serde_json::{json, Value};
use std::fs;
use std::path::Path;
use std::time::Duration;

const T: Duration = Duration::from_secs(10);

/// A script that signals readiness by creating /ready and then loops until
/// the host creates /go in the rootfs.
const WAIT_FOR_GO: &str = "while [ ! -e /go ]; do sleep 0.05; done";

fn wait_rootfs_file(env: &TestEnv, name: &str) -> String {
    let p = env.bundle.rootfs().join(name);
    wait_for_file(&p, T).unwrap_or_else(|| panic!("container never wrote /{name}"))
}

/// create + start container `id` from the env's bundle; waits until running.
fn start_running(env: &TestEnv, id: &str) {
    env.rt.create(&env.bundle, id);
    env.rt.start(id);
    env.rt.wait_status(id, "running", T);
}

fn state_fails(rt: &Runtime, id: &str) {
    let out = rt.cmd(&["state", id]);
    assert!(
        !out.status.success(),
        "state {id} should fail after delete: {}",
        describe(&out)
    );
}

// ---------------------------------------------------------------------------
// spec
// ---------------------------------------------------------------------------

#[test]
fn spec_writes_default_config_json() {
    let dir = TestDir::new("spec_default");
    let rt = Runtime::new(dir.path());
    let b = dir.join("b");
    fs::create_dir(&b).unwrap();
    rt.run_ok(&["spec", "--bundle", b.to_str().unwrap()]);
    let text = fs::read_to_string(b.join("config.json")).expect("spec wrote config.json");
    let c: Value = serde_json::from_str(&text).expect("config.json is JSON");
    assert!(
        c["ociVersion"]
            .as_str()
            .is_some_and(|v| v.starts_with("1.")),
        "ociVersion: {c}"
    );
    assert_eq!(c["process"]["args"], json!(["sh"]));
    assert_eq!(c["root"]["path"], json!("rootfs"));
    let ns: Vec<&str> = c["linux"]["namespaces"]
        .as_array()
        .expect("linux.namespaces")
        .iter()
        .map(|n| n["type"].as_str().unwrap())
        .collect();
    for want in ["pid", "network", "ipc", "uts", "mount"] {
        assert!(ns.contains(&want), "namespace {want} missing: {ns:?}");
    }
    // Newer runc also adds "cgroup"; nothing else is expected.
    for got in &ns {
        assert!(
            ["pid", "network", "ipc", "uts", "mount", "cgroup"].contains(got),
            "unexpected namespace {got}"
        );
    }
    assert!(!ns.contains(&"user"), "default spec has no user namespace");
    assert!(c["mounts"].as_array().is_some_and(|m| m
        .iter()
        .any(|m| m["destination"] == "/proc" && m["type"] == "proc")));

    // A second `spec` must not overwrite the existing file.
    fs::write(b.join("config.json"), "{\"mine\": true}").unwrap();
    let out = rt.cmd(&["spec", "--bundle", b.to_str().unwrap()]);
    assert_error(&out, &["config.json"]);
    assert_eq!(
        fs::read_to_string(b.join("config.json")).unwrap(),
        "{\"mine\": true}",
        "existing config.json was modified"
    );
}

#[test]
fn spec_defaults_to_current_directory() {
    let dir = TestDir::new("spec_cwd");
    let rt = Runtime::new(dir.path());
    let b = dir.join("b");
    fs::create_dir(&b).unwrap();
    let out = rt.cmd_in(&b, &["spec"]);
    assert!(out.status.success(), "{}", describe(&out));
    let c: Value = serde_json::from_slice(&fs::read(b.join("config.json")).unwrap()).unwrap();
    assert_eq!(c["process"]["args"], json!(["sh"]));
}

#[test]
fn spec_rootless_has_user_namespace_and_mappings() {
    let dir = TestDir::new("spec_rootless");
    let rt = Runtime::new(dir.path());
    let b = dir.join("b");
    fs::create_dir(&b).unwrap();
    rt.run_ok(&["spec", "--rootless", "--bundle", b.to_str().unwrap()]);
    let c: Value = serde_json::from_slice(&fs::read(b.join("config.json")).unwrap()).unwrap();
    let ns: Vec<&str> = c["linux"]["namespaces"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["type"].as_str().unwrap())
        .collect();
    assert!(
        ns.contains(&"user"),
        "rootless spec needs a user ns: {ns:?}"
    );
    assert!(
        !ns.contains(&"network"),
        "rootless spec has no network ns: {ns:?}"
    );
    let euid = unsafe { libc::geteuid() } as u64;
    let egid = unsafe { libc::getegid() } as u64;
    assert_eq!(
        c["linux"]["uidMappings"],
        json!([{"containerID": 0, "hostID": euid, "size": 1}])
    );
    assert_eq!(
        c["linux"]["gidMappings"],
        json!([{"containerID": 0, "hostID": egid, "size": 1}])
    );
}

// ---------------------------------------------------------------------------
// create / start / state / delete
// ---------------------------------------------------------------------------

#[test]
fn create_leaves_container_created_and_start_runs_it() {
    let mut env = TestEnv::new("create_start");
    env.bundle
        .set_script(&format!("echo hi > /out; {WAIT_FOR_GO}; echo bye > /out2"));
    let piddir = env.dir.join("pids");
    fs::create_dir(&piddir).unwrap();
    let pidfile = piddir.join("c.pid");
    let out = env.try_create(&["--pid-file", pidfile.to_str().unwrap()]);
    assert!(out.status.success(), "create failed: {}", describe(&out));

    let st = env.rt.state(env.id());
    assert_eq!(st["status"], "created");
    let pid = st["pid"].as_i64().expect("pid") as i32;
    assert!(pid > 0);
    let from_file: i32 = fs::read_to_string(&pidfile)
        .expect("pid file written")
        .trim()
        .parse()
        .expect("pid file holds a number");
    assert_eq!(from_file, pid, "pid file and state disagree");
    assert!(process_alive(pid), "init process {pid} is not alive");

    // The user process must not have run yet.
    std::thread::sleep(Duration::from_millis(200));
    assert!(
        !env.bundle.rootfs().join("out").exists(),
        "container process ran before start"
    );
    assert_eq!(env.rt.status(env.id()), "created");

    env.rt.start(env.id());
    assert_eq!(wait_rootfs_file(&env, "out"), "hi\n");
    assert_eq!(env.rt.status(env.id()), "running");
    assert_eq!(env.rt.pid(env.id()), pid, "pid changed across start");

    fs::write(env.bundle.rootfs().join("go"), "").unwrap();
    env.rt.wait_status(env.id(), "stopped", T);
    assert_eq!(
        env.bundle.read_rootfs_file("out2").as_deref(),
        Some("bye\n")
    );
    assert!(!process_alive(pid), "init still alive after stop");

    env.rt.run_ok(&["delete", env.id()]);
    state_fails(&env.rt, env.id());
    env.assert_nothing_left();
}

#[test]
fn config_edits_after_create_do_not_affect_the_container() {
    // runtime.md Lifecycle 2: changes to config.json after create MUST NOT
    // affect the container (its process, hooks and the rest).
    let mut env = TestEnv::new("config_edit_after_create");
    let marker = env.dir.join("poststop-ran");
    env.bundle.set_script("echo created-config > /out");
    env.bundle.edit(|c| {
        c["hooks"] = json!({"poststop": [{"path": "/bin/sh",
            "args": ["sh", "-c", format!("echo first > {}", marker.display())]}]})
    });
    env.create();
    env.bundle.set_script("echo edited-config > /out");
    env.bundle.edit(|c| c["hooks"] = json!({}));
    env.rt.start(env.id());
    env.rt
        .wait_status(env.id(), "stopped", Duration::from_secs(10));
    assert_eq!(
        env.bundle.read_rootfs_file("out").as_deref(),
        Some("created-config\n")
    );
    env.rt.run_ok(&["delete", env.id()]);
    assert_eq!(
        fs::read_to_string(&marker).ok().as_deref(),
        Some("first\n"),
        "the poststop hook of the config as created did not run"
    );
    env.assert_nothing_left();
}

#[test]
fn create_defaults_bundle_to_current_dir() {
    let mut env = TestEnv::new("create_cwd");
    env.bundle.set_script("sleep 5");
    let out = env.rt.cmd_in(env.bundle.path(), &["create", env.id()]);
    assert!(out.status.success(), "{}", describe(&out));
    let st = env.rt.state(env.id());
    assert_eq!(st["status"], "created");
    assert_eq!(st["bundle"], json!(env.bundle.path_str()));
}

#[test]
fn create_with_relative_bundle_records_absolute_path() {
    let env = TestEnv::new("create_relbundle");
    let out = env
        .rt
        .cmd_in(env.dir.path(), &["create", "--bundle", "bundle", env.id()]);
    assert!(out.status.success(), "{}", describe(&out));
    let st = env.rt.state(env.id());
    assert_eq!(st["bundle"], json!(env.bundle.path_str()));
    assert_eq!(st["rootfs"], json!(env.bundle.rootfs().to_str().unwrap()));
}

#[test]
fn create_passes_its_stdio_to_the_container() {
    let mut env = TestEnv::new("create_stdio");
    env.bundle.set_script("echo to-stdout; echo to-stderr >&2");
    let (o, e) = (env.dir.join("create.out"), env.dir.join("create.err"));
    let st = env.rt.cmd_to_files(
        &["create", "--bundle", env.bundle.path_str(), env.id()],
        &o,
        &e,
    );
    assert!(
        st.success(),
        "create failed: {}",
        fs::read_to_string(&e).unwrap()
    );
    env.rt.start(env.id());
    env.rt.wait_status(env.id(), "stopped", T);
    assert!(
        wait_for(T, || fs::read_to_string(&o)
            .unwrap_or_default()
            .contains("to-stdout")),
        "container stdout did not reach create's stdout: {:?}",
        fs::read_to_string(&o)
    );
    assert!(
        wait_for(T, || fs::read_to_string(&e)
            .unwrap_or_default()
            .contains("to-stderr")),
        "container stderr did not reach create's stderr: {:?}",
        fs::read_to_string(&e)
    );
}

#[test]
fn state_json_has_oci_fields_and_runc_extras() {
    let mut env = TestEnv::new("state_fields");
    env.bundle.set_script("sleep 30");
    env.bundle.edit(|c| {
        c["annotations"] = json!({"org.example.key": "value1", "other": "x"});
    });
    let before = now_unix();
    env.create();
    let st = env.rt.state(env.id());
    let obj = st.as_object().expect("state is an object");
    for key in [
        "ociVersion",
        "id",
        "pid",
        "status",
        "bundle",
        "rootfs",
        "created",
        "owner",
    ] {
        assert!(obj.contains_key(key), "state lacks {key}: {st}");
    }
    assert!(st["ociVersion"]
        .as_str()
        .is_some_and(|v| v.starts_with("1.")));
    assert_eq!(st["id"], json!(env.id()));
    assert!(st["pid"].as_i64().is_some_and(|p| p > 0));
    assert_eq!(st["status"], "created");
    assert_eq!(st["bundle"], json!(env.bundle.path_str()));
    assert!(Path::new(st["bundle"].as_str().unwrap()).is_absolute());
    assert_eq!(st["rootfs"], json!(env.bundle.rootfs().to_str().unwrap()));
    let created = st["created"].as_str().expect("created is a string");
    let t = parse_rfc3339(created).unwrap_or_else(|| panic!("created not RFC3339: {created}"));
    assert!(
        t >= before - 2 && t <= now_unix() + 2,
        "created {created} is not now"
    );
    assert!(st["owner"].is_string(), "owner is a string: {st}");
    assert_eq!(
        st["annotations"],
        json!({"org.example.key": "value1", "other": "x"})
    );

    // The same fields after start, and pid 0 once stopped.
    env.rt.start(env.id());
    let st = env.rt.state(env.id());
    assert_eq!(st["status"], "running");
    assert_eq!(st["created"].as_str(), Some(created), "created changed");
    env.rt.run_ok(&["kill", env.id(), "KILL"]);
    env.rt.wait_status(env.id(), "stopped", T);
    let st = env.rt.state(env.id());
    assert_eq!(st["pid"], json!(0), "stopped container reports pid 0: {st}");
    assert_eq!(st["id"], json!(env.id()));
    assert_eq!(st["bundle"], json!(env.bundle.path_str()));
}

#[test]
fn state_without_annotations_omits_or_empties_them() {
    let mut env = TestEnv::new("state_noannot");
    env.bundle.set_script("sleep 30");
    env.create();
    let st = env.rt.state(env.id());
    let a = &st["annotations"];
    assert!(
        a.is_null() || a.as_object().is_some_and(|o| o.is_empty()),
        "unexpected annotations: {st}"
    );
}

// ---------------------------------------------------------------------------
// run
// ---------------------------------------------------------------------------

#[test]
fn run_foreground_returns_exit_code() {
    let mut env = TestEnv::new("run_exit3");
    env.bundle.set_script("exit 3");
    let out = env.run(&[]);
    assert_eq!(exit_code(&out), 3, "{}", describe(&out));

    env.bundle.set_script("true");
    let out = env.run(&[]);
    assert_eq!(exit_code(&out), 0, "{}", describe(&out));
}

#[test]
fn run_foreground_killed_by_signal_returns_128_plus_n() {
    // Without a pid namespace the shell is not an init process, so it can
    // kill itself.
    let mut env = TestEnv::new("run_sig");
    env.bundle.edit(|c| drop_namespace(c, "pid"));
    env.bundle.set_script("kill -9 $$; sleep 5");
    let out = env.run(&[]);
    assert_eq!(exit_code(&out), 137, "{}", describe(&out));

    env.bundle.set_script("kill -TERM $$; sleep 5");
    let out = env.run(&[]);
    assert_eq!(exit_code(&out), 143, "{}", describe(&out));
    env.assert_nothing_left();
}

#[test]
fn run_foreground_killed_from_outside_returns_137() {
    let mut env = TestEnv::new("run_killed");
    env.bundle.set_script("echo started > /ready; sleep 30");
    let mut sp = env
        .rt
        .spawn(&["run", "--bundle", env.bundle.path_str(), env.id()]);
    wait_rootfs_file(&env, "ready");
    env.rt.run_ok(&["kill", env.id(), "KILL"]);
    let out = sp.wait_timeout(T);
    assert_eq!(exit_code(&out), 137, "{}", describe(&out));
    state_fails(&env.rt, env.id());
    env.assert_nothing_left();
}

#[test]
fn run_prints_container_stdout() {
    let mut env = TestEnv::new("run_stdout");
    env.bundle
        .set_script("echo hello from container; echo oops >&2; echo line2");
    let out = env.run(&[]);
    assert!(out.status.success(), "{}", describe(&out));
    assert_eq!(stdout(&out), "hello from container\nline2\n");
    assert!(stderr(&out).contains("oops"), "{}", describe(&out));
}

#[test]
fn run_passes_stdin_to_container() {
    let mut env = TestEnv::new("run_stdin");
    env.bundle.set_script("read line; echo got:$line");
    let input = env.dir.join("in.txt");
    fs::write(&input, "banana\n").unwrap();
    let out = env
        .rt
        .spawn_stdin(
            &["run", "--bundle", env.bundle.path_str(), env.id()],
            fs::File::open(&input).unwrap().into(),
        )
        .wait_timeout(T);
    assert!(out.status.success(), "{}", describe(&out));
    assert_eq!(stdout(&out), "got:banana\n");
}

#[test]
fn run_detach_leaves_running_container() {
    let mut env = TestEnv::new("run_detach");
    env.bundle.set_script("echo up > /ready; sleep 30");
    let piddir = env.dir.join("pids");
    fs::create_dir(&piddir).unwrap();
    let pidfile = piddir.join("c.pid");
    let out = env.run(&["-d", "--pid-file", pidfile.to_str().unwrap()]);
    assert!(out.status.success(), "{}", describe(&out));
    wait_rootfs_file(&env, "ready");
    let st = env.rt.state(env.id());
    assert_eq!(st["status"], "running");
    let pid = st["pid"].as_i64().unwrap() as i32;
    assert!(process_alive(pid));
    let from_file: i32 = fs::read_to_string(&pidfile)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert_eq!(from_file, pid);

    env.rt.run_ok(&["delete", "--force", env.id()]);
    assert!(!process_alive(pid));
    env.assert_nothing_left();
}

#[test]
fn run_foreground_deletes_container_after_exit() {
    let mut env = TestEnv::new("run_autodelete");
    env.bundle.set_script("echo done");
    let out = env.run(&[]);
    assert!(out.status.success(), "{}", describe(&out));
    assert_eq!(stdout(&out), "done\n");
    state_fails(&env.rt, env.id());
    env.assert_nothing_left();
}

#[test]
fn run_forwards_signals() {
    let mut env = TestEnv::new("run_fwd");
    env.bundle.set_script(
        "trap 'echo got-term; exit 42' TERM; echo ready > /ready; \
         while true; do sleep 0.1; done",
    );
    let mut sp = env
        .rt
        .spawn(&["run", "--bundle", env.bundle.path_str(), env.id()]);
    wait_rootfs_file(&env, "ready");
    sp.signal(libc::SIGTERM);
    let out = sp.wait_timeout(T);
    assert_eq!(exit_code(&out), 42, "{}", describe(&out));
    assert!(stdout(&out).contains("got-term"), "{}", describe(&out));
    state_fails(&env.rt, env.id());
    env.assert_nothing_left();
}

#[test]
fn run_forwards_sigusr1() {
    let mut env = TestEnv::new("run_fwd_usr1");
    env.bundle.set_script(
        "trap 'echo got-usr1; exit 7' USR1; echo ready > /ready; \
         while true; do sleep 0.1; done",
    );
    let mut sp = env
        .rt
        .spawn(&["run", "--bundle", env.bundle.path_str(), env.id()]);
    wait_rootfs_file(&env, "ready");
    sp.signal(libc::SIGUSR1);
    let out = sp.wait_timeout(T);
    assert_eq!(exit_code(&out), 7, "{}", describe(&out));
    assert!(stdout(&out).contains("got-usr1"), "{}", describe(&out));
}

// ---------------------------------------------------------------------------
// start
// ---------------------------------------------------------------------------

#[test]
fn start_twice_fails() {
    let mut env = TestEnv::new("start_twice");
    env.bundle
        .set_script(&format!("echo x >> /count; {WAIT_FOR_GO}"));
    env.create();
    env.rt.start(env.id());
    wait_rootfs_file(&env, "count");
    let out = env.rt.cmd(&["start", env.id()]);
    assert_error_ref(&out, &[env.id(), "running"], &["running"]);
    assert_eq!(env.rt.status(env.id()), "running");
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(
        env.bundle.read_rootfs_file("count").as_deref(),
        Some("x\n"),
        "process ran twice"
    );
}

#[test]
fn start_of_stopped_container_fails() {
    let mut env = TestEnv::new("start_stopped");
    env.bundle.set_script("echo x >> /count");
    env.create();
    env.rt.start(env.id());
    env.rt.wait_status(env.id(), "stopped", T);
    let out = env.rt.cmd(&["start", env.id()]);
    assert_error_ref(&out, &[env.id(), "stopped"], &["stopped"]);
    assert_eq!(env.rt.status(env.id()), "stopped");
    assert_eq!(env.bundle.read_rootfs_file("count").as_deref(), Some("x\n"));
}

// ---------------------------------------------------------------------------
// kill
// ---------------------------------------------------------------------------

#[test]
fn kill_default_is_sigterm() {
    let mut env = TestEnv::new("kill_default");
    env.bundle.set_script(
        "trap 'echo term > /sig; exit 0' TERM; echo r > /ready; \
         while true; do sleep 0.1; done",
    );
    start_running(&env, env.id());
    wait_rootfs_file(&env, "ready");
    env.rt.run_ok(&["kill", env.id()]);
    env.rt.wait_status(env.id(), "stopped", T);
    assert_eq!(
        env.bundle.read_rootfs_file("sig").as_deref(),
        Some("term\n")
    );
}

#[test]
fn kill_accepts_names_with_and_without_sig_and_numbers() {
    // SIGKILL stops the container whichever way it is spelled.
    let mut env = TestEnv::new("kill_names");
    env.bundle.set_script("sleep 30");
    for (i, sig) in ["KILL", "SIGKILL", "9"].iter().enumerate() {
        let id = format!("{}-{i}", env.id());
        start_running(&env, &id);
        env.rt.run_ok(&["kill", &id, sig]);
        env.rt.wait_status(&id, "stopped", T);
    }
    // A trapped signal shows that the right signal arrived.
    env.bundle.set_script(
        "trap 'echo usr1 >> /sig; exit 0' USR1; echo r > /ready; \
         while true; do sleep 0.1; done",
    );
    for (i, sig) in ["USR1", "SIGUSR1", "10"].iter().enumerate() {
        let id = format!("{}-usr{i}", env.id());
        let _ = fs::remove_file(env.bundle.rootfs().join("ready"));
        start_running(&env, &id);
        wait_rootfs_file(&env, "ready");
        env.rt.run_ok(&["kill", &id, sig]);
        env.rt.wait_status(&id, "stopped", T);
        let got = env.bundle.read_rootfs_file("sig").unwrap_or_default();
        assert_eq!(
            got.lines().count(),
            i + 1,
            "signal {sig} not delivered: {got:?}"
        );
    }
}

#[test]
fn kill_unknown_signal_fails() {
    let mut env = TestEnv::new("kill_badsig");
    env.bundle.set_script("sleep 30");
    start_running(&env, env.id());
    let out = env.rt.cmd(&["kill", env.id(), "BOGUS"]);
    assert_error(&out, &["BOGUS", "signal"]);
    assert_eq!(env.rt.status(env.id()), "running");
}

#[test]
fn kill_created_container_stops_it() {
    let mut env = TestEnv::new("kill_created");
    env.bundle.set_script("echo ran > /out");
    env.create();
    env.rt.run_ok(&["kill", env.id(), "KILL"]);
    env.rt.wait_status(env.id(), "stopped", T);
    assert!(!env.bundle.rootfs().join("out").exists());
}

#[test]
fn kill_stopped_container_fails() {
    let mut env = TestEnv::new("kill_stopped");
    env.bundle.set_script("true");
    env.create();
    env.rt.start(env.id());
    env.rt.wait_status(env.id(), "stopped", T);
    let out = env.rt.cmd(&["kill", env.id()]);
    assert_error_ref(&out, &[env.id(), "running", "stopped"], &["running"]);
    let out = env.rt.cmd(&["kill", env.id(), "KILL"]);
    assert_error_ref(&out, &[env.id(), "running", "stopped"], &["running"]);
    assert_eq!(env.rt.status(env.id()), "stopped");
}

#[test]
fn kill_signal_0_checks_that_the_container_runs() {
    let mut env = TestEnv::new("kill_zero");
    env.bundle.set_script("sleep 30");
    start_running(&env, env.id());
    // Signal 0 only checks: success, and the container goes on.
    env.rt.run_ok(&["kill", env.id(), "0"]);
    env.rt.run_ok(&["kill", "--all", env.id(), "0"]);
    assert_eq!(env.rt.status(env.id()), "running");
    env.rt.run_ok(&["kill", env.id(), "KILL"]);
    env.rt.wait_status(env.id(), "stopped", T);
    let out = env.rt.cmd(&["kill", env.id(), "0"]);
    assert_error_ref(&out, &[env.id(), "running", "stopped"], &["running"]);
    if is_reference_runtime() {
        eprintln!("runc 1.1.5 exits 0 for kill --all ID 0 of a stopped container");
    } else {
        let out = env.rt.cmd(&["kill", "--all", env.id(), "0"]);
        assert_error(&out, &[env.id(), "running", "stopped"]);
    }
    env.rt.run_ok(&["delete", env.id()]);
    env.assert_nothing_left();
}

#[test]
fn kill_all_signals_every_process() {
    let mut env = TestEnv::new("kill_all");
    // As pid 1 of its namespace, the shell ignores an untrapped TERM; its
    // children do not.
    env.bundle.set_script(
        "sleep 1000 & sleep 1000 & echo r > /ready; wait; \
         echo children-gone > /out; exec sleep 1000",
    );
    start_running(&env, env.id());
    wait_rootfs_file(&env, "ready");

    // Without --all only init gets the signal (and ignores it).
    env.rt.run_ok(&["kill", env.id(), "TERM"]);
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        !env.bundle.rootfs().join("out").exists(),
        "plain kill reached the children"
    );
    assert_eq!(env.rt.status(env.id()), "running");

    env.rt.run_ok(&["kill", "--all", env.id(), "TERM"]);
    assert_eq!(wait_rootfs_file(&env, "out"), "children-gone\n");
    assert_eq!(env.rt.status(env.id()), "running");

    env.rt.run_ok(&["kill", "--all", env.id(), "KILL"]);
    env.rt.wait_status(env.id(), "stopped", T);
    env.rt.run_ok(&["delete", env.id()]);
    env.assert_nothing_left();
}

// ---------------------------------------------------------------------------
// delete
// ---------------------------------------------------------------------------

#[test]
fn delete_running_without_force_fails() {
    let mut env = TestEnv::new("delete_running");
    env.bundle.set_script("sleep 30");
    start_running(&env, env.id());
    let pid = env.rt.pid(env.id());
    let out = env.rt.cmd(&["delete", env.id()]);
    assert_error_ref(&out, &[env.id(), "running"], &["running"]);
    assert_eq!(env.rt.status(env.id()), "running");
    assert!(process_alive(pid));
}

#[test]
fn delete_force_kills_running_container() {
    let mut env = TestEnv::new("delete_force");
    env.bundle.set_script("sleep 1000 & sleep 1000");
    start_running(&env, env.id());
    let pid = env.rt.pid(env.id());
    assert!(
        !leftovers(&env.rt, env.id(), &env.bundle).is_empty(),
        "a running container should count as leftovers"
    );
    env.rt.run_ok(&["delete", "--force", env.id()]);
    assert!(!process_alive(pid), "init {pid} survived delete --force");
    state_fails(&env.rt, env.id());
    env.assert_nothing_left();
}

#[test]
fn delete_created_container_works() {
    let mut env = TestEnv::new("delete_created");
    env.bundle.set_script("echo ran > /out");
    env.create();
    let pid = env.rt.pid(env.id());
    env.rt.run_ok(&["delete", env.id()]);
    assert!(
        wait_for(T, || !process_alive(pid)),
        "init {pid} survived delete"
    );
    state_fails(&env.rt, env.id());
    env.assert_nothing_left();
    assert!(
        !env.bundle.rootfs().join("out").exists(),
        "user process ran"
    );
}

#[test]
fn delete_stopped_container_works_and_frees_the_id() {
    let mut env = TestEnv::new("delete_stopped");
    env.bundle.set_script("echo x >> /count");
    env.create();
    env.rt.start(env.id());
    env.rt.wait_status(env.id(), "stopped", T);
    env.rt.run_ok(&["delete", env.id()]);
    state_fails(&env.rt, env.id());
    env.assert_nothing_left();
    // The id can be reused.
    env.create();
    env.rt.start(env.id());
    env.rt.wait_status(env.id(), "stopped", T);
    assert_eq!(
        env.bundle.read_rootfs_file("count").as_deref(),
        Some("x\nx\n")
    );
}

#[test]
fn delete_force_of_missing_container_succeeds() {
    // runc: `delete --force` of an unknown id is not an error.
    let env = TestEnv::new("delete_force_missing");
    let out = env.rt.cmd(&["delete", "--force", env.id()]);
    assert!(out.status.success(), "{}", describe(&out));
    assert_eq!(stderr(&out), "", "no error expected");
    // Without --force it is an error.
    let out = env.rt.cmd(&["delete", env.id()]);
    assert_error(&out, &[env.id(), "not exist", "does not exist"]);
}

// ---------------------------------------------------------------------------
// list
// ---------------------------------------------------------------------------

#[test]
fn list_shows_containers() {
    let mut env = TestEnv::new("list");
    env.bundle.set_script("sleep 30");
    let a = format!("{}-a", env.id());
    let b = format!("{}-b", env.id());
    env.rt.create(&env.bundle, &a);
    start_running(&env, &b);
    let pid_a = env.rt.pid(&a);
    let pid_b = env.rt.pid(&b);

    // Table.
    let out = env.rt.run_ok(&["list"]);
    let text = stdout(&out);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 3, "header + 2 rows expected:\n{text}");
    let header: Vec<&str> = lines[0].split_whitespace().collect();
    assert_eq!(
        header,
        ["ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER"],
        "{text}"
    );
    let mut seen = Vec::new();
    for row in &lines[1..] {
        let cols: Vec<&str> = row.split_whitespace().collect();
        assert_eq!(cols.len(), 6, "row {row:?}");
        // Columns are aligned under the header.
        for (name, val) in header.iter().zip(&cols) {
            let hpos = lines[0].find(name).unwrap();
            let vpos = row.find(val).unwrap();
            assert_eq!(hpos, vpos, "column {name} misaligned:\n{text}");
        }
        assert_eq!(cols[3], env.bundle.path_str());
        assert!(parse_rfc3339(cols[4]).is_some(), "created {}", cols[4]);
        assert_eq!(cols[5], "root");
        seen.push((
            cols[0].to_string(),
            cols[1].to_string(),
            cols[2].to_string(),
        ));
    }
    seen.sort();
    assert_eq!(
        seen,
        vec![
            (a.clone(), pid_a.to_string(), "created".to_string()),
            (b.clone(), pid_b.to_string(), "running".to_string()),
        ]
    );

    // Quiet.
    let out = env.rt.run_ok(&["list", "-q"]);
    let mut ids: Vec<String> = stdout(&out).lines().map(String::from).collect();
    ids.sort();
    assert_eq!(ids, vec![a.clone(), b.clone()]);

    // JSON.
    let out = env.rt.run_ok(&["list", "--format", "json"]);
    let v: Value = serde_json::from_slice(&out.stdout).expect("list json");
    let arr = v.as_array().expect("array");
    let mut got: Vec<(String, String)> = arr
        .iter()
        .map(|o| {
            (
                o["id"].as_str().unwrap().to_string(),
                o["status"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    got.sort();
    assert_eq!(
        got,
        vec![(a.clone(), "created".into()), (b.clone(), "running".into())]
    );
    for o in arr {
        assert_eq!(o["bundle"], json!(env.bundle.path_str()));
        assert!(o["pid"].as_i64().is_some_and(|p| p > 0));
    }
}

#[test]
fn list_with_no_containers() {
    let env = TestEnv::new("list_empty");
    let out = env.rt.run_ok(&["list"]);
    let text = stdout(&out);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 1, "{text}");
    assert_eq!(
        lines[0].split_whitespace().collect::<Vec<_>>(),
        ["ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER"]
    );
    let out = env.rt.run_ok(&["list", "-q"]);
    assert_eq!(stdout(&out), "");
    let out = env.rt.run_ok(&["list", "--format", "json"]);
    let v: Value = serde_json::from_slice(&out.stdout).expect("json");
    // runc prints `null`; an empty array is tolerated.
    assert!(
        v.is_null() || v.as_array().is_some_and(|a| a.is_empty()),
        "{v}"
    );
}

// ---------------------------------------------------------------------------
// pid file, logging, version
// ---------------------------------------------------------------------------

#[test]
fn pid_file_is_written_atomically() {
    let mut env = TestEnv::new("pidfile");
    env.bundle.set_script("sleep 30");
    let piddir = env.dir.join("pids");
    fs::create_dir(&piddir).unwrap();
    let pidfile = piddir.join("container.pid");
    // An existing file is replaced, not appended to.
    fs::write(&pidfile, "999999999 stale content that is long\n").unwrap();
    let out = env.try_create(&["--pid-file", pidfile.to_str().unwrap()]);
    assert!(out.status.success(), "{}", describe(&out));
    let content = fs::read_to_string(&pidfile).unwrap();
    let pid = env.rt.pid(env.id());
    assert_eq!(
        content.trim(),
        pid.to_string(),
        "pid file content {content:?}"
    );
    let names: Vec<String> = fs::read_dir(&piddir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, vec!["container.pid".to_string()], "stray files");
}

#[test]
fn log_format_json_writes_error_lines() {
    let env = TestEnv::with_log("log_json");
    let out = env.rt.cmd(&["state", env.id()]);
    assert!(!out.status.success());
    let log = env.rt.log_contents();
    let entries = parse_json_log(&log);
    assert!(!entries.is_empty(), "nothing logged");
    for e in &entries {
        for k in ["level", "msg", "time"] {
            assert!(e.get(k).is_some_and(|v| v.is_string()), "{k} missing: {e}");
        }
        let t = e["time"].as_str().unwrap();
        assert!(parse_rfc3339(t).is_some(), "time not RFC3339: {t}");
    }
    let err = entries
        .iter()
        .find(|e| e["level"] == "error")
        .unwrap_or_else(|| panic!("no error-level entry in {log}"));
    let msg = err["msg"].as_str().unwrap();
    assert!(
        mentions(msg, env.id()) || msg.contains("not exist"),
        "log msg {msg:?}"
    );
}

#[test]
fn log_file_is_appended_not_truncated() {
    let env = TestEnv::with_log("log_append");
    let log = env.rt.log_path().unwrap().to_path_buf();
    fs::write(
        &log,
        "{\"level\":\"info\",\"msg\":\"earlier\",\"time\":\"2020-01-01T00:00:00Z\"}\n",
    )
    .unwrap();
    let out = env.rt.cmd(&["state", env.id()]);
    assert!(!out.status.success());
    let text = fs::read_to_string(&log).unwrap();
    assert!(
        text.starts_with("{\"level\":\"info\",\"msg\":\"earlier\""),
        "{text}"
    );
    let entries = parse_json_log(&text);
    assert!(entries.len() >= 2, "{text}");
    assert!(entries.iter().any(|e| e["level"] == "error"), "{text}");
}

#[test]
fn version_flag_prints_version() {
    let dir = TestDir::new("version");
    let rt = Runtime::new(dir.path());
    for flag in ["--version", "-v"] {
        let out = rt.run_ok(&[flag]);
        let text = stdout(&out);
        let first = text.lines().next().unwrap_or("");
        assert!(first.contains("version"), "{flag}: {text}");
        assert!(
            first
                .split_whitespace()
                .last()
                .is_some_and(|v| v.chars().next().is_some_and(|c| c.is_ascii_digit())),
            "{flag}: first line should end in a version number: {text}"
        );
        let spec = text
            .lines()
            .find_map(|l| l.strip_prefix("spec: "))
            .unwrap_or_else(|| panic!("{flag}: no `spec: ` line: {text}"));
        assert!(spec.starts_with("1."), "{flag}: spec version {spec}");
    }
}

/// `features` prints the runtime-spec features document (what engines read
/// to learn what the runtime supports), as runc does.
#[test]
fn features_prints_the_runtime_spec_features_json() {
    let dir = TestDir::new("features");
    let rt = Runtime::new(dir.path());
    let out = rt.run_ok(&["features"]);
    let v: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("features is not JSON ({e}): {}", describe(&out)));
    for key in [
        "ociVersionMin",
        "ociVersionMax",
        "hooks",
        "mountOptions",
        "linux",
    ] {
        assert!(v.get(key).is_some(), "no {key}: {}", stdout(&out));
    }
    let max = v["ociVersionMax"].as_str().unwrap_or("");
    assert!(max.starts_with("1."), "ociVersionMax {max:?}");
    let hooks: Vec<&str> = v["hooks"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|h| h.as_str())
        .collect();
    for h in ["prestart", "createRuntime", "poststart", "poststop"] {
        assert!(hooks.contains(&h), "hooks lack {h}: {hooks:?}");
    }
    let ns: Vec<&str> = v["linux"]["namespaces"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|n| n.as_str())
        .collect();
    for n in ["pid", "mount", "network", "user", "cgroup"] {
        assert!(ns.contains(&n), "linux.namespaces lack {n}: {ns:?}");
    }
    assert!(
        v["mountOptions"]
            .as_array()
            .is_some_and(|o| o.iter().any(|x| x == "bind")),
        "mountOptions lack bind: {}",
        stdout(&out)
    );
    let seccomp = &v["linux"]["seccomp"];
    assert_eq!(seccomp["enabled"], true, "{}", stdout(&out));
    for a in ["SCMP_ACT_ERRNO", "SCMP_ACT_NOTIFY"] {
        assert!(
            seccomp["actions"]
                .as_array()
                .is_some_and(|x| x.iter().any(|y| y == a)),
            "linux.seccomp.actions lack {a}: {seccomp}"
        );
    }
}

#[test]
fn debug_flag_logs_the_steps_of_create_on_stderr() {
    if is_reference_runtime() {
        // runc's debug lines name other steps; only the level is common.
        return;
    }
    let env = TestEnv::new("debug_steps");
    let out = env.rt.cmd(&[
        "--debug",
        "create",
        "--bundle",
        env.bundle.path_str(),
        env.id(),
    ]);
    assert!(out.status.success(), "{}", describe(&out));
    let err = stderr(&out);
    for step in [
        "state recorded",
        "cgroups created",
        "cloned",
        "init ready",
        "created",
    ] {
        assert!(
            err.lines()
                .any(|l| l.contains("level=debug") && l.contains(&format!("create: {step}"))),
            "no level=debug line for {step:?}: {err}"
        );
    }
    // Without --debug, none.
    env.rt.run_ok(&["delete", "--force", env.id()]);
    let out = env.try_create(&[]);
    assert!(!stderr(&out).contains("level=debug"), "{}", describe(&out));
    env.rt.run_ok(&["delete", "--force", env.id()]);
    env.assert_nothing_left();
}
