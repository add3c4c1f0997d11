//! The systemd cgroup driver's pure part (`--systemd-cgroup`): what a
//! `slice:prefix:name` cgroupsPath names, where systemd puts that unit's
//! cgroup, and which unit properties stand for the config's resources.
//! Talking to systemd is `cgroups::systemd_unit`'s job.
//!
//! The rules are runc's (docs/systemd.md in runc): an empty cgroupsPath is
//! `:rrun:<id>`; an empty slice is `system.slice` (`user.slice` for a
//! rootless caller), `-` the root slice; the unit is `<prefix>-<name>.scope`,
//! or `<name>` when that ends in `.slice`. Slice names nest by their dashes,
//! as systemd lays them out: `a-b-c.slice` is `a.slice/a-b.slice/a-b-c.slice`.
//!
//! Every resource systemd has a property for is given to systemd too, so a
//! `systemctl daemon-reload` (which re-applies a unit's properties) does not
//! undo it; the same values are then written into the delegated cgroup
//! directly, with everything systemd has no property for.

use anyhow::{bail, Result};
use oci_spec::runtime::{LinuxDeviceCgroup, LinuxDeviceType, LinuxResources};

/// The unit a container's cgroup is, and where it lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnitPath {
    /// The parent slice (`system.slice`), empty for the root slice.
    pub slice: String,
    /// The unit itself: `prefix-name.scope`, or a `.slice`.
    pub unit: String,
    /// The cgroup path of the unit below the hierarchy's root, e.g.
    /// `/system.slice/rrun-abc.scope`.
    pub cgroup: String,
}

impl UnitPath {
    pub fn is_slice(&self) -> bool {
        self.unit.ends_with(".slice")
    }
}

/// Parses a cgroupsPath for the systemd driver.
pub fn parse(cgroups_path: Option<&str>, id: &str, rootless: bool) -> Result<UnitPath> {
    let given = cgroups_path.filter(|p| !p.is_empty());
    let text = given
        .map(str::to_string)
        .unwrap_or_else(|| format!(":rrun:{id}"));
    let field = || format!("linux.cgroupsPath {text:?}");
    let parts: Vec<&str> = text.split(':').collect();
    let [slice, prefix, name] = parts[..] else {
        bail!(
            "{}: with --systemd-cgroup it must be slice:prefix:name (e.g. system.slice:docker:ID)",
            field()
        );
    };
    let slice = match slice {
        "" if rootless => "user.slice",
        "" => "system.slice",
        "-" => "",
        s => s,
    };
    if name.is_empty() {
        bail!("{}: the name part is empty", field());
    }
    for (what, part) in [("prefix", prefix), ("name", name)] {
        if !valid_unit_chars(part) {
            bail!(
                "{}: the {what} {part:?} is not a valid systemd unit name part",
                field()
            );
        }
    }
    let unit = if name.ends_with(".slice") {
        name.to_string()
    } else if prefix.is_empty() {
        format!("{name}.scope")
    } else {
        format!("{prefix}-{name}.scope")
    };
    let mut cgroup = expand_slice(slice).map_err(|e| anyhow::anyhow!("{}: {e}", field()))?;
    if unit.ends_with(".slice") {
        // A slice unit nests like any slice (and must sit in `slice`).
        let full = expand_slice(&unit).map_err(|e| anyhow::anyhow!("{}: {e}", field()))?;
        if !full.starts_with(&cgroup) {
            bail!("{}: the slice {unit} is not inside {slice}", field());
        }
        cgroup = full;
    } else {
        cgroup.push('/');
        cgroup.push_str(&unit);
    }
    Ok(UnitPath {
        slice: slice.to_string(),
        unit,
        cgroup,
    })
}

/// Characters systemd accepts in a unit name (letters, digits, `:-_.\\`;
/// `:` is the separator here, so not that).
fn valid_unit_chars(s: &str) -> bool {
    s.chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '\\' | '@'))
        && !s.starts_with('.')
}

