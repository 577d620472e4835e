"""Pure logic of the libvirt_guests inventory plugin: hypervisor names, the ssh hop to guests
behind a hypervisor, and the qemu+ssh URI built from an inventory host. Listing real guests is
tests/integration/test_inventory_libvirt_guests.py and the molecule fleet scenario."""
import shlex
import threading
import time

import pytest
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


# --- issue 26: nothing from libvirt, a guest or the cache becomes a template or a command

@pytest.mark.parametrize('uri', [
    "qemu+ssh://x';touch${IFS}p;'@hv1/system",
    'qemu+ssh://-oProxyCommand=sh@hv1/system',
    'qemu+ssh://root@-oProxyCommand=sh/system',
    'qemu+ssh://root@hv1:22x/system',
])
def test_hop_refuses_users_hosts_ports_that_are_not_names(uri):
    with pytest.raises(ValueError):
        plugin.ssh_hop_args(uri, '-i /k')


def test_proxy_command_words_are_quoted():
    hop = plugin.ssh_hop_args('qemu+ssh://admin@hv1:2222/system', "-i '/k ey' -o 'ProxyCommand=x;y' $(id)")
    words = shlex.split(hop)
    assert words[:1] == ['-o'] and len(words) == 2
    assert shlex.split(words[1][len('ProxyCommand='):]) == [
        'ssh', '-i', '/k ey', '-o', 'ProxyCommand=x;y', '$(id)', '-W', '%h:%p', '-p', '2222', 'admin@hv1']


def test_proxy_jump_to_an_ipv6_hypervisor_is_bracketed():
    assert plugin.ssh_hop_args('qemu+ssh://root@[fd00::5]:2222/system') == '-o ProxyJump=root@[fd00::5]:2222'


def test_group_and_host_names_keep_no_template_syntax():
    assert plugin.safe_group_name("libvirt_tag_{{ lookup('pipe','id') }}") == 'libvirt_tag____lookup__pipe___id_____'
    assert plugin.safe_group_name('9lives') == '_9lives'
    assert plugin.safe_host_part("web{% if 1 %}") == 'web___if_1___'
    assert plugin.safe_host_part('') == '_'
    assert plugin.InventoryModule._sanitize_group_name('role_{#x#}') == 'role___x__'


@pytest.mark.parametrize('text, expected', [
    ("{{ lookup('pipe', 'id') }}", "{_{ lookup('pipe', 'id') }}"),
    ('{%raw%}', '{_%raw%}'),
    ('{#c#}', '{_#c#}'),
    ('{{{', '{_{_{'),
    ('plain {x} }}', 'plain {x} }}'),
])
def test_defang_breaks_every_jinja_start(text, expected):
    out = plugin.defang({'k': [text]})
    assert out == {'k': [expected]}
    assert not any(start in out['k'][0] for start in ('{{', '{%', '{#'))


def test_defang_only_before_ansible_core_2_19():
    assert plugin._core_version('2.17.14') < (2, 19) <= plugin._core_version('2.19.14')


def test_shown_escapes_terminal_control():
    assert plugin.shown('a\x1b[31mred') == 'a\\x1b[31mred'
    assert plugin.shown('x' * 200).endswith('...')


def test_valid_listing_is_the_shape_we_write():
    guest = {'name': 'g', 'uuid': 'u', 'state': 'running', 'vcpus': 1, 'memory_mib': 64, 'tags': ['t'],
             'interfaces': [{'addresses': [{'address': '10.0.0.5', 'family': 'ipv4'}]}]}
    assert plugin.valid_listing({'guests': [guest]})
    assert not plugin.valid_listing({'guests': [dict(guest, tags='web')]})
    assert not plugin.valid_listing({'guests': [dict(guest, interfaces=[{'addresses': [{'address': 5}]}])]})
    assert not plugin.valid_listing({'guests': None}) and not plugin.valid_listing([guest])


def test_missing_dependencies_name_what_to_install(monkeypatch):
    monkeypatch.setattr(plugin, 'HAS_LIBVIRT', True)
    monkeypatch.setattr(plugin.lxml_util, 'HAS_LXML', False)
    msg = plugin.missing_dependency_message('/venv/bin/python')
    assert 'needs lxml on the controller' in msg and '/venv/bin/python -m pip install lxml' in msg
    assert 'python3-lxml' in msg and 'libvirt-python' not in msg.split('(')[0]
    monkeypatch.setattr(plugin, 'HAS_LIBVIRT', False)
    assert 'libvirt-python and lxml' in plugin.missing_dependency_message()
    monkeypatch.setattr(plugin.lxml_util, 'HAS_LXML', True)
    monkeypatch.setattr(plugin, 'HAS_LIBVIRT', True)
    assert plugin.missing_dependency_message() is None


