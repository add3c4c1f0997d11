//! OCI lifecycle hooks: each runs with the container's state JSON on stdin,
//! its own `args` and `env`, and an optional `timeout` in seconds.
//!
//! Where each kind runs (runtime-spec "Lifecycle"):
//! - `prestart`, `createRuntime`: by the parent, in the runtime's
//!   namespaces, once the container's namespaces and mounts exist and
//!   before `pivot_root`.
//! - `createContainer`: by the container's init, in its namespaces, before
//!   `pivot_root` (so the path resolves on the host).
//! - `startContainer`: by init after `start`, in the container, before the
//!   user process is exec'd (the path resolves in the container).
//! - `poststart`: by `start` (or `run`) after the process started.
//! - `poststop`: by `delete`, after the container's resources are gone.
//!
//! A failing hook of the first four kinds fails the operation; `poststart`
//! and `poststop` failures are logged as warnings and the lifecycle goes on
//! (runtime-spec 1.2.0, "Lifecycle" steps 9 and 13).
//!
//! Every hook starts with stdin, stdout and stderr only: whatever else the
//! runtime, its caller or the container's init has open is closed at the
//! hook's `execve` (the CVE-2024-21626 class; runc 1.1.5 still hands
//! createContainer hooks its init pipe and exec fifo).
//!
//! What a hook gets when its own fields say nothing ([`Inherit`]), as runc
//! does it: hooks in the runtime's namespaces run in the bundle directory
//! with the runtime's environment (its caller's); createContainer and startContainer, which run
//! in the container's namespaces, get the container process's environment
//! (`process.env`, with `HOME`) and the init's working directory at that
//! moment: the rootfs directory (before `pivot_root`) for createContainer,
//! `process.cwd` for startContainer.

use std::ffi::{CString, OsStr};
use std::io::{Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use oci_spec::runtime::{Hook, Hooks};

/// The hook kinds, with their JSON names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Prestart,
    CreateRuntime,
    CreateContainer,
    StartContainer,
    Poststart,
    Poststop,
}

impl Kind {
    /// Every kind, in lifecycle order.
    pub const ALL: [Kind; 6] = [
        Kind::Prestart,
        Kind::CreateRuntime,
        Kind::CreateContainer,
        Kind::StartContainer,
        Kind::Poststart,
        Kind::Poststop,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Kind::Prestart => "prestart",
            Kind::CreateRuntime => "createRuntime",
            Kind::CreateContainer => "createContainer",
            Kind::StartContainer => "startContainer",
            Kind::Poststart => "poststart",
            Kind::Poststop => "poststop",
        }
    }

    pub fn of(self, hooks: &Hooks) -> &[Hook] {
        let list = match self {
            Kind::Prestart => hooks.prestart(),
            Kind::CreateRuntime => hooks.create_runtime(),
            Kind::CreateContainer => hooks.create_container(),
            Kind::StartContainer => hooks.start_container(),
            Kind::Poststart => hooks.poststart(),
            Kind::Poststop => hooks.poststop(),
        };
        list.as_deref().unwrap_or(&[])
    }
}

/// What a hook inherits where its own fields say nothing.
#[derive(Clone, Copy, Debug, Default)]
pub struct Inherit<'a> {
    /// The environment of a hook without `env` (`KEY=VALUE` entries); the
    /// runtime's own (its caller's) when `None`.
    pub env: Option<&'a [CString]>,
    /// Run in the caller's working directory, not the bundle directory.
    pub cwd: bool,
}

/// Runs every hook of `kind` in order, in the runtime's namespaces; the
/// first failure stops them.
pub fn run_all(hooks: Option<&Hooks>, kind: Kind, state: &[u8]) -> Result<()> {
    run_all_with(hooks, kind, state, Inherit::default())
}

/// [`run_all`] with what the hooks inherit.
pub fn run_all_with(
    hooks: Option<&Hooks>,
    kind: Kind,
    state: &[u8],
    inherit: Inherit<'_>,
) -> Result<()> {
    let Some(hooks) = hooks else { return Ok(()) };
    for (i, h) in kind.of(hooks).iter().enumerate() {
        run(h, state, inherit)
            .with_context(|| format!("hooks.{}[{i}] {}", kind.name(), h.path().display()))?;
    }
    Ok(())
}

