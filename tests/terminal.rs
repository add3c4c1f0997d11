//! Terminals: `process.terminal` with `--console-socket` (the pty master is
//! sent to the engine over a unix socket with SCM_RIGHTS), `exec -t`, and a
//! foreground `run` that proxies the pty to the runtime's own terminal.
//!
//! Validate against runc with:
//! `RRUN_TEST_RUNTIME=/usr/sbin/runc cargo test --release --test terminal -- --test-threads=2`
//!
//! Observed runc 1.1.5 behaviour the tests pin down (rrun must match):
//! - The console socket receives one message carrying one fd: a pty master
//!   (a devpts ptmx, 5:2) of the container's own devpts instance, so the
//!   container's `/dev/pts` holds only its own pty (`0 ptmx`); `tty` in the
//!   container prints `/dev/pts/N` for the master's pty number N, and
//!   `/dev/console` is that pty (char device 136:N).
//! - `process.consoleSize` sets the pty's size before the process runs.
//! - `create` with `terminal: true` and no `--console-socket` fails
//!   ("cannot allocate tty if runc will detach without setting console
//!   socket"); `--console-socket` with `terminal: false` fails too ("cannot
//!   use console socket if runc will not detach or allocate tty") without
//!   connecting to the socket. `exec` has the same two rules for `-t`/`-d`.
//! - A foreground `run` with a terminal and no console socket proxies the
//!   pty to its own stdin/stdout, gives it its own terminal's size, and
//!   passes on window size changes (SIGWINCH).

mod common;

use common::console::*;
use common::*;
use serde_json::json;
use std::fs;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::MetadataExt;
use std::process::{Command, Stdio};
use std::time::Duration;

const T: Duration = Duration::from_secs(10);

/// The pty number of a master (`TIOCGPTN`).
fn pty_number(master: BorrowedFd<'_>) -> u32 {
    let mut n: libc::c_uint = 0;
    // SAFETY: TIOCGPTN writes an unsigned int.
    let r = unsafe { libc::ioctl(master.as_raw_fd(), libc::TIOCGPTN, &mut n) };
    assert_eq!(r, 0, "TIOCGPTN: {}", std::io::Error::last_os_error());
    n
}

fn write_all(master: BorrowedFd<'_>, text: &str) {
    let mut off = 0;
    let b = text.as_bytes();
    while off < b.len() {
        // SAFETY: write from a valid buffer.
        let n = unsafe { libc::write(master.as_raw_fd(), b[off..].as_ptr().cast(), b.len() - off) };
        assert!(
            n > 0,
            "write to the pty master: {}",
            std::io::Error::last_os_error()
        );
        off += n as usize;
    }
}

/// The value after the first `key=` that starts a word (a terminal may put
/// echoed control characters such as `^D` before it on the line).
fn field<'a>(out: &'a str, key: &str) -> &'a str {
    let prefix = format!("{key}=");
    out.lines()
        .find_map(|l| {
            l.match_indices(prefix.as_str())
                .find(|(i, _)| {
                    !l[..*i]
                        .chars()
                        .next_back()
                        .is_some_and(|c| c.is_alphanumeric() || c == '_')
                })
                .map(|(i, _)| &l[i + prefix.len()..])
        })
        .unwrap_or_else(|| panic!("no {key}= in the terminal output:\n{out}"))
}

/// runc sets the size of a proxied pty from another goroutine once the
/// process started, so a process that asks at once may see no size yet;
/// rrun sets it before the process runs.
fn reference_delay() -> &'static str {
    if is_reference_runtime() {
        "sleep 0.5; "
    } else {
        ""
    }
}

/// Sets `terminal: true` and the script, creates the container with a
/// console socket and returns the socket and the received master (the
/// container is created, not started).
fn create_with_console(env: &mut TestEnv, script: &str) -> (ConsoleSocket, OwnedFd) {
    env.bundle.edit(|c| c["process"]["terminal"] = json!(true));
    env.bundle.set_script(script);
    let sock = ConsoleSocket::bind(env.dir.path());
    let out = env.try_create(&["--console-socket", sock.path_str()]);
    assert!(out.status.success(), "create failed: {}", describe(&out));
    let master = sock.receive_master();
    (sock, master)
}

