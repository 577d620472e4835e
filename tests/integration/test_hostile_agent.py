"""A hostile guest agent, for real (issue 26: "where the next play connects").

The tiny guest's fake agent (testbed/tiny_guest_init.sh, kvmops.agent=1) speaks the agent
protocol over the real virtio-serial channel, and libvirt asks it as it asks qemu-guest-agent
(guest-sync, then guest-network-get-interfaces, guest-fsfreeze-freeze/-thaw: the console
logs every command). Its answers come from its kernel command line:

- guest "liar": its eth0 (the NIC's real MAC) has 8.8.8.8, 127.0.0.1, the hypervisor's own
  address on the network, the network and broadcast addresses, '::1', 'garbage' and a
  300-character string before the one address inside the network; its interface name and host
  name are Jinja payloads that write a sentinel on the controller; it never answers a freeze.
- guest "mute": it answers guest-sync, then never answers guest-network-get-interfaces (libvirt
  waits for ever: `virsh domifaddr --source agent` was still waiting after 70 s).

What must hold: virt_install_domain's wait_for ip gives the address inside the network and
warns about each dropped one; the libvirt_guests inventory (ansible-core 2.19 and 2.17) has
that address as ansible_host and never renders the payloads; a mute agent costs wait_for and
the listing a bounded wait (plugins/module_utils/_libvirt/agent.py), not for ever; a quiesced
external virt_snapshot and virt_backup of a guest whose agent never answers the freeze finish,
crash-consistent, with warnings (quiesce=required: fails, nothing made).

The guests are on an isolated network of the test's own without DHCP: no lease, so the agent is
the only source of addresses, and nothing is sent to any guest.
"""
import base64
import glob
import json
import os
import re
import subprocess
import time

import pytest
import yaml

from support import faults, paths
from support.backup_guests import module_process
from support.domain_guests import tiny_args
from support.libvirt_helpers import wait_for_text

# The cached ansible-core 2.17 controller (a fixture, used by name)
from test_hostile_inventory import controller_217  # noqa: F401 pylint: disable=unused-import

BOOT_TIMEOUT = 300
AGENT_TIMEOUT = 10      # plugins/module_utils/_libvirt/agent.py AGENT_TIMEOUT
SLACK = 25              # Python and ansible start-up, libvirt calls, under load


def payload(tag):
    """A template that, rendered, runs a shell on the controller and leaves $HOME/kvmops-pwned-TAG."""
    return "{{ lookup('pipe', 'cd; touch kvmops-pwned-%s') }}" % tag


def b64_json_text(text):
    """The fake agent's form of a string: base64 of its JSON-escaped contents."""
    return base64.b64encode(json.dumps(text)[1:-1].encode()).decode()


def run_module(module, args, timeout):
    """The module of this checkout, run directly; (result, seconds). Fails (and kills it) when
    it has not ended within timeout: that is a hang."""
    proc, argfile = module_process(module, args)
    start = time.monotonic()
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        pytest.fail('%s %s did not end within %ss: it hangs' % (module, args.get('name') or args.get('domain'), timeout))
    finally:
        os.unlink(argfile)
    try:
        return json.loads(out), time.monotonic() - start
    except ValueError:
        raise AssertionError('module printed no JSON (rc %s): %s %s' % (proc.returncode, out[-2000:], err[-2000:]))


def warning_text(res):
    """A module's warnings as one line (ansible-core 2.19 gives a module run directly dicts)."""
    return ' '.join(' '.join(w if isinstance(w, str) else w.get('msg', json.dumps(w))
                             for w in res.get('warnings', [])).split())


def pwned(home):
    return sorted(glob.glob(os.path.join(home, 'kvmops-pwned-*')))


