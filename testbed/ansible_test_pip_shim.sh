#!/usr/bin/env bash
# ansible-test --venv bootstraps pip by downloading get-pip.py from a host that is not
# reachable here, and runs pip with PIP_CONFIG_FILE=/dev/null (dropping the machine's CA
# setting). Put a stand-in at its cache path: ensurepip from the standard library, then
# pip install with the system CA bundle.
set -euo pipefail
venv=${KVMOPS_VENV:-$(cd "$(dirname "$0")/.." && pwd)/.venv}
pip_version=$("$venv/bin/python" - <<'PY'
import re, pathlib, ansible_test
src = pathlib.Path(ansible_test.__file__).parent / '_internal' / 'python_requirements.py'
print(re.search(r"pip='([0-9.]+)'", src.read_text()).group(1))
PY
)
shim=~/.ansible/test/cache/get_pip_${pip_version//./_}.py
mkdir -p "$(dirname "$shim")"
cat > "$shim.tmp" <<'PY'
# Stand-in for get-pip.py written by kvmops testbed/ansible_test_pip_shim.sh.
import os
import subprocess
import sys

args = [a for a in sys.argv[1:] if a not in ('--no-setuptools', '--no-wheel')]
subprocess.check_call([sys.executable, '-m', 'ensurepip', '--default-pip'])
cert = os.environ.get('KVMOPS_CA_BUNDLE', '/etc/ssl/certs/ca-certificates.crt')
subprocess.check_call([sys.executable, '-m', 'pip', 'install', '--cert', cert] + args)
PY
if ! cmp -s "$shim.tmp" "$shim"; then mv "$shim.tmp" "$shim"; else rm -f "$shim.tmp"; fi
