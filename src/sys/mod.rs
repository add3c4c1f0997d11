//! Thin, safe wrappers over the raw syscalls that nix does not cover:
//! `clone3`, `openat2`, the new mount API, `pivot_root`, pidfds and a few
//! process-attribute calls. Each `unsafe` block is one syscall whose
//! arguments are checked by the types of the wrapper.

pub mod mount_api;
pub mod netlink;

use std::ffi::CStr;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

/// Turns a raw syscall return value into `io::Result`.
fn check(ret: libc::c_long) -> io::Result<libc::c_long> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

/// Wraps a syscall return value that is a new file descriptor.
fn owned_fd(ret: libc::c_long) -> io::Result<OwnedFd> {
    let fd = check(ret)? as RawFd;
    // SAFETY: the kernel just returned this fd to us and nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

pub const CLONE_NEWTIME: u64 = 0x80;
pub const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;

/// `struct clone_args` from `<linux/sched.h>` (version 2, with `cgroup`).
#[repr(C)]
#[derive(Default, Debug, Clone, Copy)]
pub struct CloneArgs {
    pub flags: u64,
    pub pidfd: u64,
    pub child_tid: u64,
    pub parent_tid: u64,
    pub exit_signal: u64,
    pub stack: u64,
    pub stack_size: u64,
    pub tls: u64,
    pub set_tid: u64,
    pub set_tid_size: u64,
    pub cgroup: u64,
}

/// The result of a fork-like clone: which side of it we are on.
pub enum Forked {
    Parent { pid: i32 },
    Child,
}

/// `clone3` without `CLONE_VM`: a fork that can also create namespaces and
/// place the child in a cgroup. Only call it while the process is
/// single-threaded; the child must avoid anything that takes a lock another
/// thread could have held (there is none when single-threaded).
pub fn clone3(args: &CloneArgs) -> io::Result<Forked> {
    // SAFETY: `args` is a valid, fully initialised clone_args of the size we
    // pass; without CLONE_VM the child gets a copy of our address space, so
    // returning into Rust code in the child is sound (like fork).
    let ret = unsafe {
        libc::syscall(
            libc::SYS_clone3,
            args as *const CloneArgs,
            std::mem::size_of::<CloneArgs>(),
        )
    };
    match check(ret)? {
        0 => Ok(Forked::Child),
        pid => Ok(Forked::Parent { pid: pid as i32 }),
    }
}

/// Plain fork (used for the extra process a joined pid namespace needs).
pub fn fork() -> io::Result<Forked> {
    clone3(&CloneArgs {
        exit_signal: libc::SIGCHLD as u64,
        ..Default::default()
    })
}

pub const RESOLVE_NO_MAGICLINKS: u64 = 0x02;
pub const RESOLVE_NO_SYMLINKS: u64 = 0x04;
pub const RESOLVE_BENEATH: u64 = 0x08;
pub const RESOLVE_IN_ROOT: u64 = 0x10;

/// `openat2(2)`.
pub fn openat2(
    dir: BorrowedFd<'_>,
    path: &CStr,
    flags: i32,
    mode: u32,
    resolve: u64,
) -> io::Result<OwnedFd> {
    // SAFETY: open_how is plain data; all-zero is a valid value.
    let mut how: libc::open_how = unsafe { std::mem::zeroed() };
    how.flags = (flags | libc::O_CLOEXEC) as u64;
    how.mode = mode as u64;
    how.resolve = resolve;
    loop {
        // SAFETY: `path` is NUL-terminated, `how` is a valid open_how of the
        // size passed.
        let ret = unsafe {
            libc::syscall(
                libc::SYS_openat2,
                dir.as_raw_fd(),
                path.as_ptr(),
                &how as *const libc::open_how,
                std::mem::size_of::<libc::open_how>(),
            )
        };
        match owned_fd(ret) {
            Err(e) if e.raw_os_error() == Some(libc::EAGAIN) => continue,
            r => return r,
        }
    }
}

/// `pivot_root(2)`.
pub fn pivot_root(new_root: &CStr, put_old: &CStr) -> io::Result<()> {
    // SAFETY: both arguments are NUL-terminated strings.
    check(unsafe { libc::syscall(libc::SYS_pivot_root, new_root.as_ptr(), put_old.as_ptr()) })?;
    Ok(())
}

/// `pidfd_open(2)`.
pub fn pidfd_open(pid: i32) -> io::Result<OwnedFd> {
    // SAFETY: plain integer arguments.
    owned_fd(unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) })
}

