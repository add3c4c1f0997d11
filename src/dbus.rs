//! A minimal synchronous D-Bus client, for the systemd cgroup driver.
//!
//! Why it exists: the driver needs a handful of `org.freedesktop.systemd1`
//! calls and one signal (`JobRemoved`). rrun's launch path is single-threaded
//! and its binary static and small; `zbus` brings an async stack and the
//! `dbus` crate links libdbus, so rrun speaks the wire protocol itself.
//!
//! What it supports: `unix:path=` and `unix:abstract=` addresses (the first
//! entry of a `;` list that connects), SASL `EXTERNAL` authentication as the
//! effective uid, method calls with their replies and errors, `AddMatch` and
//! signals. Values: every type of the specification but unix fds (`h`), i.e.
//! `y b n q i u x t d s o g a ( ) { } v`. Outgoing messages are
//! little-endian; incoming ones may be either.
//!
//! What it does not: fd passing, TCP, other authentication mechanisms,
//! serving methods (calls addressed to us are answered with `UnknownMethod`).
//!
//! A hostile or broken peer cannot crash or hang rrun: every read polls with
//! the time left, every write has a timeout, and incoming messages are
//! bounded in size ([`MAX_MESSAGE`]), nesting depth and number of values.
//! After an I/O or protocol error the connection should be dropped.

use std::collections::VecDeque;
use std::ffi::OsStr;
use std::fmt;
use std::io::{ErrorKind, Read};
use std::os::fd::{AsFd, AsRawFd};
use std::os::linux::net::SocketAddrExt;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::net::{SocketAddr, UnixStream};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use nix::errno::Errno;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::socket::{send, MsgFlags};

/// Largest incoming message accepted (the specification allows 128 MiB;
/// rrun's replies are a few KiB).
pub const MAX_MESSAGE: usize = 16 << 20;
/// Most values one incoming message may decode to (bounds memory: a value
/// takes some 56 bytes where its wire form may take one).
const MAX_VALUES: usize = 1 << 18;
/// Containers (arrays, structs, dict entries, variants) nested in one value.
const MAX_DEPTH: usize = 64;
/// Signals kept for [`Bus::wait_signal`]; beyond this the oldest is dropped.
const MAX_QUEUED: usize = 4096;
/// How long a call waits for its reply, as libdbus and sd-bus do.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(25);

const METHOD_CALL: u8 = 1;
const METHOD_RETURN: u8 = 2;
const ERROR: u8 = 3;
const SIGNAL: u8 = 4;
const NO_REPLY_EXPECTED: u8 = 1;

const BUS_NAME: &str = "org.freedesktop.DBus";
const BUS_PATH: &str = "/org/freedesktop/DBus";

/// One D-Bus value. A dict (`a{sv}`) is an `Array` whose `elem` is `{sv}`
/// and whose items are `DictEntry`s.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Byte(u8),
    Bool(bool),
    I16(i16),
    U16(u16),
    I32(i32),
    U32(u32),
    I64(i64),
    U64(u64),
    F64(f64),
    Str(String),
    Path(String),
    Sig(String),
    /// `elem` is the signature of every item (needed when there are none).
    Array {
        elem: String,
        items: Vec<Value>,
    },
    Struct(Vec<Value>),
    DictEntry(Box<Value>, Box<Value>),
    Variant(Box<Value>),
}

impl Value {
    pub fn str(s: impl Into<String>) -> Value {
        Value::Str(s.into())
    }
    pub fn path(s: impl Into<String>) -> Value {
        Value::Path(s.into())
    }
    pub fn variant(v: Value) -> Value {
        Value::Variant(Box::new(v))
    }
    pub fn array_of(elem: &str, items: Vec<Value>) -> Value {
        Value::Array {
            elem: elem.to_string(),
            items,
        }
    }
    /// An `a{KV}` dict from key and value signatures and its entries.
    pub fn dict(key: &str, val: &str, entries: Vec<(Value, Value)>) -> Value {
        let items = entries
            .into_iter()
            .map(|(k, v)| Value::DictEntry(Box::new(k), Box::new(v)))
            .collect();
        Value::array_of(&format!("{{{key}{val}}}"), items)
    }

    /// The value's D-Bus type signature, e.g. `a(sv)`.
    pub fn signature(&self) -> String {
        let mut s = String::new();
        self.write_sig(&mut s);
        s
    }

    fn write_sig(&self, s: &mut String) {
        use Value::*;
        let c = match self {
            Byte(_) => 'y',
            Bool(_) => 'b',
            I16(_) => 'n',
            U16(_) => 'q',
            I32(_) => 'i',
            U32(_) => 'u',
            I64(_) => 'x',
            U64(_) => 't',
            F64(_) => 'd',
            Str(_) => 's',
            Path(_) => 'o',
            Sig(_) => 'g',
            Variant(_) => 'v',
            Array { elem, .. } => {
                s.push('a');
                s.push_str(elem);
                return;
            }
            Struct(fields) => {
                s.push('(');
                fields.iter().for_each(|f| f.write_sig(s));
                s.push(')');
                return;
            }
            DictEntry(k, v) => {
                s.push('{');
                k.write_sig(s);
                v.write_sig(s);
                s.push('}');
                return;
            }
        };
        s.push(c);
    }

    /// The text of a string, object path or signature.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) | Value::Path(s) | Value::Sig(s) => Some(s),
            _ => None,
        }
    }
    /// Any unsigned integer, widened.
    pub fn as_u64(&self) -> Option<u64> {
        match *self {
            Value::Byte(n) => Some(n.into()),
            Value::U16(n) => Some(n.into()),
            Value::U32(n) => Some(n.into()),
            Value::U64(n) => Some(n),
            _ => None,
        }
    }
    /// The items of an array or the fields of a struct.
    pub fn as_slice(&self) -> Option<&[Value]> {
        match self {
            Value::Array { items, .. } => Some(items),
            Value::Struct(fields) => Some(fields),
            _ => None,
        }
    }
    /// The content of a variant (variants nested in variants unwrapped).
    pub fn unvariant(&self) -> &Value {
        match self {
            Value::Variant(v) => v.unvariant(),
            v => v,
        }
    }
}

/// An ERROR reply: downcast an error from [`Bus::call`] to this to see the
/// error name, e.g. `org.freedesktop.systemd1.UnitExists`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DbusError {
    pub name: String,
    pub message: String,
}

