//! The last steps before `execve`, shared by a container's init and by
//! `exec`: process limits and scheduling, the working directory, the
//! executable, the user and capabilities, and the exec itself.

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use anyhow::{bail, Context, Result};

use crate::plan::process::ProcessPlan;
use crate::sys;

/// Steps 8–10 of the init checklist: limits, scheduling, cwd (checked to be
/// inside the root), executable lookup, then capabilities around the uid
/// change, no_new_privs, umask and final CPU affinity. Returns the path to
/// exec.
pub fn prepare(
    p: &ProcessPlan,
    id: &str,
    no_new_keyring: bool,
    state: Option<&str>,
    preserve_fds: u32,
) -> Result<CString> {
    // Every fd above the preserved ones is marked close-on-exec now
    // (CVE-2024-21626), before any seccomp filter exists: a profile need
    // not allow `close_range` for the container to start.
    sys::cloexec_from(3 + preserve_fds).context("cannot mark fds close-on-exec")?;
    // Opened now: a seccomp profile loaded below may forbid fsopen/openat2.
    let attrs = if p.labels.is_empty() {
        None
    } else {
        Some(crate::security::lsm::ProcAttrs::open()?)
    };
    apply_limits(p, id, no_new_keyring, attrs.as_ref())?;
    let cwd = Path::new(std::ffi::OsStr::from_bytes(p.cwd.as_bytes()));
    nix::unistd::chdir(p.cwd.as_c_str())
        .with_context(|| format!("process.cwd {}: cannot enter", cwd.display()))?;
    let here = nix::unistd::getcwd().context("process.cwd: getcwd failed")?;
    if !here.is_absolute() || here.starts_with("(unreachable)") {
        bail!(
            "process.cwd {}: resolves outside the container",
            cwd.display()
        );
    }
    let exe = find_executable(p)?;
    // The labels of the next execve (see `security::lsm`): they confine
    // nothing before it, and a profile that is not loaded fails here, while
    // the error can still reach the caller.
    if let Some(attrs) = &attrs {
        attrs.set_exec(&p.labels)?;
    }
    // Without no_new_privs, loading a filter needs CAP_SYS_ADMIN: load it
    // before the capabilities go (as runc does); with it, as late as possible.
    if !p.no_new_privs {
        load_seccomp(p, state)?;
    }
    if let Some(caps) = &p.caps {
        caps.apply_bounding()
            .context("process.capabilities.bounding")?;
        sys::prctl(libc::PR_SET_KEEPCAPS, 1)?;
    }
    set_user(p)?;
    if let Some(caps) = &p.caps {
        caps.apply_sets().context("process.capabilities")?;
        sys::prctl(libc::PR_SET_KEEPCAPS, 0)?;
    }
    if p.no_new_privs {
        sys::prctl(libc::PR_SET_NO_NEW_PRIVS, 1).context("process.noNewPrivileges")?;
        if !seccomp_at_exec(p) {
            load_seccomp(p, state)?;
        }
    }
    nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(p.umask));
    if let Some(cpus) = &p.affinity_final {
        set_affinity(cpus).context("process.execCPUAffinity.final")?;
    }
    Ok(exe)
}

/// With no_new_privs the filter is loaded by [`exec`], right before
/// `execve`, so the profile only has to allow `execve` of what rrun itself
/// does. A notify profile's listener must reach its agent while `create`
/// can still report failure, so that one is loaded in [`prepare`].
fn seccomp_at_exec(p: &ProcessPlan) -> bool {
    p.no_new_privs && p.seccomp.get().is_some() && p.seccomp_listener.is_none()
}