/// `a-b-c.slice` → `/a.slice/a-b.slice/a-b-c.slice`; `` → `` (the root).
pub fn expand_slice(slice: &str) -> Result<String> {
    if slice.is_empty() || slice == "-.slice" {
        return Ok(String::new());
    }
    let Some(stem) = slice.strip_suffix(".slice") else {
        bail!("slice {slice:?} must end in .slice");
    };
    if stem.is_empty()
        || stem.contains('/')
        || stem.starts_with('-')
        || stem.ends_with('-')
        || stem.contains("--")
        || !valid_unit_chars(stem)
    {
        bail!("slice {slice:?} is not a valid slice name");
    }
    let mut out = String::new();
    let mut prefix = String::new();
    for (i, part) in stem.split('-').enumerate() {
        if i > 0 {
            prefix.push('-');
        }
        prefix.push_str(part);
        out.push('/');
        out.push_str(&prefix);
        out.push_str(".slice");
    }
    Ok(out)
}

/// A unit property's value, in the D-Bus types systemd expects.
#[derive(Debug, Clone, PartialEq)]
pub enum Prop {
    Bool(bool),
    U64(u64),
    Str(String),
    Strs(Vec<String>),
    /// `ay`: a CPU or memory-node bitmask.
    Bytes(Vec<u8>),
    /// `au`: process ids.
    Pids(Vec<u32>),
    /// `a(ss)`: `DeviceAllow` entries (device, access).
    Devices(Vec<(String, String)>),
}

/// systemd's "no limit" for u64 properties.
pub const INFINITY: u64 = u64::MAX;

/// The description of the unit rrun makes for container `id` (how `delete`
/// tells its own unit from another of the same name).
pub fn description(id: &str) -> String {
    format!("rrun container {id}")
}

/// The properties of a new unit: what systemd needs to make it (slice,
/// delegation, the first process) and the resources it has properties for.
pub fn unit_properties(
    path: &UnitPath,
    id: &str,
    pid: u32,
    res: Option<&LinuxResources>,
    legacy: bool,
) -> Vec<(&'static str, Prop)> {
    let mut props = vec![("Description", Prop::Str(description(id)))];
    if path.is_slice() {
        if !path.slice.is_empty() {
            props.push(("Wants", Prop::Strs(vec![path.slice.clone()])));
        }
    } else {
        if !path.slice.is_empty() {
            props.push(("Slice", Prop::Str(path.slice.clone())));
        }
        props.push(("Delegate", Prop::Bool(true)));
        props.push(("PIDs", Prop::Pids(vec![pid])));
    }
    props.push(("DefaultDependencies", Prop::Bool(false)));
    // A unit that ends failed (its processes killed) is unloaded all the
    // same: nothing of a container stays in `systemctl list-units`.
    props.push(("CollectMode", Prop::Str("inactive-or-failed".into())));
    let io = if legacy {
        "BlockIOAccounting"
    } else {
        "IOAccounting"
    };
    for a in ["CPUAccounting", io, "MemoryAccounting", "TasksAccounting"] {
        props.push((a, Prop::Bool(true)));
    }
    if let Some(r) = res {
        props.extend(resource_properties(r, legacy));
    }
    props
}

/// The resources systemd has properties for, as runc maps them: cgroup
/// v2's, or with `legacy` (systemd's v1 hierarchies) the v1 properties.
pub fn resource_properties(r: &LinuxResources, legacy: bool) -> Vec<(&'static str, Prop)> {
    let props = v2_resource_properties(r);
    if legacy {
        to_legacy(props, r)
    } else {
        props
    }
}

