#!/usr/bin/env bash
# Run rrun's integration tests on a pure cgroup v2 host: Debian's stock
# kernel booted under qemu with cgroup_no_v1=all. With RRUN_VM_CGROUPS=v1,
# on a cgroup v1 host instead, with the controllers this development host
# lacks (hugetlb, rdma, net_cls, net_prio). With RRUN_VM_INIT=systemd, on a
# real Debian 12 host with systemd as pid 1 (see "The systemd VM" below).
#
# Usage (from anywhere in the repository):
#
#     tests/vm/run.sh [TEST_FILTER...]
#     RRUN_VM_CGROUPS=v1 tests/vm/run.sh [TEST_FILTER...]
#     RRUN_VM_LSM=apparmor tests/vm/run.sh [TEST_FILTER...]
#     RRUN_VM_LSM=selinux tests/vm/run.sh [TEST_FILTER...]
#     RRUN_VM_INIT=systemd tests/vm/run.sh [TEST_FILTER...]
#     tests/vm/run.sh checkpoint [TEST_FILTER...]
#
# `checkpoint` is the systemd VM running tests/checkpoint.rs (checkpoint
# and restore with Debian's CRIU on Debian's kernel, also through Podman
# and containerd; then a restore and a failed one with the systemd cgroup
# driver) with RRUN_TEST_REQUIRE_CRIU=1, so a CRIU that cannot work there
# fails the tests instead of skipping them; filters narrow the first run
# (and drop the second). About 3.5 min with the image cached (120-125 s
# of tests, debug build), plus the image's build when its packages changed.
#     RRUN_VM_INIT=systemd RRUN_VM_BENCH="-n 10 --floor" tests/vm/run.sh
#
# With no filter the VM runs every test of the `lifecycle`, `cgroups` and
# `host_safety` binaries plus, from every other test binary (unit tests included), the
# tests whose name contains "cgroup" (not `rootless`'s: the systemd VM runs
# those, with the user tools the busybox root lacks). In v1 mode the default is short: from
# the `cgroups` binary only, the optional_controller_* tests (hugetlb, rdma,
# net_cls, net_prio read back), the events tests (OOM through the v1
# eventfd), placement and the cpu tests (cpu,cpuacct mounted together).
# TEST_FILTERs replace that default: they are libtest filters (substrings
# of test names, or options such as --exact or --skip NAME), given to every
# test binary, and cannot contain spaces. `bash .ci/run` calls this script
# (every mode) after the host test suite (unattended, CI=true, no stdin).
#
# Needs: qemu-system-x86_64 (Debian: qemu-system-x86), cpio, busybox-static
# (/bin/busybox), rdma (iproute2), apt-get and dpkg-deb for the first run,
# and cargo; apparmor_parser (apparmor) or secilc for the LSM modes. No
# root needed except for the first kernel download if `apt-get update` was
# never run. The host's own cgroup mounts are never touched.
#
# What it does: builds rrun and the test binaries (release), downloads the
# current linux-image-6.x-amd64 package with apt-get once and caches it
# extracted in target/vm-cache/, builds an initramfs (busybox, rrun, the test
# binaries and their shared libraries, the kernel modules) in a temp dir, and
# boots it under qemu (TCG; 2 CPUs, 2 GiB). Inside, tests/vm/init moves the
# payload onto a tmpfs root (pivot_root cannot work on an initramfs) and
# tests/vm/init2 mounts cgroup2 at /sys/fs/cgroup (v1 mode: a tmpfs there
# with each v1 hierarchy in its own directory, cpu,cpuacct and
# net_cls,net_prio combined and linked as systemd does, name=systemd, and an
# empty cgroup2 at unified, like this host), creates an RDMA device (rdma_rxe
# on a dummy interface, with iproute2's rdma tool), runs the tests with
# RRUN_TEST_RUNTIME=/usr/local/bin/rrun and RRUN_TEST_REQUIRE_CONTROLLERS
# (hugetlb and rdma; v1 mode also net_cls and net_prio: their tests fail
# instead of skipping when the controller is missing), checks for leftover
# cgroups, mounts and processes, prints "VM: N passed, N failed" and powers
# off. The console goes to stdout and to target/vm-cache/console.log. Exit
# status: 0 only if that line is there with 0 failed.
#
# Time (2 cores, TCG, measured): kernel download and extraction ~10 s, once;
# initramfs ~2 s; qemu start to the first test ~10 s; then ~1-1.5 s per
# container run with 2 test threads (the 37 lifecycle tests: 36-50 s). The
# default set took 60-110 s in all (more when the host is busy), builds
# aside; the v1 mode's default set (12 tests) 16-36 s; each LSM mode's
# (the 10 lsm_ tests; those of the other LSM skip) 14-25 s. Limit:
# RRUN_VM_TIMEOUT.
#
# The systemd VM (RRUN_VM_INIT=systemd): the same kernel boots a Debian 12
# (bookworm) root file system with systemd 252 as pid 1, D-Bus, udev and
# pure cgroup v2 (systemd.unified_cgroup_hierarchy=1), as a current
# distribution runs. tests/vm/systemd/mkroot.sh builds it once with
# mmdebstrap from Debian's packages (systemd, dbus, Podman, containerd,
# Docker, runc, crun, the NFS server and client, CRIU and iptables,
# iproute2, procps, busybox-static, python3-grpcio; every daemon disabled at boot but
# startable) plus the kernel's modules, as an ext4 image cached in
# target/vm-cache/rootfs-systemd-<key>.ext4; the key hashes mkroot.sh (its
# package list) and the kernel version, so a change rebuilds it. Building
# needs root, mmdebstrap and mke2fs (e2fsprogs). qemu opens the image with
# snapshot=on (it is never written); a small initramfs (tests/vm/systemd/
# init) loads virtio and ext4, mounts it, copies this run's files over it
# (rrun as /usr/local/bin/rrun, the test binaries in /tests, /vm/plan,
# /vm/env, the runner and the test unit, the repository's tests/ at its
# path on this host, and RRUN_VM_FILES) and switch_roots to systemd.
# The unit vmtest.service (tests/vm/systemd/,
# After=multi-user.target, Delegate=yes) runs tests/vm/systemd/run-tests:
# it waits for `systemctl is-system-running --wait` (running or degraded),
# checks D-Bus and cgroup2, moves itself into a leaf (runner) of its
# delegated cgroup, loads RRUN_VM_MODULES with modprobe, runs /vm/plan with
# RRUN_TEST_SYSTEMD=1 in the environment, looks for new cgroups, scope or
# slice units, mounts and processes left behind, prints the "VM: N passed,
# N failed" line, and the unit powers the VM off. The tests run as root in
# that service: systemctl, busctl and journalctl work as on any host; the
# engines are installed (start them with systemctl start, or as the engine
# suite does, its own daemons). With no filter it runs SYSTEMD_PLAN
# (lifecycle, cgroups, systemd, nfs, rootless; see RRUN_VM_PLAN). Kernel command line:
# apparmor=0 (Docker needs it), no cgroup_no_v1 (systemd alone decides).
# systemd's "SELinux: Could not open policy file" line on the console is
# harmless (the kernel has SELinux built in, not enabled).
#
# Time of the systemd VM (2 cores, TCG, measured): building the image
# 55-60 s with the machine idle, ~105 s with a build running (mmdebstrap
# ~50 s, modules, depmod and mke2fs ~5 s; 710 MiB of files, 712 MiB on disk
# in a sparse 4 GiB image), once per package list and kernel; qemu start
# to the runner ~12-14 s (systemd's "Startup finished" 11-14 s); the default
# plan (40 lifecycle and 42 cgroups tests) 40-50 s; 70-85 s in all with the
# image cached, 130-150 s from an empty target/vm-cache, builds aside.
#
# Environment (all optional):
#   RRUN_VM_TIMEOUT=1200      seconds before qemu is killed (whole VM run)
#   RRUN_VM_TEST_TIMEOUT=600  seconds per test binary inside the VM
#   RRUN_VM_TEST_THREADS=2    libtest --test-threads inside the VM
#   RRUN_VM_BINARIES="..."    only these test binaries (names as in tests/;
#                             unit tests are unit-lib-rrun, unit-bin-rrun)
#   RRUN_VM_CGROUPS=systemd   "systemd": as for a root login on a systemd
#                             host: all controllers enabled down to
#                             /user.slice/user-0.slice, tests in its
#                             session-1.scope; "bare": no controller
#                             enabled, tests in the root cgroup; "v1":
#                             cgroup v1 (see above), tests in the roots
#   RRUN_VM_LSM=              "apparmor" or "selinux": boot with that LSM
#                             and run the lsm_ tests (see above)
#   RRUN_VM_SELINUX_ENFORCE=1 0: leave SELinux permissive after loading
#                             the policy
#   RRUN_VM_MODULES="overlay dummy crc32_generic rdma_rxe"   kernel
#                             modules to load (dependencies follow); with
#                             dummy and rdma_rxe (which needs crc32 but does
#                             not list it), the VM gets an RDMA device rxe0.
#                             In the LSM modes the default is none.
#   RRUN_VM_MEMORY=2048 RRUN_VM_CPUS=2 RRUN_VM_ACCEL=tcg   qemu settings
#   RRUN_VM_CACHE=target/vm-cache   where the kernel, the systemd image
#                             and the console log go
#   RRUN_VM_INIT=busybox      "systemd": the systemd VM (see above);
#                             RRUN_VM_LSM does not apply; RRUN_VM_CGROUPS=v1
#                             boots it with systemd's hybrid v1 layout
#                             (systemd.unified_cgroup_hierarchy=0) and runs
#                             SYSTEMD_V1_PLAN: the systemd driver on v1
#   RRUN_VM_FILES=DIR         systemd VM: DIR's contents are copied over the
#                             root file system before systemd starts (unit
#                             files, engine configuration, test data)
#   RRUN_VM_BOOT_TIMEOUT=600  systemd VM: seconds the runner waits for the
#                             boot to finish
#   RRUN_VM_PLAN="lifecycle<newline>cgroups"   systemd VM: the default
#                             plan, one line per test binary run:
#                             "[VAR=VALUE...] BINARY [LIBTEST_ARG...]"
#                             (no spaces inside a word), e.g.
#                             "RRUN_TEST_CGROUP_DRIVER=systemd cgroups"
#   RRUN_VM_TEST_ENV=         systemd VM: "VAR=VALUE ..." for every test run
#   RRUN_VM_PROFILE=release   "debug": build and run the debug profile (no
#                             LTO links; for iterating, not for CI)
#   RRUN_VM_QEMU=             the qemu-system-x86_64 to boot with (default:
#                             the one on PATH); "backports" fetches Debian
#                             bookworm-backports' QEMU (10.x) from the
#                             archive and unpacks it (not installed) in the
#                             cache. For benchmarks: QEMU 7.2 (bookworm's)
#                             translates code anew for every run of a
#                             position-independent program (see
#                             docs/PERFORMANCE.md), so user-space code costs
#                             2-3x what it does on QEMU >= 8
#   RRUN_VM_BENCH=            systemd VM: instead of tests, run
#                             tests/bench/bench.sh with these arguments
#                             against rrun (release build; no test
#                             binaries are built), crun and runc, all as
#                             the image installs them (plus the host's
#                             /usr/bin/time for peak RSS), on this pure
#                             cgroup v2 host; e.g. "-n 10 --floor --guard"
#                             or "--breakdown -n 20" (with an older build
#                             at usr/local/bin/rrun-old in RRUN_VM_FILES,
#                             the breakdown compares the two). The table
#                             goes to the console; the run passes when
#                             bench.sh exits 0. Under TCG only ratios measured in the same
#                             run mean anything. -n 10 takes 10-20 min
#                             (the 50-container rounds most of it), so the
#                             timeouts default to 3600 s in this mode.
set -euo pipefail