impl fmt::Display for DbusError {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        match self.message.is_empty() {
            true => f.write_str(&self.name),
            false => write!(f, "{}: {}", self.name, self.message),
        }
    }
}

impl std::error::Error for DbusError {}

/// A signal received after [`Bus::add_match`].
#[derive(Debug, Clone, PartialEq)]
pub struct Signal {
    /// The unique name of the connection that sent it.
    pub sender: String,
    pub path: String,
    pub iface: String,
    pub member: String,
    pub args: Vec<Value>,
}

// ---------------------------------------------------------------------------
// Signatures
// ---------------------------------------------------------------------------

const BASIC: &[u8] = b"ybnqiuxtdsog";

/// Splits a signature into its complete types, checking it as the
/// specification does (at most 255 bytes, 32 nested arrays and 32 nested
/// structs, dict entries only in arrays with a basic key, no empty struct).
pub fn split_signature(sig: &str) -> Result<Vec<&str>> {
    let b = sig.as_bytes();
    if b.len() > 255 {
        bail!("invalid D-Bus signature: longer than 255 bytes");
    }
    let mut types = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let end = complete_type(b, i, 0, 0)
            .with_context(|| format!("invalid D-Bus signature {sig:?}"))?;
        types.push(&sig[i..end]);
        i = end;
    }
    Ok(types)
}

/// The end of the complete type starting at `b[i]`.
fn complete_type(b: &[u8], i: usize, arrays: u32, structs: u32) -> Result<usize> {
    match b.get(i) {
        None => bail!("it ends inside a container"),
        Some(c) if BASIC.contains(c) || *c == b'v' => Ok(i + 1),
        Some(b'a') if arrays >= 32 => bail!("more than 32 nested arrays"),
        Some(b'a') if b.get(i + 1) == Some(&b'{') => {
            if structs >= 32 {
                bail!("more than 32 nested structs");
            }
            if !b.get(i + 2).is_some_and(|c| BASIC.contains(c)) {
                bail!("a dict entry's key must be a basic type");
            }
            let end = complete_type(b, i + 3, arrays + 1, structs + 1)?;
            if b.get(end) != Some(&b'}') {
                bail!("a dict entry must hold exactly two types");
            }
            Ok(end + 1)
        }
        Some(b'a') => complete_type(b, i + 1, arrays + 1, structs),
        Some(b'(') if structs >= 32 => bail!("more than 32 nested structs"),
        Some(b'(') if b.get(i + 1) == Some(&b')') => bail!("empty struct"),
        Some(b'(') => {
            let mut j = i + 1;
            while b.get(j) != Some(&b')') {
                j = complete_type(b, j, arrays, structs + 1)?;
            }
            Ok(j + 1)
        }
        Some(&c) => bail!("unexpected {:?} at byte {i}", c as char),
    }
}

/// Alignment of the type whose signature starts with `code`.
fn align_of(code: u8) -> usize {
    match code {
        b'y' | b'g' | b'v' => 1,
        b'n' | b'q' => 2,
        b'x' | b't' | b'd' | b'(' | b'{' => 8,
        _ => 4,
    }
}

// ---------------------------------------------------------------------------
// Marshalling (always little-endian)
// ---------------------------------------------------------------------------

/// Marshals `args` as a message body (which starts 8-aligned).
pub fn marshal(args: &[Value]) -> Result<Vec<u8>> {
    let sig: String = args.iter().map(Value::signature).collect();
    split_signature(&sig)?;
    let mut e = Enc(Vec::new());
    args.iter().try_for_each(|a| e.value(a, 0))?;
    Ok(e.0)
}

struct Enc(Vec<u8>);

impl Enc {
    fn pad(&mut self, align: usize) {
        self.0.resize(self.0.len().next_multiple_of(align), 0);
    }
    fn put(&mut self, align: usize, bytes: &[u8]) {
        self.pad(align);
        self.0.extend_from_slice(bytes);
    }
    fn text(&mut self, s: &str) -> Result<()> {
        if s.contains('\0') {
            bail!("D-Bus string {s:?} contains a NUL byte");
        }
        self.put(4, &(s.len() as u32).to_le_bytes());
        self.0.extend_from_slice(s.as_bytes());
        self.0.push(0);
        Ok(())
    }
    fn sig(&mut self, s: &str) -> Result<()> {
        split_signature(s)?;
        self.0.push(s.len() as u8);
        self.0.extend_from_slice(s.as_bytes());
        self.0.push(0);
        Ok(())
    }

    fn value(&mut self, v: &Value, depth: usize) -> Result<()> {
        use Value::*;
        if depth > MAX_DEPTH {
            bail!("D-Bus value nested more than {MAX_DEPTH} deep");
        }
        match v {
            Byte(n) => self.0.push(*n),
            Bool(b) => self.put(4, &u32::from(*b).to_le_bytes()),
            I16(n) => self.put(2, &n.to_le_bytes()),
            U16(n) => self.put(2, &n.to_le_bytes()),
            I32(n) => self.put(4, &n.to_le_bytes()),
            U32(n) => self.put(4, &n.to_le_bytes()),
            I64(n) => self.put(8, &n.to_le_bytes()),
            U64(n) => self.put(8, &n.to_le_bytes()),
            F64(n) => self.put(8, &n.to_le_bytes()),
            Str(s) => self.text(s)?,
            Path(p) => {
                if !valid_path(p) {
                    bail!("invalid D-Bus object path {p:?}");
                }
                self.text(p)?
            }
            Sig(s) => self.sig(s)?,
            Array { elem, items } => {
                if split_signature(&format!("a{elem}"))?.len() != 1 {
                    bail!("invalid D-Bus array element signature {elem:?}");
                }
                self.pad(4);
                let at = self.0.len();
                self.0.extend_from_slice(&[0; 4]);
                self.pad(align_of(elem.as_bytes()[0]));
                let start = self.0.len();
                for item in items {
                    if item.signature() != *elem {
                        bail!("D-Bus array of {elem} holds a {}", item.signature());
                    }
                    self.value(item, depth + 1)?;
                }
                let len = u32::try_from(self.0.len() - start)
                    .ok()
                    .filter(|&n| n <= 1 << 26)
                    .ok_or_else(|| anyhow!("D-Bus array of {elem} is over 64 MiB"))?;
                self.0[at..at + 4].copy_from_slice(&len.to_le_bytes());
            }
            Struct(fields) => {
                if fields.is_empty() {
                    bail!("empty D-Bus struct");
                }
                self.pad(8);
                fields.iter().try_for_each(|f| self.value(f, depth + 1))?;
            }
            DictEntry(k, v) => {
                self.pad(8);
                self.value(k, depth + 1)?;
                self.value(v, depth + 1)?;
            }
            Variant(inner) => {
                self.sig(&inner.signature())?;
                self.value(inner, depth + 1)?;
            }
        }
        Ok(())
    }
}