/// On v1, systemd's v1 properties with the spec's own values (CPUShares,
/// not a weight converted back; systemd would otherwise write its own
/// rounding over what rrun wrote into cpu.shares), and nothing of what v1
/// has no property for (rrun writes those files itself).
fn to_legacy(props: Vec<(&'static str, Prop)>, r: &LinuxResources) -> Vec<(&'static str, Prop)> {
    props
        .into_iter()
        .filter_map(|(name, p)| match name {
            "MemoryMax" => Some(("MemoryLimit", p)),
            "CPUWeight" => r
                .cpu()
                .as_ref()
                .and_then(|c| c.shares())
                .filter(|&s| s > 0)
                .map(|s| ("CPUShares", Prop::U64(s))),
            "IOWeight" => r
                .block_io()
                .as_ref()
                .and_then(|b| b.weight())
                .filter(|&w| w > 0)
                .map(|w| ("BlockIOWeight", Prop::U64(u64::from(w)))),
            "MemoryLow" | "MemoryHigh" | "MemoryMin" | "MemorySwapMax" | "AllowedCPUs"
            | "AllowedMemoryNodes" => None,
            _ => Some((name, p)),
        })
        .collect()
}

/// The resources systemd has properties for on cgroup v2.
fn v2_resource_properties(r: &LinuxResources) -> Vec<(&'static str, Prop)> {
    let mut props = Vec::new();
    let limit = |v: i64| if v < 0 { INFINITY } else { v as u64 };
    if let Some(m) = r.memory() {
        if let Some(l) = m.limit() {
            props.push(("MemoryMax", Prop::U64(limit(l))));
        }
        if let Some(l) = m.reservation() {
            props.push(("MemoryLow", Prop::U64(limit(l))));
        }
        if let Some(s) = m.swap() {
            // The spec's swap is memory+swap (v1); v2 limits swap alone.
            let swap = match (s, m.limit()) {
                (s, _) if s < 0 => INFINITY,
                (s, Some(l)) if l >= 0 => (s - l).max(0) as u64,
                (s, _) => s as u64,
            };
            props.push(("MemorySwapMax", Prop::U64(swap)));
        }
    }
    if let Some(c) = r.cpu() {
        if let Some(s) = c.shares().filter(|&s| s > 0) {
            props.push((
                "CPUWeight",
                Prop::U64(super::resources::shares_to_weight(s)),
            ));
        }
        let period = c.period().filter(|&p| p > 0);
        if let Some(q) = c.quota() {
            let per_sec = match (q, period.unwrap_or(100_000)) {
                (q, _) if q <= 0 => INFINITY,
                // systemd keeps the quota in 10 ms steps: round up, as
                // runc does (the exact value is then written to cpu.max).
                (q, p) => (q as u64 * 1_000_000 / p).div_ceil(10_000) * 10_000,
            };
            props.push(("CPUQuotaPerSecUSec", Prop::U64(per_sec)));
        }
        if let Some(p) = period {
            props.push(("CPUQuotaPeriodUSec", Prop::U64(p)));
        }
        if let Some(cpus) = c.cpus().as_deref().filter(|s| !s.is_empty()) {
            if let Some(mask) = bitmask(cpus) {
                props.push(("AllowedCPUs", Prop::Bytes(mask)));
            }
        }
        if let Some(mems) = c.mems().as_deref().filter(|s| !s.is_empty()) {
            if let Some(mask) = bitmask(mems) {
                props.push(("AllowedMemoryNodes", Prop::Bytes(mask)));
            }
        }
    }
    if let Some(p) = r.pids() {
        let l = p.limit();
        props.push((
            "TasksMax",
            Prop::U64(if l <= 0 { INFINITY } else { l as u64 }),
        ));
    }
    if let Some(w) = r.block_io().as_ref().and_then(|b| b.weight()) {
        if w > 0 {
            props.push((
                "IOWeight",
                Prop::U64(super::resources::blkio_to_io_weight(w)),
            ));
        }
    }
    if let Some(u) = r.unified() {
        let num = |k: &str| -> Option<u64> {
            let v = u.get(k)?.trim();
            if v == "max" {
                Some(INFINITY)
            } else {
                v.parse().ok()
            }
        };
        for (key, prop) in [
            ("memory.max", "MemoryMax"),
            ("memory.high", "MemoryHigh"),
            ("memory.low", "MemoryLow"),
            ("memory.min", "MemoryMin"),
            ("memory.swap.max", "MemorySwapMax"),
            ("pids.max", "TasksMax"),
            ("cpu.weight", "CPUWeight"),
        ] {
            if let Some(v) = num(key) {
                props.retain(|(p, _)| *p != prop);
                props.push((prop, Prop::U64(v)));
            }
        }
    }
    if let Some(dev) = device_properties(&super::resources::device_rules(r)) {
        props.extend(dev);
    }
    props
}

/// A cpu or memory-node list (`0-3,5`) as systemd's bitmask bytes (bit N
/// of byte N/8 for CPU N). None when the list does not parse (the cgroupfs
/// write then reports it).
pub fn bitmask(list: &str) -> Option<Vec<u8>> {
    let mut bits = Vec::new();
    for part in list.trim().split(',') {
        let (a, b) = match part.split_once('-') {
            Some((a, b)) => (
                a.trim().parse::<usize>().ok()?,
                b.trim().parse::<usize>().ok()?,
            ),
            None => {
                let n = part.trim().parse::<usize>().ok()?;
                (n, n)
            }
        };
        if a > b || b >= 8192 {
            return None;
        }
        for n in a..=b {
            bits.push(n);
        }
    }
    let max = *bits.iter().max()?;
    let mut mask = vec![0u8; max / 8 + 1];
    for n in bits {
        mask[n / 8] |= 1 << (n % 8);
    }
    Some(mask)
}

/// `DevicePolicy` and `DeviceAllow` for the effective device rules (the
/// config's, then the ones every container gets), when systemd can say the
/// same thing: a deny-all first, then allows of one device
/// (`/dev/char/M:N`), of a whole major that /proc/devices names
/// (`char-pts`), or of a whole type (`char-*`). Otherwise none: rrun's own eBPF filter, attached to the
/// delegated cgroup either way, enforces the rules exactly.
fn device_properties(rules: &[LinuxDeviceCgroup]) -> Option<Vec<(&'static str, Prop)>> {
    let (first, rest) = rules.split_first()?;
    let all = |r: &LinuxDeviceCgroup| {
        matches!(r.typ(), None | Some(LinuxDeviceType::A))
            && r.major().is_none()
            && r.minor().is_none()
    };
    if first.allow() || !all(first) {
        return None;
    }
    let names = std::fs::read_to_string("/proc/devices").unwrap_or_default();
    let mut allow = Vec::new();
    for r in rest {
        if !r.allow() {
            return None;
        }
        let kind = match r.typ() {
            Some(LinuxDeviceType::C) => "char",
            Some(LinuxDeviceType::B) => "block",
            _ => return None,
        };
        let access = r.access().clone().unwrap_or_else(|| "rwm".into());
        let dev = match (r.major(), r.minor()) {
            (Some(ma), Some(mi)) if ma >= 0 && mi >= 0 => format!("/dev/{kind}/{ma}:{mi}"),
            // Every device of the type (runc's `c *:* m`, `b *:* m`).
            (None, None) => format!("{kind}-*"),
            (Some(ma), None) if ma >= 0 => format!("{kind}-{}", major_name(&names, kind, ma)?),
            _ => return None,
        };
        allow.push((dev, access));
    }
    Some(vec![
        ("DevicePolicy", Prop::Str("strict".into())),
        ("DeviceAllow", Prop::Devices(allow)),
    ])
}

/// The driver name /proc/devices gives a major number (one word only).
fn major_name(devices: &str, kind: &str, major: i64) -> Option<String> {
    let section = if kind == "char" {
        "Character devices:"
    } else {
        "Block devices:"
    };
    let mut inside = false;
    for line in devices.lines() {
        if line.ends_with(':') {
            inside = line == section;
            continue;
        }
        if !inside {
            continue;
        }
        let mut f = line.split_whitespace();
        if f.next()?.parse::<i64>().ok()? == major {
            let name = f.next()?;
            return (!name.contains('/')).then(|| name.to_string());
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v2(r: &LinuxResources) -> Vec<(&'static str, Prop)> {
        resource_properties(r, false)
    }

    #[test]
    fn legacy_hierarchies_get_the_v1_properties_with_the_specs_own_values() {
        let r = res(serde_json::json!({
            "memory": {"limit": 1048576, "reservation": 4096},
            "cpu": {"shares": 1024, "quota": 50000, "cpus": "0"},
            "blockIO": {"weight": 500},
            "pids": {"limit": 10}
        }));
        let p = resource_properties(&r, true);
        let names: Vec<&str> = p.iter().map(|(n, _)| *n).collect();
        assert!(
            p.contains(&("MemoryLimit", Prop::U64(1048576))),
            "{names:?}"
        );
        assert!(p.contains(&("CPUShares", Prop::U64(1024))), "{names:?}");
        assert!(p.contains(&("BlockIOWeight", Prop::U64(500))), "{names:?}");
        assert!(p.contains(&("TasksMax", Prop::U64(10))), "{names:?}");
        for v2_only in [
            "MemoryMax",
            "MemoryLow",
            "CPUWeight",
            "IOWeight",
            "AllowedCPUs",
        ] {
            assert!(!names.contains(&v2_only), "{v2_only} in {names:?}");
        }
    }

    #[test]
    fn slices_nest_by_their_dashes() {
        assert_eq!(expand_slice("system.slice").unwrap(), "/system.slice");
        assert_eq!(
            expand_slice("kubepods-burstable-pod12.slice").unwrap(),
            "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod12.slice"
        );
        assert_eq!(expand_slice("").unwrap(), "");
        for bad in [
            "a",
            "a/b.slice",
            "-a.slice",
            "a-.slice",
            "a--b.slice",
            ".slice",
        ] {
            assert!(expand_slice(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn engine_cgroups_paths_name_their_scopes() {
        let p = parse(Some("machine.slice:libpod:abc"), "abc", false).unwrap();
        assert_eq!(p.unit, "libpod-abc.scope");
        assert_eq!(p.cgroup, "/machine.slice/libpod-abc.scope");
        let p = parse(
            Some("kubepods-burstable-pod1.slice:cri-containerd:c1"),
            "c1",
            false,
        )
        .unwrap();
        assert_eq!(
            p.cgroup,
            "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod1.slice/cri-containerd-c1.scope"
        );
        assert_eq!(p.slice, "kubepods-burstable-pod1.slice");
    }

    #[test]
    fn empty_parts_take_runcs_defaults() {
        let p = parse(None, "c1", false).unwrap();
        assert_eq!(
            (p.slice.as_str(), p.unit.as_str()),
            ("system.slice", "rrun-c1.scope")
        );
        let p = parse(Some(":x:c1"), "c1", true).unwrap();
        assert_eq!(p.cgroup, "/user.slice/x-c1.scope");
        let p = parse(Some("-:x:c1"), "c1", false).unwrap();
        assert_eq!(p.cgroup, "/x-c1.scope");
        let p = parse(Some("system.slice::c1"), "c1", false).unwrap();
        assert_eq!(p.unit, "c1.scope");
    }

    #[test]
    fn a_slice_name_makes_a_slice_unit_inside_its_parent() {
        let p = parse(Some("a.slice:ignored:a-b.slice"), "x", false).unwrap();
        assert!(p.is_slice());
        assert_eq!(p.cgroup, "/a.slice/a-b.slice");
        assert!(parse(Some("a.slice:x:b.slice"), "x", false).is_err());
    }

    #[test]
    fn bad_cgroups_paths_name_the_field() {
        for bad in [
            "/a/b",
            "a:b",
            "a.slice:b:",
            "a.slice:b/c:d",
            "a.slice:p:../x",
        ] {
            let e = parse(Some(bad), "x", false).unwrap_err().to_string();
            assert!(e.contains("linux.cgroupsPath"), "{bad}: {e}");
        }
    }

    fn res(v: serde_json::Value) -> LinuxResources {
        serde_json::from_value(v).unwrap()
    }

    fn prop<'a>(props: &'a [(&'static str, Prop)], name: &str) -> Option<&'a Prop> {
        props.iter().rev().find(|(n, _)| *n == name).map(|(_, p)| p)
    }

    #[test]
    fn resources_become_the_properties_runc_sets() {
        let p = v2(&res(serde_json::json!({
            "memory": {"limit": 1048576, "reservation": 524288, "swap": 3145728},
            "cpu": {"shares": 1024, "quota": 50000, "period": 100000, "cpus": "0-1,3"},
            "pids": {"limit": 42},
            "blockIO": {"weight": 500}
        })));
        assert_eq!(prop(&p, "MemoryMax"), Some(&Prop::U64(1048576)));
        assert_eq!(prop(&p, "MemoryLow"), Some(&Prop::U64(524288)));
        assert_eq!(prop(&p, "MemorySwapMax"), Some(&Prop::U64(2097152)));
        assert_eq!(prop(&p, "CPUWeight"), Some(&Prop::U64(39)));
        assert_eq!(prop(&p, "CPUQuotaPerSecUSec"), Some(&Prop::U64(500_000)));
        assert_eq!(prop(&p, "CPUQuotaPeriodUSec"), Some(&Prop::U64(100_000)));
        assert_eq!(prop(&p, "AllowedCPUs"), Some(&Prop::Bytes(vec![0b1011])));
        assert_eq!(prop(&p, "TasksMax"), Some(&Prop::U64(42)));
        assert_eq!(prop(&p, "IOWeight"), Some(&Prop::U64(4950)));
    }

    #[test]
    fn unlimited_values_are_infinity() {
        let p = v2(&res(serde_json::json!({
            "memory": {"limit": -1, "swap": -1},
            "cpu": {"quota": -1},
            "pids": {"limit": -1}
        })));
        for name in [
            "MemoryMax",
            "MemorySwapMax",
            "CPUQuotaPerSecUSec",
            "TasksMax",
        ] {
            assert_eq!(prop(&p, name), Some(&Prop::U64(INFINITY)), "{name}");
        }
    }

    #[test]
    fn odd_quotas_round_up_to_systemds_10ms_steps() {
        let p = v2(&res(serde_json::json!({
            "cpu": {"quota": 12345, "period": 100000}
        })));
        assert_eq!(prop(&p, "CPUQuotaPerSecUSec"), Some(&Prop::U64(130_000)));
    }

    #[test]
    fn unified_values_override_the_structured_ones() {
        let p = v2(&res(serde_json::json!({
            "memory": {"limit": 1048576},
            "unified": {"memory.max": "2097152", "memory.high": "max"}
        })));
        assert_eq!(prop(&p, "MemoryMax"), Some(&Prop::U64(2097152)));
        assert_eq!(prop(&p, "MemoryHigh"), Some(&Prop::U64(INFINITY)));
    }

    #[test]
    fn device_rules_become_a_strict_policy_when_systemd_can_say_them() {
        let p = v2(&res(serde_json::json!({
            "devices": [
                {"allow": false, "access": "rwm"},
                {"allow": true, "type": "c", "major": 1, "minor": 3, "access": "rwm"}
            ]
        })));
        assert_eq!(prop(&p, "DevicePolicy"), Some(&Prop::Str("strict".into())));
        let Some(Prop::Devices(allow)) = prop(&p, "DeviceAllow") else {
            panic!("no DeviceAllow: {p:?}");
        };
        // The config's rule, then every container's: mknod of anything
        // (without it no /dev/null could be made), the standard devices.
        assert_eq!(allow[0], ("/dev/char/1:3".into(), "rwm".into()));
        assert!(allow.contains(&("char-*".into(), "m".into())), "{allow:?}");
        assert!(allow.contains(&("block-*".into(), "m".into())), "{allow:?}");
        assert!(
            allow.contains(&("/dev/char/5:2".into(), "rwm".into())),
            "{allow:?}"
        );
        // A deny after an allow cannot be said in DeviceAllow: none at all.
        let p = v2(&res(serde_json::json!({
            "devices": [
                {"allow": false, "access": "rwm"},
                {"allow": true, "type": "c", "major": 1, "minor": 3, "access": "rwm"},
                {"allow": false, "type": "c", "major": 1, "minor": 3, "access": "w"}
            ]
        })));
        assert!(prop(&p, "DevicePolicy").is_none());
    }

    #[test]
    fn bitmasks_put_cpu_n_in_bit_n() {
        assert_eq!(bitmask("0").unwrap(), vec![1]);
        assert_eq!(bitmask("8-9").unwrap(), vec![0, 3]);
        assert!(bitmask("3-1").is_none());
        assert!(bitmask("x").is_none());
    }

    #[test]
    fn a_new_scope_is_delegated_and_holds_the_first_process() {
        let path = parse(Some("system.slice:docker:c1"), "c1", false).unwrap();
        let p = unit_properties(&path, "c1", 42, None, false);
        assert_eq!(prop(&p, "Slice"), Some(&Prop::Str("system.slice".into())));
        assert_eq!(prop(&p, "Delegate"), Some(&Prop::Bool(true)));
        assert_eq!(prop(&p, "DefaultDependencies"), Some(&Prop::Bool(false)));
        assert_eq!(prop(&p, "PIDs"), Some(&Prop::Pids(vec![42])));
    }
}
