//! `checkpoint` and `restore` with CRIU, driven as engines drive them: a
//! counter loop that continues from where it was, `--leave-running`, a
//! terminal through `--console-socket`, an established TCP connection,
//! pre-dump then dump, a restore into another bundle, and failed restores
//! that leave nothing behind; then Podman and containerd (`ctr`)
//! checkpointing and restoring a container that runs on rrun.
//!
//! CRIU must work on the kernel: each test asks `criu check` (once) and
//! skips, saying why, where it fails, as it does on the 6.18 development
//! host with Debian 12's CRIU 3.17 (`vdso: Unexpected rt vDSO area
//! bounds`); there one test checks instead that `checkpoint` says so in one
//! line. They run for real in the systemd VM (`tests/vm/run.sh checkpoint`,
//! Debian's 6.1 kernel, CRIU 3.17 from Debian), with
//! `RRUN_TEST_REQUIRE_CRIU=1`: a CRIU that cannot work fails them there.
//! Check them against runc: `RRUN_TEST_RUNTIME=/usr/sbin/runc`.
//!
//! runc 1.1.5's behaviour they pin down: after `checkpoint` (without
//! `--leave-running` or `--pre-dump`) the container is gone (`state` says it
//! does not exist) and its id can be restored; a restored container is
//! `running` with a new pid, in `state` and `--pid-file`; the container's
//! stdio pipes are replaced by `restore`'s own (runc's descriptors.json).

mod common;

use common::console::*;
use common::*;
use serde_json::json;
use std::fs;
use std::io::{BufRead, BufReader};
use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;
use std::process::{Output, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

const T: Duration = Duration::from_secs(30);
/// Prints 1, 2, 3, ... on stdout, ten a second.
const COUNTER: &str = "i=0; while :; do i=$((i+1)); echo $i; sleep 0.1; done";

// ---------------------------------------------------------------------------
// Whether CRIU works here
// ---------------------------------------------------------------------------

/// `Ok` when `criu check` passes, else why not (`criu` missing, or its
/// first error).
fn criu_state() -> &'static Result<(), String> {
    static STATE: OnceLock<Result<(), String>> = OnceLock::new();
    STATE.get_or_init(|| {
        let out = match std::process::Command::new("criu").arg("check").output() {
            Ok(o) => o,
            Err(_) => return Err("criu is not installed (apt-get install criu)".into()),
        };
        if out.status.success() {
            return Ok(());
        }
        let text = String::from_utf8_lossy(&out.stderr).into_owned()
            + &String::from_utf8_lossy(&out.stdout);
        let first = text
            .lines()
            .find_map(|l| l.split_once("): ").map(|(_, m)| m.to_string()))
            .unwrap_or(text);
        Err(format!("criu check fails on this kernel: {first}"))
    })
}

/// True when the test can run; otherwise says why it skips (or fails, with
/// `RRUN_TEST_REQUIRE_CRIU=1`, as in the VM).
fn criu_works(test: &str) -> bool {
    match criu_state() {
        Ok(()) => true,
        Err(why) => {
            if std::env::var_os("RRUN_TEST_REQUIRE_CRIU").is_some_and(|v| v == "1") {
                panic!("{test}: RRUN_TEST_REQUIRE_CRIU=1 but {why}");
            }
            eprintln!("skipping {test}: {why}");
            false
        }
    }
}

// ---------------------------------------------------------------------------
// A container whose stdout is a pipe the test reads
// ---------------------------------------------------------------------------

/// The lines a container writes to its stdout pipe, read by a thread.
struct Lines {
    lines: Arc<Mutex<Vec<String>>>,
}

impl Lines {
    /// A pipe: the write end for the runtime's stdout, and its reader.
    fn pipe() -> (OwnedFd, Lines) {
        let (r, w) = nix::unistd::pipe().expect("pipe");
        let lines = Arc::new(Mutex::new(Vec::new()));
        let sink = lines.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(fs::File::from(r)).lines() {
                let Ok(line) = line else { break };
                sink.lock().unwrap().push(line);
            }
        });
        (w, Lines { lines })
    }

    fn all(&self) -> Vec<String> {
        self.lines.lock().unwrap().clone()
    }

    /// The last number read so far.
    fn last_number(&self) -> Option<u64> {
        self.all().iter().rev().find_map(|l| l.trim().parse().ok())
    }

    /// Waits until a number above `n` arrives; returns the first one.
    fn first_above(&self, n: u64, timeout: Duration) -> Option<u64> {
        let mut found = None;
        wait_for(timeout, || {
            found = self
                .all()
                .iter()
                .filter_map(|l| l.trim().parse::<u64>().ok())
                .find(|&x| x > n);
            found.is_some()
        });
        found
    }
}

