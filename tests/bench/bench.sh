#!/usr/bin/env bash
# bench.sh - compare OCI runtimes side by side, in one run, on one bundle.
#
# Usage (as root):
#   tests/bench/bench.sh [-n RUNS] [--floor] [--guard] [RUNTIME...]
#   tests/bench/bench.sh --breakdown [-n RUNS] [RRUN | OLD_RRUN NEW_RRUN]
#
#   RUNTIME   a name on PATH or a path to a binary. "rrun" means this repo's
#             target/x86_64-unknown-linux-musl/release/rrun (built with `cargo build --release` if it
#             is missing). Default: rrun crun runc, plus youki if on PATH.
#   -n RUNS   samples per timed measurement (default 30).
#   --floor   also time `unshare --fork --pid --mount --uts --ipc --net
#             --cgroup /bin/true`: the kernel's cost for the namespaces alone,
#             i.e. the floor no runtime can beat; sampled in the same rounds
#             as `run`, interleaved with the runtimes' samples.
#   --guard   exit 1 if rrun is slower than crun on any timed figure (the
#             medians of run, create+start+delete, exec, and the concurrent
#             wall time) or its peak RSS is larger (regression guard; needs
#             rrun and crun).
#   --breakdown  instead of the comparison: where rrun's `run` spends its
#             time, step by step (median ms of each step of the launch
#             checklist over RUNS runs, from rrun's `--debug` timing marks,
#             see src/timing.rs), for /bin/true and, if available, under
#             Podman's seccomp profile, then where `exec /bin/true` does;
#             with the kernel floor for reference. Given two rrun builds
#             (old, new), their runs are interleaved and the table has a
#             column for each.
#
# Examples:
#   tests/bench/bench.sh                     # rrun vs crun vs runc, 30 runs
#   tests/bench/bench.sh -n 5 runc crun      # quick check without rrun
#   tests/bench/bench.sh --floor --guard rrun crun
#   tests/bench/bench.sh --breakdown -n 50  # docs/PERFORMANCE.md's tables
#
# What is measured, per runtime (each has its own --root in a tmpfs, as
# /run is on the hosts engines run on):
#   run          `run` of /bin/true (median, p90)
#   seccomp      `run` of /bin/true with Podman's default seccomp profile
#                (/usr/share/containers/seccomp.json converted for amd64, as
#                Podman passes it; skipped without that file or python3)
#   c+s+d        `create` + `start` + wait for exit + `delete` (median, p90)
#   exec         `exec ID /bin/true` into a running `sleep 1000` container
#                (median, p90; n/a if the runtime's exec fails)
#   50x          50 containers created+started concurrently, then all
#                deleted concurrently: wall time (median of up to 5 rounds,
#                each after a 1 s pause). With --floor, also the same loop
#                with /bin/true as the runtime (the harness's own forks and
#                process starts, which every runtime's figure includes) and
#                each runtime's figure net of it
#   peak RSS     max RSS of `run` as reported by /usr/bin/time -f %M (the
#                largest process of the runtime's tree; n/a without `time`)
#   size         size of the runtime binary
# Each cell reads `value (ratio)`, the ratio being value / baseline value,
# the baseline being crun if present, else runc, else the first runtime.
# Lower is better everywhere.
#
# Fairness: timed samples are interleaved across runtimes (sample i of every
# runtime before sample i+1 of any), after two discarded warm-up rounds, with
# timestamps from bash's $EPOCHREALTIME (no fork), so the harness overhead is
# small and identical for all runtimes.
#
# Environment: everything runs inside a private mount namespace (the script
# re-execs itself under `unshare -m --propagation private`). There the
# controller-less cgroup2 mount at /sys/fs/cgroup/unified of a hybrid cgroup
# host is unmounted, since crun refuses that layout; all runtimes are
# measured in that same environment. Nothing is ever unmounted on the host.
# The bundle is a static busybox rootfs built in a temp dir, with config.json
# from `runc spec` (terminal false). Containers and temp dirs are removed on
# exit, also on error or Ctrl-C.
#
# Needs: root, bash >= 5, util-linux (unshare), busybox-static, runc (for
# `runc spec`), cargo if rrun must be built.

# Functions are called indirectly (traps, samplers) and after an `exec`:
# shellcheck disable=SC2317
set -euo pipefail
export LC_ALL=C
# An engine does not ask for backtraces; with them every error rrun makes
# and handles would walk its stack.
unset RUST_BACKTRACE RUST_LIB_BACKTRACE

RUNS=30
FLOOR=0
GUARD=0
BREAKDOWN=0
CONCURRENT=50
RUNTIMES=()

usage() { sed -n '2,/^$/{s/^# \{0,1\}//;p}' "$0" >&2; exit "${1:-2}"; }
die() { echo "bench: $*" >&2; exit 2; }
say() { echo "bench: $*" >&2; }

while [ $# -gt 0 ]; do
    case "$1" in
    -n) [ $# -ge 2 ] || usage; RUNS=$2; shift 2 ;;
    -n*) RUNS=${1#-n}; shift ;;
    --floor) FLOOR=1; shift ;;
    --guard) GUARD=1; shift ;;
    --breakdown) BREAKDOWN=1; shift ;;
    -h | --help) usage 0 ;;
    --) shift; RUNTIMES+=("$@"); break ;;
    -*) echo "bench: unknown option $1" >&2; usage ;;
    *) RUNTIMES+=("$1"); shift ;;
    esac
done
[[ "$RUNS" =~ ^[1-9][0-9]*$ ]] || die "-n needs a positive integer, got '$RUNS'"
[ "$(id -u)" = 0 ] || die "must run as root"
[ "${BASH_VERSINFO[0]}" -ge 5 ] || die "needs bash >= 5 (for \$EPOCHREALTIME)"

