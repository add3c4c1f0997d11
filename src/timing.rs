//! Per-step timing of a launch, for `--debug` only (see
//! `docs/PERFORMANCE.md` and `tests/bench/breakdown.sh`).
//!
//! [`mark`] records the wall-clock time of a named step. Without `--debug`
//! it is one relaxed load and a branch. With `--debug`, [`enable`] maps one
//! shared anonymous page before anything is cloned, so the container's
//! first process (a copy of this one, with no shared memory otherwise)
//! records its steps in the same page without a syscall: the clock is read
//! from the vDSO and the mark is a store. [`report`] logs every mark as a
//! debug line `timing <µs since the epoch> <pid> <step>` when the command
//! ends; `tests/bench/breakdown.sh` turns those into the per-step table.

use std::sync::atomic::{AtomicPtr, AtomicU32, Ordering};

const MAX_MARKS: usize = 100;

#[repr(C)]
struct Mark {
    usec: u64,
    pid: u32,
    step: &'static str,
}

#[repr(C)]
struct Page {
    n: AtomicU32,
    marks: [Mark; MAX_MARKS],
}

const _: () = assert!(std::mem::size_of::<Page>() <= 4096);

static PAGE: AtomicPtr<Page> = AtomicPtr::new(std::ptr::null_mut());

/// Starts recording (with `--debug`): maps the shared page.
pub fn enable() {
    // SAFETY: a fresh anonymous mapping; no existing memory is touched.
    let p = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            4096,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_SHARED | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    if p != libc::MAP_FAILED {
        // Zero-filled by the kernel: `n` is 0.
        PAGE.store(p.cast(), Ordering::Release);
    }
}

/// Microseconds since the epoch (the clock of the caller's timestamps).
pub fn now_usec() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: a valid timespec to fill; CLOCK_REALTIME always exists.
    unsafe { libc::clock_gettime(libc::CLOCK_REALTIME, &mut ts) };
    ts.tv_sec as u64 * 1_000_000 + ts.tv_nsec as u64 / 1000
}

/// Records that `step` ended now (in this process or a cloned child).
#[inline]
pub fn mark(step: &'static str) {
    if !PAGE.load(Ordering::Relaxed).is_null() {
        mark_at(step, now_usec());
    }
}

/// Records that `step` ended at `usec` ([`now_usec`]).
pub fn mark_at(step: &'static str, usec: u64) {
    let p = PAGE.load(Ordering::Relaxed);
    if p.is_null() {
        return;
    }
    // SAFETY: `p` is the page mapped by `enable`, shared with (and only
    // with) processes cloned from this one, all running this binary at the
    // same addresses, so a `&'static str` written by one is valid in all.
    // Each slot is claimed once by the atomic counter.
    unsafe {
        let i = (*p).n.fetch_add(1, Ordering::AcqRel) as usize;
        if i < MAX_MARKS {
            let m = std::ptr::addr_of_mut!((*p).marks[i]);
            m.write(Mark {
                usec,
                pid: std::process::id(),
                step,
            });
        }
    }
}

/// Logs every mark recorded so far (debug lines), in time order.
pub fn report() {
    let p = PAGE.load(Ordering::Acquire);
    if p.is_null() {
        return;
    }
    // SAFETY: as in `mark`; the counter says how many slots were claimed
    // (every writer has finished: the children that wrote have exec'd or
    // exited by the time the command reports).
    let marks: Vec<(u64, u32, &'static str)> = unsafe {
        let n = ((*p).n.load(Ordering::Acquire) as usize).min(MAX_MARKS);
        (0..n)
            .map(|i| {
                let m = &(*p).marks[i];
                (m.usec, m.pid, m.step)
            })
            .collect()
    };
    let mut marks = marks;
    marks.sort_by_key(|m| m.0);
    for (usec, pid, step) in marks {
        crate::logging::debug(&format!("timing {usec} {pid} {step}"));
    }
    // The report's own end, so that its lines do not count as teardown.
    crate::logging::debug(&format!(
        "timing {} {} reported",
        now_usec(),
        std::process::id()
    ));
}
