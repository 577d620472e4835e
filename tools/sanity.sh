#!/usr/bin/env bash
# ansible-test sanity needs the collection under .../ansible_collections/<ns>/<name>: copy
# what git tracks (plus new, not-ignored files) into .build/sanity and run it there.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
venv=${KVMOPS_VENV:-$root/.venv}
dest=$root/.build/sanity/ansible_collections/kvmops/hypervisor
rm -rf "$dest"
mkdir -p "$dest"
cd "$root"
git ls-files -z --cached --others --exclude-standard | xargs -0 cp -P --parents -t "$dest"
cd "$dest"
export PATH="$venv/bin:$PATH"
exec ansible-test sanity --venv --python 3.11 --color no "$@"
