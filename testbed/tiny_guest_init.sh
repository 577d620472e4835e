#!/bin/sh
# /init of the tiny guest (busybox). Prints markers on the serial console so tests can
# follow the boot. Kernel command line switches:
#   kvmops.dhcp=1        get a DHCP lease on eth0 and print KVMOPS-IP: <addr>
#   kvmops.installer=1   act as an installer: write KVMOPS-INSTALLED onto the first disk,
#                        then power off (the end of an install phase)
#   inst.ks=file:/NAME, ks=file:/NAME   print the first line of an injected kickstart
#   kvmops.writer=DEV    a block writer on the data disk /dev/DEV: the guest command
#                        `kvmops-write ROUND [COUNT]` writes COUNT (default 4) 64 KiB blocks
#                        filled with "KVMOPS-BLOCK round=ROUND block=I" at 64 KiB offsets
#                        ROUND*64+I (modulo the disk's size), syncs, then prints
#                        "KVMOPS-WROTE ROUND COUNT" on the console (backup tests)
#   kvmops.write_every=S with kvmops.writer: a round every S seconds (rounds 1, 2, ...)
#   kvmops.counter=1     after KVMOPS-READY, print "KVMOPS-COUNT <n> <boot id> <uptime>" every
#                        100 ms for ever (a live migration must not restart or reset it)
/bin/busybox --install -s /bin
export PATH=/bin:/sbin
mkdir -p /proc /sys /dev /tmp /run
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null || mdev -s
for m in virtio_ring virtio virtio_pci_modern_dev virtio_pci_legacy_dev virtio_pci \
         virtio_blk failover net_failover virtio_net evdev button; do
  [ -f "/lib/modules/$m.ko" ] && insmod "/lib/modules/$m.ko" 2>/dev/null
done
echo "KVMOPS-TINY-GUEST BOOTED"
echo "KVMOPS-CMDLINE: $(cat /proc/cmdline)"
# ACPI power button (virsh shutdown) -> clean power off.
mkdir -p /etc/acpi/PWRF
printf '#!/bin/sh\necho KVMOPS-POWEROFF\npoweroff -f\n' > /etc/acpi/PWRF/00000080
chmod +x /etc/acpi/PWRF/00000080
mkdir -p /var/log /var/run
acpid -c /etc/acpi -l /dev/console
for arg in $(cat /proc/cmdline); do
  case "$arg" in
    inst.ks=file:*|ks=file:*)
      f=${arg#*=file:}
      if [ -f "$f" ]; then echo "KVMOPS-KS: $f: $(head -n 1 "$f")"; else echo "KVMOPS-KS-MISSING: $f"; fi ;;
  esac
done
case " $(cat /proc/cmdline) " in
  *" kvmops.dhcp=1 "*)
    ip link set lo up; ip link set eth0 up
    udhcpc -i eth0 -n -q -t 10 -T 1 -s /etc/udhcpc.script >/dev/null 2>&1 || echo "KVMOPS-DHCP-FAILED" ;;
esac
case " $(cat /proc/cmdline) " in
  *" kvmops.installer=1 "*)
    sleep 1
    if [ -b /dev/vda ]; then disk=/dev/vda; elif [ -b /dev/sda ]; then disk=/dev/sda; else disk=; fi
    if [ -n "$disk" ]; then
      echo "KVMOPS-INSTALLED $(date +%s)" | dd of="$disk" bs=512 count=1 conv=sync,notrunc 2>/dev/null
      sync
      echo "KVMOPS-INSTALL-DONE $disk"
    else
      echo "KVMOPS-INSTALL-NO-DISK"
    fi
    poweroff -f ;;
esac
writer=; every=
for arg in $(cat /proc/cmdline); do
  case "$arg" in
    kvmops.writer=*) writer=${arg#kvmops.writer=} ;;
    kvmops.write_every=*) every=${arg#kvmops.write_every=} ;;
  esac
done
if [ -n "$writer" ]; then
  cat > /bin/kvmops-write <<EOS
#!/bin/sh
dev=/dev/$writer
round=\$1; count=\${2:-4}
blocks=\$(( \$(cat /sys/block/$writer/size) / 128 ))
i=0
while [ \$i -lt \$count ]; do
  off=\$(( (round * 64 + i) % blocks ))
  yes "KVMOPS-BLOCK round=\$round block=\$i" | head -c 65536 > /tmp/kvmops-block
  dd if=/tmp/kvmops-block of=\$dev bs=65536 seek=\$off count=1 conv=notrunc 2>/dev/null
  i=\$((i + 1))
done
sync
echo "KVMOPS-WROTE \$round \$count" > /dev/console
EOS
  chmod +x /bin/kvmops-write
  if [ -b "/dev/$writer" ]; then echo "KVMOPS-WRITER /dev/$writer"; else echo "KVMOPS-WRITER-NO-DISK /dev/$writer"; fi
  if [ -n "$every" ]; then
    (r=1; while true; do sleep "$every"; /bin/kvmops-write $r; r=$((r + 1)); done) &
  fi
fi
echo "KVMOPS-READY"
case " $(cat /proc/cmdline) " in
  *" kvmops.counter=1 "*)
    boot=$(cat /proc/sys/kernel/random/boot_id)
    n=0
    while true; do
      n=$((n + 1))
      read -r up _ < /proc/uptime
      echo "KVMOPS-COUNT $n $boot $up"
      sleep 0.1
    done ;;
esac
while true; do sleep 3600; done
