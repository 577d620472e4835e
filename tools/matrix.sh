#!/usr/bin/env bash
# The controller matrix (make matrix; issue 32): every ansible-core release the collection
# supports (meta/runtime.yml: 2.17 or later), each in a venv of its own with plain ansible-core
# (testbed/controller_venv.sh: Python 3.11 for 2.17-2.19, pyenv's 3.12 for 2.20+). For each:
#   sanity  ansible-test sanity (tools/sanity.sh) with that release's ansible-test
#   unit    tests/unit
#   plays   the libvirt_guests inventory plugin (tests/integration/test_inventory_libvirt_guests.py),
#           site.yml's check mode on this host (test_roles_site.py), and the README's fleet
#           path: the built tarball installed, site.yml for real with a tiny guest and its
#           re-run (test_fleet_install_path.py)
# A summary table at the end; the exit status is non-zero when any cell failed.
#   KVMOPS_MATRIX_CORES="2.17.14 2.20.10" tools/matrix.sh      (a subset)
#   KVMOPS_MATRIX_STEPS="unit plays" tools/matrix.sh            (skip sanity)
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
cores=${KVMOPS_MATRIX_CORES:-2.17.14 2.18.19 2.19.14 2.20.10}
steps=${KVMOPS_MATRIX_STEPS:-sanity unit plays}
reports=$root/.build/reports/matrix
mkdir -p "$reports"
rows=()
failed=0
PLAYS=(tests/integration/test_inventory_libvirt_guests.py
       tests/integration/test_roles_site.py::test_site_check_mode_on_a_clean_host_fails_nothing_and_changes_nothing
       tests/integration/test_fleet_install_path.py::test_fleet_path_from_a_fresh_plain_ansible_core)

for core in $cores; do
  if ! venv=$(testbed/controller_venv.sh "$core" | tail -n 1); then
    rows+=("$core | venv failed"); failed=1; continue
  fi
  py=$("$venv/bin/python" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
  row="$core (Python $py)"
  for step in $steps; do
    start=$SECONDS
    log="$reports/$core-$step.log"
    case $step in
      sanity) KVMOPS_VENV=$venv KVMOPS_SANITY_PYTHON=$py tools/sanity.sh >"$log" 2>&1 ;;
      unit)   KVMOPS_VENV=$venv "$venv/bin/pytest" tests/unit -q -p no:cacheprovider \
                --junitxml="$reports/$core-unit.xml" >"$log" 2>&1 ;;
      plays)  KVMOPS_VENV=$venv KVMOPS_CONTROLLER_VENV=$venv "$venv/bin/pytest" "${PLAYS[@]}" -q \
                -p no:cacheprovider --junitxml="$reports/$core-plays.xml" >"$log" 2>&1 ;;
      *) echo "unknown step $step" >&2; exit 2 ;;
    esac
    rc=$?
    result=passed; [ $rc -eq 0 ] || { result="FAILED (see $log)"; failed=1; }
    summary=$(grep -E '^(=+ )?[0-9]+ (passed|failed)' "$log" | tail -n 1 | tr -d '=' | sed 's/^ *//')
    row+=" | $step: $result ${summary:+($summary) }$((SECONDS - start))s"
    echo "[matrix] $core $step: $result $((SECONDS - start))s" >&2
  done
  rows+=("$row")
done
printf '\nansible-core matrix:\n'
printf '  %s\n' "${rows[@]}"
exit $failed
