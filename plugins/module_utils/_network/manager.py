# -*- coding: utf-8 -*-
# Copyright: kvmops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""virt_network's manager: read the network -> compare only what was asked (after libvirt's
normalisation) -> refuse overlapping subnets -> define the persistent definition, apply what
libvirt can change live (DHCP ranges and hosts, DNS hosts) through virNetworkUpdate, and
restart the network only when asked -> changed / diff / result.

Private to the collection: no API promise. Independent of AnsibleModule: it gets the one
libvirt connection and the spec from spec.normalize().
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import copy
import ipaddress

from ansible_collections.kvmops.hypervisor.plugins.module_utils._common.errors import KvmopsError
from ansible_collections.kvmops.hypervisor.plugins.module_utils._common.manager import ManagerBase
from ansible_collections.kvmops.hypervisor.plugins.module_utils._libvirt import constants as C
from ansible_collections.kvmops.hypervisor.plugins.module_utils._libvirt import xml as lxml_util
from ansible_collections.kvmops.hypervisor.plugins.module_utils._libvirt.locality import connection_is_local
from ansible_collections.kvmops.hypervisor.plugins.module_utils._network import builder as nxml
from ansible_collections.kvmops.hypervisor.plugins.module_utils._network import drift as ndrift
from ansible_collections.kvmops.hypervisor.plugins.module_utils._network import overlap as noverlap
from ansible_collections.kvmops.hypervisor.plugins.module_utils._libvirt.connection import libvirt  # None without libvirt-python


def _subnets(root):
    out = []
    for ip in root.findall('ip'):
        if not ip.get('address'):
            continue
        prefix = ndrift._prefix_of(ip)
        out.append(ipaddress.ip_network(u'%s/%d' % (ip.get('address'), prefix), strict=False))
    return out


def live_update_plan(changes, live_root, wanted):
    """[(command, section, parent_index, xml, description)] that turn the live network's
    DHCP ranges/hosts and DNS hosts into the wanted ones (deletions first)."""
    deletes, adds = [], []
    ips = live_root.findall('ip')
    for change in changes:
        facet = change['facet']
        if facet == 'dns_hosts':
            dns = live_root.find('dns')
            have = []
            for el in (dns.findall('host') if dns is not None else []):
                names = tuple(sorted(set(n.text for n in el.findall('hostname') if n.text)))
                have.append(((ndrift._norm_ip(el.get('ip')), names), el))
            for key, el in have:
                if key not in wanted['dns_hosts']:
                    deletes.append((C.VIR_NETWORK_UPDATE_COMMAND_DELETE, C.VIR_NETWORK_SECTION_DNS_HOST,
                                    -1, lxml_util.to_string(el, pretty=False),
                                    'remove DNS host %s' % key[0]))
            for key in wanted['dns_hosts']:
                if key not in [k for k, _el in have]:
                    adds.append((C.VIR_NETWORK_UPDATE_COMMAND_ADD_LAST, C.VIR_NETWORK_SECTION_DNS_HOST,
                                 -1, lxml_util.to_string(nxml.dns_host_element(key), pretty=False),
                                 'add DNS host %s (%s)' % (key[0], ', '.join(key[1]))))
            continue
        family, sub = facet.split('.')
        version = int(family[-1])
        ip = ndrift.ip_element(live_root, version)
        index = ips.index(ip)
        have = ndrift._ip_facets(ip)
        want = wanted[family]
        dhcp = ip.find('dhcp')
        if sub == 'dhcp_ranges':
            section = C.VIR_NETWORK_SECTION_IP_DHCP_RANGE
            for rng in have['dhcp_ranges']:
                if rng not in want['dhcp_ranges']:
                    el = [r for r in dhcp.findall('range')
                          if (ndrift._norm_ip(r.get('start')), ndrift._norm_ip(r.get('end'))) == rng][0]
                    deletes.append((C.VIR_NETWORK_UPDATE_COMMAND_DELETE, section, index,
                                    lxml_util.to_string(el, pretty=False),
                                    'remove DHCP range %s-%s' % rng))
            for rng in want['dhcp_ranges']:
                if rng not in have['dhcp_ranges']:
                    adds.append((C.VIR_NETWORK_UPDATE_COMMAND_ADD_LAST, section, index,
                                 lxml_util.to_string(nxml.range_element(rng), pretty=False),
                                 'add DHCP range %s-%s' % rng))
        elif sub == 'dhcp_hosts':
            section = C.VIR_NETWORK_SECTION_IP_DHCP_HOST
            for host in have['dhcp_hosts']:
                if host not in want['dhcp_hosts']:
                    deletes.append((C.VIR_NETWORK_UPDATE_COMMAND_DELETE, section, index,
                                    lxml_util.to_string(nxml.host_element(host), pretty=False),
                                    'remove DHCP host %s' % _host_label(host)))
            for host in want['dhcp_hosts']:
                if host not in have['dhcp_hosts']:
                    adds.append((C.VIR_NETWORK_UPDATE_COMMAND_ADD_LAST, section, index,
                                 lxml_util.to_string(nxml.host_element(host), pretty=False),
                                 'add DHCP host %s' % _host_label(host)))
    return deletes + adds


