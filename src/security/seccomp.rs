//! `linux.seccomp` compiled to a classic BPF program in the parent, loaded
//! by the child with `seccomp(2)` just before it execs.
//!
//! Layout of the program: check the architecture (x86_64 and, when
//! listed, i386 get the rules compiled with their own syscall tables;
//! anything else is killed), then, per architecture, a binary search on
//! the system call number (see [`tree`]) whose leaves return an action at
//! once where it does not depend on arguments (a call with one rule
//! without arguments, a run of such calls with the same action, a gap of
//! unlisted calls), or jump to a call's body: its rules in the profile's
//! order, each checking its arguments with full 64-bit comparisons and
//! returning its action, then the default action. Rules of different
//! calls never match the same call, so grouping them by number keeps the
//! profile's first-match order. Jumps inside a body stay inside its rule,
//! so the 8-bit BPF offsets never overflow; longer jumps are `JA`s
//! (32-bit). Names unknown to this architecture are skipped, as runc does.
//!
//! Why a search: when a filter is loaded, the kernel runs it once for
//! every system call number of each architecture to find the calls it
//! always allows (`seccomp_cache_prepare`, Linux 5.11+), after checking
//! and JIT-compiling it. A chain of one compare per name costs that pass
//! hundreds of steps per number and the program 2313 instructions for
//! Podman's profile; the search takes about ten steps and 450
//! instructions (the load measured 1.7 ms before, see
//! `docs/PERFORMANCE.md`). Calls the cache does not cover run the filter
//! the same short way.

use std::os::fd::{BorrowedFd, FromRawFd, OwnedFd};

use anyhow::{bail, Context, Result};
use oci_spec::runtime::{Arch, LinuxSeccomp, LinuxSeccompAction, LinuxSeccompOperator};

use super::syscall_table::Call;
use super::syscalls_i386::SYSCALLS as I386_SYSCALLS;
use super::syscalls_x86_64::SYSCALLS;

/// `struct sock_filter`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Insn {
    pub code: u16,
    pub jt: u8,
    pub jf: u8,
    pub k: u32,
}

const LD_ABS: u16 = 0x20;
const JA: u16 = 0x05;
const JEQ: u16 = 0x15;
const JGT: u16 = 0x25;
const JGE: u16 = 0x35;
const AND: u16 = 0x54;
const RET: u16 = 0x06;

const RET_KILL_PROCESS: u32 = 0x8000_0000;
const RET_KILL_THREAD: u32 = 0;
const RET_TRAP: u32 = 0x0003_0000;
const RET_ERRNO: u32 = 0x0005_0000;
const RET_USER_NOTIF: u32 = 0x7fc0_0000;
const RET_TRACE: u32 = 0x7ff0_0000;
const RET_LOG: u32 = 0x7ffc_0000;
const RET_ALLOW: u32 = 0x7fff_0000;

const AUDIT_ARCH_X86_64: u32 = 0xc000_003e;
const AUDIT_ARCH_I386: u32 = 0x4000_0003;
const X32_SYSCALL_BIT: u32 = 0x4000_0000;

pub const FLAG_TSYNC: u32 = 1;
pub const FLAG_LOG: u32 = 2;
pub const FLAG_SPEC_ALLOW: u32 = 4;
pub const FLAG_NEW_LISTENER: u32 = 8;
pub const FLAG_WAIT_KILLABLE_RECV: u32 = 32;

/// A compiled profile, ready for the child to load.
#[derive(Debug, Clone)]
pub struct Compiled {
    pub program: Vec<Insn>,
    pub flags: u32,
    /// Some rule uses SCMP_ACT_NOTIFY: the listener fd goes to `listenerPath`.
    pub notify: bool,
}

/// The system call number of a name on this architecture.
pub fn syscall_nr(name: &str) -> Option<u32> {
    lookup(&SYSCALLS, name)
}

fn lookup(table: &[Call], name: &str) -> Option<u32> {
    table
        .binary_search_by(|c| c.name_bytes().cmp(name.as_bytes()))
        .ok()
        .map(|i| table[i].nr())
}

fn action(a: LinuxSeccompAction, errno: Option<u32>, default_errno: u32) -> u32 {
    match a {
        LinuxSeccompAction::ScmpActKill | LinuxSeccompAction::ScmpActKillThread => RET_KILL_THREAD,
        LinuxSeccompAction::ScmpActKillProcess => RET_KILL_PROCESS,
        LinuxSeccompAction::ScmpActTrap => RET_TRAP,
        LinuxSeccompAction::ScmpActErrno => RET_ERRNO | (errno.unwrap_or(default_errno) & 0xffff),
        LinuxSeccompAction::ScmpActNotify => RET_USER_NOTIF,
        LinuxSeccompAction::ScmpActTrace => RET_TRACE | (errno.unwrap_or(default_errno) & 0xffff),
        LinuxSeccompAction::ScmpActLog => RET_LOG,
        LinuxSeccompAction::ScmpActAllow => RET_ALLOW,
    }
}

/// A jump target inside a rule block.
#[derive(Clone, Copy)]
enum To {
    Next,
    Fail,
    /// Skip this many instructions after the next one.
    Skip(u8),
}

struct Block {
    ins: Vec<(u16, To, To, u32)>,
}