/// Runs the runtime with `args`, its stdout the pipe `out` and its stderr
/// a pipe too (what it prints is returned; a container that inherits it
/// writes there afterwards), stdin /dev/null; waits for it. Pipes, as
/// engines give: CRIU cannot checkpoint a file of the host's.
fn with_stdout(rt: &Runtime, args: &[&str], out: OwnedFd) -> Output {
    let (err_w, err) = Lines::pipe();
    let mut c = rt.command(args);
    c.stdin(Stdio::null())
        .stdout(Stdio::from(out))
        .stderr(Stdio::from(err_w));
    let mut child = c.spawn().expect("spawn the runtime");
    // `c` holds the pipes' write ends until dropped.
    drop(c);
    let start = std::time::Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(start.elapsed() < T, "`{}` did not finish", args.join(" "));
        std::thread::sleep(Duration::from_millis(10));
    };
    // The reader thread may still be on the last line.
    std::thread::sleep(Duration::from_millis(100));
    Output {
        status,
        stdout: Vec::new(),
        stderr: err.all().join("\n").into_bytes(),
    }
}

/// `run -d` of the env's bundle with stdout a pipe the test reads.
fn run_counting(env: &TestEnv) -> Lines {
    let (w, lines) = Lines::pipe();
    let out = with_stdout(
        &env.rt,
        &["run", "-d", "--bundle", env.bundle.path_str(), env.id()],
        w,
    );
    assert!(out.status.success(), "run -d: {}", describe(&out));
    lines
}

/// `restore -d` with stdout a new pipe the test reads.
fn restore_counting(rt: &Runtime, bundle: &Path, id: &str, extra: &[&str]) -> (Output, Lines) {
    let (w, lines) = Lines::pipe();
    let mut args = vec!["restore", "-d", "--bundle", bundle.to_str().unwrap()];
    args.extend_from_slice(extra);
    args.push(id);
    (with_stdout(rt, &args, w), lines)
}

/// A counter container, running and counting (at least to 5).
fn counting(name: &str) -> (TestEnv, Lines) {
    let mut env = TestEnv::new(name);
    env.bundle.set_script(COUNTER);
    let lines = run_counting(&env);
    assert!(
        lines.first_above(4, T).is_some(),
        "the counter did not count: {:?}",
        lines.all()
    );
    (env, lines)
}

fn checkpoint(env: &TestEnv, images: &Path, extra: &[&str]) -> Output {
    let mut args = vec!["checkpoint", "--image-path", images.to_str().unwrap()];
    args.extend_from_slice(extra);
    args.push(env.id());
    env.rt.cmd_timeout(&args, T)
}

/// The last lines of a CRIU log, for a failure message.
fn log_tail(log: &Path) -> String {
    let text = fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    format!(
        "--- {} (last 40 lines) ---\n{}",
        log.display(),
        lines[lines.len().saturating_sub(40)..].join("\n")
    )
}

/// After a full checkpoint the container is gone, as with runc.
fn assert_gone(env: &TestEnv) {
    let out = env.rt.cmd(&["state", env.id()]);
    assert!(
        !out.status.success() && stderr(&out).contains("does not exist"),
        "after checkpoint, state should say the container does not exist: {}",
        describe(&out)
    );
}

// ---------------------------------------------------------------------------
// The tests
// ---------------------------------------------------------------------------

#[test]
fn checkpoint_fails_in_one_line_where_criu_cannot_work() {
    let why = match criu_state() {
        Ok(()) => {
            eprintln!("skipping: criu check passes here, so checkpoint works");
            return;
        }
        Err(why) => why.clone(),
    };
    if is_reference_runtime() {
        eprintln!("skipping: rrun's own message");
        return;
    }
    let mut env = TestEnv::new("ckpt-no-criu");
    env.bundle.set_args(&["sleep", "100"]);
    env.rt
        .run_ok(&["run", "-d", "--bundle", env.bundle.path_str(), env.id()]);
    let images = env.dir.join("images");
    let out = checkpoint(&env, &images, &[]);
    assert_error(&out, &["criu"]);
    let msg = stderr(&out);
    if why.contains("not installed") {
        assert!(msg.contains("not found"), "{msg}");
    } else {
        // The kernel is the reason: criu check's own message, in one line.
        let check = why.rsplit_once(": ").map(|(_, m)| m).unwrap_or(&why);
        assert!(
            msg.contains("criu check") && msg.contains(check.trim()),
            "the error should give criu check's message {check:?}: {msg}"
        );
        if check.contains("vDSO") {
            assert!(msg.contains("newer CRIU"), "{msg}");
        }
    }
    assert_eq!(
        env.rt.status(env.id()),
        "running",
        "a failed checkpoint stops nothing"
    );
    let out = env.rt.cmd(&[
        "restore",
        "-d",
        "--image-path",
        images.to_str().unwrap(),
        "--bundle",
        env.bundle.path_str(),
        "restored",
    ]);
    assert_error(&out, &["criu"]);
    assert_nothing_left(&env.rt, "restored", &env.bundle);
}

