//! Commands that watch and steer a running container through its cgroup:
//! `pause`, `resume`, `ps`, `events`, `update`.

use std::io::{Read, Write};
use std::os::fd::{AsFd, BorrowedFd};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use oci_spec::runtime::LinuxResources;
use serde_json::json;

use crate::cgroups;
use crate::cli::{Global, ListFormat, Update};
use crate::state::{Container, Status, Store};

fn load(global: &Global, id: &str) -> Result<(crate::state::Locked, Container, Status)> {
    let store = Store::new(&global.root);
    let locked = store.open(id)?;
    let c = locked.load()?;
    let status = c.status(&locked.dir);
    Ok((locked, c, status))
}

/// A container without cgroups (rootless, the cgroup tree not writable)
/// has no freezer: `pause`, `resume` and `update` say so.
fn needs_cgroups(c: &Container, what: &str) -> Result<()> {
    if c.cgroups.dirs.is_empty() {
        bail!("{what}: container {} has no cgroup (rootless, and the cgroup tree is not writable by its user): no freezer or limits to use", c.id);
    }
    Ok(())
}

pub fn pause(global: &Global, id: &str) -> Result<()> {
    let (_l, c, status) = load(global, id)?;
    needs_cgroups(&c, "pause")?;
    match status {
        Status::Running | Status::Created => cgroups::set_frozen(&c.cgroups, true),
        Status::Paused => bail!("container {id} is already paused"),
        Status::Stopped | Status::Creating => bail!("container not running"),
    }
}

pub fn resume(global: &Global, id: &str) -> Result<()> {
    let (_l, c, status) = load(global, id)?;
    needs_cgroups(&c, "resume")?;
    match status {
        Status::Paused => cgroups::set_frozen(&c.cgroups, false),
        _ => bail!("container not paused"),
    }
}

