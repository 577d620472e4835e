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
#   kvmops.agent=1       a FAKE, HOSTILE qemu guest agent on the virtio-serial port
#                        org.qemu.guest_agent.0 (see the agent block below; switches
#                        kvmops.agent_ips= _ifname= _host= _long= _hang= _garbage= _fail=)
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
# --- fake hostile guest agent (kvmops.agent=1; issue 26) ---------------------------------
# Answers the agent protocol (one JSON object per line) on the port org.qemu.guest_agent.0
# with what the kernel command line says, to try hostile agent answers against the host:
#   kvmops.agent_ips=A,B,...  the addresses guest-network-get-interfaces gives for eth0 (its real
#                             MAC), in that order; any text, also not an address (prefix 24)
#   kvmops.agent_ifname=B64   eth0's name there, kvmops.agent_host=B64 the host name and OS
#                             names (guest-get-host-name, guest-get-osinfo): base64 of the JSON
#                             string's contents (already escaped for JSON)
#   kvmops.agent_long=N       one more address and an interface of N characters each
#   kvmops.agent_hang=C,...   never answer these commands (e.g. guest-fsfreeze-freeze)
#   kvmops.agent_garbage=C,.. answer these with a line that is not JSON
#   kvmops.agent_fail=C,...   answer these with an error object
# Every command is logged on the console as "KVMOPS-AGENT <command> uptime=<seconds>".
case " $(cat /proc/cmdline) " in
  *" kvmops.agent=1 "*)
    [ -f /lib/modules/virtio_console.ko ] && insmod /lib/modules/virtio_console.ko 2>/dev/null
    cat > /bin/kvmops-agent <<'EOS'
#!/bin/sh
ips=; host=kvmops-tiny; ifname=eth0; long=0; hang=,; garbage=,; fail=,
for arg in $(cat /proc/cmdline); do
  case "$arg" in
    kvmops.agent_ips=*) ips=${arg#*=} ;;
    kvmops.agent_ifname=*) ifname=$(echo "${arg#*=}" | base64 -d) ;;
    kvmops.agent_host=*) host=$(echo "${arg#*=}" | base64 -d) ;;
    kvmops.agent_long=*) long=${arg#*=} ;;
    kvmops.agent_hang=*) hang=",${arg#*=}," ;;
    kvmops.agent_garbage=*) garbage=",${arg#*=}," ;;
    kvmops.agent_fail=*) fail=",${arg#*=}," ;;
  esac
done
port=
while [ -z "$port" ]; do
  for n in /sys/class/virtio-ports/*/name; do
    [ "$(cat "$n" 2>/dev/null)" = org.qemu.guest_agent.0 ] || continue
    d=${n%/name}; port=/dev/${d##*/}
    [ -c "$port" ] || mknod "$port" c $(tr : ' ' < "$d/dev")
  done
  [ -n "$port" ] || sleep 1
done
mac=$(cat /sys/class/net/eth0/address 2>/dev/null)
addrs=
for a in $(echo "$ips" | tr , ' '); do
  case "$a" in *:*) fam=ipv6 ;; *) fam=ipv4 ;; esac
  addrs="$addrs${addrs:+,}{\"ip-address-type\":\"$fam\",\"ip-address\":\"$a\",\"prefix\":24}"
done
ifaces=
if [ "$long" -gt 0 ]; then
  big=$(head -c "$long" /dev/zero | tr '\0' 9)
  addrs="$addrs${addrs:+,}{\"ip-address-type\":\"ipv4\",\"ip-address\":\"$big\",\"prefix\":24}"
  ifaces=",{\"name\":\"$big\",\"hardware-address\":\"$mac\",\"ip-addresses\":[]}"
fi
ifaces="[{\"name\":\"lo\",\"hardware-address\":\"00:00:00:00:00:00\",\"ip-addresses\":[{\"ip-address-type\":\"ipv4\",\"ip-address\":\"127.0.0.1\",\"prefix\":8}]},{\"name\":\"$ifname\",\"hardware-address\":\"$mac\",\"ip-addresses\":[$addrs]}$ifaces]"
read -r up _ < /proc/uptime
echo "KVMOPS-AGENT-PORT $port uptime=$up" > /dev/console
# The port stays open for good (its state is what tells libvirt an agent runs); a read that
# finds the host side unconnected returns at once: wait a little and read again.
exec 3<>"$port"
while true; do
  while IFS= read -r line <&3; do
    line=$(printf '%s' "$line" | tr -d '\377')
    cmd=$(printf '%s' "$line" | sed -n 's/.*"execute"[ ]*:[ ]*"\([A-Za-z0-9_-]*\)".*/\1/p')
    id=$(printf '%s' "$line" | sed -n 's/.*"id"[ ]*:[ ]*\([0-9]*\).*/\1/p')
    [ -n "$cmd" ] || continue
    read -r up _ < /proc/uptime
    echo "KVMOPS-AGENT $cmd uptime=$up" > /dev/console
    case "$hang" in *",$cmd,"*) continue ;; esac
    case "$garbage" in *",$cmd,"*) printf '%s\n' '{"return": [{"name": "eth0", "ip-addresses": [{{' >&3; continue ;; esac
    case "$fail" in *",$cmd,"*) printf '%s\n' "{\"error\":{\"class\":\"GenericError\",\"desc\":\"kvmops fake agent: $cmd refused\"}}" >&3; continue ;; esac
    case "$cmd" in
      guest-sync-delimited) printf '\377' >&3; reply="{\"return\":${id:-0}}" ;;
      guest-sync) reply="{\"return\":${id:-0}}" ;;
      guest-ping) reply='{"return":{}}' ;;
      guest-info) reply='{"return":{"version":"kvmops-fake-agent","supported_commands":[{"enabled":true,"name":"guest-ping","success-response":true},{"enabled":true,"name":"guest-network-get-interfaces","success-response":true},{"enabled":true,"name":"guest-fsfreeze-freeze","success-response":true},{"enabled":true,"name":"guest-fsfreeze-thaw","success-response":true}]}}' ;;
      guest-network-get-interfaces) reply="{\"return\":$ifaces}" ;;
      guest-get-host-name) reply="{\"return\":{\"host-name\":\"$host\"}}" ;;
      guest-get-osinfo) reply="{\"return\":{\"id\":\"$host\",\"name\":\"$host\",\"pretty-name\":\"$host\",\"version\":\"$host\",\"kernel-release\":\"$host\",\"machine\":\"x86_64\"}}" ;;
      guest-fsfreeze-freeze|guest-fsfreeze-freeze-list|guest-fsfreeze-thaw) reply='{"return":1}' ;;
      guest-fsfreeze-status) reply='{"return":"thawed"}' ;;
      *) reply="{\"error\":{\"class\":\"CommandNotFound\",\"desc\":\"The command $cmd has not been found\"}}" ;;
    esac
    printf '%s\n' "$reply" >&3
  done
  sleep 0.5
done
EOS
    chmod +x /bin/kvmops-agent
    /bin/kvmops-agent &
    ;;
esac
# --- end of the fake guest agent ------------------------------------------------------------
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
