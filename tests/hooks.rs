//! OCI lifecycle hooks (prestart, createRuntime, createContainer,
//! startContainer, poststart, poststop), and the two systemd integrations
//! of `create`/`run`/`start`: sd_notify (`NOTIFY_SOCKET`) and socket
//! activation (`LISTEN_FDS`).
//!
//! Validate against runc with:
//! `RRUN_TEST_RUNTIME=/usr/sbin/runc cargo test --release --test hooks -- --test-threads=2`
//!
//! Observed runc 1.1.5 behaviour the tests pin down (rrun must match):
//! - Every hook gets the state JSON on stdin (`ociVersion`, `id`, `status`,
//!   `pid`, `bundle`), its own `args` (args[0] is argv[0]) and exactly its
//!   own `env`: nothing of the runtime's environment. A hook without `env`
//!   that runs on the host gets the runtime's environment (its caller's;
//!   crun does the same). The hooks `create`
//!   runs on the host (prestart, createRuntime) run in the bundle directory
//!   (runc's `create` works in the bundle directory). createContainer and
//!   startContainer hooks, which run in the container's namespaces, get the
//!   container process's environment when they give no `env`, and run in
//!   init's working directory of the moment: the rootfs directory (before
//!   pivot_root) for createContainer, `process.cwd` for startContainer.
//! - prestart and createRuntime run on the host during `create` with status
//!   "creating" and the host pid of the container's init, whose namespaces
//!   already exist; createContainer runs in the container's namespaces
//!   before pivot_root (its path resolves on the host) with status
//!   "creating"; startContainer runs in the container after `start` and
//!   before the user process (its path resolves in the container) with
//!   status "created". Hooks run in the container namespace see the pid as
//!   the container sees it (1), as the runtime-spec's state section says.
//!   `start` returns only once the startContainer hooks are done and the
//!   process was exec'd. poststop runs during `delete`, after the state is
//!   gone, with status "stopped".
//! - A failing (or timed-out) prestart, createRuntime or createContainer hook
//!   fails `create` with an error that carries the hook's stderr, and leaves
//!   nothing behind; the poststop hooks run once the container is destroyed
//!   (status "stopped"); a failing startContainer hook stops the container
//!   before its process runs (runc 1.1.5's `start` then exits 0; rrun's
//!   fails with the hook's error and runs no poststart hook, as the spec's
//!   Lifecycle 7 says); a failing poststop hook is only reported: `delete`
//!   succeeds.
//! - `NOTIFY_SOCKET`: the container gets a socket at `$NOTIFY_SOCKET`, which
//!   the runtime serves from `<root>/<id>/notify/notify.sock`; `start` waits
//!   for `READY=1` on it and forwards it to the caller's socket, followed by
//!   `MAINPID=<host pid of the container's init>`.
//! - `LISTEN_FDS=N` with `LISTEN_PID` = the runtime's pid: fds 3..3+N-1 pass
//!   into the container, whose process sees `LISTEN_FDS=N` and
//!   `LISTEN_PID=1`.
//!
//! Where runc 1.1.5 leaks fds into hooks (its init pipe and exec fifo into
//! createContainer, the container's fds into startContainer, `delete`'s
//! caller's into poststop), rrun gives every hook stdin, stdout and stderr
//! only, and the test says so.
//!
//! Where runc 1.1.5 departs from the runtime-spec, the tests follow the spec
//! and say so: runc 1.1.5 runs poststart hooks during `create` (status
//! "created"), and fails `create` when one fails; it moved them to `start`
//! only in 2026 (opencontainers/runc#5186). rrun runs them in `start`, after
//! the process was started, and treats a failure as a warning (runtime-spec
//! 1.2.0 "Lifecycle" step 9). After a failing poststart or poststop hook the
//! next hooks of its kind still run ("the remaining hooks and lifecycle
//! continue as if the hook had succeeded"); runc 1.1.5 stops at the first.

mod common;

use common::*;
use serde_json::{json, Value};
use std::fs;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const T: Duration = Duration::from_secs(10);

const KINDS: [&str; 6] = [
    "prestart",
    "createRuntime",
    "createContainer",
    "startContainer",
    "poststart",
    "poststop",
];

/// A variable set in the runtime's environment: no hook with its own
/// `env` and no hook in the container may see it.
const LEAK: (&str, &str) = ("RRUN_TEST_HOOK_LEAK", "leaked");

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

/// A hook running `script` with `sh -c`; `$0` is "arg-zero" and `$1`
/// "arg-one"; env is only `FOO=bar`.
fn sh_hook(path: &str, script: &str) -> Value {
    json!({
        "path": path,
        "args": ["sh", "-c", script, "arg-zero", "arg-one"],
        "env": ["FOO=bar"]
    })
}

/// A test env whose host directory `<dir>/hooks` is bind-mounted at
/// `/hooks` in the container, plus a host-only copy of /bin/sh at
/// `<dir>/hostbin/sh` and a container-only sh at `/hookbin/sh`.
struct HookEnv {
    env: TestEnv,
    /// The shared directory, host side.
    logs: PathBuf,
}

impl HookEnv {
    fn new(name: &str) -> HookEnv {
        let mut env = TestEnv::new(name);
        let logs = env.dir.join("hooks");
        fs::create_dir(&logs).unwrap();
        env.bundle.add_bind_mount(&logs, "/hooks");
        fs::create_dir(env.dir.join("hostbin")).unwrap();
        std::os::unix::fs::symlink("/bin/sh", env.dir.join("hostbin/sh")).unwrap();
        fs::create_dir(env.bundle.rootfs().join("hookbin")).unwrap();
        std::os::unix::fs::symlink("/bin/busybox", env.bundle.rootfs().join("hookbin/sh")).unwrap();
        HookEnv { env, logs }
    }

    /// A path that exists on the host only (resolves in the runtime
    /// namespace, not in the container's root).
    fn host_sh(&self) -> String {
        self.env
            .dir
            .join("hostbin/sh")
            .to_str()
            .unwrap()
            .to_string()
    }