def _host_label(host):
    mac, name, addr = host
    return '%s -> %s' % (mac or name, addr)


class NetworkManager(ManagerBase):
    def __init__(self, conn, spec, check_mode=False, diff_mode=False, read_file=None, warn=None):
        super(NetworkManager, self).__init__(check_mode=check_mode, diff_mode=diff_mode, warn=warn)
        self.conn = conn
        self.spec = spec
        self.name = spec['name']
        self._read_file = read_file
        self.changes = []
        self.live_updates = []
        self.restart_required = False
        self.restarted = False
        self.reconnect = []
        self.after_xml = None

    # -- libvirt reads ------------------------------------------------------------------
    def lookup(self):
        try:
            return self.conn.networkLookupByName(self.name)
        except libvirt.libvirtError as exc:
            if exc.get_error_code() == C.VIR_ERR_NO_NETWORK:
                return None
            raise KvmopsError('Cannot look up the network %s: %s' % (self.name, exc))

    def other_active_networks(self):
        out = []
        for net in self.conn.listAllNetworks(C.VIR_CONNECT_LIST_NETWORKS_ACTIVE):
            if net.name() == self.name:
                continue
            try:
                root = lxml_util.parse(net.XMLDesc(0))
            except libvirt.libvirtError:
                continue  # stopped meanwhile
            bridge = root.find('bridge')
            out.append((net.name(), bridge.get('name') if bridge is not None else None,
                        _subnets(root)))
        return out

    def guests_on_network(self):
        names = []
        for dom in self.conn.listAllDomains(C.VIR_CONNECT_LIST_DOMAINS_ACTIVE):
            try:
                root = lxml_util.parse(dom.XMLDesc(0))
            except libvirt.libvirtError:
                continue
            for src in root.findall("devices/interface[@type='network']/source"):
                if src.get('network') == self.name:
                    names.append(dom.name())
                    break
        return sorted(names)

    # -- the run --------------------------------------------------------------------------
    def run(self):
        net = self.lookup()
        if self.spec['state'] == 'absent':
            return self.ensure_absent(net)
        facets = self.spec['facets']
        before_root = lxml_util.parse(net.XMLDesc(C.VIR_NETWORK_XML_INACTIVE)) if net else None
        self.changes = ndrift.compare(facets, ndrift.read_facets(before_root) if net else None)
        after_root = nxml.apply(copy.deepcopy(before_root) if net is not None
                                else nxml.skeleton(self.name), facets)
        self.after_xml = nxml.to_xml(after_root)
        active = bool(net and net.isActive())
        state = self.spec['state']
        stays_active = active and state in ('active', 'present')
        live_root = lxml_util.parse(net.XMLDesc(0)) if active else None
        live_changes = ndrift.compare(facets, ndrift.read_facets(live_root)) if stays_active else []
        starts = state == 'active' and not active
        subnet_changed = any(c['facet'].endswith('.address') for c in self.changes)
        if net is None or starts or subnet_changed:
            self.refuse_overlaps(after_root, live_root)

        if self.diff_mode:
            self.diff = {'before': nxml.to_xml(before_root) if net else '', 'after': self.after_xml}
        if net is None or self.changes:
            net = self.define(net, after_root)
        self.ensure_autostart(net)
        if state == 'inactive' and active:
            self.act('stop the network')
            if not self.check_mode:
                self._call(net.destroy, 'stop')
        elif starts:
            self.act('start the network')
            if not self.check_mode:
                self._call(net.create, 'start')
        elif stays_active and live_changes:
            self.apply_running(net, live_changes, live_root)
        return self.result()

    def refuse_overlaps(self, after_root, live_root):
        own_bridge = None
        if live_root is not None and live_root.find('bridge') is not None:
            own_bridge = live_root.find('bridge').get('name')
        problems = noverlap.find_overlaps(_subnets(after_root), self.other_active_networks(),
                                          self.host_routes(), own_bridge)
        if problems:
            raise KvmopsError(
                'Nothing was changed on the network %s: %s. Pick a subnet that no active network and no '
                'route of this host uses (ipv4.address / ipv6.address with their prefix).'
                % (self.name, '; '.join(problems)), name=self.name, changed=False, actions=[],
                overlaps=problems)

    def host_routes(self):
        """The routes of libvirt's host: this host's, or none for another host's libvirt
        (its /proc cannot be read from here; issue 26), with a warning."""
        if connection_is_local(self.conn):
            return noverlap.host_routes(self._read_file)
        self.warn('The network %s was checked against the other libvirt networks only: uri is '
                  'another host, whose routes cannot be read from here. Run the task on the '
                  'hypervisor (uri: qemu:///system) to check them too.' % self.name)
        return []

    def _call(self, fn, what, *args):
        try:
            return fn(*args)
        except libvirt.libvirtError as exc:
            raise KvmopsError('libvirt refused to %s the network %s: %s' % (what, self.name, exc),
                              name=self.name, changed=self.changed, actions=list(self.actions),
                              changes=self.changes)

    def define(self, net, after_root):
        if net is None:
            self.act('define the network')
        else:
            self.act('update the persistent definition: %s'
                     % ', '.join(c['facet'] for c in self.changes))
        if self.check_mode:
            return net
        new = self._call(self.conn.networkDefineXML, 'define', nxml.to_xml(after_root))
        return new

    def ensure_autostart(self, net):
        wanted = self.spec['autostart']
        if wanted is None:
            return
        current = bool(net.autostart()) if net is not None else False
        if current != wanted:
            self.act('%s autostart' % ('enable' if wanted else 'disable'))
            if not self.check_mode:
                self._call(net.setAutostart, 'set autostart on', 1 if wanted else 0)

    def apply_running(self, net, live_changes, live_root):
        pending = [c['facet'] for c in live_changes if not c['live']]
        if pending:
            self.reconnect = self.guests_on_network()
            if self.spec['restart']:
                self.act('restart the network (%s cannot change while it runs)' % ', '.join(pending))
                self.restarted = True
                if not self.check_mode:
                    self._call(net.destroy, 'stop')
                    self._call(net.create, 'start')
                if self.reconnect:
                    self.warn('The network %s was restarted: the running guests %s lost their link '
                              'and must reconnect (reattach the interface or restart the guest).'
                              % (self.name, ', '.join(self.reconnect)))
            else:
                self.restart_required = True
                self.warn('The network %s runs with its old %s until it is restarted (restart: '
                          'true, or virsh net-destroy/net-start); guests on it must reconnect '
                          'then.' % (self.name, ', '.join(pending)))
            return
        plan = live_update_plan(live_changes, live_root, self.spec['facets'])
        for command, section, index, xml, what in plan:
            self.act('live: ' + what)
            self.live_updates.append(what)
            if self.check_mode:
                continue
            try:
                net.update(command, section, index, xml, C.VIR_NETWORK_UPDATE_AFFECT_LIVE)
            except libvirt.libvirtError as exc:
                raise KvmopsError(
                    'The persistent definition of %s is updated, but libvirt refused the live '
                    'change "%s": %s. Restart the network to apply it (restart: true).'
                    % (self.name, what, exc), name=self.name, changed=True,
                    actions=list(self.actions), changes=self.changes)

    def ensure_absent(self, net):
        if net is None:
            return self.result()
        if self.diff_mode:
            self.diff = {'before': nxml.to_xml(lxml_util.parse(net.XMLDesc(C.VIR_NETWORK_XML_INACTIVE))),
                         'after': ''}
        if net.isActive():
            self.reconnect = self.guests_on_network()
            self.act('stop the network')
            if not self.check_mode:
                self._call(net.destroy, 'stop')
        if net.isPersistent():
            self.act('undefine the network')
            if not self.check_mode:
                self._call(net.undefine, 'undefine')
        return self.result()

    def result(self, **fields):
        state, autostart, bridge = 'absent', False, None
        if self.spec['state'] != 'absent':
            net = self.lookup()
            if self.check_mode or net is None:
                state = 'active' if self.spec['state'] == 'active' else 'inactive'
                if self.spec['state'] == 'present' and net is not None:
                    state = 'active' if net.isActive() else 'inactive'
                autostart = self.spec['autostart'] if self.spec['autostart'] is not None else \
                    bool(net and net.autostart())
            else:
                state = 'active' if net.isActive() else 'inactive'
                autostart = bool(net.autostart())
            root = lxml_util.parse(self.after_xml)
            facets = ndrift.read_facets(root)
            bridge = facets['bridge']
            if net is not None and state == 'active' and not self.check_mode:
                live = ndrift.read_facets(lxml_util.parse(net.XMLDesc(0)))
                bridge = live['bridge']
            shown = dict((k, ndrift._show(v)) for k, v in facets.items() if k not in ('ipv4', 'ipv6'))
            for key in ('ipv4', 'ipv6'):
                if facets[key]:
                    shown[key] = dict((k, ndrift._show(v)) for k, v in facets[key].items())
                else:
                    shown[key] = None
            fields.setdefault('network', shown)
        return super(NetworkManager, self).result(
            name=self.name, state=state, autostart=autostart, bridge=bridge,
            changes=self.changes, live_updates=self.live_updates,
            restart_required=self.restart_required, restarted=self.restarted,
            guests_to_reconnect=self.reconnect, **fields)
