//! `linux.resources` turned into cgroup file writes, for v1 and v2.
//!
//! The translation is pure ([`plan`]), so it is unit-tested without root;
//! [`apply`] writes the files and reports the field that failed. The v2
//! conversions follow runc's (cpu shares → weight, blkio weight → io.weight,
//! swap → swap.max = swap − limit) so engines see the same values.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use oci_spec::runtime::{LinuxDeviceCgroup, LinuxDeviceType, LinuxResources};

use super::{cgfs, CgroupPaths};

/// One cgroup file write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Write {
    /// v1 controller whose directory holds the file; "" for the v2 directory.
    pub controller: &'static str,
    pub file: String,
    pub value: String,
    /// The spec field, for error messages.
    pub field: String,
}

fn w(
    controller: &'static str,
    file: impl Into<String>,
    value: impl ToString,
    field: &str,
) -> Write {
    Write {
        controller,
        file: file.into(),
        value: value.to_string(),
        field: field.to_string(),
    }
}

/// runc's conversion of cpu shares (2..262144) to cgroup v2 cpu.weight (1..10000).
pub fn shares_to_weight(shares: u64) -> u64 {
    if shares == 0 {
        return 0;
    }
    1 + (shares.saturating_sub(2) * 9999) / 262_142
}

/// runc's conversion of blkio weight (10..1000) to io.weight (1..10000).
pub fn blkio_to_io_weight(weight: u16) -> u64 {
    if weight == 0 {
        return 0;
    }
    1 + (u64::from(weight).saturating_sub(10) * 9999) / 990
}

fn max_or(v: i64) -> String {
    if v < 0 {
        "max".into()
    } else {
        v.to_string()
    }
}

/// A device rule as the v1 devices controller takes it: `c 1:3 rwm`.
pub fn device_rule(d: &LinuxDeviceCgroup) -> String {
    let t = match d.typ() {
        Some(LinuxDeviceType::C) | Some(LinuxDeviceType::U) => 'c',
        Some(LinuxDeviceType::B) => 'b',
        Some(LinuxDeviceType::P) => 'p',
        Some(LinuxDeviceType::A) | None => 'a',
    };
    let num = |n: Option<i64>| {
        n.filter(|&n| n >= 0)
            .map_or("*".to_string(), |n| n.to_string())
    };
    let access = d.access().clone().unwrap_or_else(|| "rwm".into());
    format!("{t} {}:{} {access}", num(d.major()), num(d.minor()))
}

/// Devices every container may use, as runc allows them on top of the
/// spec's rules: mknod of anything, and the standard character devices.
pub fn default_allowed_devices() -> Vec<LinuxDeviceCgroup> {
    let rule = |t: LinuxDeviceType, maj: Option<i64>, min: Option<i64>, access: &str| {
        let v = serde_json::json!({"allow": true, "type": t, "major": maj, "minor": min, "access": access});
        serde_json::from_value(v).expect("static device rule")
    };
    use LinuxDeviceType::{B, C};
    vec![
        rule(C, None, None, "m"),
        rule(B, None, None, "m"),
        rule(C, Some(1), Some(3), "rwm"),    // null
        rule(C, Some(1), Some(5), "rwm"),    // zero
        rule(C, Some(1), Some(7), "rwm"),    // full
        rule(C, Some(1), Some(8), "rwm"),    // random
        rule(C, Some(1), Some(9), "rwm"),    // urandom
        rule(C, Some(5), Some(0), "rwm"),    // tty
        rule(C, Some(5), Some(1), "rwm"),    // console
        rule(C, Some(5), Some(2), "rwm"),    // ptmx
        rule(C, Some(136), None, "rwm"),     // pts/*
        rule(C, Some(10), Some(200), "rwm"), // net/tun
    ]
}

/// The effective device rules: the spec's, then the standard allowed ones.
pub fn device_rules(res: &LinuxResources) -> Vec<LinuxDeviceCgroup> {
    let mut rules = res.devices().clone().unwrap_or_default();
    if !rules.is_empty() {
        rules.extend(default_allowed_devices());
    }
    rules
}

