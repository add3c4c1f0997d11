//! cgroup v2 device control: the spec's device rules compiled into a
//! `BPF_PROG_TYPE_CGROUP_DEVICE` program and attached to the container's
//! cgroup. Rules are checked from last to first and the first match decides,
//! which gives v1's "later rules override earlier ones"; no match denies.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::Path;

use anyhow::{bail, Context, Result};
use oci_spec::runtime::{LinuxDeviceCgroup, LinuxDeviceType};

#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Insn {
    code: u8,
    regs: u8,
    off: i16,
    imm: i32,
}

const fn insn(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> Insn {
    Insn {
        code,
        regs: (src << 4) | dst,
        off,
        imm,
    }
}

const LDX_W: u8 = 0x61; // dst = *(u32 *)(src + off)
const AND_K: u8 = 0x57;
const RSH_K: u8 = 0x77;
const MOV_K: u8 = 0xb7;
const MOV_X: u8 = 0xbf;
const XOR_K: u8 = 0xa7;
const OR_X: u8 = 0x4f;
const JNE_K: u8 = 0x55;
const EXIT: u8 = 0x95;

const DEV_BLOCK: i32 = 1;
const DEV_CHAR: i32 = 2;

fn access_bits(access: &str) -> i32 {
    let mut a = 0;
    for c in access.chars() {
        a |= match c {
            'm' => 1,
            'r' => 2,
            'w' => 4,
            _ => 0,
        };
    }
    a
}

/// Compiles the rules into BPF instructions.
///
/// Each rule is one block: its checks are folded into one register
/// without branches (`r6 = (type ^ T) | (access & ~A) | (major ^ M) |
/// (minor ^ m)`, zero exactly when the rule matches), then one jump to the
/// next block when it is not zero. The kernel's verifier walks every path
/// of a program: with one jump per rule on a value it cannot know, its work
/// grows with the number of rules, where a jump per check (each path
/// knowing the values compared so far) made it grow faster than that
/// (measured on 6.18: the 13 rules of the default config loaded in 0.44
/// ms, most of it in the verifier). A rule that matches everything ends
/// the program: the rules before it can never decide.
pub fn compile(rules: &[LinuxDeviceCgroup]) -> Vec<Insn> {
    let mut prog = vec![
        insn(LDX_W, 2, 1, 0, 0),      // r2 = access_type
        insn(AND_K, 2, 0, 0, 0xffff), // r2 = device type
        insn(LDX_W, 3, 1, 0, 0),
        insn(RSH_K, 3, 0, 0, 16), // r3 = requested access
        insn(LDX_W, 4, 1, 4, 0),  // r4 = major
        insn(LDX_W, 5, 1, 8, 0),  // r5 = minor
    ];
    for rule in rules.iter().rev() {
        // (register, operation, operand): r & ~allowed for the access,
        // r ^ wanted for the rest.
        let mut checks: Vec<(u8, u8, i32)> = Vec::new();
        match rule.typ() {
            Some(LinuxDeviceType::C) | Some(LinuxDeviceType::U) => {
                checks.push((2, XOR_K, DEV_CHAR))
            }
            Some(LinuxDeviceType::B) => checks.push((2, XOR_K, DEV_BLOCK)),
            // Fifos are not device-controlled; a 'p' rule never matches
            // (no device type has all bits set).
            Some(LinuxDeviceType::P) => checks.push((2, XOR_K, -1)),
            Some(LinuxDeviceType::A) | None => {}
        }
        let not_allowed = !access_bits(rule.access().as_deref().unwrap_or("rwm")) & 7;
        if not_allowed != 0 {
            checks.push((3, AND_K, not_allowed));
        }
        if let Some(m) = rule.major().filter(|&m| m >= 0) {
            checks.push((4, XOR_K, m as i32));
        }
        if let Some(m) = rule.minor().filter(|&m| m >= 0) {
            checks.push((5, XOR_K, m as i32));
        }
        let decide = [
            insn(MOV_K, 0, 0, 0, i32::from(rule.allow())),
            insn(EXIT, 0, 0, 0, 0),
        ];
        if checks.is_empty() {
            prog.extend(decide);
            return prog;
        }
        for (i, &(reg, op, imm)) in checks.iter().enumerate() {
            let into = if i == 0 { 6 } else { 7 };
            prog.push(insn(MOV_X, into, reg, 0, 0));
            prog.push(insn(op, into, 0, 0, imm));
            if i > 0 {
                prog.push(insn(OR_X, 6, 7, 0, 0));
            }
        }
        prog.push(insn(JNE_K, 6, 0, decide.len() as i16, 0));
        prog.extend(decide);
    }
    prog.push(insn(MOV_K, 0, 0, 0, 0));
    prog.push(insn(EXIT, 0, 0, 0, 0));
    prog
}

fn bpf(cmd: i32, attr: &mut [u8; 128]) -> io::Result<i64> {
    // SAFETY: `attr` is a zero-initialised bpf_attr-sized buffer filled in
    // for `cmd`; the kernel reads at most its size.
    let r = unsafe { libc::syscall(libc::SYS_bpf, cmd, attr.as_mut_ptr(), attr.len()) };
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

/// Loads the program for `rules` and attaches it to the cgroup at `dir`.
pub fn attach(dir: &Path, rules: &[LinuxDeviceCgroup]) -> Result<()> {
    const BPF_PROG_LOAD: i32 = 5;
    const BPF_PROG_ATTACH: i32 = 8;
    const BPF_PROG_TYPE_CGROUP_DEVICE: u32 = 15;
    const BPF_CGROUP_DEVICE: u32 = 6;
    const BPF_F_ALLOW_MULTI: u32 = 2;
    let prog = compile(rules);
    let license = c"Apache-2.0";
    let load = |log: Option<&mut Vec<u8>>| {
        let mut attr = [0u8; 128];
        attr[0..4].copy_from_slice(&BPF_PROG_TYPE_CGROUP_DEVICE.to_ne_bytes());
        attr[4..8].copy_from_slice(&(prog.len() as u32).to_ne_bytes());
        attr[8..16].copy_from_slice(&(prog.as_ptr() as u64).to_ne_bytes());
        attr[16..24].copy_from_slice(&(license.as_ptr() as u64).to_ne_bytes());
        if let Some(log) = log {
            attr[24..28].copy_from_slice(&1u32.to_ne_bytes()); // log level
            attr[28..32].copy_from_slice(&(log.len() as u32).to_ne_bytes());
            attr[32..40].copy_from_slice(&(log.as_mut_ptr() as u64).to_ne_bytes());
        }
        attr[48..52].copy_from_slice(b"rrun");
        bpf(BPF_PROG_LOAD, &mut attr)
    };
    // Load without the verifier log (a log that overflows its buffer fails
    // the load with ENOSPC); only on failure load again to say why.
    let fd = match load(None) {
        Ok(fd) => fd,
        Err(e) => {
            let mut log = vec![0u8; 1 << 20];
            let _ = load(Some(&mut log));
            let msg = String::from_utf8_lossy(&log);
            let last = msg
                .trim_matches(char::from(0))
                .trim()
                .lines()
                .last()
                .unwrap_or("")
                .to_string();
            bail!("cannot load device filter: {e} {last}");
        }
    };
    // SAFETY: the kernel returned a new fd we now own.
    let prog_fd = unsafe { OwnedFd::from_raw_fd(fd as i32) };
    let cg = std::fs::File::open(dir).with_context(|| format!("cgroup {}", dir.display()))?;
    let mut attr = [0u8; 128];
    attr[0..4].copy_from_slice(&(cg.as_raw_fd() as u32).to_ne_bytes());
    attr[4..8].copy_from_slice(&(prog_fd.as_raw_fd() as u32).to_ne_bytes());
    attr[8..12].copy_from_slice(&BPF_CGROUP_DEVICE.to_ne_bytes());
    attr[12..16].copy_from_slice(&BPF_F_ALLOW_MULTI.to_ne_bytes());
    bpf(BPF_PROG_ATTACH, &mut attr).context("cannot attach device filter")?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A tiny interpreter for the instructions `compile` emits.
    fn run(prog: &[Insn], ty: u32, access: u32, major: u32, minor: u32) -> i64 {
        let ctx = [(access << 16) | ty, major, minor];
        let mut r = [0i64; 11];
        let mut pc = 0usize;
        loop {
            let i = prog[pc];
            let (dst, src) = ((i.regs & 0xf) as usize, (i.regs >> 4) as usize);
            pc += 1;
            match i.code {
                LDX_W => r[dst] = ctx[(i.off / 4) as usize] as i64,
                AND_K => r[dst] &= i.imm as i64,
                XOR_K => r[dst] ^= i.imm as i64,
                OR_X => r[dst] |= r[src],
                RSH_K => r[dst] >>= i.imm,
                MOV_K => r[dst] = i.imm as i64,
                MOV_X => r[dst] = r[src],
                JNE_K => {
                    if r[dst] != i.imm as i64 {
                        pc += i.off as usize
                    }
                }
                EXIT => return r[0],
                _ => panic!("unknown opcode"),
            }
        }
    }

    fn rules(v: serde_json::Value) -> Vec<LinuxDeviceCgroup> {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn deny_all_then_allow_null() {
        let p = compile(&rules(serde_json::json!([
            {"allow": false, "access": "rwm"},
            {"allow": true, "type": "c", "major": 1, "minor": 3, "access": "rwm"}
        ])));
        assert_eq!(run(&p, 2, 2, 1, 3), 1, "read /dev/null");
        assert_eq!(run(&p, 2, 2, 1, 5), 0, "read /dev/zero");
        assert_eq!(run(&p, 1, 2, 1, 3), 0, "block 1:3");
    }

    #[test]
    fn later_rules_win_and_access_must_be_a_subset() {
        let p = compile(&rules(serde_json::json!([
            {"allow": true, "type": "c", "major": 1, "minor": 3, "access": "rwm"},
            {"allow": false, "type": "c", "major": 1, "minor": 3, "access": "w"}
        ])));
        assert_eq!(run(&p, 2, 2, 1, 3), 1, "read allowed");
        assert_eq!(run(&p, 2, 4, 1, 3), 0, "write denied by the later rule");
        let p = compile(&rules(serde_json::json!([
            {"allow": true, "type": "c", "major": 136, "access": "r"}
        ])));
        assert_eq!(run(&p, 2, 2, 136, 7), 1, "wildcard minor");
        assert_eq!(run(&p, 2, 6, 136, 7), 0, "rw is not within r");
    }

    /// The rules read directly: the last one that matches decides, none
    /// denies.
    fn reference(rules: &[LinuxDeviceCgroup], ty: u32, access: u32, major: u32, minor: u32) -> i64 {
        let hit = |r: &LinuxDeviceCgroup| {
            let ty_ok = match r.typ() {
                Some(LinuxDeviceType::C) | Some(LinuxDeviceType::U) => ty == 2,
                Some(LinuxDeviceType::B) => ty == 1,
                Some(LinuxDeviceType::P) => false,
                Some(LinuxDeviceType::A) | None => true,
            };
            let allowed = access_bits(r.access().as_deref().unwrap_or("rwm")) as u32;
            ty_ok
                && access & !allowed == 0
                && r.major().is_none_or(|m| m < 0 || m == i64::from(major))
                && r.minor().is_none_or(|m| m < 0 || m == i64::from(minor))
        };
        rules
            .iter()
            .rev()
            .find(|r| hit(r))
            .map_or(0, |r| i64::from(r.allow()))
    }

    #[test]
    fn random_rule_lists_decide_as_the_rules_read() {
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut next = |n: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % n
        };
        let types = ["a", "c", "b", "u", "p"];
        let accesses = ["", "r", "w", "m", "rw", "rm", "wm", "rwm"];
        for _ in 0..300 {
            let n = next(6);
            let list: Vec<serde_json::Value> = (0..n)
                .map(|_| {
                    let mut r = serde_json::json!({
                        "allow": next(2) == 1,
                        "access": accesses[next(8) as usize],
                    });
                    if next(4) != 0 {
                        r["type"] = types[next(5) as usize].into();
                    }
                    if next(2) == 0 {
                        r["major"] = next(3).into();
                    }
                    if next(2) == 0 {
                        r["minor"] = next(3).into();
                    }
                    r
                })
                .collect();
            let rs = rules(serde_json::Value::Array(list.clone()));
            let p = compile(&rs);
            for ty in 1..=2 {
                for access in 1..=7 {
                    for major in 0..3 {
                        for minor in 0..3 {
                            assert_eq!(
                                run(&p, ty, access, major, minor),
                                reference(&rs, ty, access, major, minor),
                                "{list:?}: type {ty} access {access} {major}:{minor}"
                            );
                        }
                    }
                }
            }
        }
    }

    /// One conditional jump per rule, and nothing after a rule that matches
    /// everything: what keeps the kernel's verification of the program
    /// proportional to the number of rules.
    #[test]
    fn one_jump_per_rule_and_nothing_after_a_catch_all() {
        let mut list = vec![serde_json::json!({"allow": false, "access": "rwm"})];
        list.extend((0..12).map(|i| {
            serde_json::json!({"allow": true, "type": "c", "major": 1, "minor": i, "access": "rw"})
        }));
        let p = compile(&rules(serde_json::Value::Array(list)));
        assert_eq!(p.iter().filter(|i| i.code == JNE_K).count(), 12);
        assert_eq!(
            &p[p.len() - 2..],
            &[insn(MOV_K, 0, 0, 0, 0), insn(EXIT, 0, 0, 0, 0)]
        );
        let p = compile(&rules(serde_json::json!([
            {"allow": true, "type": "c", "major": 1, "minor": 3, "access": "rwm"},
            {"allow": true, "access": "rwm"}
        ])));
        assert_eq!(
            p.len(),
            8,
            "the catch-all decides; the rule before it is unreachable"
        );
        assert_eq!(run(&p, 1, 7, 9, 9), 1);
    }
}
