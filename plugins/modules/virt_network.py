#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: kvmops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r'''
---
module: virt_network
short_description: Declarative libvirt networks that follow their options
version_added: 1.0.0
description:
  - Defines, updates, starts, stops and removes a libvirt virtual network (NAT, routed, open,
    isolated, a host bridge, or macvtap on a host NIC) from a few options.
  - An existing network is compared with the options after libvirt's normalisation, and only
    what the options ask for is compared; everything else in its definition (UUID, MAC, NAT
    port ranges, port groups, DNS forwarders) is kept. Options left unset are not managed.
  - Every change goes into the persistent definition. On a running network, DHCP ranges, static
    DHCP hosts and DNS hosts are also changed live (C(virsh net-update)); other changes (forward
    mode, bridge, addresses, domain, MTU) take effect when the network restarts, which the
    module does only with O(restart=true) and otherwise reports as RV(restart_required).
  - A subnet that overlaps another active libvirt network or a route of the host is refused
    before anything is changed.
author:
  - kvmops team (@kvmops)
extends_documentation_fragment:
  - kvmops.hypervisor.libvirt
  - kvmops.hypervisor.attributes
  - kvmops.hypervisor.attributes.actiongroup_kvm
  - kvmops.hypervisor.attributes.idempotent
attributes:
  check_mode:
    support: full
    details: Check mode defines, updates, starts and stops nothing; it reports what would change.
  diff_mode:
    support: full
    details: Shows the persistent network XML before and after.
  idempotent:
    support: full
options:
  name:
    description: Name of the libvirt network.
    type: str
    required: true
  state:
    description:
      - V(active) defines or updates the network and starts it.
      - V(inactive) defines or updates it and stops it.
      - V(present) defines or updates it and leaves it running or stopped as it is.
      - V(absent) stops and undefines it. Guests attached to it lose their link.
    type: str
    choices: [active, inactive, present, absent]
    default: active
  forward:
    description:
      - How guests reach the outside. V(nat) (libvirt's default network), V(route) (routed, no
        NAT), V(open) (routed, libvirt adds no firewall rules), V(isolated) (guests and host only),
        V(bridge) (guests join the existing host bridge O(bridge); libvirt runs no DHCP there),
        V(macvtap) (guests share the host NIC O(forward_interface) through macvtap).
      - A new network without it is isolated.
    type: str
    choices: [nat, route, open, isolated, bridge, macvtap]
  forward_interface:
    description:
      - For V(nat) and V(route) the host interface traffic leaves through (unset - any);
        for V(macvtap) the host NIC the guests share (required).
    type: str
  bridge:
    description:
      - Name of the bridge device (at most 15 characters). For V(bridge) forwarding the existing
        host bridge (required); otherwise the bridge libvirt creates (unset on a new network -
        libvirt picks virbrN).
    type: str
  domain:
    description: DNS domain of the network's dnsmasq (C(<domain name=...>)), e.g. V(lab.example).
    type: str
  mtu:
    description: MTU of the network's bridge.
    type: int
  ipv4:
    description: The host's IPv4 address on the network, its subnet and DHCP.
    type: dict
    suboptions:
      address:
        description: Host address on the network, e.g. V(192.168.122.1).
        type: str
        required: true
      prefix:
        description: Prefix length of the subnet (default 24).
        type: int
      netmask:
        description: Netmask instead of O(ipv4.prefix), e.g. V(255.255.255.0).
        type: str
      dhcp_ranges:
        description:
          - DHCP address ranges. V([]) turns DHCP ranges off; unset leaves them as they are.
        type: list
        elements: dict
        suboptions:
          start:
            description: First address of the range.
            type: str
            required: true
          end:
            description: Last address of the range.
            type: str
            required: true
      dhcp_hosts:
        description:
          - Static DHCP leases (a guest with that MAC always gets that address). The list is the
            whole set - V([]) removes all; unset leaves them as they are.
        type: list
        elements: dict
        suboptions:
          mac:
            description: MAC address of the guest's interface.
            type: str
          name:
            description: Host name handed to the guest (and matched instead of the MAC when no MAC is given).
            type: str
          ip:
            description: The address it gets.
            type: str
            required: true
  ipv6:
    description: The host's IPv6 address on the network, its prefix and DHCPv6.
    type: dict
    suboptions:
      address:
        description: Host address on the network, e.g. V(fd00:213::1).
        type: str
        required: true
      prefix:
        description: Prefix length (default 64).
        type: int
      dhcp_ranges:
        description: DHCPv6 address ranges; V([]) turns them off, unset leaves them as they are.
        type: list
        elements: dict
        suboptions:
          start:
            description: First address of the range.
            type: str
            required: true
          end:
            description: Last address of the range.
            type: str
            required: true
      dhcp_hosts:
        description: Static DHCPv6 leases, matched by host name. The list is the whole set.
        type: list
        elements: dict
        suboptions:
          name:
            description: Host name of the guest.
            type: str
            required: true
          ip:
            description: The address it gets.
            type: str
            required: true
  dns_hosts:
    description:
      - Extra host names the network's DNS server answers. The list is the whole set - V([])
        removes all; unset leaves them as they are.
    type: list
    elements: dict
    suboptions:
      ip:
        description: Address the names resolve to.
        type: str
        required: true
      hostnames:
        description: Names for that address.
        type: list
        elements: str
        required: true
  autostart:
    description: Start the network when libvirt starts. Unset leaves it as it is (a new network is not autostarted).
    type: bool
  restart:
    description:
      - Restart a running network when a change cannot be applied live. Running guests on it lose
        their link and must reconnect (listed in RV(guests_to_reconnect)).
    type: bool
    default: false
