"""Secrets never leak: every no_log option of the collection, through real ansible-playbook runs.

One play sets every secret the modules take (virt_install_domain graphics.password on a guest
installed with a kickstart that carries a root password, vnc_listen password per guest and
host-wide in a qemu.conf copy with backup) and runs in check mode, for real, and again with
a changed password (the live password change). While it runs a thread samples every
process's argv from /proc (QEMU's, libvirtd's helpers', Ansible's workers'); afterwards the
test greps the -vvv output, the results and diffs in it, Ansible's log file, and every file
written during the run under /tmp, ~/.ansible, the image and cache directories and libvirt's
log and state directories. Only the inputs and the files whose job is to hold the secret may
contain it, and those must be 0600/0640.

test_every_no_log_option_is_covered fails when a module gains a no_log option that this test
does not exercise: add it here. test_cloud_init_passwords_never_in_clear covers the cloud-init
password (hashed on the hypervisor) and password_hash (only in the guest's seed).
"""
import json
import os
import stat
import subprocess
import time
import uuid

import libvirt
import pytest
import yaml

from support import paths
from support.ansible_run import ansible_env
from support.http_server import TreeServer
from support.secrets_scan import ProcSampler, files_changed_since, files_holding

TREES = '/var/cache/kvmops-testbed/tiny/trees'
INSTALLER_ARGS = 'console=tty0 console=ttyS0,115200 kvmops.installer=1'
MODULES = ('virt_install_domain', 'virt_install_domains', 'vnc_listen', 'selinux_virt_dir',
           'kvm_capability_facts')
# module -> dotted no_log options this test sets
COVERED = {
    'virt_install_domain': {'graphics.password', 'cloud_init.password',
                            'cloud_init.password_hash'},
    'virt_install_domains': {'guests.graphics.password', 'defaults.graphics.password',
                             'guests.cloud_init.password', 'guests.cloud_init.password_hash',
                             'defaults.cloud_init.password', 'defaults.cloud_init.password_hash'},
    'vnc_listen': {'password'},
}


def _no_log_options(spec, prefix=''):
    found = set()
    for name, opt in spec.items():
        if opt.get('no_log'):
            found.add(prefix + name)
        if opt.get('options'):
            found |= _no_log_options(opt['options'], prefix + name + '.')
    return found


def _argument_spec(module):
    """The module's argument_spec, read from the module's main() without running it."""
    import importlib
    from ansible.module_utils import basic
    mod = importlib.import_module('ansible_collections.kvmops.hypervisor.plugins.modules.' + module)
    if hasattr(mod, 'argument_spec'):
        return mod.argument_spec()
    captured = {}

    class Stop(Exception):
        pass

    def fake_init(self, argument_spec, **kw):
        captured.update(argument_spec)
        raise Stop()
    orig = basic.AnsibleModule.__init__
    basic.AnsibleModule.__init__ = fake_init
    try:
        mod.main()
    except Stop:
        pass
    finally:
        basic.AnsibleModule.__init__ = orig
    return captured


def test_every_no_log_option_is_covered():
    for module in MODULES:
        found = _no_log_options(_argument_spec(module))
        assert found == COVERED.get(module, set()), (module, found)


def _secret(tag, n=8):
    return ('%s%s' % (tag, uuid.uuid4().hex))[:n]


def _run(playbook, log, extra_args=()):
    # (not ANSIBLE_DISPLAY_ARGS_TO_STDOUT: Ansible documents that it prints no_log values)
    env = ansible_env({'ANSIBLE_STDOUT_CALLBACK': 'default', 'ANSIBLE_LOG_PATH': log})
    cmd = [os.path.join(paths.VENV, 'bin', 'ansible-playbook'), '-i', 'localhost,', '-c',
           'local', '-vvv', '--diff', playbook] + list(extra_args)
    proc = subprocess.run(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          universal_newlines=True, timeout=600, check=False)
    return proc


