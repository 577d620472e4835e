#!/usr/bin/env bash
# Keep every cgroup controller on the hierarchy it has (issue 25). Idempotent; prints what it
# mounts. testbed/setup.sh runs it under the exclusive test-bed lock when something is missing.
#
# This machine kind boots without systemd, with the v1 controllers on hierarchies under
# /sys/fs/cgroup and a cgroup2 at /sys/fs/cgroup/unified, but without hierarchies for
# net_cls,net_prio, perf_event and hugetlb. A privileged podman container whose systemd starts
# mounts them (binding those controllers to v1 hierarchies of its own); when the last such
# container is gone they fall back to the unified hierarchy. libvirt (9.0 here, 11.3 the same)
# decides for every cgroup it builds whether its v2 backend is in use from the unified root's
# cgroup.controllers: a guest start that straddles such a flip builds a child group with the
# v2 backend under a parent built without it and libvirtd dies in virCgroupV2CopyPlacement
# (NULL placement; rpc-libvirtd segfault at 0). Mounting them here keeps them on v1 for good,
# as systemd does on a host in legacy (v1) mode: nothing floats between v1 and v2 any more.
#
#   testbed/pin_cgroups.sh check   -> exit 1 (and the list) if something would be mounted
#   testbed/pin_cgroups.sh         -> mount what is missing
set -euo pipefail
[ "$(cat /proc/1/comm 2>/dev/null)" != systemd ] || exit 0   # systemd hosts: its layout
[ -d /sys/fs/cgroup/memory ] || exit 0                       # pure v2: nothing floats

# Controllers the kernel has, enabled, not mounted as a v1 hierarchy in this namespace,
# grouped as systemd (and so the containers) mounts them: net_cls with net_prio.
missing=$(python3 - <<'PY'
mounted = set()
for line in open('/proc/self/mountinfo'):
    pre, post = line.split(' - ', 1)
    fstype, _src, sopts = post.split()[:3]
    if fstype == 'cgroup':
        mounted.update(sopts.split(','))
have = []
for line in open('/proc/cgroups'):
    if line.startswith('#'):
        continue
    name, _hier, _num, enabled = line.split()
    if enabled == '1' and name not in mounted:
        have.append(name)
groups = []
if 'net_cls' in have and 'net_prio' in have:
    groups.append('net_cls,net_prio')
    have = [h for h in have if h not in ('net_cls', 'net_prio')]
groups += have
print(' '.join(groups))
PY
)
if [ "${1:-}" = check ]; then
  [ -z "$missing" ] || { echo "$missing"; exit 1; }
  exit 0
fi
for g in $missing; do
  dir=/sys/fs/cgroup/$g
  mkdir -p "$dir"
  if mount -t cgroup -o "rw,nosuid,nodev,noexec,relatime,$g" cgroup "$dir"; then
    echo "[testbed] cgroup v1 hierarchy $g mounted at $dir (pinned, issue 25)"
    case $g in *,*) for c in ${g//,/ }; do [ -e "/sys/fs/cgroup/$c" ] || ln -s "$g" "/sys/fs/cgroup/$c"; done ;; esac
  else
    rmdir "$dir" 2>/dev/null || true
    echo "[testbed] WARNING: could not mount the cgroup v1 hierarchy $g (it may float between v1 and v2: issue 25)" >&2
  fi
done
