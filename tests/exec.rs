//! `exec`: a new process in a running container, as runc runs it.
//!
//! Validate against runc with:
//! `RRUN_TEST_RUNTIME=/usr/sbin/runc cargo test --release --test exec -- --test-threads=2`
//!
//! Observed runc 1.1.5 behaviour the tests pin down (rrun must match):
//! - `exec` exits with the process's exit code, 128+N when it is killed by
//!   signal N, and forwards the signals it receives to the process.
//! - The process joins every namespace and the cgroup of the container, sees
//!   its rootfs as `/`, and gets the container's process settings with the
//!   flags applied: `-e` adds or replaces a variable (one `TERM=` line, not
//!   two), `--cwd`, `-u uid:gid` with `--additional-gids` as the only
//!   supplementary groups, `--cap` raises the bounding, effective and
//!   permitted sets but never the inheritable or ambient ones
//!   (CVE-2022-29162), `--no-new-privs`.
//! - `--process P.json` runs exactly that process object: its env replaces
//!   the container's.
//! - Only fds 0, 1 and 2 reach the process, unless `--preserve-fds N`
//!   (CVE-2024-21626: no fd of the runtime may leak in).
//! - `exec` into a stopped container fails ("cannot exec in a stopped
//!   container"); into a paused one fails ("cannot exec in a paused
//!   container (use --ignore-paused to override)") unless `--ignore-paused`,
//!   in which case the process joins the frozen cgroup and runs once resumed.
//! - Every failure of `exec` itself (unknown container, stopped container,
//!   missing executable) exits with status 255 (runc's `fatalWithCode(..,
//!   255)`), so that it cannot be mistaken for the process's own exit code.

mod common;

use common::*;
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::{Duration, Instant};

const T: Duration = Duration::from_secs(10);

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

/// Starts the env's container running `sleep 1000`; returns its init pid.
fn start_sleeper(env: &mut TestEnv) -> i32 {
    env.bundle.set_args(&["sleep", "1000"]);
    env.create();
    env.rt.start(env.id());
    env.rt.wait_status(env.id(), "running", T);
    env.rt.pid(env.id())
}

/// `exec <id> <command..>`, returning the output.
fn exec(env: &TestEnv, flags: &[&str], command: &[&str]) -> std::process::Output {
    let mut args = vec!["exec"];
    args.extend_from_slice(flags);
    args.push(env.id());
    args.extend_from_slice(command);
    env.rt.cmd(&args)
}

/// `exec -d --pid-file <pidfile> <id> <command..>`, asserting exit 0;
/// returns the pid the pid file names.
fn exec_detached(env: &TestEnv, pidfile: &Path, command: &[&str]) -> i32 {
    let out = exec(
        env,
        &["-d", "--pid-file", pidfile.to_str().unwrap()],
        command,
    );
    assert!(
        out.status.success(),
        "exec -d {command:?}: {}",
        describe(&out)
    );
    let text = fs::read_to_string(pidfile)
        .unwrap_or_else(|e| panic!("pid file {} not written: {e}", pidfile.display()));
    text.trim()
        .parse()
        .unwrap_or_else(|_| panic!("pid file holds {text:?}"))
}

/// `exec <id> sh -c <script>`, asserting exit 0; returns stdout.
fn exec_sh_ok(env: &TestEnv, flags: &[&str], script: &str) -> String {
    let out = exec(env, flags, &["sh", "-c", script]);
    assert!(out.status.success(), "exec failed: {}", describe(&out));
    stdout(&out)
}

// ---------------------------------------------------------------------------
// Output, exit code, stdin, signals
// ---------------------------------------------------------------------------

#[test]
fn exec_prints_output_and_returns_the_exit_code() {
    let mut env = TestEnv::new("exec_exit");
    start_sleeper(&mut env);
    let out = exec(
        &env,
        &[],
        &["sh", "-c", "echo to-stdout; echo to-stderr >&2; exit 7"],
    );
    assert_eq!(exit_code(&out), 7, "{}", describe(&out));
    assert_eq!(stdout(&out), "to-stdout\n", "{}", describe(&out));
    assert!(stderr(&out).contains("to-stderr"), "{}", describe(&out));

    let out = exec(&env, &[], &["true"]);
    assert_eq!(exit_code(&out), 0, "{}", describe(&out));
    assert_eq!(env.rt.status(env.id()), "running");
}

