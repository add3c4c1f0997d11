#!/usr/bin/env bash
# hot-functions.sh - list the functions rrun runs when engines drive it, in
# the order they are first called, into link/hot-functions.txt; the linker
# puts them first in the text segment (--symbol-ordering-file, see
# .cargo/config.toml).
#
# Usage (as root):
#   tests/bench/hot-functions.sh           # rewrite link/hot-functions.txt
#   tests/bench/hot-functions.sh --check   # exit 1 if it is out of date
#
# Why: the kernel maps a program's text 64 KiB around each page fault
# (fault-around), and the code one launch runs (~0.5 MiB) was scattered over
# the whole 2.2 MiB of text, so nearly all of it ended up mapped: peak RSS
# was the binary's size. Packed together it takes a fraction of the faults
# and of the memory (docs/PERFORMANCE.md, "Binary size and memory").
#
# How: the release build, linked with a map of its symbols (build.rs, with
# RRUN_LINK_MAP; in target/hot-functions), runs a workload
# like an engine's (run, create/start/state/delete with a JSON log, exec,
# ps, pause/resume, update, events --stats, kill, a seccomp profile, common
# errors), on the host's cgroups and then on cgroup v2 (the host's cgroup2
# mount, bound over /sys/fs/cgroup in a private mount namespace, if it is a
# hybrid host), inside private mount, pid and network namespaces, under
# first-calls (first-calls.c), which prints each function of rrun the first
# time any rrun process calls it. The systemd driver is not exercised.
#
# Symbol names carry a hash of the crate's version, its build profile and
# the function's path, not of its body: the list stays valid across most
# changes, and names it no longer matches only cost locality. (The profile
# is why the symbols come from a link map: a build that keeps them is
# another profile, with other names.) --check fails when more than 10% of
# the functions the workload runs are missing from the list.
#
# Needs: root, cargo, cc, busybox-static, python3, util-linux.
set -euo pipefail
export LC_ALL=C
unset RUST_BACKTRACE RUST_LIB_BACKTRACE

CHECK=0
case "${1:-}" in
--check) CHECK=1 ;;
"") ;;
*) sed -n '2,/^$/{s/^# \{0,1\}//;p}' "$0" >&2; exit 2 ;;
esac
die() { echo "hot-functions: $*" >&2; exit 2; }
[ "$(id -u)" = 0 ] || die "must run as root"

SELF=$(readlink -f "${BASH_SOURCE[0]}")
REPO=$(cd "$(dirname "$SELF")/../.." && pwd)
LIST=$REPO/link/hot-functions.txt

