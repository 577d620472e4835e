#!/usr/bin/env bash
# Idempotent test-bed set-up: Debian packages, /dev/kvm permissions, libvirt daemons,
# the default NAT network, the Python venv and the tiny guest assets.
# A second run on a prepared machine takes about a second.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
venv=${KVMOPS_VENV:-$root/.venv}
stamp_dir=${KVMOPS_CACHE:-/var/cache/kvmops-testbed}
mkdir -p "$stamp_dir"

log() { printf '[testbed] %s\n' "$*"; }

# --- Debian packages ---------------------------------------------------------------
# The libvirt/QEMU stack, what libvirt-python builds against, the system Python's
# bindings (modules run on the target with /usr/bin/python3), the tiny guest's tools,
# SELinux userspace + policy store (enforcement is impossible on this kernel),
# OVMF for UEFI guests, virtinst and virtnbdbackup for comparisons in the benchmarks.
packages=(
  libvirt-daemon-system libvirt-daemon-system-sysv libvirt-clients libvirt-daemon-driver-qemu
  qemu-system-x86 qemu-utils libvirt-dev pkg-config gcc python3-dev python3-venv
  python3-libvirt python3-lxml dnsmasq-base iproute2 iptables netcat-openbsd libxml2-utils
  busybox-static cpio xorriso isolinux syslinux-common libarchive-tools genisoimage ovmf virtinst
  selinux-utils policycoreutils policycoreutils-python-utils selinux-policy-default
  openssh-client openssh-server sudo make osinfo-db python3-gi gir1.2-libosinfo-1.0 mmdebstrap
  virtnbdbackup
  novnc websockify gvncviewer
)
# The browser console test (make console) also needs a browser: Debian's Chromium (~90 MB of
# packages), only when asked for.
if [ "${KVMOPS_TESTBED_BROWSER:-0}" = 1 ]; then
  packages+=(chromium fonts-dejavu-core)
fi
missing=$(dpkg-query -W -f='${db:Status-Abbrev} ${Package}\n' "${packages[@]}" 2>&1 | grep -v '^ii ' || true)
if [ -n "$missing" ]; then
  log "installing Debian packages"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${packages[@]}" >/dev/null
fi

# --- /dev/kvm as udev would leave it ---------------------------------------------------
# Without group access libvirt re-probes QEMU on every connection (3-8 s a call).
if [ -c /dev/kvm ]; then
  getent group kvm >/dev/null || groupadd -r kvm
  chgrp kvm /dev/kvm && chmod 0660 /dev/kvm
fi

# --- cgroups: no controller floating between v1 and v2 (issue 25) ----------------------
# Without systemd the host lacks v1 hierarchies for net_cls,net_prio, perf_event, hugetlb;
# podman containers' systemd binds them while it runs, so they flipped between v1 and v2 and
# libvirtd crashed in a guest start straddling a flip. Pinned on v1 (see pin_cgroups.sh).
if ! "$here/pin_cgroups.sh" check >/dev/null; then
  "$here/with_testbed_lock.sh" exclusive "$here/pin_cgroups.sh"
fi

# --- libvirt daemons -----------------------------------------------------------------
if [ "$(cat /proc/1/comm 2>/dev/null)" = systemd ]; then
  systemctl start virtlogd libvirtd
else
  for svc in virtlogd libvirtd; do
    service "$svc" status >/dev/null 2>&1 || service "$svc" start >/dev/null
  done
fi
for _ in $(seq 1 100); do
  virsh -c qemu:///system version >/dev/null 2>&1 && break
  sleep 0.2
done
net_info=$(virsh -c qemu:///system net-info default 2>/dev/null || true)
case "$net_info" in
  *Active:*yes*) ;;
  *) virsh -c qemu:///system net-start default >/dev/null ;;
esac
virsh -c qemu:///system net-autostart default >/dev/null

# --- Python venv (controller side: ansible, tests, linters) ----------------------------
req="$root/testbed/requirements.txt"
req_hash=$(sha256sum "$req" | cut -c1-16)
if [ ! -f "$venv/.req-$req_hash" ]; then
  log "building the venv in $venv"
  [ -x "$venv/bin/python" ] || /usr/bin/python3 -m venv "$venv"
  # pip's warnings about this machine's extra (absent) indexes go to the log, not the screen.
  if ! { "$venv/bin/pip" install -q --upgrade pip && "$venv/bin/pip" install -q -r "$req"; } >"$venv/pip-install.log" 2>&1; then
    cat "$venv/pip-install.log" >&2
    exit 1
  fi
  rm -f "$venv"/.req-*
  touch "$venv/.req-$req_hash"
fi

# --- ansible-test's pip bootstrap, offline (see testbed notes) --------------------------
"$here/ansible_test_pip_shim.sh"

# --- tiny guest assets -------------------------------------------------------------
"$here/build_tiny_guest.sh"

# The Debian images of the container and cloud-guest suites are built by those suites
# (testbed/build_debian_image.sh, cached by recipe), not here: make test needs only some.
log "ready"
