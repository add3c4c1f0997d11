//! Terminals: a pty made in the container's own devpts instance, its master
//! handed to the engine over `--console-socket` (SCM_RIGHTS, as runc sends
//! it), or proxied to rrun's own terminal for a foreground `run`/`exec`.
//!
//! The pty peer comes from `TIOCGPTPEER` on the master, never from a path,
//! and `/dev/pts/ptmx` is checked to be a devpts ptmx (5:2 on devpts) through
//! its fd before use; `/dev/console` is bound from the peer's fd
//! (CVE-2025-52565).

use std::io::IoSlice;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;
use std::path::Path;

use anyhow::{bail, Context, Result};
use nix::sys::socket::{self, ControlMessage, ControlMessageOwned, MsgFlags};

use crate::rootfs::resolve;
use crate::sys::mount_api as mapi;

const DEVPTS_SUPER_MAGIC: i64 = 0x1cd1;

/// Connects to an engine's console socket (before the clone, so the path is
/// resolved on the host).
pub fn connect(path: &Path) -> Result<OwnedFd> {
    let s = UnixStream::connect(path)
        .with_context(|| format!("--console-socket {}", path.display()))?;
    Ok(s.into())
}

/// Sends an fd with a name over a unix socket, as runc's console protocol does.
pub fn send_fd(sock: BorrowedFd<'_>, name: &str, fd: BorrowedFd<'_>) -> Result<()> {
    let fds = [fd.as_raw_fd()];
    let iov = [IoSlice::new(name.as_bytes())];
    socket::sendmsg::<()>(
        sock.as_raw_fd(),
        &iov,
        &[ControlMessage::ScmRights(&fds)],
        MsgFlags::empty(),
        None,
    )
    .context("cannot send the pty master over the console socket")?;
    Ok(())
}

/// Receives one fd sent with `send_fd`.
pub fn recv_fd(sock: BorrowedFd<'_>) -> Result<OwnedFd> {
    let mut buf = [0u8; 4096];
    let mut iov = [std::io::IoSliceMut::new(&mut buf)];
    let mut space = nix::cmsg_space!([RawFd; 1]);
    let msg = socket::recvmsg::<()>(
        sock.as_raw_fd(),
        &mut iov,
        Some(&mut space),
        MsgFlags::MSG_CMSG_CLOEXEC,
    )
    .context("cannot receive the pty master")?;
    for c in msg.cmsgs()? {
        if let ControlMessageOwned::ScmRights(fds) = c {
            if let Some(&fd) = fds.first() {
                // SAFETY: the kernel just installed this fd for us.
                return Ok(unsafe { OwnedFd::from_raw_fd(fd) });
            }
        }
    }
    bail!("the console message carried no fd")
}

