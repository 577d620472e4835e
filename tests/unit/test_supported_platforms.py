"""The roles' meta/main.yml platforms, the README's support table and ansible-core agree.

Modules run on the hypervisor with its system Python, so a platform is supported only when an
ansible-core the collection accepts (meta/runtime.yml) can run modules with that Python, and the
collection's module code (Python 3.8+) runs there too. EL 8 (Python 3.6) is the case that was
claimed and not true.
"""
import os
import re

import pytest
import yaml

from support import paths

# ansible-core's supported target (managed node) Python versions, from its release notes.
TARGET_PYTHON = {(2, 17): ((3, 7), (3, 12)), (2, 18): ((3, 8), (3, 13)),
                 (2, 19): ((3, 8), (3, 13)), (2, 20): ((3, 9), (3, 14))}
MODULE_PYTHON_MIN = (3, 8)
ROLES = ('kvm_host', 'image_storage', 'guests')


def version(text):
    return tuple(int(x) for x in re.findall(r'\d+', text)[:2])


def support_table():
    """[{'os', 'platform', 'python', 'ansible', 'tested'}] from README.md's '### Supported platforms' table."""
    readme = open(os.path.join(paths.REPO, 'README.md')).read()
    section = readme.split('### Supported platforms', 1)[1].split('\n#', 1)[0]
    rows = []
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip('|').split('|')]
        if len(cells) != 5 or cells[0] in ('hypervisor OS', '---') or set(cells[0]) <= set('-'):
            continue
        rows.append({'os': cells[0], 'platform': cells[1], 'python': version(cells[2]),
                     'ansible': cells[3], 'tested': cells[4]})
    assert rows, 'no support table in README.md'
    return rows


def meta_platforms(role):
    with open(os.path.join(paths.REPO, 'roles', role, 'meta', 'main.yml')) as f:
        meta = yaml.safe_load(f)
    return {(p['name'], str(v)) for p in meta['galaxy_info']['platforms'] for v in p['versions']}


def table_platforms():
    out = set()
    for row in support_table():
        if row['platform'] == 'not supported':
            continue
        name, versions = row['platform'].split(' ', 1)
        out |= {(name, v.strip()) for v in versions.split(',')}
    return out


def requires_ansible():
    with open(os.path.join(paths.REPO, 'meta', 'runtime.yml')) as f:
        return version(yaml.safe_load(f)['requires_ansible'])


@pytest.mark.parametrize('role', ROLES)
def test_role_platforms_are_the_readme_table(role):
    assert meta_platforms(role) == table_platforms()


def test_every_supported_row_names_an_ansible_core_that_runs_its_python():
    floor = requires_ansible()
    for row in support_table():
        if row['platform'] == 'not supported':
            continue
        m = re.match(r'(\d+\.\d+) or later$', row['ansible'])
        assert m, row
        oldest = version(m.group(1))
        assert oldest >= floor, row
        assert row['python'] >= MODULE_PYTHON_MIN, row
        low, high = TARGET_PYTHON[oldest]
        assert low <= row['python'] <= high, (row, 'ansible-core %s.%s runs %s-%s' % (oldest + low + high))
        # and it is the oldest such ansible-core the collection accepts
        older = [v for v in TARGET_PYTHON if floor <= v < oldest
                 and TARGET_PYTHON[v][0] <= row['python'] <= TARGET_PYTHON[v][1]]
        assert older == [], (row, older)


def test_el8_is_not_claimed_and_the_table_says_why():
    for role in ROLES:
        assert ('EL', '8') not in meta_platforms(role), role
    el8 = [r for r in support_table() if r['os'] == 'EL 8']
    assert len(el8) == 1 and el8[0]['platform'] == 'not supported'
    assert el8[0]['python'] == (3, 6)
    # no ansible-core the collection accepts runs Python 3.6 modules
    assert all(TARGET_PYTHON[v][0] > (3, 6) for v in TARGET_PYTHON if v >= requires_ansible())
    assert '2.17' in el8[0]['ansible'] and 'python3-libvirt' in el8[0]['ansible']


def test_every_row_says_whether_and_how_it_is_tested_here():
    """Issue 32: for each row, tested here (how), partly (what), or not (why not)."""
    rows = support_table()
    assert len(rows) == 8
    for row in rows:
        assert re.match(r'(yes|partly|no)(: .+|$)', row['tested']), row
        if row['platform'] != 'not supported':
            assert ': ' in row['tested'], ('say how, or why not', row)
    by_os = {r['os']: r['tested'] for r in rows}
    assert by_os['Debian 12'].startswith('yes') and by_os['Debian 13'].startswith('yes')
    assert 'make trixie' in by_os['Debian 13']
    assert 'no RPM repository' in by_os['RHEL, CentOS Stream, Rocky, AlmaLinux 9']
    # what a row claims is tested has its make target and test files
    for target in ('trixie', 'matrix'):
        assert re.search(r'^%s:' % target, open(os.path.join(paths.REPO, 'Makefile')).read(), re.M)
    for f in ('tests/trixie/test_trixie_hypervisor.py', 'tests/trixie/test_firewalld.py',
              'tests/unit/test_kvm_host_daemon_units.py', 'tests/unit/test_module_code_python38.py'):
        assert os.path.exists(os.path.join(paths.REPO, f)), f
