"""virt_install_domains (issue 13) against the real libvirtd (QEMU/TCG): many tiny guests in
one run, verified independently (libvirt XML, image files, serial logs); a re-run changes
nothing; one changed guest is the only one reported; a bad guest among good ones fails the
run before anything exists; ten volumes in one pool created concurrently, 20 times.
Installs side by side are in test_virt_install_domains_install.py."""
import os
import threading

import libvirt
import pytest
from lxml import etree

from support.ansible_run import run_module
from support.libvirt_helpers import tiny_guest_xml

GIB = 1024 ** 3
MIB = 1024 ** 2


def vids(args, check=False, diff=False):
    return run_module('virt_install_domains', args, check=check, diff=diff, timeout=900)


def lookup(conn, name):
    try:
        return conn.lookupByName(name)
    except libvirt.libvirtError:
        return None


def tiny_defaults(tiny):
    return {'memory': '128MiB', 'vcpus': 1, 'virt_type': 'qemu', 'os_variant': 'linux',
            'networks': [], 'graphics': {'type': 'none'}}


def tiny_guests(prefix, image_dir, count, tiny):
    return [{'name': '%sg%02d' % (prefix, i), 'kernel': tiny['kernel'], 'initrd': tiny['initrd'],
             'cmdline': 'console=ttyS0',
             'serial': os.path.join(image_dir, 'g%02d.log' % i),
             'disks': [{'path': os.path.join(image_dir, 'g%02d.img' % i), 'size': 0.0625}]}
            for i in range(count)]


def ok(res):
    assert not res.get('failed'), res.get('msg', res)
    return res


def ours(conn, prefix):
    return sorted(d.name() for d in conn.listAllDomains() if d.name().startswith(prefix))


def test_ten_guests_in_one_run(conn, prefix, image_dir, tiny):
    guests = tiny_guests(prefix, image_dir, 10, tiny)
    args = {'defaults': tiny_defaults(tiny), 'guests': guests, 'parallel': 5}
    names = [g['name'] for g in guests]

    # check mode: every guest would be made, nothing exists afterwards
    res = ok(vids(args, check=True, diff=True))
    assert res['changed'] and res['summary']['changed'] == 10
    assert ours(conn, prefix) == [] and os.listdir(image_dir) == []
    assert len(res['diff']) == 10 and '<name>%s</name>' % names[3] in res['diff'][3]['after']

    # real: ten domains defined and running, each with its own disk and console
    res = ok(vids(args))
    assert res['changed'] and res['summary']['changed_guests'] == names
    assert [r['name'] for r in res['guests']] == names
    assert ours(conn, prefix) == names
    for g, r in zip(guests, res['guests']):
        dom = conn.lookupByName(g['name'])
        assert dom.isActive() and r['uuid'] == dom.UUIDString() and r['state'] == 'running'
        x = etree.fromstring(dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE).encode())
        assert x.get('type') == 'qemu' and x.findtext('memory') == str(128 * 1024)
        assert x.findtext('vcpu') == '1' and x.findtext('os/kernel') == tiny['kernel']
        assert x.find('devices/disk/source').get('file') == g['disks'][0]['path']
        assert x.find('devices/serial/source').get('path') == g['serial']
        img = g['disks'][0]['path']
        assert os.path.getsize(img) == 64 * MIB and os.stat(img).st_blocks * 512 < MIB
    # (No wait for ten TCG boots here: on a shared 2-core machine that takes minutes. The
    # install tests and test_virt_install_domain.py read the tiny guest's console.)

    # check mode again and a re-run: unchanged, nothing churned
    before = [conn.lookupByName(n).XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE) for n in names]
    assert not ok(vids(args, check=True))['changed']
    res = ok(vids(args))
    assert not res['changed'] and res['summary']['unchanged'] == 10
    assert all(not r['changed'] and r['differences'] == [] for r in res['guests'])
    assert [conn.lookupByName(n).XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE)
            for n in names] == before

    # one guest changed in the list: only it reports changed (and its diff)
    changed = [dict(g) for g in guests]
    changed[6]['memory'] = 192
    res = ok(vids(dict(args, guests=changed), diff=True))
    assert res['changed'] and res['summary']['changed_guests'] == [names[6]]
    assert [r['changed'] for r in res['guests']] == [i == 6 for i in range(10)]
    assert res['guests'][6]['restart_required']
    assert len(res['diff']) == 1 and names[6] in res['diff'][0]['before_header']
    x = conn.lookupByName(names[6]).XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE)
    assert "<memory unit='KiB'>196608</memory>" in x
    assert [conn.lookupByName(n).XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE)
            for i, n in enumerate(names) if i != 6] == before[:6] + before[7:]

    # all gone with their images, in one run
    res = ok(vids({'defaults': {'state': 'absent', 'remove_storage': True},
                   'guests': [{'name': n} for n in names]}))
    assert res['summary']['changed'] == 10 and ours(conn, prefix) == []
    assert [f for f in os.listdir(image_dir) if f.endswith('.img')] == []