@pytest.fixture
def agent_net(conn, prefix):
    """(name, first three octets) of an isolated network without DHCP on a /24 nobody here uses."""
    used = set(re.findall(r"address='(\d+\.\d+\.\d+)\.", ''.join(n.XMLDesc(0) for n in conn.listAllNetworks())))
    third = [i for i in range(30, 250) if '10.219.%d' % i not in used][0]
    net = '10.219.%d' % third
    name = prefix + 'net'
    conn.networkDefineXML(
        "<network><name>{name}</name><bridge name='kvag{t}'/><ip address='{net}.1' netmask='255.255.255.0'/>"
        "</network>".format(name=name, t=third, net=net)).create()
    return name, net


def guest_args(prefix, image_dir, tiny, name, network, cmdline, **extra):
    d = os.path.join(image_dir, name)
    os.makedirs(d, exist_ok=True)
    return tiny_args(prefix, d, tiny, name=prefix + name, memory='160MiB', cmdline=cmdline,
                     networks=[{'network': network}], guest_agent=True, graphics={'type': 'none'},
                     disks=[{'path': os.path.join(d, 'root.qcow2'), 'size': 1, 'format': 'qcow2'}],
                     **extra)


def agent_connected(dom, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if re.search(r"name='org.qemu.guest_agent.0' state='connected'", dom.XMLDesc(0)):
            return
        time.sleep(0.5)
    raise AssertionError('the fake agent of %s did not connect within %ss' % (dom.name(), timeout))


def inventory(bindir, config, home):
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=paths.COLLECTIONS_DIR, ANSIBLE_NOCOLOR='1',
               ANSIBLE_INVENTORY_UNPARSED_FAILED='1', HOME=home, ANSIBLE_LOCAL_TEMP=os.path.join(home, 'tmp'),
               ANSIBLE_HOME=os.path.join(home, '.ansible'), ANSIBLE_DEPRECATION_WARNINGS='0')
    env.pop('ANSIBLE_CONFIG', None)
    return subprocess.Popen([os.path.join(bindir, 'ansible-inventory'), '-i', config, '--list'],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True,
                            env=env, cwd=home)


def plain(value):
    if isinstance(value, dict):
        if list(value) == ['__ansible_unsafe']:
            return value['__ansible_unsafe']
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    return value


PLAYBOOK = """
- hosts: all
  connection: local
  gather_facts: false
  tasks:
    - name: the agent's interface name, used in templates and copied through set_fact
      ansible.builtin.set_fact:
        copied: "{{ libvirt_interfaces | map(attribute='interface') | join(',') }} {{ ansible_host | default('') }}"
    - name: the copy used again (2.17 templates it once more here)
      ansible.builtin.debug:
        msg: "{{ copied }}"
"""