#[test]
fn exec_process_does_not_inherit_the_runtimes_ignored_sigpipe() {
    // rrun ignores SIGPIPE for itself; its caller here does not.
    let mut env = TestEnv::new("exec_sigpipe");
    start_sleeper(&mut env);
    let out = exec_sh_ok(&env, &[], "grep SigIgn /proc/self/status");
    let hex = out.trim().trim_start_matches("SigIgn:").trim();
    let mask = u64::from_str_radix(hex, 16).expect("SigIgn is hex");
    assert_eq!(mask & (1 << (libc::SIGPIPE - 1)), 0, "SigIgn {mask:x}");
}

#[test]
fn exec_killed_by_a_signal_returns_128_plus_n() {
    let mut env = TestEnv::new("exec_sig");
    start_sleeper(&mut env);
    let out = exec(&env, &[], &["sh", "-c", "kill -9 $$; sleep 5"]);
    assert_eq!(exit_code(&out), 137, "{}", describe(&out));
    let out = exec(&env, &[], &["sh", "-c", "kill -TERM $$; sleep 5"]);
    assert_eq!(exit_code(&out), 143, "{}", describe(&out));
    assert_eq!(env.rt.status(env.id()), "running");
}

#[test]
fn exec_passes_stdin_to_the_process() {
    let mut env = TestEnv::new("exec_stdin");
    start_sleeper(&mut env);
    let input = env.dir.join("in.txt");
    fs::write(&input, "banana\n").unwrap();
    let out = env
        .rt
        .spawn_stdin(
            &["exec", env.id(), "sh", "-c", "read line; echo got:$line"],
            fs::File::open(&input).unwrap().into(),
        )
        .wait_timeout(T);
    assert!(out.status.success(), "{}", describe(&out));
    assert_eq!(stdout(&out), "got:banana\n");
}

#[test]
fn exec_forwards_sigterm_to_the_process() {
    let mut env = TestEnv::new("exec_fwd");
    start_sleeper(&mut env);
    let mut sp = env.rt.spawn(&[
        "exec",
        env.id(),
        "sh",
        "-c",
        "trap 'echo got-term; exit 42' TERM; echo ready > /exec-ready; \
         while true; do sleep 0.1; done",
    ]);
    wait_for_file(&env.bundle.rootfs().join("exec-ready"), T)
        .expect("the exec'd process never wrote /exec-ready");
    sp.signal(libc::SIGTERM);
    let out = sp.wait_timeout(T);
    assert_eq!(exit_code(&out), 42, "{}", describe(&out));
    assert!(stdout(&out).contains("got-term"), "{}", describe(&out));
    assert_eq!(
        env.rt.status(env.id()),
        "running",
        "the container's init must not get the signal"
    );
}

// ---------------------------------------------------------------------------
// Namespaces, root, cgroup
// ---------------------------------------------------------------------------

#[test]
fn exec_runs_in_the_containers_namespaces_and_root() {
    let mut env = TestEnv::new("exec_ns");
    env.bundle.edit(|c| c["hostname"] = json!("exec-ns-host"));
    let pid = start_sleeper(&mut env);
    fs::write(env.bundle.rootfs().join("marker"), "in-the-rootfs\n").unwrap();
    let kinds = ["pid", "net", "ipc", "uts", "mnt", "user", "cgroup"];
    let mut script = String::from(
        "echo host=$(hostname); echo marker=$(cat /marker); echo self=$$; \
         echo init=$(tr '\\0' ' ' < /proc/1/cmdline); echo root=$(readlink /proc/$$/root); ",
    );
    for k in kinds {
        script.push_str(&format!("echo ns_{k}=$(readlink /proc/$$/ns/{k}); "));
    }
    let out = exec_sh_ok(&env, &[], &script);
    assert_eq!(field(&out, "host"), "exec-ns-host", "{out}");
    assert_eq!(field(&out, "marker"), "in-the-rootfs", "{out}");
    // Pid 1 of its /proc is the container's init, and it is not pid 1.
    assert_eq!(field(&out, "init").trim(), "sleep 1000", "{out}");
    assert_ne!(field(&out, "self"), "1", "{out}");
    assert_eq!(field(&out, "root"), "/", "{out}");
    for k in kinds {
        assert_eq!(
            field(&out, &format!("ns_{k}")),
            host_link(format!("/proc/{pid}/ns/{k}")),
            "the exec'd process is not in the container's {k} namespace:\n{out}"
        );
    }
}