BENCH=${RRUN_VM_BENCH:-}
if [ -n "$BENCH" ]; then
    VM_TIMEOUT=${RRUN_VM_TIMEOUT:-3600}
    TEST_TIMEOUT=${RRUN_VM_TEST_TIMEOUT:-3300}
else
    VM_TIMEOUT=${RRUN_VM_TIMEOUT:-1200}
    TEST_TIMEOUT=${RRUN_VM_TEST_TIMEOUT:-600}
fi
TEST_THREADS=${RRUN_VM_TEST_THREADS:-2}
CGROUP_SETUP=${RRUN_VM_CGROUPS:-systemd}
LSM=${RRUN_VM_LSM:-}
INIT=${RRUN_VM_INIT:-busybox}
BOOT_TIMEOUT=${RRUN_VM_BOOT_TIMEOUT:-600}
SELINUX_ENFORCE=${RRUN_VM_SELINUX_ENFORCE:-1}
if [ -n "$LSM" ]; then
    MODULES=${RRUN_VM_MODULES-}
else
    MODULES=${RRUN_VM_MODULES-overlay dummy crc32_generic rdma_rxe}
fi
MEMORY=${RRUN_VM_MEMORY:-2048}
CPUS=${RRUN_VM_CPUS:-2}
ACCEL=${RRUN_VM_ACCEL:-tcg}
KERNEL_META=linux-image-amd64