fn valid_path(p: &str) -> bool {
    p == "/"
        || (p.starts_with('/')
            && p[1..].split('/').all(|e| {
                !e.is_empty() && e.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'_')
            }))
}

// ---------------------------------------------------------------------------
// Unmarshalling (either byte order, bounded)
// ---------------------------------------------------------------------------

/// Unmarshals a little-endian message body of signature `sig`.
pub fn unmarshal(sig: &str, body: &[u8]) -> Result<Vec<Value>> {
    let mut d = Dec::new(body, false);
    d.body(sig)
}

struct Dec<'a> {
    b: &'a [u8],
    pos: usize,
    big_endian: bool,
    values: usize,
}

impl<'a> Dec<'a> {
    fn new(b: &'a [u8], big_endian: bool) -> Self {
        Dec {
            b,
            pos: 0,
            big_endian,
            values: 0,
        }
    }

    /// All of `b` as the values of `sig`.
    fn body(&mut self, sig: &str) -> Result<Vec<Value>> {
        let values = split_signature(sig)?
            .into_iter()
            .map(|t| self.value(t, 0))
            .collect::<Result<Vec<_>>>()?;
        if self.pos != self.b.len() {
            bail!(
                "D-Bus body has {} bytes after its values",
                self.b.len() - self.pos
            );
        }
        Ok(values)
    }

    /// `n` bytes after zero padding to `align`.
    fn take(&mut self, align: usize, n: usize) -> Result<&'a [u8]> {
        let start = self.pos.next_multiple_of(align);
        let end = start
            .checked_add(n)
            .filter(|&end| end <= self.b.len())
            .ok_or_else(|| anyhow!("D-Bus message truncated at byte {}", self.pos))?;
        if self.b[self.pos..start].iter().any(|&c| c != 0) {
            bail!("D-Bus message has non-zero padding at byte {}", self.pos);
        }
        self.pos = end;
        Ok(&self.b[start..end])
    }

    /// An `N`-byte number, as little-endian bytes.
    fn num<const N: usize>(&mut self) -> Result<[u8; N]> {
        let mut a: [u8; N] = self.take(N, N)?.try_into()?;
        if self.big_endian {
            a.reverse();
        }
        Ok(a)
    }

    fn u32(&mut self) -> Result<u32> {
        Ok(u32::from_le_bytes(self.num()?))
    }

    /// `len` bytes of UTF-8 and a NUL.
    fn text(&mut self, len: usize) -> Result<String> {
        let b = self.take(1, len.saturating_add(1))?;
        let s = std::str::from_utf8(&b[..len]).context("D-Bus string is not UTF-8")?;
        if b[len] != 0 || s.contains('\0') {
            bail!("D-Bus string is not NUL-terminated or contains a NUL");
        }
        Ok(s.to_string())
    }

    fn sig(&mut self) -> Result<String> {
        let len = self.take(1, 1)?[0];
        let s = self.text(len.into())?;
        split_signature(&s)?;
        Ok(s)
    }

    /// One value of the complete, already checked type `t`.
    fn value(&mut self, t: &str, depth: usize) -> Result<Value> {
        use Value::*;
        self.values += 1;
        if self.values > MAX_VALUES {
            bail!("D-Bus message holds more than {MAX_VALUES} values");
        }
        if depth > MAX_DEPTH {
            bail!("D-Bus value nested more than {MAX_DEPTH} deep");
        }
        let inner = &t[1..];
        Ok(match t.as_bytes()[0] {
            b'y' => Byte(self.take(1, 1)?[0]),
            b'b' => match self.u32()? {
                0 => Bool(false),
                1 => Bool(true),
                n => bail!("D-Bus boolean is {n}"),
            },
            b'n' => I16(i16::from_le_bytes(self.num()?)),
            b'q' => U16(u16::from_le_bytes(self.num()?)),
            b'i' => I32(i32::from_le_bytes(self.num()?)),
            b'u' => U32(self.u32()?),
            b'x' => I64(i64::from_le_bytes(self.num()?)),
            b't' => U64(u64::from_le_bytes(self.num()?)),
            b'd' => F64(f64::from_le_bytes(self.num()?)),
            b's' => Str(self.u32().and_then(|n| self.text(n as usize))?),
            b'o' => Path(self.u32().and_then(|n| self.text(n as usize))?),
            b'g' => Sig(self.sig()?),
            b'a' => {
                let len = self.u32()? as usize;
                if len > 1 << 26 {
                    bail!("D-Bus array of {len} bytes is over 64 MiB");
                }
                self.take(align_of(inner.as_bytes()[0]), 0)?;
                let end = self.pos + len;
                if end > self.b.len() {
                    bail!("D-Bus array of {len} bytes overruns its message");
                }
                let mut items = Vec::new();
                while self.pos < end {
                    items.push(self.value(inner, depth + 1)?);
                }
                if self.pos != end {
                    bail!("D-Bus array element overruns its array");
                }
                Array {
                    elem: inner.to_string(),
                    items,
                }
            }
            b'(' => {
                self.take(8, 0)?;
                let fields = split_signature(&inner[..inner.len() - 1])?;
                Struct(
                    fields
                        .into_iter()
                        .map(|f| self.value(f, depth + 1))
                        .collect::<Result<_>>()?,
                )
            }
            b'{' => {
                self.take(8, 0)?;
                let k = self.value(&inner[..1], depth + 1)?;
                let v = self.value(&inner[1..inner.len() - 1], depth + 1)?;
                DictEntry(Box::new(k), Box::new(v))
            }
            b'v' => {
                let s = self.sig()?;
                match split_signature(&s)?[..] {
                    [one] => Variant(Box::new(self.value(one, depth + 1)?)),
                    _ => bail!("D-Bus variant signature {s:?} is not one type"),
                }
            }
            c => bail!("unsupported D-Bus type {:?}", c as char),
        })
    }
}