#[test]
fn exec_joins_the_containers_cgroup() {
    let mut env = TestEnv::new("exec_cgroup");
    let pid = start_sleeper(&mut env);
    let init_cg = fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    let out = exec_sh_ok(&env, &[], "cat /proc/$$/cgroup");
    assert_eq!(out, init_cg, "cgroups of the exec'd process vs init");

    // A running exec'd process shows up in `ps`.
    let pidfile = env.dir.join("exec.pid");
    let epid = exec_detached(&env, &pidfile, &["sleep", "1001"]);
    let out = env.rt.run_ok(&["ps", "--format", "json", env.id()]);
    let pids: Vec<i64> = serde_json::from_slice::<Value>(&out.stdout)
        .unwrap_or_else(|e| panic!("ps output is not JSON ({e}): {}", describe(&out)))
        .as_array()
        .expect("ps --format json prints an array")
        .iter()
        .map(|v| v.as_i64().expect("pids are numbers"))
        .collect();
    assert!(
        pids.contains(&(epid as i64)) && pids.contains(&(pid as i64)),
        "ps lists {pids:?}; expected init {pid} and exec'd {epid}"
    );
    assert_eq!(
        fs::read_to_string(format!("/proc/{epid}/cgroup")).unwrap(),
        init_cg
    );
}

#[test]
fn exec_in_a_user_namespace_is_root_of_the_mapping() {
    let mut env = TestEnv::new("exec_userns");
    env.bundle.add_user_namespace();
    let pid = start_sleeper(&mut env);
    let out = exec_sh_ok(
        &env,
        &[],
        "echo uid_map=$(cat /proc/self/uid_map); echo uid=$(id -u); echo gid=$(id -g); \
         echo ns_user=$(readlink /proc/$$/ns/user)",
    );
    let map: Vec<&str> = field(&out, "uid_map").split_whitespace().collect();
    assert_eq!(map, ["0", "100000", "65536"], "{out}");
    assert_eq!(field(&out, "uid"), "0", "{out}");
    assert_eq!(field(&out, "gid"), "0", "{out}");
    assert_eq!(
        field(&out, "ns_user"),
        host_link(format!("/proc/{pid}/ns/user"))
    );

    // Seen from the host, it runs as the mapped uid.
    let pidfile = env.dir.join("exec.pid");
    let epid = exec_detached(&env, &pidfile, &["sleep", "1002"]);
    let md = fs::metadata(format!("/proc/{epid}")).unwrap();
    assert_eq!((md.uid(), md.gid()), (100000, 100000));
}

// ---------------------------------------------------------------------------
// Process settings from the flags
// ---------------------------------------------------------------------------

#[test]
fn exec_env_adds_and_replaces_variables() {
    let mut env = TestEnv::new("exec_env");
    start_sleeper(&mut env);
    let out = exec_sh_ok(
        &env,
        &["-e", "FOO=bar", "-e", "TERM=dumb"],
        "echo foo=$FOO; echo term=$TERM; echo terms=$(env | grep -c '^TERM='); \
         echo path=$PATH",
    );
    assert_eq!(field(&out, "foo"), "bar", "{out}");
    assert_eq!(field(&out, "term"), "dumb", "{out}");
    assert_eq!(
        field(&out, "terms"),
        "1",
        "TERM must be replaced, not duplicated:\n{out}"
    );
    // The container's other variables stay.
    assert_eq!(
        field(&out, "path"),
        "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        "{out}"
    );
}

#[test]
fn exec_env_replaces_the_containers_variable_in_the_environ_itself() {
    let mut env = TestEnv::new("exec_env_environ");
    start_sleeper(&mut env);
    // No shell in between (a shell would tidy duplicates): `env` prints
    // the process's environ as the kernel gave it. With two TERM entries,
    // getenv() would find the container's first.
    let out = exec(&env, &["-e", "TERM=dumb"], &["env"]);
    assert!(out.status.success(), "{}", describe(&out));
    let so = stdout(&out);
    let terms: Vec<&str> = so
        .lines()
        .filter(|l| l.starts_with("TERM="))
        .map(|l| &l[5..])
        .collect();
    assert_eq!(terms, ["dumb"], "{}", describe(&out));
}

