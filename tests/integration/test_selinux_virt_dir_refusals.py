"""selinux_virt_dir refuses bad input before it changes anything (not even the directory),
and on a host without SELinux userspace it reports selinux=absent (or fails with required).
The store is this machine's real policy store, as in test_selinux_virt_dir.py."""
import os

import pytest

from support.ansible_run import run_tasks
from support.selinux import SEMANAGE, boolean_values, local_lines_with, run_without_selinux_tools

pytestmark = pytest.mark.skipif(not os.path.exists(SEMANAGE),
                                reason='SELinux userspace not installed (run testbed/setup.sh)')


def test_bad_input_and_missing_selinux_change_nothing(prefix, selinux_store):
    base = '/var/tmp/%sbad' % prefix
    cases = [
        ({'path': 'vm-images'}, 'absolute'),
        ({'path': '/'}, 'must not be "/"'),
        ({'path': base + '(/.*)?'}, 'regular expression'),
        ({'path': base + '\n/etc'}, 'newline'),
        ({'path': '/etc'}, 'system directory'),
        ({'path': base, 'booleans': {'virt_use_nsf': True}}, 'did you mean virt_use_nfs'),
        ({'path': base, 'setype': 'virt_image_t; rm'}, 'SELinux type name'),
        ({'path': base, 'owner': prefix + 'nouser'}, 'does not exist'),
        ({'path': base, 'mode': 'rwx'}, 'mode must be octal'),
        ({'path': base, 'setype': 'virt_imgae_t'}, 'virt_imgae_t'),
    ]
    results = run_tasks([{'name': 'case %d' % i, 'kvmops.hypervisor.selinux_virt_dir': case[0]}
                         for i, case in enumerate(cases)], ignore_errors=True)
    assert len(results) == len(cases)
    for (args, fragment), res in zip(cases, results):
        assert res.get('failed') is True, (args, res)
        assert fragment in res['msg'], (fragment, res['msg'])
    # the last case got as far as the store transaction: it says which step and what was done
    last = results[-1]
    assert last['step'] == 'file-context rule and booleans'
    assert 'unchanged' in last['msg'] and last['done'] == []
    assert local_lines_with(prefix) == []
    assert boolean_values() == selinux_store
    assert not os.path.exists(base), 'a wrong type name must not even create the directory'

    # No SELinux userspace at all (tools hidden in a private mount namespace)
    path = '/var/tmp/%snosel' % prefix
    doc = run_without_selinux_tools([
        {'name': 'absent userspace', 'kvmops.hypervisor.selinux_virt_dir':
            {'path': path, 'create': False, 'booleans': {'virt_use_nfs': True}}},
        {'name': 'required', 'kvmops.hypervisor.selinux_virt_dir':
            {'path': path, 'create': False, 'required': True}, 'ignore_errors': True},
    ])
    first = doc['plays'][0]['tasks'][0]['hosts']['localhost']
    second = doc['plays'][0]['tasks'][1]['hosts']['localhost']
    assert first.get('failed') is not True, first.get('msg')
    assert first['selinux'] == 'absent' and first['changed'] is False
    assert first['rule'] is None and first['booleans'] == {}
    assert 'dac' in first['libvirt_security_models']
    assert second['failed'] is True and 'required=true' in second['msg']
    assert local_lines_with(prefix) == []
    assert boolean_values() == selinux_store
    assert not os.path.exists(path)