#[test]
fn checkpoint_needs_stdio_on_the_containers_own_dev_null() {
    // An engine's "no input" is the host's /dev/null; init moves it onto
    // the container's (runc and crun do too): CRIU cannot checkpoint a
    // file of a mount the container does not have.
    let mut env = TestEnv::new("ckpt-devnull");
    env.bundle.set_args(&["sleep", "100"]);
    env.rt
        .run_ok(&["run", "-d", "--bundle", env.bundle.path_str(), env.id()]);
    let pid = env.rt.pid(env.id());
    let mounts: Vec<String> = fs::read_to_string(format!("/proc/{pid}/mountinfo"))
        .unwrap()
        .lines()
        .map(|l| l.split(' ').next().unwrap().to_string())
        .collect();
    let fdinfo = fs::read_to_string(format!("/proc/{pid}/fdinfo/0")).unwrap();
    let mnt = fdinfo
        .lines()
        .find_map(|l| l.strip_prefix("mnt_id:"))
        .unwrap()
        .trim()
        .to_string();
    assert_eq!(
        fs::read_link(format!("/proc/{pid}/fd/0")).unwrap(),
        Path::new("/dev/null")
    );
    assert!(
        mounts.contains(&mnt),
        "stdin is /dev/null from mount {mnt}, not one of the container's: {mounts:?}"
    );
}

#[test]
fn checkpoint_of_a_created_container_is_refused() {
    let env = TestEnv::new("ckpt-created");
    env.create();
    let out = checkpoint(&env, &env.dir.join("images"), &[]);
    assert_error(&out, &["created"]);
    assert_eq!(env.rt.status(env.id()), "created");
}

#[test]
fn checkpoint_then_restore_continues_the_counter() {
    if !criu_works("checkpoint_then_restore_continues_the_counter") {
        return;
    }
    let (env, before) = counting("ckpt-counter");
    let old_pid = env.rt.pid(env.id());
    let images = env.dir.join("images");
    let out = checkpoint(&env, &images, &[]);
    assert!(out.status.success(), "checkpoint: {}", describe(&out));
    assert_gone(&env);
    assert!(
        !process_alive(old_pid),
        "the checkpointed process still runs"
    );
    assert!(images.join("descriptors.json").exists());
    let at_dump = before.last_number().expect("numbers before the checkpoint");
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        before.last_number(),
        Some(at_dump),
        "counting went on after the checkpoint"
    );

    let pid_file = env.dir.join("restored.pid");
    let (out, after) = restore_counting(
        &env.rt,
        env.bundle.path(),
        env.id(),
        &[
            "--image-path",
            images.to_str().unwrap(),
            "--pid-file",
            pid_file.to_str().unwrap(),
        ],
    );
    assert!(out.status.success(), "restore: {}", describe(&out));
    let state = env.rt.state(env.id());
    assert_eq!(state["status"], "running", "{state}");
    let pid = state["pid"].as_i64().unwrap() as i32;
    assert!(process_alive(pid));
    assert_eq!(
        fs::read_to_string(&pid_file).unwrap().trim(),
        pid.to_string()
    );
    // The restored loop writes to restore's stdout: the new pipe.
    let next = after
        .first_above(0, T)
        .unwrap_or_else(|| panic!("nothing counted after the restore: {:?}", after.all()));
    assert!(
        next > at_dump && next <= at_dump + 3,
        "the counter restarted instead of continuing: {next} after {at_dump}"
    );
    env.rt.run_ok(&["delete", "--force", env.id()]);
    assert_nothing_left(&env.rt, env.id(), &env.bundle);
}

#[test]
fn checkpoint_leave_running_keeps_the_container_running() {
    if !criu_works("checkpoint_leave_running_keeps_the_container_running") {
        return;
    }
    let (env, lines) = counting("ckpt-leave");
    let pid = env.rt.pid(env.id());
    let images = env.dir.join("images");
    let out = checkpoint(&env, &images, &["--leave-running"]);
    assert!(
        out.status.success(),
        "checkpoint --leave-running: {}",
        describe(&out)
    );
    assert_eq!(env.rt.status(env.id()), "running");
    assert_eq!(env.rt.pid(env.id()), pid);
    let n = lines.last_number().unwrap();
    assert!(lines.first_above(n + 2, T).is_some(), "the counter stopped");
    assert!(images.join("inventory.img").exists(), "no CRIU images");
    env.rt.run_ok(&["delete", "--force", env.id()]);
    assert_nothing_left(&env.rt, env.id(), &env.bundle);
}

