//! The few messages of CRIU's RPC protocol (`images/rpc.proto`, proto2)
//! that rrun sends and receives, encoded and decoded by hand: a request is
//! a `criu_req` holding a `criu_opts`, an answer a `criu_resp`.
//!
//! Protobuf's wire format is small: each field is a varint key
//! `(number << 3) | wire type`, then a varint (type 0: bools, enums,
//! int32/uint32) or a varint length and that many bytes (type 2: strings
//! and nested messages). Repeated fields repeat the key. A reader skips
//! the fields it does not know, so CRIU may add fields freely. Field
//! numbers below are those of CRIU's rpc.proto (stable since CRIU 3.0).

/// `criu_req_type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReqType {
    Dump = 1,
    Restore = 2,
    Check = 3,
    PreDump = 4,
    Notify = 6,
    FeatureCheck = 9,
    Version = 10,
}

impl ReqType {
    fn from_wire(v: u64) -> Option<ReqType> {
        Some(match v {
            1 => ReqType::Dump,
            2 => ReqType::Restore,
            3 => ReqType::Check,
            4 => ReqType::PreDump,
            6 => ReqType::Notify,
            9 => ReqType::FeatureCheck,
            10 => ReqType::Version,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            ReqType::Dump => "dump",
            ReqType::Restore => "restore",
            ReqType::Check => "check",
            ReqType::PreDump => "pre-dump",
            ReqType::Notify => "notify",
            ReqType::FeatureCheck => "feature check",
            ReqType::Version => "version",
        }
    }
}

/// `criu_cg_mode`, as `--manage-cgroups-mode` names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CgMode {
    Ignore = 0,
    Soft = 3,
    Full = 4,
    Strict = 5,
}

/// `criu_opts`: what rrun sets of it. `None`/empty fields are not sent,
/// so CRIU's defaults apply.
#[derive(Debug, Default, Clone)]
pub struct Opts {
    pub images_dir_fd: i32,
    pub pid: Option<i32>,
    pub leave_running: bool,
    pub ext_unix_sk: bool,
    pub tcp_established: bool,
    pub evasive_devices: bool,
    pub shell_job: bool,
    pub file_locks: bool,
    pub log_level: Option<i32>,
    pub log_file: Option<String>,
    pub notify_scripts: bool,
    pub root: Option<String>,
    pub parent_img: Option<String>,
    pub track_mem: bool,
    pub auto_dedup: bool,
    pub work_dir_fd: Option<i32>,
    /// `ext_mnt`: (key, value) pairs. On dump the key is the mount point in
    /// the container and the value its id; on restore the key is the id
    /// and the value the host path to bind there.
    pub ext_mnt: Vec<(String, String)>,
    pub manage_cgroups: bool,
    /// `cg_root`: (controller, or none for every one, path).
    pub cg_root: Vec<(Option<String>, String)>,
    pub rst_sibling: bool,
    /// `inherit_fd`: (key, fd number in CRIU's process).
    pub inherit_fd: Vec<(String, i32)>,
    pub manage_cgroups_mode: Option<CgMode>,
    /// `external`: `net[INODE]:KEY` and the like.
    pub external: Vec<String>,
    pub empty_ns: Option<u32>,
    /// `join_ns`: (namespace name, path of the namespace file).
    pub join_ns: Vec<(String, String)>,
    pub freeze_cgroup: Option<String>,
    pub orphan_pts_master: bool,
    pub lsm_profile: Option<String>,
    /// `mntns_compat_mode` (CRIU 3.17): the mount engine before mount-v2.
    pub mntns_compat_mode: bool,
}

/// A request, ready to send.
pub fn request(kind: ReqType, opts: Option<&Opts>) -> Vec<u8> {
    let mut out = Vec::new();
    varint_field(&mut out, 1, kind as u64);
    if let Some(o) = opts {
        bytes_field(&mut out, 2, &encode_opts(o));
    }
    out
}

/// The answer to a notification: CRIU goes on (`ok`) or aborts.
pub fn notify_ack(ok: bool) -> Vec<u8> {
    let mut out = Vec::new();
    varint_field(&mut out, 1, ReqType::Notify as u64);
    varint_field(&mut out, 3, ok as u64);
    out
}

