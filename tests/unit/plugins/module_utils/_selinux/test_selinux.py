"""Unit tests of the SELinux CLI parsers, input validation and rule planning (pure logic).

The semanage outputs below were captured on this test machine (Debian 12, policycoreutils 3.4,
selinux-policy-default, SELinux disabled in the kernel); the getsebool and restorecon outputs
follow the formats of libselinux 3.x ("Relabeled"/"Would relabel") and of older restorecon
("restorecon reset"), which cannot be produced here because restorecon does nothing while the
kernel has SELinux off.
"""
import pytest

from ansible_collections.kvmops.hypervisor.plugins.module_utils._selinux import virt_dir as se

FCONTEXT_LOCAL = """\
SELinux fcontext                                   type               Context

/vm-images(/.*)?                                   all files          system_u:object_r:virt_image_t:s0\x20
/var/tmp/kvmops-probe-sel1iso                      directory          system_u:object_r:virt_content_t:s0\x20
/var/tmp/kvmops-cap-a-very-long-path-name-beyond-fifty-chars/iso(/.*)? all files          system_u:object_r:virt_content_t:s0\x20
/srv/nolabel(/.*)?                                 all files          <<None>>

SELinux Local fcontext Equivalence\x20

/var/tmp/kvmops-probe-sel1eq = /var/lib/libvirt/images
"""

FCONTEXT_ONLY_EQUIV = """
SELinux Local fcontext Equivalence\x20

/var/tmp/kvmops-cap-eq = /var/lib/libvirt/images
"""

FCONTEXT_FULL_TAIL = """\
/var/lib/libvirt/images(/.*)?                      all files          system_u:object_r:virt_image_t:s0\x20

SELinux Distribution fcontext Equivalence\x20

/var/run = /run

SELinux Local fcontext Equivalence\x20

/vm-eq = /var/lib/libvirt/images
"""

BOOLEANS = """\
SELinux boolean                State  Default Description

aide_mmap_files                (off  ,  off)  Allow aide to mmap files
allow_httpd_apcupsd_cgi_script_anon_write (off  ,  off)  Allow allow to httpd apcupsd cgi script anon write
virt_use_nfs                   (on   ,   on)  Allow virt to use nfs
virt_use_samba                 (off  ,   on)  Allow virt to use samba
"""

GETSEBOOL = """\
virt_use_nfs --> on
virt_use_samba --> off pending: on
virt_use_usb --> on
"""


def test_parse_local_rules_and_equivalences():
    parsed = se.parse_fcontext_list(FCONTEXT_LOCAL)
    assert parsed['rules'][0] == {'regex': '/vm-images(/.*)?', 'ftype': 'all files',
                                  'context': 'system_u:object_r:virt_image_t:s0',
                                  'setype': 'virt_image_t'}
    assert parsed['rules'][1]['ftype'] == 'directory'
    # a regex longer than the 50-char column still parses
    assert parsed['rules'][2]['regex'].endswith('fifty-chars/iso(/.*)?')
    assert parsed['rules'][2]['setype'] == 'virt_content_t'
    assert parsed['rules'][3]['setype'] is None
    assert parsed['equivalences'] == [('/var/tmp/kvmops-probe-sel1eq', '/var/lib/libvirt/images')]
    assert parsed['dist_equivalences'] == []


def test_parse_only_equivalence_section():
    parsed = se.parse_fcontext_list(FCONTEXT_ONLY_EQUIV)
    assert parsed['rules'] == []
    assert parsed['equivalences'] == [('/var/tmp/kvmops-cap-eq', '/var/lib/libvirt/images')]


def test_parse_full_list_separates_distribution_equivalences():
    parsed = se.parse_fcontext_list(FCONTEXT_FULL_TAIL)
    assert parsed['dist_equivalences'] == [('/var/run', '/run')]
    assert parsed['equivalences'] == [('/vm-eq', '/var/lib/libvirt/images')]


def test_parse_empty_output():
    assert se.parse_fcontext_list('') == {'rules': [], 'equivalences': [], 'dist_equivalences': []}


def test_parse_semanage_boolean_list():
    b = se.parse_semanage_booleans(BOOLEANS)
    assert b['virt_use_nfs'] == {'state': True, 'default': True,
                                 'description': 'Allow virt to use nfs'}
    # running off, stored (persistent) on
    assert b['virt_use_samba']['state'] is False and b['virt_use_samba']['default'] is True
    # names longer than the 30-char column
    assert b['allow_httpd_apcupsd_cgi_script_anon_write']['default'] is False
    assert 'SELinux' not in b


