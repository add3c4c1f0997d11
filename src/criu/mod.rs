//! Talking to CRIU: `criu swrk FD` over a `SOCK_SEQPACKET` socketpair, as
//! runc does, never by building `criu dump` command lines. One request per
//! `criu swrk` process; CRIU's notifications (`setup-namespaces`,
//! `post-restore`, `orphan-pts-master`, ...) are answered on the way.
//!
//! Errors are one line: a missing or too old `criu` says so; a failed
//! request gives CRIU's own first error (from its answer, or from the first
//! `Error` line of its log) and the log's path; when the failure may be the
//! kernel's, `criu check` is asked once and its verdict given instead (on
//! a 6.18 kernel with Debian 12's CRIU 3.17: the vDSO it cannot parse).

pub mod proto;

use std::io::IoSliceMut;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use nix::sys::socket::{self, ControlMessageOwned, MsgFlags};

pub use proto::{CgMode, Opts, ReqType, Resp};

/// The oldest CRIU rrun drives: external pid namespaces, the cgroup2
/// freezer and `cr_errmsg` are there from 3.15 on.
pub const MIN_VERSION: (u32, u32, u32) = (3, 15, 0);

/// The `criu` binary: `--criu PATH` (runc's global flag) or `criu` in PATH.
#[derive(Debug, Clone)]
pub struct Criu {
    bin: PathBuf,
}

/// One running `criu swrk`, waiting for its request.
pub struct Session {
    child: Child,
    sock: OwnedFd,
    bin: PathBuf,
}

/// What a notification handler gets: the script name, its pid, and the fd
/// CRIU sent with it (the new pty master for `orphan-pts-master`).
pub struct Notice {
    pub script: String,
    pub pid: i32,
    pub fd: Option<OwnedFd>,
}

impl Criu {
    pub fn new(path: Option<&str>) -> Criu {
        Criu {
            bin: PathBuf::from(path.filter(|p| !p.is_empty()).unwrap_or("criu")),
        }
    }

    /// Starts `criu swrk 3` with `fds` as its fds 4, 5, ... (everything
    /// else close-on-exec) and /dev/null as its stdin, stdout and stderr:
    /// what it has to say goes to its log. Directories in a request are
    /// named by rrun's fd numbers (CRIU opens them through
    /// `/proc/<rrun>/fd`); fds it inherits by its own (`inherit_fd`).
    pub fn spawn(&self, fds: &[BorrowedFd<'_>]) -> Result<Session> {
        let (ours, theirs) = socket::socketpair(
            socket::AddressFamily::Unix,
            socket::SockType::SeqPacket,
            None,
            socket::SockFlag::SOCK_CLOEXEC,
        )
        .context("criu: cannot create the RPC socketpair")?;
        // Every fd CRIU gets is first copied above the range it will land
        // in (fds 3..3+n), so no dup2 below overwrites another's source.
        let mut sources = vec![dup_high(theirs.as_fd())?];
        for fd in fds {
            sources.push(dup_high(*fd)?);
        }
        let raw: Vec<RawFd> = sources.iter().map(|f| f.as_raw_fd()).collect();
        let mut cmd = Command::new(&self.bin);
        cmd.arg("swrk")
            .arg("3")
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null());
        // SAFETY: between fork and exec the child only makes syscalls
        // (dup2, close_range) on fds that stay open in the parent until the
        // spawn returns.
        unsafe {
            cmd.pre_exec(move || {
                for (i, &fd) in raw.iter().enumerate() {
                    // dup2 clears close-on-exec on the copy.
                    if libc::dup2(fd, 3 + i as i32) < 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                }
                crate::sys::cloexec_from(3 + raw.len() as u32)
            });
        }
        let child = cmd.spawn().map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                anyhow::anyhow!(
                    "criu: {} not found: install CRIU (Debian: apt-get install criu) or name it with --criu PATH",
                    self.bin.display()
                )
            } else {
                anyhow::anyhow!("criu: cannot run {}: {e}", self.bin.display())
            }
        })?;
        drop(sources);
        drop(theirs);
        Ok(Session {
            child,
            sock: ours,
            bin: self.bin.clone(),
        })
    }

    /// CRIU's version (major, minor, sublevel), refused below
    /// [`MIN_VERSION`].
    pub fn require_version(&self) -> Result<(u32, u32, u32)> {
        let resp = self
            .spawn(&[])?
            .run(ReqType::Version, None, |_| Ok(()))
            .context("criu: cannot read its version")?;
        let v = resp.version.context("criu: its version answer is empty")?;
        if v < MIN_VERSION {
            bail!(
                "criu: version {}.{}.{} is too old: rrun needs CRIU {}.{} or newer",
                v.0,
                v.1,
                v.2,
                MIN_VERSION.0,
                MIN_VERSION.1
            );
        }
        Ok(v)
    }

    /// `criu check` (its RPC), logging to `dir/check.log`: `None` when the
    /// kernel has what CRIU needs, else CRIU's first error.
    pub fn check(&self, dir: &Path) -> Result<Option<String>> {
        let d =
            std::fs::File::open(dir).with_context(|| format!("{}: cannot open", dir.display()))?;
        let opts = Opts {
            images_dir_fd: d.as_raw_fd(),
            log_level: Some(4),
            log_file: Some("check.log".into()),
            ..Default::default()
        };
        let resp = self
            .spawn(&[])?
            .run(ReqType::Check, Some(&opts), |_| Ok(()))?;
        if resp.success {
            return Ok(None);
        }
        let log = dir.join("check.log");
        Ok(Some(first_error(&log).or(resp.cr_errmsg).unwrap_or_else(
            || format!("it failed (see {})", log.display()),
        )))
    }

    /// A failed request's one-line explanation (`what`: the command, or
    /// `pre-dump`): when `criu check` fails
    /// too, the kernel is the reason and its message is given; otherwise
    /// CRIU's first error for this request, with its log.
    pub fn explain(&self, what: &str, resp_err: Option<String>, log: &Path) -> String {
        let own = first_error(log).or(resp_err);
        let dir = log.parent().unwrap_or(Path::new("."));
        if let Ok(Some(check)) = self.check(dir) {
            let version = self
                .require_version()
                .map(|v| format!("CRIU {}.{}.{}", v.0, v.1, v.2))
                .unwrap_or_else(|_| "CRIU".into());
            let kernel = nix::sys::utsname::uname()
                .map(|u| u.release().to_string_lossy().into_owned())
                .unwrap_or_default();
            let hint = if check.contains("vdso") || check.contains("vDSO") {
                " (this CRIU cannot parse the vDSO of this kernel: a newer CRIU is needed)"
            } else {
                ""
            };
            return format!(
                "{what}: {version} cannot run on this kernel ({kernel}): criu check: {check:?}{hint}"
            );
        }
        match own {
            Some(e) => format!("{what}: criu failed: {e} (log: {})", log.display()),
            None => format!("{what}: criu failed (log: {})", log.display()),
        }
    }
}

