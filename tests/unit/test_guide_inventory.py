"""inventories/guide quotes the guide's virt-install commands, and its guests say the same.

Each guest in group_vars/hypervisors.yml carries the guide's command as a comment right
above it; the values of the guest must be the command's values (with the ISO moved from /root
into the ISO directory, where QEMU may read it). The README shows `virsh console` for the
guest without graphics.
"""
import os
import re
import shlex

import pytest
import yaml

from support import paths

GUIDE = os.path.join(paths.REPO, 'inventories', 'guide', 'group_vars', 'hypervisors.yml')


def commands():
    """{guest name: {option: value}} from the '# virt-install ...' comment blocks."""
    out = {}
    lines = open(GUIDE).read().splitlines()
    for i, line in enumerate(lines):
        if not line.strip().startswith('# virt-install'):
            continue
        words = []
        for follow in lines[i:]:
            text = follow.strip()
            if not text.startswith('#') or (words and not text.lstrip('# ').startswith('--')):
                break
            words.extend(shlex.split(text.lstrip('# ').replace('virt-install', '', 1)))
        opts = {}
        it = iter(words)
        for w in it:
            key, sep, value = w.partition('=')
            if not sep:
                value = next(it)
            opts[key] = value
        out[opts['--name']] = opts
    return out


def guests():
    with open(GUIDE) as f:
        return {g['name']: g for g in yaml.safe_load(f)['guests_list']}


def test_every_guest_quotes_a_guide_command():
    assert sorted(commands()) == sorted(guests()) == ['vm1', 'windows1']


@pytest.mark.parametrize('name', ['vm1', 'windows1'])
def test_the_guest_has_the_values_of_its_command(name):
    cmd, g = commands()[name], guests()[name]
    disk = dict(kv.split('=', 1) for kv in cmd['--disk'].split(','))
    assert g['memory'] == int(cmd['--ram'])
    assert g['vcpus'] == int(cmd['--vcpus'])
    assert g.get('cpu') == cmd.get('--cpu')
    assert g['disks'][0]['path'] == disk['path'] and g['disks'][0]['size'] == int(disk['size'])
    kind, target = cmd['--network'].split(':', 1)
    assert g['networks'] == [{kind: target}]
    assert g['graphics']['type'] == cmd['--graphics']
    assert g.get('os_variant') in (cmd.get('--os-variant'), 'centos7.0' if name == 'vm1' else None)
    if '--location' in cmd:
        assert g['install']['location'] == cmd['--location']
        assert g['install']['extra_args'] == cmd['--extra-args']
    if '--cdrom' in cmd:
        # moved from /root into the labelled ISO directory, same file name
        assert cmd['--cdrom'] == '/root/win2012.iso'
        assert g['install']['cdrom'] == '/vm-images/iso/' + os.path.basename(cmd['--cdrom'])
        assert 'mv /root/win2012.iso /vm-images/iso/' in open(GUIDE).read()


def test_the_guides_own_numbers():
    vm1 = guests()['vm1']
    assert (vm1['memory'], vm1['vcpus'], vm1['disks'][0]['size']) == (1024, 1, 10)
    assert vm1['networks'] == [{'bridge': 'virbr0'}]


def test_readme_shows_virsh_console_for_the_guest_without_graphics():
    readme = open(os.path.join(paths.REPO, 'README.md')).read()
    for name, g in guests().items():
        if g['graphics']['type'] == 'none':
            assert re.search(r'virsh( -c qemu:///system)? console %s\b' % name, readme), name
