//! The checks behind rrun's fuzz targets.
//!
//! The targets in `fuzz_targets/` are one-liners around these functions, and
//! `tests/fuzz_regressions.rs` includes this file with `#[path]`, so seeds
//! and minimized crashes go through exactly the code the fuzzer ran.
//!
//! Each function returns `Ok` when rrun accepted the input and `Err` with
//! rrun's message when it refused it. A panic inside rrun, or a broken
//! invariant checked here, is a panic: that is what the fuzzer reports.

use oci_spec::runtime::{LinuxResources, LinuxSeccomp, LinuxSeccompAction, LinuxSeccompOperator};
use rrun::cgroups::resources::{plan_v1, plan_v2, Write};
use rrun::rootfs::MountOptions;
use rrun::security::seccomp::{compile, syscall_nr, Compiled, Insn};

/// The kernel's limit on a classic BPF program (`BPF_MAXINSNS`).
pub const MAX_INSNS: usize = 4096;

/// Parses `data` as config.json, then runs everything rrun does with a
/// parsed spec before touching the system: `validate`, the mount option
/// parser on every mount, both cgroup plans and the seccomp compiler.
///
/// The later stages run even when `validate` refused the spec: they are
/// pure functions that must not panic on anything `parse` accepts. The
/// result is the first error, in that order.
pub fn check_config(data: &[u8]) -> Result<(), String> {
    let spec = rrun::spec::parse(data).map_err(|e| clean(format!("{e:#}")))?;
    let mut first: Option<String> = None;
    let mut note = |r: Result<(), String>| {
        if let Err(e) = r {
            first.get_or_insert(clean(e));
        }
    };
    note(rrun::spec::validate(&spec).map_err(|e| format!("{e:#}")));
    for m in spec.mounts().iter().flatten() {
        let options = m.options().clone().unwrap_or_default();
        let fstype = m.typ().as_deref().unwrap_or("");
        note(
            MountOptions::parse(&options, fstype)
                .map(drop)
                .map_err(|e| format!("{e:#}")),
        );
    }
    if let Some(linux) = spec.linux() {
        if let Some(res) = linux.resources() {
            note(check_resources(res));
        }
        if let Some(seccomp) = linux.seccomp() {
            note(check_compiled(seccomp));
        }
    }
    first.map_or(Ok(()), Err)
}

/// Parses `data` as an OCI `linux.seccomp` object and compiles it; checks
/// the program when it compiles (see [`check_program`]).
pub fn check_seccomp(data: &[u8]) -> Result<(), String> {
    let seccomp: LinuxSeccomp =
        serde_json::from_slice(data).map_err(|e| clean(format!("invalid JSON: {e}")))?;
    check_compiled(&seccomp).map_err(clean)
}

/// An error message must say something, on one line (rrun prints it as one
/// log line). A message that breaks this is a bug like a panic.
fn clean(msg: String) -> String {
    assert!(!msg.trim().is_empty(), "empty error message");
    msg
}

fn check_resources(res: &LinuxResources) -> Result<(), String> {
    let v1 = plan_v1(res).map_err(|e| format!("{e:#}"));
    let v2 = plan_v2(res).map_err(|e| format!("{e:#}"));
    for w in v1.iter().chain(v2.iter()).flatten() {
        check_write(w);
    }
    v1.and(v2).map(drop)
}

/// A planned cgroup write names one file directly in the cgroup directory:
/// `apply` joins `file` onto that directory, so a `/` or `..` in it (from a
/// config value such as a hugepage size) would reach outside the cgroup.
fn check_write(w: &Write) {
    assert!(
        !w.file.is_empty() && !w.file.contains('/') && w.file != "." && w.file != "..",
        "{}: cgroup file name {:?} is not a single file name",
        w.field,
        w.file
    );
}

/// Compiles `s`; on success checks the program and what it computes.
fn check_compiled(s: &LinuxSeccomp) -> Result<(), String> {
    let compiled = compile(s).map_err(|e| format!("{e:#}"))?;
    check_program(&compiled.program);
    check_semantics(s, &compiled);
    Ok(())
}

const LD_ABS: u16 = 0x20;
const JA: u16 = 0x05;
const JEQ: u16 = 0x15;
const JGT: u16 = 0x25;
const JGE: u16 = 0x35;
const AND: u16 = 0x54;
const RET: u16 = 0x06;

