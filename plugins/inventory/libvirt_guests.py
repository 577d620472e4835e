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
  - Templates (guests marked with C(template=true) of M(kvmops.hypervisor.virt_install_domain)
    or M(kvmops.hypervisor.virt_install_domains)) are in the group C(libvirt_templates) and have
    C(libvirt_template=true); a guest made with C(clone_from) has C(libvirt_clone_of) (its
    source's name and UUID and the clone mode). Both come from the domain XML that is read for
    the NICs anyway (its metadata) - no extra libvirt call per guest.
  - A guest behind its hypervisor (on a NAT or isolated libvirt network) of a remote hypervisor
    gets C(ansible_ssh_common_args) with a C(ProxyJump) (or, with O(proxy_ssh_args), a
    C(ProxyCommand)) through that hypervisor, so Ansible reaches it from the controller.
  - A hypervisor that cannot be reached is reported as a warning and left out; the guests of
    the others are listed. Hypervisors are listed in parallel (16 at a time), each within
    O(connect_timeout) seconds; one that accepts the connection and never answers costs that
    long, not the whole inventory.
  - With caching on, a hypervisor whose listing failed is never cached as one without guests -
    it is asked again on the next run - and its last good listing, if the cache has one, is
    served with a warning on every run that serves it.
  - Everything that comes from libvirt or a guest (names, tags, agent answers, addresses) is
    data, never a template - host variables are marked unsafe, host names keep only
    C([A-Za-z0-9._-]) and group names (also those of O(keyed_groups) and O(groups)) only
    C([A-Za-z0-9_]). On ansible-core before 2.19 a C({{), C({%) or C({#) in guest data is broken
    up (C({_{)) with a warning, because that version loses the unsafe mark when a template
    joins a host variable with other text.
  - An address from the guest agent or ARP is used only when it lies inside the network the NIC
    is attached to (the libvirt network's C(<ip>) ranges, or the addresses of the host bridge or
    device) and is not the hypervisor's own address there; others are dropped with a warning
    (they are listed under C(rejected) of the NIC), so a guest cannot steer C(ansible_host).
  - Usable as an AWX/AAP inventory source (a file ending in C(libvirt_guests.yml) in a project)
    when the execution environment has libvirt-python (meta/execution-environment.yml).
requirements:
  - libvirt-python and lxml on the controller, in the Python that runs Ansible
    (C(pip install libvirt-python lxml), or the distribution's python3-libvirt and python3-lxml)
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
    description:
      - Only guests whose name matches this regular expression (Python C(re.search)); empty lists all.
      - A guest outside O(name_pattern) and O(states) is not asked anything (no address, agent or tag query).
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
      - They are split like a shell command line and every word is quoted into the C(ProxyCommand)
        (no shell syntax is passed on); the hop's user and host come from the hypervisor's URI and
        must be plain names.
    type: str
    default: ''
  connect_timeout:
    description:
      - Seconds to wait for one hypervisor's connection and listing before it is reported as unreachable.
      - Hypervisors are listed in parallel, so a hypervisor that hangs costs this long once,
        however many others there are.
    type: int
    default: 30
notes:
  - The guests' variables are C(libvirt_uri), C(libvirt_hypervisor), C(libvirt_name), C(libvirt_uuid),
    C(libvirt_state), C(libvirt_vcpus), C(libvirt_memory_mib), C(libvirt_tags), C(libvirt_interfaces)
    (per NIC - mac, network, network_forward, addresses with their source), C(libvirt_template)
    (true for a template), for a clone C(libvirt_clone_of) (C(source), C(source_uuid), C(mode) - V(full)
    or V(linked)) and, when an address was found, C(ansible_host).
  - community.libvirt's libvirt inventory plugin needs the guest agent for addresses and stops at
    the first hypervisor it cannot reach; this one does neither.
  - The cache is input as well - only entries in the shape this version writes are read, and a
    cache directory that other users can write (such as one made under C(/tmp)) is not used.
    Keep O(cache_connection) in a directory of your own.
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
# a directory only you can write (never /tmp: another user could write the entries it reads)
cache_connection: ~/.cache/kvmops/libvirt_guests
cache_timeout: 300

# inventory/libvirt_guests.yml - the guests of the hypervisors of an inventory given first:
#   ansible-inventory -i inventories/guide -i inventories/guide/libvirt_guests.yml --graph
# plugin: kvmops.hypervisor.libvirt_guests
# hypervisor_group: hypervisors
# hypervisor_uri_params: {keyfile: /home/admin/.ssh/hv_key}
# keyed_groups:
#   - key: libvirt_tags
#     prefix: role
#   - key: libvirt_clone_of.source     # clones_of_<template>; templates are in libvirt_templates
#     prefix: clones_of
# groups:
#   small: libvirt_memory_mib <= 2048
'''

import datetime
import os
import re
import shlex
import stat
import sys
import threading
import time

try:
    from urllib.parse import urlsplit, urlencode
except ImportError:  # pragma: no cover - Python 2
    from urlparse import urlsplit  # noqa: F401
    from urllib import urlencode  # noqa: F401

from ansible.errors import AnsibleError
from ansible.module_utils.common.text.converters import to_native
from ansible.plugins.inventory import BaseInventoryPlugin, Cacheable, Constructable
from ansible.release import __version__ as ANSIBLE_CORE_VERSION
from ansible.utils.unsafe_proxy import wrap_var

from ansible_collections.kvmops.hypervisor.plugins.module_utils._libvirt import addresses as _addr
from ansible_collections.kvmops.hypervisor.plugins.module_utils._libvirt import agent as _agent
from ansible_collections.kvmops.hypervisor.plugins.module_utils._libvirt import xml as lxml_util
from ansible_collections.kvmops.hypervisor.plugins.module_utils._libvirt.tags import domain_tags, template_and_clone

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
# The shape of the cache entry this version writes (an older or foreign entry is listed afresh).
CACHE_FORMAT = 2
# At most this many hypervisors are listed at once.
WORKERS = 16
# Inventory host names and group names are made of these characters only: a guest's name or
# tag is data, and a name with template, shell or ssh syntax in it must not become one.
_UNSAFE_HOST_CHARS = re.compile(r'[^A-Za-z0-9._-]')
_UNSAFE_GROUP_CHARS = re.compile(r'[^A-Za-z0-9_]')
# What an ssh hop's user and host may be (no option, no shell syntax).
_SSH_USER = re.compile(r'^[A-Za-z0-9_][A-Za-z0-9._-]{0,63}$')
_SSH_HOST = re.compile(r'^[A-Za-z0-9](?:[A-Za-z0-9.-]{0,252})$')


# Where a Jinja construct starts (ansible's default delimiters; a string without one is never
# templated, and the '#jinja2:' override header only acts on a string that is).
_JINJA_STARTS = ('{{', '{%', '{#')


def _core_version(text):
    try:
        return tuple(int(p) for p in text.split('.')[:2])
    except ValueError:
        return (2, 19)


# ansible-core before 2.19 marks data as unsafe by its type, and that mark is lost when a
# template joins a hostvars value with other text (`hostvars[h].libvirt_name ~ 'x'`) and the
# result is templated again (a set_fact, then any use): measured with 2.17.14, see
# tests/integration/test_hostile_inventory.py. 2.19 trusts no string an inventory plugin gives.
DEFANG = _core_version(ANSIBLE_CORE_VERSION) < (2, 19)


def defang(value):
    """value (str, or lists/dicts of them) with every Jinja start ('{{', '{%', '{#') broken up
    by an underscore ('{_{'): data that no template engine reads as a template, whatever later
    loses its unsafe mark. Other strings are returned unchanged."""
    if isinstance(value, str):
        while any(start in value for start in _JINJA_STARTS):
            for start in _JINJA_STARTS:
                value = value.replace(start, start[0] + '_' + start[1])
        return value
    if isinstance(value, list):
        return [defang(v) for v in value]
    if isinstance(value, dict):
        return dict((defang(k), defang(v)) for k, v in value.items())
    return value


def missing_dependency_message(python=None):
    """None when libvirt-python and lxml are importable, else what to install, and where."""
    missing = [name for name, ok in (('libvirt-python', HAS_LIBVIRT), ('lxml', lxml_util.HAS_LXML)) if not ok]
    if not missing:
        return None
    python = python or sys.executable
    return ('The kvmops.hypervisor.libvirt_guests inventory needs %s on the controller, importable by '
            'the Python that runs Ansible (%s): install %s into it (`%s -m pip install %s`; libvirt-python '
            'builds against libvirt-dev, pkg-config and gcc), or on Debian/Ubuntu with a system Python '
            '`apt install %s`, on RHEL/Fedora `dnf install %s`. An AWX execution environment gets them '
            'from meta/execution-environment.yml.'
            % (' and '.join(missing), python, 'them' if len(missing) > 1 else 'it', python, ' '.join(missing),
               ' '.join({'libvirt-python': 'python3-libvirt', 'lxml': 'python3-lxml'}[m] for m in missing),
               ' '.join({'libvirt-python': 'python3-libvirt', 'lxml': 'python3-lxml'}[m] for m in missing)))


def shown(value, limit=80):
    """A guest-chosen string as it may appear in a message: printable, escaped, cut."""
    text = to_native(value)
    text = text.encode('unicode_escape').decode('ascii') if not text.isprintable() else text
    return text if len(text) <= limit else text[:limit] + '...'


def safe_host_part(value):
    """value with every character outside [A-Za-z0-9._-] replaced by '_' (never empty)."""
    return _UNSAFE_HOST_CHARS.sub('_', to_native(value)) or '_'


def safe_group_name(name):
    """A group name of [A-Za-z0-9_] only, whatever TRANSFORM_INVALID_GROUP_CHARS says: the parts
    come from guests (tags, states) and end up in group_names, which ansible-core < 2.19
    templates."""
    name = _UNSAFE_GROUP_CHARS.sub('_', to_native(name))
    return name if name and not name[0].isdigit() else '_' + name


def hypervisor_name(uri):
    """The host part of a libvirt URI, or 'localhost' for a local one."""
    return urlsplit(uri).hostname or 'localhost'


def jump_target(uri):
    """(user, host, port) of a remote URI's ssh hop, or None for a local/non-ssh URI.

    Raises ValueError when the user, host or port could be read as anything but a name."""
    parts = urlsplit(uri)
    if not parts.hostname or parts.scheme.split('+')[-1] not in ('ssh', 'libssh', 'libssh2'):
        return None
    user, host, port = parts.username, parts.hostname, parts.port   # .port raises ValueError
    if user is not None and not _SSH_USER.match(user):
        raise ValueError('the ssh user %s of %s is not a plain user name' % (shown(user), shown(uri)))
    if _addr.parse_address(host) is None and not _SSH_HOST.match(host):
        raise ValueError('the ssh host %s of %s is not a host name or address' % (shown(host), shown(uri)))
    return user, host, port


def ssh_hop_args(uri, proxy_ssh_args=''):
    """ansible_ssh_common_args that reach a guest behind the hypervisor of uri (None when the
    URI needs no hop). Every part is a checked name or a quoted word: ansible splits the value
    with shlex and ssh runs a ProxyCommand through a shell."""
    target = jump_target(uri)
    if target is None:
        return None
    user, host, port = target
    if proxy_ssh_args:
        words = ['ssh'] + [shlex.quote(w) for w in shlex.split(proxy_ssh_args)] + ['-W', '%h:%p']
        if port:
            words += ['-p', '%d' % port]
        words.append('%s%s' % (user + '@' if user else '', host))
        return '-o ProxyCommand=%s' % shlex.quote(' '.join(words))
    if ':' in host:
        host = '[%s]' % host
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


def selected(selection, name, state=None):
    """Whether a guest is in the selection {'name_pattern', 'states'} (the options of the same
    names; empty selects all). state None: only the name is known yet."""
    pattern = selection.get('name_pattern') or ''
    if pattern and not re.search(pattern, name):
        return False
    states = selection.get('states') or []
    return state is None or not states or state in states


def collect_hypervisor(uri, sources, namespace, selection=None):
    """Everything the inventory needs from one hypervisor, as plain data (cacheable).

    selection: {'name_pattern', 'states'}: only those guests are listed, and only their
    addresses, tags and agents asked for (one inventory of a few guests on a big hypervisor
    costs those guests, and a guest outside it is never asked anything).

    The guests' addresses are asked for all at once (at most WORKERS at a time), and their
    agents on a connection of their own, each for at most AGENT_TIMEOUT seconds: a guest runs
    its agent, and one that never answers costs the listing that wait once, not once per such
    guest, while its call, stuck in libvirtd, never holds up the main connection."""
    conn = agent_conn = None
    if 'agent' in sources:
        # libvirt answers guest-agent queries only on a read-write connection.
        try:
            conn = libvirt.open(uri)
            agent_conn = libvirt.open(uri)
        except libvirt.libvirtError:
            if conn is not None:
                conn.close()
            conn = agent_conn = None
    if conn is None:
        conn = libvirt.openReadOnly(uri)
    try:
        guests = []
        doms = []
        ranges = {}
        selection = selection or {}
        for dom in conn.listAllDomains(0):
            try:
                if not selected(selection, dom.name()):   # the name is known without a call
                    continue
                state, _reason = dom.state()
                state = STATES.get(state, 'unknown')
                if not selected(selection, dom.name(), state):
                    continue
                info = dom.info()
                guests.append({'name': dom.name(), 'uuid': dom.UUIDString(), 'state': state,
                               'vcpus': info[3], 'memory_mib': info[1] // 1024,
                               'tags': domain_tags(dom, namespace), 'interfaces': [],
                               'template': False, 'clone_of': None})
                doms.append(dom)
            except libvirt.libvirtError:
                continue  # undefined while we listed: it is no longer a guest of this host

        def addresses(dom, guest):
            # The XML that the addresses are read from (the NICs) says too whether the guest is
            # a template or a clone (its <metadata>): one XMLDesc per guest, as before. Set on
            # the guest at once, so a guest whose address query hangs keeps it.
            root = lxml_util.parse(dom.XMLDesc(0))
            guest['template'], guest['clone_of'] = template_and_clone(root)
            agent_dom = None
            if agent_conn is not None:
                try:
                    agent_dom = agent_conn.lookupByUUIDString(dom.UUIDString())
                except libvirt.libvirtError:
                    agent_dom = None
            return _addr.domain_addresses(conn, dom, tuple(sources), ranges, agent_dom=agent_dom,
                                          domain_xml=root)

        outcomes = run_all([(lambda dom=dom, guest=guest: addresses(dom, guest))
                            for dom, guest in zip(doms, guests)],
                           _agent.AGENT_TIMEOUT + 20) if doms else {}
        listed = []
        for index, guest in enumerate(guests):
            kind, value = outcomes[index]
            if kind == 'ok':
                guest['interfaces'] = value
                listed.append(guest)
            elif isinstance(value, TimeoutError):
                listed.append(guest)    # no addresses: libvirt did not answer for this guest
            # a libvirtError: undefined while we listed
        guests = listed
        modes = network_forward_modes(conn, [n['network'] for g in guests for n in g['interfaces']])
        for guest in guests:
            for nic in guest['interfaces']:
                nic['network_forward'] = modes.get(nic['network'])
        return guests
    finally:
        conn.close()
        if agent_conn is not None:
            agent_conn.close()


def run_all(jobs, timeout, workers=WORKERS, clock=time.monotonic):
    """Run every job (a callable) in daemon threads, at most `workers` at once, each within
    `timeout` seconds of its own start; {index: ('ok', result) | ('error', exception)}.

    A job that does not end in time (a hypervisor that accepts the connection and never
    answers holds libvirt's call for ever) is reported as a TimeoutError and its thread is
    abandoned (a fresh worker takes its place), so it costs its own timeout, not everyone's."""
    results = {}
    lock = threading.Condition()
    pending = list(range(len(jobs)))
    started = {}

    def worker():
        while True:
            with lock:
                if not pending:
                    return
                index = pending.pop(0)
                started[index] = clock()
                lock.notify_all()
            try:
                outcome = ('ok', jobs[index]())
            # Any failure (libvirtError, ssh, a bad URI) is reported by the caller.
            except Exception as exc:  # pylint: disable=broad-except
                outcome = ('error', exc)
            with lock:
                if index not in results:
                    results[index] = outcome
                lock.notify_all()
                if index in abandoned:
                    return  # a replacement worker was started in its place

    abandoned = set()

    def spawn():
        threading.Thread(target=worker, name='libvirt_guests', daemon=True).start()

    for _worker in range(min(workers, len(jobs))):
        spawn()
    with lock:
        while len(results) < len(jobs):
            now = clock()
            waits = []
            for index, begun in list(started.items()):
                if index in results:
                    continue
                if now - begun >= timeout:
                    results[index] = ('error', TimeoutError('no answer within %ss' % timeout))
                    abandoned.add(index)
                    spawn()
                else:
                    waits.append(begun + timeout - now)
            if len(results) < len(jobs):
                lock.wait(min(waits + [1.0]))
    return results


def _is_str(value):
    return isinstance(value, str)


def _valid_guest(guest):
    """True when a cached guest has the shape collect_hypervisor() writes."""
    try:
        return (all(_is_str(guest[k]) for k in ('name', 'uuid', 'state'))
                and all(isinstance(guest[k], int) for k in ('vcpus', 'memory_mib'))
                and isinstance(guest['tags'], list) and all(_is_str(t) for t in guest['tags'])
                and isinstance(guest['interfaces'], list)
                and all(isinstance(n, dict) and isinstance(n.get('addresses', []), list)
                        and all(isinstance(a, dict) and _is_str(a.get('address')) and _is_str(a.get('family'))
                                for a in n.get('addresses', []))
                        for n in guest['interfaces'])
                and isinstance(guest.get('template', False), bool)
                and _valid_clone_record(guest.get('clone_of')))
    except (KeyError, TypeError):
        return False


def _valid_clone_record(rec):
    """None, or {'source', 'source_uuid', 'mode'} of strings (or None): a clone's record."""
    return rec is None or (isinstance(rec, dict) and set(rec) == {'source', 'source_uuid', 'mode'}
                           and all(v is None or _is_str(v) for v in rec.values()))


def valid_listing(record):
    """True when a cached hypervisor record is a listing we wrote: {'guests': [...], 'listed'}."""
    return (isinstance(record, dict) and isinstance(record.get('guests'), list)
            and all(isinstance(g, dict) and _valid_guest(g) for g in record['guests']))


def _now():
    return datetime.datetime.now(datetime.timezone.utc).strftime('%Y-%m-%d %H:%M:%S UTC')


class InventoryModule(BaseInventoryPlugin, Constructable, Cacheable):

    NAME = 'kvmops.hypervisor.libvirt_guests'

    # Groups that keyed_groups and groups build from guest data are sanitised strictly too.
    _sanitize_group_name = staticmethod(safe_group_name)

    def verify_file(self, path):
        return super(InventoryModule, self).verify_file(path) and path.endswith(
            ('libvirt_guests.yml', 'libvirt_guests.yaml'))

    def parse(self, inventory, loader, path, cache=True):
        super(InventoryModule, self).parse(inventory, loader, path, cache=cache)
        self._read_config_data(path)
        missing = missing_dependency_message()
        if missing:
            raise AnsibleError(missing)
        libvirt.registerErrorHandler(lambda ctx, err: None, None)
        hypervisors = self._hypervisors()
        if not hypervisors:
            raise AnsibleError('libvirt_guests: no hypervisors - set uris, or hypervisor_group to a '
                               'group of an inventory source given before %s' % path)

        caching = self.get_option('cache') and self._cache_is_private()
        cache_key = self.get_cache_key(path) if caching else None
        previous = self._read_cache(cache_key) if caching else {}
        # A hit serves every listing from the cache; a hypervisor whose listing failed was never
        # cached as a listing and is asked again. A refresh (cache=False, --flush-cache) asks all.
        # A listing of other guests (name_pattern or states changed since) is not served.
        selection = self._selection()
        served = dict((uri, rec) for uri, rec in previous.items()
                      if valid_listing(rec) and rec.get('selection') in (None, selection)) \
            if (caching and cache) else {}
        data, records = self._collect(hypervisors, served, previous, selection)
        if caching and records != previous:
            self._cache[cache_key] = {'format': CACHE_FORMAT, 'hypervisors': records}
        self._populate(data)

    def _selection(self):
        """Which guests are listed: plain values of name_pattern and states (as cached)."""
        pattern = str(self.get_option('name_pattern') or '')
        try:
            re.compile(pattern)
        except re.error as exc:
            raise AnsibleError('libvirt_guests: name_pattern %s is not a regular expression (%s); '
                               'it is matched with Python re.search, e.g. ^web- or -db[0-9]+$.'
                               % (shown(pattern), exc))
        return {'name_pattern': pattern, 'states': [str(x) for x in self.get_option('states') or []]}

    def _cache_is_private(self):
        """False (with a warning) when the cache directory of a file cache can be written by
        other users: its entries would be read as this inventory (addresses, ssh hops)."""
        try:
            directory = self.get_option('cache_connection')
            plugin = self.get_option('cache_plugin') or ''
        except KeyError:
            directory, plugin = None, ''
        # The file caches keep entries in that directory (redis & co. take a host:port).
        if not directory or str(plugin).rsplit('.', maxsplit=1)[-1] not in ('jsonfile', 'yaml', 'pickle'):
            return True
        directory = os.path.expanduser(os.path.expandvars(directory))
        if not os.path.isdir(directory):
            parent = os.path.dirname(os.path.abspath(directory))
            try:
                mode = os.stat(parent).st_mode
            except OSError:
                return True
            if mode & stat.S_IWOTH and mode & stat.S_ISVTX:
                # /tmp: another user can make the directory first and own it
                self.display.warning(
                    'libvirt_guests: cache_connection %s would be made in %s, where any user can '
                    'create it first and write entries this inventory reads; the cache is not used. '
                    'Set cache_connection to a directory of your own (e.g. ~/.cache/kvmops/libvirt_guests).'
                    % (directory, parent))
                return False
            return True
        info = os.stat(directory)
        if info.st_uid != os.geteuid() or info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
            self.display.warning(
                'libvirt_guests: the cache directory %s is not owned by this user or can be written by '
                'others (mode %o); the cache is not used. Use a directory only you can write '
                '(chmod go-w, or e.g. ~/.cache/kvmops/libvirt_guests).' % (directory, stat.S_IMODE(info.st_mode)))
            return False
        return True

    def _read_cache(self, cache_key):
        """{uri: record} from this inventory's cache entry ({} when there is none or it is not
        an entry this version wrote)."""
        try:
            entry = self._cache[cache_key]
        except KeyError:
            return {}
        # A cache entry is input: anything but the shape we write is ignored (listed afresh).
        if not isinstance(entry, dict) or entry.get('format') != CACHE_FORMAT \
                or not isinstance(entry.get('hypervisors'), dict):
            self.display.warning('libvirt_guests: the cache entry %s is not one this version wrote; '
                                 'the hypervisors are listed afresh.' % cache_key)
            return {}
        return dict((uri, rec) for uri, rec in entry['hypervisors'].items() if isinstance(rec, dict))

    def _hypervisors(self):
        """[(name, uri)] from the uris option and the hypervisor group, without duplicates."""
        out = []
        for entry in self.get_option('uris') or []:
            if isinstance(entry, dict):
                if not entry.get('uri'):
                    raise AnsibleError('libvirt_guests: an entry of uris needs a uri: %r' % (entry,))
                out.append((entry.get('name') or hypervisor_name(entry['uri']), to_native(entry['uri'])))
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
                unique.append((to_native(name), uri))
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

    def _collect(self, hypervisors, served, previous, selection):
        """(data for _populate, cache records {uri: record}).

        served: {uri: listing record} answered from the cache; the others are listed now, at
        once (at most WORKERS at a time), each within connect_timeout. A failed listing is
        recorded as a failure, never as a hypervisor without guests; its last good listing
        (from the cache) is served with a warning on every run that serves it. selection: which
        guests are listed (_selection())."""
        # Plain str: option values carry ansible-core 2.19's tags (origin, trust), which would be
        # copied into every address entry and make the cache entry ~10x slower to read back.
        sources = [str(x) for x in self.get_option('address_sources')]
        namespace = str(self.get_option('tag_namespace'))
        timeout = self.get_option('connect_timeout')
        todo = [(name, uri) for name, uri in hypervisors if uri not in served]
        jobs = [(lambda uri=uri: collect_hypervisor(uri, sources, namespace, selection)) for _name, uri in todo]
        outcomes = run_all(jobs, timeout) if jobs else {}
        listed = dict((uri, outcomes[i]) for i, (_name, uri) in enumerate(todo))
        data = []
        records = {}
        for name, uri in hypervisors:
            if uri in served:
                records[uri] = served[uri]
                data.append({'name': name, 'uri': uri, 'guests': served[uri]['guests']})
                continue
            kind, value = listed[uri]
            if kind == 'ok':
                records[uri] = {'guests': value, 'listed': _now(), 'selection': selection}
                data.append({'name': name, 'uri': uri, 'guests': value})
                for guest in value:
                    for line in _addr.rejected_messages(guest['interfaces']):
                        self.display.warning('libvirt_guests: guest %s of %s: address %s dropped; '
                                             'the guest reported it, and a guest must not choose where '
                                             'Ansible connects.' % (shown(guest['name']), name, shown(line, 200)))
                continue
            why = to_native(value).strip() or type(value).__name__
            old = previous.get(uri) or {}
            last_good = old if valid_listing(old) else old.get('last_good') if valid_listing(old.get('last_good')) else None
            records[uri] = {'failed': _now(), 'error': why, 'last_good': last_good}
            if last_good is not None:
                self.display.warning('libvirt_guests: hypervisor %s (%s) could not be listed: %s. Its guests are '
                                     'served from the last good listing, of %s (cached), and may be out of date.'
                                     % (name, uri, why, last_good.get('listed', 'an earlier run')))
                data.append({'name': name, 'uri': uri, 'guests': last_good['guests']})
            else:
                self.display.warning('libvirt_guests: hypervisor %s (%s) is not listed: %s. Its guests '
                                     'are missing from the inventory; the others are listed.' % (name, uri, why))
        return data, records

    def _populate(self, data):
        fmt = self.get_option('hostname_format')
        states = self.get_option('states') or []
        family = self.get_option('address_family')
        strict = self.get_option('strict')
        pattern = re.compile(self.get_option('name_pattern') or '')
        compose = self.get_option('compose')
        groups = self.get_option('groups')
        keyed = self.get_option('keyed_groups')
        taken = {}
        for hv in data:
            for guest in hv['guests']:
                if (states and guest['state'] not in states) or not pattern.search(guest['name']):
                    continue
                fields = {'name': safe_host_part(guest['name']), 'hypervisor': safe_host_part(hv['name']),
                          'uuid': safe_host_part(guest['uuid'])}
                if fields['name'] != guest['name']:
                    self.display.warning('libvirt_guests: the guest name %s (of %s) has characters an inventory '
                                         'host name must not have; listed as %s (libvirt_name keeps the name).'
                                         % (shown(guest['name']), hv['name'], fields['name']))
                host = fmt.format(**fields)
                if host in taken and taken[host] != guest['uuid']:
                    other = '{name}@{hypervisor}'.format(**fields)
                    self.display.warning('libvirt_guests: %s is also a guest of another hypervisor; '
                                         'listed as %s' % (host, other))
                    host = other
                taken[host] = guest['uuid']
                self._add_guest(host, hv, guest, family)
                if compose or groups or keyed:
                    variables = self.inventory.get_host(host).get_vars()
                    self._set_composite_vars(compose, variables, host, strict=strict)
                    self._add_host_to_composed_groups(groups, variables, host, strict=strict)
                    self._add_host_to_keyed_groups(keyed, variables, host, strict=strict)

    def _add_guest(self, host, hv, guest, family):
        inv = self.inventory
        inv.add_host(host)
        # A listing cached by an earlier version has no template/clone_of: not a template.
        template = bool(guest.get('template'))
        for group in (['libvirt_hypervisor_' + hv['name'], 'libvirt_state_' + guest['state']]
                      + ['libvirt_tag_' + t for t in guest['tags']]
                      + (['libvirt_templates'] if template else [])):
            group = inv.add_group(safe_group_name(group))
            inv.add_child(group, host)
        variables = {
            'libvirt_uri': hv['uri'], 'libvirt_hypervisor': hv['name'], 'libvirt_name': guest['name'],
            'libvirt_uuid': guest['uuid'], 'libvirt_state': guest['state'], 'libvirt_vcpus': guest['vcpus'],
            'libvirt_memory_mib': guest['memory_mib'], 'libvirt_tags': guest['tags'],
            'libvirt_interfaces': guest['interfaces'], 'libvirt_template': template,
        }
        if guest.get('clone_of'):
            variables['libvirt_clone_of'] = dict(guest['clone_of'])
        # best_address() only returns what parses as an IP address (a cache entry is input too).
        address = _addr.best_address(guest['interfaces'], family)
        if address:
            variables['ansible_host'] = address
            nic = next(n for n in guest['interfaces'] if any(a['address'] == address for a in n['addresses']))
            if self.get_option('proxy_jump') and nic.get('network_forward') in BEHIND_THE_HYPERVISOR:
                try:
                    hop = ssh_hop_args(hv['uri'], self.get_option('proxy_ssh_args'))
                except ValueError as exc:
                    self.display.warning('libvirt_guests: no ssh hop for %s: %s' % (host, exc))
                    hop = None
                if hop:
                    variables['ansible_ssh_common_args'] = hop
        # Everything here came from libvirt or the guest: data, never a template (ansible-core
        # 2.17/2.18 render an unmarked "{{ ... }}" in a host variable; 2.19 trusts nothing an
        # inventory plugin gives unless it says so). Before 2.19 Jinja starts are broken up too
        # (DEFANG): the unsafe mark does not survive every template.
        if DEFANG and defang(variables) != variables:
            self.display.warning('libvirt_guests: guest %s carries template syntax ({{, {%% or {#) in its name, '
                                 'tags or agent answers; with ansible-core %s it is listed with those broken up '
                                 "('{_{'), as data that is never templated (ansible-core 2.19 keeps it verbatim)."
                                 % (host, ANSIBLE_CORE_VERSION))
            variables = defang(variables)
        for key, value in variables.items():
            inv.set_variable(host, key, wrap_var(value))
