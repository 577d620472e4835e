"""cloud_init with clone_from, and clone_from.seal (issue 30), against the real libvirtd,
without booting (fast, in make test): a cloud guest (a small qcow2 base, its own seed) made a
template, then clones with a seed of their own. The pattern: check mode (no seed file, no
domain), real, check mode again, re-run changed=false, absent (check mode, then real) removes
the clone's seed and overlay and nothing of the template. The clones that boot and are read
back from their images: test_clones_seal.py (make cloud-guests)."""
import hashlib
import json
import os
import subprocess

import libvirt
import pytest

from support.ansible_run import run_module
from support.domain_guests import assert_ok
from support.libvirt_helpers import lookup_domain


def sha256(path):
    h = hashlib.sha256()
    with open(path, 'rb') as f:
        for chunk in iter(lambda: f.read(1 << 20), b''):
            h.update(chunk)
    return h.hexdigest()


def seed_paths(conn, name):
    from lxml import etree
    tree = etree.fromstring(conn.lookupByName(name).XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE))
    return [s.get('file') for s in tree.iter('source')
            if (s.get('file') or '').endswith('cidata.iso')]


@pytest.fixture(scope='module')
def template(conn, module_prefix, module_image_dir):
    """A cloud guest (base image, seed, agent channel) shut off and marked as a template
    (one for the file's tests; each test removes its clones)."""
    prefix, image_dir = module_prefix, module_image_dir
    base = os.path.join(image_dir, 'base.qcow2')
    subprocess.run(['qemu-img', 'create', '-q', '-f', 'qcow2', base, '64M'], check=True)
    seeds = os.path.join(image_dir, 'seeds')
    name = prefix + 'tpl'
    args = dict(name=name, memory='256MiB', virt_type='qemu', os_variant='debian12',
                state='stopped', graphics={'type': 'none'}, networks=[],
                disks=[{'path': os.path.join(image_dir, 'tpl.qcow2'), 'size': 1,
                        'base_image': {'url': base, 'checksum': 'sha256:' + sha256(base),
                                       'cache_dir': os.path.join(image_dir, 'cache')}}],
                cloud_init={'hostname': 'tpl', 'seed_dir': seeds,
                            'user_data': {'write_files': [{'path': '/etc/tpl', 'content': 'x'}]}})
    assert_ok(run_module('virt_install_domain', args))
    assert_ok(run_module('virt_install_domain', dict(args, template=True)))
    tpl_seed = os.path.join(seeds, name)
    return {'name': name, 'seeds': seeds, 'seed_dir': tpl_seed, 'dir': image_dir,
            'image': os.path.join(image_dir, 'tpl.qcow2'),
            'seed_sums': dict((f, sha256(os.path.join(tpl_seed, f)))
                              for f in sorted(os.listdir(tpl_seed)))}


def test_a_clone_with_cloud_init_and_seal_gets_its_own_seed(conn, prefix, template):
    name = prefix + 'sealed'
    args = dict(name=name, state='present',
                clone_from={'name': template['name'], 'mode': 'linked', 'seal': True},
                cloud_init={'hostname': 'sealed1', 'seed_dir': template['seeds'],
                            'user_data': {'bootcmd': ['echo mine']}})
    mine = os.path.join(template['seeds'], name)
    image_sum = sha256(template['image'])

    # check mode: the plan, no seed file, no overlay, no domain
    res = assert_ok(run_module('virt_install_domain', args, check=True))
    assert res['changed'] and any('would build cloud-init seed' in a for a in res['actions'])
    assert not os.path.exists(mine) and lookup_domain(conn, name) is None
    assert not os.path.exists(res['clone']['disks'][0]['path'])
    assert res['clone']['seal']['method'] == 'cloud-init first boot'

    # real: the clone's definition carries its own seed, not the template's
    res = assert_ok(run_module('virt_install_domain', args))
    assert res['changed'] and res['cloud_init']['status'] == 'built'
    assert res['cloud_init']['instance_id'] == 'iid-' + name
    assert seed_paths(conn, name) == [os.path.join(mine, 'cidata.iso')]
    assert seed_paths(conn, template['name']) == [os.path.join(template['seed_dir'],
                                                               'cidata.iso')]
    with open(os.path.join(mine, 'user-data')) as f:
        text = f.read()
    cfg = json.loads(text.split('\n', 1)[1])
    assert cfg['bootcmd'][0][:3] == ['cloud-init-per', 'instance', 'kvmops_seal_machine_id']
    assert cfg['bootcmd'][-1] == 'echo mine' and cfg['ssh_deletekeys'] is True
    with open(os.path.join(mine, 'meta-data')) as f:
        assert json.load(f)['local-hostname'] == 'sealed1'
    xml = conn.lookupByName(name).XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE)
    assert xml.count('org.qemu.guest_agent.0') == 1        # the source's channel, not twice
    assert ("seed='%s'" % mine in xml) or ('seed="%s"' % mine in xml)  # the clone record

    # check mode again, then a re-run: nothing changes
    again = assert_ok(run_module('virt_install_domain', args, check=True))
    assert not again['changed'], again['actions']
    mtime = os.stat(os.path.join(mine, 'cidata.iso')).st_mtime_ns
    again = assert_ok(run_module('virt_install_domain', args))
    assert not again['changed'], again['actions']
    assert again['cloud_init']['status'] == 'unchanged'
    assert os.stat(os.path.join(mine, 'cidata.iso')).st_mtime_ns == mtime

    # absent (no cloud_init in the task: the clone's record names its seed)
    gone = dict(name=name, state='absent', remove_storage=True)
    res = assert_ok(run_module('virt_install_domain', gone, check=True))
    assert res['changed'] and os.path.isdir(mine)
    assert any('would have removed cloud-init seed' in a for a in res['actions'])
    res = assert_ok(run_module('virt_install_domain', gone))
    assert not os.path.exists(mine) and lookup_domain(conn, name) is None
    # nothing of the template: its seed and its image are as they were
    assert dict((f, sha256(os.path.join(template['seed_dir'], f)))
                for f in sorted(os.listdir(template['seed_dir']))) == template['seed_sums']
    assert sha256(template['image']) == image_sum


