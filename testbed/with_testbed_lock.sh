#!/usr/bin/env bash
# Run a command holding the test-bed lock: libvirtd on this machine is shared by the
# integration tests, benchmarks, molecule and the demo (and by parallel sessions).
#
#   testbed/with_testbed_lock.sh shared|exclusive CMD [ARGS...]
#
# Writer-preferring: every taker passes a turnstile first and an exclusive taker keeps it
# until it holds the lock, so a stream of shared takers cannot starve a daemon restart
# (tests/support/testbed_lock.py is the same protocol for pytest).
set -euo pipefail
mode=${1:?usage: with_testbed_lock.sh shared|exclusive CMD [ARGS...]}
shift
case $mode in
  shared) flag=-s ;;
  exclusive) flag=-x ;;
  *) echo "usage: with_testbed_lock.sh shared|exclusive CMD [ARGS...]" >&2; exit 2 ;;
esac
lock=${KVMOPS_TESTBED_LOCK:-/run/kvmops-testbed.lock}
exec 8>>"$lock.turnstile" 9>>"$lock"
flock -x 8
flock "$flag" 9
flock -u 8
exec 8>&-
# The command must not inherit the lock: a daemon it restarts without systemd (service
# libvirtd restart) would keep the descriptor, and the lock, for ever.
rc=0
"$@" 9>&- || rc=$?
exit "$rc"