/// Structural invariants the kernel's `seccomp_check_filter` and
/// `bpf_check_classic` enforce, so a program that breaks one would fail to
/// load (or, worse, mean something else):
/// - 1..=4096 instructions, the last one a `RET`;
/// - only the opcodes rrun emits; loads only of aligned words inside
///   `struct seccomp_data` (64 bytes);
/// - every jump (conditional, or `JA` by `k`) lands inside the program,
///   and other instructions carry no jump offsets.
pub fn check_program(prog: &[Insn]) {
    assert!(!prog.is_empty(), "empty seccomp program");
    assert!(
        prog.len() <= MAX_INSNS,
        "seccomp program has {} instructions, over {MAX_INSNS}",
        prog.len()
    );
    let last = prog[prog.len() - 1];
    assert_eq!(last.code, RET, "program does not end with RET: {last:?}");
    for (i, insn) in prog.iter().enumerate() {
        match insn.code {
            JEQ | JGT | JGE => {
                for (which, off) in [("jt", insn.jt), ("jf", insn.jf)] {
                    let to = i + 1 + usize::from(off);
                    assert!(
                        to < prog.len(),
                        "insn {i} {insn:?}: {which} jumps to {to}, past the end ({})",
                        prog.len()
                    );
                }
            }
            JA => {
                assert!(
                    insn.jt == 0 && insn.jf == 0,
                    "insn {i} {insn:?}: jt/jf on JA"
                );
                let to = (i + 1).checked_add(insn.k as usize);
                assert!(
                    to.is_some_and(|to| to < prog.len()),
                    "insn {i} {insn:?}: JA jumps past the end ({})",
                    prog.len()
                );
            }
            LD_ABS | AND | RET => {
                assert!(
                    insn.jt == 0 && insn.jf == 0,
                    "insn {i} {insn:?}: jump offsets on a non-jump"
                );
                if insn.code == LD_ABS {
                    assert!(
                        insn.k % 4 == 0 && insn.k < 64,
                        "insn {i} {insn:?}: load outside struct seccomp_data"
                    );
                }
            }
            _ => panic!("insn {i} {insn:?}: unexpected opcode"),
        }
    }
}

const AUDIT_ARCH_X86_64: u32 = 0xc000_003e;
const AUDIT_ARCH_I386: u32 = 0x4000_0003;
const AUDIT_ARCH_AARCH64: u32 = 0xc000_00b7;
const X32_SYSCALL_BIT: u32 = 0x4000_0000;
const RET_KILL_PROCESS: u32 = 0x8000_0000;

/// Runs the program on one `struct seccomp_data`. Only valid after
/// [`check_program`]: jumps are forward and in range, so it terminates.
pub fn run(prog: &[Insn], arch: u32, nr: u32, args: &[u64; 6]) -> u32 {
    let mut data = [0u8; 64];
    data[0..4].copy_from_slice(&nr.to_le_bytes());
    data[4..8].copy_from_slice(&arch.to_le_bytes());
    for (i, a) in args.iter().enumerate() {
        data[16 + 8 * i..24 + 8 * i].copy_from_slice(&a.to_le_bytes());
    }
    let mut acc: u32 = 0;
    let mut pc = 0;
    loop {
        let insn = prog[pc];
        pc += 1;
        let k = insn.k;
        match insn.code {
            LD_ABS => {
                let k = k as usize;
                acc = u32::from_le_bytes(data[k..k + 4].try_into().unwrap());
            }
            AND => acc &= k,
            RET => return k,
            JA => pc += k as usize,
            code => {
                let taken = match code {
                    JEQ => acc == k,
                    JGT => acc > k,
                    _ => acc >= k,
                };
                pc += usize::from(if taken { insn.jt } else { insn.jf });
            }
        }
    }
}

/// The return value the kernel should see for an action (SECCOMP_RET_*).
fn ret_value(a: LinuxSeccompAction, errno: Option<u32>, default_errno: u32) -> u32 {
    let data = errno.unwrap_or(default_errno) & 0xffff;
    match a {
        LinuxSeccompAction::ScmpActKill | LinuxSeccompAction::ScmpActKillThread => 0,
        LinuxSeccompAction::ScmpActKillProcess => 0x8000_0000,
        LinuxSeccompAction::ScmpActTrap => 0x0003_0000,
        LinuxSeccompAction::ScmpActErrno => 0x0005_0000 | data,
        LinuxSeccompAction::ScmpActNotify => 0x7fc0_0000,
        LinuxSeccompAction::ScmpActTrace => 0x7ff0_0000 | data,
        LinuxSeccompAction::ScmpActLog => 0x7ffc_0000,
        LinuxSeccompAction::ScmpActAllow => 0x7fff_0000,
    }
}

fn arg_holds(op: LinuxSeccompOperator, arg: u64, value: u64, value_two: u64) -> bool {
    match op {
        LinuxSeccompOperator::ScmpCmpNe => arg != value,
        LinuxSeccompOperator::ScmpCmpLt => arg < value,
        LinuxSeccompOperator::ScmpCmpLe => arg <= value,
        LinuxSeccompOperator::ScmpCmpEq => arg == value,
        LinuxSeccompOperator::ScmpCmpGe => arg >= value,
        LinuxSeccompOperator::ScmpCmpGt => arg > value,
        LinuxSeccompOperator::ScmpCmpMaskedEq => arg & value == value_two,
    }
}

/// The profile's default action as a return value.
fn default_ret(s: &LinuxSeccomp) -> u32 {
    ret_value(s.default_action(), s.default_errno_ret(), EPERM)
}