/// `pidfd_send_signal(2)`: signals exactly the process the pidfd refers to,
/// never a later process that reused its pid.
pub fn pidfd_send_signal(pidfd: BorrowedFd<'_>, sig: i32) -> io::Result<()> {
    // SAFETY: a null siginfo is allowed; the fd is borrowed for the call.
    check(unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            pidfd.as_raw_fd(),
            sig,
            std::ptr::null::<libc::siginfo_t>(),
            0,
        )
    })?;
    Ok(())
}

/// `eventfd(2)`: a new counter fd, non-blocking and close-on-exec.
pub fn eventfd() -> io::Result<OwnedFd> {
    // SAFETY: plain integer arguments.
    owned_fd(unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) }.into())
}

/// Reads an eventfd's counter (resetting it): 0 when nothing was signalled.
pub fn eventfd_take(fd: BorrowedFd<'_>) -> io::Result<u64> {
    let mut buf = [0u8; 8];
    // SAFETY: reads at most 8 bytes into a buffer of 8.
    let n = unsafe { libc::read(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
    if n < 0 {
        let e = io::Error::last_os_error();
        return if e.kind() == io::ErrorKind::WouldBlock {
            Ok(0)
        } else {
            Err(e)
        };
    }
    Ok(u64::from_ne_bytes(buf))
}

/// An inotify instance (non-blocking, close-on-exec) watching `path` for
/// modification. Cgroup files such as `memory.events` report their changes
/// this way.
pub fn inotify_modify_watch(path: &CStr) -> io::Result<OwnedFd> {
    // SAFETY: plain integer argument.
    let fd = owned_fd(unsafe { libc::inotify_init1(libc::IN_CLOEXEC | libc::IN_NONBLOCK) }.into())?;
    // SAFETY: a NUL-terminated path; the fd is ours.
    check(
        unsafe { libc::inotify_add_watch(fd.as_raw_fd(), path.as_ptr(), libc::IN_MODIFY) }.into(),
    )?;
    Ok(fd)
}

/// Reads and discards whatever a non-blocking fd (an inotify instance) has
/// queued; returns the number of bytes read.
pub fn drain(fd: BorrowedFd<'_>) -> io::Result<usize> {
    let mut buf = [0u8; 4096];
    let mut total = 0;
    loop {
        // SAFETY: reads at most buf.len() bytes into buf.
        let n = unsafe { libc::read(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
        if n < 0 {
            let e = io::Error::last_os_error();
            return if e.kind() == io::ErrorKind::WouldBlock {
                Ok(total)
            } else {
                Err(e)
            };
        }
        if n == 0 {
            return Ok(total);
        }
        total += n as usize;
    }
}

/// Marks every fd from `first` up close-on-exec.
pub fn cloexec_from(first: u32) -> io::Result<()> {
    // SAFETY: close_range with CLOSE_RANGE_CLOEXEC only changes fd flags.
    // (A raw system call: musl has no wrapper.)
    let ret = unsafe {
        libc::syscall(
            libc::SYS_close_range,
            first,
            u32::MAX,
            libc::CLOSE_RANGE_CLOEXEC,
        )
    };
    check(ret)?;
    Ok(())
}

/// `struct sched_attr` from `<linux/sched/types.h>`.
#[repr(C)]
#[derive(Default, Debug, Clone, Copy)]
pub struct SchedAttr {
    pub size: u32,
    pub sched_policy: u32,
    pub sched_flags: u64,
    pub sched_nice: i32,
    pub sched_priority: u32,
    pub sched_runtime: u64,
    pub sched_deadline: u64,
    pub sched_period: u64,
}

/// `sched_setattr(2)` on the calling thread.
pub fn sched_setattr(attr: &SchedAttr) -> io::Result<()> {
    let mut a = *attr;
    a.size = std::mem::size_of::<SchedAttr>() as u32;
    // SAFETY: `a` is a valid sched_attr with its size filled in.
    check(unsafe { libc::syscall(libc::SYS_sched_setattr, 0, &a as *const SchedAttr, 0) })?;
    Ok(())
}

/// `ioprio_set(IOPRIO_WHO_PROCESS, 0, prio)`.
pub fn ioprio_set(class: u32, level: u32) -> io::Result<()> {
    const IOPRIO_WHO_PROCESS: i32 = 1;
    let prio = (class << 13) | level;
    // SAFETY: plain integer arguments.
    check(unsafe { libc::syscall(libc::SYS_ioprio_set, IOPRIO_WHO_PROCESS, 0, prio) })?;
    Ok(())
}

/// `set_mempolicy(2)`.
pub fn set_mempolicy(mode: i32, nodemask: &[u64]) -> io::Result<()> {
    let (ptr, maxnode) = if nodemask.is_empty() {
        (std::ptr::null(), 0)
    } else {
        (nodemask.as_ptr(), nodemask.len() * 64)
    };
    // SAFETY: `ptr` points at `maxnode` bits (or is null with 0).
    check(unsafe { libc::syscall(libc::SYS_set_mempolicy, mode, ptr, maxnode) })?;
    Ok(())
}

/// `personality(2)`.
pub fn personality(persona: u64) -> io::Result<()> {
    // SAFETY: plain integer argument.
    let ret = unsafe { libc::personality(persona as libc::c_ulong) };
    check(ret as libc::c_long)?;
    Ok(())
}

/// `setns(2)` on a namespace fd.
pub fn setns(fd: BorrowedFd<'_>, nstype: i32) -> io::Result<()> {
    // SAFETY: fd is borrowed for the call.
    check(unsafe { libc::setns(fd.as_raw_fd(), nstype) } as libc::c_long)?;
    Ok(())
}

/// `ioctl(NS_GET_NSTYPE)`: the `CLONE_NEW*` type of the namespace `fd` refers
/// to (an error if `fd` is not a namespace file).
pub fn ns_type(fd: BorrowedFd<'_>) -> io::Result<u64> {
    const NS_GET_NSTYPE: libc::c_ulong = 0xb703; // _IO(0xb7, 0x3)
                                                 // SAFETY: NS_GET_NSTYPE takes no argument and only returns an integer.
    let ret = unsafe { libc::ioctl(fd.as_raw_fd(), NS_GET_NSTYPE as _) };
    check(ret as libc::c_long).map(|t| t as u64)
}

/// `ioctl(NS_GET_USERNS)`: the user namespace that owns the namespace `fd`
/// refers to, as a new fd.
pub fn ns_owner(fd: BorrowedFd<'_>) -> io::Result<OwnedFd> {
    const NS_GET_USERNS: libc::c_ulong = 0xb701; // _IO(0xb7, 0x1)
                                                 // SAFETY: NS_GET_USERNS takes no argument and returns a new fd (or -1),
                                                 // which is owned by no one else.
    let ret = unsafe { libc::ioctl(fd.as_raw_fd(), NS_GET_USERNS as _) };
    check(ret as libc::c_long)?;
    // SAFETY: a fresh fd the kernel just opened for us.
    Ok(unsafe { OwnedFd::from_raw_fd(ret) })
}

/// `kill(2)` of one process. A pid that is not positive is refused without
/// a syscall: `kill(0)` would signal rrun's own process group (its caller
/// included) and `kill(-1)` every process it may signal.
pub fn kill_positive(pid: i32, sig: i32) -> bool {
    if pid <= 0 {
        return false;
    }
    // SAFETY: plain integer arguments, pid checked to name one process.
    unsafe { libc::kill(pid, sig) == 0 }
}

/// Undoes mountinfo's octal escapes (`\040` for a space).
pub fn unescape_mountinfo(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 4 <= b.len() {
            // `get`: the three bytes may end inside a multi-byte character.
            if let Some(v) = s
                .get(i + 1..i + 4)
                .and_then(|o| u8::from_str_radix(o, 8).ok())
            {
                out.push(v);
                i += 4;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `unshare(2)`.
pub fn unshare(flags: u64) -> io::Result<()> {
    // SAFETY: plain integer argument.
    check(unsafe { libc::unshare(flags as i32) } as libc::c_long)?;
    Ok(())
}

/// `prctl` with integer arguments.
pub fn prctl(option: i32, arg2: u64) -> io::Result<()> {
    // SAFETY: the options we use take integer arguments only.
    check(unsafe { libc::prctl(option, arg2, 0u64, 0u64, 0u64) } as libc::c_long)?;
    Ok(())
}

/// Kernel capability masks, as `capset(2)` takes them.
#[derive(Default, Debug, Clone, Copy)]
pub struct CapSets {
    pub effective: u64,
    pub permitted: u64,
    pub inheritable: u64,
}

/// `capset(2)` for the calling thread (version 3, 64-bit masks).
pub fn capset(sets: &CapSets) -> io::Result<()> {
    #[repr(C)]
    struct Header {
        version: u32,
        pid: i32,
    }
    #[repr(C)]
    #[derive(Clone, Copy)]
    struct Data {
        effective: u32,
        permitted: u32,
        inheritable: u32,
    }
    let hdr = Header {
        version: 0x2008_0522,
        pid: 0,
    };
    let lo = |m: u64| m as u32;
    let hi = |m: u64| (m >> 32) as u32;
    let data = [
        Data {
            effective: lo(sets.effective),
            permitted: lo(sets.permitted),
            inheritable: lo(sets.inheritable),
        },
        Data {
            effective: hi(sets.effective),
            permitted: hi(sets.permitted),
            inheritable: hi(sets.inheritable),
        },
    ];
    // SAFETY: header and a two-element data array, as version 3 requires.
    check(unsafe { libc::syscall(libc::SYS_capset, &hdr as *const Header, data.as_ptr()) })?;
    Ok(())
}

/// Whether SIGPIPE was ignored when rrun started (see `process_start`).
static SIGPIPE_IGNORED_BY_CALLER: std::sync::atomic::AtomicBool =
    std::sync::atomic::AtomicBool::new(false);

/// What Rust's runtime would do at start that rrun needs, without the rest
/// of it (rrun's `main` is a plain C `main`, see src/main.rs): descriptors
/// 0-2 made valid (opened on /dev/null when closed), so no file rrun opens
/// lands on one and is then written by a print; SIGPIPE ignored, so a
/// write to a closed pipe or socket is an error rrun reports, not its
/// death. The caller's SIGPIPE disposition is remembered for
/// `restore_caller_signals`. Left out: the main thread's stack-guard
/// lookup (a read of /proc/self/maps parsed with `sscanf`, 15% of the
/// instructions of a `rrun state`) and the alternate signal stack that
/// only serves the "stack overflow" message.
///
/// Added: a panic ends the process that panicked, by its own thread id
/// ([`abort_self`]). musl's `abort` signals the thread id its start
/// recorded, which in a process rrun makes with a raw `clone` (the
/// container's init, an exec's child, the network namespace helper) is
/// still its parent's: a panic there would signal the parent, or whichever
/// process has that number in the child's pid namespace.
pub fn process_start() {
    let print = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        print(info);
        abort_self()
    }));
    let mut fds = [0, 1, 2].map(|fd| libc::pollfd {
        fd,
        events: 0,
        revents: 0,
    });
    // SAFETY: poll on a local array of three pollfds, no timeout.
    let polled = unsafe { libc::poll(fds.as_mut_ptr(), 3, 0) };
    if polled > 0 {
        for p in fds.iter().filter(|p| p.revents & libc::POLLNVAL != 0) {
            // SAFETY: the lowest free descriptor is this one, since the
            // ones below it are valid (or were opened just now).
            let fd = unsafe { libc::open(c"/dev/null".as_ptr(), libc::O_RDWR) };
            if fd != p.fd {
                // SAFETY: nothing is running yet; leave like std does.
                unsafe { libc::abort() };
            }
        }
    }
    // SAFETY: sets a disposition to SIG_IGN; no handler runs.
    let old = unsafe { libc::signal(libc::SIGPIPE, libc::SIG_IGN) };
    SIGPIPE_IGNORED_BY_CALLER.store(old == libc::SIG_IGN, std::sync::atomic::Ordering::Relaxed);
}

/// Ends this process as `abort` does (SIGABRT, default action), by the
/// thread id the kernel gives it now rather than one cached at start; if
/// the signal does not end it (the init of a pid namespace ignores its own
/// signals), exits with 134, the status a shell shows for SIGABRT.
pub fn abort_self() -> ! {
    // SAFETY: plain system calls on integers and a local signal set; no
    // handler runs (SIGABRT is set to its default action first).
    unsafe {
        libc::signal(libc::SIGABRT, libc::SIG_DFL);
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGABRT);
        libc::sigprocmask(libc::SIG_UNBLOCK, &set, std::ptr::null_mut());
        libc::syscall(
            libc::SYS_tgkill,
            libc::getpid(),
            libc::syscall(libc::SYS_gettid),
            libc::SIGABRT,
        );
        libc::_exit(134)
    }
}

/// The command line `main` receives, as `OsString`s.
///
/// # Safety
/// `argv` must hold `argc` pointers to NUL-terminated strings, as the C
/// start gives `main`.
pub unsafe fn args_from_c(
    argc: libc::c_int,
    argv: *const *const libc::c_char,
) -> Vec<std::ffi::OsString> {
    use std::os::unix::ffi::OsStrExt;
    (0..usize::try_from(argc).unwrap_or(0))
        // SAFETY: the caller's promise; `i < argc`.
        .map(|i| unsafe { std::ffi::CStr::from_ptr(*argv.add(i)) })
        .map(|c| std::ffi::OsStr::from_bytes(c.to_bytes()).to_os_string())
        .collect()
}

/// Gives the process about to become the container's (or a hook's) the
/// signal dispositions rrun's caller gave rrun: SIGPIPE back to default
/// unless the caller ignored it. A disposition of "ignore" survives
/// `execve`, so without this every container would start with SIGPIPE
/// ignored (runc's and crun's do not). One syscall; safe in the child.
pub fn restore_caller_signals() {
    if !SIGPIPE_IGNORED_BY_CALLER.load(std::sync::atomic::Ordering::Relaxed) {
        // SAFETY: sets a disposition to SIG_DFL; no handler involved.
        unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
    }
}

/// Start time of a process in clock ticks since boot (field 22 of
/// `/proc/PID/stat`); with the pid it identifies a process uniquely.
/// Reads a small file (procfs, cgroupfs) whole: one `read` into a 4 KiB
/// buffer, more only if it is larger. `std::fs::read_to_string` asks for
/// the size first (0 for these files) and then reads 32 bytes, 32, 64,
/// 128... (seven calls for a 1.5 KiB mountinfo).
pub fn read_to_string(path: impl AsRef<std::path::Path>) -> io::Result<String> {
    use std::io::Read;
    let f = std::fs::File::open(path)?;
    let mut buf = Vec::with_capacity(4096);
    // Through `Take`: `File`'s own read_to_end asks for the size first.
    (&f).take(u64::MAX).read_to_end(&mut buf)?;
    String::from_utf8(buf).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}

pub fn process_start_time(pid: i32) -> io::Result<u64> {
    let stat = read_to_string(format!("/proc/{pid}/stat"))?;
    // The command name may contain spaces and parentheses: skip past the last ')'.
    let rest = stat
        .rsplit_once(')')
        .map(|(_, r)| r)
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "bad /proc stat"))?;
    // After ')' come fields 3.. ; start time is field 22, the 20th here.
    rest.split_whitespace()
        .nth(19)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "bad /proc stat"))
}