/// A hugepage size as cgroup file names use it (`2MB`, `1GB`): anything
/// else could name another file.
fn page_size(s: &str) -> Result<&str> {
    let digits = s.trim_end_matches(['K', 'M', 'G', 'B']);
    let unit = &s[digits.len()..];
    if digits.is_empty()
        || !digits.bytes().all(|b| b.is_ascii_digit())
        || !matches!(unit, "KB" | "MB" | "GB")
    {
        bail!("linux.resources.hugepageLimits pageSize {s:?}: not a page size like 2MB or 1GB");
    }
    Ok(s)
}

/// Checks what can be checked of `linux.resources` without a host: names
/// that become cgroup file names (hugepage sizes).
pub fn check(res: &LinuxResources) -> Result<()> {
    for h in res.hugepage_limits().iter().flatten() {
        page_size(h.page_size())?;
    }
    // config-linux.md "Block IO": each weightDevice entry MUST set weight,
    // leafWeight or both; "RDMA": hcaHandles, hcaObjects or both.
    if let Some(b) = res.block_io() {
        for (i, d) in b.weight_device().iter().flatten().enumerate() {
            if d.weight().is_none() && d.leaf_weight().is_none() {
                bail!(
                    "linux.resources.blockIO.weightDevice[{i}] ({}:{}): sets neither weight nor leafWeight",
                    d.major(),
                    d.minor()
                );
            }
        }
    }
    for (dev, r) in sorted(res.rdma()) {
        if r.hca_handles().is_none() && r.hca_objects().is_none() {
            bail!("linux.resources.rdma.{dev}: sets neither hcaHandles nor hcaObjects");
        }
    }
    Ok(())
}

