//! The child side: from the clone to `execve`. Only syscalls on what the
//! parent prepared; no config parsing. The steps, in order:
//!
//!  1. Close the state lock's fd; die with the parent (`PDEATHSIG`) until
//!     ready; become non-dumpable (no `/proc/PID/exe` access to rrun's binary
//!     from the container, CVE-2019-5736); rootless, right after its id
//!     maps are written (step 2 or 3): an unprivileged writer, and
//!     newuidmap, need the child's /proc files to be the caller's.
//!  2. If the parent has work to do on this process first (`Plan::wait_go`:
//!     id maps to write, or cgroup2 to enter when `CLONE_INTO_CGROUP` was
//!     refused), wait for its `Go`; otherwise go on at once (cgroup2 was
//!     entered by `CLONE_INTO_CGROUP`).
//!  3. Enter the v1 cgroups by writing `0` to their `tasks` fds (see
//!     `cgroups::Entry`). Namespaces: `setns` into joined ones (user first),
//!     the deferred cgroup namespace. Two-stage only:
//!     unshare the new ones (asking the parent for id maps after the user
//!     namespace), write time offsets, fork init if pid/time changed.
//!  4. Become root of a new or joined user namespace; `setsid`.
//!  5. Hostname and domain name.
//!  6. Root file system: propagation, rootfs bind, mounts, devices, masked
//!     and read-only paths (all by fd inside the root), create cwd. A new
//!     network namespace made beside the clone (`NsPlan::net_from_parent`)
//!     is received and joined before the first mount that depends on it
//!     (sysfs), or after the last; the steps after sysfs that need not wait
//!     for it run first (`rootfs::late`). If there are hooks, let the parent run prestart/createRuntime and run
//!     createContainer here; then `pivot_root` and detach the host tree; `/`
//!     read-only if asked.
//!  7. Sysctls through a private procfs instance the container cannot see;
//!     the terminal (pty from the container's devpts, `/dev/console`, master
//!     sent over the console socket); stdio on the host's `/dev/null` moved
//!     onto the container's own (as runc and crun do: CRIU cannot
//!     checkpoint a file of a mount outside the container).
//!  8. Open `/proc/PID/attr` in a private procfs if there are LSM labels
//!     (before any seccomp filter); rlimits, personality, I/O priority,
//!     scheduler, memory policy, session keyring (with the SELinux label).
//!  9. `chdir(cwd)` and check it is inside the root (CVE-2024-21626); find
//!     the executable; write the AppArmor/SELinux exec labels (they take
//!     effect at `execve`).
//! 10. Mark every fd above the preserved ones close-on-exec (before any
//!     seccomp filter, which need not allow `close_range`). Capabilities:
//!     bounding set (seccomp here without no_new_privs, while
//!     CAP_SYS_ADMIN is held), then uid/gid/groups with keepcaps, then
//!     effective/permitted/inheritable and ambient; no_new_privs; umask;
//!     final CPU affinity.
//! 11. Tell the parent `Ready`; block on the exec fifo until `start`; run
//!     startContainer hooks (a failure is written back into the fifo, where
//!     `start` reads it, and init exits).
//! 12. With no_new_privs, load the seccomp filter (a notify profile's in
//!     step 10, so its listener reaches the agent during `create`); `execve`.

use std::ffi::CString;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use anyhow::{Context, Result};

pub mod process;

