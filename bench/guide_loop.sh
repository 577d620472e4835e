#!/usr/bin/env bash
# Baseline (a), the guide's way: one `virt-install ... --noautoconsole` per guest in a shell
# loop. Same guests as the Ansible loops: TCG (--virt-type qemu), 256 MiB, 1 vCPU, a new
# 1 GiB sparse raw disk, the default NAT network, VNC on 127.0.0.1, the tiny kernel+initrd
# booted directly (--import: no install media), no waiting for the guest to boot.
# Usage: guide_loop.sh IMAGE_DIR KERNEL INITRD NAME... [--dry-run as BENCH_DRY_RUN=1]
set -euo pipefail
img_dir=$1 kernel=$2 initrd=$3
shift 3
extra=()
[ "${BENCH_DRY_RUN:-0}" = 1 ] && extra+=(--dry-run)
for name in "$@"; do
  virt-install --connect qemu:///system --name "$name" --virt-type qemu \
    --memory 256 --vcpus 1 --osinfo detect=off,name=generic \
    --disk path="$img_dir/$name.img",size=1,format=raw,sparse=yes \
    --network network=default --graphics vnc,listen=127.0.0.1 \
    --boot kernel="$kernel",initrd="$initrd",kernel_args=console=ttyS0 \
    --import --noautoconsole "${extra[@]}"
done
