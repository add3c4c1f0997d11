//! The container process's attributes, prepared in the parent: argv, env,
//! user, capabilities, rlimits, scheduling, memory policy, personality.
//! Everything is converted to the numbers and C strings the child's
//! syscalls take, and checked, so the child has nothing left to parse.

use std::ffi::CString;
use std::os::fd::BorrowedFd;
use std::path::Path;

use anyhow::{bail, Context, Result};
use oci_spec::runtime::{Process, Spec};

use crate::rootfs::resolve;
use crate::security::caps::{self, CapPlan};
use crate::sys::SchedAttr;

const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

pub struct ProcessPlan {
    pub args: Vec<CString>,
    pub env: Vec<CString>,
    /// Candidate absolute paths for `args[0]`, in `$PATH` order.
    pub exec_candidates: Vec<CString>,
    pub arg0: String,
    pub cwd: CString,
    pub uid: u32,
    pub gid: u32,
    pub additional_gids: Vec<u32>,
    pub umask: u32,
    pub caps: Option<CapPlan>,
    pub no_new_privs: bool,
    pub rlimits: Vec<(u32, u64, u64)>,
    pub oom_score_adj: Option<i32>,
    pub io_priority: Option<(u32, u32)>,
    pub scheduler: Option<SchedAttr>,
    pub affinity_initial: Option<Vec<usize>>,
    pub affinity_final: Option<Vec<usize>>,
    pub personality: Option<u64>,
    pub mempolicy: Option<(i32, Vec<u64>)>,
    /// (dev, inode) of rrun's own binary, which the container must never exec.
    pub runtime_binary: (u64, u64),
    /// AppArmor/SELinux labels to write just before exec.
    pub labels: Vec<crate::security::lsm::Label>,
    /// The seccomp program, compiled here so the child only loads it; or,
    /// with `seccomp_later`, compiled by the parent after the clone while
    /// the child sets up ([`prepare_with`]), and put here by the child
    /// once it has received it through a pipe.
    pub seccomp: std::cell::OnceCell<crate::security::seccomp::Compiled>,
    pub seccomp_later: bool,
    /// Connected `listenerPath` socket and `listenerMetadata`, for
    /// SCMP_ACT_NOTIFY profiles.
    pub seccomp_listener: Option<(std::os::fd::OwnedFd, String)>,
}

/// The name serde gives an enum value (`RLIMIT_NOFILE`, `SCHED_FIFO`...).
fn name_of<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_value(v)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

fn cstr(s: &str, field: &str) -> Result<CString> {
    CString::new(s).with_context(|| format!("{field}: contains a NUL byte"))
}

fn rlimit_resource(name: &str) -> Option<u32> {
    // The constants are `c_int` with musl, `c_uint` with glibc.
    Some(match name {
        "RLIMIT_CPU" => libc::RLIMIT_CPU,
        "RLIMIT_FSIZE" => libc::RLIMIT_FSIZE,
        "RLIMIT_DATA" => libc::RLIMIT_DATA,
        "RLIMIT_STACK" => libc::RLIMIT_STACK,
        "RLIMIT_CORE" => libc::RLIMIT_CORE,
        "RLIMIT_RSS" => libc::RLIMIT_RSS,
        "RLIMIT_NPROC" => libc::RLIMIT_NPROC,
        "RLIMIT_NOFILE" => libc::RLIMIT_NOFILE,
        "RLIMIT_MEMLOCK" => libc::RLIMIT_MEMLOCK,
        "RLIMIT_AS" => libc::RLIMIT_AS,
        "RLIMIT_LOCKS" => libc::RLIMIT_LOCKS,
        "RLIMIT_SIGPENDING" => libc::RLIMIT_SIGPENDING,
        "RLIMIT_MSGQUEUE" => libc::RLIMIT_MSGQUEUE,
        "RLIMIT_NICE" => libc::RLIMIT_NICE,
        "RLIMIT_RTPRIO" => libc::RLIMIT_RTPRIO,
        "RLIMIT_RTTIME" => libc::RLIMIT_RTTIME,
        _ => return None,
    } as u32)
}

/// True when this process may raise hard rlimits (CAP_SYS_RESOURCE).
fn have_sys_resource() -> bool {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        .is_some_and(|m| m & (1 << 24) != 0)
}