// ---------------------------------------------------------------------------
// Messages
// ---------------------------------------------------------------------------

#[derive(Debug, Default)]
struct Message {
    kind: u8,
    flags: u8,
    serial: u32,
    path: Option<String>,
    iface: Option<String>,
    member: Option<String>,
    error_name: Option<String>,
    reply_serial: Option<u32>,
    sender: Option<String>,
    body: Vec<Value>,
}

/// A whole message: fixed header, header fields `a(yv)`, body.
fn encode_message(
    kind: u8,
    flags: u8,
    serial: u32,
    mut fields: Vec<(u8, Value)>,
    args: &[Value],
) -> Result<Vec<u8>> {
    let body = marshal(args)?;
    let sig: String = args.iter().map(Value::signature).collect();
    if !sig.is_empty() {
        fields.push((8, Value::Sig(sig)));
    }
    let fields = fields
        .into_iter()
        .map(|(code, v)| Value::Struct(vec![Value::Byte(code), Value::variant(v)]))
        .collect();
    let mut e = Enc(vec![b'l', kind, flags, 1]);
    e.0.extend_from_slice(&(body.len() as u32).to_le_bytes());
    e.0.extend_from_slice(&serial.to_le_bytes());
    e.value(&Value::array_of("(yv)", fields), 0)?;
    e.pad(8);
    e.0.extend_from_slice(&body);
    if e.0.len() > MAX_MESSAGE {
        bail!("D-Bus message of {} bytes is too large", e.0.len());
    }
    Ok(e.0)
}

/// The length of the message whose first 16 bytes are `head`.
fn message_len(head: &[u8]) -> Result<usize> {
    if head.len() < 16 {
        bail!("D-Bus message truncated in its fixed header");
    }
    let big_endian = match head[0] {
        b'l' => false,
        b'B' => true,
        c => bail!("D-Bus message has byte order {c:#x}"),
    };
    if head[3] != 1 {
        bail!("D-Bus message has protocol version {}", head[3]);
    }
    let word = |i: usize| {
        let a: [u8; 4] = [head[i], head[i + 1], head[i + 2], head[i + 3]];
        u64::from(if big_endian {
            u32::from_be_bytes(a)
        } else {
            u32::from_le_bytes(a)
        })
    };
    let len = (16 + word(12)).next_multiple_of(8) + word(4);
    match usize::try_from(len) {
        Ok(n) if n <= MAX_MESSAGE => Ok(n),
        _ => bail!("D-Bus message of {len} bytes is over the {MAX_MESSAGE}-byte limit"),
    }
}

fn decode_message(buf: &[u8]) -> Result<Message> {
    let len = message_len(buf)?;
    if buf.len() < len {
        bail!("D-Bus message truncated: {} of {len} bytes", buf.len());
    }
    let big_endian = buf[0] == b'B';
    let mut d = Dec::new(&buf[..len], big_endian);
    d.pos = 4;
    let body_len = d.u32()? as usize;
    let serial = d.u32()?;
    let Value::Array { items, .. } = d.value("a(yv)", 0)? else {
        bail!("D-Bus header fields are not an array")
    };
    d.take(8, 0)?;
    let mut m = Message {
        kind: buf[1],
        flags: buf[2],
        serial,
        ..Message::default()
    };
    let mut sig = String::new();
    for field in items {
        let Value::Struct(f) = field else { continue };
        let mut f = f.into_iter();
        let (Some(Value::Byte(code)), Some(Value::Variant(v))) = (f.next(), f.next()) else {
            continue;
        };
        match (code, *v) {
            (1, Value::Path(s)) => m.path = Some(s),
            (2, Value::Str(s)) => m.iface = Some(s),
            (3, Value::Str(s)) => m.member = Some(s),
            (4, Value::Str(s)) => m.error_name = Some(s),
            (5, Value::U32(n)) => m.reply_serial = Some(n),
            (6, Value::Str(_)) => {}
            (7, Value::Str(s)) => m.sender = Some(s),
            (8, Value::Sig(s)) => sig = s,
            (1..=8, v) => bail!("D-Bus header field {code} has type {}", v.signature()),
            _ => {} // unknown fields are ignored, as the specification says
        }
    }
    let body = &buf[d.pos..len];
    if body.len() != body_len {
        bail!("D-Bus message body is {} bytes, not {body_len}", body.len());
    }
    let mut bd = Dec::new(body, big_endian);
    bd.values = d.values;
    m.body = bd.body(&sig)?;
    Ok(m)
}

// ---------------------------------------------------------------------------
// Connection
// ---------------------------------------------------------------------------

/// Where a D-Bus address entry points.
#[derive(Debug, PartialEq)]
enum Target {
    Path(Vec<u8>),
    Abstract(Vec<u8>),
}

/// The usable `unix:` entries of a `;`-separated address, in order.
fn parse_address(address: &str) -> Result<Vec<Target>> {
    let mut targets = Vec::new();
    for entry in address.split(';') {
        let Some(params) = entry.strip_prefix("unix:") else {
            continue;
        };
        let (mut path, mut abs) = (None, None);
        for kv in params.split(',') {
            match kv.split_once('=') {
                Some(("path", v)) => path = Some(unescape(v)?),
                Some(("abstract", v)) => abs = Some(unescape(v)?),
                _ => {}
            }
        }
        match (path, abs) {
            (Some(p), None) => targets.push(Target::Path(p)),
            (None, Some(a)) => targets.push(Target::Abstract(a)),
            _ => {}
        }
    }
    Ok(targets)
}

/// Undoes the address format's `%xx` escapes.
fn unescape(v: &str) -> Result<Vec<u8>> {
    let b = v.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = b
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok());
            let byte = hex.and_then(|h| u8::from_str_radix(h, 16).ok());
            out.push(byte.ok_or_else(|| anyhow!("bad %-escape in D-Bus address value {v:?}"))?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    Ok(out)
}

/// A connection to a message bus.
pub struct Bus {
    sock: UnixStream,
    address: String,
    unique_name: String,
    serial: u32,
    rbuf: Vec<u8>,
    signals: VecDeque<Signal>,
    timeout: Duration,
}

