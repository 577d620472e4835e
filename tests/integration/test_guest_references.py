"""What a guest's NICs name on the host is checked in the plan (issue 27, point 1): a libvirt
network that does not exist, one that is not active, a bridge the host does not have. libvirt
itself only refuses them when the guest starts, after its domain and disk were made.

For each: check mode, virt_install_domains' preflight=report and a real run report the
problem with its fix, and nothing is created (no domain, no image). Real libvirtd."""
import os

from support.ansible_run import run_tasks


def guest(prefix, image_dir, tiny, name, networks):
    return dict(name=prefix + name, state='running', virt_type='qemu', kernel=tiny['kernel'],
                graphics={'type': 'none'}, networks=networks,
                disks=[{'path': os.path.join(image_dir, name + '.img'), 'size': 1}])


def nothing_made(conn, prefix, image_dir):
    assert os.listdir(image_dir) == []
    assert not [d for d in conn.listAllDomains() if d.name().startswith(prefix)]


def test_missing_network_reported_in_check_report_and_real_run(conn, prefix, image_dir, tiny):
    missing = prefix + 'nonet'
    args = guest(prefix, image_dir, tiny, 'vm', [{'network': missing}])
    one = {'kvmops.hypervisor.virt_install_domain': args}
    many = {'kvmops.hypervisor.virt_install_domains': {
        'guests': [args, guest(prefix, image_dir, tiny, 'ok', [])]}}
    report = {'kvmops.hypervisor.virt_install_domains': {
        'preflight': 'report', 'guests': [args, guest(prefix, image_dir, tiny, 'ok', [])]}}

    checked = run_tasks([one, many, report], check=True, ignore_errors=True)
    for res in checked[:2]:
        assert res.get('failed'), res
        assert 'no libvirt network of that name' in res['msg'], res['msg']
        assert 'kvmops.hypervisor.virt_network' in res['msg'] and missing in res['msg']
    rep = checked[2]
    assert not rep.get('failed'), rep.get('msg')
    bad = [g for g in rep['guests'] if g.get('failed')]
    assert [g['name'] for g in bad] == [prefix + 'vm'], rep['guests']
    assert 'no libvirt network of that name' in bad[0]['msg']
    nothing_made(conn, prefix, image_dir)

    real = run_tasks([one, many], ignore_errors=True)
    for res in real:
        assert res.get('failed') and 'no libvirt network of that name' in res['msg'], res
    nothing_made(conn, prefix, image_dir)


def test_inactive_network_and_missing_bridge(conn, prefix, image_dir, tiny):
    """A defined but inactive network refuses a guest that is to run; a guest only defined
    (state present) may use it. A bridge the host lacks is refused."""
    name = prefix + 'idle'
    net = conn.networkDefineXML("<network><name>%s</name><bridge name='kv%s'/></network>"
                                % (name, prefix[-6:].replace('-', '')))
    try:
        running = guest(prefix, image_dir, tiny, 'vm', [{'network': name}])
        bridge = guest(prefix, image_dir, tiny, 'br', [{'bridge': 'kvnobr0'}])
        res = run_tasks([{'kvmops.hypervisor.virt_install_domain': running},
                         {'kvmops.hypervisor.virt_install_domain': bridge}],
                        ignore_errors=True)
        assert res[0].get('failed') and 'not active' in res[0]['msg'], res[0]
        assert 'state: active' in res[0]['msg']
        assert res[1].get('failed') and 'no such bridge' in res[1]['msg'], res[1]
        nothing_made(conn, prefix, image_dir)
        present = dict(running, state='present')
        res = run_tasks([{'kvmops.hypervisor.virt_install_domain': present}], check=True)
        assert not res[0].get('failed') and res[0]['changed'], res[0]
    finally:
        net.undefine()


def test_every_bad_guest_is_named(conn, prefix, image_dir, tiny):
    """A guest whose options are bad does not hide the others' problems (issue 27, point 3):
    one fails validation, one names a missing network, one a missing kernel; all three are
    named, nothing is made, and the good guest is not created either."""
    guests = [dict(guest(prefix, image_dir, tiny, 'g1', []), memory='lots'),
              guest(prefix, image_dir, tiny, 'g2', [{'network': prefix + 'nonet'}]),
              dict(guest(prefix, image_dir, tiny, 'g3', []), kernel='/nonexistent/vmlinuz'),
              guest(prefix, image_dir, tiny, 'ok', [])]
    res = run_tasks([{'kvmops.hypervisor.virt_install_domains': {'guests': guests}}],
                    ignore_errors=True)[0]
    assert res.get('failed')
    assert '3 guests cannot be made' in res['msg'], res['msg']
    for name, why in (('g1', 'not a size'), ('g2', 'no libvirt network'),
                      ('g3', 'not a file')):
        assert '[%s%s] ' % (prefix, name) in res['msg'] and why in res['msg'], (name, res['msg'])
    assert res['summary']['failed_guests'] == [prefix + n for n in ('g1', 'g2', 'g3')]
    nothing_made(conn, prefix, image_dir)
