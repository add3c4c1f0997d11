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
    let buf = encode(m);
    loop {
        match socket::send(fd.as_fd().as_raw_fd_compat(), &buf, MsgFlags::MSG_NOSIGNAL) {
            Err(nix::errno::Errno::EINTR) => continue,
            r => return r.map(|_| ()).map_err(io::Error::from),
        }
    }
}

/// Receives one message; `Ok(None)` when the other side has closed.
pub fn recv(fd: impl AsFd) -> io::Result<Option<Msg>> {
    let mut buf = vec![0u8; MAX];
    loop {
        match socket::recv(fd.as_fd().as_raw_fd_compat(), &mut buf, MsgFlags::empty()) {
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(e.into()),
            Ok(0) => return Ok(None),
            Ok(n) => return decode(&buf[..n]).map(Some),
        }
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
    fn closed_peer_reads_as_none() {
        let (a, b) = pair().unwrap();
        send(&a, &Msg::Ready).unwrap();
        drop(a);
        assert_eq!(recv(&b).unwrap(), Some(Msg::Ready));
        assert_eq!(recv(&b).unwrap(), None);
    }
}
