"""The installer's source argument (inst.repo / method / install), the wait durations and
the serial-console-last warning: pure logic."""
import pytest

from ansible_collections.kvmops.hypervisor.plugins.module_utils._libvirt import osinfo as O
from ansible_collections.kvmops.hypervisor.plugins.module_utils._install import console_hint as C
from ansible_collections.kvmops.hypervisor.plugins.module_utils._install import durations as D
from ansible_collections.kvmops.hypervisor.plugins.module_utils._install import source_arg as A

URL = 'http://mirror.example.org/centos/7/os/x86_64/'
C7_TREEINFO = '[general]\nfamily = CentOS\nversion = 7\n[release]\nname = CentOS\nversion = 7.9.2009\n'


def test_treeinfo_release():
    assert A.treeinfo_release(C7_TREEINFO) == {'family': 'CentOS', 'version': '7.9.2009'}
    assert A.treeinfo_release('[general]\nfamily = Red Hat Enterprise Linux\nversion = 6.10\n') \
        == {'family': 'Red Hat Enterprise Linux', 'version': '6.10'}
    assert A.treeinfo_release(b'not ini') is None and A.treeinfo_release(None) is None


@pytest.mark.parametrize('release,arg', [
    ({'family': 'CentOS', 'version': '7'}, 'inst.repo'),
    ({'family': 'Red Hat Enterprise Linux', 'version': '6.10'}, 'method'),
    ({'family': 'Fedora', 'version': '38'}, 'inst.repo'),
    ({'family': 'CentOS Stream', 'version': '9'}, 'inst.repo'),
    ({'family': 'openSUSE Leap', 'version': '15.4'}, 'install'),
    ({'family': 'SUSE Linux Enterprise Server', 'version': '15'}, 'install'),
])
def test_treeinfo_decides_first(release, arg):
    # os_variant says Debian: the tree's own .treeinfo wins.
    name, why = A.decide('url', 'redhat', release, O.family_facts('debian12', 'linux'))
    assert name == arg and '.treeinfo' in why


def test_os_variant_then_layout_decide():
    assert A.decide('url', 'redhat', None, O.family_facts('rhel6.10', 'linux'))[0] == 'method'
    assert A.decide('url', 'debian', None, O.family_facts('debian12', 'linux'))[0] is None
    # os_variant=linux says nothing: the layout decides.
    for layout, arg in (('redhat', 'inst.repo'), ('suse', 'install'), ('debian', None),
                        ('ubuntu', None)):
        name, why = A.decide('url', layout, None, O.family_facts('linux', 'linux'))
        assert name == arg and layout in why
    # an unknown tree family (the tiny test tree) falls through to os_variant/layout
    assert A.decide('url', 'redhat', {'family': 'KvmopsTiny', 'version': '1'}, None)[0] == \
        'inst.repo'


def test_plan_url_iso_dir_and_extra_args():
    info = O.family_facts('centos7.0', 'linux')
    p = A.plan(URL, 'url', 'redhat', 'console=ttyS0', None, info)
    assert p['argument'] == 'inst.repo=' + URL and p['warning'] is None
    for own in ('inst.repo=nfs:srv:/c7', 'repo=http://x/', 'method=http://x/',
                'inst.stage2=hd:LABEL=X', 'install=http://x/'):
        p = A.plan(URL, 'url', 'redhat', 'console=ttyS0 ' + own, None, info)
        assert p['argument'] is None and 'already name' in p['decided_by']
    iso = A.plan('/isos/c7.iso', 'iso', 'redhat', '', None, info)
    assert iso['argument'] is None and iso['warning'] is None and 'CD-ROM' in iso['decided_by']
    d = A.plan('/srv/c7', 'dir', 'redhat', '', None, info)
    assert d['argument'] is None and 'cannot read it' in d['warning'] and 'HTTP' in d['warning']
    deb = A.plan('/srv/deb', 'dir', 'debian', '', None, O.family_facts('debian12', 'linux'))
    assert deb['warning'] is None


def test_append():
    assert A.append('a b', 'inst.repo=x') == 'a b inst.repo=x'
    assert A.append('', 'inst.repo=x') == 'inst.repo=x'
    assert A.append('a', None) == 'a'


@pytest.mark.parametrize('value,seconds', [
    (0, 0), (-1, -1), ('-1', -1), (3600, 3600), ('3600', 3600), ('30s', 30), ('90m', 5400),
    ('1h', 3600), ('2 h', 7200), ('1d', 86400), ('1.5h', 5400), (None, 0), ('90min', 5400)])
def test_wait_durations(value, seconds):
    assert D.parse_wait(value) == seconds


@pytest.mark.parametrize('value', ['-2', '-5m', 'soon', '5y', True, '0.5s'])
def test_bad_wait(value):
    with pytest.raises(D.DurationError):
        D.parse_wait(value)


def test_describe_wait():
    assert [D.describe(s) for s in (5400, 3600, 45, -1)] == ['90m', '1h', '45s', 'no limit']


def test_serial_console_last_with_vnc():
    vnc = {'type': 'vnc'}
    assert C.last_console('console=tty0 console=ttyS0,115200') == 'ttyS0'
    w = C.serial_last_warning('console=tty0 console=ttyS0,115200', vnc)
    assert w and 'console=ttyS0' in w and 'console=tty0 last' in w
    assert C.serial_last_warning('console=tty0 console=ttyS0,115200', None)  # default is vnc
    assert C.serial_last_warning('console=ttyS0 console=tty0', vnc) is None
    assert C.serial_last_warning('console=tty0 console=ttyS0', {'type': 'none'}) is None
    assert C.serial_last_warning('quiet', vnc) is None
    assert 'SPICE' in C.serial_last_warning('console=hvc0', {'type': 'spice'})