#[test]
fn exec_gets_the_containers_personality() {
    if skip_on_reference("linux.personality") {
        return;
    }
    let mut env = TestEnv::new("exec_personality");
    env.bundle
        .edit(|c| c["linux"]["personality"] = json!({"domain": "LINUX32"}));
    start_sleeper(&mut env);
    // With the container's process settings, and with a process.json (the
    // personality is the container's, not the process's).
    let pj = env.dir.join("process.json");
    let p = json!({"args": ["uname", "-m"], "cwd": "/", "user": {"uid": 0, "gid": 0}});
    fs::write(&pj, p.to_string()).unwrap();
    let pj = pj.to_str().unwrap();
    for (flags, command) in [(&[][..], &["uname", "-m"][..]), (&["-p", pj][..], &[][..])] {
        let out = exec(&env, flags, command);
        assert!(out.status.success(), "{}", describe(&out));
        assert!(
            matches!(stdout(&out).trim(), "i686" | "i386" | "armv7l" | "armv8l"),
            "an exec'd process must run with linux.personality LINUX32: {}",
            describe(&out)
        );
    }
}

#[test]
fn exec_cwd_sets_the_working_directory() {
    let mut env = TestEnv::new("exec_cwd");
    start_sleeper(&mut env);
    fs::create_dir_all(env.bundle.rootfs().join("work/dir")).unwrap();
    let out = exec_sh_ok(&env, &["--cwd", "/work/dir"], "pwd; readlink /proc/$$/cwd");
    assert_eq!(out, "/work/dir\n/work/dir\n");
    let out = exec_sh_ok(&env, &[], "pwd");
    assert_eq!(out, "/\n", "without --cwd the container's cwd applies");
}

#[test]
fn exec_user_and_additional_gids() {
    let mut env = TestEnv::new("exec_user");
    start_sleeper(&mut env);
    let out = exec_sh_ok(
        &env,
        &[
            "-u",
            "1000:1000",
            "--additional-gids",
            "10",
            "--additional-gids",
            "20",
        ],
        "echo uid=$(id -u); echo gid=$(id -g); echo groups=$(id -G)",
    );
    assert_eq!(field(&out, "uid"), "1000", "{out}");
    assert_eq!(field(&out, "gid"), "1000", "{out}");
    let mut groups: Vec<&str> = field(&out, "groups").split_whitespace().collect();
    groups.sort();
    assert_eq!(groups, ["10", "1000", "20"], "{out}");

    let out = exec_sh_ok(
        &env,
        &["--user", "1000"],
        "echo uid=$(id -u); echo gid=$(id -g)",
    );
    assert_eq!(field(&out, "uid"), "1000", "{out}");
}

/// `/proc/self/status` mask of the named capabilities.
fn mask(bits: &[u32]) -> String {
    format!("{:016x}", bits.iter().fold(0u64, |m, b| m | 1 << b))
}

const CAP_KILL: u32 = 5;
const CAP_NET_BIND_SERVICE: u32 = 10;
const CAP_SYS_ADMIN: u32 = 21;
const CAP_AUDIT_WRITE: u32 = 29;

#[test]
fn exec_cap_raises_bounding_effective_permitted_but_not_inheritable_or_ambient() {
    let mut env = TestEnv::new("exec_cap");
    // Inheritable and ambient non-empty, so that "not added there" is seen
    // as an unchanged set rather than an empty one.
    env.bundle.edit(|c| {
        let base = json!(["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"]);
        c["process"]["capabilities"]["inheritable"] = base.clone();
        c["process"]["capabilities"]["ambient"] = base;
    });
    start_sleeper(&mut env);
    let base = [CAP_AUDIT_WRITE, CAP_KILL, CAP_NET_BIND_SERVICE];
    let out = exec_sh_ok(&env, &[], "grep ^Cap /proc/self/status");
    for set in ["CapEff", "CapPrm", "CapBnd", "CapInh", "CapAmb"] {
        assert_eq!(
            status_value(&out, set),
            mask(&base),
            "{set} without --cap:\n{out}"
        );
    }
    let out = exec_sh_ok(
        &env,
        &["--cap", "CAP_SYS_ADMIN"],
        "grep ^Cap /proc/self/status",
    );
    let raised = [
        CAP_AUDIT_WRITE,
        CAP_KILL,
        CAP_NET_BIND_SERVICE,
        CAP_SYS_ADMIN,
    ];
    for set in ["CapEff", "CapPrm", "CapBnd"] {
        assert_eq!(status_value(&out, set), mask(&raised), "{set}:\n{out}");
    }
    for set in ["CapInh", "CapAmb"] {
        assert_eq!(
            status_value(&out, set),
            mask(&base),
            "--cap must not reach {set} (CVE-2022-29162):\n{out}"
        );
    }
}