/// The writes for a cgroup v1 host.
pub fn plan_v1(res: &LinuxResources) -> Result<Vec<Write>> {
    let mut out = Vec::new();
    if let Some(m) = res.memory() {
        let f = "linux.resources.memory";
        if let Some(v) = m.limit() {
            out.push(w(
                "memory",
                "memory.limit_in_bytes",
                v,
                &format!("{f}.limit"),
            ));
        }
        if let Some(v) = m.swap() {
            out.push(w(
                "memory",
                "memory.memsw.limit_in_bytes",
                v,
                &format!("{f}.swap"),
            ));
        }
        if let Some(v) = m.reservation() {
            out.push(w(
                "memory",
                "memory.soft_limit_in_bytes",
                v,
                &format!("{f}.reservation"),
            ));
        }
        #[allow(deprecated)]
        if let Some(v) = m.kernel() {
            out.push(w(
                "memory",
                "memory.kmem.limit_in_bytes",
                v,
                &format!("{f}.kernel"),
            ));
        }
        if let Some(v) = m.kernel_tcp() {
            out.push(w(
                "memory",
                "memory.kmem.tcp.limit_in_bytes",
                v,
                &format!("{f}.kernelTCP"),
            ));
        }
        if let Some(v) = m.swappiness() {
            if v > 100 {
                bail!("{f}.swappiness {v}: must be 0..100");
            }
            out.push(w(
                "memory",
                "memory.swappiness",
                v,
                &format!("{f}.swappiness"),
            ));
        }
        if m.disable_oom_killer() == Some(true) {
            out.push(w(
                "memory",
                "memory.oom_control",
                1,
                &format!("{f}.disableOOMKiller"),
            ));
        }
    }
    if let Some(c) = res.cpu() {
        let f = "linux.resources.cpu";
        if let Some(v) = c.shares().filter(|&v| v != 0) {
            out.push(w("cpu", "cpu.shares", v, &format!("{f}.shares")));
        }
        if let Some(v) = c.period().filter(|&v| v != 0) {
            out.push(w("cpu", "cpu.cfs_period_us", v, &format!("{f}.period")));
        }
        if let Some(v) = c.quota().filter(|&v| v != 0) {
            out.push(w("cpu", "cpu.cfs_quota_us", v, &format!("{f}.quota")));
        }
        if let Some(v) = c.burst() {
            out.push(w("cpu", "cpu.cfs_burst_us", v, &format!("{f}.burst")));
        }
        if let Some(v) = c.realtime_period().filter(|&v| v != 0) {
            out.push(w(
                "cpu",
                "cpu.rt_period_us",
                v,
                &format!("{f}.realtimePeriod"),
            ));
        }
        if let Some(v) = c.realtime_runtime().filter(|&v| v != 0) {
            out.push(w(
                "cpu",
                "cpu.rt_runtime_us",
                v,
                &format!("{f}.realtimeRuntime"),
            ));
        }
        if let Some(v) = c.idle() {
            out.push(w("cpu", "cpu.idle", v, &format!("{f}.idle")));
        }
        if let Some(v) = c.cpus().as_ref().filter(|v| !v.is_empty()) {
            out.push(w("cpuset", "cpuset.cpus", v, &format!("{f}.cpus")));
        }
        if let Some(v) = c.mems().as_ref().filter(|v| !v.is_empty()) {
            out.push(w("cpuset", "cpuset.mems", v, &format!("{f}.mems")));
        }
    }
    if let Some(p) = res.pids() {
        out.push(w(
            "pids",
            "pids.max",
            max_or(if p.limit() <= 0 { -1 } else { p.limit() }),
            "linux.resources.pids.limit",
        ));
    }
    if let Some(b) = res.block_io() {
        let f = "linux.resources.blockIO";
        if let Some(v) = b.weight().filter(|&v| v != 0) {
            out.push(w("blkio", "blkio.weight", v, &format!("{f}.weight")));
        }
        if let Some(v) = b.leaf_weight().filter(|&v| v != 0) {
            out.push(w(
                "blkio",
                "blkio.leaf_weight",
                v,
                &format!("{f}.leafWeight"),
            ));
        }
        for d in b.weight_device().iter().flatten() {
            if let Some(v) = d.weight() {
                out.push(w(
                    "blkio",
                    "blkio.weight_device",
                    format!("{}:{} {v}", d.major(), d.minor()),
                    &format!("{f}.weightDevice"),
                ));
            }
            if let Some(v) = d.leaf_weight() {
                out.push(w(
                    "blkio",
                    "blkio.leaf_weight_device",
                    format!("{}:{} {v}", d.major(), d.minor()),
                    &format!("{f}.weightDevice"),
                ));
            }
        }
        for (list, file, name) in [
            (
                b.throttle_read_bps_device(),
                "blkio.throttle.read_bps_device",
                "throttleReadBpsDevice",
            ),
            (
                b.throttle_write_bps_device(),
                "blkio.throttle.write_bps_device",
                "throttleWriteBpsDevice",
            ),
            (
                b.throttle_read_iops_device(),
                "blkio.throttle.read_iops_device",
                "throttleReadIOPSDevice",
            ),
            (
                b.throttle_write_iops_device(),
                "blkio.throttle.write_iops_device",
                "throttleWriteIOPSDevice",
            ),
        ] {
            for d in list.iter().flatten() {
                out.push(w(
                    "blkio",
                    file,
                    format!("{}:{} {}", d.major(), d.minor(), d.rate()),
                    &format!("{f}.{name}"),
                ));
            }
        }
    }
    for h in res.hugepage_limits().iter().flatten() {
        out.push(w(
            "hugetlb",
            format!("hugetlb.{}.limit_in_bytes", page_size(h.page_size())?),
            h.limit(),
            "linux.resources.hugepageLimits",
        ));
    }
    if let Some(n) = res.network() {
        if let Some(id) = n.class_id() {
            out.push(w(
                "net_cls",
                "net_cls.classid",
                id,
                "linux.resources.network.classID",
            ));
        }
        for p in n.priorities().iter().flatten() {
            out.push(w(
                "net_prio",
                "net_prio.ifpriomap",
                format!("{} {}", p.name(), p.priority()),
                "linux.resources.network.priorities",
            ));
        }
    }
    for (dev, r) in sorted(res.rdma()) {
        out.push(w(
            "rdma",
            "rdma.max",
            rdma_line(dev, r.hca_handles(), r.hca_objects()),
            "linux.resources.rdma",
        ));
    }
    if res.unified().as_ref().is_some_and(|u| !u.is_empty()) {
        bail!("linux.resources.unified: needs cgroup v2, and this host's controllers are on cgroup v1");
    }
    for d in device_rules(res) {
        let file = if d.allow() {
            "devices.allow"
        } else {
            "devices.deny"
        };
        out.push(w(
            "devices",
            file,
            device_rule(&d),
            "linux.resources.devices",
        ));
    }
    Ok(out)
}

