#!/usr/bin/env bash
# make demo: this machine becomes a KVM host (playbooks/site.yml with inventories/demo) and
# installs the tiny guest from an install tree served on 127.0.0.1, then shows the guest's
# state, the last line of its serial console, its VNC display and the SSH tunnel command.
# A second run changes nothing (the play recap says changed=0) and takes seconds.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

"$root/testbed/setup.sh"                       # venv, packages, tiny guest assets (idempotent)
mkdir -p .build/collections/ansible_collections/kvmops
ln -sfn "$root" .build/collections/ansible_collections/kvmops/hypervisor

export PATH="$root/.venv/bin:$PATH"
export ANSIBLE_COLLECTIONS_PATH="$root/.build/collections"
export ANSIBLE_DISPLAY_SKIPPED_HOSTS=false ANSIBLE_NOCOLOR=${ANSIBLE_NOCOLOR:-0}

tree=${KVMOPS_ASSETS:-/var/cache/kvmops-testbed/tiny}/trees/rhel
port=${KVMOPS_DEMO_PORT:-18089}
guest=kvmops-demo
uri=qemu:///system

# Serve the install tree on 127.0.0.1 for as long as the playbook runs.
log=$(mktemp /tmp/kvmops-demo-http.XXXXXX)
/usr/bin/python3 -m http.server --bind 127.0.0.1 --directory "$tree" "$port" >"$log" 2>&1 &
server=$!
cleanup() { kill "$server" 2>/dev/null || true; wait "$server" 2>/dev/null || true; rm -f "$log"; }
trap cleanup EXIT
for _ in $(seq 1 50); do
  if /usr/bin/python3 -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:$port/.treeinfo', timeout=1)" 2>/dev/null; then
    break
  fi
  if ! kill -0 "$server" 2>/dev/null; then
    echo "demo: cannot serve the install tree on 127.0.0.1:$port (port in use? set KVMOPS_DEMO_PORT):" >&2
    cat "$log" >&2
    exit 1
  fi
  sleep 0.1
done

# Converging may restart libvirtd (qemu.conf): hold the test-bed lock exclusively (tests
# running in parallel hold it shared; wait for them). The turnstile first, kept until the
# lock is ours, so tests arriving meanwhile queue behind us (testbed/with_testbed_lock.sh).
exec 8>>/run/kvmops-testbed.lock.turnstile 9>>/run/kvmops-testbed.lock
waited=$(date +%s)
flock -x 8
flock -x 9
flock -u 8
exec 8>&-
start=$(date +%s)
ansible-playbook -i inventories/demo playbooks/site.yml -e demo_tree_port="$port" 9>&-
took=$(( $(date +%s) - start ))
waited=$(( start - waited ))
flock -u 9

state=$(virsh -c "$uri" domstate "$guest" 2>/dev/null | sed -n 1p)
serial=$(virsh -c "$uri" dumpxml "$guest" | xmllint --xpath 'string(//devices/serial/source/@path)' - 2>/dev/null || true)
last_line="(no serial log)"
if [ -n "$serial" ]; then
  # A guest started by this run is still booting: give it up to 60 s to reach its marker.
  for _ in $(seq 1 120); do
    grep -qs KVMOPS-READY "$serial" && break
    sleep 0.5
  done
  [ -f "$serial" ] && last_line=$(tr -d '\r' < "$serial" | grep -v '^[[:space:]]*$' | tail -n 1 || true)
fi
display=$(virsh -c "$uri" vncdisplay "$guest" 2>/dev/null | sed -n 1p || true)
cat <<SUMMARY

==================== kvmops demo ====================
guest            $guest: $state  (site.yml took ${took}s, after ${waited}s waiting for the test-bed lock)
serial console   $serial
  last line      $last_line
VNC display      ${display:-none}
SUMMARY
if [ -n "$display" ]; then
  vport=$(( 5900 + ${display##*:} ))
  vhost=${display%:*}; vhost=${vhost:-127.0.0.1}
  echo "tunnel           ssh -L $vport:$vhost:$vport -N -f $(id -un)@$(hostname -f 2>/dev/null || hostname)"
  echo "                 then point a VNC viewer at localhost:$vport"
fi
echo "all guests       ansible-playbook -i inventories/demo playbooks/vnc_tunnels.yml"
echo "====================================================="
