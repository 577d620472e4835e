"""Fixtures for every test: the collection is importable as ansible_collections.kvmops.hypervisor."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from support import paths  # noqa: E402

paths.ensure_collection_link()
if paths.COLLECTIONS_DIR not in sys.path:
    sys.path.insert(0, paths.COLLECTIONS_DIR)

# Property-based tests (hypothesis): `make test` runs a fixed, derandomised budget so a run
# is reproducible and bounded; `make fuzz` (HYPOTHESIS_PROFILE=fuzz) searches much longer.
try:
    from hypothesis import HealthCheck, settings
    from hypothesis.database import DirectoryBasedExampleDatabase
except ImportError:  # hypothesis is pinned in testbed/requirements.txt
    settings = None
if settings is not None:
    _common = dict(deadline=None, print_blob=True,
                   suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
    settings.register_profile('ci', derandomize=True, max_examples=60, database=None, **_common)
    # fuzz remembers what it found (.build/hypothesis) and replays it first next time.
    settings.register_profile('fuzz', max_examples=3000, database=DirectoryBasedExampleDatabase(
        os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), '.build',
                     'hypothesis')), **_common)
    settings.load_profile(os.environ.get('HYPOTHESIS_PROFILE', 'ci'))