/// An unknown name given to `--cap` is left out with a warning, as in a
/// config (runc warns and ignores it); the known ones are raised.
#[test]
fn exec_cap_with_an_unknown_name_warns_and_raises_the_known_ones() {
    if skip_on_reference_because("the warning's wording is rrun's") {
        return;
    }
    let mut env = TestEnv::new("exec_cap_unknown");
    env.bundle.edit(|c| {
        c["process"]["capabilities"] = json!({
            "bounding": ["CAP_KILL"], "effective": ["CAP_KILL"], "permitted": ["CAP_KILL"]
        });
    });
    start_sleeper(&mut env);
    let out = exec(
        &env,
        &["--cap", "CAP_NO_SUCH_THING", "--cap", "CAP_SYS_ADMIN"],
        &["sh", "-c", "grep ^Cap /proc/self/status"],
    );
    assert!(out.status.success(), "{}", describe(&out));
    let text = stdout(&out);
    for set in ["CapEff", "CapPrm", "CapBnd"] {
        assert_eq!(
            status_value(&text, set),
            mask(&[CAP_KILL, CAP_SYS_ADMIN]),
            "{set}:\n{text}"
        );
    }
    assert!(
        stderr(&out).contains("unknown capability CAP_NO_SUCH_THING; ignored"),
        "{}",
        describe(&out)
    );
}

#[test]
fn exec_no_new_privs_sets_the_flag() {
    let mut env = TestEnv::new("exec_nnp");
    env.bundle
        .edit(|c| c["process"]["noNewPrivileges"] = json!(false));
    start_sleeper(&mut env);
    let out = exec_sh_ok(&env, &[], "grep ^NoNewPrivs /proc/self/status");
    assert_eq!(status_value(&out, "NoNewPrivs"), "0", "{out}");
    let out = exec_sh_ok(
        &env,
        &["--no-new-privs"],
        "grep ^NoNewPrivs /proc/self/status",
    );
    assert_eq!(status_value(&out, "NoNewPrivs"), "1", "{out}");
}

#[test]
fn exec_process_json_runs_that_process() {
    let mut env = TestEnv::new("exec_process_json");
    start_sleeper(&mut env);
    fs::create_dir_all(env.bundle.rootfs().join("srv")).unwrap();
    let p = json!({
        "terminal": false,
        "user": {"uid": 1000, "gid": 1000, "additionalGids": [30]},
        "args": ["sh", "-c",
                 "echo foo=$FOO; echo term=$TERM; echo cwd=$(pwd); echo uid=$(id -u); \
                  echo groups=$(id -G); echo args=$0,$1", "zero", "one"],
        "env": ["FOO=from-json", "PATH=/bin"],
        "cwd": "/srv"
    });
    let pj = env.dir.join("process.json");
    fs::write(&pj, serde_json::to_string_pretty(&p).unwrap()).unwrap();
    let out = exec(&env, &["--process", pj.to_str().unwrap()], &[]);
    assert!(out.status.success(), "{}", describe(&out));
    let out = stdout(&out);
    assert_eq!(field(&out, "foo"), "from-json", "{out}");
    assert_eq!(
        field(&out, "term"),
        "",
        "the process's env replaces the container's:\n{out}"
    );
    assert_eq!(field(&out, "cwd"), "/srv", "{out}");
    assert_eq!(field(&out, "uid"), "1000", "{out}");
    let mut groups: Vec<&str> = field(&out, "groups").split_whitespace().collect();
    groups.sort();
    assert_eq!(groups, ["1000", "30"], "{out}");
    assert_eq!(field(&out, "args"), "zero,one", "{out}");
}

#[test]
fn exec_process_json_without_user_runs_as_root() {
    let mut env = TestEnv::new("exec_process_json_no_user");
    // The container's own user must not leak into a process.json without one.
    env.bundle
        .edit(|c| c["process"]["user"] = json!({"uid": 1000, "gid": 1000}));
    start_sleeper(&mut env);
    let pj = env.dir.join("process.json");
    let p = json!({"args": ["sh", "-c", "echo ids=$(id -u):$(id -g)"], "cwd": "/",
                   "env": ["PATH=/bin"]});
    fs::write(&pj, p.to_string()).unwrap();
    let out = exec(&env, &["--process", pj.to_str().unwrap()], &[]);
    assert!(out.status.success(), "{}", describe(&out));
    assert_eq!(field(&stdout(&out), "ids"), "0:0", "{}", describe(&out));
}