def test_a_hostile_agent_never_steers_the_address_nor_holds_anything(conn, prefix, tiny, image_dir, agent_net,
                                                                      controller_217, tmp_path, request):  # noqa: F811
    network, net = agent_net
    home = str(tmp_path / 'home')
    os.makedirs(os.path.join(home, 'tmp'))
    lies = ['8.8.8.8', '127.0.0.1', net + '.1', net + '.0', net + '.255', '::1', 'garbage', net + '.77']
    liar = guest_args(prefix, image_dir, tiny, 'liar', network, ' '.join([
        'console=ttyS0 no_timer_check kvmops.agent=1', 'kvmops.agent_ips=' + ','.join(lies), 'kvmops.agent_long=300',
        'kvmops.agent_ifname=' + b64_json_text(payload('ifname')),
        'kvmops.agent_host=' + b64_json_text(payload('hostname')),
        'kvmops.agent_hang=guest-fsfreeze-freeze']),
        wait_for='ip', wait_timeout=BOOT_TIMEOUT, address_sources=['lease', 'agent'])
    mute = guest_args(prefix, image_dir, tiny, 'mute', network,
                      'console=ttyS0 no_timer_check kvmops.agent=1 kvmops.agent_ips=%s.78 '
                      'kvmops.agent_hang=guest-network-get-interfaces' % net, wait_for='none')

    # The control: an agent that answers everything (the quiesced snapshot below).
    calm = guest_args(prefix, image_dir, tiny, 'calm', network,
                      'console=ttyS0 no_timer_check kvmops.agent=1 kvmops.agent_ips=%s.79' % net, wait_for='none')

    # The mute and calm guests boot meanwhile (no wait); an agent must be up before it is asked.
    for args in (mute, calm):
        res, took = run_module('virt_install_domain', args, timeout=BOOT_TIMEOUT)
        print('%s: defined and started in %.1fs' % (args['name'][len(prefix):], took))
        assert not res.get('failed'), res.get('msg')

    # 1. wait_for ip: only the address inside the network, the rest dropped with a warning.
    res, took = run_module('virt_install_domain', liar, timeout=BOOT_TIMEOUT + SLACK)
    print('liar: wait_for ip took %.1fs (waited %ss)' % (took, res.get('waited')))
    assert not res.get('failed'), res.get('msg')
    assert res['ansible_host'] == net + '.77'
    nic = res['interfaces'][0]
    assert [(a['address'], a['source']) for a in nic['addresses']] == [(net + '.77', 'agent')]
    rejected = {r['address']: r['reason'] for r in nic['rejected']}
    for bad in lies[:-1]:
        assert bad in rejected, (bad, rejected)
    assert "hypervisor's own address" in rejected[net + '.1'] and 'outside the network' in rejected['8.8.8.8']
    assert any(len(a) == 64 and set(a) == {'9'} for a in rejected), rejected    # cut to 64
    warnings = warning_text(res)
    for bad in ('8.8.8.8', '127.0.0.1', net + '.1', net + '.255', 'garbage'):
        assert bad + ' from the agent' in warnings, (bad, warnings)
    assert nic['interface'] == payload('ifname')      # data, as the guest said it
    log = open(os.path.join(image_dir, 'liar', 'console.log'), errors='replace').read()
    assert 'KVMOPS-AGENT guest-network-get-interfaces' in log

    # 2. wait_for ip against the agent that never answers: bounded, and it says why.
    dom_mute = conn.lookupByName(prefix + 'mute')
    wait_for_text(os.path.join(image_dir, 'mute', 'console.log'), 'KVMOPS-AGENT-PORT', timeout=BOOT_TIMEOUT)
    agent_connected(dom_mute, 60)
    # Other clients already wait on the mute agent (a second controller's inventory, an admin's
    # virsh): one of them holds libvirt's agent job, the module's call waits for it. Measured
    # here, that held up the module's next calls on its connection until its abandoned agent
    # call came back (30 s later; in CI the module still ran after 50 s): agent calls now go
    # on a connection of their own.
    others = [subprocess.Popen(['virsh', '-q', '-c', paths.URI, 'domifaddr', '--source', 'agent', prefix + 'mute'],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for dummy in range(3)]
    request.addfinalizer(lambda: [p.kill() for p in others])
    time.sleep(2)
    res, took = run_module('virt_install_domain', dict(mute, wait_for='ip', wait_timeout=15,
                                                       address_sources=['agent']), timeout=15 + AGENT_TIMEOUT + SLACK)
    assert res.get('failed') and 'did not show an IP address within wait_timeout=15s' in res['msg'], res
    assert 'the guest agent did not answer within %ss' % AGENT_TIMEOUT in res['msg'], res['msg']
    print('mute: wait_for ip failed after %.1fs' % took)
    mute_took, mute_msg = took, res['msg']
    assert took < 15 + SLACK, took
    mute_log = open(os.path.join(image_dir, 'mute', 'console.log'), errors='replace').read()
    assert mute_log.count('KVMOPS-AGENT guest-network-get-interfaces') == 1   # asked once, not every poll

    # 3. The inventory on 2.19 and 2.17 at once: ansible_host is the address inside the network,
    # the payloads stay text, the mute guest costs a bounded wait and is listed without address.
    config = os.path.join(home, 'libvirt_guests.yml')
    with open(config, 'w') as f:
        yaml.safe_dump({'plugin': 'kvmops.hypervisor.libvirt_guests', 'uris': ['qemu:///system'],
                        'name_pattern': '^%s(liar|mute)$' % re.escape(prefix), 'address_sources': ['lease', 'agent']}, f)
    with open(os.path.join(home, 'play.yml'), 'w') as f:
        f.write(PLAYBOOK)
    start = time.monotonic()
    controllers = (('2.19', os.path.join(paths.VENV, 'bin')), ('2.17', controller_217))
    procs = {v: inventory(b, config, home) for v, b in controllers}
    for version, proc in procs.items():
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err[-3000:]
        hosts = plain(json.loads(out))['_meta']['hostvars']
        assert sorted(hosts) == [prefix + 'liar', prefix + 'mute'], (version, err[-3000:])
        v = hosts[prefix + 'liar']
        assert v['ansible_host'] == net + '.77', (version, v)
        assert 'ansible_host' not in hosts[prefix + 'mute'], (version, hosts[prefix + 'mute'])
        assert 'lookup' in v['libvirt_interfaces'][0]['interface']
        err = ' '.join(err.split())
        assert '8.8.8.8 from the agent' in err and "hypervisor's own address" in err, (version, err)
    took = time.monotonic() - start
    print('inventory on 2.19 and 2.17: %.1fs' % took)
    inventory_took = took
    assert took < AGENT_TIMEOUT + 2 * SLACK, took
    assert pwned(home) == []
    plays = {}
    for bindir in (os.path.join(paths.VENV, 'bin'), controller_217):
        plays[bindir] = subprocess.Popen(
            [os.path.join(bindir, 'ansible-playbook'), '-i', config, 'play.yml'], stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, universal_newlines=True, cwd=home,
            env=dict(os.environ, ANSIBLE_COLLECTIONS_PATH=paths.COLLECTIONS_DIR, HOME=home,
                     ANSIBLE_HOME=os.path.join(home, '.ansible'), ANSIBLE_NOCOLOR='1',
                     ANSIBLE_LOCAL_TEMP=os.path.join(home, 'tmp'), ANSIBLE_PYTHON_INTERPRETER='/usr/bin/python3'))
    for bindir, proc in plays.items():
        out, err = proc.communicate(timeout=180)
        assert proc.returncode == 0, out[-3000:] + err[-3000:]
        assert 'kvmops-pwned-ifname' in out and net + '.77' in out
        assert pwned(home) == [], (bindir, out)

    # 4. virt_snapshot, external and quiesced, of the liar, whose agent takes the freeze and
    # never answers. Inside libvirt (the QUIESCE flag) that freeze waits for ever: the module
    # freezes through its bounded call instead. required: fails, nothing made; auto: a
    # crash-consistent snapshot that says so. Each within the two bounded calls (freeze, thaw).
    liar_dom = conn.lookupByName(prefix + 'liar')
    snap = {'domain': prefix + 'liar', 'kind': 'external'}
    res, took = run_module('virt_snapshot', dict(snap, name='must', quiesce='required'),
                           timeout=2 * AGENT_TIMEOUT + SLACK)
    print('snapshot, quiesce required: %.1fs' % took)
    required_took = took
    assert res.get('failed') and 'quiesce=required, but the guest agent did not freeze' in res['msg'], res
    assert 'did not answer within %ss' % AGENT_TIMEOUT in res['msg'], res['msg']
    assert liar_dom.snapshotListNames(0) == []
    assert not [f for f in os.listdir(os.path.join(image_dir, 'liar')) if 'must' in f]   # no overlay
    res, took = run_module('virt_snapshot', dict(snap, name='crash', quiesce='auto'),
                           timeout=2 * AGENT_TIMEOUT + SLACK)
    print('snapshot, quiesce auto: %.1fs' % took)
    assert not res.get('failed'), res.get('msg')
    assert res['changed'] and res['quiesced'] is False and 'crash-consistent' in res['quiesce_reason'], res
    assert 'not quiesced' in warning_text(res) and 'virsh domfsthaw' in warning_text(res), warning_text(res)
    assert liar_dom.snapshotListNames(0) == ['crash']
    snapshot_took = took
    # The control: an agent that answers is asked to freeze and to thaw, in that order.
    calm_log = os.path.join(image_dir, 'calm', 'console.log')
    agent_connected(conn.lookupByName(prefix + 'calm'), BOOT_TIMEOUT)
    res, took = run_module('virt_snapshot', {'domain': prefix + 'calm', 'kind': 'external', 'name': 'calm',
                                             'quiesce': 'required'}, timeout=2 * AGENT_TIMEOUT + SLACK)
    assert not res.get('failed'), res.get('msg')
    assert res['quiesced'] is True and 'froze' in res['quiesce_reason'], res
    commands = re.findall(r'KVMOPS-AGENT (guest-fsfreeze-\w+)', open(calm_log, errors='replace').read())
    assert commands[-2:] == ['guest-fsfreeze-freeze', 'guest-fsfreeze-thaw'], commands

    # 5. virt_backup of the liar, whose agent takes the freeze and never answers: the backup
    # finishes (crash-consistent) and says so, the thaw gives up in bounded time too.
    repo = os.path.join(image_dir, 'repo')
    os.mkdir(repo, 0o711)       # QEMU (its own user) writes the targets
    res, took = run_module('virt_backup', {'domain': prefix + 'liar', 'repository': repo},
                           timeout=2 * AGENT_TIMEOUT + 60 + SLACK)
    print('backup: %.1fs' % took)
    assert not res.get('failed'), res.get('msg')
    assert res['frozen'] is False and 'did not answer within %ss' % AGENT_TIMEOUT in res['quiesce_reason']
    warnings = warning_text(res)
    assert 'the backup is not quiesced' in warnings and 'virsh domfsthaw' in warnings, warnings
    assert 'KVMOPS-AGENT guest-fsfreeze-freeze' in open(os.path.join(image_dir, 'liar', 'console.log'),
                                                        errors='replace').read()
    assert res['files'] and all(os.path.getsize(os.path.join(res['point_dir'], f['file'])) > 0
                                for f in res['files'].values()), res
    assert pwned(home) == []
    faults.record('guest agent answers hostile addresses and template payloads',
                  'fake agent (tiny guest, kvmops.agent=1) gave 8.8.8.8, 127.0.0.1, the host\'s address, '
                  'network/broadcast, ::1, garbage, a 300-character string, then one address inside the '
                  'network; interface and host names carrying a lookup(pipe) payload', 1,
                  'wait_for ip: ansible_host %s.77, %d addresses dropped with a warning each; inventory '
                  '(2.19 and 2.17): ansible_host %s.77, the same warnings' % (net, len(rejected), net),
                  'no sentinel file (payloads never rendered, also through set_fact on 2.17)', 'make test',
                  request.node.nodeid + '[lies]')
    faults.record('guest agent never answers (interfaces query, freeze)',
                  'fake agent answers guest-sync, then never guest-network-get-interfaces (guest "mute") '
                  'or guest-fsfreeze-freeze (guest "liar": virt_snapshot quiesced, virt_backup); libvirt '
                  'itself waits for ever (virsh '
                  'domifaddr --source agent still waiting after 70 s); three other clients (virsh '
                  'domifaddr --source agent) already waiting on the mute agent', 1,
                  'wait_for ip failed after %.0f s (wait_timeout 15): %s; inventory listed both guests in '
                  '%.0f s (mute without address); virt_snapshot external: quiesce=required failed in %.0f s '
                  'with nothing made, quiesce=auto made a crash-consistent snapshot in %.0f s; virt_backup '
                  'finished crash-consistent in %.0f s; both warn naming virsh domfsthaw'
                  % (mute_took, faults.short(mute_msg, 160), inventory_took, required_took, snapshot_took, took),
                  'libvirtd keeps one call per mute guest waiting (its agent job) until the guest answers '
                  'or stops; no process of ours hangs (agent calls on a connection of their own: an '
                  'abandoned call on the main one held up the next calls, CI)', 'make test',
                  request.node.nodeid + '[mute]')
