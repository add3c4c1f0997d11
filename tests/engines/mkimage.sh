#!/usr/bin/env bash
# Build the engine tests' image without a registry: a busybox rootfs from the
# host's busybox-static, imported into Podman (localhost/rrun-busybox:test)
# and saved as an OCI archive (for `ctr image import`) and a Docker archive
# (for `docker load`).
#
#   tests/engines/mkimage.sh OUTDIR PODMAN_GLOBAL_FLAGS...
#
# Writes OUTDIR/rootfs/, OUTDIR/busybox.oci.tar, OUTDIR/busybox.docker.tar
# and OUTDIR/pause.oci.tar (localhost/rrun-pause:test, a pod sandbox image
# for the CRI test); the images stay in the Podman store the flags name.
# Idempotent.
set -euo pipefail

out=${1:?usage: mkimage.sh OUTDIR PODMAN_GLOBAL_FLAGS...}
shift
image=localhost/rrun-busybox:test
busybox=/bin/busybox

if [ ! -x "$busybox" ] || ! "$busybox" --list >/dev/null 2>&1; then
    echo "mkimage: $busybox missing (apt-get install busybox-static)" >&2
    exit 1
fi
if ldd "$busybox" >/dev/null 2>&1; then
    echo "mkimage: $busybox is dynamically linked; busybox-static is needed" >&2
    exit 1
fi

rootfs=$out/rootfs
rm -rf "$rootfs"
mkdir -p "$rootfs"/{bin,sbin,usr/bin,usr/sbin,etc,dev,proc,sys,tmp,root,var/log,home}
chmod 1777 "$rootfs/tmp"
cp "$busybox" "$rootfs/bin/busybox"
for applet in $("$busybox" --list); do
    [ "$applet" = busybox ] && continue
    ln -sf busybox "$rootfs/bin/$applet"
done
printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\nrrun:x:1000:1000:rrun:/home:/bin/sh\n' >"$rootfs/etc/passwd"
printf 'root:x:0:\nnogroup:x:65534:\nrrun:x:1000:\n' >"$rootfs/etc/group"
echo 'rrun engine test image' >"$rootfs/etc/motd"

podman "$@" rmi -f "$image" >/dev/null 2>&1 || true
tar --numeric-owner -C "$rootfs" -c . | podman "$@" import \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'CMD ["sh"]' \
    - "$image" >/dev/null
# The same rootfs as a pod sandbox ("pause") image for the CRI test: it
# only has to stay up.
pause=localhost/rrun-pause:test
podman "$@" rmi -f "$pause" >/dev/null 2>&1 || true
tar --numeric-owner -C "$rootfs" -c . | podman "$@" import \
    --change 'CMD ["/bin/sleep", "2147483647"]' \
    - "$pause" >/dev/null
rm -f "$out/busybox.oci.tar" "$out/busybox.docker.tar" "$out/pause.oci.tar"
podman "$@" save -q --format oci-archive -o "$out/busybox.oci.tar" "$image"
podman "$@" save -q --format docker-archive -o "$out/busybox.docker.tar" "$image"
podman "$@" save -q --format oci-archive -o "$out/pause.oci.tar" "$pause"
echo "mkimage: $image and $pause in the podman store, $out/{busybox.oci,busybox.docker,pause.oci}.tar"