notes:
  - The overlap check reads the host's routes from C(/proc/net/route) and C(/proc/net/ipv6_route)
    (default, local, link-local and multicast routes are not counted).
seealso:
  - module: kvmops.hypervisor.virt_install_domain
  - name: libvirt network XML format
    description: Every element this module writes.
    link: https://libvirt.org/formatnetwork.html
'''

EXAMPLES = r'''
- name: The default NAT network, kept as the variables say
  kvmops.hypervisor.virt_network:
    name: default
    forward: nat
    bridge: virbr0
    ipv4:
      address: 192.168.122.1
      netmask: 255.255.255.0
      dhcp_ranges:
        - start: 192.168.122.2
          end: 192.168.122.254
    autostart: true

- name: A lab network with fixed addresses and DNS names (changed live, no restart)
  kvmops.hypervisor.virt_network:
    name: lab
    forward: route
    bridge: virbr-lab
    domain: lab.example
    ipv4:
      address: 10.213.7.1
      prefix: 24
      dhcp_ranges:
        - start: 10.213.7.100
          end: 10.213.7.199
      dhcp_hosts:
        - mac: "52:54:00:12:34:56"
          name: web1
          ip: 10.213.7.10
    dns_hosts:
      - ip: 10.213.7.10
        hostnames: [web1.lab.example, www.lab.example]
    autostart: true

- name: Guests on the host bridge br0 (the LAN gives them addresses)
  kvmops.hypervisor.virt_network:
    name: host-bridge
    forward: bridge
    bridge: br0
    autostart: true

- name: Move the lab network to another subnet (restarts it; its guests must reconnect)
  kvmops.hypervisor.virt_network:
    name: lab
    ipv4:
      address: 10.213.8.1
      prefix: 24
      dhcp_ranges:
        - start: 10.213.8.100
          end: 10.213.8.199
      dhcp_hosts: []
    dns_hosts: []
    restart: true

- name: Remove the lab network
  kvmops.hypervisor.virt_network:
    name: lab
    state: absent
'''

RETURN = r'''
name:
  description: Name of the network.
  returned: always
  type: str
  sample: lab
state:
  description: V(active), V(inactive) or V(absent) after the run (in check mode, what it would be).
  returned: always
  type: str
  sample: active
autostart:
  description: Whether the network starts with libvirt.
  returned: always
  type: bool
