//! The container's new network namespace, made beside the parent's planning.
//!
//! A network namespace is the costliest one to make (its loopback device,
//! sysctl tables and sysfs entries: most of the kernel's work in a
//! `clone3` with all of a container's namespaces). Made by that clone, it
//! waits for everything the parent plans before it, and the container's
//! setup waits for it. So when the config asks for a new one and no user
//! namespace is involved (which would have to own it), `create` starts a
//! helper as soon as it has read config.json (a first pass over
//! `linux.namespaces` alone, `spec::asks_new_net_without_user`; the
//! namespace plan then keeps the helper or stops it): the helper unshares
//! a network namespace, on the other CPU, while the parent parses and
//! checks the config, makes the state directory and the cgroups, plans,
//! and clones the container's first process without one. That process
//! makes its mounts meanwhile, and joins the namespace (`setns`, the fd
//! sent over the sync channel) before the first mount that needs it (sysfs
//! shows the namespace it is mounted in); the steps after sysfs that need
//! not wait for it (devices, masked and read-only paths outside `/sys`)
//! run before it (`rootfs::late`).
//!
//! The helper is a process that shares rrun's memory and fd table
//! (`CLONE_VM | CLONE_FILES`, like the child of `posix_spawn`): starting it
//! copies no page tables, and the namespace fd it opens is rrun's at once.
//! It runs on a stack of its own and makes raw system calls only (libc's
//! wrappers would write `errno`, rrun's thread-local, and it must take no
//! lock rrun could hold): die with rrun (`PDEATHSIG`), `unshare`, a socket
//! in the new namespace, `SIOCGSKNS` for the namespace's fd, exit. It holds
//! nothing when rrun clones the container, and it is reaped before the
//! namespace is used, so it never outlives `create`.
//!
//! If the helper cannot be started, the clone makes the namespace as
//! before. If it starts and fails, `create` fails with its error: the
//! clone would have failed the same way (the same user namespace and
//! limits).

use std::sync::atomic::{AtomicI64, Ordering};

use anyhow::{bail, Result};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;
use std::os::fd::{FromRawFd, OwnedFd};

use crate::sys;

/// The helper's stack: a few raw system calls need little.
const STACK: usize = 64 * 1024;

/// Not made yet (the helper's result is an fd, or a negated errno).
const PENDING: i64 = i64::MIN;

/// A helper making a network namespace; [`Pending::take`] collects it.
pub struct Pending {
    pid: i32,
    /// Written by the helper, read once it has exited.
    result: Box<AtomicI64>,
    /// The helper's stack; freed only once the helper is reaped.
    _stack: Vec<u8>,
}

/// Starts the helper. `None` (and a debug line) if it cannot be started:
/// the clone makes the namespace then.
pub fn start() -> Option<Pending> {
    if !cfg!(any(target_arch = "x86_64", target_arch = "aarch64")) {
        return None;
    }
    let result = Box::new(AtomicI64::new(PENDING));
    // Uninitialised: a zeroed stack (`vec![0; STACK]`) is zeroed by
    // `calloc` wherever the heap was used before, which writes, and
    // faults in, all 16 pages; the helper touches one. It writes its
    // stack before it reads it, like any thread's.
    let mut stack: Vec<u8> = Vec::with_capacity(STACK);
    // The stack grows down from its 16-byte aligned top.
    let top = (stack.as_mut_ptr() as usize + STACK) & !15;
    let flags = libc::CLONE_VM | libc::CLONE_FILES | libc::SIGCHLD;
    // SAFETY: `helper` runs on `stack`, which outlives it (freed in Drop
    // only after the helper is reaped), and touches only `result`, which
    // is kept alive as long; it makes raw system calls and returns, after
    // which libc's clone stub exits the helper.
    let pid = unsafe {
        libc::clone(
            helper,
            top as *mut libc::c_void,
            flags,
            &*result as *const AtomicI64 as *mut libc::c_void,
        )
    };
    if pid < 0 {
        let e = std::io::Error::last_os_error();
        crate::logging::log(
            crate::logging::Level::Debug,
            &format!("network namespace helper: cannot start ({e}); the clone makes the namespace"),
        );
        return None;
    }
    Some(Pending {
        pid,
        result,
        _stack: stack,
    })
}