fn encode_opts(o: &Opts) -> Vec<u8> {
    let mut m = Vec::new();
    let b = |m: &mut Vec<u8>, n: u32, v: bool| {
        if v {
            varint_field(m, n, 1);
        }
    };
    varint_field(&mut m, 1, o.images_dir_fd as u32 as u64);
    if let Some(pid) = o.pid {
        varint_field(&mut m, 2, pid as u32 as u64);
    }
    b(&mut m, 3, o.leave_running);
    b(&mut m, 4, o.ext_unix_sk);
    b(&mut m, 5, o.tcp_established);
    b(&mut m, 6, o.evasive_devices);
    b(&mut m, 7, o.shell_job);
    b(&mut m, 8, o.file_locks);
    if let Some(l) = o.log_level {
        varint_field(&mut m, 9, l as u32 as u64);
    }
    if let Some(f) = &o.log_file {
        bytes_field(&mut m, 10, f.as_bytes());
    }
    b(&mut m, 12, o.notify_scripts);
    if let Some(r) = &o.root {
        bytes_field(&mut m, 13, r.as_bytes());
    }
    if let Some(p) = &o.parent_img {
        bytes_field(&mut m, 14, p.as_bytes());
    }
    b(&mut m, 15, o.track_mem);
    b(&mut m, 16, o.auto_dedup);
    if let Some(fd) = o.work_dir_fd {
        varint_field(&mut m, 17, fd as u32 as u64);
    }
    for (k, v) in &o.ext_mnt {
        let mut e = Vec::new();
        bytes_field(&mut e, 1, k.as_bytes());
        bytes_field(&mut e, 2, v.as_bytes());
        bytes_field(&mut m, 23, &e);
    }
    b(&mut m, 24, o.manage_cgroups);
    for (ctrl, path) in &o.cg_root {
        let mut e = Vec::new();
        if let Some(c) = ctrl {
            bytes_field(&mut e, 1, c.as_bytes());
        }
        bytes_field(&mut e, 2, path.as_bytes());
        bytes_field(&mut m, 25, &e);
    }
    b(&mut m, 26, o.rst_sibling);
    for (k, fd) in &o.inherit_fd {
        let mut e = Vec::new();
        bytes_field(&mut e, 1, k.as_bytes());
        varint_field(&mut e, 2, *fd as u32 as u64);
        bytes_field(&mut m, 27, &e);
    }
    if let Some(mode) = o.manage_cgroups_mode {
        varint_field(&mut m, 34, mode as u64);
    }
    for e in &o.external {
        bytes_field(&mut m, 37, e.as_bytes());
    }
    if let Some(mask) = o.empty_ns {
        varint_field(&mut m, 38, mask as u64);
    }
    for (ns, file) in &o.join_ns {
        let mut e = Vec::new();
        bytes_field(&mut e, 1, ns.as_bytes());
        bytes_field(&mut e, 2, file.as_bytes());
        bytes_field(&mut m, 39, &e);
    }
    if let Some(f) = &o.freeze_cgroup {
        bytes_field(&mut m, 44, f.as_bytes());
    }
    b(&mut m, 50, o.orphan_pts_master);
    if let Some(p) = &o.lsm_profile {
        bytes_field(&mut m, 53, p.as_bytes());
    }
    b(&mut m, 65, o.mntns_compat_mode);
    m
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn varint_field(out: &mut Vec<u8>, number: u32, v: u64) {
    put_varint(out, (number as u64) << 3);
    put_varint(out, v);
}

fn bytes_field(out: &mut Vec<u8>, number: u32, v: &[u8]) {
    put_varint(out, ((number as u64) << 3) | 2);
    put_varint(out, v.len() as u64);
    out.extend_from_slice(v);
}

/// `criu_resp`, the fields rrun reads.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Resp {
    pub kind: Option<ReqType>,
    pub success: bool,
    /// `restore.pid`: the restored tree's root, in rrun's pid namespace.
    pub restore_pid: Option<i32>,
    /// `notify`: the script name (`setup-namespaces`, `post-restore`,
    /// `orphan-pts-master`, ...) and its pid.
    pub notify: Option<(String, i32)>,
    pub cr_errno: Option<i32>,
    pub cr_errmsg: Option<String>,
    /// `features.mem_track`.
    pub mem_track: Option<bool>,
    /// `version`: major, minor, sublevel.
    pub version: Option<(u32, u32, u32)>,
}

/// One decoded field: its number and its value.
enum Value<'a> {
    Varint(u64),
    Bytes(&'a [u8]),
}

/// The fields of a message, in order; `None` at the first malformed byte.
fn fields(mut buf: &[u8]) -> Option<Vec<(u32, Value<'_>)>> {
    let mut out = Vec::new();
    while !buf.is_empty() {
        let key = take_varint(&mut buf)?;
        let number = (key >> 3) as u32;
        let value = match key & 7 {
            0 => Value::Varint(take_varint(&mut buf)?),
            2 => {
                let len = take_varint(&mut buf)? as usize;
                if len > buf.len() {
                    return None;
                }
                let (v, rest) = buf.split_at(len);
                buf = rest;
                Value::Bytes(v)
            }
            // fixed64, fixed32: skipped (rpc.proto has none).
            1 => {
                buf = buf.get(8..)?;
                continue;
            }
            5 => {
                buf = buf.get(4..)?;
                continue;
            }
            _ => return None,
        };
        out.push((number, value));
    }
    Some(out)
}

fn take_varint(buf: &mut &[u8]) -> Option<u64> {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let (&b, rest) = buf.split_first()?;
        *buf = rest;
        v |= ((b & 0x7f) as u64) << shift;
        if b & 0x80 == 0 {
            return Some(v);
        }
    }
    None
}

fn text(v: &[u8]) -> String {
    String::from_utf8_lossy(v).into_owned()
}

