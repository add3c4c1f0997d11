//! A console socket receiver standing in for an engine's, shared by the
//! terminal and rootless tests.

use std::fs;
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const T: Duration = Duration::from_secs(10);

// ---------------------------------------------------------------------------
// The console socket receiver
// ---------------------------------------------------------------------------

/// A listening unix socket standing in for an engine's console socket. The
/// runtime's `connect` completes against the listen backlog, so the test
/// can accept after the runtime command returned: no thread needed.
pub struct ConsoleSocket {
    path: PathBuf,
    listener: UnixListener,
}

/// What one console socket message carried.
pub struct Received {
    /// The message's bytes (runc sends the name "/dev/ptmx").
    pub name: String,
    pub fds: Vec<OwnedFd>,
}

impl ConsoleSocket {
    pub fn bind(dir: &Path) -> ConsoleSocket {
        let path = dir.join("console.sock");
        let listener = UnixListener::bind(&path).expect("bind the console socket");
        listener.set_nonblocking(true).unwrap();
        ConsoleSocket { path, listener }
    }

    pub fn path_str(&self) -> &str {
        self.path.to_str().unwrap()
    }

    /// Accepts one connection, waiting at most `timeout`.
    pub fn accept(&self, timeout: Duration) -> Option<UnixStream> {
        let start = Instant::now();
        loop {
            match self.listener.accept() {
                Ok((s, _)) => return Some(s),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(e) => panic!("accept on the console socket: {e}"),
            }
            if start.elapsed() > timeout {
                return None;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Accepts the runtime's connection and receives one message with its
    /// fds.
    pub fn receive(&self) -> Received {
        let got = super::accept_one_message(&self.listener, 4096, T)
            .unwrap_or_else(|e| panic!("the console socket: {e}"));
        Received {
            name: String::from_utf8_lossy(&got.bytes).into_owned(),
            fds: got.fds,
        }
    }

    /// The single pty master of one message, checked to be a pty master.
    pub fn receive_master(&self) -> OwnedFd {
        let r = self.receive();
        assert_eq!(
            r.fds.len(),
            1,
            "the console message (name {:?}) must carry exactly one fd",
            r.name
        );
        let master = r.fds.into_iter().next().unwrap();
        let st = nix::sys::stat::fstat(&master).unwrap();
        assert_eq!(
            st.st_mode & libc::S_IFMT,
            libc::S_IFCHR,
            "the fd is not a character device"
        );
        assert_eq!(
            (libc::major(st.st_rdev), libc::minor(st.st_rdev)),
            (5, 2),
            "the fd is not a ptmx (pty master)"
        );
        master
    }
}

impl Drop for ConsoleSocket {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.path);
    }
}

/// Reads the master until `needle` shows up (or EOF/EIO, or `timeout`);
/// returns everything read with `\r\n` turned into `\n`.
pub fn read_until(master: BorrowedFd<'_>, needle: &str, timeout: Duration) -> String {
    let start = Instant::now();
    let mut data = Vec::new();
    while !String::from_utf8_lossy(&data).contains(needle) {
        let left = timeout.saturating_sub(start.elapsed());
        if left.is_zero() {
            break;
        }
        let mut pfd = libc::pollfd {
            fd: master.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: poll on one valid pollfd.
        let r = unsafe { libc::poll(&mut pfd, 1, left.as_millis().min(1000) as i32) };
        if r <= 0 {
            continue;
        }
        let mut buf = [0u8; 4096];
        // SAFETY: read into a local buffer.
        let n = unsafe { libc::read(master.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
        if n <= 0 {
            break;
        }
        data.extend_from_slice(&buf[..n as usize]);
    }
    String::from_utf8_lossy(&data).replace("\r\n", "\n")
}