/// A copy of `fd` numbered 100 or above, close-on-exec.
fn dup_high(fd: BorrowedFd<'_>) -> Result<OwnedFd> {
    // SAFETY: F_DUPFD_CLOEXEC on a valid fd returns a new fd we own.
    let n = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_DUPFD_CLOEXEC, 100) };
    if n < 0 {
        return Err(std::io::Error::last_os_error()).context("criu: cannot copy an fd");
    }
    // SAFETY: `n` was just returned by fcntl and nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(n) })
}

/// The message of the first `Error (file:line): message` line of a CRIU
/// log, without its prefix.
pub fn first_error(log: &Path) -> Option<String> {
    let text = std::fs::read_to_string(log).ok()?;
    text.lines().find_map(|l| {
        let rest = &l[l.find("Error (")?..];
        let msg = rest.split_once("): ").map(|(_, m)| m).unwrap_or(rest);
        Some(msg.trim().to_string())
    })
}

impl Session {
    /// The `criu swrk` process (restore moves it into the container's
    /// cgroups before asking: the tree it restores starts there).
    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// Sends one request and answers CRIU's notifications with `notify`
    /// (an error there is answered "abort" and returned) until the final
    /// answer, which is returned whether it reports success or not.
    pub fn run(
        mut self,
        kind: ReqType,
        opts: Option<&Opts>,
        mut notify: impl FnMut(Notice) -> Result<()>,
    ) -> Result<Resp> {
        let result = (|| -> Result<Resp> {
            send(&self.sock, &proto::request(kind, opts))?;
            let mut failed: Option<anyhow::Error> = None;
            loop {
                let Some((resp, fd)) = self.recv()? else {
                    if let Some(e) = failed {
                        return Err(e);
                    }
                    let status = self.exit_status();
                    bail!(
                        "criu: {} exited before answering the {} request{status}",
                        self.bin.display(),
                        kind.name(),
                    );
                };
                if resp.kind == Some(ReqType::Notify) && resp.success {
                    let (script, pid) = resp.notify.clone().unwrap_or_default();
                    let outcome = if failed.is_some() {
                        Err(anyhow::anyhow!("aborted"))
                    } else {
                        notify(Notice { script, pid, fd })
                    };
                    send(&self.sock, &proto::notify_ack(outcome.is_ok()))?;
                    if let Err(e) = outcome {
                        failed.get_or_insert(e);
                    }
                    continue;
                }
                if let Some(e) = failed {
                    return Err(e);
                }
                return Ok(resp);
            }
        })();
        // Done: CRIU exits once its socket is shut (pre-dump waits for more
        // requests until then).
        let _ = socket::shutdown(self.sock.as_raw_fd(), socket::Shutdown::Both);
        self.reap();
        result
    }