/// Child side, inside the container's root: makes a pty owned by `uid` and
/// `gid` (`process.user`), binds `/dev/console` to it (for init), sends the
/// master over `sock`, and makes the peer the controlling terminal and stdio.
pub fn setup_pty(
    sock: BorrowedFd<'_>,
    size: Option<(u16, u16)>,
    bind_console: bool,
    (uid, gid): (u32, u32),
) -> Result<()> {
    let root = nix::fcntl::open(
        "/",
        nix::fcntl::OFlag::O_PATH | nix::fcntl::OFlag::O_DIRECTORY | nix::fcntl::OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )?;
    let master = resolve::open_in_root_nofollow(
        root.as_fd(),
        Path::new("/dev/pts/ptmx"),
        libc::O_RDWR | libc::O_NOCTTY,
    )
    .context(
        "terminal: cannot open /dev/pts/ptmx (is devpts mounted at /dev/pts with newinstance?)",
    )?;
    let st = resolve::fstat(master.as_fd())?;
    let fs = nix::sys::statfs::fstatfs(&master)?;
    if st.st_rdev != libc::makedev(5, 2) || fs.filesystem_type().0 as i64 != DEVPTS_SUPER_MAGIC {
        bail!("terminal: /dev/pts/ptmx is not a devpts ptmx");
    }
    // SAFETY: unlockpt on a master fd we own.
    if unsafe { libc::unlockpt(master.as_raw_fd()) } != 0 {
        return Err(std::io::Error::last_os_error()).context("terminal: unlockpt failed");
    }
    // SAFETY: TIOCGPTPEER returns a new fd for the peer of our master.
    let peer = unsafe {
        libc::ioctl(
            master.as_raw_fd(),
            libc::TIOCGPTPEER as _,
            libc::O_RDWR | libc::O_NOCTTY,
        )
    };
    if peer < 0 {
        return Err(std::io::Error::last_os_error()).context("terminal: TIOCGPTPEER failed");
    }
    // SAFETY: a new fd we own.
    let peer = unsafe { OwnedFd::from_raw_fd(peer) };
    if let Some((rows, cols)) = size {
        set_winsize(master.as_fd(), rows, cols);
    }
    give_to_user(peer.as_fd(), uid, gid)?;
    if bind_console {
        let dev = resolve::open_in_root_nofollow(
            root.as_fd(),
            Path::new("/dev"),
            libc::O_PATH | libc::O_DIRECTORY,
        )
        .context("terminal: /dev is not a directory")?;
        let target =
            resolve::ensure_in_root(dev.as_fd(), Path::new("console"), resolve::Kind::File)
                .context("terminal: cannot create /dev/console")?;
        let tree = mapi::open_tree(
            peer.as_fd(),
            c"",
            mapi::OPEN_TREE_CLONE | mapi::AT_EMPTY_PATH,
        )
        .context("terminal: cannot clone the pty for /dev/console")?;
        mapi::move_mount_fd(tree.as_fd(), target.as_fd())
            .context("terminal: cannot bind /dev/console")?;
    }
    send_fd(sock, "/dev/ptmx", master.as_fd())?;
    drop(master);
    // SAFETY: TIOCSCTTY on our session's new terminal.
    if unsafe { libc::ioctl(peer.as_raw_fd(), libc::TIOCSCTTY as _, 0) } != 0 {
        return Err(std::io::Error::last_os_error())
            .context("terminal: cannot make it the controlling terminal");
    }
    for target in 0..=2 {
        // SAFETY: replacing our stdio with the pty peer; fds 0-2 are ours.
        if unsafe { libc::dup2(peer.as_raw_fd(), target) } < 0 {
            return Err(std::io::Error::last_os_error()).context("terminal: dup2 failed");
        }
    }
    Ok(())
}

/// Makes the process's user and group the owners of its terminal. (runc
/// 1.1.5 changes the uid only and leaves devpts' `gid=5`; the process's own
/// group is what issue 13 asks for, so a process that drops to its user can
/// still `fchmod`/`fchown` within its group.) As with runc, a pty the
/// kernel will not hand over (an id not mapped, a read-only devpts) is left
/// as it is.
fn give_to_user(peer: BorrowedFd<'_>, uid: u32, gid: u32) -> Result<()> {
    let st = resolve::fstat(peer)?;
    if (st.st_uid, st.st_gid) == (uid, gid) {
        return Ok(());
    }
    // SAFETY: fchown on the pty peer fd we own.
    if unsafe { libc::fchown(peer.as_raw_fd(), uid, gid) } != 0 {
        let e = std::io::Error::last_os_error();
        if !matches!(
            e.raw_os_error(),
            Some(libc::EINVAL | libc::EPERM | libc::EROFS)
        ) {
            return Err(e).with_context(|| {
                format!("terminal: cannot give the pty to process.user {uid}:{gid}")
            });
        }
    }
    Ok(())
}