fn sorted<V>(m: &Option<std::collections::HashMap<String, V>>) -> Vec<(&String, &V)> {
    let mut v: Vec<_> = m.iter().flatten().collect();
    v.sort_by(|a, b| a.0.cmp(b.0));
    v
}

fn rdma_line(dev: &str, handles: Option<u32>, objects: Option<u32>) -> String {
    let mut s = dev.to_string();
    if let Some(h) = handles {
        s.push_str(&format!(" hca_handle={h}"));
    }
    if let Some(o) = objects {
        s.push_str(&format!(" hca_object={o}"));
    }
    s
}

/// The writes for a cgroup v2 host (device rules are an eBPF program,
/// attached separately).
pub fn plan_v2(res: &LinuxResources) -> Result<Vec<Write>> {
    let mut out = Vec::new();
    if let Some(m) = res.memory() {
        let f = "linux.resources.memory";
        if let Some(v) = m.limit() {
            out.push(w("", "memory.max", max_or(v), &format!("{f}.limit")));
        }
        if let Some(swap) = m.swap() {
            // v1's memsw counts memory+swap; v2's swap.max counts swap only.
            let v = match (swap, m.limit()) {
                (s, _) if s < 0 => "max".to_string(),
                (s, Some(l)) if l >= 0 => {
                    if s < l {
                        bail!("{f}.swap {s}: must not be below the memory limit {l}");
                    }
                    (s - l).to_string()
                }
                (0, _) => "0".to_string(),
                (s, _) => bail!("{f}.swap {s}: a swap limit needs a memory limit on cgroup v2"),
            };
            out.push(w("", "memory.swap.max", v, &format!("{f}.swap")));
        }
        if let Some(v) = m.reservation() {
            out.push(w("", "memory.low", max_or(v), &format!("{f}.reservation")));
        }
        if m.swappiness().is_some_and(|s| s <= 100) {
            crate::logging::warn(
                "linux.resources.memory.swappiness: not supported on cgroup v2; ignored",
            );
        }
    }
    if let Some(c) = res.cpu() {
        let f = "linux.resources.cpu";
        if let Some(v) = c.shares().filter(|&v| v != 0) {
            out.push(w(
                "",
                "cpu.weight",
                shares_to_weight(v),
                &format!("{f}.shares"),
            ));
        }
        let quota = c.quota().filter(|&q| q != 0);
        let period = c.period().filter(|&p| p != 0);
        if quota.is_some() || period.is_some() {
            let q = quota.map_or("max".to_string(), max_or);
            let p = period.unwrap_or(100_000);
            out.push(w("", "cpu.max", format!("{q} {p}"), &format!("{f}.quota")));
        }
        if let Some(v) = c.burst() {
            out.push(w("", "cpu.max.burst", v, &format!("{f}.burst")));
        }
        if let Some(v) = c.idle() {
            out.push(w("", "cpu.idle", v, &format!("{f}.idle")));
        }
        if c.realtime_runtime().is_some_and(|v| v != 0)
            || c.realtime_period().is_some_and(|v| v != 0)
        {
            bail!("{f}.realtimeRuntime: realtime scheduling limits are not supported on cgroup v2");
        }
        if let Some(v) = c.cpus().as_ref().filter(|v| !v.is_empty()) {
            out.push(w("", "cpuset.cpus", v, &format!("{f}.cpus")));
        }
        if let Some(v) = c.mems().as_ref().filter(|v| !v.is_empty()) {
            out.push(w("", "cpuset.mems", v, &format!("{f}.mems")));
        }
    }
    if let Some(p) = res.pids() {
        out.push(w(
            "",
            "pids.max",
            max_or(if p.limit() <= 0 { -1 } else { p.limit() }),
            "linux.resources.pids.limit",
        ));
    }
    if let Some(b) = res.block_io() {
        let f = "linux.resources.blockIO";
        if let Some(v) = b.weight().filter(|&v| v != 0) {
            out.push(w(
                "",
                "io.weight",
                format!("default {}", blkio_to_io_weight(v)),
                &format!("{f}.weight"),
            ));
        }
        for d in b.weight_device().iter().flatten() {
            if let Some(v) = d.weight() {
                out.push(w(
                    "",
                    "io.weight",
                    format!("{}:{} {}", d.major(), d.minor(), blkio_to_io_weight(v)),
                    &format!("{f}.weightDevice"),
                ));
            }
        }
        for (list, key, name) in [
            (
                b.throttle_read_bps_device(),
                "rbps",
                "throttleReadBpsDevice",
            ),
            (
                b.throttle_write_bps_device(),
                "wbps",
                "throttleWriteBpsDevice",
            ),
            (
                b.throttle_read_iops_device(),
                "riops",
                "throttleReadIOPSDevice",
            ),
            (
                b.throttle_write_iops_device(),
                "wiops",
                "throttleWriteIOPSDevice",
            ),
        ] {
            for d in list.iter().flatten() {
                out.push(w(
                    "",
                    "io.max",
                    format!("{}:{} {key}={}", d.major(), d.minor(), d.rate()),
                    &format!("{f}.{name}"),
                ));
            }
        }
    }
    for h in res.hugepage_limits().iter().flatten() {
        out.push(w(
            "",
            format!("hugetlb.{}.max", page_size(h.page_size())?),
            max_or(h.limit()),
            "linux.resources.hugepageLimits",
        ));
    }
    if res
        .network()
        .as_ref()
        .is_some_and(|n| n.class_id().is_some() || n.priorities().is_some())
    {
        bail!("linux.resources.network: net_cls/net_prio do not exist on cgroup v2");
    }
    for (dev, r) in sorted(res.rdma()) {
        out.push(w(
            "",
            "rdma.max",
            rdma_line(dev, r.hca_handles(), r.hca_objects()),
            "linux.resources.rdma",
        ));
    }
    for (key, value) in sorted(res.unified()) {
        let valid = !key.is_empty()
            && !key.contains('/')
            && key.contains('.')
            && !key.starts_with("cgroup.");
        if !valid {
            bail!("linux.resources.unified {key:?}: not a controller file name (like memory.high)");
        }
        out.push(w(
            "",
            key.clone(),
            value,
            &format!("linux.resources.unified {key}"),
        ));
    }
    Ok(out)
}

