#!/usr/bin/env bash
# Podman for the container test beds (bare-host check, fleet of hypervisors, ProxyJump):
# runc instead of crun (crun refuses this cgroup v1+v2 hybrid) and ulimits the sandbox can
# grant (no CAP_SYS_RESOURCE). Idempotent; prints nothing on a prepared machine.
#
#   testbed/setup_podman.sh                -> podman ready
#   testbed/setup_podman.sh image NAME     -> prints the podman image built from the
#                                             builder's recipe NAME (build_debian_image.sh)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)

need=()
for p in podman runc uidmap slirp4netns fuse-overlayfs mmdebstrap; do
  dpkg-query -W -f='${db:Status-Abbrev}' "$p" 2>/dev/null | grep -q '^ii' || need+=("$p")
done
if [ ${#need[@]} -gt 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
conf=/etc/containers/containers.conf
if ! grep -q '^runtime = "runc"' "$conf" 2>/dev/null; then
  mkdir -p /etc/containers
  cat >"$conf" <<'CONF'
# Written by kvmops testbed/setup_podman.sh
[containers]
default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]

[engine]
runtime = "runc"
CONF
fi

if [ "${1:-}" = image ]; then
  name=${2:?usage: setup_podman.sh image NAME}
  "$here/build_debian_image.sh" "$name" >&2
  dir=${KVMOPS_CACHE:-/var/cache/kvmops-testbed}/images/$name
  tag=$(basename "$(ls "$dir"/.recipe-*)" | sed 's/^.recipe-//')
  ref="localhost/kvmops-$name:$tag"
  if ! podman image exists "$ref"; then
    podman import --quiet --change 'CMD ["/sbin/init"]' "$dir/rootfs.tar" "$ref" >/dev/null
  fi
  echo "$ref"
fi
