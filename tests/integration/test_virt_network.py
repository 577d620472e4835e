"""virt_network against the real libvirtd: create (check mode before and after), re-run
unchanged, a DHCP range changed live and persistently (net-dumpxml, and a tiny guest that
gets its lease in the new range), a static DHCP host (the guest gets exactly that address),
overlapping subnets refused before anything changes, absent twice.

Leases are read from libvirt (virNetworkGetDHCPLeases) and the guest's serial console: no
traffic is ever sent to a guest. Test subnets are free 10.213.x.0/24 networks, checked
against the host's routes and every libvirt network."""
import ipaddress
import os
import random
import subprocess
import time
import uuid

import libvirt
import pytest

from support.ansible_run import run_module
from support.libvirt_helpers import remove_domain, tiny_guest_xml, wait_for_text
from support.network_helpers import bridge_name, free_subnets, ranges

INACTIVE = libvirt.VIR_NETWORK_XML_INACTIVE


def host(subnet, n):
    return str(subnet.network_address + n)


def net_args(name, subnet, bridge, start, end, **extra):
    args = {'name': name, 'forward': 'nat', 'bridge': bridge, 'autostart': False,
            'ipv4': {'address': host(subnet, 1), 'prefix': 24,
                     'dhcp_ranges': [{'start': host(subnet, start), 'end': host(subnet, end)}]}}
    args['ipv4'].update(extra.pop('ipv4', {}))
    args.update(extra)
    return args


def lease_for(net, mac, want=None, timeout=300.0):
    """The DHCP lease libvirt knows for mac (optionally: with that address)."""
    deadline = time.monotonic() + timeout
    leases = []
    while time.monotonic() < deadline:
        leases = [lease for lease in net.DHCPLeases() if lease['mac'].lower() == mac]
        for lease in leases:
            if want is None or lease['ipaddr'] == want:
                return lease
        time.sleep(0.5)
    raise AssertionError('no lease for %s%s within %ss: %s'
                         % (mac, ' at ' + want if want else '', timeout, leases))


def boot_guest(conn, name, tiny, log, network, mac):
    nic = ("<interface type='network'><source network='%s'/><mac address='%s'/>"
           "<model type='virtio'/></interface>" % (network, mac))
    dom = conn.defineXML(tiny_guest_xml(name, tiny, log, cmdline='console=ttyS0 no_timer_check kvmops.dhcp=1',
                                        devices=nic))
    dom.create()
    return dom


def test_create_check_mode_rerun_and_absent(conn, prefix):
    subnet, = free_subnets(conn, 1)
    name, bridge = prefix + 'net', bridge_name()
    args = net_args(name, subnet, bridge, 100, 150, domain='kvmops.test',
                    dns_hosts=[{'ip': host(subnet, 9), 'hostnames': ['db.kvmops.test']}])

    res = run_module('virt_network', args, check=True, diff=True)
    assert res['changed'] is True, res
    assert res['state'] == 'active' and 'define the network' in res['actions']
    assert res['diff']['before'] == '' and bridge in res['diff']['after']
    assert name not in [n.name() for n in conn.listAllNetworks()]     # check mode: nothing

    res = run_module('virt_network', args)
    assert res['changed'] is True and not res.get('failed'), res
    net = conn.networkLookupByName(name)
    assert net.isActive() and not net.autostart()
    xml = net.XMLDesc(INACTIVE)
    assert "<forward mode='nat'" in xml and "name='%s'" % bridge in xml
    assert ranges(xml) == [(host(subnet, 100), host(subnet, 150))]
    assert "<domain name='kvmops.test'/>" in xml and '<hostname>db.kvmops.test</hostname>' in xml
    assert res['bridge'] == bridge and res['network']['ipv4']['prefix'] == 24
    # the bridge really exists, with the host address on it
    addr = subprocess.run(['ip', '-j', 'addr', 'show', 'dev', bridge], stdout=subprocess.PIPE,
                          universal_newlines=True, check=True).stdout
    assert host(subnet, 1) in addr

    # check mode again, and a real re-run: unchanged (libvirt added uuid, mac, stp...)
    for check in (True, False):
        res = run_module('virt_network', args, check=check, diff=True)
        assert res['changed'] is False, res
        assert res['actions'] == [] and res['changes'] == []
    assert net.XMLDesc(INACTIVE) == xml

    # only what is asked is compared: a task naming just the network leaves it alone
    res = run_module('virt_network', {'name': name})
    assert res['changed'] is False, res

    # inactive, then absent twice
    res = run_module('virt_network', {'name': name, 'state': 'inactive'})
    assert res['changed'] is True and res['actions'] == ['stop the network']
    assert not net.isActive()
    res = run_module('virt_network', {'name': name, 'state': 'absent'}, check=True)
    assert res['changed'] is True and name in [n.name() for n in conn.listAllNetworks()]
    res = run_module('virt_network', {'name': name, 'state': 'absent'})
    assert res['changed'] is True and res['state'] == 'absent'
    assert name not in [n.name() for n in conn.listAllNetworks()]
    res = run_module('virt_network', {'name': name, 'state': 'absent'})
    assert res['changed'] is False and res['actions'] == []


