"""Fixtures for every test: the collection is importable as ansible_collections.kvmops.hypervisor."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from support import paths  # noqa: E402

paths.ensure_collection_link()
if paths.COLLECTIONS_DIR not in sys.path:
    sys.path.insert(0, paths.COLLECTIONS_DIR)