#[test]
fn checkpoint_and_restore_a_terminal_through_the_console_socket() {
    if !criu_works("checkpoint_and_restore_a_terminal_through_the_console_socket") {
        return;
    }
    let mut env = TestEnv::new("ckpt-tty");
    env.bundle.edit(|c| c["process"]["terminal"] = json!(true));
    env.bundle.set_script(COUNTER);
    let console = ConsoleSocket::bind(env.dir.path());
    env.rt.run_ok(&[
        "run",
        "-d",
        "--console-socket",
        console.path_str(),
        "--bundle",
        env.bundle.path_str(),
        env.id(),
    ]);
    let master = console.receive_master();
    let seen = read_until(master.as_fd(), "\n5\n", T);
    assert!(
        seen.contains("\n5\n"),
        "no counting on the terminal: {seen:?}"
    );
    let images = env.dir.join("images");
    let out = checkpoint(&env, &images, &[]);
    assert!(out.status.success(), "checkpoint: {}", describe(&out));
    drop(master);
    fs::create_dir(env.dir.join("second")).unwrap();
    let console2 = ConsoleSocket::bind(&env.dir.join("second"));
    let out = env.rt.cmd_timeout(
        &[
            "restore",
            "-d",
            "--image-path",
            images.to_str().unwrap(),
            "--console-socket",
            console2.path_str(),
            "--bundle",
            env.bundle.path_str(),
            env.id(),
        ],
        T,
    );
    assert!(out.status.success(), "restore: {}", describe(&out));
    let master = console2.receive_master();
    let seen = read_until(master.as_fd(), "\n", T);
    let n: Vec<u64> = seen.lines().filter_map(|l| l.trim().parse().ok()).collect();
    assert!(
        n.first().is_some_and(|&x| x > 5),
        "the restored counter should go on past 5 on the new pty: {seen:?}"
    );
    env.rt.run_ok(&["delete", "--force", env.id()]);
    assert_nothing_left(&env.rt, env.id(), &env.bundle);
}

#[test]
fn checkpoint_tcp_established_connection_survives_restore() {
    if !criu_works("checkpoint_tcp_established_connection_survives_restore") {
        return;
    }
    let mut env = TestEnv::new("ckpt-tcp");
    // A listener and a client connected to it over the container's own
    // loopback; what the client sends, the listener prints. (The
    // listener's stdin never ends: busybox nc closes its side at stdin's
    // end, and the client then quits.)
    env.bundle.add_capability("CAP_NET_ADMIN");
    env.bundle.set_script(&format!(
        "ip link set lo up; sleep 1000000 | nc -l -p 5000 & sleep 0.5; ({COUNTER}) | nc 127.0.0.1 5000"
    ));
    let lines = run_counting(&env);
    assert!(
        lines.first_above(4, T).is_some(),
        "nothing came over TCP: {:?}",
        lines.all()
    );
    let images = env.dir.join("images");
    // CRIU refuses an established connection unless told.
    let out = checkpoint(&env, &images, &[]);
    assert_error(&out, &["tcp", "established", "criu"]);
    assert_eq!(
        env.rt.status(env.id()),
        "running",
        "a refused checkpoint stops nothing"
    );
    let out = checkpoint(&env, &images, &["--tcp-established"]);
    assert!(
        out.status.success(),
        "checkpoint --tcp-established: {}",
        describe(&out)
    );
    let at_dump = lines.last_number().unwrap();
    let (out, after) = restore_counting(
        &env.rt,
        env.bundle.path(),
        env.id(),
        &[
            "--image-path",
            images.to_str().unwrap(),
            "--tcp-established",
        ],
    );
    assert!(
        out.status.success(),
        "restore --tcp-established: {}",
        describe(&out)
    );
    let next = after.first_above(0, T).unwrap_or_else(|| {
        panic!(
            "the connection carried nothing after the restore: {:?}",
            after.all()
        )
    });
    assert!(
        next > at_dump,
        "{next} after {at_dump}: not the same connection's stream"
    );
    env.rt.run_ok(&["delete", "--force", env.id()]);
    assert_nothing_left(&env.rt, env.id(), &env.bundle);
}