    /// The shared dir as the hook of `kind` sees it.
    fn logs_for(&self, kind: &str) -> String {
        if kind == "startContainer" {
            "/hooks".to_string()
        } else {
            self.logs.to_str().unwrap().to_string()
        }
    }

    /// The hook's executable: host-only for hooks resolved in the runtime
    /// namespace, container-only for startContainer.
    fn sh_for(&self, kind: &str) -> String {
        if kind == "startContainer" {
            "/hookbin/sh".to_string()
        } else {
            self.host_sh()
        }
    }

    /// A hook of `kind` that records what it saw into `<logs>/<kind>.*`:
    /// state (stdin), args, env, cwd, its mount and net namespaces,
    /// whether the container process has run yet, and whether the state
    /// dir of the container exists.
    fn recording_hook(&self, kind: &str) -> Value {
        let l = self.logs_for(kind);
        let state_dir = self.env.rt.root().join(self.env.id());
        let script = format!(
            "cat > {l}/{kind}.state; echo \"$0 $1\" > {l}/{kind}.args; env > {l}/{kind}.env; \
             pid=$(sed -n 's/.*\"pid\": *\\([0-9]*\\).*/\\1/p' {l}/{kind}.state); \
             readlink /proc/$pid/exe > {l}/{kind}.exe 2>/dev/null; \
             pwd > {l}/{kind}.cwd; readlink /proc/self/ns/mnt > {l}/{kind}.mnt; \
             readlink /proc/self/ns/net > {l}/{kind}.net; \
             if [ -e {l}/process ]; then echo yes; else echo no; fi > {l}/{kind}.process-ran; \
             if [ -d {sd} ]; then echo yes; else echo no; fi > {l}/{kind}.state-dir; \
             echo done > {l}/{kind}.done",
            sd = state_dir.display()
        );
        sh_hook(&self.sh_for(kind), &script)
    }

    fn set_hooks(&mut self, hooks: Value) {
        self.env.bundle.edit(|c| c["hooks"] = hooks);
    }

    fn log(&self, name: &str) -> Option<String> {
        fs::read_to_string(self.logs.join(name)).ok()
    }

    fn log_trim(&self, name: &str) -> String {
        self.log(name)
            .unwrap_or_else(|| panic!("hook never wrote {name}"))
            .trim()
            .to_string()
    }

    fn state(&self, kind: &str) -> Value {
        let text = self.log_trim(&format!("{kind}.state"));
        serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("{kind} hook's stdin is not state JSON ({e}): {text:?}"))
    }

    /// `create` with the leak marker in the runtime's environment.
    fn create(&self) -> std::process::Output {
        let e = &self.env;
        e.rt.cmd_env(
            &["create", "--bundle", e.bundle.path_str(), e.id()],
            &[LEAK],
        )
    }

    fn create_ok(&self) {
        let out = self.create();
        assert!(out.status.success(), "create failed: {}", describe(&out));
    }

    fn start_ok(&self) {
        let out = self.env.rt.cmd_env(&["start", self.env.id()], &[LEAK]);
        assert!(out.status.success(), "start failed: {}", describe(&out));
    }

    fn delete_ok(&self, force: bool) -> std::process::Output {
        let mut args = vec!["delete"];
        if force {
            args.push("--force");
        }
        args.push(self.env.id());
        let out = self.env.rt.cmd_env(&args, &[LEAK]);
        assert!(out.status.success(), "delete failed: {}", describe(&out));
        out
    }

    /// The container's process: records that it ran, then waits.
    fn set_process_marker(&mut self) {
        self.env
            .bundle
            .set_script("echo process >> /hooks/process; exec sleep 1000");
    }
}

/// The hook of `kind` ran after the user-specified process was executed:
/// the state's pid already ran the container's program (busybox), not rrun.
fn assert_ran_after_the_execve(h: &HookEnv, kind: &str) {
    let exe = h.log_trim(&format!("{kind}.exe"));
    assert!(
        exe.ends_with("/busybox"),
        "{kind} ran before the execve: {exe}"
    );
}

/// Checks the parts of a hook's record common to every kind: args, env,
/// and the state's id and bundle.
fn check_common(h: &HookEnv, kind: &str) {
    let st = h.state(kind);
    assert_eq!(st["id"], json!(h.env.id()), "{kind} state: {st}");
    assert_eq!(
        st["bundle"],
        json!(h.env.bundle.path_str()),
        "{kind} state: {st}"
    );
    assert!(
        st["ociVersion"].as_str().is_some_and(|v| !v.is_empty()),
        "{kind} state without ociVersion: {st}"
    );
    assert_eq!(h.log_trim(&format!("{kind}.args")), "arg-zero arg-one");
    let env_text = h.log(&format!("{kind}.env")).unwrap();
    let vars: Vec<(&str, &str)> = env_text.lines().filter_map(|l| l.split_once('=')).collect();
    assert!(
        vars.contains(&("FOO", "bar")),
        "{kind} hook lacks FOO=bar:\n{env_text}"
    );
    // The shell itself may export PWD, OLDPWD, SHLVL and _ (and busybox sh a
    // default PATH); nothing may come from the runtime's environment.
    let host_path = std::env::var("PATH").unwrap_or_default();
    for (k, v) in &vars {
        let shell_made =
            ["FOO", "PWD", "OLDPWD", "SHLVL", "_"].contains(k) || (*k == "PATH" && *v != host_path);
        assert!(
            shell_made,
            "{kind} hook inherited {k}={v} (env must be replaced, not inherited):\n{env_text}"
        );
    }
}

// ---------------------------------------------------------------------------
// One test per hook kind
// ---------------------------------------------------------------------------

