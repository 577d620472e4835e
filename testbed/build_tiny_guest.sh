#!/usr/bin/env bash
# Builds the tiny guest offline from Debian packages and caches it:
#   vmlinuz, initrd.img   Debian cloud kernel + busybox initramfs (testbed/tiny_guest_init.sh)
#   tiny.iso              bootable ISO (isolinux) of the same, console on ttyS0
#   trees/rhel            install tree in RHEL layout: images/pxeboot/{vmlinuz,initrd.img}
#   trees/debian          Debian netboot layout: current/images/netboot/debian-installer/amd64
#   tree.iso              the RHEL-layout tree inside an ISO
# The kernel package is only unpacked (dpkg-deb -x), never installed.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
out=${KVMOPS_ASSETS:-/var/cache/kvmops-testbed/tiny}
inputs_hash=$(cat "$here/build_tiny_guest.sh" "$here/tiny_guest_init.sh" "$here/tiny_guest_udhcpc.sh" | sha256sum | cut -c1-16)
[ -f "$out/.built-$inputs_hash" ] && exit 0
echo "[testbed] building tiny guest assets in $out"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$out"

kpkg=$(apt-cache depends linux-image-cloud-amd64 2>/dev/null | awk '/Depends: linux-image-/{print $2; exit}')
if [ -z "$kpkg" ]; then apt-get update -qq; kpkg=$(apt-cache depends linux-image-cloud-amd64 | awk '/Depends: linux-image-/{print $2; exit}'); fi
chmod 0755 "$work"; mkdir -p "$work/dl" && chown _apt "$work/dl" 2>/dev/null || true  # apt downloads as _apt
(cd "$work/dl" && apt-get download -qq "$kpkg" >/dev/null)
dpkg-deb -x "$work"/dl/linux-image-*.deb "$work/k"
kver=$(ls "$work/k/lib/modules")
install -m 0644 "$work"/k/boot/vmlinuz-* "$work/vmlinuz"

rootfs="$work/rootfs"
mkdir -p "$rootfs"/{bin,sbin,etc,proc,sys,dev,tmp,lib/modules}
cp /bin/busybox "$rootfs/bin/busybox"
ln -s busybox "$rootfs/bin/sh"
install -m 0755 "$here/tiny_guest_init.sh" "$rootfs/init"
install -m 0755 "$here/tiny_guest_udhcpc.sh" "$rootfs/etc/udhcpc.script"
for m in virtio_ring virtio virtio_pci_modern_dev virtio_pci_legacy_dev virtio_pci \
         virtio_blk failover net_failover virtio_net evdev button virtio_console; do
  f=$(find "$work/k/lib/modules/$kver" -name "$m.ko*" | head -n 1)
  [ -n "$f" ] || continue
  case "$f" in
    *.xz) xz -dc "$f" > "$rootfs/lib/modules/$m.ko" ;;
    *.zst) zstd -qdc "$f" > "$rootfs/lib/modules/$m.ko" ;;
    *) cp "$f" "$rootfs/lib/modules/$m.ko" ;;
  esac
done
(cd "$rootfs" && find . | cpio -o -H newc --quiet | gzip -9) > "$work/initrd.img"

# ISO: isolinux boots the same kernel with the console on the serial port.
iso="$work/iso"
mkdir -p "$iso/isolinux"
cp /usr/lib/ISOLINUX/isolinux.bin /usr/lib/syslinux/modules/bios/ldlinux.c32 "$iso/isolinux/"
cp "$work/vmlinuz" "$iso/isolinux/vmlinuz"; cp "$work/initrd.img" "$iso/isolinux/initrd.img"
cat > "$iso/isolinux/isolinux.cfg" <<CFG
SERIAL 0 115200
DEFAULT tiny
TIMEOUT 1
LABEL tiny
  KERNEL vmlinuz
  APPEND initrd=initrd.img console=ttyS0 kvmops.from=iso kvmops.installer=1
CFG
xorriso -as mkisofs -quiet -o "$work/tiny.iso" -V KVMOPS_TINY -J -R \
  -b isolinux/isolinux.bin -c isolinux/boot.cat -no-emul-boot -boot-load-size 4 -boot-info-table \
  "$iso" 2>/dev/null

# Install trees.
rhel="$work/trees/rhel"
mkdir -p "$rhel/images/pxeboot"
cp "$work/vmlinuz" "$rhel/images/pxeboot/vmlinuz"; cp "$work/initrd.img" "$rhel/images/pxeboot/initrd.img"
cat > "$rhel/.treeinfo" <<TI
[general]
family = KvmopsTiny
version = 1
arch = x86_64
[images-x86_64]
kernel = images/pxeboot/vmlinuz
initrd = images/pxeboot/initrd.img
TI
deb="$work/trees/debian/current/images"
mkdir -p "$deb/netboot/debian-installer/amd64"
cp "$work/vmlinuz" "$deb/netboot/debian-installer/amd64/linux"
cp "$work/initrd.img" "$deb/netboot/debian-installer/amd64/initrd.gz"
echo "kvmops tiny guest netboot (Debian layout)" > "$deb/MANIFEST"
xorriso -as mkisofs -quiet -o "$work/tree.iso" -V KVMOPS_TREE -J -R "$rhel" 2>/dev/null

# Swap in file by file (rename is atomic), so guests that other tests are booting keep
# working while the assets are rebuilt.
for f in vmlinuz initrd.img tiny.iso tree.iso; do
  cp "$work/$f" "$out/.$f.new" && mv -f "$out/.$f.new" "$out/$f"
done
rm -rf "$out/.trees.new" "$out/.trees.old"
cp -a "$work/trees" "$out/.trees.new"
[ -d "$out/trees" ] && mv "$out/trees" "$out/.trees.old"
mv "$out/.trees.new" "$out/trees"
rm -rf "$out/.trees.old" "$out"/.built-*
chmod -R a+rX "$out"
echo "$kpkg" > "$out/kernel-package"
touch "$out/.built-$inputs_hash"
echo "[testbed] tiny guest ready: $(du -sh "$out" | cut -f1)"