/// Process state letter from `/proc/PID/stat` ('Z' for zombie, ...).
pub fn process_state(pid: i32) -> io::Result<char> {
    let stat = read_to_string(format!("/proc/{pid}/stat"))?;
    stat.rsplit_once(')')
        .and_then(|(_, r)| r.trim_start().chars().next())
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "bad /proc stat"))
}

/// A user namespace with the given id maps, held by an fd (for idmapped
/// mounts). A short-lived child creates it; the parent writes its maps,
/// opens its `/proc/PID/ns/user`, and lets it exit.
pub fn userns_with_maps(uid_map: &str, gid_map: &str) -> io::Result<OwnedFd> {
    let (rd, wr) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(io::Error::from)?;
    let args = CloneArgs {
        flags: libc::CLONE_NEWUSER as u64,
        exit_signal: libc::SIGCHLD as u64,
        ..Default::default()
    };
    match clone3(&args)? {
        Forked::Child => {
            drop(wr);
            let mut b = [0u8; 1];
            let _ = nix::unistd::read(&rd, &mut b);
            // SAFETY: leave without running the parent's destructors.
            unsafe { libc::_exit(0) }
        }
        Forked::Parent { pid } => {
            drop(rd);
            let result = (|| {
                std::fs::write(format!("/proc/{pid}/uid_map"), uid_map)?;
                std::fs::write(format!("/proc/{pid}/gid_map"), gid_map)?;
                let f = std::fs::File::open(format!("/proc/{pid}/ns/user"))?;
                Ok(OwnedFd::from(f))
            })();
            drop(wr);
            let _ = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(pid), None);
            result
        }
    }
}

