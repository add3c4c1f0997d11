//! The few rtnetlink requests rrun makes for `linux.netDevices`: list a
//! device's addresses, move (and rename) it into another network namespace
//! in one atomic message, bring it up, and put its addresses back (the
//! kernel drops them when a device changes namespace).

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

const RTM_NEWLINK: u16 = 16;
const RTM_NEWADDR: u16 = 20;
const RTM_GETADDR: u16 = 22;
const NLM_F_REQUEST: u16 = 0x01;
const NLM_F_ACK: u16 = 0x04;
const NLM_F_EXCL: u16 = 0x200;
const NLM_F_CREATE: u16 = 0x400;
const NLM_F_DUMP: u16 = 0x300;
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const IFLA_IFNAME: u16 = 3;
const IFLA_NET_NS_FD: u16 = 28;
const IFA_ADDRESS: u16 = 1;
const IFA_LOCAL: u16 = 2;
const IFA_BROADCAST: u16 = 4;
const IFA_FLAGS: u16 = 8;
const IFA_F_PERMANENT: u8 = 0x80;
const IFF_UP: u32 = 1;

fn push_attr(buf: &mut Vec<u8>, kind: u16, data: &[u8]) {
    let len = 4 + data.len();
    buf.extend_from_slice(&(len as u16).to_ne_bytes());
    buf.extend_from_slice(&kind.to_ne_bytes());
    buf.extend_from_slice(data);
    while !buf.len().is_multiple_of(4) {
        buf.push(0);
    }
}

fn message(kind: u16, flags: u16, body: &[u8]) -> Vec<u8> {
    let mut msg = Vec::with_capacity(16 + body.len());
    msg.extend_from_slice(&((16 + body.len()) as u32).to_ne_bytes());
    msg.extend_from_slice(&kind.to_ne_bytes());
    msg.extend_from_slice(&(flags | NLM_F_REQUEST).to_ne_bytes());
    msg.extend_from_slice(&1u32.to_ne_bytes()); // sequence
    msg.extend_from_slice(&0u32.to_ne_bytes()); // port id: kernel assigns
    msg.extend_from_slice(body);
    msg
}

/// `struct ifinfomsg` for a device, with the given flag change.
fn ifinfo(index: i32, flags: u32, change: u32) -> Vec<u8> {
    let mut b = vec![libc::AF_UNSPEC as u8, 0, 0, 0];
    b.extend_from_slice(&index.to_ne_bytes());
    b.extend_from_slice(&flags.to_ne_bytes());
    b.extend_from_slice(&change.to_ne_bytes());
    b
}

/// The RTM_NEWLINK that moves (and renames) a device.
fn move_request(ifindex: i32, netns_fd: i32, new_name: Option<&str>) -> Vec<u8> {
    let mut body = ifinfo(ifindex, 0, 0);
    push_attr(&mut body, IFLA_NET_NS_FD, &(netns_fd as u32).to_ne_bytes());
    if let Some(name) = new_name {
        let mut n = name.as_bytes().to_vec();
        n.push(0);
        push_attr(&mut body, IFLA_IFNAME, &n);
    }
    message(RTM_NEWLINK, NLM_F_ACK, &body)
}

/// An rtnetlink socket in the caller's current network namespace.
pub struct Netlink(OwnedFd);

/// One address of a device: `struct ifaddrmsg` and the attributes worth
/// restoring.
#[derive(Debug, Clone)]
pub struct Address {
    family: u8,
    prefixlen: u8,
    flags: u8,
    scope: u8,
    attrs: Vec<(u16, Vec<u8>)>,
}

impl Netlink {
    pub fn open() -> io::Result<Netlink> {
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
        Ok(Netlink(unsafe { OwnedFd::from_raw_fd(raw) }))
    }