impl Block {
    fn new() -> Block {
        Block { ins: Vec::new() }
    }
    fn op(&mut self, code: u16, k: u32) {
        self.ins.push((code, To::Next, To::Next, k));
    }
    fn jump(&mut self, code: u16, k: u32, jt: To, jf: To) {
        self.ins.push((code, jt, jf, k));
    }
    fn resolve(self, out: &mut Vec<Insn>) -> Result<()> {
        let len = self.ins.len();
        for (i, (code, jt, jf, k)) in self.ins.into_iter().enumerate() {
            let off = |t: To| -> Result<u8> {
                let o = match t {
                    To::Next => 0,
                    To::Skip(n) => n as usize,
                    To::Fail => len - i - 1,
                };
                u8::try_from(o).context("seccomp rule too large")
            };
            out.push(Insn {
                code,
                jt: off(jt)?,
                jf: off(jf)?,
                k,
            });
        }
        Ok(())
    }
}

/// What a call number leads to: one action whatever the arguments, or a
/// body of rules that check them (ending in a `RET`).
enum Body {
    Ret(u32),
    Insns(Vec<Insn>),
}

/// Where a call number leads: a constant action, or the body of
/// `calls[i]` (see [`tree`]).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Target {
    Ret(u32),
    Body(usize),
}

/// Appends to `out` the binary search over `calls` (sorted by number, each
/// with its body), starting with the number in the accumulator, then the
/// bodies. The numbers are cut into intervals that lead to the same place
/// (a run of neighbouring calls with the same constant action, a call with
/// a body of its own, a gap of unlisted calls to the default action), and
/// the search is over the intervals' starts: each internal node is one
/// `JGE` (and a `JA` when its left half is longer than a conditional jump
/// reaches), each leaf one `RET` or a `JA` to its call's body.
fn tree(calls: &[(u32, Body)], default: u32, out: &mut Vec<Insn>) {
    const TO_BODY: u16 = 0xffff; // a placeholder: `k` is the call's index
    let ins = |code: u16, jt: u8, jf: u8, k: u32| Insn { code, jt, jf, k };
    // Intervals as (first number, target), the first starting at 0.
    let mut iv: Vec<(u32, Target)> = Vec::with_capacity(2 * calls.len() + 1);
    iv.push((0, Target::Ret(default)));
    let push = |iv: &mut Vec<(u32, Target)>, start: u32, t: Target| {
        let last = iv.len() - 1;
        if iv[last].0 == start {
            iv[last].1 = t;
            if last > 0 && iv[last - 1].1 == t {
                iv.pop();
            }
        } else if iv[last].1 != t {
            iv.push((start, t));
        }
    };
    for (i, (nr, body)) in calls.iter().enumerate() {
        let t = match body {
            Body::Ret(k) => Target::Ret(*k),
            Body::Insns(_) => Target::Body(i),
        };
        push(&mut iv, *nr, t);
        if let Some(next) = nr.checked_add(1) {
            push(&mut iv, next, Target::Ret(default));
        }
    }
    fn build(iv: &[(u32, Target)], out: &mut Vec<Insn>) {
        if let [(_, t)] = iv {
            out.push(match *t {
                Target::Ret(k) => Insn {
                    code: RET,
                    jt: 0,
                    jf: 0,
                    k,
                },
                Target::Body(i) => Insn {
                    code: TO_BODY,
                    jt: 0,
                    jf: 0,
                    k: i as u32,
                },
            });
            return;
        }
        let mid = iv.len() / 2;
        let at = out.len();
        out.push(Insn {
            code: JGE,
            jt: 0,
            jf: 0,
            k: iv[mid].0,
        });
        build(&iv[..mid], out);
        let left = out.len() - at - 1;
        match u8::try_from(left) {
            Ok(n) => out[at].jt = n,
            Err(_) => {
                // Too far for `jt`: true falls to a `JA` over the left half.
                out[at].jf = 1;
                out.insert(
                    at + 1,
                    Insn {
                        code: JA,
                        jt: 0,
                        jf: 0,
                        k: left as u32,
                    },
                );
            }
        }
        build(&iv[mid..], out);
    }
    let first = out.len();
    build(&iv, out);
    let mut starts = Vec::with_capacity(calls.len());
    let mut at = out.len();
    for (_, body) in calls {
        starts.push(at);
        if let Body::Insns(b) = body {
            at += b.len();
        }
    }
    for pc in first..out.len() {
        if out[pc].code == TO_BODY {
            out[pc] = ins(JA, 0, 0, (starts[out[pc].k as usize] - pc - 1) as u32);
        }
    }
    for (_, body) in calls {
        if let Body::Insns(b) = body {
            out.extend_from_slice(b);
        }
    }
}

