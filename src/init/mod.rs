//! The child side: from the clone to `execve`. Only syscalls on what the
//! parent prepared; no config parsing. The steps, in order:
//!
//!  1. Close the state lock's fd; die with the parent (`PDEATHSIG`) until
//!     ready; become non-dumpable (no `/proc/PID/exe` access to rrun's binary
//!     from the container, CVE-2019-5736).
//!  2. Wait for the parent's `Go` (cgroup joined, id maps written).
//!  3. Namespaces: `setns` into joined ones (user first). Two-stage only:
//!     unshare the new ones (asking the parent for id maps after the user
//!     namespace), write time offsets, fork init if pid/time changed.
//!  4. Become root of a new or joined user namespace; `setsid`.
//!  5. Hostname and domain name.
//!  6. Root file system: propagation, rootfs bind, mounts, devices, masked
//!     and read-only paths (all by fd inside the root), create cwd, then
//!     `pivot_root` and detach the host tree; `/` read-only if asked.
//!  7. Sysctls through a private procfs instance the container cannot see.
//!  8. rlimits, personality, I/O priority, scheduler, memory policy, session
//!     keyring.
//!  9. `chdir(cwd)` and check it is inside the root (CVE-2024-21626); find
//!     the executable.
//! 10. Capabilities: bounding set, then uid/gid/groups with keepcaps, then
//!     effective/permitted/inheritable and ambient; no_new_privs; umask; final
//!     CPU affinity.
//! 11. Tell the parent `Ready`; block on the exec fifo until `start`.
//! 12. Mark every fd above the preserved ones close-on-exec; `execve`.

use std::ffi::CString;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use anyhow::{bail, Context, Result};

use crate::launch::sync::{self, Msg};
use crate::launch::Plan;
use crate::rootfs::{self, resolve};
use crate::sys::{self, Forked};

/// Runs the child; never returns. Errors go to the parent over `sock`.
pub fn child_main(plan: &Plan, sock: OwnedFd) -> ! {
    let err = match run(plan, &sock) {
        Ok(never) => match never {},
        Err(e) => e,
    };
    let _ = sync::send(&sock, &Msg::Error(format!("{err:#}")));
    // SAFETY: _exit skips atexit handlers and destructors the parent owns.
    unsafe { libc::_exit(1) }
}

fn expect_go(sock: &OwnedFd) -> Result<()> {
    match sync::recv(sock)? {
        Some(Msg::Go) => Ok(()),
        // The parent is gone or gave up: nothing to report to.
        _ => unsafe { libc::_exit(1) },
    }
}

fn run(plan: &Plan, sock: &OwnedFd) -> Result<std::convert::Infallible> {
    // 1.
    // SAFETY: closing our copy of the lock fd; the parent keeps its own.
    unsafe { libc::close(plan.lock_fd) };
    sys::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as u64)?;
    // In a new pid namespace the parent is outside it and getppid() is 0.
    let ppid = nix::unistd::getppid().as_raw();
    if ppid != 0 && ppid != plan.parent_pid {
        unsafe { libc::_exit(1) };
    }
    sys::prctl(libc::PR_SET_DUMPABLE, 0)?;
    if let Some(cpus) = &plan.process.affinity_initial {
        set_affinity(cpus).context("process.execCPUAffinity.initial")?;
    }
    // 2.
    expect_go(sock)?;
    // 3.
    let ns = &plan.ns;
    for j in &ns.join {
        sys::setns(j.fd.as_fd(), 0)
            .with_context(|| format!("cannot join namespace {}", j.path.display()))?;
    }
    if ns.two_stage {
        if ns.new_user {
            sys::unshare(libc::CLONE_NEWUSER as u64).context("cannot create user namespace")?;
            sync::send(sock, &Msg::NeedMaps)?;
            expect_go(sock)?;
        }
        let rest = ns.unshare_flags & !(libc::CLONE_NEWUSER as u64);
        if rest != 0 {
            sys::unshare(rest).context("cannot create namespaces")?;
        }
        if !ns.time_offsets.is_empty() {
            std::fs::write("/proc/self/timens_offsets", &ns.time_offsets)
                .context("linux.timeOffsets: cannot set")?;
        }
        if ns.fork_init {
            match sys::fork().context("cannot fork container init")? {
                Forked::Parent { pid } => {
                    let _ = sync::send(sock, &Msg::Pid(pid));
                    unsafe { libc::_exit(0) };
                }
                Forked::Child => {}
            }
        } else {
            sync::send(sock, &Msg::Pid(std::process::id() as i32))?;
        }
    }
    // 4.
    let joined_user = ns.join.iter().any(|j| j.flag == libc::CLONE_NEWUSER as u64);
    if ns.new_user || joined_user {
        nix::unistd::setresgid(0.into(), 0.into(), 0.into())
            .context("linux.gidMappings: gid 0 must be mapped in the container")?;
        nix::unistd::setresuid(0.into(), 0.into(), 0.into())
            .context("linux.uidMappings: uid 0 must be mapped in the container")?;
    }
    nix::unistd::setsid().context("setsid failed")?;
    // 5.
    if let Some(h) = &plan.hostname {
        nix::unistd::sethostname(h.to_str()?).context("hostname: cannot set")?;
    }
    if let Some(d) = &plan.domainname {
        // SAFETY: pointer and length of a valid C string.
        if unsafe { libc::setdomainname(d.as_ptr(), d.as_bytes().len()) } != 0 {
            return Err(std::io::Error::last_os_error()).context("domainname: cannot set");
        }
    }
    // 6.
    nix::sys::stat::umask(nix::sys::stat::Mode::empty());
    let root = rootfs::setup(&plan.rootfs)?;
    let cwd = Path::new(std::ffi::OsStr::from_bytes(plan.process.cwd.as_bytes()));
    resolve::mkdir_all(root.as_fd(), cwd)
        .with_context(|| format!("process.cwd {}: cannot create", cwd.display()))?;
    rootfs::enter(&plan.rootfs, root)?;
    // 7.
    if !plan.sysctls.is_empty() {
        write_sysctls(&plan.sysctls)?;
    }
    // 8.
    apply_process_limits(plan)?;
    // 9.
    nix::unistd::chdir(plan.process.cwd.as_c_str())
        .with_context(|| format!("process.cwd {}: cannot enter", cwd.display()))?;
    let here = nix::unistd::getcwd().context("process.cwd: getcwd failed")?;
    if !here.is_absolute() || here.starts_with("(unreachable)") {
        bail!(
            "process.cwd {}: resolves outside the container",
            cwd.display()
        );
    }
    let exe = find_executable(plan)?;
    // 10.
    let p = &plan.process;
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
    }
    nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(p.umask));
    if let Some(cpus) = &p.affinity_final {
        set_affinity(cpus).context("process.execCPUAffinity.final")?;
    }
    // 11.
    sys::prctl(libc::PR_SET_PDEATHSIG, 0)?;
    sync::send(sock, &Msg::Ready)?;
    // SAFETY: closing our end of the sync socket; nothing else uses it.
    unsafe { libc::close(sock.as_raw_fd()) };
    let mut byte = [0u8; 1];
    loop {
        match nix::unistd::read(plan.fifo.as_fd(), &mut byte) {
            Err(nix::errno::Errno::EINTR) => continue,
            Ok(1) => break,
            _ => unsafe { libc::_exit(1) },
        }
    }
    // 12.
    sys::cloexec_from(3 + plan.preserve_fds)?;
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
    // SAFETY: NUL-terminated argv/envp arrays of valid C strings.
    unsafe { libc::execve(exe.as_ptr(), argv.as_ptr(), envp.as_ptr()) };
    let e = std::io::Error::last_os_error();
    eprintln!("rrun: exec {:?} failed: {e}", p.arg0);
    unsafe { libc::_exit(127) }
}

