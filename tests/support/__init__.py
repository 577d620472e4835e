"""Test helpers shared by unit and integration tests (not part of the collection)."""
