#!/usr/bin/env bash
# `make bench`: every benchmark case against the real libvirtd (TCG guests), then the report
# (bench/results.md, bench/results.json, bench/ratios.png). Called after `make setup`.
#   BENCH_REPS=N   measured repetitions per case after one warm-up (default 5)
#   BENCH_REPS_FAST=N  the same for the cheap cases 4 and 5 (default 2 x BENCH_REPS)
#   BENCH_CASES    which cases to run (default "1 3 4 5 6 7 8 9"; case 2 is measured inside
#                  case 1; 7-9 are the many-guests cases of bench/many.py)
#                  "fleet": site.yml on 1 vs 3 podman hypervisors, bench/fleet.py, BENCH_FLEET_REPS
#                  "sitecost": site.yml re-run, --check --diff and a ping play per task (CPU
#                  seconds), 1 and 10 guests, bench/sitecost.py (BENCH_SITE_GUESTS, BENCH_SITE_REPS)
#                  "inventory": libvirt_guests over 10/50/200 test-driver hypervisors vs
#                  community.libvirt's inventory, bench/inventory.py (BENCH_INVENTORY_SIZES)
#                  "migration": virt_migrate vs virsh migrate --live --p2p between two podman
#                  hypervisors, bench/migration.py, BENCH_MIGRATION_REPS (default 3)
#                  "drain": the hypervisor_maintenance role draining 3 guests off one of 3 podman
#                  hypervisors vs the same 3 virsh migrate one after another, bench/drain.py,
#                  BENCH_DRAIN_REPS (default 2), BENCH_DRAIN_PARALLEL (default: the role's)
#                  case 10, cloud guests to SSH-ready, only when asked: BENCH_CASES=10;
#                  BENCH_CLOUD_COUNTS guests at a time, default "1 3")
#                  "backup": virt_backup vs virtnbdbackup (bench/backup.py, results-backups.md)
#                  "clones": clone_from vs virt-clone and cp (bench/clones.py, results-clones.md;
#                  BENCH_CLONES_REPS, default 3)
#   BENCH_REPORT=0 skip writing the report (e.g. while debugging one case)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
venv=${KVMOPS_VENV:-$root/.venv}
py=$venv/bin/python
lock="$root/testbed/with_testbed_lock.sh"  # the test-bed lock (writer-preferring)
cases=${BENCH_CASES:-1 3 4 5 6 7 8 9}
export BENCH_REPS=${BENCH_REPS:-5}
reps_fast=${BENCH_REPS_FAST:-$(( 2 * BENCH_REPS ))}
export PATH="$venv/bin:$PATH"
export ANSIBLE_COLLECTIONS_PATH="$root/.build/collections"
cd "$root"
mkdir -p bench/.work/raw

# Only one benchmark run at a time on this machine (they share the kvmops-bench- names).
exec 8>"$root/bench/.work/run.lock"
flock -n 8 || { echo "bench: another benchmark run holds bench/.work/run.lock" >&2; exit 1; }

# Benchmark-only tools (matplotlib) go into the venv only when missing.
if ! "$py" -c 'import matplotlib' 2>/dev/null; then
  echo "[bench] installing bench/requirements.txt into the venv"
  "$venv/bin/pip" install -q -r "$here/requirements.txt"
fi

start=$(date +%s)
echo "[bench] start $(date -u '+%F %T') UTC, load average $(cut -d' ' -f1-3 /proc/loadavg), reps $BENCH_REPS"
cut -d' ' -f1-3 /proc/loadavg > bench/.work/raw/load-start.txt
"$lock" shared "$py" bench/bench.py meta
failed=""
for c in $cases; do
  if [ "$c" = backup ]; then
    # virt_backup against virtnbdbackup on one guest: writes bench/results-backups.md itself.
    "$lock" shared "$py" bench/backup.py || failed="$failed $c"
    continue
  fi
  if [ "$c" = clones ]; then
    # clone_from against virt-clone and cp: writes bench/results-clones.md and its section.
    "$lock" shared "$py" bench/clones.py || failed="$failed $c"
    continue
  fi
  if [ "$c" = migration ]; then
    # Two podman hypervisors with their own libvirtd (bench/migration.py): a shared lock is enough.
    "$lock" shared "$py" bench/migration.py || failed="$failed $c"
    continue
  fi
  if [ "$c" = drain ]; then
    # Three podman hypervisors with their own libvirtd (bench/drain.py): a shared lock is enough.
    "$lock" shared "$py" bench/drain.py || failed="$failed $c"
    continue
  fi
  if [ "$c" = fleet ]; then
    # Its hypervisors are containers with their own libvirtd: a shared lock is enough.
    "$lock" shared "$py" bench/fleet.py || failed="$failed $c"
    continue
  fi
  if [ "$c" = sitecost ]; then
    # site.yml re-run / --check --diff per task (issue 33); qemu.conf edits go to a copy, no
    # libvirtd restart: a shared lock is enough. Writes its own section of results.md.
    "$lock" shared "$py" bench/sitecost.py || failed="$failed $c"
    continue
  fi
  if [ "$c" = inventory ]; then
    # libvirt's test driver only (no daemon, no lock); writes its own section of results.md.
    "$py" bench/inventory.py --reps "$BENCH_REPS" || failed="$failed $c"
    continue
  fi
  rm -f "bench/.work/raw/case$c.json"
  [ "$c" = 1 ] && rm -f bench/.work/raw/case2.json
  mode=shared reps=$BENCH_REPS
  # site.yml may restart libvirtd: case 6 waits until no test or other run uses the daemon.
  [ "$c" = 6 ] && mode=exclusive
  { [ "$c" = 4 ] || [ "$c" = 5 ]; } && reps=$reps_fast
  # A failing case is recorded (bench/.work/raw/case<N>.json says why) and the others still run.
  "$lock" "$mode" "$py" bench/bench.py "case$c" --reps "$reps" || failed="$failed $c"
done
cut -d' ' -f1-3 /proc/loadavg > bench/.work/raw/load-end.txt
echo "$(( $(date +%s) - start ))" > bench/.work/raw/wall-seconds.txt
echo "[bench] end $(date -u '+%F %T') UTC, load average $(cut -d' ' -f1-3 /proc/loadavg), $(( $(date +%s) - start )) s"

# The named cases (fleet, inventory, backup, migration, drain, clones) write their own sections of
# results.md; the report needs the numbered cases' raw figures: a run of named cases only skips it.
own_sections=1
for c in $cases; do case $c in [0-9]*) own_sections=0 ;; esac; done
[ "$own_sections" = 1 ] && BENCH_REPORT=0
if [ "${BENCH_REPORT:-1}" = 1 ]; then
  # A run of only the many-guests cases (7-9) keeps the last full run's sections of
  # results.md and replaces just its own (bench/report_many.py).
  if echo " $cases " | grep -qE ' [1-6] '; then "$py" bench/report.py; fi
  "$py" bench/report_many.py
fi
if [ -n "$failed" ]; then
  echo "[bench] FAILED cases:$failed (see above and bench/results.md)" >&2
  exit 1
fi