use crate::hooks;
use crate::plan::sync::{self, Msg};
use crate::plan::Plan;
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
    use crate::timing::mark;
    mark("child: started");
    // A foreground `run` blocks signals before the clone; not for us.
    nix::sys::signal::SigSet::all().thread_unblock()?;
    // 1.
    // SAFETY: closing our copy of the lock fd; the parent keeps its own.
    unsafe { libc::close(plan.lock_fd) };
    sys::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as u64)?;
    // In a new pid namespace the parent is outside it and getppid() is 0.
    let ppid = nix::unistd::getppid().as_raw();
    if ppid != 0 && ppid != plan.parent_pid {
        unsafe { libc::_exit(1) };
    }
    if !plan.ns.dumpable_until_maps {
        sys::prctl(libc::PR_SET_DUMPABLE, 0)?;
    }
    if let Some(cpus) = &plan.process.affinity_initial {
        process::set_affinity(cpus).context("process.execCPUAffinity.initial")?;
    }
    // 2.
    if plan.wait_go {
        expect_go(sock)?;
    }
    // (`wait_go` is set whenever the maps are written before `Go`.)
    if plan.ns.dumpable_until_maps && !plan.ns.two_stage {
        sys::prctl(libc::PR_SET_DUMPABLE, 0)?;
    }
    mark("child: go received");
    // 3.
    crate::cgroups::join_self(&plan.cgroup_tasks)?;
    mark("child: cgroups joined");
    let ns = &plan.ns;
    for j in &ns.join {
        // The type is checked by the kernel too, not only by the parent.
        sys::setns(j.fd.as_fd(), j.flag as i32)
            .with_context(|| format!("cannot join namespace {}", j.path.display()))?;
    }
    if ns.late_unshare != 0 {
        sys::unshare(ns.late_unshare).context("cannot create the cgroup namespace")?;
    }
    if ns.two_stage {
        if ns.new_user {
            sys::unshare(libc::CLONE_NEWUSER as u64).context("cannot create user namespace")?;
            sync::send(sock, &Msg::NeedMaps)?;
            expect_go(sock)?;
            if plan.ns.dumpable_until_maps {
                sys::prctl(libc::PR_SET_DUMPABLE, 0)?;
            }
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
    mark("child: namespaces, hostname");
    // 6.
    nix::sys::stat::umask(nix::sys::stat::Mode::empty());
    let mut net_pending = ns.net_from_parent;
    let root = rootfs::setup(&plan.rootfs, ns.net_from_parent, &mut || {
        if std::mem::take(&mut net_pending) {
            join_network_from_parent(sock)?;
        }
        Ok(())
    })?;
    let cwd = Path::new(std::ffi::OsStr::from_bytes(plan.process.cwd.as_bytes()));
    resolve::mkdir_all(root.as_fd(), cwd)
        .with_context(|| format!("process.cwd {}: cannot create", cwd.display()))?;
    let mut hook_state = String::new();
    if plan.hooks_before_pivot {
        sync::send(sock, &Msg::Hooks)?;
        match sync::recv(sock)? {
            Some(Msg::State(s)) => hook_state = s,
            _ => unsafe { libc::_exit(1) },
        }
        // As with runc, createContainer hooks run in the rootfs directory
        // (as seen before pivot_root) with the container process's env.
        nix::unistd::fchdir(&root).context("cannot enter rootfs")?;
        hooks::run_all_with(
            plan.hooks.as_ref(),
            hooks::Kind::CreateContainer,
            &container_state(&hook_state, "creating"),
            in_container(plan),
        )?;
    }
    rootfs::enter(&plan.rootfs, root)?;
    mark("child: old root detached");
    // 7.
    if !plan.sysctls.is_empty() {
        write_sysctls(&plan.sysctls)?;
    }
    if let Some(console) = &plan.console {
        crate::console::setup_pty(
            console.as_fd(),
            plan.console_size,
            true,
            (plan.process.uid, plan.process.gid),
        )?;
    }
    reopen_dev_null().context("cannot reopen /dev/null in the container")?;
    if let Some(pipe) = &plan.seccomp_pipe {
        // Compiled by the parent meanwhile; its absence (EOF) means the
        // parent failed, and says why itself.
        match crate::security::seccomp::Compiled::receive(pipe.as_fd()) {
            Ok(c) => {
                let _ = plan.process.seccomp.set(c);
            }
            // SAFETY: _exit skips destructors; nothing here needs them.
            Err(_) => unsafe { libc::_exit(1) },
        }
    }
    // 8.–10.
    let exe = process::prepare(
        &plan.process,
        &plan.id,
        plan.no_new_keyring,
        Some(hook_state.as_str()).filter(|s| !s.is_empty()),
        plan.preserve_fds,
    )?;
    mark("child: process prepared (caps, user)");
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
    mark("child: start received");
    if plan
        .hooks
        .as_ref()
        .is_some_and(|h| !hooks::Kind::StartContainer.of(h).is_empty())
    {
        let state = container_state(&hook_state, "created");
        // In process.cwd, where `prepare` left us (as runc).
        let run = hooks::run_all_with(
            plan.hooks.as_ref(),
            hooks::Kind::StartContainer,
            &state,
            in_container(plan),
        );
        if let Err(e) = run {
            let msg = format!("{e:#}");
            // For `start` or `run`, which read it from the fifo and report
            // it (one write, below PIPE_BUF, so it arrives whole); on the
            // container's stderr only when nobody reads.
            let mut note = b"E".to_vec();
            note.extend(msg.bytes().take(4000));
            if nix::unistd::write(plan.fifo.as_fd(), &note).is_err() {
                eprintln!("rrun: {msg}");
            }
            // SAFETY: _exit skips destructors; nothing here needs them.
            unsafe { libc::_exit(1) };
        }
    }
    // 12.
    process::exec(&plan.process, &exe)
}

/// Joins the network namespace the parent sends (its helper's,
/// `launch::netns`).
fn join_network_from_parent(sock: &OwnedFd) -> Result<()> {
    match sync::recv_net(sock) {
        Ok(fd) => sys::setns(fd.as_fd(), libc::CLONE_NEWNET)
            .context("cannot join the new network namespace")?,
        // The parent is gone or gave up: nothing to report to.
        // SAFETY: _exit skips destructors; nothing here needs them.
        Err(_) => unsafe { libc::_exit(1) },
    }
    crate::timing::mark("child: network namespace joined");
    Ok(())
}

/// Points stdin, stdout and stderr that are the null device opened outside
/// the container (an engine's "no input") at the container's own
/// `/dev/null`, as runc's reOpenDevNull does. Only a `/dev/null` that is
/// the null device (1:3) is used; opened without following a last
/// symlink and without blocking (a FIFO planted there cannot hang init).
fn reopen_dev_null() -> Result<()> {
    let null = match nix::fcntl::open(
        "/dev/null",
        nix::fcntl::OFlag::O_RDWR
            | nix::fcntl::OFlag::O_CLOEXEC
            | nix::fcntl::OFlag::O_NOFOLLOW
            | nix::fcntl::OFlag::O_NONBLOCK,
        nix::sys::stat::Mode::empty(),
    ) {
        Ok(fd) => fd,
        // No /dev/null in the container: nothing to move to.
        Err(_) => return Ok(()),
    };
    let ours = resolve::fstat(null.as_fd())?;
    let is_null = |st: &libc::stat| {
        st.st_mode & libc::S_IFMT == libc::S_IFCHR && st.st_rdev == libc::makedev(1, 3)
    };
    if !is_null(&ours) {
        return Ok(());
    }
    nix::fcntl::fcntl(
        &null,
        nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::O_RDWR),
    )?;
    for fd in 0..3 {
        // SAFETY: fstat of a small integer fd into a local buffer.
        let mut st: libc::stat = unsafe { std::mem::zeroed() };
        if unsafe { libc::fstat(fd, &mut st) } != 0 || !is_null(&st) {
            continue;
        }
        if (st.st_dev, st.st_ino) == (ours.st_dev, ours.st_ino) {
            continue;
        }
        // SAFETY: dup3 onto a stdio fd; `null` stays open until then.
        if unsafe { libc::dup3(null.as_raw_fd(), fd, 0) } < 0 {
            return Err(std::io::Error::last_os_error().into());
        }
    }
    Ok(())
}

/// What hooks run in the container's namespaces inherit: the container
/// process's environment and init's working directory.
fn in_container(plan: &Plan) -> hooks::Inherit<'_> {
    hooks::Inherit {
        env: Some(&plan.process.env),
        cwd: true,
    }
}

/// The state JSON as hooks that run inside the container see it: the pid
/// in the container's own pid namespace, as runc reports it.
fn container_state(host_state: &str, status: &str) -> Vec<u8> {
    let mut v: serde_json::Value = serde_json::from_str(host_state).unwrap_or_default();
    v["pid"] = serde_json::json!(std::process::id());
    v["status"] = serde_json::json!(status);
    serde_json::to_vec(&v).unwrap_or_default()
}

/// Writes sysctls through a procfs instance of our own, never attached
/// anywhere the container could reach (CVE-2025-52881), after checking
/// that it really is procfs.
fn write_sysctls(sysctls: &[(CString, String)]) -> Result<()> {
    let proc = sys::private_procfs().context("sysctl: cannot open a private procfs")?;
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