@pytest.mark.slow
def test_dhcp_range_and_static_host_change_live_and_a_guest_follows(conn, prefix, image_dir, tiny):
    subnet, = free_subnets(conn, 1)
    name, bridge = prefix + 'net', bridge_name()
    mac = '52:54:00:%02x:%02x:%02x' % tuple(random.randrange(256) for i in range(3))
    res = run_module('virt_network', net_args(name, subnet, bridge, 100, 150))
    assert res['changed'] is True, res
    net = conn.networkLookupByName(name)

    # The range moves: live (virNetworkUpdate) and persistent, no restart.
    new_range = net_args(name, subnet, bridge, 50, 60)
    live = ['remove DHCP range %s-%s' % (host(subnet, 100), host(subnet, 150)),
            'add DHCP range %s-%s' % (host(subnet, 50), host(subnet, 60))]
    res = run_module('virt_network', new_range, check=True)
    assert res['changed'] is True and res['live_updates'] == live, res      # predicted
    for flags in (0, INACTIVE):                     # check mode: nothing changed
        assert ranges(net.XMLDesc(flags)) == [(host(subnet, 100), host(subnet, 150))]
    res = run_module('virt_network', new_range, diff=True)
    assert res['changed'] is True and res['restart_required'] is False, res
    assert res['restarted'] is False and res['live_updates'] == live
    assert 'end="%s"' % host(subnet, 60) in res['diff']['after']
    assert [c['facet'] for c in res['changes']] == ['ipv4.dhcp_ranges']
    for flags in (0, INACTIVE):                     # live and persistent
        assert ranges(net.XMLDesc(flags)) == [(host(subnet, 50), host(subnet, 60))]
    assert run_module('virt_network', new_range)['changed'] is False

    # A guest booted now gets its lease in the new range.
    log = os.path.join(image_dir, 'serial.log')
    dom = boot_guest(conn, prefix + 'guest', tiny, log, name, mac)
    try:
        lease = lease_for(net, mac)
        first = ipaddress.ip_address(lease['ipaddr'])
        assert ipaddress.ip_address(host(subnet, 50)) <= first <= ipaddress.ip_address(host(subnet, 60)), lease
        wait_for_text(log, 'KVMOPS-IP: %s' % first, timeout=120)

        # A static host for the guest's MAC, live: after a fresh boot it gets exactly that address.
        static = host(subnet, 7)
        with_host = net_args(name, subnet, bridge, 50, 60, ipv4={
            'dhcp_hosts': [{'mac': mac.upper(), 'name': 'tiny', 'ip': static}]})
        res = run_module('virt_network', with_host)
        assert res['changed'] is True and res['live_updates'] == [
            'add DHCP host %s -> %s' % (mac, static)], res
        for flags in (0, INACTIVE):
            assert "<host mac='%s' name='tiny' ip='%s'/>" % (mac, static) in net.XMLDesc(flags)
        assert run_module('virt_network', with_host)['changed'] is False   # MAC case normalised
        dom.destroy()
        dom.create()
        lease_for(net, mac, want=static)
        wait_for_text(log, 'KVMOPS-IP: %s' % static, timeout=120)
    finally:
        remove_domain(dom)