VM_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$VM_DIR/../.." && pwd)
CACHE=${RRUN_VM_CACHE:-$REPO/target/vm-cache}
export PATH="$PATH:/usr/local/sbin:/usr/sbin:/sbin:${CARGO_HOME:-$HOME/.cargo}/bin"

log() { printf '[vm %3ds] %s\n' "$SECONDS" "$*" >&2; }
die() {
    log "FATAL: $*"
    exit 1
}

case "${1:-}" in
-h | --help)
    sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'
    exit 0
    ;;
esac
for f in "$@"; do
    [[ $f != *[[:space:]]* ]] || die "test filters cannot contain spaces: '$f'"
done
CHECKPOINT_PLAN=
if [ "${1:-}" = checkpoint ]; then
    shift
    INIT=systemd
    CHECKPOINT_PLAN="RRUN_TEST_REQUIRE_CRIU=1 checkpoint $*"
    # Restore makes its cgroups as create does: with the systemd driver too.
    [ $# -gt 0 ] || CHECKPOINT_PLAN="$CHECKPOINT_PLAN
RRUN_TEST_REQUIRE_CRIU=1 RRUN_TEST_CGROUP_DRIVER=systemd checkpoint then_restore restore_that_fails"
    set --
fi
case "$CGROUP_SETUP" in
systemd | bare)
    REQUIRE_CONTROLLERS="hugetlb rdma"
    CMDLINE_CGROUPS="cgroup_no_v1=all"
    ;;
v1)
    REQUIRE_CONTROLLERS="hugetlb rdma net_cls net_prio"
    CMDLINE_CGROUPS=""
    ;;
