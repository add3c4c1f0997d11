//! The parent–child channel: one `SOCK_SEQPACKET` socketpair carrying small
//! typed messages. The exchange, in order:
//!
//! ```text
//! parent                          child (stage 1 / init)
//!   ── Go ─────────────────────▶   (only with `Plan::wait_go`: id maps
//!                                   written if the clone made the user
//!                                   namespace; cgroup2 entered by the
//!                                   parent if CLONE_INTO_CGROUP failed)
//!   ◀── NeedMaps ───────────────   (two-stage only: after unshare(user))
//!   ── Go ─────────────────────▶
//!   ◀── Pid(n) ─────────────────   (two-stage only: host pid of init)
//!   ── Net(fd) ────────────────▶   (only with `NsPlan::net_from_parent`:
//!                                   the network namespace to join, read
//!                                   before the first mount that needs it)
//!   ◀── Ready | Error(msg) ─────   (init set up, waiting for `start`)
//! ```

use std::io;
use std::os::fd::{AsFd, OwnedFd};

use nix::sys::socket::{self, AddressFamily, MsgFlags, SockFlag, SockType};

#[derive(Debug, PartialEq, Eq)]
pub enum Msg {
    Go,
    NeedMaps,
    /// Child: namespaces and mounts exist; run prestart/createRuntime hooks.
    Hooks,
    /// Parent: the state JSON for the container's own hooks.
    State(String),
    Pid(i32),
    Ready,
    Error(String),
}

const MAX: usize = 8192;

pub fn pair() -> io::Result<(OwnedFd, OwnedFd)> {
    socket::socketpair(
        AddressFamily::Unix,
        SockType::SeqPacket,
        None,
        SockFlag::SOCK_CLOEXEC,
    )
    .map_err(io::Error::from)
}

fn encode(m: &Msg) -> Vec<u8> {
    match m {
        Msg::Go => vec![b'G'],
        Msg::NeedMaps => vec![b'M'],
        Msg::Hooks => vec![b'H'],
        Msg::State(s) => {
            let mut v = vec![b'S'];
            v.extend_from_slice(s.as_bytes());
            v
        }
        Msg::Ready => vec![b'R'],
        Msg::Pid(p) => {
            let mut v = vec![b'P'];
            v.extend_from_slice(&p.to_le_bytes());
            v
        }
        Msg::Error(s) => {
            let mut v = vec![b'E'];
            let b = s.as_bytes();
            v.extend_from_slice(&b[..b.len().min(MAX - 1)]);
            v
        }
    }
}

fn decode(b: &[u8]) -> io::Result<Msg> {
    let bad = || io::Error::new(io::ErrorKind::InvalidData, "bad sync message");
    Ok(match b.first().ok_or_else(bad)? {
        b'G' => Msg::Go,
        b'M' => Msg::NeedMaps,
        b'H' => Msg::Hooks,
        b'S' => Msg::State(String::from_utf8_lossy(&b[1..]).into_owned()),
        b'R' => Msg::Ready,
        b'P' => Msg::Pid(i32::from_le_bytes(
            b.get(1..5).ok_or_else(bad)?.try_into().unwrap(),
        )),
        b'E' => Msg::Error(String::from_utf8_lossy(&b[1..]).into_owned()),
        _ => return Err(bad()),
    })
}

pub fn send(fd: impl AsFd, m: &Msg) -> io::Result<()> {
    send_raw(fd.as_fd(), &encode(m))
}

fn send_raw(fd: std::os::fd::BorrowedFd<'_>, buf: &[u8]) -> io::Result<()> {
    loop {
        match socket::send(fd.as_raw_fd_compat(), buf, MsgFlags::MSG_NOSIGNAL) {
            Err(nix::errno::Errno::EINTR) => continue,
            r => return r.map(|_| ()).map_err(io::Error::from),
        }
    }
}

/// Receives one message; `Ok(None)` when the other side has closed.
pub fn recv(fd: impl AsFd) -> io::Result<Option<Msg>> {
    let mut buf = vec![0u8; MAX];
    let mut flags = MsgFlags::empty();
    loop {
        match socket::recv(fd.as_fd().as_raw_fd_compat(), &mut buf, flags) {
            Err(nix::errno::Errno::EINTR) => continue,
            // The peer closed with a message of ours unread (a child that
            // failed before it read the network namespace): the kernel says
            // so once, and what the peer sent before closing (its error) is
            // still queued behind it.
            Err(nix::errno::Errno::ECONNRESET) if flags.is_empty() => {
                flags = MsgFlags::MSG_DONTWAIT;
                continue;
            }
            Err(nix::errno::Errno::ECONNRESET | nix::errno::Errno::EAGAIN) => return Ok(None),
            Err(e) => return Err(e.into()),
            Ok(0) => return Ok(None),
            Ok(n) => return decode(&buf[..n]).map(Some),
        }
    }
}