/// prestart and createRuntime: on the host, during create, after the
/// container's namespaces exist.
fn check_runtime_namespace_create_hook(kind: &str) {
    let mut h = HookEnv::new(&format!("hook_{kind}"));
    h.set_process_marker();
    h.set_hooks(json!({ kind: [h.recording_hook(kind)] }));
    h.create_ok();
    let pid = h.env.rt.pid(h.env.id());
    check_common(&h, kind);
    let st = h.state(kind);
    assert_eq!(st["status"], "creating", "{kind} state: {st}");
    assert_eq!(
        st["pid"],
        json!(pid),
        "{kind} runs in the runtime namespace: pid as the host sees it"
    );
    // In the runtime's namespaces, while the container's exist already.
    assert_eq!(
        h.log_trim(&format!("{kind}.mnt")),
        host_link("/proc/self/ns/mnt")
    );
    assert_eq!(
        h.log_trim(&format!("{kind}.net")),
        host_link("/proc/self/ns/net")
    );
    assert_ne!(
        host_link(format!("/proc/{pid}/ns/mnt")),
        host_link("/proc/self/ns/mnt")
    );
    assert_eq!(h.log_trim(&format!("{kind}.process-ran")), "no");
    h.env.rt.start(h.env.id());
    wait_for_file(&h.logs.join("process"), T).expect("the container process never ran");
    h.delete_ok(true);
    h.env.assert_nothing_left();
}

#[test]
fn prestart_hook_runs_on_the_host_during_create() {
    check_runtime_namespace_create_hook("prestart");
}

#[test]
fn create_runtime_hook_runs_on_the_host_during_create() {
    check_runtime_namespace_create_hook("createRuntime");
}

/// On cgroup v2 the device rules (a BPF program) are attached while init
/// makes its mounts, after the clone (runc applies them when its init is
/// ready), but never later than the first hook that runs in the
/// container's cgroup (on v1 they are written before the clone): a
/// createContainer hook cannot open a device the rules deny (the host's
/// /dev/kmsg, c 1:11: the hook runs before pivot_root, in the host's /dev),
/// and can open one they allow.
#[test]
fn create_container_hook_is_already_bound_by_the_device_rules() {
    let kind = "createContainer";
    let mut h = HookEnv::new("hook_device_rules");
    h.env.bundle.edit(|c| {
        c["linux"]["resources"]["devices"] = json!([
            { "allow": false, "access": "rwm" },
            { "allow": true, "type": "c", "major": 1, "minor": 3, "access": "rwm" }
        ]);
    });
    let logs = h.logs_for(kind);
    let script = format!(
        "if (true > /dev/kmsg) 2>/dev/null; then echo open; else echo denied; fi > {logs}/kmsg; \
         if (true > /dev/null) 2>/dev/null; then echo open; else echo denied; fi > {logs}/null"
    );
    h.set_hooks(json!({ kind: [sh_hook(&h.host_sh(), &script)] }));
    h.create_ok();
    assert_eq!(
        h.log_trim("kmsg"),
        "denied",
        "a createContainer hook opened a device the rules deny: the rules came too late"
    );
    assert_eq!(h.log_trim("null"), "open", "/dev/null is allowed");
    h.delete_ok(true);
    h.env.assert_nothing_left();
}

#[test]
fn create_container_hook_runs_in_the_container_before_pivot_root() {
    let kind = "createContainer";
    let mut h = HookEnv::new("hook_create_container");
    h.set_process_marker();
    // The hook's path and log dir are host paths: only visible before
    // pivot_root.
    h.set_hooks(json!({ kind: [h.recording_hook(kind)] }));
    h.create_ok();
    let pid = h.env.rt.pid(h.env.id());
    check_common(&h, kind);
    let st = h.state(kind);
    assert_eq!(st["status"], "creating", "{kind} state: {st}");
    assert_eq!(
        h.log_trim(&format!("{kind}.mnt")),
        host_link(format!("/proc/{pid}/ns/mnt")),
        "not in the container's mount namespace"
    );
    assert_eq!(
        h.log_trim(&format!("{kind}.net")),
        host_link(format!("/proc/{pid}/ns/net")),
        "not in the container's network namespace"
    );
    assert_eq!(h.log_trim(&format!("{kind}.process-ran")), "no");
    h.env.rt.start(h.env.id());
    wait_for_file(&h.logs.join("process"), T).expect("the container process never ran");
    h.delete_ok(true);
    h.env.assert_nothing_left();
    // runtime-spec, State: "For hooks executed in the container namespace,
    // it is the pid as seen by the container."
    assert_eq!(
        st["pid"],
        json!(1),
        "{kind} runs in the container namespace: pid as the container sees it: {st}"
    );
}

#[test]
fn start_container_hook_runs_in_the_container_at_start() {
    let kind = "startContainer";
    let mut h = HookEnv::new("hook_start_container");
    h.set_process_marker();
    h.env
        .bundle
        .edit(|c| c["hostname"] = json!("hook-start-host"));
    // Its path (/hookbin/sh) exists in the container's root only.
    let mut hook = h.recording_hook(kind);
    let script = format!(
        "hostname > /hooks/{kind}.hostname; {}",
        hook["args"][2].as_str().unwrap()
    );
    hook["args"][2] = json!(script);
    h.set_hooks(json!({ kind: [hook] }));
    h.create_ok();
    let pid = h.env.rt.pid(h.env.id());
    std::thread::sleep(Duration::from_millis(200));
    assert!(
        h.log(&format!("{kind}.done")).is_none(),
        "{kind} ran before start"
    );
    h.start_ok();
    wait_for_file(&h.logs.join(format!("{kind}.done")), T)
        .unwrap_or_else(|| panic!("the {kind} hook never ran"));
    check_common(&h, kind);
    assert_eq!(
        h.log_trim(&format!("{kind}.mnt")),
        host_link(format!("/proc/{pid}/ns/mnt")),
        "not in the container's mount namespace"
    );
    assert_eq!(h.log_trim(&format!("{kind}.hostname")), "hook-start-host");
    assert_eq!(
        h.log_trim(&format!("{kind}.process-ran")),
        "no",
        "{kind} ran after the container process"
    );
    wait_for_file(&h.logs.join("process"), T).expect("the container process never ran");
    h.delete_ok(true);
    h.env.assert_nothing_left();
    let st = h.state(kind);
    // runtime-spec: "created": the process has not executed the
    // user-specified program yet (runc says "created" here).
    assert_eq!(
        st["status"], "created",
        "{kind}: the user process has not been executed yet: {st}"
    );
    // runtime-spec, State: "For hooks executed in the container namespace,
    // it is the pid as seen by the container."
    assert_eq!(
        st["pid"],
        json!(1),
        "{kind} runs in the container namespace: pid as the container sees it: {st}"
    );
}