def _mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.mark.slow
def test_no_secret_leaks_from_any_run(conn, prefix, image_dir, tmp_path):
    secrets = {
        'vnc': _secret('Vn'), 'vnc2': _secret('Vm'), 'dom': _secret('Dm'),
        'host': _secret('Hs'), 'ks': _secret('KsRootPw', 24),
        'many': _secret('Mg'), 'mdef': _secret('Md'),
    }
    name = prefix + 'sec'
    ks = os.path.join(image_dir, 'ks.cfg')
    with open(ks, 'w') as f:
        f.write('# kickstart\nrootpw --plaintext %s\n' % secrets['ks'])
    os.chmod(ks, 0o600)
    conf = tmp_path / 'qemu.conf'
    with open(os.path.join(paths.FIXTURES, 'qemu_conf', '9.0.0-debian12.conf'), 'rb') as f:
        conf.write_bytes(f.read())
    os.chmod(str(conf), 0o644)  # too open for a password: the module must tighten it
    cache = os.path.join(image_dir, 'cache')
    domain_task = {'kvmops.hypervisor.virt_install_domain': {
        'name': name, 'memory': 256, 'virt_type': 'qemu', 'os_variant': 'linux',
        'disks': [{'path': os.path.join(image_dir, 'sec.img'), 'size': 0.02}], 'networks': [],
        'graphics': {'type': 'vnc', 'listen': '127.0.0.1', 'password': '{{ vnc_pw }}'},
        'serial': os.path.join(image_dir, 'sec.log'), 'wait': -1,
        'install': {'location': os.path.join(TREES, 'rhel'), 'extra_args': INSTALLER_ARGS,
                    'kickstart': ks, 'cache_dir': cache}}}
    play = [{'hosts': 'localhost', 'gather_facts': False,
             'vars': {'vnc_pw': secrets['vnc']},
             'tasks': [
                 dict(domain_task, name='guest with a VNC password and a kickstart'),
                 {'name': 'per-guest VNC password',
                  'ignore_errors': '{{ ansible_check_mode }}',  # no guest yet in check mode
                  'kvmops.hypervisor.vnc_listen': {'scope': 'domains', 'domains': [name],
                                                   'listen': '127.0.0.1',
                                                   'password': secrets['dom']}},
                 {'name': 'many guests: own and default VNC passwords',
                  'kvmops.hypervisor.virt_install_domains': {
                      'defaults': {'graphics': {'type': 'vnc', 'listen': '127.0.0.1',
                                                'password': secrets['mdef']}},
                      'guests': [
                          {'name': name + '-m1', 'state': 'present', 'memory': 128,
                           'virt_type': 'qemu', 'os_variant': 'linux', 'disks': [],
                           'networks': [], 'graphics': {'type': 'vnc', 'listen': '127.0.0.1',
                                                        'password': secrets['many']}},
                          {'name': name + '-m2', 'state': 'present', 'memory': 128,
                           'virt_type': 'qemu', 'os_variant': 'linux', 'disks': [],
                           'networks': []}]}},
                 {'name': 'host-wide VNC password',
                  'kvmops.hypervisor.vnc_listen': {'config': str(conf), 'listen': '127.0.0.1',
                                                   'password': secrets['host'],
                                                   'backup': True}},
             ]}]
    playbook = str(tmp_path / 'play.yml')
    with open(playbook, 'w') as f:
        yaml.safe_dump(play, f)
    log = str(tmp_path / 'ansible.log')
    home_ansible = os.path.expanduser('~/.ansible')
    start = time.time() - 1
    outputs = []
    with ProcSampler() as sampler:
        check = _run(playbook, log, ['--check'])
        outputs.append(check.stdout + check.stderr)
        assert check.returncode == 0, check.stdout[-3000:]
        assert not os.path.exists(os.path.join(image_dir, 'sec.img'))
        real = _run(playbook, log)
        outputs.append(real.stdout + real.stderr)
        assert real.returncode == 0, real.stdout[-3000:]
        # again with another console password: changed live on the running guest
        vars_file = str(tmp_path / 'vars.json')  # never on the command line
        with open(vars_file, 'w') as f:
            json.dump({'vnc_pw': secrets['vnc2']}, f)
        again = _run(playbook, log, ['-e', '@' + vars_file])
        outputs.append(again.stdout + again.stderr)
        assert again.returncode == 0, again.stdout[-3000:]
    assert sampler.samples > 50
    assert 'console password changed live' in again.stdout

    dom = conn.lookupByName(name)
    secure = dom.XMLDesc(libvirt.VIR_DOMAIN_XML_SECURE)
    assert "passwd='%s'" % secrets['dom'] in secure  # the last task set it, for real
    for n, key in (('-m1', 'many'), ('-m2', 'mdef')):
        xml = conn.lookupByName(name + n).XMLDesc(libvirt.VIR_DOMAIN_XML_SECURE)
        assert "passwd='%s'" % secrets[key] in xml, (n, xml)

    # The wrong passwords are not the point; the leaks are. Everything written during the run:
    roots = ['/tmp', home_ansible, image_dir, cache, str(tmp_path), '/var/log/libvirt',
             '/var/lib/libvirt/qemu', '/run/libvirt/qemu', '/etc/libvirt/qemu',
             '/var/lib/libvirt/boot']
    written = files_changed_since(roots, start)
    libvirt_own = set('/etc/libvirt/qemu/%s.xml' % n for n in (name, name + '-m1', name + '-m2'))
    libvirt_own.add('/run/libvirt/qemu/%s.xml' % name)
    inputs = {playbook, ks, vars_file}
    backups = [p for p in written if os.path.basename(p).startswith('qemu.conf.')
               and p.startswith(str(tmp_path))]
    assert backups, written
    report = {}
    for key, secret in secrets.items():
        leaks = {}
        argv = sampler.hits(secret)
        if argv:
            leaks['argv'] = argv
        out = [i for i, text in enumerate(outputs) if secret in text]
        if out:
            leaks['output of run'] = out
        with open(log) as f:
            if secret in f.read():
                leaks['ansible log'] = True
        files = set(files_holding(written, secret)) - libvirt_own - inputs
        if key == 'host':
            files -= {str(conf)} | set(backups)
        if files:
            leaks['files'] = sorted(files)
        if leaks:
            report[key] = leaks
    if report:
        for i, text in enumerate(outputs):
            for key, secret in secrets.items():
                at = text.find(secret)
                if at >= 0:
                    report.setdefault('context', []).append((i, key, text[max(0, at - 400):at + 50]))
    assert not report, json.dumps(report, indent=1, default=str)

    # Files that must hold a secret are not readable by others.
    assert _mode(str(conf)) in (0o600, 0o640), oct(_mode(str(conf)))
    for b in backups:
        assert _mode(b) in (0o600, 0o640), (b, oct(_mode(b)))
    for p in libvirt_own:
        if os.path.exists(p):
            assert _mode(p) & 0o077 == 0, (p, oct(_mode(p)))
            assert os.stat(p).st_uid == 0
    # The injected initrd (holding the kickstart) is gone after the install; nothing else
    # in the cache holds the kickstart's password.
    for dirpath, dirnames, filenames in os.walk(cache):
        assert not [f for f in filenames if f.startswith('initrd-inject-')], filenames
    # No leftover of Ansible's module temporary files from these runs.
    leftovers = files_changed_since([os.path.join(home_ansible, 'tmp')], start)
    assert not files_holding(leftovers, secrets['vnc'])