def _foreign(conn, prefix, image_dir, tiny):
    xml = tiny_guest_xml(prefix + 'bad', tiny, os.path.join(image_dir, 'foreign.log'))
    conn.defineXML(xml)
    return conn.lookupByName(prefix + 'bad').XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE)


@pytest.mark.parametrize('fault', ['missing_iso', 'foreign_domain', 'disk_of_another_size'])
def test_one_bad_guest_fails_the_run_before_anything_exists(conn, prefix, image_dir, tiny,
                                                            fault):
    guests = tiny_guests(prefix, image_dir, 3, tiny)
    bad = {'name': prefix + 'bad', 'disks': [{'path': os.path.join(image_dir, 'bad.img'),
                                              'size': 0.0625}]}
    foreign_xml = None
    if fault == 'missing_iso':
        bad['install'] = {'cdrom': os.path.join(image_dir, 'no-such.iso')}
        expect = 'install.cdrom=%s/no-such.iso does not exist' % image_dir
    elif fault == 'foreign_domain':
        foreign_xml = _foreign(conn, prefix, image_dir, tiny)
        bad['install'] = {'cdrom': tiny['iso']}
        expect = 'a domain named %sbad exists and was not created by kvmops' % prefix
    else:
        with open(bad['disks'][0]['path'], 'wb') as f:
            f.truncate(32 * MIB)
        expect = 'exists already with 0.031 GiB, not the 0.062 GiB asked for'
    guests.insert(1, bad)
    files_before = sorted(os.listdir(image_dir))

    res = vids({'defaults': tiny_defaults(tiny), 'guests': guests})
    assert res.get('failed') and res['changed'] is False
    assert res['msg'].startswith('Nothing was created or changed: 1 guest cannot be made. '
                                 '[%sbad] ' % prefix), res['msg']
    assert expect in res['msg'], res['msg']
    assert [r['name'] for r in res['guests'] if r.get('failed')] == [prefix + 'bad']
    # nothing for the bad guest, nothing half-made for the good ones
    assert ours(conn, prefix) == ([prefix + 'bad'] if foreign_xml else [])
    assert sorted(os.listdir(image_dir)) == files_before
    if foreign_xml:
        dom = conn.lookupByName(prefix + 'bad')
        assert dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE) == foreign_xml and not dom.isActive()
    else:
        assert os.path.getsize(bad['disks'][0]['path']) == 32 * MIB if fault != 'missing_iso' \
            else True


