#!/usr/bin/env bash
# The root file system of the systemd VM (RRUN_VM_INIT=systemd
# tests/vm/run.sh): Debian 12 (bookworm) from Debian's packages, with
# systemd as pid 1, D-Bus, the three engines, NFS and the kernel's modules,
# as an ext4 image. Called by run.sh; can be run alone to look at the tree.
#
#     tests/vm/systemd/mkroot.sh CACHE_DIR MODULES_DIR
#
# MODULES_DIR is the kernel package's lib/modules/<version>. Prints the
# image's path (CACHE_DIR/rootfs-systemd-<key>.ext4) on stdout, after
# building it if it is not cached. The key is a hash of this script (the
# package list and every setting below) and the kernel version, so changing
# either builds a new image; older images are removed then. qemu boots the
# image with snapshot=on: it is never written to.
#
# Needs root (mmdebstrap's root mode; mke2fs keeps the owners), mmdebstrap
# and e2fsprogs (mke2fs >= 1.43 for -d), and Debian's apt mirror. Measured
# on the 2-core development machine: 55-60 s idle, ~105 s with a build
# running; 710 MiB of files (580 of packages, 130 of modules) in a sparse
# 4 GiB image, 712 MiB on disk.
set -euo pipefail

cache=${1:?usage: mkroot.sh CACHE_DIR MODULES_DIR}
moddir=${2:?usage: mkroot.sh CACHE_DIR MODULES_DIR}
kver=$(basename "$moddir")

SUITE=bookworm
# systemd as pid 1 with D-Bus and udev; and what the later passes of the
# systemd VM drive: the engines (Podman, containerd with the engine suite's
# CRI client in python3-grpcio, Docker), runc and crun for comparisons,
# an NFS server and client, CRIU (checkpoint/restore; iptables for its
# network lock), and the tools the tests call (busybox-static for their
# bundles, ip, ps). Add packages here: the image is rebuilt.
PACKAGES="systemd systemd-sysv dbus udev kmod
    podman containerd docker.io runc crun
    nfs-kernel-server nfs-common
    uidmap dbus-user-session
    iproute2 procps busybox-static python3-grpcio strace
    criu iptables"
# Module directories no VM test needs (sound, graphics, real hardware):
# ~270 of the kernel's ~390 MiB of modules.
SKIP_MODULES="sound drivers/gpu drivers/media drivers/net/wireless
    drivers/net/ethernet drivers/scsi drivers/usb drivers/iio drivers/staging
    drivers/infiniband/hw drivers/hwmon drivers/hid drivers/input drivers/mtd
    drivers/comedi drivers/ata drivers/video drivers/target drivers/mmc
    drivers/isdn drivers/bluetooth drivers/nvme drivers/platform"
# Free space in the image for what the tests write (with snapshot=on the
# writes go to a temporary file of qemu's; the image stays as built).
FREE_MIB=3072

log() { printf '[mkroot %3ds] %s\n' "$SECONDS" "$*" >&2; }
die() {
    log "FATAL: $*"
    exit 1
}

[ -d "$moddir/kernel" ] || die "$moddir is not a kernel's module directory"
key=$({
    cat "${BASH_SOURCE[0]}"
    echo "$kver"
} | sha256sum | cut -c1-16)
image=$cache/rootfs-systemd-$key.ext4
if [ -f "$image" ]; then
    echo "$image"
    exit 0
fi

[ "$(id -u)" = 0 ] || die "building the root file system needs root (mmdebstrap, owners in the image)"
for cmd in mmdebstrap mke2fs; do
    command -v "$cmd" >/dev/null || die "$cmd not found (apt-get install mmdebstrap e2fsprogs)"
done

mkdir -p "$cache"
tmp=$(mktemp -d "$cache/.rootfs.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
root=$tmp/root

# In a mount namespace of its own: mmdebstrap's root mode mounts /proc,
# /sys and /dev in the tree, and none of that may outlive it on the host.
log "mmdebstrap $SUITE ($(echo $PACKAGES | tr ' ' ','))"
# shellcheck disable=SC2086  # the package list is split on purpose
if ! unshare --mount --propagation private mmdebstrap --mode=root --variant=apt \
    --aptopt='APT::Install-Recommends "false"' --aptopt='Acquire::Retries "3"' \
    --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-exclude=/usr/share/man/*' \
    --dpkgopt='path-exclude=/usr/share/locale/*' --dpkgopt='path-exclude=/usr/share/info/*' \
    --include="$(echo $PACKAGES | tr ' ' ',')" \
    "$SUITE" "$root" >"$tmp/mmdebstrap.log" 2>&1; then
    cat "$tmp/mmdebstrap.log" >&2
    die "mmdebstrap failed"
fi

log "configuring"
# A fixed machine id: an empty one would make systemd's first boot apply
# the presets (enabling every daemon again) on each run.
echo 5c3e0b4a6f1d4b2e9a7c8d6e5f4a3b21 >"$root/etc/machine-id"
echo rrun-vm >"$root/etc/hostname"
printf '127.0.0.1 localhost\n127.0.1.1 rrun-vm\n::1 localhost ip6-localhost ip6-loopback\n' \
    >"$root/etc/hosts"
# The root is mounted by the initramfs (read-write); nothing to remount.
echo '# the root (/dev/vda, ext4) is mounted by the initramfs' >"$root/etc/fstab"
# No daemon starts at boot besides systemd's own and D-Bus: the tests start
# what they drive (`systemctl start docker`, or their own daemons), and a
# TCG boot stays short. Units stay startable (disabled, not masked).
enabled=$(chroot "$root" systemctl list-unit-files --state=enabled --no-legend --no-pager |
    awk '{ print $1 }')
if [ -n "$enabled" ]; then
    # shellcheck disable=SC2086
    chroot "$root" systemctl disable --quiet $enabled
fi
# No login prompts: the serial console carries the tests' output.
chroot "$root" systemctl mask --quiet getty.target serial-getty@ttyS0.service

# The kernel's modules (the VM boots run.sh's kernel, not one of the
# image's), for modprobe: overlay, netfilter and bridges for the engines,
# nfsd, rdma_rxe.
mods=$root/usr/lib/modules/$kver
mkdir -p "$mods"
cp -a "$moddir/kernel" "$moddir"/modules.builtin* "$moddir/modules.order" "$mods/"
for d in $SKIP_MODULES; do
    rm -rf "${mods:?}/kernel/$d"
done
chroot "$root" depmod -a "$kver" || die "depmod failed"

size=$(du -sm "$root" | cut -f1)
log "tree: $size MiB; mke2fs"
# Lazy init: the sparse file's unwritten blocks read as zeros, which is
# what initialised inode tables and journal hold, and ~120 MiB less on disk;
# the initramfs mounts with noinit_itable, so the VM does not zero them
# either. (mke2fs prints "Creating regular file" on stdout despite -q;
# errors go to stderr.)
mke2fs -q -t ext4 -d "$root" -L rrun-root -m 0 \
    -E lazy_itable_init=1,lazy_journal_init=1 \
    -F "$tmp/image.ext4" "$((size + size / 4 + FREE_MIB))M" >/dev/null || die "mke2fs failed"
mv "$tmp/image.ext4" "$image"
# Older images (another package list or kernel) are ~600 MB each.
find "$cache" -maxdepth 1 -name 'rootfs-systemd-*.ext4' ! -name "${image##*/}" -delete
log "built $image ($(du -m "$image" | cut -f1) MiB on disk)"
echo "$image"