    fn send(&self, msg: &[u8]) -> io::Result<()> {
        // SAFETY: sending a buffer we own to the kernel.
        let n = unsafe { libc::send(self.0.as_raw_fd(), msg.as_ptr().cast(), msg.len(), 0) };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// Reads answers until an ack/error or the end of a dump, calling `f`
    /// with each data message (type, payload).
    fn receive(&self, mut f: impl FnMut(u16, &[u8])) -> io::Result<()> {
        let mut buf = vec![0u8; 32768];
        loop {
            // SAFETY: receiving into a buffer we own.
            let n =
                unsafe { libc::recv(self.0.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
            if n < 0 {
                return Err(io::Error::last_os_error());
            }
            let mut off = 0usize;
            let n = n as usize;
            while off + 16 <= n {
                let len = u32::from_ne_bytes(buf[off..off + 4].try_into().unwrap()) as usize;
                let kind = u16::from_ne_bytes(buf[off + 4..off + 6].try_into().unwrap());
                if len < 16 || off + len > n {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        "bad netlink message",
                    ));
                }
                let payload = &buf[off + 16..off + len];
                match kind {
                    NLMSG_DONE => return Ok(()),
                    NLMSG_ERROR => {
                        let err = i32::from_ne_bytes(payload[0..4].try_into().unwrap());
                        return if err == 0 {
                            Ok(())
                        } else {
                            Err(io::Error::from_raw_os_error(-err))
                        };
                    }
                    _ => f(kind, payload),
                }
                off += (len + 3) & !3;
            }
        }
    }

    fn request(&self, msg: &[u8]) -> io::Result<()> {
        self.send(msg)?;
        self.receive(|_, _| {})
    }

    /// Moves interface `ifindex` into the network namespace `netns`, named
    /// `new_name` there.
    pub fn move_link(&self, ifindex: i32, netns: BorrowedFd<'_>, new_name: &str) -> io::Result<()> {
        self.request(&move_request(ifindex, netns.as_raw_fd(), Some(new_name)))
    }

    /// Sets a device up.
    pub fn set_up(&self, ifindex: i32) -> io::Result<()> {
        self.request(&message(
            RTM_NEWLINK,
            NLM_F_ACK,
            &ifinfo(ifindex, IFF_UP, IFF_UP),
        ))
    }

    /// The permanent, global addresses of a device.
    pub fn addresses(&self, ifindex: i32) -> io::Result<Vec<Address>> {
        let body = [libc::AF_UNSPEC as u8, 0, 0, 0, 0, 0, 0, 0];
        self.send(&message(RTM_GETADDR, NLM_F_DUMP, &body))?;
        let mut out = Vec::new();
        self.receive(|kind, p| {
            if kind != RTM_NEWADDR || p.len() < 8 {
                return;
            }
            let index = u32::from_ne_bytes(p[4..8].try_into().unwrap()) as i32;
            let (family, prefixlen, flags, scope) = (p[0], p[1], p[2], p[3]);
            if index != ifindex || scope != 0 || flags & IFA_F_PERMANENT == 0 {
                return;
            }
            let mut attrs = Vec::new();
            let mut off = 8;
            while off + 4 <= p.len() {
                let len = u16::from_ne_bytes(p[off..off + 2].try_into().unwrap()) as usize;
                let kind = u16::from_ne_bytes(p[off + 2..off + 4].try_into().unwrap());
                if len < 4 || off + len > p.len() {
                    break;
                }
                if matches!(kind, IFA_ADDRESS | IFA_LOCAL | IFA_BROADCAST | IFA_FLAGS) {
                    attrs.push((kind, p[off + 4..off + len].to_vec()));
                }
                off += (len + 3) & !3;
            }
            out.push(Address {
                family,
                prefixlen,
                flags,
                scope,
                attrs,
            });
        })?;
        Ok(out)
    }

    /// Adds an address to a device.
    pub fn add_address(&self, ifindex: i32, a: &Address) -> io::Result<()> {
        let mut body = vec![a.family, a.prefixlen, a.flags, a.scope];
        body.extend_from_slice(&(ifindex as u32).to_ne_bytes());
        for (kind, data) in &a.attrs {
            push_attr(&mut body, *kind, data);
        }
        self.request(&message(
            RTM_NEWADDR,
            NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL,
            &body,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn move_request_layout_is_aligned_and_sized() {
        let m = move_request(7, 5, Some("eth9"));
        assert_eq!(m.len() % 4, 0);
        assert_eq!(
            u32::from_ne_bytes(m[0..4].try_into().unwrap()) as usize,
            m.len()
        );
        assert_eq!(i32::from_ne_bytes(m[20..24].try_into().unwrap()), 7);
        assert!(m.windows(5).any(|w| w == b"eth9\0"));
    }
}
