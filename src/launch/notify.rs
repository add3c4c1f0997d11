//! sd_notify readiness, proxied as runc and crun do: with `NOTIFY_SOCKET`
//! in rrun's environment, the container gets a socket of rrun's at the same
//! path (its directory bind-mounted from the state directory); `start`
//! listens on it and forwards the container's `READY=1` to the caller's
//! socket.

use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result};
use oci_spec::runtime::{MountBuilder, Spec};

use crate::state::Container;

const DIR: &str = "notify";
const SOCK: &str = "notify.sock";

/// At create: when the caller has NOTIFY_SOCKET, mounts our notify
/// directory where the container expects the socket and passes the variable
/// on. Returns the caller's socket path to remember.
pub fn prepare(spec: &mut Spec, state_dir: &Path) -> Result<Option<PathBuf>> {
    let Some(host) = std::env::var_os("NOTIFY_SOCKET").map(PathBuf::from) else {
        return Ok(None);
    };
    if host.as_os_str().is_empty() || !host.is_absolute() {
        return Ok(None);
    }
    let dir = state_dir.join(DIR);
    std::fs::create_dir(&dir).with_context(|| format!("{}: cannot create", dir.display()))?;
    let in_container = host.parent().unwrap_or(Path::new("/")).to_path_buf();
    let mount = MountBuilder::default()
        .destination(in_container)
        .typ("bind")
        .source(dir)
        .options(vec![
            "bind".into(),
            "nosuid".into(),
            "nodev".into(),
            "noexec".into(),
        ])
        .build()?;
    let mut mounts = spec.mounts().clone().unwrap_or_default();
    mounts.push(mount);
    spec.set_mounts(Some(mounts));
    let sock_in_container = host
        .parent()
        .unwrap_or(Path::new("/"))
        .join(SOCK)
        .to_string_lossy()
        .into_owned();
    if let Some(p) = spec.process_mut() {
        let mut env = p.env().clone().unwrap_or_default();
        env.retain(|e| !e.starts_with("NOTIFY_SOCKET="));
        env.push(format!("NOTIFY_SOCKET={sock_in_container}"));
        p.set_env(Some(env));
    }
    Ok(Some(host))
}

/// A bound notify socket waiting for the container's readiness.
pub struct Ready {
    sock: UnixDatagram,
    host: PathBuf,
}

/// At start: binds the container's notify socket (before the process runs,
/// so no message is lost).
pub fn listen(c: &Container) -> Result<Option<Ready>> {
    let Some(host) = &c.notify_socket else {
        return Ok(None);
    };
    let sock_path = c.state_dir.join(DIR).join(SOCK);
    let _ = std::fs::remove_file(&sock_path);
    let sock = UnixDatagram::bind(&sock_path)
        .with_context(|| format!("{}: cannot bind", sock_path.display()))?;
    sock.set_read_timeout(Some(Duration::from_millis(200)))?;
    Ok(Some(Ready {
        sock,
        host: host.clone(),
    }))
}

impl Ready {
    /// Waits for `READY=1` (or for the container to exit) and forwards the
    /// container's message to the caller's socket.
    pub fn forward_when_ready(self, c: &Container) -> Result<()> {
        let mut buf = vec![0u8; 4096];
        loop {
            match self.sock.recv(&mut buf) {
                Ok(n) => {
                    let msg = &buf[..n];
                    if String::from_utf8_lossy(msg).lines().any(|l| l == "READY=1") {
                        let out = UnixDatagram::unbound()?;
                        out.send_to(msg, &self.host).with_context(|| {
                            format!(
                                "NOTIFY_SOCKET {}: cannot forward readiness",
                                self.host.display()
                            )
                        })?;
                        // Tell the service manager which process to follow.
                        let _ = out.send_to(format!("MAINPID={}\n", c.pid).as_bytes(), &self.host);
                        return Ok(());
                    }
                }
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) =>
                {
                    if !c.init_alive() {
                        return Ok(());
                    }
                }
                Err(e) => return Err(e).context("notify socket"),
            }
        }
    }
}