// ---------------------------------------------------------------------------
// Detached exec
// ---------------------------------------------------------------------------

/// `NSpid:` of a host process: its pids from the host's namespace inwards.
fn nspid(pid: i32) -> Vec<String> {
    let s = fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    s.lines()
        .find_map(|l| l.strip_prefix("NSpid:"))
        .unwrap()
        .split_whitespace()
        .map(String::from)
        .collect()
}

#[test]
fn exec_detached_writes_the_pid_file_and_leaves_the_process_running() {
    let mut env = TestEnv::new("exec_detach");
    start_sleeper(&mut env);
    let pidfile = env.dir.join("pids/exec.pid");
    fs::create_dir_all(pidfile.parent().unwrap()).unwrap();
    let started = Instant::now();
    let epid = exec_detached(
        &env,
        &pidfile,
        &["sh", "-c", "echo $$ > /exec-self; exec sleep 1003"],
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "exec -d waited for the process"
    );
    assert!(process_alive(epid), "exec'd process {epid} is not alive");
    // The pid file names the exec'd process itself: its pid inside the
    // container is the one it wrote.
    let inner = wait_for_file(&env.bundle.rootfs().join("exec-self"), T).unwrap();
    assert_eq!(
        nspid(epid).last().map(String::as_str),
        Some(inner.trim()),
        "the pid file's process is not the exec'd one"
    );
    assert!(
        wait_for(T, || fs::read_to_string(format!("/proc/{epid}/cmdline"))
            .is_ok_and(|c| c == "sleep\u{0}1003\u{0}")),
        "the exec'd process does not run `sleep 1003`"
    );

    unsafe {
        libc::kill(epid, libc::SIGKILL);
    }
    assert!(
        wait_for(T, || !process_alive(epid)),
        "the detached process did not die"
    );
    assert_eq!(env.rt.status(env.id()), "running");
}

/// The exec'd process leads a session and process group of its own, in
/// the foreground and detached (runc calls setsid for every exec): it never
/// shares the caller's (conmon's, a shim's), so signals to the caller's
/// process group and the caller's terminal job control do not reach it.
#[test]
fn exec_process_leads_its_own_session() {
    let mut env = TestEnv::new("exec_setsid");
    start_sleeper(&mut env);
    let script = "set -- $(cat /proc/$$/stat); echo pid=$1 pgrp=$5 sid=$6";
    let out = exec_sh_ok(&env, &[], script);
    let pid = field(&out, "pid").split_whitespace().next().unwrap();
    assert_eq!(
        out.trim(),
        format!("pid={pid} pgrp={pid} sid={pid}"),
        "foreground exec"
    );
    let out = exec(
        &env,
        &["-d"],
        &["sh", "-c", &format!("({script}) > /exec-sid")],
    );
    assert!(out.status.success(), "{}", describe(&out));
    let out = wait_for_file(&env.bundle.rootfs().join("exec-sid"), T).expect("no /exec-sid");
    let pid = field(&out, "pid").split_whitespace().next().unwrap();
    assert_eq!(
        out.trim(),
        format!("pid={pid} pgrp={pid} sid={pid}"),
        "detached exec"
    );
}

/// One busy thread per CPU until dropped.
struct CpuLoad {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl CpuLoad {
    fn start() -> CpuLoad {
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let n = std::thread::available_parallelism().map_or(2, |n| n.get());
        let threads = (0..n)
            .map(|_| {
                let stop = stop.clone();
                std::thread::spawn(move || {
                    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                        std::hint::spin_loop();
                    }
                })
            })
            .collect();
        CpuLoad { stop, threads }
    }
}