/// [`create_with_console`], then start the container and read its
/// terminal until the script prints `DONE`; returns the socket, the master
/// and what was read.
fn start_with_console(env: &mut TestEnv, script: &str) -> (ConsoleSocket, OwnedFd, String) {
    let (sock, master) = create_with_console(env, script);
    env.rt.start(env.id());
    let out = read_until(master.as_fd(), "DONE", T);
    (sock, master, out)
}

// ---------------------------------------------------------------------------
// create --console-socket
// ---------------------------------------------------------------------------

#[test]
fn console_socket_receives_the_pty_master_of_the_container() {
    let mut env = TestEnv::new("tty_console_socket");
    let (_sock, master, out) = start_with_console(
        &mut env,
        "echo tty=$(tty); echo console=$(stat -c '%t %T' /dev/console); \
         echo DONE; exec sleep 1000",
    );
    let n = pty_number(master.as_fd());
    assert!(out.contains("DONE"), "no DONE from the container: {out:?}");
    assert_eq!(field(&out, "tty"), format!("/dev/pts/{n}"), "{out}");
    // 136 = 0x88: the first Unix98 pty slave major.
    assert_eq!(
        field(&out, "console"),
        format!("88 {n:x}"),
        "/dev/console must be the container's pty:\n{out}"
    );
    env.rt.run_ok(&["delete", "--force", env.id()]);
    env.assert_nothing_left();
}

#[test]
fn read_only_dev_still_gets_dev_console() {
    let mut env = TestEnv::new("tty_ro_dev");
    env.bundle.add_mount_option("/dev", "ro");
    let (_sock, master, out) = start_with_console(
        &mut env,
        "echo console=$(stat -c '%t %T' /dev/console); \
         if touch /dev/new 2>/dev/null; then echo dev_write=ok; else echo dev_write=refused; fi; \
         echo DONE; exec sleep 1000",
    );
    let n = pty_number(master.as_fd());
    assert_eq!(field(&out, "console"), format!("88 {n:x}"), "{out}");
    assert_eq!(field(&out, "dev_write"), "refused", "{out}");
    env.rt.run_ok(&["delete", "--force", env.id()]);
    env.assert_nothing_left();
}

#[test]
fn console_size_sets_the_pty_size() {
    let mut env = TestEnv::new("tty_console_size");
    env.bundle
        .edit(|c| c["process"]["consoleSize"] = json!({"height": 33, "width": 101}));
    let (_sock, _master, out) = start_with_console(
        &mut env,
        "echo size=$(stty size); echo DONE; exec sleep 1000",
    );
    assert_eq!(field(&out, "size"), "33 101", "{out}");
}

#[test]
fn writing_to_the_master_reaches_the_container_stdin() {
    let mut env = TestEnv::new("tty_stdin");
    let (_sock, master) =
        create_with_console(&mut env, "read x; echo got:$x; echo DONE; exec sleep 1000");
    env.rt.start(env.id());
    write_all(master.as_fd(), "hello\n");
    let out = read_until(master.as_fd(), "DONE", T);
    assert!(out.contains("got:hello\n"), "{out:?}");
}

#[test]
fn container_devpts_holds_only_its_own_pty() {
    let mut env = TestEnv::new("tty_devpts");
    let (_sock, master, out) = start_with_console(
        &mut env,
        "echo pts=$(ls /dev/pts); echo DONE; exec sleep 1000",
    );
    let n = pty_number(master.as_fd());
    assert_eq!(field(&out, "pts"), format!("{n} ptmx"), "{out}");
    assert_eq!(n, 0, "a new devpts instance numbers its first pty 0");
    // The master is not one of the host's ptys.
    let host = fs::metadata("/dev/pts/ptmx").unwrap();
    let ours = nix::sys::stat::fstat(&master).unwrap();
    assert_ne!(
        host.dev(),
        ours.st_dev,
        "the pty master comes from the host's devpts"
    );
}

/// `uid:gid` of the container's pty as the script reports it.
const PTY_OWNER: &str = "echo owner=$(stat -c %u:%g $(tty)); echo DONE; exec sleep 1000";