/// Runs the hooks of a kind whose failures are only warnings: each
/// failure is logged and the next hook runs all the same.
pub fn run_all_warn(hooks: Option<&Hooks>, kind: Kind, state: &[u8]) {
    let Some(hooks) = hooks else { return };
    for (i, h) in kind.of(hooks).iter().enumerate() {
        if let Err(e) = run(h, state, Inherit::default()) {
            crate::logging::warn(&format!(
                "hooks.{}[{i}] {}: {e:#}",
                kind.name(),
                h.path().display()
            ));
        }
    }
}

/// Runs one hook and waits for it (killing it at its timeout).
pub fn run(h: &Hook, state: &[u8], inherit: Inherit<'_>) -> Result<()> {
    let mut cmd = Command::new(h.path());
    if let Some(args) = h.args().as_ref().filter(|a| !a.is_empty()) {
        cmd.arg0(&args[0]).args(&args[1..]);
    }
    // Like runc, hooks run in the bundle directory when it is reachable.
    if !inherit.cwd {
        if let Some(b) = serde_json::from_slice::<serde_json::Value>(state)
            .ok()
            .and_then(|v| v["bundle"].as_str().map(std::path::PathBuf::from))
            .filter(|b| b.is_dir())
        {
            cmd.current_dir(b);
        }
    }
    match h.env() {
        Some(env) => {
            cmd.env_clear();
            for kv in env {
                if let Some((k, v)) = kv.split_once('=') {
                    cmd.env(k, v);
                }
            }
        }
        // Without `env`: rrun's environment stays (runc and crun pass
        // their caller's to such hooks).
        None if inherit.env.is_none() => {}
        None => {
            cmd.env_clear();
            for kv in inherit.env.unwrap_or_default() {
                let kv = kv.as_bytes();
                if let Some(eq) = kv.iter().position(|&b| b == b'=') {
                    cmd.env(
                        OsStr::from_bytes(&kv[..eq]),
                        OsStr::from_bytes(&kv[eq + 1..]),
                    );
                }
            }
        }
    }
    let open = open_fds();
    // SAFETY: the closure runs in the forked child before execve and makes
    // only fcntl/close_range/getrlimit system calls on integers; it
    // allocates nothing (`open` was built before the fork).
    unsafe {
        cmd.pre_exec(move || cloexec_above_stderr(open.as_deref()));
    }
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().context("cannot run")?;
    if let Some(mut stdin) = child.stdin.take() {
        // A hook that does not read its stdin is fine.
        let _ = stdin.write_all(state);
    }
    let timeout = h
        .timeout()
        .filter(|&t| t > 0)
        .map(|t| Duration::from_secs(t as u64));
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        if timeout.is_some_and(|t| start.elapsed() > t) {
            let _ = child.kill();
            let _ = child.wait();
            bail!("timed out after {}s", timeout.unwrap().as_secs());
        }
        std::thread::sleep(Duration::from_millis(2));
    };
    if !status.success() {
        let mut out = String::new();
        if let Some(mut e) = child.stderr.take() {
            let _ = e.read_to_string(&mut out);
        }
        if out.trim().is_empty() {
            if let Some(mut o) = child.stdout.take() {
                let _ = o.read_to_string(&mut out);
            }
        }
        let out: String = out
            .trim()
            .chars()
            .take(300)
            .collect::<String>()
            .replace('\n', " ");
        match status.code() {
            Some(c) => bail!(
                "exit status {c}{}",
                if out.is_empty() {
                    String::new()
                } else {
                    format!(": {out}")
                }
            ),
            None => bail!("killed by a signal"),
        }
    }
    Ok(())
}

/// The fds above stderr open now, from `/proc/self/fd` (`None` when it
/// cannot be read: a container's `/proc` may be masked or missing).
fn open_fds() -> Option<Vec<i32>> {
    let dir = std::fs::read_dir("/proc/self/fd").ok()?;
    Some(
        dir.flatten()
            .filter_map(|e| e.file_name().to_str()?.parse().ok())
            .filter(|&fd| fd > 2)
            .collect(),
    )
}