pub fn set_winsize(fd: BorrowedFd<'_>, rows: u16, cols: u16) {
    let ws = libc::winsize {
        ws_row: rows,
        ws_col: cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCSWINSZ reads a valid winsize.
    unsafe { libc::ioctl(fd.as_raw_fd(), libc::TIOCSWINSZ, &ws) };
}

/// The caller's terminal size, if stdin is a terminal.
pub fn own_winsize() -> Option<(u16, u16)> {
    let mut ws: libc::winsize = unsafe { std::mem::zeroed() };
    // SAFETY: TIOCGWINSZ writes into `ws`.
    if unsafe { libc::ioctl(0, libc::TIOCGWINSZ, &mut ws) } == 0 {
        Some((ws.ws_row, ws.ws_col))
    } else {
        None
    }
}

/// Puts rrun's own stdin in raw mode while alive; restores it on drop.
pub struct RawMode {
    orig: Option<nix::sys::termios::Termios>,
    /// The caller's terminal had already signalled end of file.
    stdin_ended: bool,
}

impl RawMode {
    /// Enters raw mode for proxying to the pty `master`. What the caller's
    /// terminal completed in canonical mode before this (whole lines, or an
    /// end of file: `script` and other programs write the EOF character when
    /// their own input ends) is read first, still canonically: the lines go
    /// to `master`, and an end of file ends stdin. Read after the switch, a
    /// pending EOF would come out as a NUL byte and reach the container (and
    /// its echo, `^@`, the terminal) before anything else.
    pub fn enter(master: BorrowedFd<'_>) -> RawMode {
        let stdin = std::io::stdin();
        let Ok(orig) = nix::sys::termios::tcgetattr(stdin.as_fd()) else {
            return RawMode {
                orig: None,
                stdin_ended: false,
            };
        };
        let mut stdin_ended = false;
        if orig
            .local_flags
            .contains(nix::sys::termios::LocalFlags::ICANON)
        {
            stdin_ended = !forward_completed_input(stdin.as_fd(), master);
        }
        let mut raw = orig.clone();
        nix::sys::termios::cfmakeraw(&mut raw);
        let _ =
            nix::sys::termios::tcsetattr(stdin.as_fd(), nix::sys::termios::SetArg::TCSANOW, &raw);
        RawMode {
            orig: Some(orig),
            stdin_ended,
        }
    }

    /// Whether the caller's input had ended before raw mode began.
    pub fn stdin_ended(&self) -> bool {
        self.stdin_ended
    }
}

/// Reads what a canonical-mode terminal has ready without waiting (whole
/// lines) and writes it to `to`; false when it reports end of file.
fn forward_completed_input(from: BorrowedFd<'_>, to: BorrowedFd<'_>) -> bool {
    use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
    loop {
        let mut fds = [PollFd::new(from, PollFlags::POLLIN)];
        match poll(&mut fds, PollTimeout::ZERO) {
            Ok(n) if n > 0 => {}
            _ => return true,
        }
        if fds[0]
            .revents()
            .is_none_or(|r| !r.contains(PollFlags::POLLIN))
        {
            return true;
        }
        let mut buf = [0u8; 4096];
        match nix::unistd::read(from, &mut buf) {
            Ok(0) => return false,
            Ok(n) => {
                let _ = write_all(to, &buf[..n]);
            }
            Err(nix::errno::Errno::EINTR) => {}
            Err(_) => return true,
        }
    }
}

fn write_all(to: BorrowedFd<'_>, mut data: &[u8]) -> bool {
    while !data.is_empty() {
        match nix::unistd::write(to, data) {
            Ok(w) => data = &data[w..],
            Err(nix::errno::Errno::EINTR) => {}
            Err(_) => return false,
        }
    }
    true
}

impl Drop for RawMode {
    fn drop(&mut self) {
        if let Some(orig) = &self.orig {
            let _ = nix::sys::termios::tcsetattr(
                std::io::stdin().as_fd(),
                nix::sys::termios::SetArg::TCSANOW,
                orig,
            );
        }
    }
}

/// Copies what is readable from `from` to `to`; false at end of file.
pub fn pump(from: BorrowedFd<'_>, to: BorrowedFd<'_>) -> bool {
    let mut buf = [0u8; 8192];
    match nix::unistd::read(from, &mut buf) {
        Ok(0) => false,
        Ok(n) => write_all(to, &buf[..n]),
        Err(nix::errno::Errno::EINTR) | Err(nix::errno::Errno::EAGAIN) => true,
        Err(_) => false,
    }
}