/// Appends the check of one argument: continue if it holds, else fail.
fn arg_check(
    b: &mut Block,
    index: usize,
    op: LinuxSeccompOperator,
    value: u64,
    value_two: u64,
) -> Result<()> {
    if index > 5 {
        bail!("argument index {index} is out of range (0-5)");
    }
    let lo = 16 + 8 * index as u32;
    let hi = lo + 4;
    let (vh, vl) = ((value >> 32) as u32, value as u32);
    match op {
        LinuxSeccompOperator::ScmpCmpEq => {
            b.op(LD_ABS, hi);
            b.jump(JEQ, vh, To::Next, To::Fail);
            b.op(LD_ABS, lo);
            b.jump(JEQ, vl, To::Next, To::Fail);
        }
        LinuxSeccompOperator::ScmpCmpNe => {
            b.op(LD_ABS, hi);
            b.jump(JEQ, vh, To::Next, To::Skip(2));
            b.op(LD_ABS, lo);
            b.jump(JEQ, vl, To::Fail, To::Next);
        }
        LinuxSeccompOperator::ScmpCmpGt | LinuxSeccompOperator::ScmpCmpGe => {
            let low = if op == LinuxSeccompOperator::ScmpCmpGt {
                JGT
            } else {
                JGE
            };
            b.op(LD_ABS, hi);
            b.jump(JGT, vh, To::Skip(3), To::Next);
            b.jump(JEQ, vh, To::Next, To::Fail);
            b.op(LD_ABS, lo);
            b.jump(low, vl, To::Next, To::Fail);
        }
        LinuxSeccompOperator::ScmpCmpLt | LinuxSeccompOperator::ScmpCmpLe => {
            // a < v  is  !(a >= v);  a <= v  is  !(a > v).
            let low = if op == LinuxSeccompOperator::ScmpCmpLt {
                JGE
            } else {
                JGT
            };
            b.op(LD_ABS, hi);
            b.jump(JGT, vh, To::Fail, To::Next);
            b.jump(JEQ, vh, To::Next, To::Skip(2));
            b.op(LD_ABS, lo);
            b.jump(low, vl, To::Fail, To::Next);
        }
        LinuxSeccompOperator::ScmpCmpMaskedEq => {
            // `value` is the mask, `valueTwo` what the masked argument must equal.
            let (mh, ml) = ((value >> 32) as u32, value as u32);
            let (th, tl) = ((value_two >> 32) as u32, value_two as u32);
            b.op(LD_ABS, hi);
            b.op(AND, mh);
            b.jump(JEQ, th, To::Next, To::Fail);
            b.op(LD_ABS, lo);
            b.op(AND, ml);
            b.jump(JEQ, tl, To::Next, To::Fail);
        }
    }
    Ok(())
}

/// Whether an action carries an errno (`errnoRet`, `defaultErrnoRet`).
fn takes_errno(a: LinuxSeccompAction) -> bool {
    matches!(
        a,
        LinuxSeccompAction::ScmpActErrno | LinuxSeccompAction::ScmpActTrace
    )
}

/// An action's name as config.json spells it.
fn action_name(a: LinuxSeccompAction) -> String {
    serde_json::to_value(a)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_else(|| format!("{a:?}"))
}

/// The profile's own rules (config-linux.md "Seccomp"): an errno only with
/// an action that takes one ("the runtime MUST print an error and fail";
/// crun refuses it too, runc 1.1.5 ignores it), at least one name per rule,
/// and `listenerMetadata` only with `listenerPath`.
fn check(s: &LinuxSeccomp) -> Result<()> {
    if s.default_errno_ret().is_some() && !takes_errno(s.default_action()) {
        bail!(
            "linux.seccomp.defaultErrnoRet: the default action {} takes no errno (only SCMP_ACT_ERRNO and SCMP_ACT_TRACE do)",
            action_name(s.default_action())
        );
    }
    if s.listener_metadata().is_some() && s.listener_path().is_none() {
        bail!("linux.seccomp.listenerMetadata: set without linux.seccomp.listenerPath");
    }
    for (i, sc) in s.syscalls().iter().flatten().enumerate() {
        if sc.names().is_empty() {
            bail!("linux.seccomp.syscalls[{i}].names: empty; a rule must name at least one system call");
        }
        if sc.errno_ret().is_some() && !takes_errno(sc.action()) {
            bail!(
                "linux.seccomp.syscalls[{i}].errnoRet: the action {} takes no errno (only SCMP_ACT_ERRNO and SCMP_ACT_TRACE do)",
                action_name(sc.action())
            );
        }
    }
    Ok(())
}

/// Whether compiling `s` can wait until after the clone: the profile's
/// own rules hold (see `check`, so its errors still come before anything
/// is made) and no rule hands calls to a listener (whose socket the child
/// must inherit). See [`Compiled::send`].
pub fn can_compile_later(s: &LinuxSeccomp) -> Result<bool> {
    check(s)?;
    let notify = s.default_action() == LinuxSeccompAction::ScmpActNotify
        || s.syscalls()
            .iter()
            .flatten()
            .any(|sc| sc.action() == LinuxSeccompAction::ScmpActNotify);
    Ok(!notify && s.listener_path().is_none())
}

