#!/usr/bin/env bash
# A plain controller venv for the README's fleet path: only ansible-core (no `ansible`
# bundle, so no collections besides what ansible-galaxy installs), cached by the hash of
# testbed/fleet-controller-requirements.txt. Prints the venv's path.
#   testbed/fleet_controller.sh   -> /var/cache/kvmops-testbed/fleet-controller-<hash>
# Another requirements file NAME-requirements.txt gives another cached venv NAME-<hash>:
#   testbed/fleet_controller.sh testbed/inventory-controller-requirements.txt
#     -> /var/cache/kvmops-testbed/inventory-controller-<hash> (ansible-core 2.17 + libvirt-python
#        + lxml: the inventory plugin on the oldest supported ansible-core)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
req=${1:-$here/fleet-controller-requirements.txt}
name=$(basename "$req" -requirements.txt)
cache=${KVMOPS_CACHE:-/var/cache/kvmops-testbed}
hash=$(sha256sum "$req" | cut -c1-16)
venv="$cache/$name-$hash"
mkdir -p "$cache"
exec 9>"$cache/.$name.lock"
flock 9
if [ ! -f "$venv/.ready" ]; then
  rm -rf "$venv"
  /usr/bin/python3 -m venv "$venv"
  if ! "$venv/bin/pip" install -q -r "$req" >"$venv/pip-install.log" 2>&1; then
    cat "$venv/pip-install.log" >&2
    exit 1
  fi
  # older caches of this venv are no longer used
  find "$cache" -maxdepth 1 -name "$name-*" ! -name "$name-$hash" -exec rm -rf {} +
  touch "$venv/.ready"
fi
echo "$venv"