#[test]
fn checkpoint_pre_dump_then_dump_restores() {
    if !criu_works("checkpoint_pre_dump_then_dump_restores") {
        return;
    }
    let (env, before) = counting("ckpt-predump");
    let images = env.dir.join("images");
    fs::create_dir(&images).unwrap();
    let pre = images.join("pre");
    let out = checkpoint(&env, &pre, &["--pre-dump"]);
    assert!(
        out.status.success(),
        "checkpoint --pre-dump: {}",
        describe(&out)
    );
    assert_eq!(
        env.rt.status(env.id()),
        "running",
        "pre-dump leaves the container running"
    );
    let n = before.last_number().unwrap();
    assert!(
        before.first_above(n + 2, T).is_some(),
        "the counter stopped after pre-dump"
    );
    let full = images.join("full");
    let out = checkpoint(&env, &full, &["--parent-path", "../pre"]);
    assert!(
        out.status.success(),
        "checkpoint --parent-path: {}",
        describe(&out)
    );
    assert_gone(&env);
    assert!(
        fs::symlink_metadata(full.join("parent")).is_ok(),
        "CRIU did not link the dump to its parent"
    );
    let at_dump = before.last_number().unwrap();
    let (out, after) = restore_counting(
        &env.rt,
        env.bundle.path(),
        env.id(),
        &["--image-path", full.to_str().unwrap()],
    );
    assert!(out.status.success(), "restore: {}", describe(&out));
    let next = after
        .first_above(0, T)
        .expect("nothing counted after the restore");
    assert!(next > at_dump, "{next} after {at_dump}");
    env.rt.run_ok(&["delete", "--force", env.id()]);
    assert_nothing_left(&env.rt, env.id(), &env.bundle);
}

/// A copy of a bundle in `dir`: the same config, the rootfs copied.
fn copy_bundle(from: &Bundle, dir: &Path) -> Bundle {
    let copy = Bundle::new(dir);
    let status = std::process::Command::new("cp")
        .args(["-a", "--"])
        .arg(from.rootfs())
        .arg(copy.path().join("rootfs.new"))
        .status()
        .unwrap();
    assert!(status.success());
    fs::remove_dir_all(copy.rootfs()).unwrap();
    fs::rename(copy.path().join("rootfs.new"), copy.rootfs()).unwrap();
    copy
}

#[test]
fn restore_into_a_new_bundle_directory() {
    if !criu_works("restore_into_a_new_bundle_directory") {
        return;
    }
    let mut env = TestEnv::new("ckpt-newbundle");
    let data = env.dir.join("data");
    fs::create_dir(&data).unwrap();
    env.bundle.add_bind_mount(&data, "/data");
    env.bundle
        .set_script("i=0; while :; do i=$((i+1)); echo $i > /data/count; sleep 0.1; done");
    let _out = run_counting(&env);
    let count = |d: &Path| -> u64 {
        fs::read_to_string(d.join("count"))
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(0)
    };
    assert!(
        wait_for(T, || count(&data) > 4),
        "the counter did not count"
    );
    let images = env.dir.join("images");
    let out = checkpoint(&env, &images, &[]);
    assert!(out.status.success(), "checkpoint: {}", describe(&out));
    let at_dump = count(&data);

    // Another bundle: its own rootfs copy, /data bound from elsewhere.
    // The volume moves with the container, as a migration would move it:
    // the dump may have caught the shell inside `> /data/count`, with the
    // file open, and CRIU reopens an open file by its path on restore.
    let other = TestDir::new("ckpt-newbundle-2");
    let mut bundle = copy_bundle(&env.bundle, other.path());
    let data2 = other.join("data");
    fs::create_dir(&data2).unwrap();
    fs::copy(data.join("count"), data2.join("count")).unwrap();
    let mut config = env.bundle.config().clone();
    config["mounts"]
        .as_array_mut()
        .unwrap()
        .iter_mut()
        .filter(|m| m["destination"] == "/data")
        .for_each(|m| m["source"] = json!(data2.to_str().unwrap()));
    *bundle.config_mut() = config;
    bundle.write();
    let (out, _lines) = restore_counting(
        &env.rt,
        bundle.path(),
        env.id(),
        &["--image-path", images.to_str().unwrap()],
    );
    assert!(
        out.status.success(),
        "restore: {}\n{}",
        describe(&out),
        log_tail(&images.join("restore.log"))
    );
    let state = env.rt.state(env.id());
    assert_eq!(state["bundle"], bundle.path_str(), "{state}");
    assert!(
        wait_for(T, || count(&data2) > at_dump),
        "the restored counter does not write to the new bundle's /data (at dump {at_dump}, now {})",
        count(&data2)
    );
    assert_eq!(
        count(&data),
        at_dump,
        "the old bind source is still written to"
    );
    env.rt.run_ok(&["delete", "--force", env.id()]);
    assert_nothing_left(&env.rt, env.id(), &bundle);
}