/// What rrun's model says a native x86_64 call should get: the first rule
/// (in profile order) that names the call and whose argument checks all
/// hold; else the default action. A rule's `errnoRet` defaults to EPERM
/// (not to `defaultErrnoRet`), as in runc. Rules whose action is the
/// default and that have no argument checks are left out, as rrun's
/// compiler does.
fn expected(s: &LinuxSeccomp, nr: u32, args: &[u64; 6]) -> u32 {
    let default = default_ret(s);
    for sc in s.syscalls().iter().flatten() {
        let act = ret_value(sc.action(), sc.errno_ret(), EPERM);
        let no_args = sc.args().as_ref().is_none_or(|a| a.is_empty());
        if act == default && no_args {
            continue;
        }
        if !sc.names().iter().any(|n| syscall_nr(n) == Some(nr)) {
            continue;
        }
        let holds = sc.args().iter().flatten().all(|a| {
            arg_holds(
                a.op(),
                args[a.index()],
                a.value(),
                a.value_two().unwrap_or(0),
            )
        });
        if holds {
            return act;
        }
    }
    default
}

const EPERM: u32 = 1;

/// Argument values worth trying against a rule's checks: the compared
/// values themselves and their neighbours, in both 32-bit halves.
fn interesting(v: u64, out: &mut Vec<u64>) {
    for x in [
        v,
        v.wrapping_add(1),
        v.wrapping_sub(1),
        v ^ (1 << 32),
        v ^ 1,
        v.wrapping_add(1 << 32),
        v.wrapping_sub(1 << 32),
        v & 0xffff_ffff,
        v & !0xffff_ffff,
    ] {
        if !out.contains(&x) {
            out.push(x);
        }
    }
}

/// Runs the compiled program on calls derived from the profile and compares
/// each result with [`expected`]. Also: an x86_64 call no rule names gets
/// the default action; an x32 call, an i386 call or a call of another
/// architecture is killed unless the profile lists that architecture.
fn check_semantics(s: &LinuxSeccomp, c: &Compiled) {
    let prog = &c.program;
    let listed = |name: &str| {
        s.architectures().iter().flatten().any(|a| {
            serde_json::to_value(a)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .as_deref()
                == Some(name)
        })
    };
    let zero = [0u64; 6];
    let default = default_ret(s);
    let x32 = run(prog, AUDIT_ARCH_X86_64, X32_SYSCALL_BIT, &zero);
    if !listed("SCMP_ARCH_X32") {
        assert_eq!(x32, RET_KILL_PROCESS, "x32 call, x32 not listed: {x32:#x}");
    }
    let i386 = run(prog, AUDIT_ARCH_I386, 0x3fff_fff0, &zero);
    if listed("SCMP_ARCH_X86") {
        assert_eq!(
            i386, default,
            "unnamed i386 call: {i386:#x}, default {default:#x}"
        );
    } else {
        assert_eq!(
            i386, RET_KILL_PROCESS,
            "i386 call, x86 not listed: {i386:#x}"
        );
    }
    if !listed("SCMP_ARCH_AARCH64") {
        let other = run(prog, AUDIT_ARCH_AARCH64, 0, &zero);
        assert_eq!(
            other, RET_KILL_PROCESS,
            "aarch64 call, not listed: {other:#x}"
        );
    }
    let mut nrs: Vec<u32> = s
        .syscalls()
        .iter()
        .flatten()
        .flat_map(|sc| sc.names().iter().filter_map(|n| syscall_nr(n)))
        .collect();
    nrs.sort_unstable();
    nrs.dedup();
    // A number no table entry has: only the default action applies.
    let unnamed = 0x3fff_fff0;
    let mut budget = 1024usize;
    for &nr in nrs.iter().chain(std::iter::once(&unnamed)) {
        // Per argument index, the values its checks compare against.
        let mut values: [Vec<u64>; 6] = Default::default();
        for sc in s.syscalls().iter().flatten() {
            if !sc.names().iter().any(|n| syscall_nr(n) == Some(nr)) {
                continue;
            }
            for a in sc.args().iter().flatten() {
                let vals = &mut values[a.index()];
                interesting(a.value(), vals);
                if let Some(v2) = a.value_two() {
                    interesting(v2, vals);
                    interesting(a.value() & v2, vals);
                }
            }
        }
        let mut calls = vec![[0u64; 6], [u64::MAX; 6]];
        for (i, vals) in values.iter().enumerate() {
            for &v in vals {
                let mut base = [0u64; 6];
                base[i] = v;
                calls.push(base);
                // The same value with the other arguments set from their
                // own first candidates, so multi-argument rules can match.
                let mut all = [0u64; 6];
                for (j, other) in values.iter().enumerate() {
                    all[j] = other.first().copied().unwrap_or(0);
                }
                all[i] = v;
                calls.push(all);
            }
        }
        for args in &calls {
            if budget == 0 {
                return;
            }
            budget -= 1;
            let got = run(prog, AUDIT_ARCH_X86_64, nr, args);
            let want = expected(s, nr, args);
            assert_eq!(
                got, want,
                "syscall {nr} args {args:x?}: program returns {got:#x}, profile says {want:#x}"
            );
        }
    }
}
