"""Unit tests of the shared libvirt connection helper (pure logic; libvirt itself is faked
only where a missing library or a dead daemon must be simulated)."""
import pytest

from ansible_collections.kvmops.hypervisor.plugins.module_utils._libvirt import connection as _libvirt_conn


def test_missing_libvirt_python_says_how_to_install(monkeypatch):
    monkeypatch.setattr(_libvirt_conn, 'HAS_LIBVIRT', False)
    with pytest.raises(_libvirt_conn.LibvirtConnectionError) as exc:
        _libvirt_conn.open_connection('qemu:///system')
    assert 'python3-libvirt' in str(exc.value)


def test_unreachable_daemon_names_uri_and_daemons():
    if not _libvirt_conn.HAS_LIBVIRT:
        pytest.skip('libvirt-python not installed for this interpreter')
    with pytest.raises(_libvirt_conn.LibvirtConnectionError) as exc:
        _libvirt_conn.open_connection('qemu+unix:///system?socket=/nonexistent/kvmops.sock')
    msg = str(exc.value)
    assert '/nonexistent/kvmops.sock' in msg and 'virtqemud' in msg
