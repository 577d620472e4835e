#!/usr/bin/env bash
# A controller venv for one ansible-core release (make matrix): ansible-core==VERSION plus the
# test tools of testbed/matrix-requirements.txt, on the oldest Python that release runs on
# here (ansible-core 2.20 and later need Python 3.12: pyenv's, as this machine kind has;
# 2.17-2.19 use the system Python 3.11). Cached by version and requirements' hash; prints
# the venv's path. Also writes ansible-test's offline pip bootstrap for that release.
#   testbed/controller_venv.sh 2.18.19   -> /var/cache/kvmops-testbed/controller-2.18.19-<hash>
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
version=${1:?usage: controller_venv.sh ANSIBLE_CORE_VERSION}
req="$here/matrix-requirements.txt"
cache=${KVMOPS_CACHE:-/var/cache/kvmops-testbed}
minor=$(echo "$version" | cut -d. -f2)
python=/usr/bin/python3
if [ "$minor" -ge 20 ]; then
  python=""
  for cand in "${PYENV_ROOT:-$HOME/.pyenv}"/versions/3.12.*/bin/python3.12 \
              "${PYENV_ROOT:-$HOME/.pyenv}"/versions/3.13.*/bin/python3.13 \
              /usr/bin/python3.12 /usr/bin/python3.13; do
    [ -x "$cand" ] && "$cand" -c 'import sys; assert sys.version_info >= (3, 12)' 2>/dev/null \
      && { python=$cand; break; }
  done
  [ -n "$python" ] || { echo "ansible-core $version needs Python >= 3.12: none found (pyenv)" >&2; exit 2; }
fi
hash=$( (cat "$req" "$0"; echo "$python") | sha256sum | cut -c1-16)
venv="$cache/controller-$version-$hash"
mkdir -p "$cache"
exec 9>"$cache/.controller-$version.lock"
flock 9
if [ ! -f "$venv/.ready" ]; then
  rm -rf "$venv"
  "$python" -m venv "$venv"
  if ! { "$venv/bin/pip" install -q --upgrade pip \
         && "$venv/bin/pip" install -q "ansible-core==$version" -r "$req"; } >"$venv/pip-install.log" 2>&1; then
    cat "$venv/pip-install.log" >&2
    exit 1
  fi
  find "$cache" -maxdepth 1 -name "controller-$version-*" ! -name "controller-$version-$hash" -exec rm -rf {} +
  touch "$venv/.ready"
fi
KVMOPS_VENV=$venv "$here/ansible_test_pip_shim.sh"
echo "$venv"
