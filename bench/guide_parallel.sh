#!/usr/bin/env bash
# Baseline (e): the guide's virt-install loop run in parallel (`&` and `wait`), the same
# command as guide_loop.sh per guest. Prints "failed N" (runs that exited non-zero) and, for
# each failure, its last line of output; exits 0 so the harness can count failures.
# Usage: guide_parallel.sh IMAGE_DIR KERNEL INITRD NAME...
set -uo pipefail
img_dir=$1 kernel=$2 initrd=$3
shift 3
logs=$(mktemp -d)
for name in "$@"; do
  ( virt-install --connect qemu:///system --name "$name" --virt-type qemu \
      --memory 256 --vcpus 1 --osinfo detect=off,name=generic \
      --disk path="$img_dir/$name.img",size=1,format=raw,sparse=yes \
      --network network=default --graphics vnc,listen=127.0.0.1 \
      --boot kernel="$kernel",initrd="$initrd",kernel_args=console=ttyS0 \
      --import --noautoconsole >"$logs/$name.log" 2>&1
    echo $? >"$logs/$name.rc" ) &
done
wait
failed=0
for name in "$@"; do
  if [ "$(cat "$logs/$name.rc")" != 0 ]; then
    failed=$((failed + 1))
    echo "error $name: $(grep -v '^$' "$logs/$name.log" | tail -1)"
  fi
done
echo "failed $failed"
rm -rf "$logs"