*) die "RRUN_VM_CGROUPS must be systemd, bare or v1, not '$CGROUP_SETUP'" ;;
esac
# The v1 mode's default tests (filters for the `cgroups` binary).
V1_FILTERS="optional_controller events_ absolute_cgroups_path cpu_"
# The systemd VM's default plan: one line per run of a test binary,
# "[VAR=VALUE...] BINARY [LIBTEST_ARG...]", the variables set for that run
# only; a binary may run more than once (e.g. again with
# RRUN_TEST_CGROUP_DRIVER=systemd). RRUN_VM_PLAN replaces it.
SYSTEMD_PLAN=${RRUN_VM_PLAN:-"lifecycle
cgroups
systemd
RRUN_TEST_CGROUP_DRIVER=systemd lifecycle
RRUN_TEST_CGROUP_DRIVER=systemd cgroups
RRUN_TEST_NFS=1 nfs
RRUN_ENGINE_CGROUP_DRIVER=systemd RRUN_TEST_NFS=1 engines --ignored systemd_ containerd_cri_runtime_handler nfs_volume
rootless --include-ignored"}
# The systemd VM on cgroup v1 (RRUN_VM_CGROUPS=v1): the systemd driver
# through name=systemd, its own tests and lifecycle and cgroups in it.
SYSTEMD_V1_PLAN="systemd
RRUN_TEST_CGROUP_DRIVER=systemd lifecycle
RRUN_TEST_CGROUP_DRIVER=systemd cgroups"
CMDLINE_LSM=
case "$LSM" in
"") ;;
apparmor | selinux)
    # Debian's kernel enables one of them (AppArmor by default).
    CMDLINE_LSM="security=$LSM"
    REQUIRE_CONTROLLERS=
    ;;
*) die "RRUN_VM_LSM must be apparmor or selinux, not '$LSM'" ;;
esac
case "$INIT" in
busybox) ;;
systemd)
    [ -z "$LSM" ] || die "RRUN_VM_LSM does not apply to RRUN_VM_INIT=systemd"
    # Debian's default AppArmor would confine Docker's containers with a
    # profile the image does not load.
    case "$CGROUP_SETUP" in
    systemd) CMDLINE_CGROUPS="systemd.unified_cgroup_hierarchy=1 apparmor=0" ;;
    v1)
        # systemd's hybrid ("legacy") layout: the v1 controllers, the
        # name=systemd hierarchy it manages units in, and an empty cgroup2
        # at /sys/fs/cgroup/unified, as on this development host.
        CMDLINE_CGROUPS="systemd.unified_cgroup_hierarchy=0 apparmor=0"
        REQUIRE_CONTROLLERS=
        SYSTEMD_PLAN=${RRUN_VM_PLAN:-"$SYSTEMD_V1_PLAN"}
        ;;
    *) die "RRUN_VM_CGROUPS with RRUN_VM_INIT=systemd: systemd (cgroup v2, the default) or v1 (systemd's hybrid layout), not '$CGROUP_SETUP'" ;;
    esac
    ;;
*) die "RRUN_VM_INIT must be busybox or systemd, not '$INIT'" ;;
esac
[ -z "$CHECKPOINT_PLAN" ] || SYSTEMD_PLAN=${RRUN_VM_PLAN:-$CHECKPOINT_PLAN}
if [ -n "$BENCH" ]; then
    [ "$INIT" = systemd ] || die "RRUN_VM_BENCH needs RRUN_VM_INIT=systemd (bash, util-linux, runc, crun and python3 are installed there)"
    [ $# -eq 0 ] || die "RRUN_VM_BENCH runs no tests: drop the test filters"
    [[ "$BENCH" != *[!-A-Za-z0-9\ ]* ]] || die "RRUN_VM_BENCH: only bench.sh options and numbers, got '$BENCH'"
fi
for v in RRUN_VM_PLAN RRUN_VM_TEST_ENV RRUN_VM_FILES; do
    [ -z "${!v:-}" ] || [ "$INIT" = systemd ] || die "$v applies to RRUN_VM_INIT=systemd only"
done
for v in ${RRUN_VM_TEST_ENV:-}; do
    [[ $v =~ ^[A-Za-z_][A-Za-z0-9_]*= ]] || die "RRUN_VM_TEST_ENV: '$v' is not VAR=VALUE"
done
if [ -n "${RRUN_VM_FILES:-}" ]; then
    [ -d "$RRUN_VM_FILES" ] || die "RRUN_VM_FILES=$RRUN_VM_FILES is not a directory"
fi

for cmd in qemu-system-x86_64 cpio ldd; do
    command -v "$cmd" >/dev/null ||
        die "$cmd not found (apt-get install qemu-system-x86 cpio)"
done
[ -x /bin/busybox ] || die "/bin/busybox not found (apt-get install busybox-static)"
case "$LSM" in
apparmor)
    apparmor_parser=$(command -v apparmor_parser) ||
        die "apparmor_parser not found (apt-get install apparmor)"
    ;;
selinux)
    command -v secilc >/dev/null || die "secilc not found (apt-get install secilc)"
    ;;
esac