/// Runs the env's container as uid 1000, gid 1001 with a terminal: its pty
/// belongs to process.user's uid and gid (runc 1.1.5 leaves devpts'
/// gid=5); then deletes it and checks nothing is left.
fn assert_pty_belongs_to_the_process_user(mut env: TestEnv) {
    env.bundle
        .edit(|c| c["process"]["user"] = json!({"uid": 1000, "gid": 1001}));
    let (_sock, _master, out) = start_with_console(&mut env, PTY_OWNER);
    assert_eq!(field(&out, "owner"), "1000:1001", "{out}");
    env.rt.run_ok(&["delete", "--force", env.id()]);
    env.assert_nothing_left();
}

#[test]
fn the_pty_belongs_to_the_process_user() {
    assert_pty_belongs_to_the_process_user(TestEnv::new("tty_owner"));
}

#[test]
fn the_pty_belongs_to_the_process_user_in_a_user_namespace() {
    let mut env = TestEnv::new("tty_owner_userns");
    env.bundle.add_user_namespace();
    assert_pty_belongs_to_the_process_user(env);
}

#[test]
fn terminal_without_console_socket_fails_create() {
    let mut env = TestEnv::new("tty_no_socket");
    env.bundle.edit(|c| c["process"]["terminal"] = json!(true));
    env.bundle.set_script("echo ran > /ran");
    let out = env.try_create(&[]);
    assert_error(&out, &["console"]);
    assert!(!env.bundle.rootfs().join("ran").exists());
    env.assert_nothing_left();
}

#[test]
fn console_socket_without_terminal_fails_create() {
    let mut env = TestEnv::new("tty_socket_no_terminal");
    env.bundle.set_script("echo ran > /ran");
    let sock = ConsoleSocket::bind(env.dir.path());
    let out = env.try_create(&["--console-socket", sock.path_str()]);
    assert_error(&out, &["console"]);
    assert!(
        sock.accept(Duration::ZERO).is_none(),
        "the runtime connected to the console socket although it refused it"
    );
    assert!(!env.bundle.rootfs().join("ran").exists());
    env.assert_nothing_left();
}

#[test]
fn console_socket_that_does_not_exist_fails_create() {
    let mut env = TestEnv::new("tty_socket_missing");
    env.bundle.edit(|c| c["process"]["terminal"] = json!(true));
    let missing = env.dir.join("no-such.sock");
    let out = env.try_create(&["--console-socket", missing.to_str().unwrap()]);
    assert_error_ref(&out, &["no-such.sock", "console"], &["no such file"]);
    env.assert_nothing_left();
}

// ---------------------------------------------------------------------------
// exec -t
// ---------------------------------------------------------------------------

fn start_sleeper(env: &mut TestEnv) {
    env.bundle.set_args(&["sleep", "1000"]);
    env.create();
    env.rt.start(env.id());
    env.rt.wait_status(env.id(), "running", T);
}

/// `exec -t --console-socket <sock> -d <flags..> <id> sh -c <script>`,
/// asserting exit 0; returns the received master and what the terminal
/// showed until the script printed `DONE`.
fn exec_with_console(env: &TestEnv, flags: &[&str], script: &str) -> (OwnedFd, String) {
    let sock = ConsoleSocket::bind(env.dir.path());
    let mut args = vec!["exec", "-t", "--console-socket", sock.path_str(), "-d"];
    args.extend_from_slice(flags);
    args.extend_from_slice(&[env.id(), "sh", "-c", script]);
    let out = env.rt.cmd(&args);
    assert!(out.status.success(), "{}", describe(&out));
    let master = sock.receive_master();
    let text = read_until(master.as_fd(), "DONE", T);
    (master, text)
}

#[test]
fn exec_tty_with_console_socket_sends_a_master() {
    let mut env = TestEnv::new("tty_exec");
    start_sleeper(&mut env);
    let (master, text) = exec_with_console(
        &env,
        &[],
        "echo tty=$(tty); echo pts=$(ls /dev/pts); echo DONE; exec sleep 1000",
    );
    let n = pty_number(master.as_fd());
    assert!(text.contains("DONE"), "{text:?}");
    assert_eq!(field(&text, "tty"), format!("/dev/pts/{n}"), "{text}");
    assert_eq!(field(&text, "pts"), format!("{n} ptmx"), "{text}");
}