def test_parse_getsebool():
    b = se.parse_getsebool(GETSEBOOL)
    assert b['virt_use_nfs'] == {'state': True, 'pending': None}
    assert b['virt_use_samba'] == {'state': False, 'pending': True}
    assert se.parse_getsebool('getsebool:  SELinux is disabled\n') == {}


def test_parse_restorecon_formats():
    out = ('Relabeled /vm-images from unconfined_u:object_r:default_t:s0 to '
           'unconfined_u:object_r:virt_image_t:s0\n'
           'Would relabel /vm-images/a b.img from system_u:object_r:default_t:s0 to '
           'system_u:object_r:virt_image_t:s0\n'
           'restorecon reset /vm-images/old.img context '
           'system_u:object_r:default_t:s0->system_u:object_r:virt_image_t:s0\n'
           'some unrelated line\n')
    assert se.parse_restorecon(out) == ['/vm-images', '/vm-images/a b.img', '/vm-images/old.img']


def test_parse_matchpathcon():
    out = ('/vm-images\tsystem_u:object_r:virt_image_t:s0\n'
           '/var/tmp/x\t<<none>>\n')
    assert se.parse_matchpathcon(out) == {'/vm-images': 'system_u:object_r:virt_image_t:s0',
                                          '/var/tmp/x': '<<none>>'}
    assert se.context_type('system_u:object_r:virt_image_t:s0') == 'virt_image_t'
    assert se.context_type('system_u:object_r:virt_image_t') == 'virt_image_t'
    assert se.context_type('<<none>>') is None


@pytest.mark.parametrize('path,expected', [
    ('/vm-images', '/vm-images'),
    ('/vm-images/', '/vm-images'),
    ('/srv/vm.images', '/srv/vm.images'),
    ('/data/kvm_pool-1/images', '/data/kvm_pool-1/images'),
])
def test_valid_paths(path, expected):
    assert se.validate_path(path) == expected


@pytest.mark.parametrize('path,fragment', [
    ('vm-images', 'absolute'),
    ('./vm-images', 'absolute'),
    ('/', 'must not be "/"'),
    ('//', 'must not be "/"'),
    ('/vm-images\n/etc', 'newline'),
    ('/vm images', 'whitespace'),
    ('/vm-images(/.*)?', 'regular expression'),
    ('/vm*', 'regular expression'),
    ('/vm[0-9]', 'regular expression'),
    ('/vm+images', 'regular expression'),
    ('/vm|etc', 'regular expression'),
    ('/vm$', 'regular expression'),
    ("/vm'x", 'regular expression'),
    ('/srv/../etc', 'normalised'),
    ('/srv//vm', 'normalised'),
    ('/etc', 'system directory'),
    ('/var/lib', 'system directory'),
    ('/usr/', 'system directory'),
    ('', 'non-empty'),
])
def test_invalid_paths(path, fragment):
    with pytest.raises(ValueError) as exc:
        se.validate_path(path)
    assert fragment in str(exc.value)


def test_regex_escapes_dots_and_knows_the_unescaped_variant():
    assert se.path_regex('/vm-images') == '/vm-images(/.*)?'
    assert se.path_regex('/srv/vm.images') == '/srv/vm\\.images(/.*)?'
    assert se.regex_variants('/vm-images') == ['/vm-images(/.*)?']
    assert se.regex_variants('/srv/vm.images') == ['/srv/vm\\.images(/.*)?',
                                                   '/srv/vm.images(/.*)?']


def _local(rules=(), equivs=()):
    return {'rules': [{'regex': r, 'ftype': 'all files', 'context': 'system_u:object_r:%s:s0' % t,
                       'setype': t} for r, t in rules],
            'equivalences': list(equivs), 'dist_equivalences': []}


def _no_policy():
    return ('default_t', 'default_t')


def test_plan_adds_missing_rule():
    plan = se.plan_rules('/vm-images', 'present', 'virt_image_t', None, _local(), _no_policy)
    assert plan['lines'] == ["fcontext -a -f a -t virt_image_t '/vm-images(/.*)?'"]
    assert plan['before'] == []
    assert plan['after'] == ['fcontext /vm-images(/.*)? all files -> virt_image_t']
    assert plan['source'] == 'local'


