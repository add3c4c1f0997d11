//! The one rtnetlink request rrun makes: move a network interface into
//! another network namespace, renaming it on the way (`ip link set DEV netns
//! NS name NAME` in one atomic message).

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

const RTM_NEWLINK: u16 = 16;
const NLM_F_REQUEST: u16 = 0x01;
const NLM_F_ACK: u16 = 0x04;
const NLMSG_ERROR: u16 = 2;
const IFLA_IFNAME: u16 = 3;
const IFLA_NET_NS_FD: u16 = 28;

fn push_attr(buf: &mut Vec<u8>, kind: u16, data: &[u8]) {
    let len = 4 + data.len();
    buf.extend_from_slice(&(len as u16).to_ne_bytes());
    buf.extend_from_slice(&kind.to_ne_bytes());
    buf.extend_from_slice(data);
    while buf.len() % 4 != 0 {
        buf.push(0);
    }
}

/// Builds the RTM_NEWLINK request (pure, for testing).
fn request(ifindex: i32, netns_fd: i32, new_name: Option<&str>) -> Vec<u8> {
    let mut body = Vec::new();
    // struct ifinfomsg: family, pad, type, index, flags, change.
    body.extend_from_slice(&[libc::AF_UNSPEC as u8, 0]);
    body.extend_from_slice(&0u16.to_ne_bytes());
    body.extend_from_slice(&ifindex.to_ne_bytes());
    body.extend_from_slice(&0u32.to_ne_bytes());
    body.extend_from_slice(&0u32.to_ne_bytes());
    push_attr(&mut body, IFLA_NET_NS_FD, &(netns_fd as u32).to_ne_bytes());
    if let Some(name) = new_name {
        let mut n = name.as_bytes().to_vec();
        n.push(0);
        push_attr(&mut body, IFLA_IFNAME, &n);
    }
    let mut msg = Vec::with_capacity(16 + body.len());
    msg.extend_from_slice(&((16 + body.len()) as u32).to_ne_bytes());
    msg.extend_from_slice(&RTM_NEWLINK.to_ne_bytes());
    msg.extend_from_slice(&(NLM_F_REQUEST | NLM_F_ACK).to_ne_bytes());
    msg.extend_from_slice(&1u32.to_ne_bytes()); // sequence
    msg.extend_from_slice(&0u32.to_ne_bytes()); // port id: kernel assigns
    msg.extend(body);
    msg
}

/// Moves interface `ifindex` into the network namespace `netns`, naming it
/// `new_name` there if given.
pub fn move_link(ifindex: i32, netns: BorrowedFd<'_>, new_name: Option<&str>) -> io::Result<()> {
    // SAFETY: plain socket creation.
    let raw = unsafe {
        libc::socket(
            libc::AF_NETLINK,
            libc::SOCK_RAW | libc::SOCK_CLOEXEC,
            libc::NETLINK_ROUTE,
        )
    };
    if raw < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: we own the fd just created.
    let sock = unsafe { OwnedFd::from_raw_fd(raw) };
    let msg = request(ifindex, netns.as_raw_fd(), new_name);
    // SAFETY: sending a buffer we own to the kernel (NULL address = kernel).
    let n = unsafe { libc::send(sock.as_raw_fd(), msg.as_ptr().cast(), msg.len(), 0) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    let mut buf = [0u8; 4096];
    // SAFETY: receiving into a buffer we own.
    let n = unsafe { libc::recv(sock.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    let n = n as usize;
    if n >= 20 && u16::from_ne_bytes([buf[4], buf[5]]) == NLMSG_ERROR {
        let err = i32::from_ne_bytes([buf[16], buf[17], buf[18], buf[19]]);
        if err != 0 {
            return Err(io::Error::from_raw_os_error(-err));
        }
        return Ok(());
    }
    Err(io::Error::new(
        io::ErrorKind::InvalidData,
        "unexpected netlink answer",
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_layout_is_aligned_and_sized() {
        let m = request(7, 5, Some("eth9"));
        assert_eq!(m.len() % 4, 0);
        assert_eq!(
            u32::from_ne_bytes(m[0..4].try_into().unwrap()) as usize,
            m.len()
        );
        assert_eq!(i32::from_ne_bytes(m[20..24].try_into().unwrap()), 7);
        assert!(m.windows(5).any(|w| w == b"eth9\0"));
    }
}