#[test]
fn exec_tty_pty_belongs_to_the_exec_user() {
    let mut env = TestEnv::new("tty_exec_owner");
    start_sleeper(&mut env);
    let (_master, text) = exec_with_console(&env, &["-u", "1000:1001"], PTY_OWNER);
    assert_eq!(field(&text, "owner"), "1000:1001", "{text}");
}

#[test]
fn exec_tty_detached_without_console_socket_fails() {
    let mut env = TestEnv::new("tty_exec_no_socket");
    start_sleeper(&mut env);
    let out = env
        .rt
        .cmd(&["exec", "-t", "-d", env.id(), "sh", "-c", "echo ran > /ran"]);
    assert_error(&out, &["console"]);
    std::thread::sleep(Duration::from_millis(200));
    assert!(!env.bundle.rootfs().join("ran").exists());
}

#[test]
fn exec_console_socket_without_tty_fails() {
    let mut env = TestEnv::new("tty_exec_socket_no_tty");
    start_sleeper(&mut env);
    let sock = ConsoleSocket::bind(env.dir.path());
    let out = env.rt.cmd(&[
        "exec",
        "--console-socket",
        sock.path_str(),
        "-d",
        env.id(),
        "sh",
        "-c",
        "echo ran > /ran",
    ]);
    assert_error(&out, &["console"]);
    assert!(
        sock.accept(Duration::ZERO).is_none(),
        "the runtime connected to the console socket although it refused it"
    );
    std::thread::sleep(Duration::from_millis(200));
    assert!(!env.bundle.rootfs().join("ran").exists());
}

// ---------------------------------------------------------------------------
// Foreground run: the runtime proxies the pty
// ---------------------------------------------------------------------------

fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