#[test]
fn start_returns_after_the_start_container_hooks_finished() {
    let mut h = HookEnv::new("hook_start_waits");
    h.set_process_marker();
    h.set_hooks(json!({
        "startContainer": [sh_hook("/hookbin/sh", "sleep 0.5; echo done > /hooks/slow.done")]
    }));
    h.create_ok();
    h.start_ok();
    assert!(
        h.log("slow.done").is_some(),
        "start returned before the startContainer hook finished"
    );
    wait_for_file(&h.logs.join("process"), T).expect("the container process never ran");
    h.delete_ok(true);
    h.env.assert_nothing_left();
}

#[test]
fn create_time_host_hooks_run_in_the_bundle_directory() {
    let mut h = HookEnv::new("hook_cwd");
    h.set_process_marker();
    h.set_hooks(json!({
        "prestart": [h.recording_hook("prestart")],
        "createRuntime": [h.recording_hook("createRuntime")]
    }));
    // Run create from elsewhere: runc's `create` works in the bundle
    // directory, and so do the hooks it runs.
    let out = h.env.rt.cmd_in(
        Path::new("/"),
        &["create", "--bundle", h.env.bundle.path_str(), h.env.id()],
    );
    assert!(out.status.success(), "create failed: {}", describe(&out));
    for kind in ["prestart", "createRuntime"] {
        assert_eq!(
            h.log_trim(&format!("{kind}.cwd")),
            h.env.bundle.path_str(),
            "{kind} hook's working directory"
        );
    }
    h.delete_ok(true);
    h.env.assert_nothing_left();
}

#[test]
fn poststart_hook_runs_during_start_after_the_process_started() {
    let kind = "poststart";
    let mut h = HookEnv::new("hook_poststart");
    h.set_process_marker();
    h.set_hooks(json!({ kind: [h.recording_hook(kind)] }));
    h.create_ok();
    let pid = h.env.rt.pid(h.env.id());
    if is_reference_runtime() {
        eprintln!("runc 1.1.5 runs poststart during create (runc#5186): timing not checked");
    } else {
        std::thread::sleep(Duration::from_millis(200));
        assert!(
            h.log(&format!("{kind}.done")).is_none(),
            "{kind} ran during create, before start"
        );
    }
    h.start_ok();
    assert!(
        h.log(&format!("{kind}.done")).is_some(),
        "start returned before the {kind} hook ran"
    );
    check_common(&h, kind);
    let st = h.state(kind);
    if !is_reference_runtime() {
        assert_eq!(st["status"], "running", "{kind} state: {st}");
    }
    assert_eq!(st["pid"], json!(pid), "{kind} state: {st}");
    assert_eq!(
        h.log_trim(&format!("{kind}.mnt")),
        host_link("/proc/self/ns/mnt"),
        "{kind} runs in the runtime namespace"
    );
    if !is_reference_runtime() {
        assert_ran_after_the_execve(&h, kind);
    }
    wait_for_file(&h.logs.join("process"), T).expect("the container process never ran");
    h.delete_ok(true);
    h.env.assert_nothing_left();
}

/// config.md: poststart hooks are called after the user-specified process
/// is executed. strace holds the init's `execve` for half a second after
/// `start` released it: the hook must still find the state's pid running
/// the container's program, not rrun.
#[test]
fn poststart_hooks_wait_for_the_execve_of_the_process() {
    if skip_on_reference_because("runc 1.1.5 runs poststart during create (runc#5186)") {
        return;
    }
    let kind = "poststart";
    let mut h = HookEnv::new("hook_poststart_exec");
    h.set_process_marker();
    h.set_hooks(json!({ kind: [h.recording_hook(kind)] }));
    h.create_ok();
    let pid = h.env.rt.pid(h.env.id());
    let inject = [
        "-e",
        "trace=execve",
        "-e",
        "inject=execve:delay_enter=500000",
    ];
    let Some(mut tracer) = strace_attached(pid, &inject) else {
        return;
    };
    h.start_ok();
    // Detach before anything else: strace ends on SIGTERM and lets the
    // container's process go.
    // SAFETY: signalling our own child.
    unsafe { libc::kill(tracer.id() as i32, libc::SIGTERM) };
    let _ = tracer.wait();
    assert_ran_after_the_execve(&h, kind);
    wait_for_file(&h.logs.join("process"), T).expect("the container process never ran");
    h.delete_ok(true);
    h.env.assert_nothing_left();
}

#[test]
fn poststop_hook_runs_during_delete_after_the_container_is_gone() {
    let kind = "poststop";
    let mut h = HookEnv::new("hook_poststop");
    h.set_process_marker();
    h.set_hooks(json!({ kind: [h.recording_hook(kind)] }));
    h.create_ok();
    h.start_ok();
    wait_for_file(&h.logs.join("process"), T).expect("the container process never ran");
    h.env.rt.run_ok(&["kill", h.env.id(), "KILL"]);
    h.env.rt.wait_status(h.env.id(), "stopped", T);
    std::thread::sleep(Duration::from_millis(200));
    assert!(
        h.log(&format!("{kind}.done")).is_none(),
        "{kind} ran before delete"
    );
    h.delete_ok(false);
    assert!(
        h.log(&format!("{kind}.done")).is_some(),
        "delete returned before the {kind} hook ran"
    );
    check_common(&h, kind);
    let st = h.state(kind);
    assert_eq!(st["status"], "stopped", "{kind} state: {st}");
    assert_eq!(
        h.log_trim(&format!("{kind}.state-dir")),
        "no",
        "{kind} ran while the container's state still existed"
    );
    h.env.assert_nothing_left();
}

// ---------------------------------------------------------------------------
// Order
// ---------------------------------------------------------------------------