mkdir -p "$CACHE"
work=$(mktemp -d "${TMPDIR:-/tmp}/rrun-vm.XXXXXX")
qemu_pid=
dl=
cleanup() {
    if [ -n "$qemu_pid" ] && kill -0 "$qemu_pid" 2>/dev/null; then
        kill -KILL "$qemu_pid" 2>/dev/null || true
        wait "$qemu_pid" 2>/dev/null || true
    fi
    rm -rf "$work" ${dl:+"$dl"}
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# --- build -----------------------------------------------------------------
# Executables from cargo's JSON messages as "NAME PATH" lines: integration
# tests under their target name, unit tests as unit-KIND-NAME (unit-lib-rrun,
# unit-bin-rrun), and the program binaries as bin:NAME.
list_binaries() {
    local line target kind name exe
    while IFS= read -r line; do
        [[ $line == *'"reason":"compiler-artifact"'* ]] || continue
        [[ $line =~ \"executable\":\"([^\"]+)\" ]] || continue
        exe=${BASH_REMATCH[1]}
        [[ $line =~ \"target\":\{[^}]*\} ]] || continue
        target=${BASH_REMATCH[0]}
        [[ $target =~ \"kind\":\[\"([a-z-]+)\" ]] || continue
        kind=${BASH_REMATCH[1]}
        [[ $target =~ \"name\":\"([^\"]+)\" ]] || continue
        name=${BASH_REMATCH[1]}
        if ! [[ $line =~ \"profile\":\{[^}]*\"test\":true ]]; then
            [ "$kind" != bin ] || echo "bin:$name $exe"
            continue
        fi
        case "$kind" in
        test) echo "$name $exe" ;;
        bin | lib) echo "unit-$kind-$name $exe" ;;
        esac
    done
}

cd "$REPO"
# Builds rrun too (integration tests need it) and lists the test binaries.
# RRUN_VM_PROFILE=debug builds the debug profile instead: slower containers,
# but no LTO link per test binary (for iterating on one test).
case "${RRUN_VM_PROFILE:-release}" in
release) profile_flag=--release ;;
debug) profile_flag= ;;
*) die "RRUN_VM_PROFILE must be release or debug" ;;
esac
if [ -n "$BENCH" ]; then
    # Only rrun itself, as it ships.
    [ "$profile_flag" = --release ] || die "RRUN_VM_BENCH measures the release build"
    log "cargo build --locked --release"
    cargo build --locked --release --message-format=json-render-diagnostics \
        >"$work/cargo.json" || die "building rrun failed"
    list_binaries <"$work/cargo.json" | sort >"$work/all-binaries"
    : >"$work/binaries"
else
    log "cargo test --locked $profile_flag --no-run"
    cargo test --locked $profile_flag --no-run --message-format=json-render-diagnostics \
        >"$work/cargo.json" || die "building the test binaries failed"
    list_binaries <"$work/cargo.json" | sort >"$work/all-binaries"
    grep -v '^bin:' "$work/all-binaries" >"$work/binaries" || die "cargo listed no test binaries"
fi
rrun_bin=$(sed -n 's/^bin:rrun //p' "$work/all-binaries")
[ -x "${rrun_bin:-/nonexistent}" ] || die "cargo did not list the rrun binary"

# --- kernel ----------------------------------------------------------------
# The package the linux-image-amd64 metapackage points at, e.g.
# linux-image-6.1.0-56-amd64.
kernel_package() {
    { apt-cache depends "$KERNEL_META" 2>/dev/null || true; } |
        sed -n 's/^ *Depends: \(linux-image-[0-9][^ ]*\)$/\1/p' | head -n 1
}

pkg=$(kernel_package)
if [ -z "$pkg" ] && [ "$(id -u)" = 0 ]; then
    log "apt knows no $KERNEL_META; running apt-get update"
    apt-get -q update >"$work/apt.log" 2>&1 || cat "$work/apt.log" >&2
    pkg=$(kernel_package)
fi
if [ -z "$pkg" ] || [ ! -f "$CACHE/$pkg/.complete" ]; then
    # Offline, or apt's lists are gone: any complete cached kernel will do.
    if [ -z "$pkg" ]; then
        cached=$(find "$CACHE" -mindepth 2 -maxdepth 2 -path "$CACHE/linux-image-*/.complete" |
            sort -V | tail -n 1)
        [ -n "$cached" ] ||
            die "cannot resolve $KERNEL_META (run apt-get update) and no kernel is cached"
        pkg=$(basename "$(dirname "$cached")")
        log "apt cannot resolve $KERNEL_META; using cached $pkg"
    else
        log "downloading $pkg (cached in $CACHE/$pkg)"
        dl=$(mktemp -d "$CACHE/.download.XXXXXX")
        chmod 755 "$dl" # readable by apt's _apt user: no sandbox warning
        (cd "$dl" && apt-get -q download "$pkg") >"$work/apt.log" 2>&1 || {
            cat "$work/apt.log" >&2
            rm -rf "$dl"
            die "apt-get download $pkg failed"
        }
        dpkg-deb -x "$dl"/*.deb "$dl/root" || {
            rm -rf "$dl"
            die "dpkg-deb -x failed"
        }
        rm -f "$dl"/*.deb
        touch "$dl/root/.complete"
        rm -rf "${CACHE:?}/$pkg"
        mv -T "$dl/root" "$CACHE/$pkg"
        rm -rf "$dl"
        dl=
        # Older kernels are ~400 MB each; keep only the current one.
        find "$CACHE" -mindepth 1 -maxdepth 1 -name 'linux-image-*' ! -name "$pkg" \
            -exec rm -rf {} +
    fi
fi
kroot=$CACHE/$pkg
vmlinuz=$(find "$kroot/boot" -maxdepth 1 -name 'vmlinuz-*' | head -n 1)
[ -n "$vmlinuz" ] || die "no boot/vmlinuz-* in $kroot"
kver=${vmlinuz##*/vmlinuz-}
moddir=$kroot/lib/modules/$kver
log "kernel $kver ($vmlinuz)"

# --- systemd image ---------------------------------------------------------
if [ "$INIT" = systemd ]; then
    rootfs_image=$("$VM_DIR/systemd/mkroot.sh" "$CACHE" "$moddir") ||
        die "building the systemd VM's root file system failed"
    log "root file system $rootfs_image"
fi

# --- initramfs -------------------------------------------------------------
stage=$work/initramfs
payload=$stage/payload
if [ "$INIT" = systemd ]; then
    # Copied over the Debian image by tests/vm/systemd/init: this run's
    # binaries, the runner and its unit; the modules to mount the image.
    units=$payload/etc/systemd/system
    mkdir -p "$stage/bin" "$stage/lib/modules/vm" "$payload"/{vm,tests,usr/local/bin} \
        "$units"/{multi-user.target.wants,emergency.service.d,rescue.service.d}
    cp "$VM_DIR/systemd/init" "$stage/init"
    cp /bin/busybox "$stage/bin/busybox"
    cp "$VM_DIR/systemd/run-tests" "$VM_DIR/systemd/boot-failed" "$payload/vm/"
    chmod 755 "$stage/init" "$payload/vm/run-tests" "$payload/vm/boot-failed"
    cp "$VM_DIR/systemd/vmtest.service" "$units/"
    ln -s ../vmtest.service "$units/multi-user.target.wants/vmtest.service"
    cp "$VM_DIR/systemd/boot-failed.conf" "$units/emergency.service.d/"
    cp "$VM_DIR/systemd/boot-failed.conf" "$units/rescue.service.d/"
    cp "$rrun_bin" "$payload/usr/local/bin/rrun"
    # Tests open some files by their CARGO_MANIFEST_DIR path (the engine
    # suite's mkimage.sh and cri.py, fuzz seeds, config.json.example).
    mkdir -p "$payload$REPO"
    cp -a "$REPO/tests" "$REPO/config.json.example" "$payload$REPO/"
    case " $MODULES " in
    *" rdma_rxe "*) ;;
    *) REQUIRE_CONTROLLERS=${REQUIRE_CONTROLLERS/rdma/} ;;
    esac
else
    mkdir -p "$stage/bin" "$payload"/{bin,vm,tests,usr/local/bin,lib/modules/vm,etc,root,proc,sys,dev,tmp,run}
    cp "$VM_DIR/init" "$stage/init"
    cp /bin/busybox "$stage/bin/busybox"
    cp /bin/busybox "$payload/bin/busybox"
    # The tests copy /bin/busybox into their bundles and link every applet it
    # lists, so the VM's /bin is busybox, as on the host.
    for applet in $(/bin/busybox --list); do
        [ "$applet" = busybox ] || ln -s busybox "$payload/bin/$applet"
    done
    cp "$VM_DIR/init2" "$payload/vm/init2"
    chmod 755 "$stage/init" "$payload/vm/init2"
    cp "$rrun_bin" "$payload/usr/local/bin/rrun"
    case "$LSM" in
    apparmor) cp "$apparmor_parser" "$payload/usr/local/bin/apparmor_parser" ;;
    selinux)
        # The kernel takes the newest policy version secilc writes (33).
        secilc --output="$payload/vm/selinux.policy" --filecontext=/dev/null \
            "$VM_DIR/selinux.cil" || die "secilc $VM_DIR/selinux.cil failed"
        ;;
    esac
    # iproute2's rdma tool makes the VM's RDMA device (see init2); without
    # rdma_rxe there is none, and the rdma tests may skip.
    case " $MODULES " in
    *" rdma_rxe "*)
        rdma_tool=$(command -v rdma) || die "rdma not found (apt-get install iproute2)"
        cp "$rdma_tool" "$payload/usr/local/bin/rdma"
        ;;
    *) REQUIRE_CONTROLLERS=${REQUIRE_CONTROLLERS/rdma/} ;;
    esac
    printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' \
        >"$payload/etc/passwd"
    printf 'root:x:0:\ntty:x:5:\nnogroup:x:65534:\n' >"$payload/etc/group"