def test_a_guest_failing_mid_run_names_it_and_the_others_finish(conn, prefix, image_dir, tiny):
    # The image directory of one guest vanishes between its plan and its run? Not reachable
    # from outside; instead libvirt refuses one definition (a machine type it does not know).
    guests = tiny_guests(prefix, image_dir, 3, tiny)
    guests[2]['machine'] = 'no-such-machine'
    res = vids({'defaults': dict(tiny_defaults(tiny), state='present'), 'guests': guests})
    assert res.get('failed') and res['changed']
    assert res['msg'].startswith('1 of 3 guests failed (the others were converged): [%sg02] '
                                 % prefix), res['msg']
    assert res['summary']['failed_guests'] == [prefix + 'g02']
    assert ours(conn, prefix) == [prefix + 'g00', prefix + 'g01']
    # the failed guest's new image was rolled back with its definition
    assert not os.path.exists(guests[2]['disks'][0]['path'])
    assert res['guests'][2]['failed'] and 'libvirt refused the definition' in res['guests'][2]['msg']


@pytest.fixture
def pool(conn, prefix, image_dir):
    path = os.path.join(image_dir, 'pool')
    os.makedirs(path)
    xml = ("<pool type='dir'><name>%spool</name><target><path>%s</path></target></pool>"
           % (prefix, path))
    p = conn.storagePoolDefineXML(xml, 0)
    p.create(0)
    yield p
    # remove_everything_named (prefix fixture) removes the pool and its volumes


def test_ten_volumes_in_one_pool_concurrently_twenty_times(conn, prefix, image_dir, pool, tiny):
    """No boot: the batch itself (module_utils, one real connection, ten workers) creates ten
    volumes in one pool at once, checks them and removes them, 20 times; then once through
    the module. A pool refresh runs in a loop meanwhile, as another tool would."""
    import sys
    from support import paths
    sys.path.insert(0, paths.COLLECTIONS_DIR)
    from ansible_collections.kvmops.hypervisor.plugins.module_utils._guest import batch
    from ansible_collections.kvmops.hypervisor.plugins.module_utils._guest import shared

    pname = prefix + 'pool'
    guests = [{'name': '%sv%02d' % (prefix, i), 'state': 'present',
               'disks': [{'pool': pname, 'volume': '%sv%02d.img' % (prefix, i),
                          'size': 0.0625, 'format': 'raw'}]} for i in range(10)]
    defaults = dict(tiny_defaults(tiny))
    stop = threading.Event()
    refresh_errors = []

    def refresher():
        c = libvirt.open(paths.URI)
        try:
            p = c.storagePoolLookupByName(pname)
            while not stop.is_set():
                try:
                    p.refresh(0)
                except libvirt.libvirtError as exc:
                    refresh_errors.append(str(exc))
                stop.wait(0.01)
        finally:
            c.close()
    t = threading.Thread(target=refresher, daemon=True)
    t.start()
    try:
        for rep in range(20):
            prepared = batch.prepare(guests, defaults)
            out = batch.Batch(conn._conn, prepared, parallel=10).run()
            assert out['summary']['changed'] == 10, (rep, out['summary'])
            vols = sorted(v for v in pool.listVolumes() if v.startswith(prefix))
            assert vols == sorted(g['disks'][0]['volume'] for g in guests), rep
            for v in vols:
                assert pool.storageVolLookupByName(v).info()[1] == 64 * MIB
            gone = batch.prepare([{'name': g['name'], 'state': 'absent',
                                   'remove_storage': True} for g in guests], defaults)
            out = batch.Batch(conn._conn, gone, parallel=10).run()
            assert out['summary']['changed'] == 10, (rep, out['summary'])
            assert ours(conn, prefix) == []
    finally:
        stop.set()
        t.join(10)
    # Through the module once (the same code path, real Ansible).
    res = ok(vids({'defaults': defaults, 'guests': guests, 'parallel': 10}))
    assert res['summary']['changed'] == 10 and len(ours(conn, prefix)) == 10
    assert not any(shared.ASYNC_JOBS in repr(r) for r in res['guests'])