impl Bus {
    /// The system bus: `$DBUS_SYSTEM_BUS_ADDRESS` or the standard socket.
    pub fn system() -> Result<Bus> {
        let address = std::env::var("DBUS_SYSTEM_BUS_ADDRESS")
            .unwrap_or_else(|_| "unix:path=/run/dbus/system_bus_socket".into());
        Bus::connect(&address)
    }

    /// The user's bus: `$DBUS_SESSION_BUS_ADDRESS`, else `bus` in
    /// `$XDG_RUNTIME_DIR` (or `/run/user/<euid>` without it).
    pub fn user() -> Result<Bus> {
        let address = std::env::var("DBUS_SESSION_BUS_ADDRESS").unwrap_or_else(|_| {
            let dir = std::env::var("XDG_RUNTIME_DIR")
                .unwrap_or_else(|_| format!("/run/user/{}", nix::unistd::geteuid()));
            format!("unix:path={dir}/bus")
        });
        Bus::connect(&address)
    }

    /// Connects to `address`, authenticates and says `Hello`.
    pub fn connect(address: &str) -> Result<Bus> {
        Bus::open(address).with_context(|| format!("D-Bus at {address}"))
    }

    fn open(address: &str) -> Result<Bus> {
        let mut last_err = None;
        let mut sock = None;
        for target in parse_address(address)? {
            let res = match &target {
                Target::Path(p) => UnixStream::connect(OsStr::from_bytes(p)),
                Target::Abstract(a) => {
                    SocketAddr::from_abstract_name(a).and_then(|a| UnixStream::connect_addr(&a))
                }
            };
            match res {
                Ok(s) => {
                    sock = Some(s);
                    break;
                }
                Err(e) => last_err = Some(e),
            }
        }
        let sock = match (sock, last_err) {
            (Some(s), _) => s,
            (None, Some(e)) => return Err(e).context("cannot connect"),
            (None, None) => bail!("no unix:path= or unix:abstract= entry in the address"),
        };
        sock.set_write_timeout(Some(DEFAULT_TIMEOUT))?;
        let mut bus = Bus {
            sock,
            address: address.to_string(),
            unique_name: String::new(),
            serial: 0,
            rbuf: Vec::new(),
            signals: VecDeque::new(),
            timeout: DEFAULT_TIMEOUT,
        };
        bus.authenticate()?;
        let reply = bus.call(BUS_NAME, BUS_PATH, BUS_NAME, "Hello", &[])?;
        bus.unique_name = match reply.first() {
            Some(Value::Str(name)) => name.clone(),
            _ => bail!("Hello returned no unique name"),
        };
        Ok(bus)
    }

    /// SASL: `EXTERNAL`, then `BEGIN`. Outside a user namespace rrun
    /// claims its effective uid. Inside one (rootless Podman runs its
    /// runtime as root of its user namespace) that uid is not what the bus
    /// sees on the socket (the user's own), and a bus refuses the claim:
    /// there rrun claims no identity (an empty `DATA`, as sd-bus does) and
    /// the bus takes the socket's.
    fn authenticate(&mut self) -> Result<()> {
        let deadline = deadline_after(self.timeout);
        if crate::sys::in_user_namespace() {
            self.send(b"\0AUTH EXTERNAL\r\n")?;
            let line = self.auth_line(deadline)?;
            if line != "DATA" && !line.starts_with("DATA ") {
                bail!("authentication without a claimed uid refused: {line}");
            }
            self.send(b"DATA\r\n")?;
            let line = self.auth_line(deadline)?;
            if !line.starts_with("OK ") {
                bail!("authentication as the socket's uid refused: {line}");
            }
            return self.send(b"BEGIN\r\n");
        }
        let uid = nix::unistd::geteuid().to_string();
        let hex: String = uid.bytes().map(|c| format!("{c:02x}")).collect();
        self.send(format!("\0AUTH EXTERNAL {hex}\r\n").as_bytes())?;
        let line = self.auth_line(deadline)?;
        if !line.starts_with("OK ") {
            bail!("authentication as uid {uid} refused: {line}");
        }
        self.send(b"BEGIN\r\n")
    }

    /// One line of the SASL exchange, without its `\r\n`.
    fn auth_line(&mut self, deadline: Instant) -> Result<String> {
        loop {
            if let Some(i) = self.rbuf.windows(2).position(|w| w == b"\r\n") {
                let line: Vec<u8> = self.rbuf.drain(..i + 2).collect();
                return Ok(String::from_utf8_lossy(&line[..i]).into_owned());
            }
            if self.rbuf.len() > 512 || !self.fill(self.rbuf.len() + 1, deadline)? {
                bail!("no answer to authentication");
            }
        }
    }

    /// The unique name the bus gave this connection (`:1.42`).
    pub fn unique_name(&self) -> &str {
        &self.unique_name
    }

    /// How long [`Bus::call`] waits for a reply (default 25 s).
    pub fn set_timeout(&mut self, timeout: Duration) -> Result<()> {
        self.timeout = timeout;
        self.sock
            .set_write_timeout(Some(timeout.max(Duration::from_millis(1))))?;
        Ok(())
    }

    /// Writes all of `bytes`: MSG_NOSIGNAL, so a closed bus is an error
    /// whatever SIGPIPE's disposition; the socket's send timeout bounds it.
    fn send(&mut self, mut bytes: &[u8]) -> Result<()> {
        while !bytes.is_empty() {
            match send(self.sock.as_raw_fd(), bytes, MsgFlags::MSG_NOSIGNAL) {
                Ok(n) => bytes = &bytes[n..],
                Err(Errno::EINTR) => {}
                Err(e) => {
                    return Err(e).with_context(|| format!("writing to D-Bus at {}", self.address))
                }
            }
        }
        Ok(())
    }