fi

# The test plan: which binaries, with which filters.
: >"$payload/vm/plan"
if [ -n "$BENCH" ]; then
    # No tests: the runner runs bench.sh (see run-tests); /usr/bin/time
    # (Debian's, as on this host) gives it peak RSS.
    echo "$BENCH" >"$payload/vm/bench"
    if [ -x /usr/bin/time ]; then
        mkdir -p "$payload/usr/bin"
        cp /usr/bin/time "$payload/usr/bin/time"
    fi
elif [ "$INIT" = systemd ] && [ $# -eq 0 ]; then
    while read -r -a words; do
        [ "${#words[@]}" -gt 0 ] || continue
        name=
        for w in "${words[@]}"; do
            [[ $w =~ ^[A-Za-z_][A-Za-z0-9_]*= ]] || {
                name=$w
                break
            }
        done
        [ -n "$name" ] || die "plan line '${words[*]}' names no test binary"
        if [ -n "${RRUN_VM_BINARIES:-}" ] && [[ " $RRUN_VM_BINARIES " != *" $name "* ]]; then
            continue
        fi
        exe=$(awk -v n="$name" '$1 == n { print $2 }' "$work/binaries")
        [ -n "$exe" ] || die "plan line '${words[*]}': cargo built no test binary $name"
        [ -e "$payload/tests/$name" ] || cp "$exe" "$payload/tests/$name"
        echo "${words[*]}" >>"$payload/vm/plan"
    done <<<"$SYSTEMD_PLAN"
else
    while read -r name exe; do
        if [ -n "${RRUN_VM_BINARIES:-}" ] && [[ " $RRUN_VM_BINARIES " != *" $name "* ]]; then
            continue
        fi
        if [ $# -gt 0 ]; then
            args="$*"
        elif [ -n "$LSM" ]; then
            [ "$name" = security ] || continue
            args=lsm_
        elif [ "$CGROUP_SETUP" = v1 ]; then
            [ "$name" = cgroups ] || continue
            args=$V1_FILTERS
        else
            case "$name" in
            lifecycle | cgroups | host_safety) args= ;;
            # Their users need useradd, setpriv and newuidmap, which the
            # busybox root has not: the systemd VM runs them.
            rootless) continue ;;
            *) args=cgroup ;;
            esac
        fi
        [ ! -e "$payload/tests/$name" ] || die "two test binaries are named $name"
        cp "$exe" "$payload/tests/$name"
        echo "$name $args" >>"$payload/vm/plan"
    done <"$work/binaries"