/// Parent: sends the container's network namespace. An fd travels outside
/// the typed messages, as SCM_RIGHTS.
pub fn send_net(fd: impl AsFd, ns: std::os::fd::BorrowedFd<'_>) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    let raw = [ns.as_raw_fd()];
    loop {
        match socket::sendmsg::<()>(
            fd.as_fd().as_raw_fd_compat(),
            &[io::IoSlice::new(b"N")],
            &[socket::ControlMessage::ScmRights(&raw)],
            MsgFlags::MSG_NOSIGNAL,
            None,
        ) {
            Err(nix::errno::Errno::EINTR) => continue,
            r => return r.map(|_| ()).map_err(io::Error::from),
        }
    }
}

/// Child: receives what [`send_net`] sent; an error for anything else (the
/// parent gone included).
pub fn recv_net(fd: impl AsFd) -> io::Result<OwnedFd> {
    use std::os::fd::FromRawFd;
    let mut buf = [0u8; 8];
    let mut space = nix::cmsg_space!([std::os::fd::RawFd; 1]);
    let (bytes, mut got) = loop {
        let mut iov = [io::IoSliceMut::new(&mut buf)];
        match socket::recvmsg::<()>(
            fd.as_fd().as_raw_fd_compat(),
            &mut iov,
            Some(&mut space),
            MsgFlags::MSG_CMSG_CLOEXEC,
        ) {
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(e.into()),
            Ok(msg) => {
                let mut fds = Vec::new();
                for c in msg.cmsgs()? {
                    if let socket::ControlMessageOwned::ScmRights(f) = c {
                        // SAFETY: fds the kernel just installed for us; each
                        // is owned here from now on.
                        fds.extend(f.into_iter().map(|x| unsafe { OwnedFd::from_raw_fd(x) }));
                    }
                }
                break (msg.bytes, fds);
            }
        }
    };
    match got.pop() {
        Some(ns) if bytes == 1 && buf[0] == b'N' && got.is_empty() => Ok(ns),
        _ => Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "sync: expected the network namespace",
        )),
    }
}

/// Waits up to `timeout` for a message (or the peer's close); false when
/// nothing came.
pub fn wait_readable(fd: impl AsFd, timeout: std::time::Duration) -> io::Result<bool> {
    use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
    let ms = timeout.as_millis().min(i32::MAX as u128) as i32;
    loop {
        let mut fds = [PollFd::new(fd.as_fd(), PollFlags::POLLIN)];
        match poll(
            &mut fds,
            PollTimeout::try_from(ms).unwrap_or(PollTimeout::MAX),
        ) {
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(e.into()),
            Ok(n) => return Ok(n > 0),
        }
    }
}

trait RawCompat {
    fn as_raw_fd_compat(&self) -> i32;
}

impl RawCompat for std::os::fd::BorrowedFd<'_> {
    fn as_raw_fd_compat(&self) -> i32 {
        use std::os::fd::AsRawFd;
        self.as_raw_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_round_trip() {
        for m in [
            Msg::Go,
            Msg::NeedMaps,
            Msg::Ready,
            Msg::Pid(12345),
            Msg::Hooks,
            Msg::State("{\"id\":\"x\"}".into()),
            Msg::Error("mounts[2] (/x): no such file".into()),
        ] {
            assert_eq!(decode(&encode(&m)).unwrap(), m);
        }
    }

    #[test]
    fn network_namespace_fd_arrives() {
        let (a, b) = pair().unwrap();
        let ns = std::fs::File::open("/proc/self/ns/net").unwrap();
        send_net(&a, ns.as_fd()).unwrap();
        let got = recv_net(&b).unwrap();
        let meta = |f: &std::fs::File| {
            use std::os::unix::fs::MetadataExt;
            let m = f.metadata().unwrap();
            (m.dev(), m.ino())
        };
        assert_eq!(meta(&std::fs::File::from(got)), meta(&ns));
        // Another message, or the parent gone, is an error.
        send(&a, &Msg::Go).unwrap();
        assert!(recv_net(&b).is_err());
        drop(a);
        assert!(recv_net(&b).is_err());
    }

    #[test]
    fn a_peer_that_closed_with_our_message_unread_is_still_heard() {
        let (parent, child) = pair().unwrap();
        let ns = std::fs::File::open("/proc/self/ns/net").unwrap();
        // The child fails before it reads what the parent sent, and exits.
        send(&child, &Msg::Error("mounts[0] (/proc): refused".into())).unwrap();
        send_net(&parent, ns.as_fd()).unwrap();
        drop(child);
        assert_eq!(
            recv(&parent).unwrap(),
            Some(Msg::Error("mounts[0] (/proc): refused".into()))
        );
        assert_eq!(recv(&parent).unwrap(), None);
    }

    #[test]
    fn closed_peer_reads_as_none() {
        let (a, b) = pair().unwrap();
        send(&a, &Msg::Ready).unwrap();
        drop(a);
        assert_eq!(recv(&b).unwrap(), Some(Msg::Ready));
        assert_eq!(recv(&b).unwrap(), None);
    }
}