/// The controllers a set of v2 writes needs enabled in the parents'
/// `cgroup.subtree_control`.
pub fn v2_controllers(writes: &[Write], devices: bool) -> Vec<String> {
    let mut c: Vec<String> = writes
        .iter()
        .filter_map(|w| w.file.split('.').next().map(str::to_string))
        .map(|c| if c == "io" { "io".into() } else { c })
        .collect();
    // Stats and pids accounting are wanted even without limits.
    c.extend(["cpu", "memory", "pids"].map(String::from));
    if devices {
        c.retain(|x| x != "devices");
    }
    c.sort();
    c.dedup();
    c
}

fn write_file(dir: &Path, write: &Write) -> Result<()> {
    write_through(&mut None, dir, write)
}

/// [`write_file`] through `open`, the file last written: writes that
/// follow each other to the same file (v1 device rules, one per write:
/// the kernel takes each `write` on a cgroup file as a whole value) share
/// one open instead of an open, write and close each.
fn write_through(open: &mut Option<(PathBuf, fs::File)>, dir: &Path, write: &Write) -> Result<()> {
    use std::io::Write as _;
    let path = dir.join(&write.file);
    let result = match open {
        Some((p, f)) if *p == path => f.write_all(write.value.as_bytes()),
        _ => {
            *open = None;
            // As `fs::write` opens it.
            super::cgfs::open(&path, libc::O_WRONLY | libc::O_CREAT | libc::O_TRUNC).and_then(
                |mut f| {
                    f.write_all(write.value.as_bytes())?;
                    *open = Some((path.clone(), f));
                    Ok(())
                },
            )
        }
    };
    result.map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            anyhow::anyhow!(
                "{}: {} does not exist in {} (controller not available?)",
                write.field,
                write.file,
                dir.display()
            )
        } else {
            anyhow::anyhow!(
                "{}: cannot write {:?} to {}: {e}",
                write.field,
                write.value,
                path.display()
            )
        }
    })
}