fi
[ -n "$BENCH" ] || [ -s "$payload/vm/plan" ] ||
    die "no test binary selected (RRUN_VM_BINARIES='${RRUN_VM_BINARIES:-}')"

# Shared libraries of every binary, at the paths ldd resolves them to (the
# systemd VM has Debian's own).
if [ "$INIT" != systemd ]; then
    for exe in "$payload"/usr/local/bin/* "$payload"/tests/* "$payload/bin/busybox"; do
        { ldd "$exe" 2>/dev/null || true; } | sed -n 's/^[[:space:]]*\(.* => \)\{0,1\}\(\/[^ ]*\) (0x.*/\2/p'
    done | sort -u >"$work/libs"
    while read -r lib; do
        mkdir -p "$payload$(dirname "$lib")"
        cp -L "$lib" "$payload$lib"
    done <"$work/libs"
fi

# Kernel modules and their dependencies (read from each module's .modinfo,
# as the package ships no modules.dep), dependencies first.
find "$moddir/kernel" -name '*.ko*' >"$work/modfiles"
modfile() {
    local n=${1//-/_} f base
    while read -r f; do
        base=${f##*/}
        base=${base%%.ko*}
        if [ "${base//-/_}" = "$n" ]; then
            echo "$f"
            return 0
        fi
    done <"$work/modfiles"
    return 1
}
modcat() {
    case "$1" in
    *.ko.xz) xz -dc "$1" ;;
    *.ko.zst) zstd -dcq "$1" ;;
    *.ko.gz) gzip -dc "$1" ;;
    *) cat "$1" ;;
    esac
}
modules_loaded=""
# The systemd VM puts in the initramfs only what mounts its root (the image
# has every module, for modprobe); the others the modules to load.
if [ "$INIT" = systemd ]; then
    moddest=$stage/lib/modules/vm
else
    moddest=$payload/lib/modules/vm
fi
add_module() {
    local n=${1//-/_} f dep
    case " $modules_loaded " in *" $n "*) return 0 ;; esac
    f=$(modfile "$n") || die "kernel module $n not in $moddir"
    for dep in $(modcat "$f" | tr '\0' '\n' | sed -n 's/^depends=//p' | tr ',' ' '); do
        add_module "$dep"
    done
    modcat "$f" >"$moddest/$n.ko"
    modules_loaded="$modules_loaded $n"
}
if [ "$INIT" = systemd ]; then
    # crc32c: ext4 and jbd2 ask the crypto API for it (no module dependency);
    # the generic one, as TCG's CPU has no SSE4.2.
    for m in virtio_pci virtio_blk crc32c_generic ext4; do
        add_module "$m"
    done
    echo "${modules_loaded# }" | tr ' ' '\n' >"$moddest/order"
    modules_loaded=$MODULES
else
    for m in $MODULES; do
        add_module "$m"
    done
fi

cat >"$payload/vm/env" <<EOF
TEST_THREADS=$TEST_THREADS
TEST_TIMEOUT=$TEST_TIMEOUT
CGROUP_SETUP=$CGROUP_SETUP
LSM=$LSM
SELINUX_ENFORCE=$SELINUX_ENFORCE
MODULES="${modules_loaded# }"
REQUIRE_CONTROLLERS="$REQUIRE_CONTROLLERS"
BOOT_TIMEOUT=$BOOT_TIMEOUT
TEST_ENV="${RRUN_VM_TEST_ENV:-}"
REPO="$REPO"
EOF
# Last, so that they can replace any of the above.
if [ -n "${RRUN_VM_FILES:-}" ]; then
    cp -a "$RRUN_VM_FILES/." "$payload/" || die "copy RRUN_VM_FILES=$RRUN_VM_FILES"
fi