/// Loads the seccomp filter and, for SCMP_ACT_NOTIFY profiles, sends the
/// listener fd with the container process state to `listenerPath`.
fn load_seccomp(p: &ProcessPlan, state: Option<&str>) -> Result<()> {
    let Some(c) = p.seccomp.get() else {
        return Ok(());
    };
    let listener =
        crate::security::seccomp::load(c).context("linux.seccomp: cannot load the filter")?;
    if let (Some(fd), Some((sock, metadata))) = (listener, &p.seccomp_listener) {
        let state: serde_json::Value = state
            .and_then(|s| serde_json::from_str(s).ok())
            .unwrap_or_default();
        let msg = serde_json::json!({
            "ociVersion": crate::SPEC_VERSION,
            "fds": ["seccompFd"],
            "pid": state["pid"],
            "metadata": metadata,
            "state": state,
        });
        use std::os::fd::{AsFd, AsRawFd};
        crate::console::send_fd(sock.as_fd(), &msg.to_string(), fd.as_fd())
            .context("linux.seccomp.listenerPath: cannot send the notify fd")?;
        // config-linux.md: the connection MUST be closed after sending. The
        // fd is close-on-exec, but the execve waits for `start`: shut the
        // connection down now, so the agent sees its end (after the
        // message, which stays readable) while the container is created.
        // SAFETY: an fd this process owns; shutdown changes no memory.
        unsafe { libc::shutdown(sock.as_raw_fd(), libc::SHUT_RDWR) };
    }
    Ok(())
}

/// Step 12: the seccomp filter (with no_new_privs, see
/// [`seccomp_at_exec`]), then `execve`. The fds were marked close-on-exec
/// by [`prepare`]. Never returns.
pub fn exec(p: &ProcessPlan, exe: &CString) -> ! {
    if seccomp_at_exec(p) {
        if let Err(e) = load_seccomp(p, None) {
            eprintln!("rrun: {e:#}");
            // SAFETY: leave without running destructors the parent owns.
            unsafe { libc::_exit(127) }
        }
        crate::timing::mark("child: seccomp loaded");
    }
    let argv: Vec<*const libc::c_char> = p
        .args
        .iter()
        .map(|a| a.as_ptr())
        .chain([std::ptr::null()])
        .collect();
    let envp: Vec<*const libc::c_char> = p
        .env
        .iter()
        .map(|a| a.as_ptr())
        .chain([std::ptr::null()])
        .collect();
    // rrun ignores SIGPIPE; the container gets the caller's disposition.
    crate::sys::restore_caller_signals();
    // SAFETY: NUL-terminated argv/envp arrays of valid C strings.
    unsafe { libc::execve(exe.as_ptr(), argv.as_ptr(), envp.as_ptr()) };
    let e = std::io::Error::last_os_error();
    eprintln!("rrun: exec {:?} failed: {e}", p.arg0);
    // SAFETY: as above.
    unsafe { libc::_exit(127) }
}

pub fn set_affinity(cpus: &[usize]) -> Result<()> {
    let mut set = nix::sched::CpuSet::new();
    for &c in cpus {
        set.set(c)?;
    }
    nix::sched::sched_setaffinity(nix::unistd::Pid::from_raw(0), &set)?;
    Ok(())
}

fn apply_limits(
    p: &ProcessPlan,
    id: &str,
    no_new_keyring: bool,
    attrs: Option<&crate::security::lsm::ProcAttrs>,
) -> Result<()> {
    for &(res, soft, hard) in &p.rlimits {
        let lim = libc::rlimit {
            rlim_cur: soft,
            rlim_max: hard,
        };
        // SAFETY: setrlimit reads a valid rlimit.
        if unsafe { libc::setrlimit(res as _, &lim) } != 0 {
            return Err(std::io::Error::last_os_error()).with_context(|| {
                format!("process.rlimits: cannot set resource {res} to {soft}/{hard}")
            });
        }
    }
    if let Some(pers) = p.personality {
        sys::personality(pers).context("linux.personality")?;
    }
    if let Some((class, level)) = p.io_priority {
        sys::ioprio_set(class, level).context("process.ioPriority")?;
    }
    if let Some(attr) = &p.scheduler {
        sys::sched_setattr(attr).context("process.scheduler")?;
    }
    if let Some((mode, mask)) = &p.mempolicy {
        sys::set_mempolicy(*mode, mask).context("linux.memoryPolicy")?;
    }
    if !no_new_keyring {
        // With SELinux the keyring gets the container's label, or the
        // container's process could be denied its own session keyring.
        let key_label = crate::security::lsm::selinux_label(&p.labels);
        if let (Some(attrs), Some(l)) = (attrs, key_label) {
            attrs.set_keycreate(Some(l))?;
        }
        let name = CString::new(format!("_ses.{id}")).unwrap_or_default();
        // SAFETY: KEYCTL_JOIN_SESSION_KEYRING with a NUL-terminated name.
        let r = unsafe { libc::syscall(libc::SYS_keyctl, 1, name.as_ptr()) };
        if r < 0 {
            let e = std::io::Error::last_os_error();
            if !matches!(
                e.raw_os_error(),
                Some(libc::ENOSYS | libc::EPERM | libc::EACCES | libc::EDQUOT)
            ) {
                return Err(e).context("cannot create session keyring");
            }
        }
        if let (Some(attrs), Some(_)) = (attrs, key_label) {
            attrs.set_keycreate(None)?;
        }
    }
    Ok(())
}

