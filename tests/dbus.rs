//! rrun's D-Bus client (src/dbus.rs) against a real, private `dbus-daemon`.
//!
//! Each test starts its own daemon on a socket in its own temp dir, with a
//! minimal config (no service activation), and kills it when done, even
//! when the test fails.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use rrun::dbus::{Bus, DbusError, Signal, Value};

const DAEMON: &str = "/usr/bin/dbus-daemon";
const BUS: &str = "org.freedesktop.DBus";
const BUS_PATH: &str = "/org/freedesktop/DBus";

/// A unique name for this test process (temp dirs, abstract sockets).
fn unique(what: &str) -> String {
    static N: AtomicUsize = AtomicUsize::new(0);
    let n = N.fetch_add(1, Ordering::SeqCst);
    format!("rrun-test-dbus-{what}-{}-{n}", std::process::id())
}

/// A temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> TempDir {
        let dir = std::env::temp_dir().join(unique("dir"));
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A private bus: the daemon and its temp dir, both gone on drop.
struct Daemon {
    child: Child,
    address: String,
    _dir: TempDir,
}

impl Daemon {
    /// Starts a daemon listening on `listen` (a D-Bus address; `{dir}` is
    /// replaced by the temp dir), or None when dbus-daemon is not installed.
    fn start(listen: &str) -> Option<Daemon> {
        if !Path::new(DAEMON).exists() {
            eprintln!("skipped: {DAEMON} is not installed");
            return None;
        }
        let dir = TempDir::new();
        let listen = listen.replace("{dir}", dir.0.to_str().unwrap());
        let config = format!(
            r#"<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>session</type>
  <listen>{listen}</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow send_destination="*" eavesdrop="true"/>
    <allow eavesdrop="true"/>
    <allow own="*"/>
  </policy>
</busconfig>
"#
        );
        let config_path = dir.0.join("bus.conf");
        std::fs::write(&config_path, config).unwrap();
        let child = Command::new(DAEMON)
            .arg(format!("--config-file={}", config_path.display()))
            .args(["--nofork", "--nopidfile", "--print-address=1"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut d = Daemon {
            child,
            address: String::new(),
            _dir: dir,
        };
        // The daemon prints its address once it listens.
        let stdout = d.child.stdout.take().unwrap();
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).unwrap();
        d.address = line.trim().to_string();
        assert!(!d.address.is_empty(), "dbus-daemon printed no address");
        Some(d)
    }

    fn connect(&self) -> Bus {
        Bus::connect(&self.address).unwrap()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn bus_call(bus: &mut Bus, member: &str, args: &[Value]) -> anyhow::Result<Vec<Value>> {
    bus.call(BUS, BUS_PATH, BUS, member, args)
}

fn names(bus: &mut Bus) -> Vec<String> {
    let reply = bus_call(bus, "ListNames", &[]).unwrap();
    let items = reply[0].as_slice().unwrap();
    items
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect()
}

fn owner(bus: &mut Bus, name: &str) -> String {
    let reply = bus_call(bus, "GetNameOwner", &[Value::str(name)]).unwrap();
    reply[0].as_str().unwrap().to_string()
}

fn name_owner_changed(s: &Signal, name: &str, new_owner: &str) -> bool {
    let args: Vec<&str> = s.args.iter().filter_map(Value::as_str).collect();
    s.member == "NameOwnerChanged" && args.len() == 3 && args[0] == name && args[2] == new_owner
}

const NAME_OWNER_CHANGED: &str =
    "type='signal',sender='org.freedesktop.DBus',interface='org.freedesktop.DBus',member='NameOwnerChanged'";

#[test]
fn hello_gives_a_unique_name_that_the_bus_lists_and_owns() {
    let Some(d) = Daemon::start("unix:path={dir}/bus") else {
        return;
    };
    let mut bus = d.connect();
    let me = bus.unique_name().to_string();
    assert!(me.starts_with(':'), "unique name {me:?}");
    let listed = names(&mut bus);
    assert!(listed.contains(&me), "{me} not in {listed:?}");
    assert!(listed.iter().any(|n| n == BUS), "{listed:?}");
    assert_eq!(owner(&mut bus, &me), me);
}

#[test]
fn request_name_makes_the_connection_owner_of_a_well_known_name() {
    let Some(d) = Daemon::start("unix:path={dir}/bus") else {
        return;
    };
    let mut bus = d.connect();
    let reply = bus_call(
        &mut bus,
        "RequestName",
        &[Value::str("org.rrun.Test"), Value::U32(0)],
    )
    .unwrap();
    assert_eq!(
        reply,
        [Value::U32(1)],
        "DBUS_REQUEST_NAME_REPLY_PRIMARY_OWNER"
    );
    let me = bus.unique_name().to_string();
    assert_eq!(owner(&mut bus, "org.rrun.Test"), me);
    assert!(names(&mut bus).contains(&"org.rrun.Test".to_string()));
}

#[test]
fn error_reply_is_an_error_carrying_its_dbus_name() {
    let Some(d) = Daemon::start("unix:path={dir}/bus") else {
        return;
    };
    let mut bus = d.connect();
    let e = bus_call(&mut bus, "NoSuchMethod", &[]).unwrap_err();
    let de = e.downcast_ref::<DbusError>().expect("a DbusError");
    assert_eq!(de.name, "org.freedesktop.DBus.Error.UnknownMethod");
    assert!(
        e.to_string()
            .starts_with("org.freedesktop.DBus.Error.UnknownMethod: "),
        "{e}"
    );

    let e = bus
        .call("org.rrun.Nobody", "/", "org.rrun.Nobody", "Ping", &[])
        .unwrap_err();
    let de = e.downcast_ref::<DbusError>().expect("a DbusError");
    assert_eq!(de.name, "org.freedesktop.DBus.Error.ServiceUnknown", "{e}");

    // Wrong argument types come back as an error too, and the connection
    // stays usable after all of them.
    let e = bus_call(&mut bus, "GetNameOwner", &[Value::U32(1)]).unwrap_err();
    assert!(e.downcast_ref::<DbusError>().is_some(), "{e}");
    let me = bus.unique_name().to_string();
    assert_eq!(owner(&mut bus, &me), me);
}

#[test]
fn name_owner_changed_signals_arrive_when_a_peer_connects_and_leaves() {
    let Some(d) = Daemon::start("unix:path={dir}/bus") else {
        return;
    };
    let mut bus = d.connect();
    bus.add_match(NAME_OWNER_CHANGED).unwrap();
    let peer = d.connect();
    let name = peer.unique_name().to_string();
    let s = bus
        .wait_signal(Duration::from_secs(10), |s| {
            name_owner_changed(s, &name, &name)
        })
        .unwrap();
    assert_eq!((s.path.as_str(), s.iface.as_str()), (BUS_PATH, BUS));
    drop(peer);
    bus.wait_signal(Duration::from_secs(10), |s| {
        name_owner_changed(s, &name, "")
    })
    .unwrap();
}

#[test]
fn signal_arriving_during_a_call_is_queued_for_wait_signal() {
    let Some(d) = Daemon::start("unix:path={dir}/bus") else {
        return;
    };
    let mut bus = d.connect();
    bus.add_match(NAME_OWNER_CHANGED).unwrap();
    // The bus sends us the signal while the peer says Hello, so before it
    // answers our next call: the call reads it and must keep it.
    let peer = d.connect();
    let name = peer.unique_name().to_string();
    names(&mut bus);
    let s = bus
        .wait_signal(Duration::ZERO, |s| name_owner_changed(s, &name, &name))
        .unwrap();
    assert_eq!(s.args[0].as_str(), Some(name.as_str()));
}

#[test]
fn wait_signal_times_out_with_an_error_when_nothing_comes() {
    let Some(d) = Daemon::start("unix:path={dir}/bus") else {
        return;
    };
    let mut bus = d.connect();
    bus.add_match(NAME_OWNER_CHANGED).unwrap();
    // (The bus did send us one signal: NameAcquired for our unique name.)
    let start = Instant::now();
    let e = bus
        .wait_signal(Duration::from_millis(300), |s| {
            s.member == "NameOwnerChanged"
        })
        .unwrap_err();
    let took = start.elapsed();
    assert!(
        e.to_string().contains("no D-Bus signal within 300ms"),
        "{e}"
    );
    assert!(
        took >= Duration::from_millis(300),
        "returned after {took:?}"
    );
    assert!(took < Duration::from_secs(5), "returned after {took:?}");
}

#[test]
fn connects_over_an_abstract_socket_after_an_unusable_entry() {
    let name = unique("abstract");
    let Some(d) = Daemon::start(&format!("unix:abstract={name}")) else {
        return;
    };
    let address = format!("unix:path=/nonexistent/rrun-bus;{}", d.address);
    let mut bus = Bus::connect(&address).unwrap();
    let me = bus.unique_name().to_string();
    assert_eq!(owner(&mut bus, &me), me);
}

#[test]
fn connect_error_names_the_address() {
    let e = Bus::connect("unix:path=/nonexistent/rrun-bus")
        .err()
        .unwrap();
    let msg = format!("{e:#}");
    assert!(msg.contains("unix:path=/nonexistent/rrun-bus"), "{msg}");
    let e = Bus::connect("tcp:host=localhost,port=1").err().unwrap();
    let msg = format!("{e:#}");
    assert!(
        msg.contains("tcp:host=localhost,port=1") && msg.contains("unix:path="),
        "{msg}"
    );
}

#[test]
fn method_call_addressed_to_us_is_answered_with_unknown_method() {
    let Some(d) = Daemon::start("unix:path={dir}/bus") else {
        return;
    };
    let mut bus = d.connect();
    let me = bus.unique_name().to_string();
    let address = d.address.clone();
    // The peer calls us from a thread while we read the bus.
    let peer = std::thread::spawn(move || {
        let mut peer = Bus::connect(&address).unwrap();
        peer.set_timeout(Duration::from_secs(10)).unwrap();
        peer.call(&me, "/", "org.rrun.Test", "Ping", &[])
    });
    let _ = bus.wait_signal(Duration::from_secs(2), |_| false);
    let e = peer.join().unwrap().unwrap_err();
    let de = e.downcast_ref::<DbusError>().expect("a DbusError");
    assert_eq!(de.name, "org.freedesktop.DBus.Error.UnknownMethod", "{e}");
}

/// A fake bus that authenticates anyone, reads the Hello, answers with
/// `reply` and hangs up: what a broken or hostile peer can send.
fn fake_bus_replying(reply: &'static [u8]) -> anyhow::Result<Bus> {
    let dir = TempDir::new();
    let path = dir.0.join("bus");
    let listener = UnixListener::bind(&path).unwrap();
    let server = std::thread::spawn(move || {
        let (mut conn, _) = listener.accept().unwrap();
        let read_until = |conn: &mut UnixStream, what: &[u8]| {
            let (mut buf, mut seen) = ([0u8; 4096], Vec::new());
            while !seen.windows(what.len()).any(|w| w == what) {
                let n = conn.read(&mut buf).unwrap();
                assert!(n > 0, "client hung up");
                seen.extend_from_slice(&buf[..n]);
            }
        };
        read_until(&mut conn, b"\r\n");
        conn.write_all(b"OK 0123456789abcdef0123456789abcdef\r\n")
            .unwrap();
        read_until(&mut conn, b"Hello");
        conn.write_all(reply).unwrap();
    });
    let bus = Bus::connect(&format!("unix:path={}", path.display()));
    server.join().unwrap();
    bus
}

#[test]
fn hostile_bus_claiming_a_huge_message_is_an_error_not_an_allocation() {
    let head: &[u8] = &[
        b'l', 2, 0, 1, 0xff, 0xff, 0xff, 0xff, 1, 0, 0, 0, 0, 0, 0, 0,
    ];
    let e = fake_bus_replying(head).err().unwrap();
    assert!(format!("{e:#}").contains("over the"), "{e:#}");
}

#[test]
fn bus_hanging_up_mid_message_is_an_error_not_a_hang() {
    let start = Instant::now();
    let e = fake_bus_replying(&[b'l', 2, 0, 1, 8, 0, 0, 0])
        .err()
        .unwrap();
    assert!(format!("{e:#}").contains("closed the connection"), "{e:#}");
    assert!(start.elapsed() < Duration::from_secs(5));
}