def test_public_vnc_without_tls_is_refused_on_every_path(conn, prefix, image_dir, tmp_path):
    """Host setting, per-guest listen and a guest's graphics option: each refuses 0.0.0.0
    without TLS and changes nothing; allow_insecure lets it through (check mode only: no test
    ever listens beyond loopback)."""
    conf = tmp_path / 'qemu.conf'
    with open(os.path.join(paths.FIXTURES, 'qemu_conf', '9.0.0-debian12.conf'), 'rb') as f:
        conf.write_bytes(f.read())
    before = conf.read_bytes()
    name = prefix + 'pub'
    guest = {'name': name, 'virt_type': 'qemu', 'os_variant': 'linux', 'state': 'present',
             'memory': 128, 'disks': [], 'networks': [],
             'graphics': {'type': 'vnc', 'listen': '0.0.0.0'}}
    tasks = [
        {'kvmops.hypervisor.vnc_listen': {'config': str(conf), 'listen': '0.0.0.0'}},
        {'kvmops.hypervisor.virt_install_domain': guest},
        {'kvmops.hypervisor.virt_install_domain': dict(guest, graphics={
            'type': 'vnc', 'listen': '::', 'password': 'abc'})},
    ]
    play = [{'hosts': 'localhost', 'gather_facts': False, 'tasks': [
        dict(t, name='t%d' % i, ignore_errors=True) for i, t in enumerate(tasks)]}]
    playbook = str(tmp_path / 'play.yml')
    with open(playbook, 'w') as f:
        yaml.safe_dump(play, f)
    from support.ansible_run import run_playbook
    doc = run_playbook(playbook)
    results = [t['hosts']['localhost'] for t in doc['plays'][0]['tasks']]
    for r in results:
        assert r.get('failed') and 'without TLS' in r['msg'], r
    assert 'allow_insecure' in results[1]['msg'] and 'abc' not in json.dumps(results)
    assert conf.read_bytes() == before
    with pytest.raises(libvirt.libvirtError):
        conn.lookupByName(name)
    # allowed explicitly: accepted (check mode, so nothing is defined and nothing listens)
    play[0]['tasks'] = [{'name': 'allowed', 'kvmops.hypervisor.virt_install_domain': dict(
        guest, graphics={'type': 'vnc', 'listen': '0.0.0.0', 'allow_insecure': True})}]
    with open(playbook, 'w') as f:
        yaml.safe_dump(play, f)
    doc = run_playbook(playbook, check=True)
    res = doc['plays'][0]['tasks'][0]['hosts']['localhost']
    assert not res.get('failed') and res['changed'], res
    with pytest.raises(libvirt.libvirtError):
        conn.lookupByName(name)