#[test]
fn restore_that_fails_leaves_nothing_behind() {
    if !criu_works("restore_that_fails_leaves_nothing_behind") {
        return;
    }
    let (mut env, _lines) = counting("ckpt-failrestore");
    let images = env.dir.join("images");
    let out = checkpoint(&env, &images, &[]);
    assert!(out.status.success(), "checkpoint: {}", describe(&out));

    // A prestart hook that fails: CRIU has made the tree by then.
    env.bundle.edit(|c| {
        c["hooks"] = json!({"prestart": [{"path": "/bin/false"}]});
    });
    let (out, _lines) = restore_counting(
        &env.rt,
        env.bundle.path(),
        env.id(),
        &["--image-path", images.to_str().unwrap()],
    );
    assert_error(&out, &["hook", "prestart", "criu"]);
    assert_nothing_left(&env.rt, env.id(), &env.bundle);

    // An image directory that holds no checkpoint.
    let empty = env.dir.join("empty");
    fs::create_dir(&empty).unwrap();
    env.bundle.edit(|c| {
        c.as_object_mut().unwrap().remove("hooks");
    });
    let out = env.rt.cmd(&[
        "restore",
        "-d",
        "--image-path",
        empty.to_str().unwrap(),
        "--bundle",
        env.bundle.path_str(),
        env.id(),
    ]);
    assert_error(&out, &["image-path", "checkpoint"]);
    assert_nothing_left(&env.rt, env.id(), &env.bundle);
}

#[test]
fn restore_of_an_existing_id_is_refused() {
    if !criu_works("restore_of_an_existing_id_is_refused") {
        return;
    }
    let (env, _lines) = counting("ckpt-exists");
    let images = env.dir.join("images");
    let out = checkpoint(&env, &images, &["--leave-running"]);
    assert!(out.status.success(), "checkpoint: {}", describe(&out));
    let out = env.rt.cmd(&[
        "restore",
        "-d",
        "--image-path",
        images.to_str().unwrap(),
        "--bundle",
        env.bundle.path_str(),
        env.id(),
    ]);
    assert_error(&out, &["exists"]);
    assert_eq!(env.rt.status(env.id()), "running");
}

#[test]
fn checkpoint_support_is_in_features() {
    let out = TestEnv::new("ckpt-features").rt.run_ok(&["features"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        v["annotations"]["org.opencontainers.runc.checkpoint.enabled"], "true",
        "{v}"
    );
}

// ---------------------------------------------------------------------------
// Engines: Podman and containerd checkpoint and restore a container on rrun
// ---------------------------------------------------------------------------

/// Runs a command (at most `T`), stdin /dev/null, output captured.
fn sh(argv: &[String], env: &[(&str, String)]) -> Output {
    let mut c = std::process::Command::new(&argv[0]);
    c.args(&argv[1..]).stdin(Stdio::null());
    for (k, v) in env {
        c.env(k, v);
    }
    let child = c
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {}: {e}", argv[0]));
    let (tx, rx) = std::sync::mpsc::channel();
    let pid = child.id() as i32;
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(Duration::from_secs(120)) {
        Ok(out) => out.unwrap(),
        Err(_) => {
            unsafe { libc::kill(pid, libc::SIGKILL) };
            panic!("`{}` did not finish in 120 s", argv.join(" "));
        }
    }
}

fn ok(out: Output, what: &str) -> String {
    assert!(out.status.success(), "{what}: {}", describe(&out));
    stdout(&out)
}

fn installed(prog: &str) -> bool {
    std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())
        .any(|d| d.join(prog).is_file())
}

/// A private Podman store in `dir` using rrun, with the engine suite's
/// busybox image (tests/engines/mkimage.sh) in it and its archives in
/// `dir/image`.
struct Podman {
    flags: Vec<String>,
    env: Vec<(&'static str, String)>,
    cgroup_parent: String,
}

impl Podman {
    fn new(dir: &Path) -> Podman {
        let conf = dir.join("containers.conf");
        fs::write(
            &conf,
            format!(
                "[engine]\nruntime = \"rrun\"\n\
                 runtime_supports_json = [\"crun\", \"runc\", \"rrun\"]\n\
                 cgroup_manager = \"cgroupfs\"\nevents_logger = \"file\"\n\
                 [engine.runtimes]\nrrun = [\"{}\"]\n",
                runtime_bin().display()
            ),
        )
        .unwrap();
        let flags = vec![
            format!("--root={}", dir.join("root").display()),
            format!("--runroot={}", dir.join("run").display()),
            format!("--tmpdir={}", dir.join("tmp").display()),
            "--storage-driver=vfs".to_string(),
        ];
        let p = Podman {
            flags,
            env: vec![("CONTAINERS_CONF", conf.to_str().unwrap().to_string())],
            cgroup_parent: format!("/{}", unique_id("rrun-test-ckpt-podman")),
        };
        let mut argv = vec![
            concat!(env!("CARGO_MANIFEST_DIR"), "/tests/engines/mkimage.sh").to_string(),
            dir.join("image").to_str().unwrap().to_string(),
        ];
        argv.extend(p.flags.clone());
        ok(sh(&argv, &p.env), "tests/engines/mkimage.sh");
        p
    }