impl Drop for CpuLoad {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

/// A race detector: it cannot fail for a runtime that reports the right
/// pid, and fails only now and then for one that does not (one run in a few
/// on a 2-CPU machine when the pid comes from whichever of the two forks
/// reports first).
#[test]
fn exec_pid_file_names_the_process_every_time() {
    // With a pid namespace the runtime forks once more inside it; the pid
    // it reports must be the process's, however the two forks race.
    let mut env = TestEnv::new("exec_pid_race");
    start_sleeper(&mut env);
    // Busy threads make the scheduling of the two forks vary.
    let _load = CpuLoad::start();
    let dir = env.dir.join("pids");
    fs::create_dir_all(&dir).unwrap();
    for i in 0..15 {
        let pidfile = dir.join(format!("{i}.pid"));
        let epid = exec_detached(
            &env,
            &pidfile,
            &["sh", "-c", &format!("echo $$ > /self-{i}; exec sleep 1000")],
        );
        let inner = wait_for_file(&env.bundle.rootfs().join(format!("self-{i}")), T)
            .unwrap_or_else(|| panic!("exec {i} never ran"));
        assert!(
            process_alive(epid),
            "exec {i}: the pid file names {epid}, which is not running (the process is \
             {} inside the container)",
            inner.trim()
        );
        assert_eq!(
            nspid(epid).last().map(String::as_str),
            Some(inner.trim()),
            "exec {i}: the pid file names another process"
        );
    }
}

// ---------------------------------------------------------------------------
// File descriptors
// ---------------------------------------------------------------------------

#[test]
fn exec_preserve_fds_passes_fd_3() {
    let mut env = TestEnv::new("exec_preserve_fds");
    start_sleeper(&mut env);
    let file = env.dir.join("payload");
    fs::write(&file, "from-fd-3\n").unwrap();
    let out = env
        .rt
        .spawn_with_fd3(
            &[
                "exec",
                "--preserve-fds",
                "1",
                env.id(),
                "sh",
                "-c",
                "echo got=$(cat <&3); ls /proc/$$/fd > /tmp/fds; \
                 echo fds=$(sort -n /tmp/fds | tr '\\n' ' ')",
            ],
            &file,
            &[],
        )
        .wait_timeout(T);
    assert!(out.status.success(), "{}", describe(&out));
    let so = stdout(&out);
    assert_eq!(field(&so, "got"), "from-fd-3", "{so}");
    // busybox sh keeps its saved copies of redirected fds at 10 and up.
    let low: Vec<u32> = field(&so, "fds")
        .split_whitespace()
        .map(|f| f.parse().unwrap())
        .filter(|&f| f < 10)
        .collect();
    assert_eq!(low, [0, 1, 2, 3], "{so}");
}

#[test]
fn exec_process_gets_only_stdio_fds() {
    let mut env = TestEnv::new("exec_fds");
    start_sleeper(&mut env);
    let file = env.dir.join("payload");
    fs::write(&file, "secret\n").unwrap();
    // The runtime itself has fd 3 open: it must not reach the process, nor
    // any fd of the runtime's own (state dir, cgroup dir: CVE-2024-21626).
    // `ls` is the process itself here; its only extra fd is the directory it
    // lists, which is therefore 3.
    let out = env
        .rt
        .spawn_with_fd3(&["exec", env.id(), "ls", "/proc/self/fd"], &file, &[])
        .wait_timeout(T);
    assert!(out.status.success(), "{}", describe(&out));
    let fds: Vec<String> = stdout(&out).split_whitespace().map(String::from).collect();
    assert_eq!(fds, ["0", "1", "2", "3"], "{}", describe(&out));

    // Same for a shell; and its cwd is the container's "/".
    let out = env
        .rt
        .spawn_with_fd3(
            &[
                "exec",
                env.id(),
                "sh",
                "-c",
                // No redirection in the shell (it would keep a saved copy
                // of the fd) and `ls` runs before any command substitution.
                "ls -l /proc/$$/fd; echo cwd=$(readlink /proc/$$/cwd)",
            ],
            &file,
            &[],
        )
        .wait_timeout(T);
    assert!(out.status.success(), "{}", describe(&out));
    let so = stdout(&out);
    // `ls -l` lines of the fds: "lrwx------ ... N -> target".
    let fds: BTreeSet<u32> = so
        .lines()
        .filter(|l| l.starts_with('l'))
        .filter_map(|l| {
            let left = l.split_once(" -> ").map_or(l, |(left, _)| left);
            left.split_whitespace().last()?.parse().ok()
        })
        .collect();
    let fds: Vec<u32> = fds.into_iter().collect();
    assert_eq!(
        fds,
        [0, 1, 2],
        "fds other than stdio reached the shell:\n{so}"
    );
    assert_eq!(field(&so, "cwd"), "/", "{so}");
}

// ---------------------------------------------------------------------------
// Failures
// ---------------------------------------------------------------------------

#[test]
fn exec_into_a_stopped_container_fails() {
    let mut env = TestEnv::new("exec_stopped");
    env.bundle.set_script("true");
    env.create();
    env.rt.start(env.id());
    env.rt.wait_status(env.id(), "stopped", T);
    let out = exec(&env, &[], &["sh", "-c", "echo ran > /ran"]);
    assert_error(&out, &["stopped"]);
    assert!(!env.bundle.rootfs().join("ran").exists());
    assert_eq!(env.rt.status(env.id()), "stopped");
}

#[test]
fn exec_into_a_missing_container_fails() {
    let env = TestEnv::new("exec_missing_ctr");
    let out = env.rt.cmd(&["exec", "no-such-container", "true"]);
    assert_error_ref(&out, &["no-such-container"], &["exist"]);
}

#[test]
fn exec_of_a_missing_executable_fails_naming_it() {
    let mut env = TestEnv::new("exec_no_exe");
    start_sleeper(&mut env);
    let out = exec(&env, &[], &["no-such-program", "arg"]);
    assert_error(&out, &["no-such-program"]);
    let out = exec(&env, &[], &["/bin/no-such-path"]);
    assert_error(&out, &["/bin/no-such-path"]);
    assert_eq!(env.rt.status(env.id()), "running");
}

#[test]
fn exec_failures_exit_with_255_like_runc() {
    let mut env = TestEnv::new("exec_255");
    start_sleeper(&mut env);
    let out = exec(&env, &[], &["no-such-program"]);
    assert_eq!(
        exit_code(&out),
        255,
        "missing executable: {}",
        describe(&out)
    );
    let out = env.rt.cmd(&["exec", "no-such-container", "true"]);
    assert_eq!(
        exit_code(&out),
        255,
        "missing container: {}",
        describe(&out)
    );
    env.rt.run_ok(&["kill", env.id(), "KILL"]);
    env.rt.wait_status(env.id(), "stopped", T);
    let out = exec(&env, &[], &["true"]);
    assert_eq!(
        exit_code(&out),
        255,
        "stopped container: {}",
        describe(&out)
    );
}

#[test]
fn exec_into_a_paused_container_fails_unless_ignore_paused() {
    let mut env = TestEnv::new("exec_paused");
    start_sleeper(&mut env);
    env.rt.run_ok(&["pause", env.id()]);
    assert_eq!(env.rt.status(env.id()), "paused");
    let out = exec(&env, &[], &["sh", "-c", "echo ran > /ran"]);
    assert_error(&out, &["paused"]);
    assert!(!env.bundle.rootfs().join("ran").exists());

    // With --ignore-paused the process is made, in the frozen cgroup: it
    // runs once the container is resumed.
    let mut sp = env.rt.spawn(&[
        "exec",
        "--ignore-paused",
        env.id(),
        "sh",
        "-c",
        "echo ran > /ran; echo done",
    ]);
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        !env.bundle.rootfs().join("ran").exists(),
        "the process ran in a paused container"
    );
    env.rt.run_ok(&["resume", env.id()]);
    let out = sp.wait_timeout(T);
    assert!(out.status.success(), "{}", describe(&out));
    assert_eq!(stdout(&out), "done\n");
    assert!(env.bundle.rootfs().join("ran").exists());
}

#[test]
fn exec_without_a_command_fails() {
    let mut env = TestEnv::new("exec_no_cmd");
    start_sleeper(&mut env);
    let out = env.rt.cmd(&["exec", env.id()]);
    assert!(!out.status.success(), "{}", describe(&out));
    let err = stderr(&out);
    assert!(!err.trim().is_empty(), "{}", describe(&out));
    if !is_reference_runtime() {
        assert_eq!(err.trim_end().lines().count(), 1, "{}", describe(&out));
    }
    assert_eq!(env.rt.status(env.id()), "running");
}

#[test]
fn exec_leaves_nothing_behind_after_delete() {
    let mut env = TestEnv::new("exec_cleanup");
    start_sleeper(&mut env);
    let pidfile = env.dir.join("exec.pid");
    let epid = exec_detached(&env, &pidfile, &["sleep", "1004"]);
    env.rt.run_ok(&["delete", "--force", env.id()]);
    assert!(
        wait_for(T, || !process_alive(epid)),
        "the exec'd process survived delete --force"
    );
    env.assert_nothing_left();
}