/// The helper: stores the new namespace's fd, or a negated errno, in
/// `*arg`, then returns (and exits). Raw system calls only, see above.
extern "C" fn helper(arg: *mut libc::c_void) -> libc::c_int {
    // SAFETY: `arg` is the `AtomicI64` `start` passed, alive until reaped.
    let out = unsafe { &*(arg as *const AtomicI64) };
    // SAFETY: each call passes integers only, or (ioctl) an unused pointer.
    let made = unsafe {
        let r = raw::syscall3(
            libc::SYS_prctl,
            libc::PR_SET_PDEATHSIG as usize,
            libc::SIGKILL as usize,
            0,
        );
        if r < 0 {
            r
        } else {
            let r = raw::syscall3(libc::SYS_unshare, libc::CLONE_NEWNET as usize, 0, 0);
            if r < 0 {
                r
            } else {
                let s = raw::syscall3(
                    libc::SYS_socket,
                    libc::AF_UNIX as usize,
                    (libc::SOCK_DGRAM | libc::SOCK_CLOEXEC) as usize,
                    0,
                );
                if s < 0 {
                    s
                } else {
                    // The socket's network namespace, as a new close-on-exec fd.
                    const SIOCGSKNS: usize = 0x894C;
                    let ns = raw::syscall3(libc::SYS_ioctl, s as usize, SIOCGSKNS, 0);
                    raw::syscall3(libc::SYS_close, s as usize, 0, 0);
                    ns
                }
            }
        }
    };
    out.store(made as i64, Ordering::Release);
    0
}

impl Pending {
    /// Whether the helper has made the namespace (or failed): [`take`]
    /// then does not wait.
    ///
    /// [`take`]: Pending::take
    pub fn is_done(&self) -> bool {
        self.result.load(Ordering::Acquire) != PENDING
    }

    /// The namespace, once the helper has made it (waiting for it if it
    /// has not yet), checked to be a network namespace that is not rrun's
    /// own. Reaps the helper.
    pub fn take(mut self) -> Result<OwnedFd> {
        let reaped = waitpid(Pid::from_raw(self.pid), None);
        self.pid = 0;
        let made = self.result.swap(PENDING, Ordering::Acquire);
        if made < 0 {
            if made == PENDING {
                bail!("linux.namespaces: the network namespace helper ended without a namespace ({reaped:?})");
            }
            let e = std::io::Error::from_raw_os_error(-made as i32);
            bail!("linux.namespaces: cannot create the network namespace: {e}");
        }
        // SAFETY: the helper opened this fd in our shared table and
        // nothing else owns it.
        let fd = unsafe { OwnedFd::from_raw_fd(made as i32) };
        use std::os::fd::AsFd;
        // Defence in depth: never hand the container rrun's own namespace.
        let ours = nix::sys::stat::stat("/proc/self/ns/net").ok();
        let theirs = nix::sys::stat::fstat(fd.as_fd()).ok();
        let own = matches!((ours, theirs), (Some(a), Some(b)) if (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino));
        if sys::ns_type(fd.as_fd()).ok() != Some(libc::CLONE_NEWNET as u64) || own {
            bail!(
                "linux.namespaces: the network namespace helper returned no new network namespace"
            );
        }
        Ok(fd)
    }
}

impl Drop for Pending {
    /// A helper not taken (`create` gave up first) is killed and reaped,
    /// and a namespace it made is closed.
    fn drop(&mut self) {
        if self.pid > 0 {
            // Still our unreaped child, so the pid cannot name another
            // process.
            if matches!(
                waitpid(Pid::from_raw(self.pid), Some(WaitPidFlag::WNOHANG)),
                Ok(WaitStatus::StillAlive)
            ) {
                sys::kill_positive(self.pid, libc::SIGKILL);
                let _ = waitpid(Pid::from_raw(self.pid), None);
            }
            let made = self.result.load(Ordering::Acquire);
            if made >= 0 {
                // SAFETY: the helper's fd, owned by no one else.
                drop(unsafe { OwnedFd::from_raw_fd(made as i32) });
            }
        }
    }
}

/// System calls without libc (no `errno`).
mod raw {
    /// `syscall(n, a, b, c)`: the result, or a negated errno.
    ///
    /// # Safety
    /// As for the system call itself.
    #[cfg(target_arch = "x86_64")]
    pub unsafe fn syscall3(n: libc::c_long, a: usize, b: usize, c: usize) -> isize {
        let ret: isize;
        // SAFETY: the x86_64 system call convention; rcx and r11 are
        // clobbered by the instruction.
        unsafe {
            std::arch::asm!(
                "syscall",
                inlateout("rax") n as isize => ret,
                in("rdi") a,
                in("rsi") b,
                in("rdx") c,
                lateout("rcx") _,
                lateout("r11") _,
                options(nostack)
            );
        }
        ret
    }

    /// `syscall(n, a, b, c)`: the result, or a negated errno.
    ///
    /// # Safety
    /// As for the system call itself.
    #[cfg(target_arch = "aarch64")]
    pub unsafe fn syscall3(n: libc::c_long, a: usize, b: usize, c: usize) -> isize {
        let ret: isize;
        // SAFETY: the aarch64 system call convention.
        unsafe {
            std::arch::asm!(
                "svc 0",
                in("x8") n,
                inlateout("x0") a as isize => ret,
                in("x1") b,
                in("x2") c,
                options(nostack)
            );
        }
        ret
    }

    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    pub unsafe fn syscall3(_: libc::c_long, _: usize, _: usize, _: usize) -> isize {
        -(libc::ENOSYS as isize)
    }
}