    fn cmd(&self, args: &[&str]) -> Output {
        let mut argv = vec!["podman".to_string()];
        argv.extend(self.flags.clone());
        argv.extend(args.iter().map(|s| s.to_string()));
        sh(&argv, &self.env)
    }

    fn numbers(&self, name: &str) -> Vec<u64> {
        stdout(&self.cmd(&["logs", name]))
            .lines()
            .filter_map(|l| l.trim().parse().ok())
            .collect()
    }
}

impl Drop for Podman {
    fn drop(&mut self) {
        let _ = self.cmd(&["rm", "-a", "-f", "-t", "0"]);
        remove_cgroup_tree(Path::new(&format!("/sys/fs/cgroup{}", self.cgroup_parent)));
    }
}

/// Removes a cgroup directory and those below it (empty ones: the engines
/// have stopped their processes), deepest first.
fn remove_cgroup_tree(dir: &Path) {
    if let Ok(rd) = fs::read_dir(dir) {
        for e in rd.flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                remove_cgroup_tree(&e.path());
            }
        }
    }
    let _ = fs::remove_dir(dir);
}

#[test]
fn checkpoint_and_restore_through_podman() {
    if !installed("podman") {
        eprintln!("skipping: podman is not installed");
        return;
    }
    if !criu_works("checkpoint_and_restore_through_podman") {
        return;
    }
    let dir = TestDir::new("ckpt-podman");
    let podman = Podman::new(dir.path());
    let name = unique_id("ckpt-podman");
    ok(
        podman.cmd(&[
            "run",
            "-d",
            "--network",
            "none",
            "--cgroup-parent",
            &podman.cgroup_parent,
            "--name",
            &name,
            "localhost/rrun-busybox:test",
            "sh",
            "-c",
            COUNTER,
        ]),
        "podman run",
    );
    assert!(
        wait_for(T, || podman.numbers(&name).len() > 4),
        "the counter did not count"
    );
    ok(
        podman.cmd(&["container", "checkpoint", &name]),
        "podman container checkpoint",
    );
    let state = ok(
        podman.cmd(&["inspect", "-f", "{{.State.Status}}", &name]),
        "inspect",
    );
    assert_eq!(state.trim(), "exited", "after checkpoint");
    let at_dump = *podman.numbers(&name).last().unwrap();
    ok(
        podman.cmd(&["container", "restore", &name]),
        "podman container restore",
    );
    let state = ok(
        podman.cmd(&["inspect", "-f", "{{.State.Status}}", &name]),
        "inspect",
    );
    assert_eq!(state.trim(), "running", "after restore");
    assert!(
        wait_for(T, || podman
            .numbers(&name)
            .last()
            .is_some_and(|&n| n > at_dump + 2)),
        "the restored counter does not go on past {at_dump}: {:?}",
        podman.numbers(&name)
    );
    let n = podman.numbers(&name);
    assert_eq!(
        n.iter().filter(|&&x| x == 1).count(),
        1,
        "the counter started again from 1 instead of continuing: {n:?}"
    );
    ok(podman.cmd(&["rm", "-f", "-t", "0", &name]), "podman rm");
}

/// A private containerd in `dir` (no CRI), stopped when dropped.
struct Containerd {
    child: std::process::Child,
    sock: String,
    dir: std::path::PathBuf,
}