# --- issue 33: one hypervisor that hangs costs its timeout, not everyone's

def test_run_all_abandons_a_job_that_hangs_and_finishes_the_others():
    gate = threading.Event()
    jobs = [lambda: gate.wait(30)] + [lambda i=i: i for i in range(40)] + [lambda: 1 / 0]
    start = time.monotonic()
    out = plugin.run_all(jobs, timeout=0.5, workers=4)
    took = time.monotonic() - start
    gate.set()
    assert took < 5, took
    assert out[0][0] == 'error' and isinstance(out[0][1], TimeoutError)
    assert [out[i + 1] for i in range(40)] == [('ok', i) for i in range(40)]
    assert out[41][0] == 'error' and isinstance(out[41][1], ZeroDivisionError)


def test_run_all_every_worker_hangs():
    gate = threading.Event()
    start = time.monotonic()
    out = plugin.run_all([lambda: gate.wait(30)] * 6, timeout=0.3, workers=2)
    gate.set()
    assert all(kind == 'error' for kind, _value in out.values()) and len(out) == 6
    assert time.monotonic() - start < 3


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


NODE = """<node>
  <network><name>default</name><bridge name='virbr0'/><forward mode='nat'/>
    <ip address='10.77.0.1' netmask='255.255.255.0'><dhcp><range start='10.77.0.2' end='10.77.0.254'/></dhcp></ip>
  </network>
%s</node>
"""
GUEST = """  <domain type='test' xmlns:test='http://libvirt.org/schemas/domain/test/1.0'>
    <name>%s</name><memory>262144</memory><vcpu>1</vcpu><os><type arch='x86_64'>hvm</type></os>%s
    <devices><interface type='network'><mac address='52:54:00:00:77:%02x'/><source network='default'/></interface></devices>
  </domain>
"""


def test_guests_outside_name_pattern_and_states_are_never_asked(tmp_path, monkeypatch):
    """libvirt's test driver (test:///FILE: no daemon, nothing runs): a guest the inventory does
    not list is not asked for addresses (or through its agent) at all."""
    names = [('web-1', ''), ('web-2', '<test:runstate>5</test:runstate>'), ('db-1', '')]
    node = tmp_path / 'node.xml'
    node.write_text(NODE % ''.join(GUEST % (n, run, i) for i, (n, run) in enumerate(names)))
    asked = []
    real = plugin._addr.domain_addresses

    def spy(conn, dom, *args, **kwargs):
        asked.append(dom.name())
        return real(conn, dom, *args, **kwargs)
    monkeypatch.setattr(plugin._addr, 'domain_addresses', spy)
    uri = 'test://%s' % node
    everything = plugin.collect_hypervisor(uri, ['lease'], 'urn:x', {})
    assert sorted(g['name'] for g in everything) == ['db-1', 'web-1', 'web-2']
    assert sorted(asked) == ['db-1', 'web-1', 'web-2']
    del asked[:]
    some = plugin.collect_hypervisor(uri, ['lease'], 'urn:x', {'name_pattern': '^web-', 'states': ['running']})
    assert [g['name'] for g in some] == ['web-1'] and asked == ['web-1']


def test_selection_decides_on_the_name_first():
    sel = {'name_pattern': '^web-', 'states': ['running']}
    assert plugin.selected(sel, 'web-1') and not plugin.selected(sel, 'db-1')
    assert plugin.selected(sel, 'web-1', 'running') and not plugin.selected(sel, 'web-1', 'shutoff')
    assert plugin.selected({}, 'anything', 'paused')


def test_a_name_pattern_that_is_not_a_regular_expression_says_so():
    inv = plugin.InventoryModule()
    options = {'name_pattern': 'web-[', 'states': []}
    inv.get_option = options.get
    with pytest.raises(plugin.AnsibleError) as exc:
        inv._selection()
    assert 'name_pattern web-[ is not a regular expression' in str(exc.value)
    options['name_pattern'] = '^web-'
    assert inv._selection() == {'name_pattern': '^web-', 'states': []}


TEMPLATE_META = """<metadata><kvmopstpl:template xmlns:kvmopstpl='urn:kvmops:hypervisor:template:1'>
      <image path='/x/tpl.qcow2' mode='0644'/></kvmopstpl:template></metadata>"""
CLONE_META = """<metadata><kvmopsclone:clone xmlns:kvmopsclone='urn:kvmops:hypervisor:clone:1'
      source='tpl' source_uuid='11111111-2222-3333-4444-555555555555' mode='linked'/></metadata>"""


