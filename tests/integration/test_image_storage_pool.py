"""image_storage's pool: a directory path or pool name holding XML specials stays data.

The role writes community.libvirt.virt_pool's XML from image_storage_pool_name and
image_storage_dir. A hostile value (closing tags, a <source> of its own, quotes, ampersands)
must come back from libvirt as exactly that name and path, with nothing added to the pool
definition; values XML cannot carry (control characters) and a name with "/" are refused
before anything is defined. Real role runs against the test bed's libvirtd (seconds).
"""
import json
import os
import shutil

import libvirt
import pytest
from lxml import etree

from support.ansible_run import run_playbook


def _run_role(tmp_path, variables, check=False):
    play = [{'hosts': 'localhost', 'gather_facts': False,
             'roles': [dict({'role': 'kvmops.hypervisor.image_storage',
                             'image_storage_selinux': 'skip'}, **variables)]}]
    path = str(tmp_path / 'play.yml')
    with open(path, 'w') as f:
        json.dump(play, f)
    doc = run_playbook(path, check=check)
    results = {}
    for p in doc['plays']:
        for t in p['tasks']:
            results[t['task']['name'].split(' : ')[-1]] = t['hosts'].get('localhost', {})
    return doc, results


def _pool(conn, name):
    try:
        return conn.storagePoolLookupByName(name)
    except libvirt.libvirtError:
        return None


def _remove_pool(conn, name):
    pool = _pool(conn, name)
    if pool is None:
        return
    if pool.isActive():
        pool.destroy()
    pool.undefine()


def test_hostile_pool_name_and_directory_are_escaped_never_injected(conn, prefix, image_dir, tmp_path):
    # libvirt refuses "/" in a pool name (so no closing tag): an opening tag, an entity, quotes
    name = prefix + "p<uuid>00000000-0000-0000-0000-000000000000<x a='1'>&amp;\"q"
    directory = os.path.join(image_dir, "a</path></target><source><dir path='"
                             "/etc'/></source><target><path>b&amp;\"q")
    variables = {'image_storage_dir': directory, 'image_storage_pool_name': name}
    try:
        doc, r = _run_role(tmp_path, variables)
        assert doc['_rc'] == 0, json.dumps({k: v.get('msg') for k, v in r.items() if v.get('failed')})
        pool = _pool(conn, name)
        assert pool is not None, [p.name() for p in conn.listAllStoragePools()]
        tree = etree.fromstring(pool.XMLDesc(0).encode())
        assert tree.findtext('name') == name
        assert tree.findtext('target/path') == directory
        assert tree.find('source/dir') is None                  # nothing injected
        assert tree.findtext('uuid') != '00000000-0000-0000-0000-000000000000'
        assert pool.isActive() and pool.autostart()
        assert os.path.isdir(directory)
        # the re-run reads libvirt's escaped answer back as the same directory: no change,
        # no "already exists on another directory"
        doc, r = _run_role(tmp_path, variables)
        assert doc['_rc'] == 0, json.dumps({k: v.get('msg') for k, v in r.items() if v.get('failed')})
        assert doc['stats']['localhost']['changed'] == 0, \
            [k for k, v in r.items() if v.get('changed')]
    finally:
        _remove_pool(conn, name)
        shutil.rmtree(os.path.join(image_dir, 'a<'), ignore_errors=True)


@pytest.mark.parametrize('variables', [
    {'image_storage_pool_name': 'ok\n<name>two</name>'},
    {'image_storage_pool_name': 'a/b'},
    {'image_storage_dir_suffix': '\x1b[31m'},
], ids=['line-break-in-name', 'slash-in-name', 'control-character-in-directory'])
def test_values_xml_cannot_carry_are_refused(conn, prefix, image_dir, tmp_path, variables):
    variables = dict(variables)
    variables['image_storage_pool_name'] = prefix + variables.get('image_storage_pool_name', 'pool')
    variables['image_storage_dir'] = os.path.join(image_dir, 'd' + variables.pop('image_storage_dir_suffix', ''))
    doc, r = _run_role(tmp_path, variables)
    assert doc['_rc'] != 0
    failed = [(k, v) for k, v in r.items() if v.get('failed')]
    assert [k for k, v in failed] == ['Refuse a pool name or directory that XML cannot carry'], failed
    assert 'cannot be written into libvirt\'s pool XML' in failed[0][1]['msg']
    assert not [p.name() for p in conn.listAllStoragePools() if p.name().startswith(prefix)]
    assert not os.path.exists(variables['image_storage_dir'])   # refused before the directory