#[test]
fn hooks_run_in_lifecycle_order() {
    let mut h = HookEnv::new("hook_order");
    h.set_process_marker();
    let mut hooks = serde_json::Map::new();
    for kind in KINDS {
        let l = h.logs_for(kind);
        // startContainer takes its time: `start` must wait for it before
        // the poststart hooks run.
        let pause = if kind == "startContainer" {
            "sleep 0.5; "
        } else {
            ""
        };
        let mut list = vec![sh_hook(
            &h.sh_for(kind),
            &format!("{pause}echo {kind} >> {l}/order"),
        )];
        if kind == "createRuntime" {
            // Several hooks of one kind run in their order.
            list.push(sh_hook(
                &h.sh_for(kind),
                &format!("echo {kind}-2 >> {l}/order"),
            ));
        }
        hooks.insert(kind.to_string(), Value::Array(list));
    }
    h.set_hooks(Value::Object(hooks));
    h.create_ok();
    h.start_ok();
    wait_for_file(&h.logs.join("process"), T).expect("the container process never ran");
    h.delete_ok(true);
    let order = h.log("order").unwrap_or_default();
    let got: Vec<&str> = order.lines().collect();
    let want: &[&str] = if is_reference_runtime() {
        // runc 1.1.5 runs poststart during create (runc#5186).
        &[
            "prestart",
            "createRuntime",
            "createRuntime-2",
            "createContainer",
            "poststart",
            "startContainer",
            "poststop",
        ]
    } else {
        &[
            "prestart",
            "createRuntime",
            "createRuntime-2",
            "createContainer",
            "startContainer",
            "poststart",
            "poststop",
        ]
    };
    assert_eq!(got, want);
    h.env.assert_nothing_left();
}

// ---------------------------------------------------------------------------
// Failures
// ---------------------------------------------------------------------------

/// A failing hook of `kind` makes `create` fail, with nothing left.
fn check_failing_create_hook(kind: &str) {
    let mut h = HookEnv::new(&format!("hook_fail_{kind}"));
    h.set_process_marker();
    let hook = sh_hook(&h.sh_for(kind), "echo hook-says-no >&2; exit 3");
    h.set_hooks(json!({ kind: [hook] }));
    let out = h.create();
    assert_error_ref(&out, &[kind], &["hook"]);
    assert!(
        stderr(&out).contains("hook-says-no"),
        "the error should carry the hook's stderr: {}",
        describe(&out)
    );
    h.env.assert_nothing_left();
    assert!(h.log("process").is_none(), "the container process ran");
    let st = h.env.rt.cmd(&["state", h.env.id()]);
    assert!(
        !st.status.success(),
        "the container exists: {}",
        describe(&st)
    );
}

#[test]
fn failing_prestart_hook_fails_create() {
    check_failing_create_hook("prestart");
}

#[test]
fn failing_create_runtime_hook_fails_create() {
    check_failing_create_hook("createRuntime");
}

#[test]
fn failing_create_container_hook_fails_create() {
    check_failing_create_hook("createContainer");
}

#[test]
fn failed_create_runs_the_poststop_hooks() {
    // runtime-spec Lifecycle 3-5: a failing prestart, createRuntime or
    // createContainer hook sends the lifecycle to step 12 (destroy), and
    // step 13 runs the poststop hooks. runc 1.1.5's destroy runs them too.
    for kind in ["prestart", "createRuntime", "createContainer"] {
        let mut h = HookEnv::new(&format!("hook_fail_poststop_{kind}"));
        h.set_process_marker();
        let failing = sh_hook(&h.sh_for(kind), "echo hook-says-no >&2; exit 3");
        let poststop = h.recording_hook("poststop");
        h.set_hooks(json!({ kind: [failing], "poststop": [poststop] }));
        let out = h.create();
        assert_error_ref(&out, &[kind], &["hook"]);
        assert_eq!(
            h.log("poststop.done").as_deref(),
            Some("done\n"),
            "{kind}: no poststop hook ran after the failed create: {}",
            describe(&out)
        );
        let st = h.state("poststop");
        assert_eq!(st["status"], "stopped", "{kind}: {st}");
        assert_eq!(st["id"], json!(h.env.id()), "{kind}: {st}");
        assert_eq!(
            h.log_trim("poststop.state-dir"),
            "no",
            "{kind}: poststop ran before the container was destroyed"
        );
        assert!(h.log("process").is_none(), "the container process ran");
        h.env.assert_nothing_left();
    }
}

#[test]
fn hook_past_its_timeout_fails_create_quickly() {
    let mut h = HookEnv::new("hook_timeout");
    h.set_process_marker();
    h.set_hooks(json!({
        "createRuntime": [{"path": "/bin/sleep", "args": ["sleep", "10.0421"], "timeout": 1}]
    }));
    let started = Instant::now();
    let out = h.create();
    let took = started.elapsed();
    assert_error_ref(&out, &["createRuntime"], &["hook"]);
    assert!(
        ["timeout", "timed out"]
            .iter()
            .any(|w| mentions(&stderr(&out), w)),
        "the error should say the hook timed out: {}",
        describe(&out)
    );
    assert!(
        took < Duration::from_secs(5),
        "create took {took:?} for a hook with a 1s timeout"
    );
    h.env.assert_nothing_left();
    // The hook itself was killed.
    let sleeping = fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| fs::read(e.path().join("cmdline")).ok())
        .any(|c| c == b"sleep\x0010.0421\x00");
    assert!(!sleeping, "the timed-out hook is still running");
}

#[test]
fn failing_start_container_hook_stops_the_container_before_its_process() {
    let mut h = HookEnv::new("hook_fail_start_container");
    h.set_process_marker();
    h.set_hooks(json!({
        "startContainer": [sh_hook("/hookbin/sh", "echo hook-says-no >&2; exit 3")]
    }));
    h.create_ok();
    // runc 1.1.5's `start` exits 0 here; only the outcome is checked.
    let _ = h.env.rt.cmd(&["start", h.env.id()]);
    h.env.rt.wait_status(h.env.id(), "stopped", T);
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        h.log("process").is_none(),
        "the container process ran although its startContainer hook failed"
    );
    h.delete_ok(false);
    h.env.assert_nothing_left();
}