def test_overlapping_subnets_are_refused_before_anything_changes(conn, prefix):
    mine, routed = free_subnets(conn, 2)
    name, other = prefix + 'net', prefix + 'other'
    args = net_args(name, mine, bridge_name(), 100, 150)
    assert run_module('virt_network', args)['changed'] is True
    net = conn.networkLookupByName(name)
    xml = net.XMLDesc(INACTIVE)

    # Another network in a part of the active one's subnet: refused, not defined.
    half = ipaddress.ip_network('%s/25' % host(mine, 128))
    res = run_module('virt_network', {'name': other, 'forward': 'isolated', 'bridge': bridge_name(),
                                      'ipv4': {'address': host(half, 1), 'prefix': 25}})
    assert res.get('failed') is True and res['changed'] is False, res
    assert 'overlaps %s of the active libvirt network %s' % (mine, name) in res['msg']
    assert other not in [n.name() for n in conn.listAllNetworks()]

    # A route of the host (on a bridge device this test creates): a network there is refused,
    # and so is moving the existing network onto it (its definition stays as it was).
    dummy = 'kvt' + uuid.uuid4().hex[:8]
    subprocess.run(['ip', 'link', 'add', dummy, 'type', 'bridge'], check=True)
    try:
        subprocess.run(['ip', 'addr', 'add', '%s/24' % host(routed, 200), 'dev', dummy], check=True)
        subprocess.run(['ip', 'link', 'set', dummy, 'up'], check=True)
        res = run_module('virt_network', net_args(other, routed, bridge_name(), 100, 150), check=True)
        assert res.get('failed') is True and 'host route %s dev %s' % (routed, dummy) in res['msg'], res
        moved = net_args(name, routed, args['bridge'], 100, 150, restart=True)
        res = run_module('virt_network', moved)
        assert res.get('failed') is True and res['actions'] == [], res
        assert res['overlaps'] == ['%s overlaps the host route %s dev %s' % (routed, routed, dummy)]
        assert net.XMLDesc(INACTIVE) == xml and net.isActive()
        assert other not in [n.name() for n in conn.listAllNetworks()]
    finally:
        subprocess.run(['ip', 'link', 'del', dummy], check=False)


def test_change_that_needs_a_restart_waits_for_restart_true(conn, prefix):
    subnet, = free_subnets(conn, 1)
    name = prefix + 'net'
    args = net_args(name, subnet, bridge_name(), 100, 150)
    assert run_module('virt_network', args)['changed'] is True
    net = conn.networkLookupByName(name)
    args['mtu'] = 1400
    res = run_module('virt_network', args)
    assert res['changed'] is True and res['restart_required'] is True, res
    assert any('runs with its old mtu' in w for w in res.get('warnings', [])), res
    assert "<mtu size='1400'/>" in net.XMLDesc(INACTIVE) and '<mtu' not in net.XMLDesc(0)
    res = run_module('virt_network', args)                  # persistent already matches
    assert res['changed'] is False and res['restart_required'] is True
    args['restart'] = True
    res = run_module('virt_network', args)
    assert res['changed'] is True and res['restarted'] is True, res
    assert "<mtu size='1400'/>" in net.XMLDesc(0) and net.isActive()
    assert run_module('virt_network', args)['changed'] is False


def test_host_bridge_and_bad_input(conn, prefix):
    """forward=bridge onto a host bridge this test creates; bad input changes nothing."""
    br = 'kvt' + uuid.uuid4().hex[:8]
    name = prefix + 'br'
    subprocess.run(['ip', 'link', 'add', br, 'type', 'bridge'], check=True)
    try:
        args = {'name': name, 'forward': 'bridge', 'bridge': br, 'autostart': True}
        res = run_module('virt_network', args)
        assert res['changed'] is True, res
        net = conn.networkLookupByName(name)
        assert net.isActive() and net.autostart()
        assert "<forward mode='bridge'/>" in net.XMLDesc(INACTIVE)
        assert run_module('virt_network', args)['changed'] is False
        res = run_module('virt_network', dict(args, ipv4={'address': '10.213.0.1'}))
        assert res.get('failed') and 'has no addresses of its own' in res['msg'], res
        res = run_module('virt_network', {'name': prefix + 'x', 'bridge': 'a-bridge-name-too-long'})
        assert res.get('failed') and 'at most 15 characters' in res['msg'], res
        assert prefix + 'x' not in [n.name() for n in conn.listAllNetworks()]
    finally:
        subprocess.run(['ip', 'link', 'del', br], check=False)