initrd=$work/initrd.cpio
# Uncompressed: unpacking gzip under TCG costs more than reading the bytes.
(cd "$stage" && find . -print0 | cpio --null -o -H newc -R 0:0 --quiet) >"$initrd"
log "initramfs: $(du -m "$initrd" | cut -f1) MiB;" \
    "tests: $(sed 's/^\([A-Za-z_][A-Za-z0-9_]*=[^ ]* \)*//; s/ .*//' "$payload/vm/plan" | tr '\n' ' ')modules: ${modules_loaded# }"

# --- emulator --------------------------------------------------------------
# RRUN_VM_QEMU=backports: bookworm-backports' QEMU, unpacked in the cache.
# QEMU 7.2's TCG finds translated code by its virtual address, so a
# position-independent program loaded at a new random address in every
# process (rrun, crun, unshare, ld.so) is translated again in every run;
# QEMU >= 8 translates x86 code independently of where it is loaded.
backports_qemu() {
    local base=http://deb.debian.org/debian index dir files f
    dir=$CACHE/qemu-backports
    if [ ! -f "$dir/.complete" ]; then
        log "downloading QEMU from bookworm-backports (cached in $dir)"
        index=$(curl -fsS --max-time 120 "$base/dists/bookworm-backports/main/binary-amd64/Packages.xz" | xz -d) ||
            die "cannot fetch bookworm-backports' package index"
        files=$(awk '/^Package: qemu-system-(x86|data|common)$/ {p = 1}
                     p && /^Filename: / {print $2; p = 0}' <<<"$index")
        [ "$(wc -w <<<"$files")" = 3 ] || die "bookworm-backports lists no qemu-system-x86/data/common"
        rm -rf "$dir" && mkdir -p "$dir/debs"
        for f in $files; do
            curl -fsS --max-time 600 -o "$dir/debs/${f##*/}" "$base/$f" || die "cannot fetch $f"
            dpkg-deb -x "$dir/debs/${f##*/}" "$dir/root" || die "dpkg-deb -x ${f##*/} failed"
        done
        rm -rf "$dir/debs"
        touch "$dir/.complete"
    fi
    QEMU=$dir/root/usr/bin/qemu-system-x86_64
    QEMU_ARGS=(-L "$dir/root/usr/share/qemu")
}
QEMU=qemu-system-x86_64
QEMU_ARGS=()
case "${RRUN_VM_QEMU:-}" in
"") ;;
backports) backports_qemu ;;
*) QEMU=$RRUN_VM_QEMU ;;
esac
"$QEMU" --version >/dev/null 2>&1 || die "cannot run $QEMU"
log "emulator: $("$QEMU" --version | head -n 1)"

# --- boot ------------------------------------------------------------------
console=$CACHE/console.log
: >"$console"
append="console=ttyS0 ${CMDLINE_CGROUPS:+$CMDLINE_CGROUPS }${CMDLINE_LSM:+$CMDLINE_LSM }panic=-1 quiet"
drive=()
if [ "$INIT" = systemd ]; then
    # snapshot=on: the VM's writes go to a temporary file, never the cache.
    drive=(-drive "file=$rootfs_image,format=raw,if=virtio,snapshot=on")
fi
log "booting: accel=$ACCEL, ${CPUS} CPUs, ${MEMORY} MiB, timeout ${VM_TIMEOUT}s, cmdline: $append"
"$QEMU" "${QEMU_ARGS[@]}" -accel "$ACCEL" -m "$MEMORY" -smp "$CPUS" \
    -nodefaults -no-user-config -display none -serial stdio -no-reboot \
    -kernel "$vmlinuz" -initrd "$initrd" -append "$append" "${drive[@]}" \
    </dev/null >"$console" 2>&1 &
qemu_pid=$!
boot_start=$SECONDS
# Show the console as it comes (without the serial line's CRs).
tail -n +1 -f --pid="$qemu_pid" "$console" | sed -u 's/\r$//' &
tail_pid=$!
timed_out=0
while kill -0 "$qemu_pid" 2>/dev/null; do
    if [ $((SECONDS - boot_start)) -ge "$VM_TIMEOUT" ]; then
        timed_out=1
        kill -TERM "$qemu_pid" 2>/dev/null || true
        sleep 5
        kill -KILL "$qemu_pid" 2>/dev/null || true
        break
    fi
    sleep 1
done
qemu_rc=0
wait "$qemu_pid" || qemu_rc=$?
qemu_pid=
wait "$tail_pid" 2>/dev/null || true
vm_time=$((SECONDS - boot_start))

# --- verdict ---------------------------------------------------------------
result=$(tr -d '\r' <"$console" | grep -E '^VM: [0-9]+ passed, [0-9]+ failed$' | tail -n 1 || true)
if [ "$timed_out" = 1 ]; then
    log "FAIL: VM did not finish within ${VM_TIMEOUT}s; killed (console: $console)"
    exit 1
fi
if [ -z "$result" ]; then
    log "FAIL: no 'VM: N passed, N failed' line on the console (qemu exit $qemu_rc, console: $console)"
    exit 1
fi
log "VM ran ${vm_time}s; console: $console"
echo "$result"
failed=${result#*passed, }
failed=${failed% failed}
[ "$failed" = 0 ] || exit 1