/// Parses a CPU or node list such as `0-3,7`.
pub fn parse_list(s: &str) -> Result<Vec<usize>> {
    let mut out = Vec::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (a, b) = match part.split_once('-') {
            Some((a, b)) => (a.trim().parse::<usize>()?, b.trim().parse::<usize>()?),
            None => {
                let n = part.parse::<usize>()?;
                (n, n)
            }
        };
        if a > b || b >= 8192 {
            bail!("bad range {part:?}");
        }
        out.extend(a..=b);
    }
    Ok(out)
}

/// Reads `HOME` for a uid from the container's /etc/passwd, opened inside
/// the root by fd.
fn home_for(root: BorrowedFd<'_>, uid: u32) -> String {
    let Ok(fd) = resolve::open_in_root(root, Path::new("/etc/passwd"), libc::O_RDONLY) else {
        return "/".into();
    };
    let text = std::io::read_to_string(std::fs::File::from(fd)).unwrap_or_default();
    for line in text.lines() {
        let f: Vec<&str> = line.split(':').collect();
        if f.len() >= 6 && f[2].parse::<u32>().ok() == Some(uid) {
            return f[5].to_string();
        }
    }
    "/".into()
}

/// One entry per variable name: a later entry replaces an earlier one in
/// its place, as runc sets them one by one (so `exec --env K=V` replaces
/// the container's `K`). With two entries of a name in its environ, a
/// program's getenv() would find the first.
fn dedup_env(env: &[String]) -> Vec<String> {
    let name = |e: &str| e.split_once('=').map_or(e, |(k, _)| k).to_string();
    let mut out: Vec<String> = Vec::with_capacity(env.len());
    let mut at = std::collections::HashMap::new();
    for e in env {
        match at.get(&name(e)) {
            Some(&i) => out[i] = e.clone(),
            None => {
                at.insert(name(e), out.len());
                out.push(e.clone());
            }
        }
    }
    out
}

pub fn prepare(spec: &Spec, root: BorrowedFd<'_>) -> Result<ProcessPlan> {
    prepare_with(spec, root, false)
}