def test_plan_existing_rule_is_a_no_op():
    local = _local([('/vm-images(/.*)?', 'virt_image_t')])
    plan = se.plan_rules('/vm-images', 'present', 'virt_image_t', None, local, _no_policy)
    assert plan['lines'] == []
    assert plan['before'] == plan['after']


def test_plan_hand_made_unescaped_rule_is_recognised():
    local = _local([('/srv/vm.images(/.*)?', 'virt_image_t')])
    plan = se.plan_rules('/srv/vm.images', 'present', 'virt_image_t', None, local, _no_policy)
    assert plan['lines'] == []
    assert plan['rule']['regex'] == '/srv/vm.images(/.*)?'


def test_plan_modifies_type():
    local = _local([('/vm-images(/.*)?', 'virt_image_t')])
    plan = se.plan_rules('/vm-images', 'present', 'virt_content_t', None, local, _no_policy)
    assert plan['lines'] == ["fcontext -m -f a -t virt_content_t '/vm-images(/.*)?'"]


def test_plan_type_rule_removes_shadowing_equivalence():
    local = _local(equivs=[('/vm-images', '/var/lib/libvirt/images')])
    plan = se.plan_rules('/vm-images', 'present', 'virt_image_t', None, local, _no_policy)
    assert plan['lines'] == ['fcontext -d -e /var/lib/libvirt/images /vm-images',
                             "fcontext -a -f a -t virt_image_t '/vm-images(/.*)?'"]


def test_plan_policy_already_labels_path():
    plan = se.plan_rules('/var/lib/libvirt/images/pool2', 'present', 'virt_image_t', None,
                         _local(), lambda: ('virt_image_t', 'virt_image_t'))
    assert plan['lines'] == [] and plan['source'] == 'policy'


def test_plan_equivalence_add_replace_and_keep():
    plan = se.plan_rules('/vm-images', 'present', None, '/var/lib/libvirt/images',
                         _local([('/vm-images(/.*)?', 'virt_image_t')]), _no_policy)
    assert plan['lines'] == ["fcontext -d -f a '/vm-images(/.*)?'",
                             'fcontext -a -e /var/lib/libvirt/images /vm-images']
    plan = se.plan_rules('/vm-images', 'present', None, '/var/lib/libvirt/images',
                         _local(equivs=[('/vm-images', '/srv/other')]), _no_policy)
    assert plan['lines'] == ['fcontext -d -e /srv/other /vm-images',
                             'fcontext -a -e /var/lib/libvirt/images /vm-images']
    plan = se.plan_rules('/vm-images', 'present', None, '/var/lib/libvirt/images',
                         _local(equivs=[('/vm-images', '/var/lib/libvirt/images')]), _no_policy)
    assert plan['lines'] == []


def test_plan_absent_removes_only_our_rules():
    local = _local([('/vm-images(/.*)?', 'virt_image_t'), ('/other(/.*)?', 'virt_image_t')],
                   [('/vm-images', '/var/lib/libvirt/images'), ('/x', '/y')])
    plan = se.plan_rules('/vm-images', 'absent', None, None, local, _no_policy)
    assert plan['lines'] == ["fcontext -d -f a '/vm-images(/.*)?'",
                             'fcontext -d -e /var/lib/libvirt/images /vm-images']
    assert plan['after'] == []
    assert se.plan_rules('/gone', 'absent', None, None, local, _no_policy)['lines'] == []


def test_plan_booleans():
    current = se.parse_semanage_booleans(BOOLEANS)
    lines, values = se.plan_booleans({'virt_use_nfs': True, 'aide_mmap_files': True}, current,
                                     enabled=True)
    assert lines == ['boolean -m --on aide_mmap_files']
    assert values['virt_use_nfs'] == {'before': True, 'after': True, 'running_before': True}
    # stored on, running off: enabled hosts need the change, disabled ones do not
    lines, dummy = se.plan_booleans({'virt_use_samba': True}, current, enabled=True)
    assert lines == ['boolean -m --on virt_use_samba']
    lines, values = se.plan_booleans({'virt_use_samba': True}, current, enabled=False)
    assert lines == [] and 'running_before' not in values['virt_use_samba']


def test_plan_booleans_unknown_name_suggests():
    current = se.parse_semanage_booleans(BOOLEANS)
    with pytest.raises(se.SELinuxError) as exc:
        se.plan_booleans({'virt_use_nsf': True}, current, enabled=False)
    assert 'virt_use_nsf' in exc.value.msg and 'did you mean virt_use_nfs' in exc.value.msg