/// In the forked hook, before its `execve`: marks every fd above stderr
/// close-on-exec, so the hook starts with fds 0-2 only. The fds Rust's
/// `Command` uses to report a failed exec are close-on-exec already, so
/// marking (not closing) keeps that report working. Without `close_range`
/// (kernels before 5.11, or refused by the container's seccomp profile in
/// a startContainer hook) each fd is marked with `fcntl`: those listed in
/// `open`, else every number below the fd limit.
fn cloexec_above_stderr(open: Option<&[i32]>) -> std::io::Result<()> {
    if crate::sys::cloexec_from(3).is_ok() {
        return Ok(());
    }
    cloexec_each(open)
}

/// [`cloexec_above_stderr`] without `close_range`: one `fcntl` per fd.
fn cloexec_each(open: Option<&[i32]>) -> std::io::Result<()> {
    let mark = |fd: i32| -> std::io::Result<()> {
        // SAFETY: F_SETFD on an integer fd; EBADF (not open) is fine.
        if unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) } < 0 {
            let e = std::io::Error::last_os_error();
            if e.raw_os_error() != Some(libc::EBADF) {
                return Err(e);
            }
        }
        Ok(())
    };
    match open {
        Some(fds) => fds.iter().try_for_each(|&fd| mark(fd)),
        None => {
            let mut lim = libc::rlimit {
                rlim_cur: 0,
                rlim_max: 0,
            };
            // SAFETY: getrlimit writes into a valid rlimit.
            if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
                return Err(std::io::Error::last_os_error());
            }
            let max = lim.rlim_cur.min(1 << 20) as i32;
            (3..max).try_for_each(mark)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hook(v: serde_json::Value) -> Hook {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn hook_gets_state_on_stdin_args_and_env() {
        let dir = std::env::temp_dir().join(format!("rrun-hook-unit-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let out = dir.join("out");
        let h = hook(serde_json::json!({
            "path": "/bin/sh",
            "args": ["sh", "-c", format!("cat > {}; echo \"$0 $1 $FOO\" >> {}", out.display(), out.display()), "argzero", "one"],
            "env": ["FOO=bar"]
        }));
        run(&h, br#"{"id":"x"}"#, Inherit::default()).unwrap();
        let text = std::fs::read_to_string(&out).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(text.starts_with(r#"{"id":"x"}"#), "{text}");
        assert!(text.contains("argzero one bar"), "{text}");
    }

    #[test]
    fn failing_hook_reports_status_and_stderr() {
        let h = hook(
            serde_json::json!({"path": "/bin/sh", "args": ["sh", "-c", "echo nope >&2; exit 3"]}),
        );
        let e = run(&h, b"{}", Inherit::default()).unwrap_err().to_string();
        assert!(e.contains("exit status 3") && e.contains("nope"), "{e}");
    }

    #[test]
    fn without_close_range_the_listed_fds_are_marked_one_by_one() {
        use std::os::fd::AsRawFd;
        let f = std::fs::File::open("/dev/null").unwrap();
        // SAFETY: dup of an open fd; the copy (without FD_CLOEXEC) is
        // closed below.
        let fd = unsafe { libc::dup(f.as_raw_fd()) };
        assert!(fd > 2);
        // SAFETY: F_GETFD on the fd made above.
        let flags = || unsafe { libc::fcntl(fd, libc::F_GETFD) };
        assert_eq!(flags() & libc::FD_CLOEXEC, 0);
        // A listed fd that is not open (EBADF) is fine.
        cloexec_each(Some(&[fd, 1 << 20])).unwrap();
        assert_ne!(flags() & libc::FD_CLOEXEC, 0);
        // SAFETY: closing the copy made above.
        unsafe { libc::close(fd) };
    }

    #[test]
    fn hook_timeout_kills_it() {
        let h = hook(
            serde_json::json!({"path": "/bin/sh", "args": ["sh", "-c", "sleep 10"], "timeout": 1}),
        );
        let t = Instant::now();
        let e = run(&h, b"{}", Inherit::default()).unwrap_err().to_string();
        assert!(e.contains("timed out"), "{e}");
        assert!(t.elapsed() < Duration::from_secs(5));
    }
}