/// A procfs instance of our own, mounted nowhere (so nothing in the
/// container can have replaced or redirected it), checked to be procfs.
pub fn private_procfs() -> io::Result<OwnedFd> {
    use mount_api as m;
    let fs = m::fsopen(c"proc")?;
    m::fsconfig_create(fs.as_fd())?;
    let proc = m::fsmount(
        fs.as_fd(),
        m::MOUNT_ATTR_NOSUID | m::MOUNT_ATTR_NODEV | m::MOUNT_ATTR_NOEXEC,
    )?;
    let st = nix::sys::statfs::fstatfs(&proc).map_err(io::Error::from)?;
    if st.filesystem_type() != nix::sys::statfs::PROC_SUPER_MAGIC {
        return Err(io::Error::other("private procfs is not procfs"));
    }
    Ok(proc)
}

/// True when rrun runs without the host root's privileges: as an ordinary
/// user, or as root of a user namespace that is not the host's (rootless
/// Podman runs its runtime so). Host-wide steps (cgroupfs, `mknod`, mounts
/// in the caller's mount namespace) then take their rootless paths.
pub fn rootless() -> bool {
    // SAFETY: geteuid cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        return true;
    }
    in_user_namespace()
}

/// True when the calling process's user namespace is not the initial one
/// (its uid map is not the identity over every id). Read once per process:
/// rrun never changes its own user namespace (only its children do).
pub fn in_user_namespace() -> bool {
    static IN_USERNS: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *IN_USERNS.get_or_init(|| match std::fs::read_to_string("/proc/self/uid_map") {
        Ok(map) => {
            let f: Vec<&str> = map.split_whitespace().collect();
            f != ["0", "0", "4294967295"]
        }
        Err(_) => false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A child made by a raw `clone` (as rrun makes the container's init),
    /// where the C library still holds its parent's thread id: `abort_self`
    /// ends the child with SIGABRT and leaves the parent (this test) alone.
    #[test]
    fn abort_self_in_a_raw_clone_ends_the_child_not_its_parent() {
        // SAFETY: a fork-like clone (no shared memory); the child makes
        // only the system calls of `abort_self`.
        let pid = unsafe { libc::syscall(libc::SYS_clone, libc::SIGCHLD, 0, 0, 0, 0) };
        assert!(pid >= 0, "clone: {}", io::Error::last_os_error());
        if pid == 0 {
            abort_self();
        }
        let mut status = 0;
        // SAFETY: waits for our own child.
        let r = unsafe { libc::waitpid(pid as i32, &mut status, 0) };
        assert_eq!(r, pid as i32);
        assert!(
            libc::WIFSIGNALED(status) && libc::WTERMSIG(status) == libc::SIGABRT,
            "child status {status:#x}"
        );
    }

    #[test]
    fn read_to_string_reads_small_and_large_files_whole() {
        for p in [
            "/proc/self/mountinfo",
            "/proc/self/status",
            "/proc/self/stat",
        ] {
            let ours = read_to_string(p).unwrap();
            let std = std::fs::read_to_string(p).unwrap();
            // Counters move between the two reads; the shape does not.
            assert_eq!(ours.lines().count(), std.lines().count(), "{p}");
        }
        let dir = std::env::temp_dir().join(format!("rrun-read-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        for len in [0, 1, 4095, 4096, 4097, 100_000] {
            let text: String = (0..len).map(|i| (b'a' + (i % 26) as u8) as char).collect();
            let f = dir.join(format!("f{len}"));
            std::fs::write(&f, &text).unwrap();
            assert_eq!(read_to_string(&f).unwrap(), text, "{len} bytes");
        }
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(read_to_string("/nonexistent/x").is_err());
    }
}
