# -*- coding: utf-8 -*-
# Copyright: kvmops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r'''
name: libvirt_guests
short_description: The guests of libvirt hypervisors, with their addresses, as an inventory
version_added: 1.1.0
author:
  - kvmops team (@kvmops)
description:
  - Lists the guests (libvirt domains) of every hypervisor given in O(uris), and of every host
    of the inventory group O(hypervisor_group) (reached as C(qemu+ssh://) URIs), with their
    power state, UUID, vCPUs, memory, NICs and IP addresses.
  - Addresses come from the libvirt network's DHCP leases first, then from the QEMU guest agent
    (O(address_sources)). Neither sends anything to the guest, and the guest agent is not
    needed - a guest on a libvirt network with DHCP is found by its lease alone.
  - Groups by hypervisor (C(libvirt_hypervisor_<name>)), by state (C(libvirt_state_<state>)) and
    by the tags kept in the domain's metadata (C(libvirt_tag_<tag>), see O(tag_namespace)), plus
    whatever O(groups) and O(keyed_groups) construct.
  - A guest behind its hypervisor (on a NAT or isolated libvirt network) of a remote hypervisor
    gets C(ansible_ssh_common_args) with a C(ProxyJump) (or, with O(proxy_ssh_args), a
    C(ProxyCommand)) through that hypervisor, so Ansible reaches it from the controller.
  - A hypervisor that cannot be reached is reported as a warning and left out; the guests of
    the others are listed.
  - Usable as an AWX/AAP inventory source (a file ending in C(libvirt_guests.yml) in a project)
    when the execution environment has libvirt-python (meta/execution-environment.yml).
requirements:
  - libvirt-python and lxml on the controller
  - for C(qemu+ssh://) URIs, an ssh client and key-based access to the hypervisors
extends_documentation_fragment:
  - ansible.builtin.constructed
  - ansible.builtin.inventory_cache
options:
  plugin:
    description: The name of this plugin; the file must end in C(libvirt_guests.yml) or C(libvirt_guests.yaml).
    type: str
    required: true
    choices: [kvmops.hypervisor.libvirt_guests]
  uris:
    description:
      - libvirt URIs of the hypervisors, e.g. V(qemu:///system) or V(qemu+ssh://root@hv1/system).
      - An entry is a URI, or a dict with C(uri) and C(name) (the hypervisor's name in group and
        variable names; by default the URI's host, or V(localhost)).
    type: list
    elements: raw
    default: []
  hypervisor_group:
    description:
      - An inventory group (from an inventory source given before this one) whose hosts are
        hypervisors; each is reached as C(qemu+ssh://[ansible_user@]ansible_host[:ansible_port]/system)
        (C(qemu:///system) for a host with C(ansible_connection=local)).
      - Only host variables set by the earlier inventory source are seen (not group_vars files).
    type: str
  hypervisor_uri_params:
    description:
      - Query parameters appended to the C(qemu+ssh://) URIs built for O(hypervisor_group), such as
        C(keyfile), C(no_verify) or C(command) (see libvirt's remote URI documentation).
    type: dict
    default: {}
  address_sources:
    description:
      - Where addresses come from, in order of preference - V(lease) (the libvirt network's DHCP
        leases), V(agent) (qemu-guest-agent), V(arp) (the hypervisor's ARP table).
      - A source that is not available for a guest (no agent) is skipped.
      - V(agent) needs a read-write libvirt connection (root or the libvirt group on the
        hypervisor); without one the plugin connects read-only and V(agent) gives nothing.
    type: list
    elements: str
    choices: [lease, agent, arp]
    default: [lease, agent]
  address_family:
    description: The family of the address put into C(ansible_host).
    type: str
    choices: [ipv4, ipv6]
    default: ipv4
  name_pattern:
    description: Only guests whose name matches this regular expression (Python C(re.search)); empty lists all.
    type: str
    default: ''
  states:
    description: Only guests in one of these states (V(running), V(paused), V(shutoff), ...); empty lists all.
    type: list
    elements: str
    default: []
  hostname_format:
    description:
      - Inventory name of a guest - a format string with C({name}), C({hypervisor}) and C({uuid}).
      - With the default, a second guest of the same name on another hypervisor is named
        C({name}@{hypervisor}) (with a warning).
    type: str
    default: '{name}'
  tag_namespace:
    description:
      - XML namespace of the domain metadata element that holds the guest's tags -
        C(<tags xmlns="urn:kvmops:hypervisor:tags:1"><tag>web</tag></tags>), set with e.g.
        C(virsh metadata DOM urn:kvmops:hypervisor:tags:1 --key kvmops --set '<tags><tag>web</tag></tags>').
    type: str
    default: urn:kvmops:hypervisor:tags:1
  proxy_jump:
    description:
      - Give guests behind a remote hypervisor (NAT or isolated libvirt network)
        C(ansible_ssh_common_args) that reach them through the hypervisor.
    type: bool
    default: true
  proxy_ssh_args:
    description:
      - Extra ssh arguments for the hop to the hypervisor (e.g. V(-i ~/.ssh/hv_key -o StrictHostKeyChecking=no)).
        Given, a C(ProxyCommand) with them is used instead of a plain C(ProxyJump).
    type: str
    default: ''
  connect_timeout:
    description: Seconds to wait for one hypervisor's connection and listing before it is reported as unreachable.
    type: int
    default: 30
notes:
  - The guests' variables are C(libvirt_uri), C(libvirt_hypervisor), C(libvirt_name), C(libvirt_uuid),
    C(libvirt_state), C(libvirt_vcpus), C(libvirt_memory_mib), C(libvirt_tags), C(libvirt_interfaces)
    (per NIC - mac, network, network_forward, addresses with their source) and, when an address
    was found, C(ansible_host).
  - community.libvirt's libvirt inventory plugin needs the guest agent for addresses and stops at
    the first hypervisor it cannot reach; this one does neither.
'''

EXAMPLES = r'''
# inventory/libvirt_guests.yml - the guests of two hypervisors
plugin: kvmops.hypervisor.libvirt_guests
uris:
  - qemu+ssh://root@hv1.example.com/system
  - uri: qemu+ssh://admin@10.0.0.12/system?keyfile=/runner/.ssh/hv_key
    name: hv2
cache: true
cache_plugin: ansible.builtin.jsonfile
cache_connection: /tmp/kvmops-libvirt-guests
cache_timeout: 300

# inventory/libvirt_guests.yml - the guests of the hypervisors of an inventory given first:
#   ansible-inventory -i inventories/guide -i inventories/guide/libvirt_guests.yml --graph
# plugin: kvmops.hypervisor.libvirt_guests
# hypervisor_group: hypervisors
# hypervisor_uri_params: {keyfile: /home/admin/.ssh/hv_key}
# keyed_groups:
#   - key: libvirt_tags
#     prefix: role
# groups:
#   small: libvirt_memory_mib <= 2048
'''

import re
import threading

try:
    from urllib.parse import urlsplit, urlencode
except ImportError:  # pragma: no cover - Python 2
    from urlparse import urlsplit  # noqa: F401
    from urllib import urlencode  # noqa: F401

from ansible.errors import AnsibleError
from ansible.module_utils.common.text.converters import to_native
from ansible.plugins.inventory import BaseInventoryPlugin, Cacheable, Constructable

from ansible_collections.kvmops.hypervisor.plugins.module_utils._libvirt import addresses as _addresses
from ansible_collections.kvmops.hypervisor.plugins.module_utils._libvirt import xml as lxml_util
from ansible_collections.kvmops.hypervisor.plugins.module_utils._libvirt.tags import domain_tags

try:
    import libvirt
    HAS_LIBVIRT = True
except ImportError:
    libvirt = None
    HAS_LIBVIRT = False

STATES = {0: 'nostate', 1: 'running', 2: 'blocked', 3: 'paused', 4: 'shutdown', 5: 'shutoff',
          6: 'crashed', 7: 'pmsuspended'}
# Networks whose guests the controller cannot reach directly (the hypervisor can).
BEHIND_THE_HYPERVISOR = ('nat', 'none')


def hypervisor_name(uri):
    """The host part of a libvirt URI, or 'localhost' for a local one."""
    return urlsplit(uri).hostname or 'localhost'


def jump_target(uri):
    """(user, host, port) of a remote URI's ssh hop, or None for a local/non-ssh URI."""
    parts = urlsplit(uri)
    if not parts.hostname or parts.scheme.split('+')[-1] not in ('ssh', 'libssh', 'libssh2'):
        return None
    return parts.username, parts.hostname, parts.port


def ssh_hop_args(uri, proxy_ssh_args=''):
    """ansible_ssh_common_args that reach a guest behind the hypervisor of uri."""
    target = jump_target(uri)
    if target is None:
        return None
    user, host, port = target
    if proxy_ssh_args:
        hop = 'ssh %s -W %%h:%%p %s%s%s' % (
            proxy_ssh_args, '-p %d ' % port if port else '', user + '@' if user else '', host)
        return "-o ProxyCommand='%s'" % hop
    return '-o ProxyJump=%s%s%s' % (user + '@' if user else '', host, ':%d' % port if port else '')


def network_forward_modes(conn, names):
    """{network name: forward mode ('nat', 'route', 'bridge', ..., 'none' when isolated)}."""
    modes = {}
    for name in set(n for n in names if n):
        try:
            root = lxml_util.parse(conn.networkLookupByName(name).XMLDesc(0))
        except (libvirt.libvirtError, lxml_util.etree.XMLSyntaxError):
            modes[name] = None
            continue
        forward = root.find('forward')
        modes[name] = 'none' if forward is None else forward.get('mode', 'nat')
    return modes


def collect_hypervisor(uri, sources, namespace):
    """Everything the inventory needs from one hypervisor, as plain data (cacheable)."""
    conn = None
    if 'agent' in sources:
        # libvirt answers guest-agent queries only on a read-write connection.
        try:
            conn = libvirt.open(uri)
        except libvirt.libvirtError:
            conn = None
    if conn is None:
        conn = libvirt.openReadOnly(uri)
    try:
        guests = []
        for dom in conn.listAllDomains(0):
            try:
                state = STATES.get(dom.state()[0], 'unknown')
                info = dom.info()
                nics = _addresses.domain_addresses(conn, dom, sources=tuple(sources))
                guests.append({'name': dom.name(), 'uuid': dom.UUIDString(), 'state': state,
                               'vcpus': info[3], 'memory_mib': info[1] // 1024,
                               'tags': domain_tags(dom, namespace), 'interfaces': nics})
            except libvirt.libvirtError:
                continue  # undefined while we listed: it is no longer a guest of this host
        modes = network_forward_modes(conn, [n['network'] for g in guests for n in g['interfaces']])
        for guest in guests:
            for nic in guest['interfaces']:
                nic['network_forward'] = modes.get(nic['network'])
        return guests
    finally:
        conn.close()


def with_timeout(func, timeout, *args):
    """func(*args) in a thread; raise TimeoutError when it does not end within timeout seconds
    (an unreachable ssh host can hold libvirt's connect for minutes)."""
    box = {}

    def run():
        try:
            box['result'] = func(*args)
        # Any failure (libvirtError, ssh, a bad URI) is reported by the caller.
        except Exception as exc:  # pylint: disable=broad-except
            box['error'] = exc
    thread = threading.Thread(target=run, name='libvirt_guests', daemon=True)
    thread.start()
    thread.join(timeout)
    if thread.is_alive():
        raise TimeoutError('no answer within %ss' % timeout)
    if 'error' in box:
        raise box['error']
    return box['result']


class InventoryModule(BaseInventoryPlugin, Constructable, Cacheable):

    NAME = 'kvmops.hypervisor.libvirt_guests'

    def verify_file(self, path):
        return super(InventoryModule, self).verify_file(path) and path.endswith(
            ('libvirt_guests.yml', 'libvirt_guests.yaml'))

    def parse(self, inventory, loader, path, cache=True):
        super(InventoryModule, self).parse(inventory, loader, path, cache=cache)
        self._read_config_data(path)
        if not HAS_LIBVIRT:
            raise AnsibleError('The kvmops.hypervisor.libvirt_guests inventory needs libvirt-python on '
                               'the controller (pip install libvirt-python, or python3-libvirt).')
        libvirt.registerErrorHandler(lambda ctx, err: None, None)
        hypervisors = self._hypervisors()
        if not hypervisors:
            raise AnsibleError('libvirt_guests: no hypervisors - set uris, or hypervisor_group to a '
                               'group of an inventory source given before %s' % path)

        cache_key = self.get_cache_key(path)
        use_cache = self.get_option('cache') and cache
        update_cache = self.get_option('cache') and not cache
        data = None
        if use_cache:
            try:
                data = self._cache[cache_key]
            except KeyError:
                update_cache = True
        if data is None:
            data = self._collect(hypervisors)
        if update_cache:
            self._cache[cache_key] = data
        self._populate(data)

    def _hypervisors(self):
        """[(name, uri)] from the uris option and the hypervisor group, without duplicates."""
        out = []
        for entry in self.get_option('uris') or []:
            if isinstance(entry, dict):
                if not entry.get('uri'):
                    raise AnsibleError('libvirt_guests: an entry of uris needs a uri: %r' % (entry,))
                out.append((entry.get('name') or hypervisor_name(entry['uri']), entry['uri']))
            else:
                out.append((hypervisor_name(to_native(entry)), to_native(entry)))
        group = self.get_option('hypervisor_group')
        if group:
            if group not in self.inventory.groups:
                self.display.warning('libvirt_guests: the inventory has no group %s (give its '
                                     'inventory source before this one)' % group)
            else:
                params = self.get_option('hypervisor_uri_params') or {}
                for host in self.inventory.groups[group].get_hosts():
                    out.append((host.name, self._uri_of(host, params)))
        seen = set()
        unique = []
        for name, uri in out:
            if uri not in seen:
                seen.add(uri)
                unique.append((name, uri))
        return unique

    @staticmethod
    def _uri_of(host, params):
        hv = host.get_vars()
        if hv.get('ansible_connection') == 'local':
            return 'qemu:///system'
        address = hv.get('ansible_host', host.name)
        if ':' in address:
            address = '[%s]' % address
        user = hv.get('ansible_user')
        port = hv.get('ansible_port')
        uri = 'qemu+ssh://%s%s%s/system' % (user + '@' if user else '', address,
                                            ':%s' % port if port and int(port) != 22 else '')
        if params:
            uri += '?' + urlencode(sorted(params.items()), safe='/')
        return uri

    def _collect(self, hypervisors):
        sources = self.get_option('address_sources')
        namespace = self.get_option('tag_namespace')
        timeout = self.get_option('connect_timeout')
        data = []
        for name, uri in hypervisors:
            try:
                guests = with_timeout(collect_hypervisor, timeout, uri, sources, namespace)
            # One hypervisor down is a warning, not the end of the inventory.
            except Exception as exc:  # pylint: disable=broad-except
                self.display.warning('libvirt_guests: hypervisor %s (%s) is not listed: %s. Its guests '
                                     'are missing from the inventory; the others are listed.'
                                     % (name, uri, to_native(exc).strip() or type(exc).__name__))
                continue
            data.append({'name': name, 'uri': uri, 'guests': guests})
        return data

    def _populate(self, data):
        fmt = self.get_option('hostname_format')
        states = self.get_option('states') or []
        family = self.get_option('address_family')
        strict = self.get_option('strict')
        pattern = re.compile(self.get_option('name_pattern') or '')
        taken = {}
        for hv in data:
            for guest in hv['guests']:
                if (states and guest['state'] not in states) or not pattern.search(guest['name']):
                    continue
                fields = {'name': guest['name'], 'hypervisor': hv['name'], 'uuid': guest['uuid']}
                host = fmt.format(**fields)
                if host in taken and taken[host] != guest['uuid']:
                    other = '{name}@{hypervisor}'.format(**fields)
                    self.display.warning('libvirt_guests: %s is also a guest of another hypervisor; '
                                         'listed as %s' % (host, other))
                    host = other
                taken[host] = guest['uuid']
                self._add_guest(host, hv, guest, family)
                variables = self.inventory.get_host(host).get_vars()
                self._set_composite_vars(self.get_option('compose'), variables, host, strict=strict)
                self._add_host_to_composed_groups(self.get_option('groups'), variables, host, strict=strict)
                self._add_host_to_keyed_groups(self.get_option('keyed_groups'), variables, host, strict=strict)

    def _add_guest(self, host, hv, guest, family):
        inv = self.inventory
        inv.add_host(host)
        for group in (['libvirt_hypervisor_' + hv['name'], 'libvirt_state_' + guest['state']]
                      + ['libvirt_tag_' + t for t in guest['tags']]):
            group = self._sanitize_group_name(group)
            inv.add_group(group)
            inv.add_child(group, host)
        variables = {
            'libvirt_uri': hv['uri'], 'libvirt_hypervisor': hv['name'], 'libvirt_name': guest['name'],
            'libvirt_uuid': guest['uuid'], 'libvirt_state': guest['state'], 'libvirt_vcpus': guest['vcpus'],
            'libvirt_memory_mib': guest['memory_mib'], 'libvirt_tags': guest['tags'],
            'libvirt_interfaces': guest['interfaces'],
        }
        address = _addresses.best_address(guest['interfaces'], family)
        if address:
            variables['ansible_host'] = address
            nic = next(n for n in guest['interfaces'] if any(a['address'] == address for a in n['addresses']))
            if self.get_option('proxy_jump') and nic.get('network_forward') in BEHIND_THE_HYPERVISOR:
                hop = ssh_hop_args(hv['uri'], self.get_option('proxy_ssh_args'))
                if hop:
                    variables['ansible_ssh_common_args'] = hop
        for key, value in variables.items():
            inv.set_variable(host, key, value)