    /// Reads until `rbuf` holds `n` bytes: false when `deadline` passes.
    fn fill(&mut self, n: usize, deadline: Instant) -> Result<bool> {
        let mut chunk = [0u8; 8192];
        while self.rbuf.len() < n {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(false);
            }
            let ms = i32::try_from(left.as_micros().div_ceil(1000)).unwrap_or(i32::MAX);
            let mut fds = [PollFd::new(self.sock.as_fd(), PollFlags::POLLIN)];
            match poll(
                &mut fds,
                PollTimeout::try_from(ms).unwrap_or(PollTimeout::MAX),
            ) {
                Ok(0) | Err(Errno::EINTR) => continue,
                Ok(_) => {}
                Err(e) => return Err(e).context("polling the D-Bus socket"),
            }
            match (&self.sock).read(&mut chunk) {
                Ok(0) => bail!("D-Bus at {} closed the connection", self.address),
                Ok(got) => self.rbuf.extend_from_slice(&chunk[..got]),
                Err(e) if matches!(e.kind(), ErrorKind::Interrupted | ErrorKind::WouldBlock) => {}
                Err(e) => {
                    return Err(e)
                        .with_context(|| format!("reading from D-Bus at {}", self.address))
                }
            }
        }
        Ok(true)
    }

    /// The next message, or None when `deadline` passes first (checked
    /// first: a peer flooding us cannot keep a wait going).
    fn read_message(&mut self, deadline: Instant) -> Result<Option<Message>> {
        if Instant::now() >= deadline || !self.fill(16, deadline)? {
            return Ok(None);
        }
        let len = message_len(&self.rbuf[..16])?;
        if !self.fill(len, deadline)? {
            return Ok(None);
        }
        let buf: Vec<u8> = self.rbuf.drain(..len).collect();
        decode_message(&buf)
            .map(Some)
            .with_context(|| format!("message from D-Bus at {}", self.address))
    }

    fn queue(&mut self, sig: Signal) {
        if self.signals.len() >= MAX_QUEUED {
            self.signals.pop_front();
        }
        self.signals.push_back(sig);
    }

    /// Queues a signal; answers a method call addressed to us.
    fn dispatch(&mut self, m: Message) -> Result<()> {
        match m.kind {
            SIGNAL => {
                if let Some(sig) = to_signal(m) {
                    self.queue(sig);
                }
            }
            METHOD_CALL if m.flags & NO_REPLY_EXPECTED == 0 => {
                let Some(sender) = m.sender else {
                    return Ok(());
                };
                self.serial = self.serial.wrapping_add(1).max(1);
                let fields = vec![
                    (4, Value::str("org.freedesktop.DBus.Error.UnknownMethod")),
                    (5, Value::U32(m.serial)),
                    (6, Value::Str(sender)),
                ];
                let text = Value::str("rrun serves no methods");
                let reply = encode_message(ERROR, NO_REPLY_EXPECTED, self.serial, fields, &[text])?;
                self.send(&reply)?;
            }
            _ => {}
        }
        Ok(())
    }

    /// Calls `iface.member` on `path` of `dest` and returns the reply's
    /// values. An ERROR reply is a [`DbusError`] ("NAME: message").
    pub fn call(
        &mut self,
        dest: &str,
        path: &str,
        iface: &str,
        member: &str,
        args: &[Value],
    ) -> Result<Vec<Value>> {
        self.serial = self.serial.wrapping_add(1).max(1);
        let serial = self.serial;
        let mut fields = vec![(1, Value::path(path)), (3, Value::str(member))];
        if !dest.is_empty() {
            fields.push((6, Value::str(dest)));
        }
        if !iface.is_empty() {
            fields.push((2, Value::str(iface)));
        }
        let msg = encode_message(METHOD_CALL, 0, serial, fields, args)
            .with_context(|| format!("calling {iface}.{member}"))?;
        self.send(&msg)?;
        let deadline = deadline_after(self.timeout);
        loop {
            let Some(m) = self.read_message(deadline)? else {
                bail!(
                    "no reply to {iface}.{member} from {dest} within {:?}",
                    self.timeout
                )
            };
            match m.kind {
                METHOD_RETURN if m.reply_serial == Some(serial) => return Ok(m.body),
                ERROR if m.reply_serial == Some(serial) => {
                    let message = m.body.first().and_then(Value::as_str).unwrap_or_default();
                    return Err(DbusError {
                        name: m.error_name.unwrap_or_default(),
                        message: message.to_string(),
                    }
                    .into());
                }
                _ => self.dispatch(m)?,
            }
        }
    }

    /// Asks the bus to route signals matching `rule` to us, e.g.
    /// `type='signal',interface='org.freedesktop.systemd1.Manager',member='JobRemoved'`.
    pub fn add_match(&mut self, rule: &str) -> Result<()> {
        self.call(
            BUS_NAME,
            BUS_PATH,
            BUS_NAME,
            "AddMatch",
            &[Value::str(rule)],
        )
        .with_context(|| format!("AddMatch {rule:?}"))?;
        Ok(())
    }

    /// The first signal, queued or arriving within `timeout`, for which
    /// `pred` holds; other signals stay queued. Timing out is an error.
    pub fn wait_signal(
        &mut self,
        timeout: Duration,
        mut pred: impl FnMut(&Signal) -> bool,
    ) -> Result<Signal> {
        if let Some(sig) = self
            .signals
            .iter()
            .position(&mut pred)
            .and_then(|i| self.signals.remove(i))
        {
            return Ok(sig);
        }
        let deadline = deadline_after(timeout);
        loop {
            let Some(m) = self.read_message(deadline)? else {
                bail!("no D-Bus signal within {timeout:?} on {}", self.address)
            };
            if m.kind != SIGNAL {
                self.dispatch(m)?;
            } else if let Some(sig) = to_signal(m) {
                if pred(&sig) {
                    return Ok(sig);
                }
                self.queue(sig);
            }
        }
    }
}

/// `timeout` from now (far in the future for a huge timeout).
fn deadline_after(timeout: Duration) -> Instant {
    let now = Instant::now();
    now.checked_add(timeout)
        .unwrap_or_else(|| now + Duration::from_secs(365 * 86400))
}

