# -*- coding: utf-8 -*-
# Copyright: kvmops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What every module's main() does once its AnsibleModule exists: check the libraries,
normalise the options, open the one libvirt connection, build and run the manager, and turn
the result or the collection's one error class into exit_json / fail_json.

Private to the collection: no API promise. A module passes its own steps as callables, so
this file stays independent of every concept package.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

from ansible_collections.kvmops.hypervisor.plugins.module_utils._common.errors import KvmopsError
from ansible_collections.kvmops.hypervisor.plugins.module_utils._libvirt import connection as _conn
from ansible_collections.kvmops.hypervisor.plugins.module_utils._libvirt import xml as lxml_util
from ansible_collections.kvmops.hypervisor.plugins.module_utils._libvirt.failure import libvirt_failure_message
from ansible_collections.kvmops.hypervisor.plugins.module_utils._libvirt.masking import mask_url_credentials, url_secrets


def manager_options(module):
    """The keyword arguments a ManagerBase subclass takes from the module."""
    return dict(check_mode=module.check_mode, diff_mode=module._diff, warn=module.warn)


def fail_on_missing_lxml(module):
    """fail_json in the style of missing_required_lib when lxml is absent."""
    if not lxml_util.HAS_LXML:
        from ansible.module_utils.basic import missing_required_lib
        module.fail_json(msg=missing_required_lib('lxml') + ' ' + lxml_util.LXML_INSTALL_HINT)


def hide_url_credentials(module):
    """Make the password of every ``scheme://user:password@`` URL among the options a no_log
    value: Ansible then masks it everywhere in the result (invocation, msg, warnings, any
    field), as it does for no_log options. Called first by run_manager."""
    for secret in url_secrets(module.params):
        module.no_log_values.add(secret)


def _send_warnings(module, fields):
    # Passing warnings to exit_json/fail_json is deprecated (ansible-core 2.19): warn instead.
    for warning in fields.pop('warnings', None) or []:
        module.warn(mask_url_credentials(warning))


def _run(manager, conn, subject):
    if subject is None:
        return manager.run()
    try:
        return manager.run()
    except _conn.libvirt.libvirtError as exc:
        # e.g. libvirtd stopped or restarted between two calls of this run
        raise KvmopsError(libvirt_failure_message(subject, exc, conn,
                                                  getattr(manager, 'actions', None)))


def run_manager(module, build, prepare=None, connect=True, lxml=True, subject=None,
                fail_fields=None):
    """Run the module's manager and exit the module with its result; never returns.

    prepare(): the normalised options, before any connection (a KvmopsError on bad input).
    build(conn, spec): the manager; conn is the run's libvirt connection (None without
        connect), spec what prepare returned. manager.run() returns the module result.
    connect: open `with connection(module.params['uri'])` around build and run (and fail
        first, naming the package, when libvirt-python is missing).
    lxml: fail first, naming the package, when lxml is missing.
    subject(spec): what the run handles ('domain vm1'); a libvirt error escaping the manager
        then fails the task saying whether the daemon went away and what was done before.
    fail_fields(spec, manager): result fields reported with a failure; the error's own fields
        win over them. manager is None (and spec may be) when the failure came earlier.
    Warnings in the result or the error's fields go through module.warn.
    """
    hide_url_credentials(module)
    if connect:
        _conn.fail_on_missing_libvirt(module)
    if lxml:
        fail_on_missing_lxml(module)
    spec = manager = None
    try:
        spec = prepare() if prepare is not None else None
        if connect:
            with _conn.connection(module.params['uri']) as conn:
                manager = build(conn, spec)
                result = _run(manager, conn, subject(spec) if subject is not None else None)
        else:
            manager = build(None, spec)
            result = manager.run()
    except KvmopsError as exc:
        failure = exc.fail_kwargs(**(fail_fields(spec, manager) if fail_fields is not None else {}))
        _send_warnings(module, failure)
        failure['msg'] = mask_url_credentials(failure.get('msg'))   # user:pass@ in a URL
        module.fail_json(**failure)
    _send_warnings(module, result)
    module.exit_json(**result)