/// The runtime's command line for `args`, quoted for sh (tracks the id).
fn runtime_cmdline(rt: &Runtime, args: &[&str]) -> String {
    let c = rt.command(args);
    std::iter::once(c.get_program())
        .chain(c.get_args())
        .map(|a| quote(a.to_str().unwrap()))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Runs `shell_cmd` under `script`, which gives it a pty of its own as
/// controlling terminal and stdio; returns (exit code, output).
fn under_script(env: &TestEnv, shell_cmd: &str) -> (i32, String) {
    under_script_with_input(env, shell_cmd, Stdio::null())
}

/// The same with `input` as script's stdin: script types it into the pty,
/// then the EOF character when it ends.
fn under_script_with_input(env: &TestEnv, shell_cmd: &str, input: Stdio) -> (i32, String) {
    let out_path = env.dir.join("script.out");
    let mut child = Command::new("script")
        .args(["-q", "-e", "-c", shell_cmd, "/dev/null"])
        .env("SHELL", "/bin/sh")
        .stdin(input)
        .stdout(fs::File::create(&out_path).unwrap())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn script");
    let mut status = None;
    wait_for(T * 2, || {
        status = child.try_wait().unwrap();
        status.is_some()
    });
    let Some(status) = status else {
        let _ = child.kill();
        let _ = child.wait();
        panic!(
            "script did not exit; output so far: {:?}",
            fs::read_to_string(&out_path).unwrap_or_default()
        );
    };
    let text = fs::read_to_string(&out_path)
        .unwrap_or_default()
        .replace("\r\n", "\n");
    (status.code().unwrap_or(-1), text)
}

#[test]
fn foreground_run_proxies_the_terminal() {
    let mut env = TestEnv::new("tty_foreground");
    env.bundle.edit(|c| c["process"]["terminal"] = json!(true));
    env.bundle.set_script(&format!(
        "{}echo tty=$(tty); echo size=$(stty size); echo DONE; exit 3",
        reference_delay()
    ));
    let run = runtime_cmdline(
        &env.rt,
        &["run", "--bundle", env.bundle.path_str(), env.id()],
    );
    let (code, out) = under_script(&env, &format!("stty rows 40 cols 120; exec {run}"));
    assert!(
        out.contains("DONE"),
        "no container output through the proxy:\n{out}"
    );
    assert!(
        field(&out, "tty").starts_with("/dev/pts/"),
        "the container's stdio is not a pty:\n{out}"
    );
    assert_eq!(
        field(&out, "size"),
        "40 120",
        "the pty must get the caller's terminal size:\n{out}"
    );
    assert_eq!(code, 3, "run must exit with the container's code:\n{out}");
    env.assert_nothing_left();
}

#[test]
fn foreground_run_writes_nothing_to_the_terminal_before_the_containers_output() {
    let mut env = TestEnv::new("tty_no_nul");
    env.bundle.edit(|c| c["process"]["terminal"] = json!(true));
    env.bundle.set_script("echo FIRST; echo DONE");
    let run = runtime_cmdline(
        &env.rt,
        &["run", "--bundle", env.bundle.path_str(), env.id()],
    );
    let (code, out) = under_script(&env, &format!("exec {run}"));
    assert_eq!(code, 0, "{out:?}");
    assert!(
        !out.contains('\0'),
        "a NUL byte reached the terminal: {out:?}"
    );
    assert!(
        out.starts_with("FIRST\n"),
        "something came before the container's output: {out:?}"
    );
    env.assert_nothing_left();
}

#[test]
fn foreground_run_passes_on_lines_typed_before_it_started() {
    // script types "hello\n" and then, its input ended, the EOF character,
    // both before the runtime puts the terminal in raw mode: the line must
    // reach the container, the EOF must not turn into a NUL byte.
    let mut env = TestEnv::new("tty_typeahead");
    env.bundle.edit(|c| c["process"]["terminal"] = json!(true));
    env.bundle.set_script("read x; echo got=$x; echo DONE");
    let input = env.dir.join("input");
    fs::write(&input, "hello\n").unwrap();
    let run = runtime_cmdline(
        &env.rt,
        &["run", "--bundle", env.bundle.path_str(), env.id()],
    );
    let (code, out) = under_script_with_input(
        &env,
        &format!("exec {run}"),
        Stdio::from(fs::File::open(&input).unwrap()),
    );
    assert_eq!(code, 0, "{out:?}");
    assert_eq!(field(&out, "got"), "hello", "{out:?}");
    assert!(
        !out.contains('\0') && !out.contains("^@"),
        "a NUL byte reached the container: {out:?}"
    );
    env.assert_nothing_left();
}

#[test]
fn foreground_run_passes_window_size_changes() {
    let mut env = TestEnv::new("tty_winch");
    env.bundle.edit(|c| c["process"]["terminal"] = json!(true));
    env.bundle.set_script(&format!(
        "{}echo size=$(stty size); trap 'echo resized=$(stty size); exit 0' WINCH; \
         echo > /ready; while true; do sleep 0.1; done",
        reference_delay()
    ));
    let ready = env.bundle.rootfs().join("ready");
    let run = runtime_cmdline(
        &env.rt,
        &["run", "--bundle", env.bundle.path_str(), env.id()],
    );
    // The resize comes from a background subshell once the container is
    // ready; the kernel then sends SIGWINCH to the foreground process group,
    // i.e. the runtime. The subshell's stdin is /dev/null (no job control),
    // so it resizes through /dev/tty.
    let cmd = format!(
        "stty rows 40 cols 120; \
         (while [ ! -e {ready} ]; do sleep 0.05; done; stty rows 50 cols 130 < /dev/tty) & \
         exec {run}",
        ready = quote(ready.to_str().unwrap()),
    );
    let (code, out) = under_script(&env, &cmd);
    assert_eq!(field(&out, "size"), "40 120", "{out}");
    assert_eq!(
        field(&out, "resized"),
        "50 130",
        "the new window size did not reach the container:\n{out}"
    );
    assert_eq!(code, 0, "{out}");
    env.assert_nothing_left();
}

// ---------------------------------------------------------------------------
// Errors on a terminal
// ---------------------------------------------------------------------------

#[test]
fn errors_on_a_terminal_are_logrus_coloured_lines() {
    // logrus (runc) prints its text form coloured when stderr is a terminal.
    let env = TestEnv::new("tty_error_colour");
    let cmd = runtime_cmdline(&env.rt, &["state", "no-such-container"]);
    let (code, out) = under_script(&env, &format!("exec {cmd}"));
    assert_eq!(code, 1, "{out:?}");
    assert!(
        out.starts_with("\x1b[31mERRO\x1b[0m[0000] ") && out.ends_with(" \n"),
        "not logrus' coloured error line: {out:?}"
    );
    assert!(mentions(&out, "not exist"), "{out:?}");
    assert_eq!(out.lines().count(), 1, "{out:?}");
}
