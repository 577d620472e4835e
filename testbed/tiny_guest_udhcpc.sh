#!/bin/sh
# udhcpc hook of the tiny guest: configure the lease and print it on the console.
case "$1" in
  bound|renew)
    ip addr flush dev "$interface"
    ip addr add "$ip/${mask:-24}" dev "$interface"
    [ -n "$router" ] && ip route add default via "${router%% *}" 2>/dev/null
    echo "KVMOPS-IP: $ip" > /dev/console ;;
esac
exit 0