/// Enables the controllers along the path from the v2 root to `dir`.
fn enable_v2_controllers(paths: &CgroupPaths, dir: &Path, wanted: &[String]) -> Result<()> {
    // Walk down from the first directory that has cgroup.subtree_control
    // above the container's directory.
    let mut ancestors: Vec<&Path> = dir.ancestors().skip(1).collect();
    ancestors.reverse();
    for a in ancestors {
        let available = match cgfs::read_to_string(&a.join("cgroup.controllers")) {
            Ok(s) => s,
            Err(_) => continue,
        };
        // Only what is not enabled yet (usually nothing: the parents of
        // every container but the first have them all).
        let enabled = cgfs::read_to_string(&a.join("cgroup.subtree_control")).unwrap_or_default();
        let enable: Vec<String> = wanted
            .iter()
            .filter(|c| available.split_whitespace().any(|x| x == c.as_str()))
            .filter(|c| !enabled.split_whitespace().any(|x| x == c.as_str()))
            .map(|c| format!("+{c}"))
            .collect();
        if enable.is_empty() {
            continue;
        }
        // Enabling controllers in a cgroup that holds processes (a login's
        // session scope) would make its children invalid domains that take
        // no processes at all: leave such a cgroup alone.
        let populated =
            cgfs::read_to_string(&a.join("cgroup.procs")).is_ok_and(|p| !p.trim().is_empty());
        if populated
            && a.parent()
                .is_some_and(|p| cgfs::exists(&p.join("cgroup.controllers")))
        {
            continue;
        }
        // Writing them one by one lets the ones that can be enabled be.
        for e in enable {
            let _ = cgfs::write(&a.join("cgroup.subtree_control"), &e);
        }
    }
    let _ = paths;
    Ok(())
}

/// The first field of `res` that asks for a limit (anything but device
/// rules), e.g. `linux.resources.memory`; None when there is none.
pub fn first_limit(res: &LinuxResources) -> Option<String> {
    let v = serde_json::to_value(res).ok()?;
    let mut keys: Vec<(&String, &serde_json::Value)> = v.as_object()?.iter().collect();
    keys.sort_by_key(|(k, _)| k.as_str());
    keys.into_iter()
        .find(|(k, v)| {
            k.as_str() != "devices"
                && !v.is_null()
                && v.as_object()
                    .is_none_or(|o| o.values().any(|x| !x.is_null()))
                && v.as_array().is_none_or(|a| !a.is_empty())
        })
        .map(|(k, _)| format!("linux.resources.{k}"))
}

/// Attaches the cgroup v2 device program for the rules of `res`, which
/// `apply` was given without them (`launch::make_cgroups`). On v1 `apply`
/// writes the rules with the other limits.
pub fn apply_devices_v2(paths: &CgroupPaths, res: &LinuxResources) -> Result<()> {
    let rules = device_rules(res);
    if rules.is_empty() {
        return Ok(());
    }
    if !paths.unified {
        bail!("linux.resources.devices: a device program needs cgroup v2");
    }
    let dir = paths.v2().context("no cgroup2 directory")?;
    super::devices_bpf::attach(dir, &rules).context("linux.resources.devices")
}