/// [`prepare`]; with `seccomp_later`, a profile that can be compiled after
/// the clone (`seccomp::can_compile_later`: checked now, no listener) is
/// left to the caller (`seccomp` stays empty and `seccomp_later` is set).
pub fn prepare_with(spec: &Spec, root: BorrowedFd<'_>, seccomp_later: bool) -> Result<ProcessPlan> {
    let p: &Process = spec.process().as_ref().context("process: missing")?;
    let args_s = p.args().clone().unwrap_or_default();
    let args = args_s
        .iter()
        .map(|a| cstr(a, "process.args"))
        .collect::<Result<Vec<_>>>()?;
    let mut env_s = dedup_env(p.env().as_deref().unwrap_or_default());
    let user = p.user();
    if !env_s.iter().any(|e| e.starts_with("HOME=")) {
        env_s.push(format!("HOME={}", home_for(root, user.uid())));
    }
    let env = env_s
        .iter()
        .map(|e| cstr(e, "process.env"))
        .collect::<Result<Vec<_>>>()?;
    let arg0 = args_s[0].clone();
    let exec_candidates = if arg0.contains('/') {
        vec![cstr(&arg0, "process.args[0]")?]
    } else {
        let path = env_s
            .iter()
            .rev()
            .find_map(|e| e.strip_prefix("PATH="))
            .unwrap_or(DEFAULT_PATH);
        path.split(':')
            .filter(|d| !d.is_empty())
            .map(|d| {
                cstr(
                    &format!("{}/{arg0}", d.trim_end_matches('/')),
                    "process.env PATH",
                )
            })
            .collect::<Result<Vec<_>>>()?
    };

    let mut rlimits = Vec::new();
    // Read only when a hard limit must be raised (rarely).
    let mut can_raise = None;
    for r in p.rlimits().iter().flatten() {
        let name = name_of(&r.typ());
        let res = rlimit_resource(&name)
            .with_context(|| format!("process.rlimits: unknown type {name}"))?;
        let mut cur = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: getrlimit writes into `cur`.
        unsafe { libc::getrlimit(res as _, &mut cur) };
        if r.hard() > cur.rlim_max && !*can_raise.get_or_insert_with(have_sys_resource) {
            bail!(
                "process.rlimits {name}: hard limit {} is above this process's hard limit {}, and raising it needs CAP_SYS_RESOURCE",
                r.hard(),
                cur.rlim_max
            );
        }
        rlimits.push((res, r.soft(), r.hard()));
    }

    let io_priority = match p.io_priority() {
        Some(io) => {
            let class = match name_of(&io.class()).as_str() {
                "IOPRIO_CLASS_RT" => 1,
                "IOPRIO_CLASS_BE" => 2,
                "IOPRIO_CLASS_IDLE" => 3,
                other => bail!("process.ioPriority.class: unknown {other}"),
            };
            if !(0..=7).contains(&io.priority()) {
                bail!(
                    "process.ioPriority.priority {}: must be 0..7",
                    io.priority()
                );
            }
            Some((class, io.priority() as u32))
        }
        None => None,
    };

    let scheduler = match p.scheduler() {
        Some(s) => {
            let policy = match name_of(&s.policy()).as_str() {
                "SCHED_OTHER" => 0,
                "SCHED_FIFO" => 1,
                "SCHED_RR" => 2,
                "SCHED_BATCH" => 3,
                "SCHED_ISO" => 4,
                "SCHED_IDLE" => 5,
                "SCHED_DEADLINE" => 6,
                other => bail!("process.scheduler.policy: unknown {other}"),
            };
            let mut flags = 0u64;
            for f in s.flags().iter().flatten() {
                flags |= match name_of(f).as_str() {
                    "SCHED_FLAG_RESET_ON_FORK" => 0x01,
                    "SCHED_FLAG_RECLAIM" => 0x02,
                    "SCHED_FLAG_DL_OVERRUN" => 0x04,
                    "SCHED_FLAG_KEEP_POLICY" => 0x08,
                    "SCHED_FLAG_KEEP_PARAMS" => 0x10,
                    "SCHED_FLAG_UTIL_CLAMP_MIN" => 0x20,
                    "SCHED_FLAG_UTIL_CLAMP_MAX" => 0x40,
                    other => bail!("process.scheduler.flags: unknown {other}"),
                };
            }
            let nice = s.nice().unwrap_or(0);
            if !(-20..=19).contains(&nice) {
                bail!("process.scheduler.nice {nice}: must be -20..19");
            }
            Some(SchedAttr {
                size: 0,
                sched_policy: policy,
                sched_flags: flags,
                sched_nice: nice,
                sched_priority: s.priority().unwrap_or(0).max(0) as u32,
                sched_runtime: s.runtime().unwrap_or(0),
                sched_deadline: s.deadline().unwrap_or(0),
                sched_period: s.period().unwrap_or(0),
            })
        }
        None => None,
    };

    let (affinity_initial, affinity_final) = match p.exec_cpu_affinity() {
        Some(a) => (
            a.initial()
                .as_deref()
                .map(parse_list)
                .transpose()
                .context("process.execCPUAffinity.initial")?,
            a.cpu_affinity_final()
                .as_deref()
                .map(parse_list)
                .transpose()
                .context("process.execCPUAffinity.final")?,
        ),
        None => (None, None),
    };

    let linux = spec.linux().as_ref();
    let personality = match linux.and_then(|l| l.personality().as_ref()) {
        Some(pers) => {
            let mut v: u64 = match name_of(&pers.domain()).as_str() {
                "LINUX" => 0x0000,
                "LINUX32" => 0x0008,
                other => bail!("linux.personality.domain: unknown {other}"),
            };
            for f in pers.flags().iter().flatten() {
                v |= match f.as_str() {
                    "ADDR_NO_RANDOMIZE" => 0x0040000,
                    "ADDR_COMPAT_LAYOUT" => 0x0200000,
                    "READ_IMPLIES_EXEC" => 0x0400000,
                    "ADDR_LIMIT_32BIT" => 0x0800000,
                    "SHORT_INODE" => 0x1000000,
                    "WHOLE_SECONDS" => 0x2000000,
                    "STICKY_TIMEOUTS" => 0x4000000,
                    "ADDR_LIMIT_3GB" => 0x8000000,
                    other => bail!("linux.personality.flags: unknown {other}"),
                };
            }
            Some(v)
        }
        None => None,
    };

    let mempolicy = match linux.and_then(|l| l.memory_policy().as_ref()) {
        Some(mp) => {
            let mut mode: i32 = match name_of(&mp.mode()).as_str() {
                "MPOL_DEFAULT" => 0,
                "MPOL_PREFERRED" => 1,
                "MPOL_BIND" => 2,
                "MPOL_INTERLEAVE" => 3,
                "MPOL_LOCAL" => 4,
                "MPOL_PREFERRED_MANY" => 5,
                "MPOL_WEIGHTED_INTERLEAVE" => 6,
                other => bail!("linux.memoryPolicy.mode: unknown {other}"),
            };
            for f in mp.flags().iter().flatten() {
                mode |= match name_of(f).as_str() {
                    "MPOL_F_NUMA_BALANCING" => 1 << 13,
                    "MPOL_F_RELATIVE_NODES" => 1 << 14,
                    "MPOL_F_STATIC_NODES" => 1 << 15,
                    other => bail!("linux.memoryPolicy.flags: unknown {other}"),
                };
            }
            let nodes = parse_list(mp.nodes().as_deref().unwrap_or(""))
                .context("linux.memoryPolicy.nodes")?;
            let mut mask = vec![0u64; nodes.iter().max().map_or(0, |m| m / 64 + 1)];
            for n in nodes {
                mask[n / 64] |= 1 << (n % 64);
            }
            Some((mode, mask))
        }
        None => None,
    };

    let seccomp_spec = linux.and_then(|l| l.seccomp().as_ref());
    let seccomp_later = match seccomp_spec {
        Some(s) if seccomp_later => crate::security::seccomp::can_compile_later(s)?,
        _ => false,
    };
    let seccomp = std::cell::OnceCell::new();
    if let Some(s) = seccomp_spec.filter(|_| !seccomp_later) {
        let _ = seccomp.set(crate::security::seccomp::compile(s)?);
    }
    let seccomp_listener = match (seccomp_spec, seccomp.get()) {
        (Some(s), Some(c)) if c.notify => {
            let path = s.listener_path().clone().unwrap_or_default();
            let sock = std::os::unix::net::UnixStream::connect(&path)
                .with_context(|| format!("linux.seccomp.listenerPath {}", path.display()))?;
            Some((
                sock.into(),
                s.listener_metadata().clone().unwrap_or_default(),
            ))
        }
        _ => None,
    };
    let labels = crate::security::lsm::prepare(
        p.apparmor_profile().as_deref(),
        p.selinux_label().as_deref(),
    )?;
    let runtime_binary = {
        use std::os::unix::fs::MetadataExt;
        std::fs::metadata("/proc/self/exe")
            .map(|m| (m.dev(), m.ino()))
            .unwrap_or((0, 0))
    };
    Ok(ProcessPlan {
        runtime_binary,
        labels,
        seccomp,
        seccomp_later,
        seccomp_listener,
        args,
        env,
        exec_candidates,
        arg0,
        cwd: cstr(&p.cwd().to_string_lossy(), "process.cwd")?,
        uid: user.uid(),
        gid: user.gid(),
        additional_gids: user.additional_gids().clone().unwrap_or_default(),
        umask: user.umask().unwrap_or(0o022),
        caps: p.capabilities().as_ref().map(|c| {
            let plan = CapPlan::from_spec(c, caps::last_cap());
            plan.warn_ambient_not_granted(user.uid());
            plan
        }),
        no_new_privs: p.no_new_privileges().unwrap_or(false),
        rlimits,
        oom_score_adj: p.oom_score_adj(),
        io_priority,
        scheduler,
        affinity_initial,
        affinity_final,
        personality,
        mempolicy,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_lists_parse_ranges_and_singles() {
        assert_eq!(parse_list("0-2,5").unwrap(), vec![0, 1, 2, 5]);
        assert_eq!(parse_list("").unwrap(), Vec::<usize>::new());
        assert!(parse_list("3-1").is_err());
        assert!(parse_list("x").is_err());
    }

    #[test]
    fn rlimit_names_map_to_kernel_resources() {
        assert_eq!(
            rlimit_resource("RLIMIT_NOFILE"),
            Some(libc::RLIMIT_NOFILE as u32)
        );
        assert_eq!(rlimit_resource("RLIMIT_BOGUS"), None);
    }

    #[test]
    fn later_env_entries_replace_earlier_ones_in_place() {
        let env: Vec<String> = ["A=1", "TERM=xterm", "B=2", "TERM=dumb", "A=3"]
            .map(String::from)
            .to_vec();
        assert_eq!(dedup_env(&env), ["A=3", "TERM=dumb", "B=2"]);
    }
}