#[test]
fn failing_start_container_hook_fails_start_and_skips_poststart() {
    // runtime-spec 1.2.0, Lifecycle 7: if a startContainer hook fails, the
    // runtime MUST generate an error, stop the container and continue at
    // step 12 (destroy): no poststart hooks.
    if skip_on_reference_because("runc 1.1.5's start exits 0 when a startContainer hook fails") {
        return;
    }
    let mut h = HookEnv::new("hook_fail_start_fails");
    h.set_process_marker();
    let l = h.logs.to_str().unwrap().to_string();
    h.set_hooks(json!({
        "startContainer": [sh_hook("/hookbin/sh", "echo hook-says-no >&2; exit 3")],
        "poststart": [sh_hook(&h.host_sh(), &format!("echo ran > {l}/poststart"))]
    }));
    h.create_ok();
    let out = h.env.rt.cmd(&["start", h.env.id()]);
    assert_error(&out, &["hooks.startContainer"]);
    assert!(
        stderr(&out).contains("hook-says-no"),
        "the error should carry the hook's stderr: {}",
        describe(&out)
    );
    assert!(h.log("poststart").is_none(), "poststart hooks ran");
    h.env.rt.wait_status(h.env.id(), "stopped", T);
    assert!(h.log("process").is_none(), "the container process ran");
    h.delete_ok(false);
    h.env.assert_nothing_left();
}

#[test]
fn failing_start_container_hook_fails_run_detached_and_in_the_foreground() {
    // `run` is create + start: Lifecycle 7 holds for it as for `start`.
    if skip_on_reference_because("runc 1.1.5 exits 0 when a startContainer hook fails") {
        return;
    }
    let mut h = HookEnv::new("hook_fail_start_run");
    h.set_process_marker();
    let l = h.logs.to_str().unwrap().to_string();
    h.set_hooks(json!({
        "startContainer": [sh_hook("/hookbin/sh", "echo hook-says-no >&2; exit 3")],
        "poststart": [sh_hook(&h.host_sh(), &format!("echo ran > {l}/poststart"))]
    }));
    let bundle = h.env.bundle.path_str().to_string();
    let id = h.env.id().to_string();
    // Detached: an error, no poststart, the container left stopped.
    let out = h.env.rt.cmd(&["run", "-d", "--bundle", &bundle, &id]);
    assert_error(&out, &["hooks.startContainer"]);
    assert!(stderr(&out).contains("hook-says-no"), "{}", describe(&out));
    assert!(h.log("poststart").is_none(), "poststart hooks ran");
    h.env.rt.wait_status(&id, "stopped", T);
    h.delete_ok(false);
    // Foreground: the same error, and `run` deletes the container.
    let out = h.env.rt.cmd(&["run", "--bundle", &bundle, &id]);
    assert_error(&out, &["hooks.startContainer"]);
    assert!(stderr(&out).contains("hook-says-no"), "{}", describe(&out));
    assert!(h.log("poststart").is_none(), "poststart hooks ran");
    assert!(h.log("process").is_none(), "the container process ran");
    let state = h.env.rt.cmd(&["state", &id]);
    assert!(
        !state.status.success(),
        "the container is still there: {}",
        describe(&state)
    );
    h.env.assert_nothing_left();
}

#[test]
fn start_with_a_passing_start_container_hook_succeeds_for_a_process_that_exits_at_once() {
    // The other side of the check above: a process that is gone by the
    // time `start` looks is no failed hook.
    let mut h = HookEnv::new("hook_start_quick_exit");
    h.env.bundle.set_args(&["true"]);
    h.set_hooks(json!({"startContainer": [sh_hook("/hookbin/sh", "exit 0")]}));
    for _ in 0..5 {
        h.create_ok();
        h.start_ok();
        h.env.rt.wait_status(h.env.id(), "stopped", T);
        h.delete_ok(false);
    }
    h.env.assert_nothing_left();
}

#[test]
fn failing_poststart_hook_is_only_a_warning() {
    if skip_on_reference_because("runc 1.1.5 runs poststart during create and fails it (runc#5186)")
    {
        return;
    }
    let mut h = HookEnv::new("hook_fail_poststart");
    h.set_process_marker();
    h.set_hooks(json!({
        "poststart": [sh_hook(&h.host_sh(), "echo hook-says-no >&2; exit 3")]
    }));
    h.create_ok();
    let out = h.env.rt.cmd(&["start", h.env.id()]);
    assert!(
        out.status.success(),
        "a failing poststart hook must not fail start: {}",
        describe(&out)
    );
    assert!(
        stderr(&out).contains("hook-says-no"),
        "the warning should carry the hook's stderr: {}",
        describe(&out)
    );
    wait_for_file(&h.logs.join("process"), T).expect("the container process never ran");
    assert_eq!(h.env.rt.status(h.env.id()), "running");
    h.delete_ok(true);
    h.env.assert_nothing_left();
}

#[test]
fn failing_poststop_hook_is_only_a_warning() {
    let mut h = HookEnv::new("hook_fail_poststop");
    h.set_process_marker();
    h.set_hooks(json!({
        "poststop": [sh_hook(&h.host_sh(), "echo hook-says-no >&2; exit 3")]
    }));
    h.create_ok();
    h.start_ok();
    wait_for_file(&h.logs.join("process"), T).expect("the container process never ran");
    let out = h.delete_ok(true);
    assert!(
        stderr(&out).contains("hook-says-no"),
        "the warning should carry the hook's stderr: {}",
        describe(&out)
    );
    let st = h.env.rt.cmd(&["state", h.env.id()]);
    assert!(
        !st.status.success(),
        "the container still exists: {}",
        describe(&st)
    );
    h.env.assert_nothing_left();
}