if [ -z "${RRUN_HOT_IN_NS:-}" ]; then
    TUPLE=x86_64-unknown-linux-musl # .cargo/config.toml's build.target
    OUT=$REPO/target/hot-functions
    echo "hot-functions: building the release with a link map in $OUT" >&2
    mkdir -p "$OUT"
    # A new map path each time: build.rs reruns when RRUN_LINK_MAP changes,
    # so the binary is linked again and the map is that link's (an
    # up-to-date build would not link, and write no map).
    rm -f "$OUT"/rrun.*.map
    MAP=$OUT/rrun.$$.map
    (cd "$REPO" && RRUN_LINK_MAP=$MAP \
        cargo build --release --locked --target-dir "$OUT" >&2)
    BIN=$OUT/$TUPLE/release/rrun
    [ -s "$MAP" ] || die "the link wrote no map (is the linker lld?)"
    cc -O2 -Wall -o "$OUT/first-calls" "$REPO/tests/bench/first-calls.c"
    # The symbols of the map's .text: "ADDRESS LMA SIZE ALIGN NAME" lines
    # (input sections end in ":(SECTION)").
    awk '$5 == ".text" && NF == 5 { t = 1; next }
        t && NF == 5 && $5 ~ /^\./ { exit }
        t && NF == 5 && $5 !~ /:\(/ { print $1, $5 }' "$MAP" >"$OUT/symbols"
    [ -s "$OUT/symbols" ] || die "no .text symbols in $MAP"
    command -v busybox >/dev/null || die "busybox not found (apt-get install busybox-static)"
    RRUN_HOT_HOST_MNT=$(readlink /proc/self/ns/mnt)
    # The workload's configs start from `rrun spec`, made here, untraced,
    # so that the traced order starts with what a launch runs.
    rm -f "$OUT/config.json"
    (cd "$OUT" && "$BIN" spec)
    RRUN_HOT_SPEC=$OUT/config.json
    export RRUN_HOT_IN_NS=1 RRUN_HOT_BIN=$BIN RRUN_HOT_HOST_MNT RRUN_HOT_SPEC
    # The workload runs under a ptrace tracer that stops every process at
    # each new function; a command that fails there prints its log (below)
    # and the workload is run once more, since what is checked is the list,
    # not rrun under ptrace (which the test suites check without it).
    traced() {
        "$OUT/first-calls" "$OUT/symbols" "$BIN" -- \
            unshare --mount --pid --net --fork --mount-proc --propagation private \
            "$BASH" "$SELF" >"$OUT/calls"
    }
    traced || { echo "hot-functions: the traced workload failed; once more" >&2; traced; }
    [ -s "$OUT/calls" ] || die "the workload called nothing"
    if [ "$CHECK" = 0 ]; then
        cp "$OUT/calls" "$LIST"
        echo "hot-functions: $(wc -l <"$LIST") functions written to $LIST" >&2
        exit 0
    fi
    [ -r "$LIST" ] || die "$LIST is missing"
    total=$(wc -l <"$OUT/calls")
    missing=$(sort -u "$LIST" | comm -23 <(sort -u "$OUT/calls") - | wc -l)
    echo "hot-functions: $missing of the $total functions the workload runs are not in $LIST" >&2
    if [ $((missing * 10)) -gt "$total" ]; then
        echo "hot-functions: out of date; run tests/bench/hot-functions.sh and commit $LIST" >&2
        exit 1
    fi
    exit 0
fi

# ------------------------------------------------------- the workload ----
# In private mount, pid and network namespaces (pid 1 is this shell).
# The cgroup unmount below is harmless only there: check it.
[ "$(readlink /proc/self/ns/mnt)" != "$RRUN_HOT_HOST_MNT" ] ||
    die "refusing to run in the caller's mount namespace"
R=$RRUN_HOT_BIN
TMP=$(mktemp -d /tmp/rrun-hot.XXXXXX)
STATE=$TMP/state
mkdir -p "$STATE"
mount -t tmpfs -o mode=0700 rrun-hot-state "$STATE"
fail() {
    echo "hot-functions: workload: $*" >&2
    tail -n 5 "$TMP/log.json" >&2 2>/dev/null
    exit 1
}
cleanup() {
    local rc=$? id
    for id in $("$R" --root "$STATE" list -q 2>/dev/null); do
        "$R" --root "$STATE" delete --force "$id" >/dev/null 2>&1 || true
    done
    umount "$STATE" 2>/dev/null || true
    rm -rf "$TMP"
    exit "$rc"
}
trap cleanup EXIT
rt() { "$R" --root "$STATE" --log "$TMP/log.json" --log-format json "$@"; }

ROOTFS=$TMP/rootfs
mkdir -p "$ROOTFS/bin" "$ROOTFS/proc" "$ROOTFS/sys" "$ROOTFS/dev" "$ROOTFS/tmp" "$ROOTFS/etc"
cp "$(command -v busybox)" "$ROOTFS/bin/busybox"
for a in true sleep sh cat; do ln -s busybox "$ROOTFS/bin/$a"; done
mkdir "$TMP/true" "$TMP/sleep" "$TMP/seccomp" "$TMP/spec"
python3 - "$TMP" "$ROOTFS" "$RRUN_HOT_SPEC" <<'PY'
import json, sys
tmp, rootfs, spec = sys.argv[1], sys.argv[2], sys.argv[3]
c = json.load(open(spec))
c["process"]["terminal"] = False
c["root"]["path"] = rootfs
c["process"]["args"] = ["/bin/true"]
json.dump(c, open(f"{tmp}/true/config.json", "w"))
c["process"]["args"] = ["/bin/sleep", "1000"]
json.dump(c, open(f"{tmp}/sleep/config.json", "w"))
c["process"]["args"] = ["/bin/true"]
allow = ["read", "write", "close", "exit", "exit_group", "execve", "brk", "mmap",
         "munmap", "mprotect", "arch_prctl", "set_tid_address", "rt_sigaction",
         "rt_sigprocmask", "getpid", "ioctl", "fstat", "newfstatat", "openat"]
c["linux"]["seccomp"] = {
    "defaultAction": "SCMP_ACT_ERRNO",
    "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
    "syscalls": [
        {"names": allow, "action": "SCMP_ACT_ALLOW"},
        {"names": ["personality"], "action": "SCMP_ACT_ALLOW",
         "args": [{"index": 0, "value": 0, "op": "SCMP_CMP_EQ"}]},
    ],
}
json.dump(c, open(f"{tmp}/seccomp/config.json", "w"))
PY

# What engines do: first the launch path, for both cgroup versions, then
# the rest, so that the code of a launch comes first in the list.
launch() {
    local p=$1
    rt run --bundle "$TMP/true" "$p-run" || fail "run"
    rt run --bundle "$TMP/seccomp" "$p-seccomp" || fail "run with seccomp"
    rt create --bundle "$TMP/true" --pid-file "$TMP/$p.pid" "$p-c" </dev/null >/dev/null 2>&1 ||
        fail "create"
    rt state "$p-c" >/dev/null || fail "state"
    rt start "$p-c" || fail "start"
    rt delete --force "$p-c" || fail "delete"
    rt run -d --bundle "$TMP/sleep" "$p-d" </dev/null >/dev/null 2>&1 || fail "run -d"
    rt exec "$p-d" /bin/true || fail "exec"
    rt exec -e A=1 --cwd /tmp "$p-d" /bin/true || fail "exec -e --cwd"
    rt kill "$p-d" KILL || fail "kill"
    rt delete --force "$p-d" || fail "delete --force"
}
others() {
    local p=$1
    rt run -d --bundle "$TMP/sleep" "$p-o" </dev/null >/dev/null 2>&1 || fail "run -d"
    rt ps --format json "$p-o" >/dev/null || fail "ps"
    rt pause "$p-o" || fail "pause"
    rt resume "$p-o" || fail "resume"
    rt update --pids-limit 100 "$p-o" 2>/dev/null || true
    rt events --stats "$p-o" >/dev/null || fail "events --stats"
    rt list >/dev/null || fail "list"
    rt delete --force "$p-o" || fail "delete --force"
    # Common errors: a missing container, a bundle without a config.
    rt state "$p-missing" >/dev/null 2>&1 && fail "state of a missing container"
    rt delete "$p-missing" >/dev/null 2>&1 && fail "delete of a missing container"
    rt create --bundle "$TMP" "$p-bad" >/dev/null 2>&1 && fail "create without a config"
    return 0
}
# cgroup v2 on a hybrid host: in a private mount namespace of its own (the
# host's mounts are untouched), the v1 tree is unmounted and the cgroup2
# hierarchy mounted in its place.
on_v2() {
    mountpoint -q /sys/fs/cgroup/unified 2>/dev/null || return 0
    export -f rt fail launch others
    export R STATE TMP
    unshare --mount --propagation private "$BASH" -c \
        'umount -R /sys/fs/cgroup && mount -t cgroup2 cgroup2 /sys/fs/cgroup && "$@"' - "$@"
}
launch host
on_v2 launch v2
others host
on_v2 others v2
# What people run by hand, and engines at start-up (clap's parser).
"$R" --version >/dev/null
"$R" features >/dev/null
(cd "$TMP/spec" && "$R" spec)
