//! Resource usage of a container, in the JSON shape of runc's `events
//! --stats` (`{"type":"stats","id":..,"data":{"cpu":..,"memory":..,...}}`),
//! read from v1 or v2 files.

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;

use serde_json::{json, Value};

use super::CgroupPaths;

fn read(dir: &Path, file: &str) -> Option<String> {
    fs::read_to_string(dir.join(file)).ok()
}

fn num(dir: &Path, file: &str) -> u64 {
    read(dir, file)
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0)
}

/// `max` or a number; `max` (no limit) reads as u64::MAX like runc reports it.
fn limit(dir: &Path, file: &str) -> u64 {
    match read(dir, file) {
        Some(s) if s.trim() == "max" => u64::MAX,
        Some(s) => s.trim().parse().unwrap_or(0),
        None => 0,
    }
}

/// `key value` lines (memory.stat, cpu.stat) as a map.
fn kv(dir: &Path, file: &str) -> BTreeMap<String, u64> {
    read(dir, file)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let mut it = l.split_whitespace();
            Some((it.next()?.to_string(), it.next()?.parse().ok()?))
        })
        .collect()
}

fn clock_ticks() -> u64 {
    // SAFETY: sysconf has no preconditions.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 {
        t as u64
    } else {
        100
    }
}

fn blkio_v1(dir: &Path) -> Value {
    let entries = |file: &str| -> Vec<Value> {
        read(dir, file)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| {
                let f: Vec<&str> = l.split_whitespace().collect();
                if f.len() != 3 {
                    return None;
                }
                let (maj, min) = f[0].split_once(':')?;
                Some(
                    json!({"major": maj.parse::<u64>().ok()?, "minor": min.parse::<u64>().ok()?,
                            "op": f[1], "value": f[2].parse::<u64>().ok()?}),
                )
            })
            .collect()
    };
    json!({
        "io_service_bytes_recursive": entries("blkio.throttle.io_service_bytes_recursive"),
        "io_serviced_recursive": entries("blkio.throttle.io_serviced_recursive"),
    })
}

fn v1(paths: &CgroupPaths) -> Value {
    let mut data = json!({});
    if let Some(d) = paths.v1("cpuacct") {
        let percpu: Vec<u64> = read(d, "cpuacct.usage_percpu")
            .unwrap_or_default()
            .split_whitespace()
            .filter_map(|s| s.parse().ok())
            .collect();
        let stat = kv(d, "cpuacct.stat");
        let ns = 1_000_000_000 / clock_ticks();
        data["cpu"]["usage"] = json!({
            "total": num(d, "cpuacct.usage"),
            "percpu": percpu,
            "kernel": stat.get("system").copied().unwrap_or(0) * ns,
            "user": stat.get("user").copied().unwrap_or(0) * ns,
        });
    }
    if let Some(d) = paths.v1("cpu") {
        let s = kv(d, "cpu.stat");
        data["cpu"]["throttling"] = json!({
            "periods": s.get("nr_periods").copied().unwrap_or(0),
            "throttled_periods": s.get("nr_throttled").copied().unwrap_or(0),
            "throttled_time": s.get("throttled_time").copied().unwrap_or(0),
        });
    }
    if let Some(d) = paths.v1("memory") {
        let entry = |prefix: &str| {
            json!({
                "usage": num(d, &format!("{prefix}usage_in_bytes")),
                "max": num(d, &format!("{prefix}max_usage_in_bytes")),
                "failcnt": num(d, &format!("{prefix}failcnt")),
                "limit": limit(d, &format!("{prefix}limit_in_bytes")),
            })
        };
        data["memory"] = json!({
            "usage": entry("memory."),
            "swap": entry("memory.memsw."),
            "kernel": entry("memory.kmem."),
            "kernelTCP": entry("memory.kmem.tcp."),
            "raw": kv(d, "memory.stat"),
        });
    }
    if let Some(d) = paths.v1("pids") {
        data["pids"] = json!({"current": num(d, "pids.current"), "limit": limit(d, "pids.max")});
    }
    if let Some(d) = paths.v1("blkio") {
        data["blkio"] = blkio_v1(d);
    }
    data
}

fn v2(dir: &Path) -> Value {
    let cpu = kv(dir, "cpu.stat");
    let get = |m: &BTreeMap<String, u64>, k: &str| m.get(k).copied().unwrap_or(0);
    let events = kv(dir, "memory.events");
    json!({
        "cpu": {
            "usage": {
                "total": get(&cpu, "usage_usec") * 1000,
                "kernel": get(&cpu, "system_usec") * 1000,
                "user": get(&cpu, "user_usec") * 1000,
                "percpu": [],
            },
            "throttling": {
                "periods": get(&cpu, "nr_periods"),
                "throttled_periods": get(&cpu, "nr_throttled"),
                "throttled_time": get(&cpu, "throttled_usec") * 1000,
            }
        },
        "memory": {
            "usage": {
                "usage": num(dir, "memory.current"),
                "max": num(dir, "memory.peak"),
                "limit": limit(dir, "memory.max"),
                "failcnt": get(&events, "max"),
            },
            "swap": {
                "usage": num(dir, "memory.swap.current"),
                "limit": limit(dir, "memory.swap.max"),
            },
            "raw": kv(dir, "memory.stat"),
        },
        "pids": {"current": num(dir, "pids.current"), "limit": limit(dir, "pids.max")},
        "blkio": {},
    })
}

/// The `data` object of a stats event.
pub fn collect(paths: &CgroupPaths) -> Value {
    if paths.unified {
        match paths.v2() {
            Some(d) => v2(d),
            None => json!({}),
        }
    } else {
        v1(paths)
    }
}

/// Number of OOM kills the container's cgroup has seen.
pub fn oom_kills(paths: &CgroupPaths) -> u64 {
    if paths.unified {
        return paths.v2().map_or(0, |d| {
            kv(d, "memory.events").get("oom_kill").copied().unwrap_or(0)
        });
    }
    paths.v1("memory").map_or(0, |d| {
        kv(d, "memory.oom_control")
            .get("oom_kill")
            .copied()
            .unwrap_or(0)
    })
}