#[test]
fn after_a_failing_poststart_or_poststop_hook_the_next_ones_still_run() {
    if skip_on_reference_because("runc 1.1.5 stops at the first failing hook of a kind") {
        return;
    }
    let mut h = HookEnv::new("hook_fail_next");
    h.set_process_marker();
    let l = h.logs.to_str().unwrap().to_string();
    let mut hooks = serde_json::Map::new();
    for kind in ["poststart", "poststop"] {
        hooks.insert(
            kind.to_string(),
            json!([
                sh_hook(&h.host_sh(), &format!("echo {kind}-1 >> {l}/order; exit 3")),
                sh_hook(&h.host_sh(), &format!("echo {kind}-2 >> {l}/order")),
            ]),
        );
    }
    h.set_hooks(Value::Object(hooks));
    h.create_ok();
    // runtime-spec 1.2.0, Lifecycle 9 and 13: "the runtime MUST log a
    // warning, but the remaining hooks and lifecycle continue as if the
    // hook had succeeded".
    h.start_ok();
    wait_for_file(&h.logs.join("process"), T).expect("the container process never ran");
    h.delete_ok(true);
    assert_eq!(
        h.log("order").unwrap_or_default(),
        "poststart-1\npoststart-2\npoststop-1\npoststop-2\n"
    );
    h.env.assert_nothing_left();
}

// ---------------------------------------------------------------------------
// What hooks start with: fds, environment, working directory
// ---------------------------------------------------------------------------

/// The numbers in an `ls /proc/self/fd` listing, sorted.
fn fd_numbers(listing: &str) -> Vec<u32> {
    let mut v: Vec<u32> = listing
        .split_whitespace()
        .filter_map(|s| s.parse().ok())
        .collect();
    v.sort();
    v
}

#[test]
fn every_hook_starts_with_only_stdin_stdout_stderr() {
    let mut h = HookEnv::new("hook_fds");
    h.set_process_marker();
    // The runtime's caller hands it fd 3, which it passes on to the container
    // (LISTEN_FDS): still no hook may get it, nor any fd of the runtime's
    // own (state dir, exec fifo, sync socket: CVE-2024-21626).
    let payload = h.env.dir.join("payload");
    fs::write(&payload, "secret\n").unwrap();
    let mut hooks = serde_json::Map::new();
    for kind in KINDS {
        let l = h.logs_for(kind);
        // `exec >FILE` replaces the shell's stdout without keeping a copy;
        // then `ls` replaces the shell and lists what it got, plus the
        // directory it reads, which is therefore fd 3.
        let script = format!("exec > {l}/{kind}.fds; exec ls /proc/self/fd");
        hooks.insert(kind.to_string(), json!([sh_hook(&h.sh_for(kind), &script)]));
    }
    h.set_hooks(Value::Object(hooks));
    let fd3 = [("LISTEN_FDS", "1"), ("LISTEN_PID", "$$")];
    let e = &h.env;
    let with_fd3 = |args: &[&str]| {
        let out = e.rt.spawn_with_fd3(args, &payload, &fd3).wait_timeout(T);
        assert!(out.status.success(), "{args:?}: {}", describe(&out));
    };
    with_fd3(&["create", "--bundle", e.bundle.path_str(), e.id()]);
    with_fd3(&["start", e.id()]);
    wait_for_file(&h.logs.join("process"), T).expect("the container process never ran");
    with_fd3(&["delete", "--force", e.id()]);
    let mut leaks = Vec::new();
    for kind in KINDS {
        let listing = h.log(&format!("{kind}.fds")).unwrap_or_else(|| {
            panic!("the {kind} hook never ran");
        });
        if fd_numbers(&listing) != [0, 1, 2, 3] {
            leaks.push(format!("{kind}:\n{listing}"));
        }
    }
    if is_reference_runtime() {
        // runc 1.1.5 hands createContainer hooks its init pipe and exec
        // fifo, startContainer hooks the fds meant for the container, and
        // poststop hooks whatever `delete`'s caller had open.
        eprintln!(
            "not checked for a reference runtime; it leaks:\n{}",
            leaks.join("\n")
        );
    } else {
        assert!(
            leaks.is_empty(),
            "hooks got fds other than stdin, stdout and stderr:\n{}",
            leaks.join("\n")
        );
    }
    h.env.assert_nothing_left();
}

#[test]
fn hooks_in_the_container_without_env_get_the_process_env_and_its_working_directory() {
    let mut h = HookEnv::new("hook_inherit");
    h.set_process_marker();
    fs::create_dir_all(h.env.bundle.rootfs().join("work")).unwrap();
    h.env.bundle.edit(|c| {
        c["process"]["env"]
            .as_array_mut()
            .unwrap()
            .push(json!("FROM_PROCESS=yes"));
        c["process"]["cwd"] = json!("/work");
    });
    let mut hooks = serde_json::Map::new();
    for kind in ["createContainer", "startContainer", "createRuntime"] {
        let mut hook = h.recording_hook(kind);
        hook.as_object_mut().unwrap().remove("env");
        hooks.insert(kind.to_string(), json!([hook]));
    }
    h.set_hooks(Value::Object(hooks));
    h.create_ok();
    h.start_ok();
    wait_for_file(&h.logs.join("process"), T).expect("the container process never ran");
    for kind in ["createContainer", "startContainer"] {
        let env_text = h.log(&format!("{kind}.env")).unwrap();
        let vars: Vec<(&str, &str)> = env_text.lines().filter_map(|l| l.split_once('=')).collect();
        for want in [
            ("FROM_PROCESS", "yes"),
            ("TERM", "xterm"),
            (
                "PATH",
                "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            ),
        ] {
            assert!(
                vars.contains(&want),
                "{kind} hook without env lacks the process's {}={}:\n{env_text}",
                want.0,
                want.1
            );
        }
        assert!(
            vars.iter().all(|(k, _)| *k != LEAK.0),
            "{kind} hook got the runtime's environment:\n{env_text}"
        );
    }
    // createContainer runs before pivot_root, in the rootfs directory;
    // startContainer in the process's cwd, where init is then (as runc).
    assert_eq!(
        h.log_trim("createContainer.cwd"),
        h.env.bundle.rootfs().to_str().unwrap()
    );
    assert_eq!(h.log_trim("startContainer.cwd"), "/work");
    // A hook in the runtime's namespaces gets nothing of the container's
    // environment but the runtime's own, its caller's (runc and crun do
    // the same), and runs in the bundle.
    let env_text = h.log("createRuntime.env").unwrap();
    assert!(
        !env_text.contains("FROM_PROCESS"),
        "createRuntime hook without env got the container's:\n{env_text}"
    );
    assert!(
        env_text
            .lines()
            .any(|l| l == format!("{}={}", LEAK.0, LEAK.1)),
        "createRuntime hook without env lacks the runtime's environment:\n{env_text}"
    );
    assert_eq!(h.log_trim("createRuntime.cwd"), h.env.bundle.path_str());
    h.delete_ok(true);
    h.env.assert_nothing_left();
}

// ---------------------------------------------------------------------------
// NOTIFY_SOCKET
// ---------------------------------------------------------------------------

/// The caller's (systemd's) notify socket, bound by the test.
struct HostNotify {
    sock: UnixDatagram,
    path: PathBuf,
}

impl HostNotify {
    fn bind(dir: &Path) -> HostNotify {
        let d = dir.join("systemd");
        fs::create_dir_all(&d).unwrap();
        let path = d.join("notify");
        let sock = UnixDatagram::bind(&path).expect("bind the host notify socket");
        sock.set_read_timeout(Some(T)).unwrap();
        HostNotify { sock, path }
    }

    fn recv(&self) -> Option<String> {
        let mut buf = [0u8; 4096];
        let n = self.sock.recv(&mut buf).ok()?;
        Some(String::from_utf8_lossy(&buf[..n]).into_owned())
    }
}

impl Drop for HostNotify {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.path);
    }
}