def test_seal_alone_implies_a_minimal_seed_and_refuses_the_sources_instance_id(
        conn, prefix, template):
    name = prefix + 'implied'
    args = dict(name=name, state='present',
                clone_from={'name': template['name'], 'mode': 'full', 'seal': True})
    res = assert_ok(run_module('virt_install_domain', args))
    mine = os.path.join('/var/lib/libvirt/boot/kvmops-seeds', name)
    try:
        assert res['cloud_init']['instance_id'] == 'iid-' + name
        assert seed_paths(conn, name) == [os.path.join(mine, 'cidata.iso')]
        assert not assert_ok(run_module('virt_install_domain', args))['changed']
    finally:
        assert_ok(run_module('virt_install_domain', dict(name=name, state='absent',
                                                         remove_storage=True)))
    assert not os.path.exists(mine)

    # the template's own instance-id: cloud-init would ignore the seed; refused, nothing made
    bad = dict(args, name=prefix + 'same', cloud_init={'instance_id': 'iid-' + template['name'],
                                                       'seed_dir': template['seeds']})
    res = run_module('virt_install_domain', bad)
    assert res.get('failed') and 'not be sealed' in res['msg'], res
    assert lookup_domain(conn, prefix + 'same') is None
    assert not os.path.exists(os.path.join(template['seeds'], prefix + 'same'))


def test_a_clone_made_without_a_seed_is_not_given_one_later(conn, prefix, template):
    name = prefix + 'noseed'
    mine = os.path.join(template['seeds'], name)
    args = dict(name=name, state='present', clone_from={'name': template['name'],
                                                        'mode': 'linked'})
    res = run_module('virt_install_domain', args, check=True)
    assert res['changed'] and any('would copy cloud-init seed' in a for a in res['actions']), res
    assert not os.path.exists(mine)
    assert_ok(run_module('virt_install_domain', args))
    try:
        # a copy of the template's seed, in the clone's own directory: the same bytes (same
        # instance-id, nothing reruns), never the template's file, which goes with the template
        assert seed_paths(conn, name) == [os.path.join(mine, 'cidata.iso')]
        assert dict((f, sha256(os.path.join(mine, f)))
                    for f in sorted(os.listdir(mine))) == template['seed_sums']
        assert run_module('virt_install_domain', args)['changed'] is False
        later = dict(args, clone_from=dict(args['clone_from'], seal=True))
        res = run_module('virt_install_domain', later)
        assert res.get('failed') and 'only when it is made' in res['msg'], res
        assert not os.path.exists(os.path.join('/var/lib/libvirt/boot/kvmops-seeds', name))
    finally:
        assert_ok(run_module('virt_install_domain', dict(name=name, state='absent',
                                                         remove_storage=True)))
    # removing the clone removes its copy and keeps the template's seed
    assert not os.path.exists(mine)
    assert os.path.isfile(os.path.join(template['seed_dir'], 'cidata.iso'))