fn to_signal(m: Message) -> Option<Signal> {
    Some(Signal {
        sender: m.sender.unwrap_or_default(),
        path: m.path?,
        iface: m.iface?,
        member: m.member?,
        args: m.body,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use Value::*;

    fn round_trip(args: Vec<Value>) {
        let sig: String = args.iter().map(Value::signature).collect();
        let bytes = marshal(&args).unwrap();
        assert_eq!(unmarshal(&sig, &bytes).unwrap(), args, "signature {sig}");
    }

    fn err(sig: &str, body: &[u8]) -> String {
        format!("{:#}", unmarshal(sig, body).unwrap_err())
    }

    #[test]
    fn every_type_round_trips() {
        let props = Value::dict(
            "s",
            "v",
            vec![
                (Value::str("Delegate"), Value::variant(Bool(true))),
                (Value::str("MemoryMax"), Value::variant(U64(u64::MAX))),
                (
                    Value::str("PIDs"),
                    Value::variant(Value::array_of("u", vec![U32(1), U32(42)])),
                ),
            ],
        );
        round_trip(vec![
            Byte(0xfe),
            Bool(false),
            Bool(true),
            I16(-2),
            U16(0xfffe),
            I32(i32::MIN),
            U32(u32::MAX),
            I64(i64::MIN),
            U64(u64::MAX),
            F64(-1.5),
            Value::str("héllo"),
            Value::str(""),
            Value::path("/org/freedesktop/systemd1"),
            Value::path("/"),
            Sig("a(sv)".into()),
            Sig(String::new()),
            Value::array_of("s", vec![]),
            Value::array_of("ay", vec![Value::array_of("y", vec![Byte(1), Byte(2)])]),
            Struct(vec![Byte(1), Value::str("x"), Struct(vec![I64(-1)])]),
            props,
            Value::dict("t", "as", vec![]),
            Value::variant(Value::variant(Struct(vec![Byte(7), U64(8)]))),
        ]);
    }

    #[test]
    fn struct_of_byte_and_u64_in_an_array_is_padded_to_8() {
        let arr = Value::array_of(
            "(yt)",
            vec![Struct(vec![Byte(1), U64(2)]), Struct(vec![Byte(3), U64(4)])],
        );
        let bytes = marshal(&[Byte(7), arr.clone()]).unwrap();
        #[rustfmt::skip]
        let want = [
            7, 0, 0, 0,                // y, padding to 4
            32, 0, 0, 0,               // array length (already 8-aligned)
            1, 0, 0, 0, 0, 0, 0, 0,    // y, padding to 8
            2, 0, 0, 0, 0, 0, 0, 0,    // t
            3, 0, 0, 0, 0, 0, 0, 0,
            4, 0, 0, 0, 0, 0, 0, 0,
        ];
        assert_eq!(bytes, want);
        assert_eq!(unmarshal("ya(yt)", &bytes).unwrap(), vec![Byte(7), arr]);
    }

    #[test]
    fn empty_array_of_structs_keeps_the_padding_after_its_length() {
        let args = [U32(1), Byte(2), Value::array_of("(yt)", vec![]), Byte(9)];
        let bytes = marshal(&args).unwrap();
        #[rustfmt::skip]
        let want = [
            1, 0, 0, 0,  2, 0, 0, 0,   // u, y, padding to 4
            0, 0, 0, 0,  0, 0, 0, 0,   // length 0, padding to 8 (not counted)
            9,
        ];
        assert_eq!(bytes, want);
        assert_eq!(unmarshal("uya(yt)y", &bytes).unwrap(), args);
    }

    #[test]
    fn method_call_has_the_bytes_the_specification_gives() {
        let fields = vec![
            (1, Value::path("/a")),
            (3, Value::str("M")),
            (6, Value::str("d")),
        ];
        let msg = encode_message(METHOD_CALL, 0, 1, fields, &[Value::str("x")]).unwrap();
        #[rustfmt::skip]
        let want: &[u8] = &[
            b'l', 1, 0, 1,              // little-endian, METHOD_CALL, no flags, version 1
            6, 0, 0, 0,                 // body length
            1, 0, 0, 0,                 // serial
            55, 0, 0, 0,                // header fields: 55 bytes from offset 16
            1, 1, b'o', 0,              // PATH, variant signature "o"
            2, 0, 0, 0, b'/', b'a', 0,  // "/a"
            0, 0, 0, 0, 0,              // padding to 32
            3, 1, b's', 0,              // MEMBER, "s"
            1, 0, 0, 0, b'M', 0,
            0, 0, 0, 0, 0, 0,           // padding to 48
            6, 1, b's', 0,              // DESTINATION, "s"
            1, 0, 0, 0, b'd', 0,
            0, 0, 0, 0, 0, 0,           // padding to 64
            8, 1, b'g', 0,              // SIGNATURE, "g"
            1, b's', 0,
            0,                          // padding to 72: the body
            1, 0, 0, 0, b'x', 0,
        ];
        assert_eq!(msg, want);
        assert_eq!(message_len(&msg).unwrap(), msg.len());
        let m = decode_message(&msg).unwrap();
        assert_eq!((m.kind, m.serial), (METHOD_CALL, 1));
        assert_eq!(m.path.as_deref(), Some("/a"));
        assert_eq!(m.member.as_deref(), Some("M"));
        assert_eq!(m.body, vec![Value::str("x")]);
    }

    #[test]
    fn big_endian_messages_decode() {
        // A signal with a body "u" of 258, as a big-endian peer sends it.
        let mut msg = vec![b'B', SIGNAL, 0, 1, 0, 0, 0, 4, 0, 0, 0, 9, 0, 0, 0, 0];
        let fields: &[(u8, u8, &str)] = &[(1, b'o', "/p"), (2, b's', "i.f"), (3, b's', "M")];
        for (code, t, s) in fields {
            msg.resize(msg.len().next_multiple_of(8), 0);
            msg.extend_from_slice(&[*code, 1, *t, 0]);
            msg.extend_from_slice(&(s.len() as u32).to_be_bytes());
            msg.extend_from_slice(s.as_bytes());
            msg.push(0);
        }
        msg.resize(msg.len().next_multiple_of(8), 0);
        msg.extend_from_slice(&[8, 1, b'g', 0, 1, b'u', 0]);
        let fields_len = (msg.len() - 16) as u32;
        msg[12..16].copy_from_slice(&fields_len.to_be_bytes());
        msg.resize(msg.len().next_multiple_of(8), 0);
        msg.extend_from_slice(&258u32.to_be_bytes());
        let m = decode_message(&msg).unwrap();
        let s = to_signal(m).unwrap();
        assert_eq!((s.path.as_str(), s.iface.as_str()), ("/p", "i.f"));
        assert_eq!(s.args, vec![U32(258)]);
    }

    #[test]
    fn every_truncation_of_a_body_is_an_error() {
        let args = [
            Value::str("abc"),
            Value::dict("s", "v", vec![(Value::str("k"), Value::variant(U64(1)))]),
            Struct(vec![Byte(1), I32(2)]),
        ];
        let sig: String = args.iter().map(Value::signature).collect();
        let bytes = marshal(&args).unwrap();
        for n in 0..bytes.len() {
            assert!(unmarshal(&sig, &bytes[..n]).is_err(), "prefix of {n} bytes");
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(err(&sig, &longer).contains("after its values"));
    }

    #[test]
    fn hostile_lengths_are_errors() {
        assert!(err("ay", &[0xf0, 0xff, 0xff, 0xff]).contains("over 64 MiB"));
        assert!(err("ay", &[0x00, 0x00, 0x00, 0x01, 1]).contains("overruns"));
        assert!(err("s", &[0xff, 0xff, 0xff, 0xff, b'a', 0]).contains("truncated"));
        // A u64 array whose length splits an element.
        let body = [4, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0];
        assert!(unmarshal("at", &body).is_err());
        assert!(err("b", &[2, 0, 0, 0]).contains("boolean is 2"));
        assert!(err("s", &[1, 0, 0, 0, 0xff, 0]).contains("UTF-8"));
        assert!(err("s", &[1, 0, 0, 0, b'a', b'b']).contains("NUL"));
        assert!(err("yu", &[1, 9, 0, 0, 1, 0, 0, 0]).contains("padding"));
        // Too many values: 300k empty arrays in an array of arrays.
        let n = 300_000u32;
        let mut body = (n * 4).to_le_bytes().to_vec();
        body.resize(4 + 4 * n as usize, 0);
        assert!(err("aay", &body).contains("more than"));
        // Message headers claiming more than the limit.
        let mut head = [
            b'l', 1, 0, 1, 0xff, 0xff, 0xff, 0xff, 1, 0, 0, 0, 0, 0, 0, 0,
        ];
        assert!(message_len(&head).is_err());
        head[4..8].copy_from_slice(&[0; 4]);
        head[0] = b'X';
        assert!(message_len(&head).is_err());
        assert!(decode_message(&[b'l', 1, 0, 1]).is_err());
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_stack_overflow() {
        let mut body = Vec::new();
        for _ in 0..10_000 {
            body.extend_from_slice(&[1, b'v', 0]);
        }
        body.extend_from_slice(&[1, b'y', 0, 5]);
        assert!(err("v", &body).contains("nested more than"));
        let mut v = Byte(1);
        for _ in 0..100 {
            v = Value::variant(v);
        }
        assert!(marshal(&[v]).is_err());
    }

    #[test]
    fn invalid_signatures_are_rejected() {
        let deep_arrays = "a".repeat(33) + "y";
        let deep_structs = "(".repeat(33) + "y" + &")".repeat(33);
        let long = "y".repeat(256);
        for sig in [
            "a",
            "(",
            "()",
            "(y",
            "y)",
            "{sv}",
            "a{vs}",
            "a{s}",
            "a{syy}",
            "h",
            "z",
            &deep_arrays,
            &deep_structs,
            &long,
        ] {
            assert!(split_signature(sig).is_err(), "{sig:?} accepted");
            assert!(unmarshal(sig, &[]).is_err(), "{sig:?} accepted");
        }
        assert_eq!(
            split_signature("sa{sv}(ii)av").unwrap(),
            ["s", "a{sv}", "(ii)", "av"]
        );
        assert!(split_signature(&("a".repeat(32) + "y")).is_ok());
        // A variant carrying an invalid or multi-type signature.
        assert!(unmarshal("v", &[2, b'y', b'y', 0, 1, 1]).is_err());
        assert!(unmarshal("v", &[1, b'h', 0, 0, 0, 0, 0, 0]).is_err());
    }

    #[test]
    fn marshal_rejects_values_the_wire_cannot_carry() {
        let bad = [
            Value::array_of("s", vec![U32(1)]),
            Value::array_of("", vec![]),
            DictEntry(Box::new(Value::str("k")), Box::new(Byte(1))),
            Struct(vec![]),
            Value::str("a\0b"),
            Value::path("no/slash"),
            Value::path("/trailing/"),
            Sig("a".into()),
        ];
        for v in bad {
            assert!(marshal(std::slice::from_ref(&v)).is_err(), "{v:?} accepted");
        }
    }

    #[test]
    fn addresses_parse_to_their_unix_entries() {
        let t = parse_address(
            "tcp:host=x,port=1;unix:path=/run/a%20b,guid=0123;unix:tmpdir=/tmp;unix:abstract=c",
        )
        .unwrap();
        assert_eq!(
            t,
            [
                Target::Path(b"/run/a b".to_vec()),
                Target::Abstract(b"c".to_vec())
            ]
        );
        assert!(parse_address("unix:path=%zz").is_err());
        let e = Bus::connect("tcp:host=localhost,port=1").err().unwrap();
        assert!(
            format!("{e:#}").contains("tcp:host=localhost,port=1"),
            "{e:#}"
        );
        let e = Bus::connect("unix:path=/nonexistent/rrun-bus")
            .err()
            .unwrap();
        assert!(format!("{e:#}").contains("/nonexistent/rrun-bus"), "{e:#}");
    }

    #[test]
    fn dbus_error_prints_name_and_message_and_downcasts() {
        let e: anyhow::Error = DbusError {
            name: "org.freedesktop.systemd1.UnitExists".into(),
            message: "Unit x.scope already exists.".into(),
        }
        .into();
        assert_eq!(
            e.to_string(),
            "org.freedesktop.systemd1.UnitExists: Unit x.scope already exists."
        );
        let e = e.context("starting x.scope");
        let name = e.downcast_ref::<DbusError>().map(|d| d.name.as_str());
        assert_eq!(name, Some("org.freedesktop.systemd1.UnitExists"));
    }

    #[test]
    fn accessors_unwrap_values() {
        let v = Value::variant(Value::variant(U32(5)));
        assert_eq!(v.unvariant().as_u64(), Some(5));
        assert_eq!(Value::path("/x").as_str(), Some("/x"));
        assert_eq!(
            Value::array_of("y", vec![Byte(1)]).as_slice(),
            Some(&[Byte(1)][..])
        );
        assert_eq!(I32(1).as_u64(), None);
    }
}
