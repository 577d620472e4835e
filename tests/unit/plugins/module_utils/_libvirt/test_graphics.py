"""The one VNC graphics reader and VNC policy (virt_install_domain and vnc_listen)."""
import pytest

from ansible_collections.kvmops.hypervisor.plugins.module_utils._guest import argspec as A
from ansible_collections.kvmops.hypervisor.plugins.module_utils._guest import spec as S
from ansible_collections.kvmops.hypervisor.plugins.module_utils._libvirt import graphics as G
from ansible_collections.kvmops.hypervisor.plugins.module_utils._libvirt.xml import parse


def dom(graphics):
    return parse('<domain><devices>%s</devices></domain>' % graphics)


@pytest.mark.parametrize('xml, address, follows', [
    ("<graphics type='vnc' listen='127.0.0.2'><listen type='address' address='127.0.0.2'/>"
     "</graphics>", '127.0.0.2', False),
    ("<graphics type='vnc'><listen type='address'/></graphics>", None, True),
    ("<graphics type='vnc'><listen type='socket' socket='/run/x.sock'/></graphics>", None, False),
    ("<graphics type='vnc'/>", None, True),
])
def test_where_a_guest_listens(xml, address, follows):
    g = G.vnc_graphics(dom(xml))[0]
    assert G.listen_address(g) == address
    assert G.follows_host(g) is follows


def test_vnc_info_of_a_running_guest_and_a_socket():
    info = G.vnc_info(dom("<graphics type='spice'/><graphics type='vnc' port='5903' "
                          "listen='127.0.0.1'/>"))
    assert info == {'listen': '127.0.0.1', 'port': 5903, 'display': ':3'}
    info = G.vnc_info(dom("<graphics type='vnc' port='-1'><listen type='socket' "
                          "socket='/run/v.sock'/></graphics>"))
    assert info == {'listen': '/run/v.sock', 'port': None, 'display': None}
    assert G.vnc_info(dom('')) is None


@pytest.mark.parametrize('listen', ['1.2.3.999', 'example.org', '[::1]', '::1::2'])
def test_both_modules_check_the_listen_address_with_ipaddress(listen):
    with pytest.raises(G.GraphicsError):
        G.parse_listen(listen)
    with pytest.raises(S.SpecError, match='graphics.listen'):
        A.normalize({'name': 'a', 'graphics': {'type': 'vnc', 'listen': listen}})


def test_both_modules_refuse_a_vnc_password_over_8_bytes():
    from ansible_collections.kvmops.hypervisor.plugins.module_utils._vnc import listen as V
    with pytest.raises(S.SpecError, match='only 8 bytes'):
        A.normalize({'name': 'a', 'graphics': {'type': 'vnc', 'password': '123456789'}})
    errors, warnings = V.password_checks('123456789')
    assert errors and 'only 8 bytes' in errors[0] and not warnings
    G.check_vnc_password('12345678')
    A.normalize({'name': 'a', 'graphics': {'type': 'spice', 'password': '123456789'}})
