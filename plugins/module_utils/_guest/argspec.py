# -*- coding: utf-8 -*-
# Copyright: kvmops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The options of one guest (virt_install_domain's argument spec), shared by
virt_install_domain and virt_install_domains, and the step from a module's params to the
normalised spec. Private to the collection: no API promise.

Imports nothing heavy (no lxml, libvirt or install-media code; choices come from
_guest/spec's constants): a module builds its
argument spec before it knows what the run needs.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import copy

from ansible_collections.kvmops.hypervisor.plugins.module_utils._common.argspec import uri_option
from ansible_collections.kvmops.hypervisor.plugins.module_utils._guest import spec as dspec
from ansible_collections.kvmops.hypervisor.plugins.module_utils._libvirt import osinfo as _osinfo
from ansible_collections.kvmops.hypervisor.plugins.module_utils._libvirt.graphics import is_loopback
from ansible_collections.kvmops.hypervisor.plugins.module_utils._vnc import guard as _vnc_guard

# Same value as _install.media.DEFAULT_CACHE_DIR (a unit test keeps them equal); repeated here
# so that the argument spec does not import the install-media code.
DEFAULT_INSTALL_CACHE_DIR = '/var/lib/libvirt/boot/kvmops'

# virt_install_domains' preflight option: fail the run on a guest's problem, or report them
# (check mode only; _guest/batch.py).
PREFLIGHT_MODES = ('fail', 'report')


def install_option():
    """The install option (virt-install's --location/--cdrom/--import/--pxe)."""
    return dict(type='dict', options=dict(
        location=dict(type='str'),
        cdrom=dict(type='path'),
        pxe=dict(type='bool'),
        extra_args=dict(type='str'),
        kickstart=dict(type='path'),
        cache_dir=dict(type='path', default=DEFAULT_INSTALL_CACHE_DIR),
        validate_certs=dict(type='bool', default=True),
        timeout=dict(type='int', default=30),
        **{'import': dict(type='bool')}
    ))


def wait_option():
    """The top-level wait option (virt-install's --wait): seconds, or a duration with a unit
    such as 90m (parsed by _install/durations.py)."""
    return dict(type='raw', default=0)


def guest_options():
    """Every option of one guest (without uri: one connection serves a module run)."""
    return dict(
        name=dict(type='str', required=True),
        state=dict(type='str', default='running',
                   choices=list(dspec.STATES)),
        memory=dict(type='raw'),
        vcpus=dict(type='int'),
        cpu=dict(type='str'),
        virt_type=dict(type='str', default='auto', choices=list(dspec.VIRT_TYPES)),
        arch=dict(type='str'),
        machine=dict(type='str'),
        firmware=dict(type='str', choices=list(dspec.FIRMWARES)),
        autostart=dict(type='bool'),
        kernel=dict(type='path'),
        initrd=dict(type='path'),
        cmdline=dict(type='str'),
        os_variant=dict(type='str', default='generic'),
        disks=dict(type='list', elements='dict', options=dict(
            path=dict(type='str'),
            pool=dict(type='str'),
            volume=dict(type='str'),
            size=dict(type='float'),
            format=dict(type='str', choices=list(dspec.DISK_FORMATS)),
            sparse=dict(type='bool', default=True),
            backing_store=dict(type='str'),
            backing_format=dict(type='str', choices=list(dspec.BACKING_FORMATS)),
            bus=dict(type='str', choices=list(dspec.DISK_BUSES)),
            cache=dict(type='str', choices=list(dspec.DISK_CACHES)),
            device=dict(type='str', default='disk', choices=list(dspec.DISK_DEVICES)),
            readonly=dict(type='bool'),
        )),
        networks=dict(type='list', elements='dict', options=dict(
            network=dict(type='str'),
            bridge=dict(type='str'),
            direct=dict(type='str'),
            mode=dict(type='str', choices=list(dspec.DIRECT_MODES)),
            model=dict(type='str'),
            mac=dict(type='str'),
        )),
        graphics=dict(type='dict', options=dict(
            type=dict(type='str', default='vnc', choices=list(dspec.GRAPHICS_TYPES)),
            listen=dict(type='str'),
            port=dict(type='int'),
            password=dict(type='str', no_log=True),
            keymap=dict(type='str', no_log=False),
            allow_insecure=dict(type='bool', default=False),
        )),
        serial=dict(type='str'),
        remove_storage=dict(type='bool', default=False),
        update=dict(type='bool', default=True),
        restart=dict(type='bool', default=False),
        shutdown_timeout=dict(type='int', default=120),
        install=install_option(),
        wait=wait_option(),
        **clone_options()
    )


def clone_options():
    """clone_from and template (_guest/features/clone.py implements them)."""
    return dict(
        clone_from=dict(type='dict', options=dict(
            name=dict(type='str', required=True),
            mode=dict(type='str', default='full', choices=['full', 'linked']),
            seal=dict(type='bool', default=False),
        )),
        template=dict(type='bool'),
    )


def domain_argument_spec():
    """virt_install_domain's argument spec: one guest plus uri."""
    spec = guest_options()
    spec['uri'] = uri_option()
    return spec


def without_defaults(spec, drop_required=True):
    """The spec with every top-level default (and required) removed, so that a value left
    unset stays None and can come from elsewhere (virt_install_domains' defaults). Nested
    defaults (disks[].device, install.cache_dir) stay: they belong to the item."""
    out = copy.deepcopy(spec)
    for opt in out.values():
        opt.pop('default', None)
        if drop_required:
            opt.pop('required', None)
    return out


def secret_values(option_spec, params):
    """The values of every no_log option (suboptions too) in params, as strings: what
    AnsibleModule masks for an option its argument spec declares. virt_install_domains'
    defaults is a plain dict in its argument spec (its options are guests[]'s, documented once
    there), so the module adds these itself."""
    out = set()
    if not isinstance(params, dict):
        return out
    for key, opt in option_spec.items():
        value = params.get(key)
        if value is None:
            continue
        if opt.get('no_log'):
            out.update(_leaves(value))
        elif opt.get('options'):
            for item in value if isinstance(value, list) else [value]:
                out.update(secret_values(opt['options'], item))
    return out


def _leaves(value):
    if isinstance(value, dict):
        return [s for v in value.values() for s in _leaves(v)]
    if isinstance(value, (list, tuple)):
        return [s for v in value for s in _leaves(v)]
    if value is None or isinstance(value, bool) or value == '':
        return []
    return [str(value)]


def validate(params, option_spec=None):
    """(validated params, error messages): the one validation of a guest's types, choices and
    unknown keys. AnsibleModule runs the same spec for virt_install_domain; the batch's items
    and callers without a module (tests) come through here. By default without top-level
    defaults, so an unset option stays None (unmanaged)."""
    from ansible.module_utils.common.arg_spec import ArgumentSpecValidator
    from ansible.module_utils.errors import UnsupportedError
    if option_spec is None:
        option_spec = without_defaults(guest_options(), drop_required=False)
    result = ArgumentSpecValidator(option_spec).validate(params)
    # AnsibleModule prefixes unknown options itself; the bare validator says only
    # "disks.colour. Supported parameters include: ...".
    messages = [('Unsupported parameters: %s' % err.msg) if isinstance(err, UnsupportedError)
                else err.msg for err in result.errors.errors]
    return result.validated_parameters, messages


def _as_written(params):
    """Validated params -> what _guest.spec.normalize reads: unset suboptions of disks and
    networks dropped, graphics.allow_insecure taken out (it is a policy, not a setting)."""
    params = dict(params)
    allow_insecure = False
    if params.get('graphics') is not None:
        params['graphics'] = dict(params['graphics'])
        allow_insecure = bool(params['graphics'].pop('allow_insecure', False))
    for key in ('disks', 'networks'):
        if params.get(key) is not None:
            params[key] = [dict((k, v) for k, v in item.items() if v is not None)
                           for item in params[key]]
    return params, allow_insecure


def spec_from_params(params):
    """Normalise one guest's params (validated by the argument spec) into the spec.

    Raises _guest.spec.SpecError with the option and the fix."""
    params, allow_insecure = _as_written(params)
    spec = _osinfo.normalize_with_facts(dspec, params)
    refusal = _vnc_guard.public_vnc_error(spec.get('graphics'), allow_insecure)
    if refusal:
        raise dspec.SpecError(refusal)
    return spec


def normalize(params):
    """Raw options -> spec without host facts: the argument spec, then _guest.spec's rules.
    For callers that have no AnsibleModule (unit tests, benchmarks); SpecError either way."""
    validated, errors = validate(params)
    if errors:
        raise dspec.SpecError('; '.join(errors))
    return dspec.normalize(_as_written(validated)[0])


def vnc_password_warning(spec):
    """The warning for a password-protected VNC console on a non-loopback address, or None."""
    g = spec.get('graphics')
    if g and g['type'] == 'vnc' and g.get('password') and g.get('listen') and \
            not is_loopback(g['listen']):
        return ('graphics.password protects VNC with at most 8 bytes (DES challenge), and '
                'VNC traffic is not encrypted: on %s prefer listen 127.0.0.1 and an SSH '
                'tunnel, or spice with TLS.' % g['listen'])
    return None
