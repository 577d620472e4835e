#!/usr/bin/env bash
# Build a Debian image (12 unless the recipe says otherwise) offline from the Debian mirror, cached by its recipe.
#
#   testbed/build_debian_image.sh NAME            -> $cache/images/NAME/rootfs.tar
#   testbed/build_debian_image.sh NAME --disk     -> also disk.qcow2 (ext4 root, no partition
#                                                    table: root=/dev/vda), vmlinuz, initrd.img
#
# A recipe is testbed/images/NAME.packages (one package a line, '#' comments) and optionally
# testbed/images/NAME.customize (a shell script run as an mmdebstrap customize hook with the
# root file system as $1), NAME.variant (mmdebstrap variant, default 'important') and NAME.suite
# (the Debian release, default bookworm; e.g. trixie for the Debian 13 hypervisor).
# The image is rebuilt only when the recipe files or this script change; a rebuilt image is
# swapped in as a whole, so a concurrent reader never sees a half-built one. Used by the
# cloud-image, SELinux and fleet test beds (one builder, several recipes).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
name=${1:?usage: build_debian_image.sh NAME [--disk]}
want_disk=${2:-}
cache=${KVMOPS_CACHE:-/var/cache/kvmops-testbed}/images
out="$cache/$name"
recipe="$here/images/$name"
[ -f "$recipe.packages" ] || { echo "no recipe $recipe.packages" >&2; exit 2; }
disk_size=${KVMOPS_IMAGE_DISK_SIZE:-3G}

log() { printf '[image %s] %s\n' "$name" "$*"; }

for tool in mmdebstrap qemu-img mkfs.ext4; do
  command -v "$tool" >/dev/null || { echo "$tool missing (testbed/setup.sh installs it)" >&2; exit 2; }
done

hash=$(cat "$0" "$recipe".* 2>/dev/null | sha256sum | cut -c1-16)
mkdir -p "$cache"
exec 9>"$cache/.$name.lock"
flock 9   # one builder per image at a time; the second waits and finds it built

if [ ! -f "$out/.recipe-$hash" ]; then
  log "building rootfs (recipe $hash)"
  work=$(mktemp -d "$cache/.$name.XXXXXX")
  trap 'rm -rf "$work"' EXIT
  pkgs=$(grep -v '^\s*#' "$recipe.packages" | tr -s ' \n' ',' | sed 's/^,//; s/,$//')
  variant=important
  [ -f "$recipe.variant" ] && variant=$(tr -d ' \n' <"$recipe.variant")
  suite=bookworm
  [ -f "$recipe.suite" ] && suite=$(tr -d ' \n' <"$recipe.suite")
  hooks=()
  [ -f "$recipe.customize" ] && hooks+=(--customize-hook="sh $recipe.customize \"\$1\"")
  mmdebstrap --quiet --variant="$variant" --include="$pkgs" \
    --components=main "${hooks[@]}" "$suite" "$work/rootfs.tar" >"$work/build.log" 2>&1 \
    || { tail -30 "$work/build.log" >&2; exit 1; }
  mkdir -p "$work/out"
  mv "$work/rootfs.tar" "$work/build.log" "$work/out/"
  touch "$work/out/.recipe-$hash"
  rm -rf "$out.old"
  [ -d "$out" ] && mv "$out" "$out.old"
  mv "$work/out" "$out"
  rm -rf "$out.old"
fi

if [ "$want_disk" = --disk ] && [ ! -f "$out/.disk-$hash" ]; then
  log "making disk.qcow2 ($disk_size ext4)"
  work=$(mktemp -d "$cache/.$name-disk.XXXXXX")
  trap 'rm -rf "$work"' EXIT
  mkdir "$work/root"
  # --xattrs keeps SELinux labels set at build time; numeric owners as in the image.
  tar --numeric-owner --xattrs --xattrs-include='*' -xpf "$out/rootfs.tar" -C "$work/root"
  cp "$work"/root/boot/vmlinuz-* "$work/vmlinuz"
  cp "$work"/root/boot/initrd.img-* "$work/initrd.img"
  truncate -s "$disk_size" "$work/disk.raw"
  mkfs.ext4 -q -L root -d "$work/root" "$work/disk.raw"
  qemu-img convert -q -O qcow2 "$work/disk.raw" "$work/disk.qcow2"
  chmod 0644 "$work/vmlinuz" "$work/initrd.img" "$work/disk.qcow2"
  mv -f "$work/vmlinuz" "$work/initrd.img" "$work/disk.qcow2" "$out/"
  rm -f "$out"/.disk-*
  touch "$out/.disk-$hash"
fi
log "ready: $out"