impl Containerd {
    fn start(dir: &Path) -> Containerd {
        let sock = dir.join("containerd.sock").to_str().unwrap().to_string();
        let config = format!(
            "version = 2\nroot = \"{d}/root\"\nstate = \"{d}/state\"\n\
             disabled_plugins = [\"io.containerd.grpc.v1.cri\"]\n\
             [grpc]\n  address = \"{sock}\"\n[ttrpc]\n  address = \"{sock}.ttrpc\"\n\
             [plugins.\"io.containerd.internal.v1.opt\"]\n  path = \"{d}/opt\"\n",
            d = dir.display()
        );
        fs::write(dir.join("config.toml"), config).unwrap();
        let log = fs::File::create(dir.join("containerd.log")).unwrap();
        let child = std::process::Command::new("containerd")
            .arg("--config")
            .arg(dir.join("config.toml"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("spawn containerd");
        let c = Containerd {
            child,
            sock,
            dir: dir.to_path_buf(),
        };
        assert!(
            wait_for(T, || c.ctr(&["version"]).status.success()),
            "containerd did not come up: {}",
            fs::read_to_string(dir.join("containerd.log")).unwrap_or_default()
        );
        c
    }

    fn ctr(&self, args: &[&str]) -> Output {
        let mut argv: Vec<String> = ["ctr", "--address", &self.sock, "--namespace", "rrun-test"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        argv.extend(args.iter().map(|s| s.to_string()));
        sh(&argv, &[])
    }
}

impl Drop for Containerd {
    fn drop(&mut self) {
        let tasks = stdout(&self.ctr(&["task", "ls", "-q"]));
        for t in tasks.split_whitespace() {
            let _ = self.ctr(&["task", "kill", "-s", "SIGKILL", t]);
            let _ = self.ctr(&["task", "delete", "-f", t]);
        }
        for c in stdout(&self.ctr(&["container", "ls", "-q"])).split_whitespace() {
            let _ = self.ctr(&["container", "delete", c]);
        }
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        if !wait_for(Duration::from_secs(10), || {
            self.child.try_wait().ok().flatten().is_some()
        }) {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
        // Shims outlive containerd; theirs mention its directory.
        let needle = self.dir.to_str().unwrap().to_string();
        for e in fs::read_dir("/proc").unwrap().flatten() {
            let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
                continue;
            };
            let cmd = fs::read(e.path().join("cmdline")).unwrap_or_default();
            if String::from_utf8_lossy(&cmd).contains(&needle) {
                unsafe { libc::kill(pid, libc::SIGKILL) };
            }
        }
        remove_cgroup_tree(Path::new("/sys/fs/cgroup/rrun-test"));
    }
}

#[test]
fn checkpoint_and_restore_through_containerd() {
    if !installed("containerd") || !installed("ctr") || !installed("podman") {
        eprintln!("skipping: containerd, ctr or podman (for the image) is not installed");
        return;
    }
    if !criu_works("checkpoint_and_restore_through_containerd") {
        return;
    }
    let dir = TestDir::new("ckpt-ctr");
    let podman_dir = dir.join("podman");
    fs::create_dir(&podman_dir).unwrap();
    let podman = Podman::new(&podman_dir);
    let cd_dir = dir.join("containerd");
    fs::create_dir(&cd_dir).unwrap();
    let cd = Containerd::start(&cd_dir);
    let archive = podman_dir.join("image/busybox.oci.tar");
    ok(
        cd.ctr(&["image", "import", archive.to_str().unwrap()]),
        "ctr image import",
    );
    let data = dir.join("data");
    fs::create_dir(&data).unwrap();
    let id = unique_id("ckpt-ctr");
    let rt = runtime_bin();
    let mount = format!(
        "type=bind,src={},dst=/data,options=rbind:rw",
        data.display()
    );
    let runc_root = cd_dir.join("runc-root");
    ok(
        cd.ctr(&[
            "run",
            "-d",
            "--null-io",
            "--runc-binary",
            rt.to_str().unwrap(),
            "--runc-root",
            runc_root.to_str().unwrap(),
            "--mount",
            &mount,
            "localhost/rrun-busybox:test",
            &id,
            "sh",
            "-c",
            "i=0; while :; do i=$((i+1)); echo $i > /data/count; sleep 0.1; done",
        ]),
        "ctr run",
    );
    let count = || -> u64 {
        fs::read_to_string(data.join("count"))
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(0)
    };
    assert!(wait_for(T, || count() > 4), "the counter did not count");

    // ctr task checkpoint: the task is checkpointed by rrun and keeps running.
    let image = ok(cd.ctr(&["task", "checkpoint", &id]), "ctr task checkpoint");
    assert!(
        !image.trim().is_empty(),
        "ctr task checkpoint printed no image"
    );
    let n = count();
    assert!(
        wait_for(T, || count() > n + 2),
        "the task stopped after ctr task checkpoint"
    );

    // ctr task checkpoint --exit into a directory (the shim passes
    // --image-path and --work-path): checkpointed, then stopped.
    let images = dir.join("images");
    let work = dir.join("work");
    ok(
        cd.ctr(&[
            "task",
            "checkpoint",
            "--exit",
            "--image-path",
            images.to_str().unwrap(),
            "--work-path",
            work.to_str().unwrap(),
            &id,
        ]),
        "ctr task checkpoint --exit --image-path",
    );
    assert!(
        images.join("inventory.img").exists() && images.join("descriptors.json").exists(),
        "no checkpoint in {}",
        images.display()
    );
    assert!(
        wait_for(T, || stdout(&cd.ctr(&["task", "ls"]))
            .lines()
            .any(|l| l.starts_with(id.as_str()) && l.contains("STOPPED"))),
        "the task did not stop after ctr task checkpoint --exit: {}",
        stdout(&cd.ctr(&["task", "ls"]))
    );
    let stopped_at = count();
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        count(),
        stopped_at,
        "the counter went on after checkpoint --exit"
    );
    // (Debian's ctr 1.6 cannot restore a task checkpoint image: its
    // `containers checkpoint --task` drops the task, and `containers
    // restore` needs that; restore through an engine is Podman's test.)
    let _ = cd.ctr(&["task", "delete", &id]);
    let _ = cd.ctr(&["container", "delete", &id]);
    drop(cd);
    drop(podman);
}