bridge:
  description: The bridge device of the network (the one libvirt picked when none was given).
  returned: always
  type: str
  sample: virbr1
network:
  description: What the persistent definition says after the run, in the module's terms.
  returned: unless state is absent
  type: dict
  sample:
    forward: nat
    bridge: virbr0
    ipv4: {address: 192.168.122.1, prefix: 24, dhcp_ranges: [{start: 192.168.122.2, end: 192.168.122.254}], dhcp_hosts: []}
changes:
  description: Every asked facet that differed, with its value before and after, and whether libvirt can change it live.
  returned: always
  type: list
  elements: dict
  sample: [{facet: ipv4.dhcp_ranges, before: [{start: 10.213.7.100, end: 10.213.7.199}],
            after: [{start: 10.213.7.50, end: 10.213.7.60}], live: true}]
live_updates:
  description: The changes applied to the running network through virNetworkUpdate.
  returned: always
  type: list
  elements: str
  sample: [remove DHCP range 10.213.7.100-10.213.7.199, add DHCP range 10.213.7.50-10.213.7.60]
restart_required:
  description: The running network still uses its old settings for a change that needs a restart (see O(restart)).
  returned: always
  type: bool
restarted:
  description: The network was restarted to apply a change.
  returned: always
  type: bool
guests_to_reconnect:
  description: Running guests attached to the network that lose (or would lose) their link by a restart or removal.
  returned: always
  type: list
  elements: str
actions:
  description: What was done (or would be done in check mode), in order.
  returned: always
  type: list
  elements: str
  sample: [update the persistent definition: ipv4.dhcp_ranges, "live: add DHCP range 10.213.7.50-10.213.7.60"]
overlaps:
  description: On failure because of an overlapping subnet, each collision found.
  returned: failure
  type: list
  elements: str
'''

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.kvmops.hypervisor.plugins.module_utils._common.argspec import uri_option
from ansible_collections.kvmops.hypervisor.plugins.module_utils._module.runner import manager_options, run_manager
from ansible_collections.kvmops.hypervisor.plugins.module_utils._network import spec as nspec
from ansible_collections.kvmops.hypervisor.plugins.module_utils._network.manager import NetworkManager


def _range():
    return dict(type='list', elements='dict', options=dict(
        start=dict(type='str', required=True), end=dict(type='str', required=True)))


def argument_spec():
    return dict(
        uri=uri_option(),
        name=dict(type='str', required=True),
        state=dict(type='str', choices=list(nspec.STATES), default='active'),
        forward=dict(type='str', choices=list(nspec.FORWARD_MODES)),
        forward_interface=dict(type='str'),
        bridge=dict(type='str'),
        domain=dict(type='str'),
        mtu=dict(type='int'),
        ipv4=dict(type='dict', options=dict(
            address=dict(type='str', required=True),
            prefix=dict(type='int'),
            netmask=dict(type='str'),
            dhcp_ranges=_range(),
            dhcp_hosts=dict(type='list', elements='dict', options=dict(
                mac=dict(type='str'), name=dict(type='str'), ip=dict(type='str', required=True))),
        )),
        ipv6=dict(type='dict', options=dict(
            address=dict(type='str', required=True),
            prefix=dict(type='int'),
            dhcp_ranges=_range(),
            dhcp_hosts=dict(type='list', elements='dict', options=dict(
                name=dict(type='str', required=True), ip=dict(type='str', required=True))),
        )),
        dns_hosts=dict(type='list', elements='dict', options=dict(
            ip=dict(type='str', required=True),
            hostnames=dict(type='list', elements='str', required=True))),
        autostart=dict(type='bool'),
        restart=dict(type='bool', default=False),
    )


def main():
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True)
    run_manager(module,
                prepare=lambda: nspec.normalize(module.params),
                build=lambda conn, spec: NetworkManager(conn, spec, **manager_options(module)),
                subject=lambda spec: 'network %s' % spec['name'],
                fail_fields=lambda spec, manager: dict(name=module.params['name'], changed=False))


if __name__ == '__main__':
    main()
