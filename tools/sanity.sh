#!/usr/bin/env bash
# ansible-test sanity needs the collection under .../ansible_collections/<ns>/<name>: copy
# what git tracks (plus new, not-ignored files) into a temporary tree and run it there.
# Arguments go to ansible-test, e.g. `tools/sanity.sh --test validate-modules`.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
venv=${KVMOPS_VENV:-$root/.venv}
tmp=$(mktemp -d /tmp/kvmops-sanity.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
dest=$tmp/ansible_collections/kvmops/hypervisor
mkdir -p "$dest"
cd "$root"
git ls-files -z --cached --others --exclude-standard | xargs -0 cp -P --parents -t "$dest"
cd "$dest"
export PATH="$venv/bin:$PATH"
# KVMOPS_SANITY_PYTHON: the controller matrix (make matrix) runs 2.20+ on 3.12.
ansible-test sanity --venv --python "${KVMOPS_SANITY_PYTHON:-3.11}" --color no "$@"