    /// One answer and the fd sent with it; `None` at EOF (CRIU exited).
    fn recv(&mut self) -> Result<Option<(Resp, Option<OwnedFd>)>> {
        let mut buf = vec![0u8; 64 * 1024];
        let mut cmsg = nix::cmsg_space!([RawFd; 1]);
        let (n, fd) = {
            let mut iov = [IoSliceMut::new(&mut buf)];
            let msg = loop {
                match socket::recvmsg::<()>(
                    self.sock.as_raw_fd(),
                    &mut iov,
                    Some(&mut cmsg),
                    MsgFlags::MSG_CMSG_CLOEXEC,
                ) {
                    Err(nix::errno::Errno::EINTR) => continue,
                    r => break r.context("criu: cannot read its answer")?,
                }
            };
            let mut fd = None;
            for c in msg.cmsgs()? {
                if let ControlMessageOwned::ScmRights(fds) = c {
                    for (i, raw) in fds.into_iter().enumerate() {
                        // SAFETY: the kernel just installed these fds for us.
                        let owned = unsafe { OwnedFd::from_raw_fd(raw) };
                        if i == 0 {
                            fd = Some(owned);
                        }
                    }
                }
            }
            (msg.bytes, fd)
        };
        if n == 0 {
            return Ok(None);
        }
        let resp = proto::parse_resp(&buf[..n]).context("criu: its answer is not a criu_resp")?;
        Ok(Some((resp, fd)))
    }

    /// `(exit status N)` or `(killed by signal N)` once CRIU has exited.
    fn exit_status(&mut self) -> String {
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(st)) = self.child.try_wait() {
                use std::os::unix::process::ExitStatusExt;
                return match (st.code(), st.signal()) {
                    (Some(c), _) => format!(" (exit status {c})"),
                    (_, Some(s)) => format!(" (killed by signal {s})"),
                    _ => String::new(),
                };
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        String::new()
    }

    /// Waits for CRIU to exit (killing it after 30 s: it has answered).
    fn reap(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            match self.child.try_wait() {
                Ok(Some(_)) | Err(_) => return,
                Ok(None) if Instant::now() > deadline => {
                    let _ = self.child.kill();
                    let _ = self.child.wait();
                    return;
                }
                Ok(None) => std::thread::sleep(Duration::from_millis(2)),
            }
        }
    }
}

impl Drop for Session {
    /// A session dropped before its request (an error on the way) must not
    /// leave CRIU waiting: it is killed.
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn send(sock: &OwnedFd, msg: &[u8]) -> Result<()> {
    let n = socket::send(sock.as_raw_fd(), msg, MsgFlags::MSG_NOSIGNAL)
        .context("criu: cannot send the request")?;
    if n != msg.len() {
        bail!("criu: the request was cut short");
    }
    Ok(())
}

/// The link targets of a process's fds 0, 1 and 2 (`pipe:[123]`,
/// `/dev/null`, `/dev/pts/0`), as `descriptors.json` records them.
pub fn stdio_of(pid: i32) -> Vec<String> {
    (0..3)
        .map(|i| {
            std::fs::read_link(format!("/proc/{pid}/fd/{i}"))
                .map(|p| p.to_string_lossy().into_owned())
                .unwrap_or_else(|_| "/dev/null".into())
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_error_line_of_a_log_is_the_message() {
        let dir = std::env::temp_dir().join(format!("rrun-criu-unit-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let log = dir.join("check.log");
        std::fs::write(
            &log,
            "(00.000001) Version: 3.17.1\n\
             (00.084168) Error (criu/vdso.c:381): vdso: Unexpected rt vDSO area bounds\n\
             (00.084170) Error (criu/vdso.c:613): vdso: Failed to fill self vdso symtable\n",
        )
        .unwrap();
        assert_eq!(
            first_error(&log).as_deref(),
            Some("vdso: Unexpected rt vDSO area bounds")
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