fn set_affinity(cpus: &[usize]) -> Result<()> {
    let mut set = nix::sched::CpuSet::new();
    for &c in cpus {
        set.set(c)?;
    }
    nix::sched::sched_setaffinity(nix::unistd::Pid::from_raw(0), &set)?;
    Ok(())
}

/// Writes sysctls through a procfs instance of our own, never attached
/// anywhere the container could reach (CVE-2025-52881), after checking
/// that it really is procfs.
fn write_sysctls(sysctls: &[(CString, String)]) -> Result<()> {
    use crate::sys::mount_api as m;
    let fs = m::fsopen(c"proc").context("sysctl: cannot open procfs")?;
    m::fsconfig_create(fs.as_fd()).context("sysctl: cannot create procfs")?;
    let proc = m::fsmount(
        fs.as_fd(),
        m::MOUNT_ATTR_NOSUID | m::MOUNT_ATTR_NODEV | m::MOUNT_ATTR_NOEXEC,
    )?;
    let st = nix::sys::statfs::fstatfs(&proc)?;
    if st.filesystem_type() != nix::sys::statfs::PROC_SUPER_MAGIC {
        bail!("sysctl: private procfs is not procfs");
    }
    for (path, value) in sysctls {
        let key = path.to_string_lossy()[4..].replace('/', ".");
        let fd = sys::openat2(
            proc.as_fd(),
            path,
            libc::O_WRONLY | libc::O_TRUNC,
            0,
            sys::RESOLVE_BENEATH | sys::RESOLVE_NO_SYMLINKS | sys::RESOLVE_NO_MAGICLINKS,
        )
        .with_context(|| format!("linux.sysctl {key}: cannot open"))?;
        nix::unistd::write(&fd, value.as_bytes())
            .with_context(|| format!("linux.sysctl {key}={value}: cannot set"))?;
    }
    Ok(())
}

fn apply_process_limits(plan: &Plan) -> Result<()> {
    let p = &plan.process;
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
    if !plan.no_new_keyring {
        let name = CString::new(format!("_ses.{}", plan.id)).unwrap_or_default();
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
    }
    Ok(())
}

fn find_executable(plan: &Plan) -> Result<CString> {
    let p = &plan.process;
    for cand in &p.exec_candidates {
        if let Ok(st) = nix::sys::stat::stat(cand.as_c_str()) {
            let is_file = st.st_mode & libc::S_IFMT == libc::S_IFREG;
            if is_file && st.st_mode & 0o111 != 0 {
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

fn set_user(p: &crate::launch::process::ProcessPlan) -> Result<()> {
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
