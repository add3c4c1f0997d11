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
//! and `poststop` failures are logged as warnings and the lifecycle goes on.

use std::io::{Read, Write};
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

/// Runs every hook of `kind` in order; the first failure stops them.
pub fn run_all(hooks: Option<&Hooks>, kind: Kind, state: &[u8]) -> Result<()> {
    let Some(hooks) = hooks else { return Ok(()) };
    for (i, h) in kind.of(hooks).iter().enumerate() {
        run(h, state)
            .with_context(|| format!("hooks.{}[{i}] {}", kind.name(), h.path().display()))?;
    }
    Ok(())
}

/// Runs the hooks of a kind whose failures are only warnings.
pub fn run_all_warn(hooks: Option<&Hooks>, kind: Kind, state: &[u8]) {
    if let Err(e) = run_all(hooks, kind, state) {
        crate::logging::warn(&format!("{e:#}"));
    }
}

/// Runs one hook and waits for it (killing it at its timeout).
pub fn run(h: &Hook, state: &[u8]) -> Result<()> {
    let mut cmd = Command::new(h.path());
    if let Some(args) = h.args().as_ref().filter(|a| !a.is_empty()) {
        cmd.arg0(&args[0]).args(&args[1..]);
    }
    cmd.env_clear();
    // Like runc, hooks run in the bundle directory when it is reachable.
    if let Some(b) = serde_json::from_slice::<serde_json::Value>(state)
        .ok()
        .and_then(|v| v["bundle"].as_str().map(std::path::PathBuf::from))
        .filter(|b| b.is_dir())
    {
        cmd.current_dir(b);
    }
    for kv in h.env().iter().flatten() {
        if let Some((k, v)) = kv.split_once('=') {
            cmd.env(k, v);
        }
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
        run(&h, br#"{"id":"x"}"#).unwrap();
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
        let e = run(&h, b"{}").unwrap_err().to_string();
        assert!(e.contains("exit status 3") && e.contains("nope"), "{e}");
    }

    #[test]
    fn hook_timeout_kills_it() {
        let h = hook(
            serde_json::json!({"path": "/bin/sh", "args": ["sh", "-c", "sleep 10"], "timeout": 1}),
        );
        let t = Instant::now();
        let e = run(&h, b"{}").unwrap_err().to_string();
        assert!(e.contains("timed out"), "{e}");
        assert!(t.elapsed() < Duration::from_secs(5));
    }
}