pub fn ps(global: &Global, id: &str, format: ListFormat, ps_args: &[String]) -> Result<()> {
    let (_l, c, status) = load(global, id)?;
    // A stopped container has no processes: an empty list, as runc prints.
    let pids = if status == Status::Stopped {
        Vec::new()
    } else {
        super::container_pids(&c)?
    };
    if format == ListFormat::Json {
        println!("{}", serde_json::to_string(&pids)?);
        return Ok(());
    }
    let args: Vec<String> = if ps_args.is_empty() {
        vec!["-ef".into()]
    } else {
        ps_args.to_vec()
    };
    let out = std::process::Command::new("ps")
        .args(&args)
        .output()
        .context("cannot run ps")?;
    if !out.status.success() {
        bail!(
            "ps {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let mut lines = text.lines();
    let header = lines.next().unwrap_or_default();
    let pid_col = header
        .split_whitespace()
        .position(|h| h == "PID")
        .context("ps output has no PID column")?;
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "{header}")?;
    for line in lines {
        let pid = line
            .split_whitespace()
            .nth(pid_col)
            .and_then(|p| p.parse::<i32>().ok());
        if pid.is_some_and(|p| pids.contains(&p)) {
            writeln!(stdout, "{line}")?;
        }
    }
    Ok(())
}

/// Parses a Go-style duration: `5s`, `500ms`, `1m`, `1.5s`.
pub fn parse_duration(s: &str) -> Result<Duration> {
    let s = s.trim();
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (n, unit) = s.split_at(split);
    let n: f64 = n
        .parse()
        .with_context(|| format!("invalid duration {s:?}"))?;
    let secs = match unit {
        "ns" => n / 1e9,
        "us" | "µs" => n / 1e6,
        "ms" => n / 1e3,
        "s" | "" => n,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        _ => bail!("invalid duration {s:?}"),
    };
    if secs <= 0.0 {
        bail!("duration must be greater than 0");
    }
    Ok(Duration::from_secs_f64(secs))
}

pub fn events(global: &Global, id: &str, stats: bool, interval: &str) -> Result<()> {
    let interval = parse_duration(interval)?;
    let (locked, c, status) = load(global, id)?;
    drop(locked);
    if status == Status::Stopped {
        bail!("container with id {id} is not running");
    }
    // runc's order: type, id, data (serde_json sorts object keys).
    let stats_event = |c: &Container| {
        let mut data = cgroups::stats::collect(&c.cgroups);
        for k in ["cpuset", "hugetlb", "intel_rdt"] {
            if data.get(k).is_none() {
                data[k] = json!({});
            }
        }
        data["network_interfaces"] = serde_json::Value::Null;
        format!(
            "{{\"type\":\"stats\",\"id\":{},\"data\":{}}}",
            json!(id),
            data
        )
    };
    if stats {
        println!("{}", stats_event(&c));
        return Ok(());
    }
    // Streaming: stats every interval, an `oom` line whenever the kernel
    // reports one, until the container's init exits. The watches are set
    // up before the first line, so anything after it is seen.
    let mut oom = cgroups::notify::OomWatch::new(&c.cgroups)?;
    // A pidfd says when init exits; it is checked to be the recorded init
    // (not a reuse of its pid) after opening.
    let pidfd = crate::sys::pidfd_open(c.pid)
        .ok()
        .filter(|_| c.init_alive());
    let oom_line = format!("{{\"type\":\"oom\",\"id\":{}}}", json!(id));
    let mut out = std::io::stdout().lock();
    let mut next_stats = std::time::Instant::now();
    loop {
        let now = std::time::Instant::now();
        if now >= next_stats {
            writeln!(out, "{}", stats_event(&c))?;
            out.flush()?;
            next_stats = now + interval;
        }
        // Without a pidfd, look at init once a second.
        let mut wait = next_stats.saturating_duration_since(now);
        if pidfd.is_none() {
            wait = wait.min(Duration::from_secs(1));
        }
        let ready = wait_readable(
            &[
                oom.as_ref().map(|o| o.fd()),
                pidfd.as_ref().map(|p| p.as_fd()),
            ],
            wait,
        )?;
        if ready[0] {
            if let Some(o) = oom.as_mut() {
                if o.take()? {
                    writeln!(out, "{oom_line}")?;
                    out.flush()?;
                }
            }
        }
        if ready[1] || !c.init_alive() {
            // A last look: on v2 the file notification can trail the
            // kill of an init that ran out of memory.
            if let Some(o) = oom.as_mut() {
                if o.take()? {
                    writeln!(out, "{oom_line}")?;
                    out.flush()?;
                }
            }
            return Ok(());
        }
    }
}

/// Waits up to `timeout` for any of `fds` to become readable; which are.
fn wait_readable(fds: &[Option<BorrowedFd<'_>>], timeout: Duration) -> Result<Vec<bool>> {
    use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
    let mut pfds: Vec<PollFd> = fds
        .iter()
        .flatten()
        .map(|fd| PollFd::new(*fd, PollFlags::POLLIN))
        .collect();
    let ms = i32::try_from(timeout.as_millis()).unwrap_or(i32::MAX);
    let ms = PollTimeout::try_from(ms).unwrap_or(PollTimeout::MAX);
    match poll(&mut pfds, ms) {
        Ok(_) | Err(nix::errno::Errno::EINTR) => {}
        Err(e) => return Err(e).context("poll"),
    }
    let mut revents = pfds
        .iter()
        .map(|p| p.revents().is_some_and(|r| !r.is_empty()));
    Ok(fds
        .iter()
        .map(|fd| fd.is_some() && revents.next().unwrap_or(false))
        .collect())
}

/// Parses a byte size the way runc's flags take it: `1024`, `64m`, `1G`, `-1`.
pub fn parse_bytes(s: &str) -> Result<i64> {
    let t = s.trim();
    if t == "-1" {
        return Ok(-1);
    }
    let lower = t.to_ascii_lowercase();
    let lower = lower.strip_suffix('b').unwrap_or(&lower);
    let (num, mult) = match lower.chars().last() {
        Some('k') => (&lower[..lower.len() - 1], 1i64 << 10),
        Some('m') => (&lower[..lower.len() - 1], 1 << 20),
        Some('g') => (&lower[..lower.len() - 1], 1 << 30),
        Some('t') => (&lower[..lower.len() - 1], 1 << 40),
        _ => (lower, 1),
    };
    let n: f64 = num.parse().with_context(|| format!("invalid size {s:?}"))?;
    if n < 0.0 {
        bail!("invalid size {s:?}");
    }
    Ok((n * mult as f64) as i64)
}

/// The LinuxResources an `update` asks for: `-r FILE|-` merged with flags.
pub fn update_resources(u: &Update) -> Result<LinuxResources> {
    let mut v = match &u.resources {
        Some(src) => {
            let mut text = String::new();
            if src == "-" {
                std::io::stdin().read_to_string(&mut text)?;
            } else {
                text =
                    std::fs::read_to_string(src).with_context(|| format!("--resources {src}"))?;
            }
            serde_json::from_str::<serde_json::Value>(&text).context("--resources: invalid JSON")?
        }
        None => json!({}),
    };
    let mut set = |path: &[&str], val: serde_json::Value| {
        let mut cur = &mut v;
        for p in &path[..path.len() - 1] {
            if cur.get(*p).is_none() {
                cur[*p] = json!({});
            }
            cur = &mut cur[*p];
        }
        cur[path[path.len() - 1]] = val;
    };
    if let Some(w) = u.blkio_weight {
        set(&["blockIO", "weight"], json!(w));
    }
    if let Some(x) = u.cpu_period {
        set(&["cpu", "period"], json!(x));
    }
    if let Some(x) = u.cpu_quota {
        set(&["cpu", "quota"], json!(x));
    }
    if let Some(x) = u.cpu_rt_period {
        set(&["cpu", "realtimePeriod"], json!(x));
    }
    if let Some(x) = u.cpu_rt_runtime {
        set(&["cpu", "realtimeRuntime"], json!(x));
    }
    if let Some(x) = u.cpu_shares {
        set(&["cpu", "shares"], json!(x));
    }
    if let Some(x) = &u.cpuset_cpus {
        set(&["cpu", "cpus"], json!(x));
    }
    if let Some(x) = &u.cpuset_mems {
        set(&["cpu", "mems"], json!(x));
    }
    for (flag, key) in [
        (&u.memory, "limit"),
        (&u.memory_reservation, "reservation"),
        (&u.memory_swap, "swap"),
        (&u.kernel_memory, "kernel"),
        (&u.kernel_memory_tcp, "kernelTCP"),
    ] {
        if let Some(x) = flag {
            set(
                &["memory", key],
                json!(parse_bytes(x).with_context(|| format!("--{key}"))?),
            );
        }
    }
    if let Some(x) = u.pids_limit {
        set(&["pids", "limit"], json!(x));
    }
    serde_path_to_error::deserialize(v)
        .map_err(|e| anyhow::anyhow!("--resources {}: {}", e.path(), e.inner()))
}

pub fn update(global: &Global, u: &Update) -> Result<()> {
    let res = update_resources(u)?;
    // What `create` refuses, `update` refuses too, before anything is written.
    cgroups::resources::check(&res)?;
    let (_l, c, status) = load(global, &u.id)?;
    if status == Status::Stopped {
        bail!("container not running");
    }
    needs_cgroups(&c, "update")?;
    if res.devices().is_some() {
        bail!("update: device rules cannot be changed on a running container");
    }
    cgroups::resources::apply(&c.cgroups, &res)?;
    // The unit's properties too, or a `systemctl daemon-reload` would put
    // the old values back.
    if let Some(unit) = &c.cgroups.systemd {
        let legacy = !c.cgroups.unified;
        cgroups::systemd_bus::set(unit, &cgroups::systemd::resource_properties(&res, legacy))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_like_go() {
        assert_eq!(parse_duration("5s").unwrap(), Duration::from_secs(5));
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("1m").unwrap(), Duration::from_secs(60));
        assert!(parse_duration("0s").is_err());
        assert!(parse_duration("5x").is_err());
    }

    #[test]
    fn sizes_parse_like_runc() {
        assert_eq!(parse_bytes("64M").unwrap(), 64 << 20);
        assert_eq!(parse_bytes("1g").unwrap(), 1 << 30);
        assert_eq!(parse_bytes("1024").unwrap(), 1024);
        assert_eq!(parse_bytes("-1").unwrap(), -1);
        assert!(parse_bytes("lots").is_err());
    }

    #[test]
    fn update_flags_merge_into_resources() {
        let u = Update {
            memory: Some("64M".into()),
            pids_limit: Some(30),
            cpu_shares: Some(512),
            id: "x".into(),
            ..Default::default()
        };
        let r = update_resources(&u).unwrap();
        assert_eq!(r.memory().as_ref().unwrap().limit(), Some(64 << 20));
        assert_eq!(r.pids().as_ref().unwrap().limit(), 30);
        assert_eq!(r.cpu().as_ref().unwrap().shares(), Some(512));
    }
}