/// Creates a container with NOTIFY_SOCKET set, starts it in the background,
/// checks that the container has a socket at $NOTIFY_SOCKET and that
/// `start` waits, then sends READY=1 into the runtime's socket (from the
/// host: busybox cannot send a unix datagram from inside the container).
/// Returns the started `start` and the host socket.
fn notify_started(env: &mut TestEnv) -> (Spawned, HostNotify) {
    let host = HostNotify::bind(env.dir.path());
    let ns = ("NOTIFY_SOCKET", host.path.to_str().unwrap());
    env.bundle.set_script(
        "echo \"env=$NOTIFY_SOCKET\" > /notify-info; \
         if [ -S \"$NOTIFY_SOCKET\" ]; then echo sock=yes; else echo sock=no; fi >> /notify-info; \
         echo done >> /notify-info; exec sleep 1000",
    );
    let out = env.rt.cmd_env(
        &["create", "--bundle", env.bundle.path_str(), env.id()],
        &[ns],
    );
    assert!(out.status.success(), "create failed: {}", describe(&out));
    let mut start = env.rt.spawn_env(&["start", env.id()], &[ns]);
    let info_path = env.bundle.rootfs().join("notify-info");
    assert!(
        wait_for(T, || fs::read_to_string(&info_path)
            .is_ok_and(|s| s.contains("done"))),
        "the container process never ran"
    );
    let info = fs::read_to_string(&info_path).unwrap();
    let in_ctr = info
        .lines()
        .find_map(|l| l.strip_prefix("env="))
        .unwrap_or("");
    assert!(
        in_ctr.starts_with('/'),
        "the container has no absolute NOTIFY_SOCKET: {info:?}"
    );
    assert!(
        info.contains("sock=yes"),
        "no socket at $NOTIFY_SOCKET in the container: {info:?}"
    );
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        start.child.try_wait().unwrap().is_none(),
        "start returned before the container was ready: {}",
        describe(&start.wait_timeout(T))
    );
    let runtime_sock = env.rt.root().join(env.id()).join("notify/notify.sock");
    UnixDatagram::unbound()
        .unwrap()
        .send_to(b"READY=1", &runtime_sock)
        .unwrap_or_else(|e| panic!("send READY=1 to {}: {e}", runtime_sock.display()));
    (start, host)
}

#[test]
fn notify_socket_forwards_ready_and_start_waits_for_it() {
    let mut env = TestEnv::new("notify_ready");
    let (mut start, host) = notify_started(&mut env);
    let msg = host
        .recv()
        .expect("nothing arrived on the host's notify socket");
    assert!(
        msg.lines().any(|l| l == "READY=1"),
        "the host got {msg:?}, not READY=1"
    );
    let out = start.wait_timeout(T);
    assert!(out.status.success(), "start failed: {}", describe(&out));
    assert_eq!(env.rt.status(env.id()), "running");
    env.rt.run_ok(&["delete", "--force", env.id()]);
    env.assert_nothing_left();
}

#[test]
fn notify_socket_reports_the_main_pid_after_ready() {
    let mut env = TestEnv::new("notify_mainpid");
    let (mut start, host) = notify_started(&mut env);
    let out = start.wait_timeout(T);
    assert!(out.status.success(), "start failed: {}", describe(&out));
    let pid = env.rt.pid(env.id());
    let mut got = Vec::new();
    host.sock
        .set_read_timeout(Some(Duration::from_secs(2)))
        .unwrap();
    while let Some(m) = host.recv() {
        got.extend(m.lines().map(String::from));
        if got.iter().any(|l| l.starts_with("MAINPID=")) {
            break;
        }
    }
    assert!(
        got.iter().any(|l| *l == format!("MAINPID={pid}")),
        "the host's notify socket got {got:?}; runc sends MAINPID={pid} after READY=1"
    );
}

// ---------------------------------------------------------------------------
// LISTEN_FDS
// ---------------------------------------------------------------------------

#[test]
fn listen_fds_pass_into_the_container() {
    let mut env = TestEnv::new("listen_fds");
    let file = env.dir.join("socket-standin");
    fs::write(&file, "activated\n").unwrap();
    env.bundle
        .set_script("echo fds=$LISTEN_FDS; echo pid=$LISTEN_PID; echo got=$(cat <&3)");
    let out = env
        .rt
        .spawn_with_fd3(
            &["run", "--bundle", env.bundle.path_str(), env.id()],
            &file,
            &[("LISTEN_FDS", "1"), ("LISTEN_PID", "$$")],
        )
        .wait_timeout(T);
    assert!(out.status.success(), "{}", describe(&out));
    let so = stdout(&out);
    assert!(so.contains("fds=1\n"), "{}", describe(&out));
    assert!(so.contains("pid=1\n"), "{}", describe(&out));
    assert!(so.contains("got=activated\n"), "{}", describe(&out));
    env.assert_nothing_left();
}