SELF=$(readlink -f "${BASH_SOURCE[0]}")
REPO=$(cd "$(dirname "$SELF")/../.." && pwd)
EXPLICIT=1
if [ "$BREAKDOWN" = 1 ]; then
    [ "$FLOOR$GUARD" = 00 ] || die "--breakdown takes no --floor or --guard"
    [ ${#RUNTIMES[@]} -le 2 ] || die "--breakdown measures one rrun build, or two (old new)"
    [ ${#RUNTIMES[@]} -ge 1 ] || RUNTIMES=(rrun)
fi
if [ ${#RUNTIMES[@]} -eq 0 ]; then
    EXPLICIT=0
    RUNTIMES=(rrun crun runc)
    if command -v youki >/dev/null 2>&1; then RUNTIMES+=(youki); fi
fi

# Resolve runtime names to binaries; build rrun if needed (outside the
# namespace, so cargo sees the normal host).
RT_NAME=()
RT_BIN=()
for r in "${RUNTIMES[@]}"; do
    bin=""
    if [ "$r" = rrun ]; then
        bin=$REPO/target/x86_64-unknown-linux-musl/release/rrun
        if [ ! -x "$bin" ]; then
            [ -n "${RRUN_BENCH_IN_NS:-}" ] && die "$bin disappeared"
            say "building rrun (cargo build --release)"
            (cd "$REPO" && cargo build --release >&2) || die "cargo build --release failed"
        fi
    elif [[ "$r" == /* ]]; then
        bin=$r
    elif [[ "$r" == */* ]]; then
        bin=$PWD/$r
    else
        bin=$(command -v "$r" 2>/dev/null || true)
    fi
    if [ -z "$bin" ] || [ ! -x "$bin" ]; then
        if [ "$EXPLICIT" = 1 ]; then die "runtime '$r' not found"; fi
        say "skipping $r: not installed"
        continue
    fi
    RT_NAME+=("$(basename "$r")")
    RT_BIN+=("$bin")
done
[ ${#RT_BIN[@]} -gt 0 ] || die "no runtime to measure"

# Re-exec inside a private mount namespace; every measurement runs there.
if [ -z "${RRUN_BENCH_IN_NS:-}" ]; then
    command -v unshare >/dev/null || die "unshare (util-linux) not found"
    export RRUN_BENCH_IN_NS=1
    args=(-n "$RUNS")
    if [ "$FLOOR" = 1 ]; then args+=(--floor); fi
    if [ "$GUARD" = 1 ]; then args+=(--guard); fi
    if [ "$BREAKDOWN" = 1 ]; then args+=(--breakdown); fi
    # Absolute paths whose basenames are the runtimes' names.
    exec unshare --mount --propagation private "$BASH" "$SELF" "${args[@]}" -- "${RT_BIN[@]}"
fi

# A private namespace is what makes the umount below harmless: check it.
if [ "$(readlink /proc/self/ns/mnt)" = "$(readlink /proc/1/ns/mnt)" ]; then
    die "refusing to run in the host mount namespace"
fi
UNIFIED_NOTE="as on host"
if mountpoint -q /sys/fs/cgroup/unified 2>/dev/null; then
    umount /sys/fs/cgroup/unified
    UNIFIED_NOTE="/sys/fs/cgroup/unified hidden (private mount ns)"
fi

# ---------------------------------------------------------------- setup ----
TMP=$(mktemp -d "${TMPDIR:-/tmp}/rrun-bench.XXXXXX")
# The runtimes' state (--root) on a tmpfs, as engines keep it: /run/runc,
# /run/containerd, $XDG_RUNTIME_DIR are tmpfs on the hosts they run on.
STATE=$TMP/state
mkdir "$STATE"
mount -t tmpfs -o mode=0700 rrun-bench-state "$STATE" || die "cannot mount a tmpfs for the state"
ERRLOG=$TMP/errors.log
: >"$ERRLOG"
ID_PREFIX="rb$$"

cleanup() {
    local rc=$? k id ids
    trap - EXIT INT TERM
    # Kill background jobs first (an interrupted concurrent round).
    # shellcheck disable=SC2046
    kill $(jobs -p) 2>/dev/null || true
    wait 2>/dev/null || true
    for k in "${!RT_BIN[@]}"; do
        local root=$STATE/root-$k
        [ -d "$root" ] || continue
        # Containers we may have left: whatever `list` knows, plus the state
        # dirs named after our id prefix.
        ids=$({
            "${RT_BIN[$k]}" --root "$root" list -q 2>/dev/null || true
            find "$root" -mindepth 1 -maxdepth 1 -name "$ID_PREFIX-*" -printf '%f\n' 2>/dev/null
        } | sort -u)
        for id in $ids; do
            "${RT_BIN[$k]}" --root "$root" delete --force "$id" </dev/null >/dev/null 2>&1 || true
        done
    done
    umount "$STATE" 2>/dev/null || true
    if grep -qF " $TMP/" /proc/self/mountinfo; then
        say "warning: mounts left under $TMP in the bench namespace; unmounting"
        grep -F " $TMP/" /proc/self/mountinfo | awk '{print $5}' | sort -r |
            while read -r m; do umount -l "$m" 2>/dev/null || true; done
    fi
    rm -rf "$TMP"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Bundle: static busybox rootfs, symlinks made by hand, runc spec config.
BB=$(command -v busybox || true)
[ -n "$BB" ] || die "busybox not found (apt-get install busybox-static)"
if ldd "$BB" >/dev/null 2>&1; then die "$BB is dynamic; install busybox-static"; fi
SPEC_RUNTIME=$(command -v runc || true)
[ -n "$SPEC_RUNTIME" ] || die "runc is needed for \`runc spec\`"
ROOTFS=$TMP/rootfs
mkdir -p "$ROOTFS/bin" "$ROOTFS/proc" "$ROOTFS/sys" "$ROOTFS/dev" "$ROOTFS/tmp" "$ROOTFS/etc"
cp "$BB" "$ROOTFS/bin/busybox"
for a in $("$BB" --list); do
    [ "$a" = busybox ] || ln -s busybox "$ROOTFS/bin/$a"
done
B_TRUE=$TMP/bundle-true
B_SLEEP=$TMP/bundle-sleep
mkdir -p "$B_TRUE" "$B_SLEEP"
(cd "$B_TRUE" && "$SPEC_RUNTIME" spec)
# runc spec prints tab-indented JSON whose only line holding just "sh" is the
# process args; both configs share one rootfs (absolute root.path).
sed -i -e 's/"terminal": true/"terminal": false/' \
    -e 's|^\([[:space:]]*\)"sh"$|\1"/bin/true"|' \
    -e "s|\"path\": \"rootfs\"|\"path\": \"$ROOTFS\"|" "$B_TRUE/config.json"
sed -e 's|^\([[:space:]]*\)"/bin/true"$|\1"/bin/sleep", "1000"|' \
    "$B_TRUE/config.json" >"$B_SLEEP/config.json"
if ! grep -q '"terminal": false' "$B_TRUE/config.json" ||
    ! grep -q '"/bin/true"' "$B_TRUE/config.json" ||
    ! grep -q '"/bin/sleep", "1000"' "$B_SLEEP/config.json" ||
    ! grep -q "\"path\": \"$ROOTFS\"" "$B_TRUE/config.json"; then
    die "could not edit the config.json from runc spec"
fi

for k in "${!RT_BIN[@]}"; do mkdir -p "$STATE/root-$k"; done

# A third config: /bin/true under Podman's default seccomp profile (the one
# engines really pass), converted for amd64 and Podman's default
# capabilities the way containers/common does. Skipped without the profile
# (golang-github-containers-common) or python3.
PODMAN_SECCOMP=/usr/share/containers/seccomp.json
B_SECCOMP=""
if [ -r "$PODMAN_SECCOMP" ] && command -v python3 >/dev/null; then
    B_SECCOMP=$TMP/bundle-seccomp
    mkdir -p "$B_SECCOMP"
    python3 - "$PODMAN_SECCOMP" "$B_TRUE/config.json" "$B_SECCOMP/config.json" <<'PY' ||
import json, sys
src = json.load(open(sys.argv[1]))
caps = {"CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FOWNER", "CAP_FSETID", "CAP_KILL",
        "CAP_NET_BIND_SERVICE", "CAP_SETFCAP", "CAP_SETGID", "CAP_SETPCAP",
        "CAP_SETUID", "CAP_SYS_CHROOT"}
native = {"amd64", "x86_64"}
rules = []
for s in src["syscalls"]:
    inc, exc = s.get("includes") or {}, s.get("excludes") or {}
    if set(exc.get("arches") or []) & native:
        continue
    if (inc.get("arches") or []) and not set(inc["arches"]) & native:
        continue
    if set(exc.get("caps") or []) & caps or not set(inc.get("caps") or []) <= caps:
        continue
    r = {"names": s["names"], "action": s["action"]}
    if s.get("args"):
        r["args"] = [{k: a[k] for k in ("index", "value", "valueTwo", "op") if k in a}
                     for a in s["args"]]
    if s.get("errnoRet") is not None:
        r["errnoRet"] = s["errnoRet"]
    rules.append(r)
prof = {"defaultAction": src["defaultAction"],
        "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
        "syscalls": rules}
if src.get("defaultErrnoRet") is not None:
    prof["defaultErrnoRet"] = src["defaultErrnoRet"]
cfg = json.load(open(sys.argv[2]))
cfg["linux"]["seccomp"] = prof
json.dump(cfg, open(sys.argv[3], "w"), indent=1)
PY
        die "could not convert $PODMAN_SECCOMP"
else
    NOTES+=("run with seccomp skipped: needs $PODMAN_SECCOMP (golang-github-containers-common) and python3")
fi

# A sleep that forks nothing: read with a timeout on a fifo nobody writes.
mkfifo "$TMP/fifo"
exec {SLEEPFD}<>"$TMP/fifo"
nap() { read -r -t "$1" -u "$SLEEPFD" _ || true; }

declare -A RES=()   # "metric|k" -> number (us, KiB, bytes) or FAIL / n/a
FAILED=()           # messages for the end
NOTES=()
SEQ=0
newid() { SEQ=$((SEQ + 1)); ID="$ID_PREFIX-$1-$SEQ"; }
now() { NOW=${EPOCHREALTIME/./}; }

# rt K ARGS...: run runtime K with its own root, no stdio, errors to the log.
rt() {
    local k=$1
    shift
    "${RT_BIN[$k]}" --root "$STATE/root-$k" "$@" </dev/null >/dev/null 2>>"$ERRLOG"
}

fail() { # fail METRIC K WHAT
    RES["$1|$2"]=FAIL
    FAILED+=("${RT_NAME[$2]}: $3")
    say "${RT_NAME[$2]}: $3 failed (see summary)"
    {
        echo "--- ${RT_NAME[$2]}: $3"
    } >>"$ERRLOG"
}

# Wait until process PID has exited (gone or zombie), polling /proc with
# builtins only. Returns 1 after 10 s.
wait_exit() {
    local pid=$1 stat s i
    for ((i = 0; i < 20000; i++)); do
        { read -r stat <"/proc/$pid/stat"; } 2>/dev/null || return 0
        s=${stat##*) }
        s=${s%% *}
        case "$s" in Z | X) return 0 ;; esac
        nap 0.0005
    done
    return 1
}

# Order of runtimes for sample I: rotated, so no runtime is always first.
order() {
    local n=${#RT_BIN[@]} j
    ORDER=()
    for ((j = 0; j < n; j++)); do ORDER+=($(((j + $1) % n))); done
}

# ------------------------------------------------------ single samples ----
# Each sets SAMPLE (microseconds) and returns non-zero on failure.

# run_bundle K BUNDLE: one foreground `run` of BUNDLE.
run_bundle() {
    local k=$1 t0 rc=0
    newid run
    now; t0=$NOW
    rt "$k" run --bundle "$2" "$ID" || rc=$?
    now; SAMPLE=$((NOW - t0))
    if [ "$rc" != 0 ]; then rt "$k" delete --force "$ID" || true; fi
    return "$rc"
}
sample_run() { run_bundle "$1" "$B_TRUE"; }
sample_seccomp() { run_bundle "$1" "$B_SECCOMP"; }

sample_csd() {
    local k=$1 t0 pid=""
    newid csd
    now; t0=$NOW
    if rt "$k" create --bundle "$B_TRUE" --pid-file "$TMP/pid-$k" "$ID" &&
        rt "$k" start "$ID" &&
        { read -r pid <"$TMP/pid-$k" || [ -n "$pid" ]; } && # no final newline
        wait_exit "$pid" &&
        rt "$k" delete "$ID"; then
        now; SAMPLE=$((NOW - t0))
        return 0
    fi
    echo "create/start/wait/delete of $ID failed (pid ${pid:-?})" >>"$ERRLOG"
    rt "$k" delete --force "$ID" || true
    return 1
}

EXEC_ID=()
sample_exec() {
    local k=$1 t0 rc=0
    now; t0=$NOW
    rt "$k" exec "${EXEC_ID[$k]}" /bin/true || rc=$?
    now; SAMPLE=$((NOW - t0))
    return "$rc"
}

sample_floor() {
    local t0 rc=0
    now; t0=$NOW
    unshare --fork --pid --mount --uts --ipc --net --cgroup /bin/true \
        </dev/null >/dev/null 2>>"$ERRLOG" || rc=$?
    now; SAMPLE=$((NOW - t0))
    return "$rc"
}

# stats FILE -> sets MEDIAN and P90 (nearest rank) from one value per line.
stats() {
    read -r MEDIAN P90 < <(sort -n "$1" | awk '
        { v[NR] = $1 }
        END {
            if (NR == 0) { print "n/a n/a"; exit }
            m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
            r = int(0.9 * NR); if (r < 0.9 * NR) r++; if (r < 1) r = 1
            printf "%d %d\n", m, v[r]
        }')
}

# timed METRIC SAMPLER: warm-up x2, then RUNS interleaved samples per runtime.
# With a third argument (`floor`), each round also takes a sample of the
# kernel floor, at a rotating place among the runtimes' samples, so the
# floor is measured under the same load as the runtimes (the machine is
# shared; a floor measured minutes later says little about this run).
timed() {
    local metric=$1 sampler=$2 with_floor=${3:-} i k
    local -A dead=()
    say "measuring $metric ($RUNS runs each)"
    for k in "${!RT_BIN[@]}"; do
        : >"$TMP/s-$metric-$k"
        case "${RES["$metric|$k"]:-}" in n/a | FAIL) dead[$k]=1 ;; esac
    done
    if [ -n "$with_floor" ]; then : >"$TMP/s-floor"; fi
    for ((i = -2; i < RUNS; i++)); do
        order "$((i + 2))"
        if [ -n "$with_floor" ]; then
            local at=$(((i + 2) % (${#ORDER[@]} + 1)))
            ORDER=("${ORDER[@]:0:at}" F "${ORDER[@]:at}")
        fi
        for k in "${ORDER[@]}"; do
            if [ "$k" = F ]; then
                sample_floor || die "unshare ... /bin/true failed: $(tail -n 3 "$ERRLOG")"
                if [ "$i" -ge 0 ]; then echo "$SAMPLE" >>"$TMP/s-floor"; fi
                continue
            fi
            [ -z "${dead[$k]:-}" ] || continue
            if "$sampler" "$k"; then
                if [ "$i" -ge 0 ]; then echo "$SAMPLE" >>"$TMP/s-$metric-$k"; fi
            else
                dead[$k]=1
                fail "$metric" "$k" "$metric (sample $i)"
            fi
        done
    done
    for k in "${!RT_BIN[@]}"; do
        [ -z "${dead[$k]:-}" ] || continue
        stats "$TMP/s-$metric-$k"
        RES["$metric|$k"]=$MEDIAN
        RES["$metric.p90|$k"]=$P90
    done
}

# ------------------------------------------------------------ breakdown ----
# The steps of a foreground `run`, in the order of its critical path: each
# is the timing mark (src/timing.rs) logged when the step ends, then what
# the time up to it was spent on. A step's time is its mark minus the
# latest earlier mark of the list (parent and child overlap: a step that
# ended before an earlier one counts 0), so the steps of one run add up to
# its wall time. t0 is taken before the fork of rrun, `exit` after its
# exit status is collected.
BD_STEPS=(
    "main|process start: fork, execve, static-pie start, Rust runtime"
    "cli-parsed|command line"
    "config loaded|config.json: read, parse, validate"
    "state dir made|state dir: mkdir, lock"
    "layout detected|cgroups: layout (mountinfo, /proc/self/cgroup)"
    "cgroups planned|cgroups: paths planned (which levels exist)"
    "state recorded|state.json: record before acting"
    "cgroups created|cgroups: mkdir, checks"
    "resources applied|cgroups: limits (v1 and v2 files)"
    "plan: process|plan: process (user, caps, rlimits, executable; seccomp compile)"
    "plan: rootfs|plan: mounts (bind sources), masked-path /dev/null, devices"
    "plan built|plan: exec fifo, overlay layers"
    "cgroup entry opened|plan: cgroup fds for the child"
    "clone3 returned|clone3: new namespaces (pid, mount, net, uts, ipc)"
    "child: go received|parent: pid recorded; Go"
    "child: cgroups joined|child: join v1 cgroups (tasks fds)"
    "child: namespaces, hostname|child: setns/unshare, setsid, hostname"
    "child: rootfs bound|mounts: / slave, rootfs bind"
    "child: mounts|mounts: config.json's mounts (with the network namespace: those before sysfs)"
    "child: devices|devices: nodes, /dev links"
    "child: masked and read-only paths|mounts: masked and read-only paths (with it: outside /sys)"
    "network namespace sent|parent: the helper's network namespace, sent"
    "device rules applied|parent: device rules (v1 files, v2 eBPF), beside the child's mounts"
    "seccomp compiled and sent|parent: seccomp compiled and sent, beside the child's setup"
    "child: network namespace joined|child: network namespace joined"
    "child: what waited for the network namespace|mounts: sysfs, and the mounts and paths under it"
    "child: pivot_root|pivot_root"
    "child: old root detached|detach the old root (umount2 MNT_DETACH)"
    "child: process prepared (caps, user)|process: fds, rlimits, keyring, cwd, exe, caps, user"
    "init ready|Ready to the parent"
    "created|state.json: created"
    "child: start received|start: exec fifo written, child wakes"
    "child: seccomp loaded|seccomp: load the filter"
    "container reaped|execve, /bin/true runs and exits, wait"
    "deleted|delete: cgroups, state dir"
    "done|command's end"
    "reported|report of the marks (--debug only)"
    "exit|rrun's exit (process teardown)"
)

# The steps of a foreground `exec` (same rules).
BD_EXEC_STEPS=(
    "main|process start: fork, execve, static-pie start, Rust runtime"
    "cli-parsed|command line"
    "exec: state loaded|state.json: lock, read, status"
    "exec: process planned, namespaces opened|plan: process, namespace fds"
    "exec: clone3 returned|cgroup fds, clone3 (into the pid namespace)"
    "exec child: started|child scheduled"
    "exec child: cgroups and namespaces joined|child: join cgroups (v1) and namespaces"
    "exec child: process prepared|child: setsid, fds, rlimits, cwd, exe, caps, user"
    "exec: ready|Ready to the parent"
    "exec: reaped|execve, /bin/true runs and exits, wait"
    "done|command's end"
    "reported|report of the marks (--debug only)"
    "exit|rrun's exit (process teardown)"
)

# breakdown_of LABEL STEPS ARGS...: RUNS timed runs of `rrun ARGS` with
# --debug (STEPS: the name of the step list; a `run` gets a fresh id as its
# last argument; an `exec` runs in the container named by EXEC_ID[k]), for
# each rrun given (two: an old and a new build, their runs interleaved);
# prints the table, one column per build.
breakdown_of() {
    local label=$1 i k t0 log=$TMP/bd.log
    local -n list=$2
    shift 2
    local steps
    steps=$(printf '%s\n' "${list[@]}")
    for k in "${!RT_BIN[@]}"; do : >"$TMP/bd-$k"; done
    say "breakdown: $label ($RUNS runs)"
    for ((i = -2; i < RUNS; i++)); do
        # The floor in the same rounds (see `timed`).
        sample_floor || die "unshare ... /bin/true failed: $(tail -n 3 "$ERRLOG")"
        if [ "$i" -ge 0 ]; then echo "$SAMPLE" >>"$TMP/s-floor"; fi
        order "$((i + 2))"
        for k in "${ORDER[@]}"; do
            newid bd
            local args=("$@")
            case "$1" in
            run) args+=("$ID") ;;
            exec) args=(exec "${EXEC_ID[$k]}" "${args[@]:1}") ;;
            esac
            : >"$log"
            now; t0=$NOW
            "${RT_BIN[$k]}" --debug --log "$log" --log-format json --root "$STATE/root-$k" \
                "${args[@]}" </dev/null >/dev/null 2>>"$ERRLOG" ||
                die "${RT_BIN[$k]} $1 failed: $(tail -n 3 "$ERRLOG")"
            now
            [ "$i" -ge 0 ] || continue
            {
                echo "$t0 t0"
                sed -n 's/.*"msg":"timing \([0-9]*\) [0-9]* \([^"]*\)".*/\1 \2/p' "$log"
                echo "$NOW exit"
            } | awk -v steps="$steps" '
                BEGIN { n = split(steps, s, "\n") }
                { t = $1; $1 = ""; sub(/^ /, ""); at[$0] = t }
                END {
                    last = at["t0"]
                    for (k = 1; k <= n; k++) {
                        split(s[k], f, "|")
                        if (!(f[1] in at)) continue
                        d = at[f[1]] - last
                        if (d < 0) d = 0; else last = at[f[1]]
                        print k, d
                    }
                    print 0, at["exit"] - at["t0"]
                }' >>"$TMP/bd-$k"
        done
    done
    echo
    echo "rrun breakdown, $label: $(uname -sr), $(nproc) cpus, $RUNS runs, cgroups: $UNIFIED_NOTE, state on tmpfs"
    echo "median ms per step (sum of the medians and median total below)"
    for k in "${!RT_BIN[@]}"; do echo "  ${BD_COLUMN[$k]}: ${RT_BIN[$k]}"; done
    local files=()
    for k in "${!RT_BIN[@]}"; do files+=("$TMP/bd-$k"); done
    awk -v steps="$steps" -v cols="${#RT_BIN[@]}" -v names="${BD_COLUMN[*]}" '
        BEGIN { n = split(steps, s, "\n"); split(names, name, " ") }
        FNR == 1 { col++ }
        { v[col, $1, ++c[col, $1]] = $2; seen[$1] = 1 }
        function median(j, k,   m, i, x, t, a) {
            m = c[j, k]
            if (m == 0) return -1
            for (i = 1; i <= m; i++) a[i] = v[j, k, i]
            for (i = 2; i <= m; i++) { t = a[i]; for (x = i - 1; x >= 1 && a[x] > t; x--) a[x + 1] = a[x]; a[x + 1] = t }
            return (m % 2) ? a[(m + 1) / 2] : (a[m / 2] + a[m / 2 + 1]) / 2
        }
        function cell(x) { return x < 0 ? sprintf("%8s", "-") : sprintf("%8.3f", x / 1000) }
        END {
            printf "  "; for (j = 1; j <= cols; j++) printf "%8s ", name[j]; printf "\n"
            for (k = 1; k <= n; k++) {
                if (!(k in seen)) continue
                split(s[k], f, "|")
                printf "  "
                for (j = 1; j <= cols; j++) { md = median(j, k); if (md > 0) sum[j] += md; printf "%s ", cell(md) }
                printf " %s\n", f[2]
            }
            printf "  "; for (j = 1; j <= cols; j++) printf "%s ", cell(sum[j]); printf " sum of the medians\n"
            printf "  "; for (j = 1; j <= cols; j++) printf "%s ", cell(median(j, 0)); printf " median wall time of a run (t0 to exit)\n"
        }' "${files[@]}"
}

if [ "$BREAKDOWN" = 1 ]; then
    BD_COLUMN=(rrun)
    if [ ${#RT_BIN[@]} = 2 ]; then BD_COLUMN=(old new); fi
    : >"$TMP/s-floor"
    breakdown_of "run /bin/true" BD_STEPS run --bundle "$B_TRUE"
    if [ -n "$B_SECCOMP" ]; then
        breakdown_of "run /bin/true, Podman's seccomp profile" BD_STEPS run --bundle "$B_SECCOMP"
    fi
    for k in "${!RT_BIN[@]}"; do
        newid exec
        EXEC_ID[k]=$ID
        rt "$k" create --bundle "$B_SLEEP" "$ID" && rt "$k" start "$ID" ||
            die "create/start of the sleep container failed: $(tail -n 3 "$ERRLOG")"
    done
    breakdown_of "exec /bin/true" BD_EXEC_STEPS exec /bin/true
    for k in "${!RT_BIN[@]}"; do rt "$k" delete --force "${EXEC_ID[$k]}" || true; done
    stats "$TMP/s-floor"
    echo
    echo "kernel floor (unshare --fork --pid --mount --uts --ipc --net --cgroup true), sampled before each round: median $(awk -v v="$MEDIAN" 'BEGIN { printf "%.3f", v / 1000 }') ms, p90 $(awk -v v="$P90" 'BEGIN { printf "%.3f", v / 1000 }') ms"
    exit 0
fi

# --------------------------------------------------------- measurements ----
say "runtimes: ${RT_NAME[*]}; $RUNS runs; bundle in $TMP"

if [ "$FLOOR" = 1 ]; then timed run sample_run floor; else timed run sample_run; fi
timed csd sample_csd
if [ -n "$B_SECCOMP" ]; then timed seccomp sample_seccomp; fi

# exec: one long-running container per runtime.
for k in "${!RT_BIN[@]}"; do
    newid exec
    EXEC_ID[k]=$ID
    if ! rt "$k" create --bundle "$B_SLEEP" "$ID" || ! rt "$k" start "$ID"; then
        fail exec "$k" "create/start of the sleep container"
        continue
    fi
    if ! rt "$k" exec "$ID" /bin/true; then
        say "${RT_NAME[$k]}: exec failed; reporting n/a"
        NOTES+=("${RT_NAME[$k]}: exec failed, reported as n/a: $(tail -n 1 "$ERRLOG")")
        echo "--- ${RT_NAME[$k]}: exec not working (n/a)" >>"$ERRLOG"
        RES["exec|$k"]=n/a
        RES["exec.p90|$k"]=n/a
    fi
done
timed exec sample_exec
for k in "${!RT_BIN[@]}"; do
    rt "$k" delete --force "${EXEC_ID[$k]}" || true
done

# Concurrent: per runtime (not interleaved: the load is the point). The
# kernel goes on tearing down the previous round's 50 network namespaces
# (a workqueue) after its deletes return; each round starts once that
# settled (1 s), so no runtime pays for the one measured before it.
ROUNDS=$((RUNS < 5 ? RUNS : 5))
say "measuring $CONCURRENT concurrent containers ($ROUNDS rounds each)"
for ((r = 0; r < ROUNDS; r++)); do
    order "$r"
    for k in "${ORDER[@]}"; do
        [ "${RES["conc|$k"]:-}" != FAIL ] || continue
        ids=()
        pids=()
        bad=0
        for ((j = 0; j < CONCURRENT; j++)); do newid conc; ids+=("$ID"); done
        sleep 1
        now; t0=$NOW
        for id in "${ids[@]}"; do
            { rt "$k" create --bundle "$B_TRUE" "$id" && rt "$k" start "$id"; } &
            pids+=($!)
        done
        for p in "${pids[@]}"; do wait "$p" || bad=$((bad + 1)); done
        pids=()
        for id in "${ids[@]}"; do
            rt "$k" delete --force "$id" &
            pids+=($!)
        done
        for p in "${pids[@]}"; do wait "$p" || bad=$((bad + 1)); done
        now
        if [ "$bad" != 0 ]; then
            fail conc "$k" "$CONCURRENT concurrent containers ($bad commands failed)"
            for id in "${ids[@]}"; do rt "$k" delete --force "$id" || true; done
            continue
        fi
        echo "$((NOW - t0))" >>"$TMP/s-conc-$k"
    done
done
for k in "${!RT_BIN[@]}"; do
    if [ "${RES["conc|$k"]:-}" != FAIL ]; then
        stats "$TMP/s-conc-$k"
        RES["conc|$k"]=$MEDIAN
    fi
done

# With --floor, the same loop with /bin/true (which ignores its arguments)
# as the runtime: what the shell's forks and three process starts per
# container cost, which every runtime's figure above includes.
rt_noop() {
    shift
    /bin/true "$@" </dev/null >/dev/null 2>>"$ERRLOG"
}
CONC_HARNESS=""
if [ "$FLOOR" = 1 ]; then
    : >"$TMP/s-conc-harness"
    for ((r = 0; r < ROUNDS; r++)); do
        ids=()
        pids=()
        for ((j = 0; j < CONCURRENT; j++)); do newid conc; ids+=("$ID"); done
        sleep 1
        now; t0=$NOW
        for id in "${ids[@]}"; do
            { rt_noop - create --bundle "$B_TRUE" "$id" && rt_noop - start "$id"; } &
            pids+=($!)
        done
        for p in "${pids[@]}"; do wait "$p" || true; done
        pids=()
        for id in "${ids[@]}"; do
            rt_noop - delete --force "$id" &
            pids+=($!)
        done
        for p in "${pids[@]}"; do wait "$p" || true; done
        now
        echo "$((NOW - t0))" >>"$TMP/s-conc-harness"
    done
    stats "$TMP/s-conc-harness"
    CONC_HARNESS=$MEDIAN
fi

# Peak RSS of `run` (median of up to 5) and binary size.
TIME_BIN=/usr/bin/time
RSS_RUNS=$((RUNS < 5 ? RUNS : 5))
for k in "${!RT_BIN[@]}"; do
    RES["size|$k"]=$(stat -L -c %s "${RT_BIN[$k]}")
    if [ ! -x "$TIME_BIN" ]; then
        RES["rss|$k"]=n/a
        continue
    fi
    : >"$TMP/s-rss-$k"
    for ((i = 0; i < RSS_RUNS; i++)); do
        newid rss
        if "$TIME_BIN" -f %M -o "$TMP/rss" "${RT_BIN[$k]}" --root "$STATE/root-$k" \
            run --bundle "$B_TRUE" "$ID" </dev/null >/dev/null 2>>"$ERRLOG"; then
            tail -n 1 "$TMP/rss" >>"$TMP/s-rss-$k"
        else
            rt "$k" delete --force "$ID" || true
            fail rss "$k" "run under $TIME_BIN"
            break
        fi
    done
    if [ "${RES["rss|$k"]:-}" != FAIL ]; then
        stats "$TMP/s-rss-$k"
        RES["rss|$k"]=$MEDIAN
    fi
done

if [ "$FLOOR" = 1 ]; then
    # Sampled with `run`, interleaved (see `timed`).
    stats "$TMP/s-floor"
    FLOOR_MEDIAN=$MEDIAN
    FLOOR_P90=$P90
fi

# --------------------------------------------------------------- report ----
BASE=0
for k in "${!RT_NAME[@]}"; do
    if [ "${RT_NAME[$k]}" = runc ]; then BASE=$k; fi
done
for k in "${!RT_NAME[@]}"; do
    if [ "${RT_NAME[$k]}" = crun ]; then BASE=$k; fi
done

# fmt VALUE UNIT -> human string in FMT
fmt() {
    case "$2" in
    us) FMT=$(awk -v v="$1" 'BEGIN { printf (v < 10000 ? "%.2f ms" : "%.1f ms"), v / 1000 }') ;;
    KiB) FMT=$(awk -v v="$1" 'BEGIN { printf "%.1f MiB", v / 1024 }') ;;
    B) FMT=$(awk -v v="$1" 'BEGIN { if (v < 1048576) printf "%.0f KiB", v / 1024; else printf "%.1f MiB", v / 1048576 }') ;;
    esac
}
# cell METRIC UNIT K -> CELL
cell() {
    local v=${RES["$1|$3"]:-n/a} b=${RES["$1|$BASE"]:-}
    case "$v" in FAIL | n/a) CELL=$v; return ;; esac
    fmt "$v" "$2"
    if [[ "$b" =~ ^[0-9]+$ ]] && [ "$b" != 0 ]; then
        CELL="$FMT ($(awk -v v="$v" -v b="$b" 'BEGIN { printf "%.2fx", v / b }'))"
    else
        CELL=$FMT
    fi
}
ratio() { # ratio METRIC K -> RATIO (vs baseline) or ""
    local v=${RES["$1|$2"]:-} b=${RES["$1|$BASE"]:-}
    RATIO=""
    if [[ "$v" =~ ^[0-9]+$ ]] && [[ "$b" =~ ^[0-9]+$ ]] && [ "$b" != 0 ]; then
        RATIO=$(awk -v v="$v" -v b="$b" 'BEGIN { printf "%.2fx", v / b }')
    fi
}

W0=34
W=26
row() { # row LABEL CELL...
    local label=$1
    shift
    printf "%-${W0}s" "$label"
    printf " %-${W}s" "$@"
    printf '\n'
}
table_row() { # table_row LABEL METRIC UNIT
    local cells=() k
    for k in "${!RT_BIN[@]}"; do
        cell "$2" "$3" "$k"
        cells+=("$CELL")
    done
    row "$1" "${cells[@]}"
}

echo
echo "rrun bench: $(uname -sr), $(nproc) cpus, $RUNS runs, cgroups: $UNIFIED_NOTE, state on tmpfs"
for k in "${!RT_BIN[@]}"; do
    printf '  %-6s %s: %s\n' "${RT_NAME[$k]}" "${RT_BIN[$k]}" \
        "$("${RT_BIN[$k]}" --version 2>/dev/null | sed -n 1p || true)"
done
echo "ratios are against ${RT_NAME[$BASE]}; lower is better"
echo
row "measurement" "${RT_NAME[@]}"
seps=()
for k in "${!RT_BIN[@]}"; do seps+=("$(printf '%*s' "$W" '' | tr ' ' -)"); done
row "$(printf '%*s' "$W0" '' | tr ' ' -)" "${seps[@]}"
table_row "run /bin/true, median" run us
table_row "run /bin/true, p90" run.p90 us
table_row "run, Podman's seccomp profile, med" seccomp us
table_row "create+start+delete, median" csd us
table_row "create+start+delete, p90" csd.p90 us
table_row "exec /bin/true, median" exec us
table_row "exec /bin/true, p90" exec.p90 us
table_row "$CONCURRENT concurrent create+start+delete" conc us
table_row "peak RSS during run" rss KiB
table_row "binary size" size B
if [ "$FLOOR" = 1 ]; then
    fmt "$FLOOR_MEDIAN" us
    floor_cell="$FMT"
    fmt "$FLOOR_P90" us
    row "kernel floor (unshare), med/p90" "$floor_cell / $FMT"
    cells=()
    for k in "${!RT_BIN[@]}"; do
        v=${RES["run|$k"]:-}
        if [[ "$v" =~ ^[0-9]+$ ]]; then
            cells+=("$(awk -v v="$v" -v f="$FLOOR_MEDIAN" 'BEGIN { printf "%.2fx floor (+%.2f ms)", v / f, (v - f) / 1000 }')")
        else
            cells+=("${v:-n/a}")
        fi
    done
    row "run median vs kernel floor" "${cells[@]}"
    if [[ "$CONC_HARNESS" =~ ^[0-9]+$ ]]; then
        fmt "$CONC_HARNESS" us
        row "${CONCURRENT}x, harness alone (/bin/true)" "$FMT"
        cells=()
        for k in "${!RT_BIN[@]}"; do
            v=${RES["conc|$k"]:-} b=${RES["conc|$BASE"]:-}
            if [[ "$v" =~ ^[0-9]+$ && "$b" =~ ^[0-9]+$ ]] && [ "$b" -gt "$CONC_HARNESS" ]; then
                cells+=("$(awk -v v="$v" -v b="$b" -v h="$CONC_HARNESS" 'BEGIN { printf "%.1f ms (%.2fx)", (v - h) / 1000, (v - h) / (b - h) }')")
            else
                cells+=("n/a")
            fi
        done
        row "${CONCURRENT}x net of the harness" "${cells[@]}"
    fi
fi
echo

if [ ${#NOTES[@]} -gt 0 ]; then
    printf 'note: %s\n' "${NOTES[@]}"
    echo
fi
if [ ${#FAILED[@]} -gt 0 ]; then
    echo "failures:"
    printf '  %s\n' "${FAILED[@]}"
    echo "last lines of the runtimes' stderr:"
    tail -n 20 "$ERRLOG" | sed 's/^/  | /'
    echo
fi

# Final line: rrun against the baseline, or just what was compared.
RRUN=""
for k in "${!RT_NAME[@]}"; do
    if [ "${RT_NAME[$k]}" = rrun ]; then RRUN=$k; fi
done
status=0
if [ -n "$RRUN" ] && [ "$RRUN" != "$BASE" ]; then
    summary="rrun vs ${RT_NAME[$BASE]}:"
    for m in run:run seccomp:run+seccomp csd:create+start+delete exec:exec "conc:${CONCURRENT}x" rss:RSS size:size; do
        ratio "${m%%:*}" "$RRUN"
        summary+=" ${m#*:} ${RATIO:-${RES["${m%%:*}|$RRUN"]:-n/a}},"
    done
    echo "${summary%,} (median; <1 is faster/smaller)"
else
    echo "compared: ${RT_NAME[*]} (baseline ${RT_NAME[$BASE]}); $RUNS runs"
fi

if [ "$GUARD" = 1 ]; then
    CRUN=""
    for k in "${!RT_NAME[@]}"; do
        if [ "${RT_NAME[$k]}" = crun ]; then CRUN=$k; fi
    done
    if [ -z "$RRUN" ] || [ -z "$CRUN" ]; then
        echo "guard: FAIL: --guard needs both rrun and crun in the runtime list"
        status=1
    else
        # Every timed figure (medians) and peak memory; binary size is
        # reported but not guarded (crun links its libraries dynamically).
        for m in run:us seccomp:us csd:us exec:us conc:us rss:KiB; do
            u=${m#*:}
            m=${m%%:*}
            v=${RES["$m|$RRUN"]:-} c=${RES["$m|$CRUN"]:-}
            if [ "$m" = seccomp ] && [ -z "$B_SECCOMP" ]; then continue; fi
            if ! [[ "$v" =~ ^[0-9]+$ && "$c" =~ ^[0-9]+$ ]]; then
                echo "guard: FAIL: $m not measured (rrun: ${v:-?}, crun: ${c:-?})"
                status=1
            elif [ "$v" -gt "$c" ]; then
                fmt "$v" "$u"
                echo -n "guard: FAIL: rrun $m $FMT > crun "
                fmt "$c" "$u"
                echo "$FMT"
                status=1
            fi
        done
        if [ "$status" = 0 ]; then
            echo "guard: OK: rrun is not slower than crun on run, run with seccomp, create+start+delete, exec and ${CONCURRENT}x, and uses no more memory"
        fi
    fi
fi
exit "$status"