/// Decodes a `criu_resp`; `None` if it is not well-formed protobuf.
pub fn parse_resp(buf: &[u8]) -> Option<Resp> {
    let mut r = Resp::default();
    for (n, v) in fields(buf)? {
        match (n, v) {
            (1, Value::Varint(t)) => r.kind = ReqType::from_wire(t),
            (2, Value::Varint(s)) => r.success = s != 0,
            (4, Value::Bytes(m)) => {
                for (n, v) in fields(m)? {
                    if let (1, Value::Varint(pid)) = (n, v) {
                        r.restore_pid = Some(pid as i32);
                    }
                }
            }
            (5, Value::Bytes(m)) => {
                let (mut script, mut pid) = (String::new(), 0);
                for (n, v) in fields(m)? {
                    match (n, v) {
                        (1, Value::Bytes(s)) => script = text(s),
                        (2, Value::Varint(p)) => pid = p as i32,
                        _ => {}
                    }
                }
                r.notify = Some((script, pid));
            }
            (7, Value::Varint(e)) => r.cr_errno = Some(e as i32),
            (8, Value::Bytes(m)) => {
                for (n, v) in fields(m)? {
                    if let (1, Value::Varint(b)) = (n, v) {
                        r.mem_track = Some(b != 0);
                    }
                }
            }
            (9, Value::Bytes(s)) => r.cr_errmsg = Some(text(s)),
            (10, Value::Bytes(m)) => {
                let (mut major, mut minor, mut sub) = (0, 0, 0);
                for (n, v) in fields(m)? {
                    match (n, v) {
                        (1, Value::Varint(x)) => major = x as u32,
                        (2, Value::Varint(x)) => minor = x as u32,
                        (4, Value::Varint(x)) => sub = x as u32,
                        _ => {}
                    }
                }
                r.version = Some((major, minor, sub));
            }
            _ => {}
        }
    }
    Some(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_request_is_one_field() {
        assert_eq!(request(ReqType::Version, None), [0x08, 10]);
    }

    #[test]
    fn a_version_answer_from_criu_3_17_decodes() {
        // What `criu swrk` 3.17.1 answered to a VERSION request.
        let r = parse_resp(b"\x08\n\x10\x01R\x06\x08\x03\x10\x11 \x01").unwrap();
        assert_eq!(r.kind, Some(ReqType::Version));
        assert!(r.success);
        assert_eq!(r.version, Some((3, 17, 1)));
    }

    #[test]
    fn options_encode_with_rpc_proto_field_numbers() {
        let o = Opts {
            images_dir_fd: 5,
            pid: Some(300),
            leave_running: true,
            log_file: Some("dump.log".into()),
            ext_mnt: vec![("/data".into(), "/data".into())],
            inherit_fd: vec![("pipe:[7]".into(), 1)],
            manage_cgroups_mode: Some(CgMode::Soft),
            ..Default::default()
        };
        let req = request(ReqType::Dump, Some(&o));
        let top = fields(&req).unwrap();
        assert!(matches!(top[0], (1, Value::Varint(1))));
        let Value::Bytes(opts) = top[1].1 else {
            panic!("opts is not a message")
        };
        let f = fields(opts).unwrap();
        let nums: Vec<u32> = f.iter().map(|(n, _)| *n).collect();
        assert_eq!(nums, [1, 2, 3, 10, 23, 27, 34]);
        assert!(matches!(f[1].1, Value::Varint(300)));
        let Value::Bytes(ext) = f[4].1 else { panic!() };
        let e = fields(ext).unwrap();
        assert!(matches!(e[0], (1, Value::Bytes(b"/data"))));
        let Value::Bytes(inh) = f[5].1 else { panic!() };
        let i = fields(inh).unwrap();
        assert!(matches!(i[1], (2, Value::Varint(1))));
    }

    #[test]
    fn notifications_and_errors_decode() {
        let mut notify = Vec::new();
        bytes_field(&mut notify, 1, b"post-restore");
        varint_field(&mut notify, 2, 4242);
        let mut msg = Vec::new();
        varint_field(&mut msg, 1, 6);
        varint_field(&mut msg, 2, 1);
        bytes_field(&mut msg, 5, &notify);
        let r = parse_resp(&msg).unwrap();
        assert_eq!(r.notify, Some(("post-restore".into(), 4242)));

        let mut fail = Vec::new();
        varint_field(&mut fail, 1, 2);
        varint_field(&mut fail, 2, 0);
        varint_field(&mut fail, 7, 22);
        bytes_field(&mut fail, 9, b"bad root");
        let r = parse_resp(&fail).unwrap();
        assert!(!r.success);
        assert_eq!(r.cr_errno, Some(22));
        assert_eq!(r.cr_errmsg.as_deref(), Some("bad root"));
    }

    #[test]
    fn truncated_or_garbage_answers_are_refused() {
        assert!(parse_resp(&[0x08]).is_none());
        assert!(parse_resp(&[0x12, 0x05, 0x01]).is_none());
        assert!(parse_resp(&[0x0f]).is_none());
        // Unknown fields are skipped.
        assert!(parse_resp(&[0x08, 0x01, 0xf8, 0x07, 0x01]).is_some());
    }
}
