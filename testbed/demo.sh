#!/usr/bin/env bash
# The README's main command (placeholder until the roles land): prove the test bed works.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
.venv/bin/pytest -q tests/integration/test_testbed_smoke.py