/// Applies `res` to the container's cgroups.
pub fn apply(paths: &CgroupPaths, res: &LinuxResources) -> Result<()> {
    if paths.unified {
        let dir = paths.v2().context("no cgroup2 directory")?;
        let writes = plan_v2(res)?;
        let rules = device_rules(res);
        enable_v2_controllers(paths, dir, &v2_controllers(&writes, !rules.is_empty()))?;
        for wr in &writes {
            write_file(dir, wr)?;
        }
        if !rules.is_empty() {
            super::devices_bpf::attach(dir, &rules).context("linux.resources.devices")?;
        }
        return Ok(());
    }
    let writes = plan_v1(res)?;
    let mut open = None;
    let mut i = 0;
    while i < writes.len() {
        let wr = &writes[i];
        let Some(dir) = paths.v1(wr.controller) else {
            bail!(
                "{}: the {} controller is not mounted on this host",
                wr.field,
                wr.controller
            );
        };
        // The memory limit must stay below memory+swap: when raising both,
        // memsw has to go first. Try the given order, then the other.
        if wr.file == "memory.limit_in_bytes" {
            if let Some(next) = writes
                .get(i + 1)
                .filter(|n| n.file == "memory.memsw.limit_in_bytes")
            {
                if write_file(dir, wr).is_err() {
                    write_file(dir, next)?;
                    write_file(dir, wr)?;
                } else {
                    write_file(dir, next)?;
                }
                i += 2;
                continue;
            }
        }
        if wr.file == "memory.limit_in_bytes"
            && cgfs::exists(&dir.join("memory.memsw.limit_in_bytes"))
        {
            // A new limit alone keeps the container's swap allowance
            // (memsw − limit): raise memsw first when the limit grows.
            let read = |f: &str| -> Option<i64> {
                cgfs::read_to_string(&dir.join(f)).ok()?.trim().parse().ok()
            };
            if let (Some(old_limit), Some(old_memsw), Ok(new)) = (
                read("memory.limit_in_bytes"),
                read("memory.memsw.limit_in_bytes"),
                wr.value.parse::<i64>(),
            ) {
                if old_memsw >= (1 << 62) {
                    // Swap is unlimited: a new memory limit leaves it so (as runc).
                    write_file(dir, wr)?;
                    i += 1;
                    continue;
                }
                let allowance = old_memsw.saturating_sub(old_limit);
                let memsw = if new < 0 {
                    -1
                } else {
                    new.saturating_add(allowance)
                };
                let memsw_write = Write {
                    file: "memory.memsw.limit_in_bytes".into(),
                    value: memsw.to_string(),
                    ..wr.clone()
                };
                if new < 0 || new > old_limit {
                    write_file(dir, &memsw_write)?;
                    write_file(dir, wr)?;
                } else {
                    write_file(dir, wr)?;
                    write_file(dir, &memsw_write)?;
                }
                i += 1;
                continue;
            }
        }
        // The kernel checks quota/period against the parent's limit at each
        // write, with the other value as it is then: shrinking the period
        // under the old quota, or raising the quota over the old period, can
        // exceed it where the pair does not. Period first (what raising
        // needs); if that is refused, the quota, then the period again.
        if wr.file == "cpu.cfs_period_us" {
            if let Some(quota) = writes.get(i + 1).filter(|n| n.file == "cpu.cfs_quota_us") {
                if write_file(dir, wr).is_err() {
                    write_file(dir, quota)?;
                    write_file(dir, wr)?;
                } else {
                    write_file(dir, quota)?;
                }
                i += 2;
                continue;
            }
        }
        if wr.file.starts_with("memory.kmem") && !cgfs::exists(&dir.join(&wr.file)) {
            crate::logging::warn(&format!(
                "{}: not supported by this kernel; ignored",
                wr.field
            ));
            i += 1;
            continue;
        }
        if wr.file == "blkio.weight"
            && !cgfs::exists(&dir.join("blkio.weight"))
            && cgfs::exists(&dir.join("blkio.bfq.weight"))
        {
            let mut bfq = wr.clone();
            bfq.file = "blkio.bfq.weight".into();
            write_file(dir, &bfq)?;
            i += 1;
            continue;
        }
        write_through(&mut open, dir, wr)?;
        i += 1;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn res(v: serde_json::Value) -> LinuxResources {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn entries_without_any_value_are_refused() {
        let e = check(&res(serde_json::json!({
            "blockIO": {"weightDevice": [{"major": 8, "minor": 0, "weight": 10},
                                         {"major": 8, "minor": 16}]}
        })))
        .unwrap_err()
        .to_string();
        assert!(
            e.starts_with("linux.resources.blockIO.weightDevice[1] (8:16):"),
            "{e}"
        );
        let e = check(&res(serde_json::json!({
            "rdma": {"mlx5_0": {"hcaObjects": 3}, "mlx5_1": {}}
        })))
        .unwrap_err()
        .to_string();
        assert!(e.starts_with("linux.resources.rdma.mlx5_1:"), "{e}");
        check(&res(serde_json::json!({
            "blockIO": {"weightDevice": [{"major": 8, "minor": 0, "leafWeight": 10}]},
            "rdma": {"mlx5_0": {"hcaHandles": 1}}
        })))
        .unwrap();
    }

    #[test]
    fn shares_convert_like_runc() {
        assert_eq!(shares_to_weight(2), 1);
        assert_eq!(shares_to_weight(1024), 39);
        assert_eq!(shares_to_weight(262_144), 10_000);
    }

    #[test]
    fn v1_memory_and_cpu_files() {
        let w = plan_v1(&res(serde_json::json!({
            "memory": {"limit": 33554432, "swap": 67108864, "swappiness": 10},
            "cpu": {"shares": 512, "quota": 50000, "period": 100000, "cpus": "0"},
            "pids": {"limit": 20}
        })))
        .unwrap();
        let files: Vec<_> = w
            .iter()
            .map(|w| (w.file.as_str(), w.value.as_str()))
            .collect();
        assert!(files.contains(&("memory.limit_in_bytes", "33554432")));
        assert!(files.contains(&("memory.memsw.limit_in_bytes", "67108864")));
        assert!(files.contains(&("cpu.cfs_quota_us", "50000")));
        assert!(files.contains(&("cpuset.cpus", "0")));
        assert!(files.contains(&("pids.max", "20")));
        // Period goes before quota so a quota above the old period works.
        let p = files
            .iter()
            .position(|f| f.0 == "cpu.cfs_period_us")
            .unwrap();
        let q = files
            .iter()
            .position(|f| f.0 == "cpu.cfs_quota_us")
            .unwrap();
        assert!(p < q);
    }

    #[test]
    fn v2_conversions() {
        let w = plan_v2(&res(serde_json::json!({
            "memory": {"limit": 1000, "swap": 3000, "reservation": 500},
            "cpu": {"shares": 1024, "quota": 50000, "period": 100000},
            "pids": {"limit": -1},
            "blockIO": {"weight": 500},
            "unified": {"memory.high": "900"}
        })))
        .unwrap();
        let get = |f: &str| w.iter().find(|w| w.file == f).map(|w| w.value.clone());
        assert_eq!(get("memory.max").as_deref(), Some("1000"));
        assert_eq!(get("memory.swap.max").as_deref(), Some("2000"));
        assert_eq!(get("memory.low").as_deref(), Some("500"));
        assert_eq!(get("cpu.weight").as_deref(), Some("39"));
        assert_eq!(get("cpu.max").as_deref(), Some("50000 100000"));
        assert_eq!(get("pids.max").as_deref(), Some("max"));
        assert_eq!(get("io.weight").as_deref(), Some("default 4950"));
        assert_eq!(get("memory.high").as_deref(), Some("900"));
    }

    #[test]
    fn unified_keys_are_validated() {
        for bad in ["../x", "cgroup.procs", "nodot"] {
            let e = plan_v2(&res(serde_json::json!({"unified": {bad: "1"}}))).unwrap_err();
            assert!(e.to_string().contains("linux.resources.unified"), "{e}");
        }
    }

    #[test]
    fn unified_on_v1_is_refused() {
        let e = plan_v1(&res(serde_json::json!({"unified": {"memory.high": "1"}}))).unwrap_err();
        assert!(e.to_string().contains("cgroup v2"));
    }

    #[test]
    fn device_rules_keep_order_then_add_defaults() {
        let r = res(serde_json::json!({"devices": [
            {"allow": false, "access": "rwm"},
            {"allow": true, "type": "c", "major": 10, "minor": 229, "access": "rw"}
        ]}));
        let w = plan_v1(&r).unwrap();
        let dev: Vec<_> = w.iter().filter(|w| w.controller == "devices").collect();
        assert_eq!(dev[0].file, "devices.deny");
        assert_eq!(dev[0].value, "a *:* rwm");
        assert_eq!(dev[1].value, "c 10:229 rw");
        assert!(dev
            .iter()
            .any(|w| w.value == "c 1:3 rwm" && w.file == "devices.allow"));
    }
}
