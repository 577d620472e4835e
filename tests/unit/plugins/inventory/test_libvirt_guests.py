"""Pure logic of the libvirt_guests inventory plugin: hypervisor names, the ssh hop to guests
behind a hypervisor, and the qemu+ssh URI built from an inventory host. Listing real guests is
tests/integration/test_inventory_libvirt_guests.py and the molecule fleet scenario."""
from ansible.inventory.host import Host

from ansible_collections.kvmops.hypervisor.plugins.inventory import libvirt_guests as plugin


def test_hypervisor_name_is_the_uri_host_or_localhost():
    assert plugin.hypervisor_name('qemu:///system') == 'localhost'
    assert plugin.hypervisor_name('qemu+ssh://root@hv1.example.com:2222/system?keyfile=/k') == 'hv1.example.com'


def test_no_hop_for_local_or_tls_uris():
    assert plugin.ssh_hop_args('qemu:///system') is None
    assert plugin.ssh_hop_args('qemu+tls://hv1/system') is None


def test_proxy_jump_carries_user_and_port():
    assert plugin.ssh_hop_args('qemu+ssh://admin@hv1:2222/system') == '-o ProxyJump=admin@hv1:2222'
    assert plugin.ssh_hop_args('qemu+ssh://hv1/system') == '-o ProxyJump=hv1'


def test_proxy_command_when_the_hop_needs_its_own_ssh_arguments():
    hop = plugin.ssh_hop_args('qemu+ssh://root@10.88.0.5/system', '-i /k -o StrictHostKeyChecking=no')
    assert hop == "-o ProxyCommand='ssh -i /k -o StrictHostKeyChecking=no -W %h:%p root@10.88.0.5'"


def test_uri_of_an_inventory_host():
    host = Host('hv1')
    host.set_variable('ansible_host', '10.0.0.5')
    host.set_variable('ansible_user', 'admin')
    host.set_variable('ansible_port', 2222)
    uri = plugin.InventoryModule._uri_of(host, {'keyfile': '/home/a/.ssh/k', 'no_verify': 1})
    assert uri == 'qemu+ssh://admin@10.0.0.5:2222/system?keyfile=/home/a/.ssh/k&no_verify=1'
    local = Host('localhost')
    local.set_variable('ansible_connection', 'local')
    assert plugin.InventoryModule._uri_of(local, {}) == 'qemu:///system'
    plain = Host('hv2.example.com')
    assert plugin.InventoryModule._uri_of(plain, {}) == 'qemu+ssh://hv2.example.com/system'