def test_preflight_report_lists_problems_and_defers_instead_of_failing(conn, prefix, image_dir,
                                                                       tiny, tmp_path):
    """preflight=report in check mode (the guests role's preflight): nothing fails, nothing is
    made; missing media and an install URL that answers 404 are listed per guest, a guest
    whose image directory does not exist yet is deferred."""
    from support.http_server import TreeServer
    good = tiny_guests(prefix, image_dir, 1, tiny)[0]
    later = dict(good, name=prefix + 'later', serial=None,
                 disks=[{'path': os.path.join(image_dir, 'new', 'later.img'), 'size': 0.0625}])
    noiso = {'name': prefix + 'noiso', 'install': {'cdrom': os.path.join(image_dir, 'w.iso')},
             'disks': [{'path': os.path.join(image_dir, 'noiso.img'), 'size': 0.0625}]}
    server = TreeServer(str(tmp_path))
    try:
        url = server.url + 'no/tree/'
        nourl = {'name': prefix + 'nourl', 'install': {'location': url, 'timeout': 10},
                 'disks': [{'path': os.path.join(image_dir, 'nourl.img'), 'size': 0.0625}]}
        args = {'defaults': tiny_defaults(tiny), 'guests': [good, later, noiso, nourl],
                'preflight': 'report'}
        res = ok(vids(args, check=True))
        assert server.requests == ['/no/tree/']
        # without preflight=report the plan fails before anything is made, naming each guest
        fail_args = dict(args, guests=[good, later, nourl])
        del fail_args['preflight']
        failed = vids(fail_args, check=True)
    finally:
        server.close()
    assert [r['name'] for r in res['guests']] == [good['name'], noiso['name'], nourl['name']]
    assert res['summary']['changed_guests'] == [good['name']]
    assert res['summary']['failed_guests'] == [noiso['name'], nourl['name']]
    assert [(p['guest'], p['option'], p['source'], p['problem'])
            for p in res['preflight']['media']] == [
        (noiso['name'], 'install.cdrom', noiso['install']['cdrom'], 'no such file'),
        (nourl['name'], 'install.location', url, 'HTTP 404')]
    [deferred] = res['preflight']['deferred']
    assert deferred['guest'] == later['name'] and deferred['reason'] == 'directory'
    assert os.path.join(image_dir, 'new') in deferred['msg']
    assert ours(conn, prefix) == [] and os.listdir(image_dir) == []

    assert failed.get('failed') and failed['msg'].startswith(
        'Nothing was created or changed: 2 guests cannot be made. [%s] disks[0]: the directory'
        % later['name']), failed['msg']
    assert '[%s] install.location=%s cannot be fetched (HTTP 404)' % (nourl['name'], url) \
        in failed['msg']
    assert [p['guest'] for p in failed['preflight']['media']] == [nourl['name']]
    # report is a check-mode answer only
    res = vids(args)
    assert res.get('failed') and 'needs check mode' in res['msg']
    assert ours(conn, prefix) == [] and os.listdir(image_dir) == []


def test_preflight_report_defers_every_guest_where_libvirt_is_not_installed(
        prefix, image_dir, tiny, tmp_path):
    """A bare host in check mode: the module runs under a Python without libvirt-python (a venv
    without system packages stands in for it) and defers every guest instead of failing."""
    import subprocess
    import sys
    venv = str(tmp_path / 'bare')
    subprocess.run([sys.executable, '-m', 'venv', '--without-pip', venv], check=True, timeout=120)
    args = {'defaults': tiny_defaults(tiny), 'preflight': 'report',
            'guests': tiny_guests(prefix, image_dir, 2, tiny)}
    res = ok(run_module('virt_install_domains', args, check=True,
                        env={'ANSIBLE_PYTHON_INTERPRETER': os.path.join(venv, 'bin', 'python')}))
    assert res['guests'] == [] and not res['changed']
    assert [d['guest'] for d in res['preflight']['deferred']] == [g['name'] for g in args['guests']]
    assert all(d['reason'] == 'libvirt' and d['msg'].startswith('libvirt is not installed yet')
               for d in res['preflight']['deferred'])