impl Compiled {
    /// Writes the program to `pipe` (a pipe the container's first process
    /// reads with [`Compiled::receive`]): its flags, its length, then the
    /// instructions. At most 4096 instructions (`compile` refuses more),
    /// so it fits in the pipe's buffer and never waits for the reader.
    pub fn send(&self, pipe: BorrowedFd<'_>) -> std::io::Result<()> {
        if self.notify || self.program.len() > 4096 {
            return Err(std::io::Error::from_raw_os_error(libc::EINVAL));
        }
        let mut buf = Vec::with_capacity(8 + self.program.len() * 8);
        buf.extend_from_slice(&self.flags.to_ne_bytes());
        buf.extend_from_slice(&(self.program.len() as u32).to_ne_bytes());
        for i in &self.program {
            buf.extend_from_slice(&i.code.to_ne_bytes());
            buf.extend_from_slice(&[i.jt, i.jf]);
            buf.extend_from_slice(&i.k.to_ne_bytes());
        }
        let mut done = 0;
        while done < buf.len() {
            match nix::unistd::write(pipe, &buf[done..]) {
                Ok(n) => done += n,
                Err(nix::errno::Errno::EINTR) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }

    /// Reads a program [`Compiled::send`] wrote (blocking until it is
    /// there). An error when the writer closed the pipe first: it failed.
    pub fn receive(pipe: BorrowedFd<'_>) -> std::io::Result<Compiled> {
        fn fill(pipe: BorrowedFd<'_>, buf: &mut [u8]) -> std::io::Result<()> {
            let mut done = 0;
            while done < buf.len() {
                match nix::unistd::read(pipe, &mut buf[done..]) {
                    Ok(0) => return Err(std::io::ErrorKind::UnexpectedEof.into()),
                    Ok(n) => done += n,
                    Err(nix::errno::Errno::EINTR) => {}
                    Err(e) => return Err(e.into()),
                }
            }
            Ok(())
        }
        let mut head = [0u8; 8];
        fill(pipe, &mut head)?;
        let flags = u32::from_ne_bytes(head[0..4].try_into().unwrap());
        let n = u32::from_ne_bytes(head[4..8].try_into().unwrap()) as usize;
        if n == 0 || n > 4096 {
            return Err(std::io::ErrorKind::InvalidData.into());
        }
        let mut raw = vec![0u8; n * 8];
        fill(pipe, &mut raw)?;
        let program = raw
            .chunks_exact(8)
            .map(|c| Insn {
                code: u16::from_ne_bytes([c[0], c[1]]),
                jt: c[2],
                jf: c[3],
                k: u32::from_ne_bytes([c[4], c[5], c[6], c[7]]),
            })
            .collect();
        Ok(Compiled {
            program,
            flags,
            notify: false,
        })
    }
}

/// Compiles a profile for the native architecture (x86_64).
pub fn compile(s: &LinuxSeccomp) -> Result<Compiled> {
    check(s)?;
    let default_errno = s.default_errno_ret().unwrap_or(libc::EPERM as u32);
    let default = action(s.default_action(), s.default_errno_ret(), default_errno);
    let arches: Vec<u32> = s
        .architectures()
        .iter()
        .flatten()
        .map(|a| *a as u32)
        .collect();
    let x32_listed = arches.contains(&(Arch::ScmpArchX32 as u32));
    let mut notify = s.default_action() == LinuxSeccompAction::ScmpActNotify;
    if notify {
        bail!("linux.seccomp.defaultAction: SCMP_ACT_NOTIFY as the default would block the runtime's own calls");
    }
    let ins = |code: u16, jt: u8, jf: u8, k: u32| Insn { code, jt, jf, k };
    let i386_listed = arches.contains(&AUDIT_ARCH_I386);
    // The rules of one architecture: each call's body, then the tree.
    let rules: Vec<&oci_spec::runtime::LinuxSyscall> = s.syscalls().iter().flatten().collect();
    if rules.len() >= 1 << 24 || rules.iter().any(|r| r.names().len() >= 1 << 24) {
        bail!("linux.seccomp.syscalls: too many rules or names");
    }
    // A rule's errnoRet defaults to EPERM, not to defaultErrnoRet.
    let acts: Vec<u32> = rules
        .iter()
        .map(|sc| action(sc.action(), sc.errno_ret(), libc::EPERM as u32))
        .collect();
    notify |= rules
        .iter()
        .any(|sc| sc.action() == LinuxSeccompAction::ScmpActNotify);
    // Every (name, rule, place in the rule), sorted by name, so that each
    // architecture's sorted table resolves them in one merge.
    let mut names: Vec<(&str, u32, u32)> = Vec::new();
    for (i, sc) in rules.iter().enumerate() {
        for (j, name) in sc.names().iter().enumerate() {
            names.push((name.as_str(), i as u32, j as u32));
        }
    }
    // Stable: profiles list their names sorted, in long runs it merges.
    names.sort_by(|a, b| a.0.cmp(b.0));
    // The rules of one architecture: each call's body, then the search.
    let section = |table: &[Call]| -> Result<Vec<Insn>> {
        // (number, rule, place) for every name this architecture knows;
        // unknown names are skipped, as runc does.
        // Packed as one u64 (number, rule, place: 16, 24 and 24 bits) so
        // that sorting them compares integers.
        let pack =
            |nr: u32, i: u32, j: u32| (u64::from(nr) << 48) | (u64::from(i) << 24) | u64::from(j);
        let unpack = |h: u64| {
            (
                (h >> 48) as u32,
                ((h >> 24) & 0xff_ffff) as u32,
                (h & 0xff_ffff) as u32,
            )
        };
        let mut hits: Vec<u64> = Vec::with_capacity(names.len());
        let mut t = table.iter().peekable();
        for &(name, i, j) in &names {
            while t.next_if(|c| c.name_bytes() < name.as_bytes()).is_some() {}
            match t.peek() {
                Some(c) if c.name_bytes() == name.as_bytes() => hits.push(pack(c.nr(), i, j)),
                Some(_) => {}
                None => break,
            }
        }
        // A bad argument is reported for the first rule, in the profile's
        // order, that has one and a name known here (the first of them).
        let mut known: Vec<Option<u32>> = vec![None; rules.len()];
        for &h in &hits {
            let (_, i, j) = unpack(h);
            let k = &mut known[i as usize];
            *k = Some(k.map_or(j, |k| k.min(j)));
        }
        for (i, sc) in rules.iter().enumerate() {
            if let (Some(j), Some(a)) =
                (known[i], sc.args().iter().flatten().find(|a| a.index() > 5))
            {
                bail!(
                    "linux.seccomp.syscalls[{i}] ({}): argument index {} is out of range (0-5)",
                    sc.names()[j as usize],
                    a.index()
                );
            }
        }
        // By number, then in the profile's order: the first matching rule
        // of a call decides.
        hits.sort_unstable();
        let mut hits: Vec<(u32, u32, u32)> = hits.into_iter().map(unpack).collect();
        hits.dedup_by_key(|h| (h.0, h.1));
        let mut calls: Vec<(u32, Body)> = Vec::new();
        for group in hits.chunk_by(|a, b| a.0 == b.0) {
            let i = group[0].1 as usize;
            if rules[i].args().as_ref().is_none_or(|a| a.is_empty()) {
                // One rule without arguments: it always decides.
                calls.push((group[0].0, Body::Ret(acts[i])));
                continue;
            }
            let mut body = Vec::new();
            let mut decided = false;
            for &(_, i, j) in group {
                let (i, j) = (i as usize, j as usize);
                let mut b = Block::new();
                for a in rules[i].args().iter().flatten() {
                    arg_check(
                        &mut b,
                        a.index(),
                        a.op(),
                        a.value(),
                        a.value_two().unwrap_or(0),
                    )
                    .with_context(|| {
                        format!("linux.seccomp.syscalls[{i}] ({})", rules[i].names()[j])
                    })?;
                }
                // A rule without arguments always matches: later ones are dead.
                decided = b.ins.is_empty();
                b.op(RET, acts[i]);
                b.resolve(&mut body)?;
                if decided {
                    break;
                }
            }
            if !decided {
                body.push(ins(RET, 0, 0, default));
            }
            calls.push((group[0].0, Body::Insns(body)));
        }
        // The i386 section is entered with the architecture loaded.
        let mut out = vec![ins(LD_ABS, 0, 0, 0)];
        tree(&calls, default, &mut out);
        Ok(out)
    };
    let native = section(&SYSCALLS)?;
    let i386 = if i386_listed {
        section(&I386_SYSCALLS)?
    } else {
        vec![ins(RET, 0, 0, RET_KILL_PROCESS)]
    };
    // [0] load arch; [1] i386? → [2] jump to its section; [3] x86_64? else
    // [4] kill; [5..] x32 check and the native rules; then the i386 rules.
    let mut prog = vec![
        ins(LD_ABS, 0, 0, 4),
        ins(JEQ, 0, 1, AUDIT_ARCH_I386),
        ins(JA, 0, 0, 0), // patched below
        ins(JEQ, 1, 0, AUDIT_ARCH_X86_64),
        ins(RET, 0, 0, RET_KILL_PROCESS),
        // x32 calls carry a high bit in the number.
        ins(LD_ABS, 0, 0, 0),
        ins(JGE, 0, 1, X32_SYSCALL_BIT),
        ins(
            RET,
            0,
            0,
            if x32_listed {
                default
            } else {
                RET_KILL_PROCESS
            },
        ),
    ];
    prog.extend(native);
    let i386_start = prog.len();
    prog[2].k = (i386_start - 3) as u32;
    prog.extend(i386);
    if prog.len() > 4096 {
        bail!("linux.seccomp: the profile compiles to {} instructions, over the kernel's limit of 4096", prog.len());
    }
    let mut flags = 0;
    for f in s.flags().iter().flatten() {
        let name = serde_json::to_value(f)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default();
        flags |= match name.as_str() {
            "SECCOMP_FILTER_FLAG_TSYNC" => FLAG_TSYNC,
            "SECCOMP_FILTER_FLAG_LOG" => FLAG_LOG,
            "SECCOMP_FILTER_FLAG_SPEC_ALLOW" => FLAG_SPEC_ALLOW,
            "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV" => FLAG_WAIT_KILLABLE_RECV,
            other => bail!("linux.seccomp.flags: unknown flag {other}"),
        };
    }
    if notify {
        if s.listener_path().is_none() {
            bail!("linux.seccomp: SCMP_ACT_NOTIFY needs linux.seccomp.listenerPath");
        }
        flags |= FLAG_NEW_LISTENER;
        // TSYNC and NEW_LISTENER together need TSYNC_ESRCH; rrun's child is
        // single-threaded, so TSYNC is not needed there.
        flags &= !FLAG_TSYNC;
    } else if flags & FLAG_WAIT_KILLABLE_RECV != 0 {
        flags &= !FLAG_WAIT_KILLABLE_RECV; // only meaningful with a listener
    }
    Ok(Compiled {
        program: prog,
        flags,
        notify,
    })
}

/// Loads the program into the calling thread. Returns the notify listener
/// fd when the profile has one.
pub fn load(c: &Compiled) -> std::io::Result<Option<OwnedFd>> {
    #[repr(C)]
    struct Fprog {
        len: u16,
        filter: *const Insn,
    }
    let prog = Fprog {
        len: c.program.len() as u16,
        filter: c.program.as_ptr(),
    };
    // SAFETY: `prog` points at `len` valid instructions for the call.
    let r = unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            1, /* SET_MODE_FILTER */
            c.flags,
            &prog as *const Fprog,
        )
    };
    if r < 0 {
        return Err(std::io::Error::last_os_error());
    }
    if c.flags & FLAG_NEW_LISTENER != 0 {
        // SAFETY: with NEW_LISTENER the kernel returned a new fd.
        return Ok(Some(unsafe { OwnedFd::from_raw_fd(r as i32) }));
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A classic-BPF interpreter for what `compile` emits.
    fn run(p: &[Insn], arch: u32, nr: u32, args: [u64; 6]) -> u32 {
        run_counted(p, arch, nr, args).0
    }

    /// `run`, and how many instructions it took.
    fn run_counted(p: &[Insn], arch: u32, nr: u32, args: [u64; 6]) -> (u32, usize) {
        let mut data = [0u8; 64];
        data[0..4].copy_from_slice(&nr.to_le_bytes());
        data[4..8].copy_from_slice(&arch.to_le_bytes());
        for (i, a) in args.iter().enumerate() {
            data[16 + 8 * i..24 + 8 * i].copy_from_slice(&a.to_le_bytes());
        }
        let (mut a, mut pc, mut steps) = (0u32, 0usize, 0usize);
        loop {
            let i = p[pc];
            pc += 1;
            steps += 1;
            match i.code {
                LD_ABS => {
                    a = u32::from_le_bytes(data[i.k as usize..i.k as usize + 4].try_into().unwrap())
                }
                AND => a &= i.k,
                RET => return (i.k, steps),
                JA => pc += i.k as usize,
                JEQ | JGT | JGE => {
                    let t = match i.code {
                        JEQ => a == i.k,
                        JGT => a > i.k,
                        _ => a >= i.k,
                    };
                    pc += if t { i.jt } else { i.jf } as usize;
                }
                c => panic!("opcode {c:#x}"),
            }
        }
    }

    fn profile(v: serde_json::Value) -> Compiled {
        compile(&serde_json::from_value(v).unwrap()).unwrap()
    }

    const X: u32 = AUDIT_ARCH_X86_64;

    #[test]
    fn names_resolve() {
        assert_eq!(syscall_nr("read"), Some(0));
        assert_eq!(syscall_nr("execve"), Some(59));
        assert_eq!(syscall_nr("no_such_call"), None);
        assert!(
            SYSCALLS.windows(2).all(|w| w[0].name() < w[1].name()),
            "table sorted"
        );
        assert!(
            I386_SYSCALLS.windows(2).all(|w| w[0].name() < w[1].name()),
            "table sorted"
        );
    }

    #[test]
    fn default_and_rules() {
        let c = profile(serde_json::json!({
            "defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 38,
            "architectures": ["SCMP_ARCH_X86_64"],
            "syscalls": [
                {"names": ["read", "write", "bogus_call"], "action": "SCMP_ACT_ALLOW"},
                {"names": ["mkdir"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13},
                {"names": ["getpid"], "action": "SCMP_ACT_KILL_PROCESS"}
            ]
        }));
        assert_eq!(run(&c.program, X, 0, [0; 6]), RET_ALLOW);
        assert_eq!(run(&c.program, X, 83, [0; 6]), RET_ERRNO | 13);
        assert_eq!(run(&c.program, X, 39, [0; 6]), RET_KILL_PROCESS);
        assert_eq!(
            run(&c.program, X, 2, [0; 6]),
            RET_ERRNO | 38,
            "unlisted → default"
        );
        assert_eq!(
            run(&c.program, 0x4000_0003, 0, [0; 6]),
            RET_KILL_PROCESS,
            "unlisted arch"
        );
        assert_eq!(
            run(&c.program, X, X32_SYSCALL_BIT | 1, [0; 6]),
            RET_KILL_PROCESS,
            "x32 unlisted"
        );
    }

    #[test]
    fn sixty_four_bit_argument_comparisons() {
        let rule = |op: &str, v: u64, v2: Option<u64>| {
            let mut a = serde_json::json!({"index": 1, "value": v, "op": op});
            if let Some(v2) = v2 {
                a["valueTwo"] = serde_json::json!(v2);
            }
            profile(serde_json::json!({
                "defaultAction": "SCMP_ACT_ALLOW",
                "syscalls": [{"names": ["personality"], "action": "SCMP_ACT_ERRNO", "args": [a]}]
            }))
        };
        let nr = syscall_nr("personality").unwrap();
        let hit = |c: &Compiled, x: u64| run(&c.program, X, nr, [0, x, 0, 0, 0, 0]) != RET_ALLOW;
        let big = 0x1_0000_0005u64;
        for (op, v, cases) in [
            (
                "SCMP_CMP_EQ",
                big,
                vec![(big, true), (5, false), (0x1_0000_0000, false)],
            ),
            (
                "SCMP_CMP_NE",
                big,
                vec![(big, false), (5, true), (0x2_0000_0005, true)],
            ),
            (
                "SCMP_CMP_GT",
                big,
                vec![
                    (big, false),
                    (big + 1, true),
                    (0x2_0000_0000, true),
                    (6, false),
                ],
            ),
            (
                "SCMP_CMP_GE",
                big,
                vec![(big, true), (big - 1, false), (0x2_0000_0000, true)],
            ),
            (
                "SCMP_CMP_LT",
                big,
                vec![
                    (big, false),
                    (5, true),
                    (0x1_0000_0004, true),
                    (0x2_0000_0000, false),
                ],
            ),
            (
                "SCMP_CMP_LE",
                big,
                vec![(big, true), (big + 1, false), (0, true)],
            ),
        ] {
            let c = rule(op, v, None);
            for (x, want) in cases {
                assert_eq!(hit(&c, x), want, "{op} {v:#x} vs {x:#x}");
            }
        }
        let c = rule(
            "SCMP_CMP_MASKED_EQ",
            0xff00_0000_00ff,
            Some(0x1200_0000_0034),
        );
        assert!(hit(&c, 0x1234_5678_9a34));
        assert!(!hit(&c, 0x1300_0000_0034));
    }

    #[test]
    fn values_the_spec_forbids_are_refused() {
        let err = |v: serde_json::Value| {
            compile(&serde_json::from_value(v).unwrap())
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default()
        };
        let e = err(serde_json::json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [
                {"names": ["mkdir"], "action": "SCMP_ACT_TRACE", "errnoRet": 1},
                {"names": ["getpid"], "action": "SCMP_ACT_KILL_PROCESS", "errnoRet": 1}
            ]
        }));
        assert!(
            e.starts_with("linux.seccomp.syscalls[1].errnoRet: the action SCMP_ACT_KILL_PROCESS"),
            "{e}"
        );
        let e = err(serde_json::json!({"defaultAction": "SCMP_ACT_LOG", "defaultErrnoRet": 1}));
        assert!(e.starts_with("linux.seccomp.defaultErrnoRet:"), "{e}");
        let e = err(serde_json::json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": [], "action": "SCMP_ACT_ERRNO"}]
        }));
        assert!(e.starts_with("linux.seccomp.syscalls[0].names:"), "{e}");
        let e =
            err(serde_json::json!({"defaultAction": "SCMP_ACT_ALLOW", "listenerMetadata": "m"}));
        assert!(e.starts_with("linux.seccomp.listenerMetadata:"), "{e}");
        // What the spec allows still compiles.
        profile(serde_json::json!({
            "defaultAction": "SCMP_ACT_TRACE", "defaultErrnoRet": 1,
            "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_ERRNO", "errnoRet": 2}]
        }));
    }

    #[test]
    fn a_program_sent_through_a_pipe_arrives_whole() {
        let profile: LinuxSeccomp = serde_json::from_value(serde_json::json!({
            "defaultAction": "SCMP_ACT_ERRNO",
            "flags": ["SECCOMP_FILTER_FLAG_LOG"],
            "syscalls": [
                {"names": ["read", "write", "exit_group"], "action": "SCMP_ACT_ALLOW"},
                {"names": ["personality"], "action": "SCMP_ACT_ALLOW",
                 "args": [{"index": 0, "value": 8, "op": "SCMP_CMP_EQ"}]}
            ]
        }))
        .unwrap();
        assert!(can_compile_later(&profile).unwrap());
        let c = compile(&profile).unwrap();
        let (r, w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).unwrap();
        c.send(std::os::fd::AsFd::as_fd(&w)).unwrap();
        drop(w);
        let got = Compiled::receive(std::os::fd::AsFd::as_fd(&r)).unwrap();
        assert_eq!(
            (got.program, got.flags, got.notify),
            (c.program, c.flags, false)
        );
        // The writer gone before writing: an error, not an empty program.
        let (r, w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).unwrap();
        drop(w);
        assert!(Compiled::receive(std::os::fd::AsFd::as_fd(&r)).is_err());
    }

    #[test]
    fn notify_profiles_are_compiled_before_the_clone() {
        let profile: LinuxSeccomp = serde_json::from_value(serde_json::json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "listenerPath": "/run/agent.sock",
            "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_NOTIFY"}]
        }))
        .unwrap();
        assert!(!can_compile_later(&profile).unwrap());
    }

    #[test]
    fn notify_needs_a_listener_and_sets_the_flag() {
        let v = serde_json::json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_NOTIFY"}]
        });
        assert!(compile(&serde_json::from_value(v.clone()).unwrap()).is_err());
        let mut v = v;
        v["listenerPath"] = serde_json::json!("/run/listener.sock");
        let c = compile(&serde_json::from_value(v).unwrap()).unwrap();
        assert!(c.notify && c.flags & FLAG_NEW_LISTENER != 0);
        assert_eq!(
            run(&c.program, X, syscall_nr("mkdir").unwrap(), [0; 6]),
            RET_USER_NOTIF
        );
    }

    /// What a profile says of one call, read straight from the profile:
    /// the first rule naming it whose every argument check holds.
    fn reference(s: &LinuxSeccomp, table: &[Call], nr: u32, args: [u64; 6]) -> u32 {
        for sc in s.syscalls().iter().flatten() {
            if !sc.names().iter().any(|n| lookup(table, n) == Some(nr)) {
                continue;
            }
            let holds = sc.args().iter().flatten().all(|a| {
                let (x, v) = (args[a.index()], a.value());
                match a.op() {
                    LinuxSeccompOperator::ScmpCmpEq => x == v,
                    LinuxSeccompOperator::ScmpCmpNe => x != v,
                    LinuxSeccompOperator::ScmpCmpGt => x > v,
                    LinuxSeccompOperator::ScmpCmpGe => x >= v,
                    LinuxSeccompOperator::ScmpCmpLt => x < v,
                    LinuxSeccompOperator::ScmpCmpLe => x <= v,
                    LinuxSeccompOperator::ScmpCmpMaskedEq => x & v == a.value_two().unwrap_or(0),
                }
            });
            if holds {
                return action(sc.action(), sc.errno_ret(), libc::EPERM as u32);
            }
        }
        let default_errno = s.default_errno_ret().unwrap_or(libc::EPERM as u32);
        action(s.default_action(), s.default_errno_ret(), default_errno)
    }

    /// A small deterministic generator (no dependency for tests).
    struct Lcg(u64);
    impl Lcg {
        fn next(&mut self) -> u64 {
            self.0 = self
                .0
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            self.0 >> 33
        }
        fn pick<'a, T>(&mut self, v: &'a [T]) -> &'a T {
            &v[self.next() as usize % v.len()]
        }
    }

    #[test]
    fn compiled_programs_decide_every_call_as_the_profile_reads() {
        let ops = [
            "SCMP_CMP_EQ",
            "SCMP_CMP_NE",
            "SCMP_CMP_GT",
            "SCMP_CMP_GE",
            "SCMP_CMP_LT",
            "SCMP_CMP_LE",
            "SCMP_CMP_MASKED_EQ",
        ];
        let actions = [
            "SCMP_ACT_ALLOW",
            "SCMP_ACT_ERRNO",
            "SCMP_ACT_KILL_PROCESS",
            "SCMP_ACT_LOG",
        ];
        let values = [0u64, 1, 5, 0xff, 0x1_0000_0005, u64::MAX];
        let mut g = Lcg(42);
        for round in 0..40 {
            // Few names, many rules: the same call in several rules, with
            // and without arguments, in every order.
            let names: Vec<&str> = (0..1 + g.next() % 60)
                .map(|_| g.pick(&SYSCALLS).name())
                .collect();
            let rules: Vec<serde_json::Value> = (0..g.next() % 80)
                .map(|_| {
                    let n: Vec<&str> = (0..1 + g.next() % 3).map(|_| *g.pick(&names)).collect();
                    let args: Vec<serde_json::Value> = (0..g.next() % 3)
                        .map(|_| {
                            serde_json::json!({
                                "index": g.next() % 6,
                                "value": *g.pick(&values),
                                "valueTwo": *g.pick(&values),
                                "op": *g.pick(&ops),
                            })
                        })
                        .collect();
                    let act = *g.pick(&actions);
                    let mut r = serde_json::json!({"names": n, "action": act, "args": args});
                    if act == "SCMP_ACT_ERRNO" {
                        r["errnoRet"] = serde_json::json!(g.next() % 100);
                    }
                    r
                })
                .collect();
            let s: LinuxSeccomp = serde_json::from_value(serde_json::json!({
                "defaultAction": *g.pick(&["SCMP_ACT_ERRNO", "SCMP_ACT_ALLOW"]),
                "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86"],
                "syscalls": rules,
            }))
            .unwrap();
            let c = compile(&s).unwrap();
            for (arch, table) in [(X, &SYSCALLS[..]), (AUDIT_ARCH_I386, &I386_SYSCALLS[..])] {
                for nr in 0..470 {
                    for _ in 0..4 {
                        let args = [(); 6].map(|_| *g.pick(&values));
                        assert_eq!(
                            run(&c.program, arch, nr, args),
                            reference(&s, table, nr, args),
                            "round {round}, arch {arch:#x}, nr {nr}, args {args:x?}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn a_search_too_wide_for_one_jump_still_decides_every_call() {
        // Every other call allowed, a few with argument rules: hundreds of
        // intervals, so the upper nodes' left halves are beyond a
        // conditional jump's 255 instructions (`JA` over them).
        let mut rules = Vec::new();
        for (n, (name, nr)) in SYSCALLS.iter().map(|c| (c.name(), c.nr())).enumerate() {
            let act = if nr % 2 == 0 {
                "SCMP_ACT_ALLOW"
            } else {
                "SCMP_ACT_LOG"
            };
            let mut r = serde_json::json!({"names": [name], "action": act});
            if n % 7 == 0 {
                r["args"] = serde_json::json!([{"index": 0, "value": n, "op": "SCMP_CMP_EQ"}]);
            }
            rules.push(r);
        }
        let s: LinuxSeccomp = serde_json::from_value(serde_json::json!({
            "defaultAction": "SCMP_ACT_ERRNO",
            "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86"],
            "syscalls": rules,
        }))
        .unwrap();
        let c = compile(&s).unwrap();
        assert!(
            c.program.iter().any(|i| i.code == JA && i.k > 255),
            "no long jump"
        );
        for (arch, table) in [(X, &SYSCALLS[..]), (AUDIT_ARCH_I386, &I386_SYSCALLS[..])] {
            for nr in 0..470 {
                for a0 in [0, 7, 14, 21, 99] {
                    let args = [a0, 0, 0, 0, 0, 0];
                    assert_eq!(
                        run(&c.program, arch, nr, args),
                        reference(&s, table, nr, args),
                        "arch {arch:#x}, nr {nr}, arg0 {a0}"
                    );
                }
            }
        }
    }

    #[test]
    fn a_large_profile_decides_each_call_in_a_few_steps() {
        // The kernel runs a new filter once per call number and
        // architecture when it is loaded (its allow cache): a profile of
        // every call must not cost it a walk past every rule.
        let names: Vec<&str> = SYSCALLS.iter().map(|c| c.name()).collect();
        let c = profile(serde_json::json!({
            "defaultAction": "SCMP_ACT_ERRNO",
            "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86"],
            "syscalls": [
                {"names": ["personality"], "action": "SCMP_ACT_ALLOW",
                 "args": [{"index": 0, "value": 8, "op": "SCMP_CMP_EQ"}]},
                {"names": names, "action": "SCMP_ACT_ALLOW"}
            ]
        }));
        for (arch, top) in [(X, 470), (AUDIT_ARCH_I386, 460)] {
            for nr in 0..top {
                let (_, steps) = run_counted(&c.program, arch, nr, [0; 6]);
                assert!(steps <= 40, "arch {arch:#x} nr {nr}: {steps} steps");
            }
        }
    }
}