fn find_executable(p: &ProcessPlan) -> Result<CString> {
    for cand in &p.exec_candidates {
        if let Ok(st) = nix::sys::stat::stat(cand.as_c_str()) {
            let is_file = st.st_mode & libc::S_IFMT == libc::S_IFREG;
            if is_file && st.st_mode & 0o111 != 0 {
                refuse_runtime_binary(p, cand, &st)?;
                return Ok(cand.clone());
            }
            if p.arg0.contains('/') {
                bail!(
                    "exec: {:?}: permission denied (not an executable file)",
                    p.arg0
                );
            }
        }
    }
    if p.arg0.contains('/') {
        bail!(
            "exec: {:?}: stat {}: no such file or directory",
            p.arg0,
            p.arg0
        );
    }
    bail!("exec: {:?}: executable file not found in $PATH", p.arg0)
}

/// CVE-2019-5736: the container must never execve rrun's own host binary
/// (through `/proc/self/exe`, a link to it, or as the interpreter of a
/// script, however deeply nested): that process would be dumpable and could
/// reopen the binary for writing. Runs after `chdir(cwd)`, so relative
/// interpreter paths resolve as the kernel will resolve them.
fn refuse_runtime_binary(p: &ProcessPlan, cand: &CString, st: &libc::stat) -> Result<()> {
    let is_ours = |st: &libc::stat| (st.st_dev, st.st_ino) == p.runtime_binary;
    if is_ours(st) {
        bail!(
            "exec: {:?}: refusing to run the container runtime's own binary",
            p.arg0
        );
    }
    // The kernel follows at most 4 nested `#!` interpreters (binfmt_script's
    // recursion limit); look one further, so a chain it would refuse anyway
    // is not the one we stop looking at.
    let mut path = cand.as_bytes().to_vec();
    for _ in 0..5 {
        let Some(interp) = script_interpreter(&path) else {
            return Ok(());
        };
        let Ok(ist) = nix::sys::stat::stat(std::ffi::OsStr::from_bytes(&interp)) else {
            return Ok(());
        };
        if is_ours(&ist) {
            bail!(
                "exec: {:?}: its interpreter {:?} is the container runtime's own binary; refusing",
                p.arg0,
                String::from_utf8_lossy(&interp)
            );
        }
        path = interp;
    }
    Ok(())
}

/// The interpreter named by a `#!` line at the start of `path`, if any.
fn script_interpreter(path: &[u8]) -> Option<Vec<u8>> {
    use std::io::Read;
    let f = std::fs::File::open(std::ffi::OsStr::from_bytes(path)).ok()?;
    let mut head = [0u8; 256];
    let n = (&f).read(&mut head).ok()?;
    if n < 3 || &head[..2] != b"#!" {
        return None;
    }
    let line = &head[2..n];
    let line = line.split(|&b| b == b'\n').next().unwrap_or(line);
    line.split(|&b| b == b' ' || b == b'\t')
        .find(|s| !s.is_empty())
        .map(<[u8]>::to_vec)
}

fn set_user(p: &ProcessPlan) -> Result<()> {
    let gids: Vec<nix::unistd::Gid> = p.additional_gids.iter().map(|&g| g.into()).collect();
    if let Err(e) = nix::unistd::setgroups(&gids) {
        // In a user namespace with setgroups denied only an empty list works.
        if !gids.is_empty() || e != nix::errno::Errno::EPERM {
            return Err(e).context("process.user.additionalGids: cannot set");
        }
    }
    nix::unistd::setresgid(p.gid.into(), p.gid.into(), p.gid.into())
        .with_context(|| format!("process.user.gid {}: cannot set", p.gid))?;
    nix::unistd::setresuid(p.uid.into(), p.uid.into(), p.uid.into())
        .with_context(|| format!("process.user.uid {}: cannot set", p.uid))?;
    Ok(())
}