@pytest.mark.slow
def test_cloud_init_passwords_never_in_clear(conn, prefix, image_dir, tmp_path):
    """cloud_init.password is hashed on the hypervisor: the clear text is in no argv, output,
    log or file written by the run (not even the seed); cloud_init.password_hash lands only
    in the guest's seed, which is 0600/0640. Both modules, virt_install_domains with the
    options in defaults and in guests[]. A defined, never started guest is enough."""
    clear = _secret('CiClear', 20)
    given_hash = '$6$kvmopssalt$' + _secret('CiHash', 40)
    www = tmp_path / 'www'
    www.mkdir()
    base = str(www / 'base.qcow2')
    subprocess.run(['qemu-img', 'create', '-q', '-f', 'qcow2', base, '32M'], check=True)
    seeds = os.path.join(image_dir, 'seeds')
    server = TreeServer(str(www))
    try:
        def options(n, **cloud):
            out = {'name': '%sci%d' % (prefix, n), 'memory': 256, 'virt_type': 'qemu',
                   'os_variant': 'debian12', 'state': 'present', 'graphics': {'type': 'none'},
                   'networks': [],
                   'disks': [{'path': os.path.join(image_dir, 'ci%d.qcow2' % n), 'size': 1,
                              'base_image': {'url': server.url + 'base.qcow2',
                                             'checksum': 'sha256:%s' % _sha256(base),
                                             'cache_dir': os.path.join(image_dir,
                                                                       'base-cache')}}]}
            if cloud:
                out['cloud_init'] = dict(cloud, hostname='ci%d' % n, seed_dir=seeds)
            return out

        def guest(n, **cloud):
            return {'kvmops.hypervisor.virt_install_domain': options(n, **cloud)}

        def batch(defaults_cloud, *guests):
            # every no_log cloud option of virt_install_domains: in defaults and in guests[]
            return {'kvmops.hypervisor.virt_install_domains': {
                'defaults': {'cloud_init': dict(defaults_cloud, seed_dir=seeds)},
                'guests': list(guests)}}
        play = [{'hosts': 'localhost', 'gather_facts': False, 'tasks': [
            dict(guest(1, password=clear), name='cloud guest with a clear-text password'),
            dict(guest(2, password_hash=given_hash), name='cloud guest with a password hash'),
            dict(batch({'password': clear}, options(3),
                       options(4, password_hash=given_hash)),
                 name='batch: a default password, a guest password hash'),
            dict(batch({'password_hash': given_hash}, options(5),
                       options(6, password=clear)),
                 name='batch: a default password hash, a guest password')]}]
        playbook = str(tmp_path / 'play.yml')
        with open(playbook, 'w') as f:
            yaml.safe_dump(play, f)
        log = str(tmp_path / 'ansible.log')
        start = time.time() - 1
        outputs = []
        with ProcSampler() as sampler:
            for extra in (['--check'], [], []):
                proc = _run(playbook, log, extra)
                outputs.append(proc.stdout + proc.stderr)
                assert proc.returncode == 0, proc.stdout[-3000:]
        assert not sampler.hits(clear) and not sampler.hits(given_hash)
        for text in outputs + [open(log).read()]:
            assert clear not in text and given_hash not in text
        written = files_changed_since([
            '/tmp', os.path.expanduser('~/.ansible'), image_dir, str(tmp_path),
            '/var/log/libvirt', '/etc/libvirt/qemu'], start)
        leaks = set(files_holding(written, clear)) - {playbook}  # the input itself
        assert not leaks, sorted(leaks)
        holders = set(files_holding(written, given_hash)) - {playbook}
        hashed_guests = [os.path.join(seeds, prefix + 'ci%d' % n) for n in (2, 4, 5)]
        for guest_seed in hashed_guests:
            assert any(p.startswith(guest_seed) for p in holders), \
                'the given hash should be in the seed of %s' % guest_seed
        for path in holders:
            assert any(path.startswith(g) for g in hashed_guests), path
            assert _mode(path) in (0o600, 0o640), (path, oct(_mode(path)))
    finally:
        server.close()


def _sha256(path):
    import hashlib
    with open(path, 'rb') as f:
        return hashlib.sha256(f.read()).hexdigest()