def _count_domain_calls(monkeypatch):
    """{(domain name, method): calls} of every virDomain method collect_hypervisor uses."""
    libvirt = pytest.importorskip('libvirt')
    calls = {}
    for method in ('XMLDesc', 'metadata', 'info', 'state', 'isActive', 'UUIDString',
                   'interfaceAddresses'):
        real = getattr(libvirt.virDomain, method)

        def spy(self, *args, _real=real, _method=method, **kwargs):
            key = (libvirt.virDomain.name(self), _method)
            calls[key] = calls.get(key, 0) + 1
            return _real(self, *args, **kwargs)
        monkeypatch.setattr(libvirt.virDomain, method, spy)
    return calls


def test_templates_and_clones_come_from_the_xml_read_for_the_nics(tmp_path, monkeypatch):
    """test:/// driver: a template and a linked clone are told apart by their <metadata>, read
    from the one XMLDesc per guest the NICs need: they cost the same libvirt calls as a plain
    guest (measured: XMLDesc once, metadata once (tags), no other call added)."""
    names = [('tpl', '<test:runstate>5</test:runstate>' + TEMPLATE_META),
             ('clone1', CLONE_META), ('plain', '')]
    node = tmp_path / 'node.xml'
    node.write_text(NODE % ''.join(GUEST % (n, extra, i) for i, (n, extra) in enumerate(names)))
    calls = _count_domain_calls(monkeypatch)
    guests = dict((g['name'], g) for g in
                  plugin.collect_hypervisor('test://%s' % node, ['lease'], 'urn:x', {}))
    assert guests['tpl']['template'] is True and guests['tpl']['clone_of'] is None
    assert guests['clone1']['template'] is False
    assert guests['clone1']['clone_of'] == {'source': 'tpl', 'mode': 'linked',
                                            'source_uuid': '11111111-2222-3333-4444-555555555555'}
    assert guests['plain']['template'] is False and guests['plain']['clone_of'] is None
    per_guest = dict((name, sorted((m, n) for (g, m), n in calls.items() if g == name))
                     for name, _extra in names)
    assert per_guest['clone1'] == per_guest['plain'], per_guest
    assert ('XMLDesc', 1) in per_guest['plain'] and ('XMLDesc', 1) in per_guest['tpl']
    assert dict(per_guest['tpl'])['metadata'] == 1            # the tags, as before
    assert plugin.valid_listing({'guests': list(guests.values())})


def _populated(guests):
    from ansible.inventory.data import InventoryData
    inv = plugin.InventoryModule()
    inv.inventory = InventoryData()
    options = {'proxy_jump': True, 'proxy_ssh_args': ''}
    inv.get_option = options.get
    for g in guests:
        base = {'uuid': g['name'] + '-uuid', 'state': 'shutoff', 'vcpus': 1, 'memory_mib': 256,
                'tags': [], 'interfaces': []}
        base.update(g)
        inv._add_guest(g['name'], {'name': 'hv1', 'uri': 'qemu:///system'}, base, 'ipv4')
    return inv.inventory


def test_templates_are_a_group_and_clones_name_their_source():
    rec = {'source': '{{ lookup("pipe", "id") }}', 'source_uuid': 'u', 'mode': 'linked'}
    inv = _populated([{'name': 'tpl', 'template': True}, {'name': 'c1', 'clone_of': rec},
                      {'name': 'old'}])   # 'old': a listing cached by the version before
    assert [h.name for h in inv.groups['libvirt_templates'].get_hosts()] == ['tpl']
    tpl, c1, old = (inv.get_host(n).get_vars() for n in ('tpl', 'c1', 'old'))
    assert tpl['libvirt_template'] is True and 'libvirt_clone_of' not in tpl
    assert c1['libvirt_template'] is False and old['libvirt_template'] is False
    assert c1['libvirt_clone_of']['mode'] == 'linked'
    # guest data: never a template (marked unsafe; before 2.19 also broken up)
    source = c1['libvirt_clone_of']['source']
    assert plugin.DEFANG or source == rec['source']
    try:
        from ansible.template import is_trusted_as_template   # ansible-core 2.19+
        assert not is_trusted_as_template(source)
    except ImportError:
        from ansible.utils.unsafe_proxy import AnsibleUnsafe
        assert isinstance(source, AnsibleUnsafe)


def test_a_cached_clone_record_of_another_shape_is_not_a_listing():
    guest = {'name': 'a', 'uuid': 'u', 'state': 'running', 'vcpus': 1, 'memory_mib': 1,
             'tags': [], 'interfaces': []}
    assert plugin.valid_listing({'guests': [guest]})
    assert not plugin.valid_listing({'guests': [dict(guest, template='yes')]})
    assert not plugin.valid_listing({'guests': [dict(guest, clone_of={'source': 1})]})
    assert not plugin.valid_listing({'guests': [dict(guest, clone_of={'source': 'a', 'mode': 'x',
                                                                      'source_uuid': ['u']})]})
