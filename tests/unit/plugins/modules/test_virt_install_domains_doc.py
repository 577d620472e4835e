"""virt_install_domains module: documentation matches the argument spec and stays in step
with virt_install_domain's options; the EXAMPLES are tasks of this module."""
import copy
import json
import re

import yaml

from ansible_collections.kvmops.hypervisor.plugins.modules import virt_install_domain as single
from ansible_collections.kvmops.hypervisor.plugins.modules import virt_install_domains as mod
from support.module_docs import compare


CLOUD_ONLY = ('cloud_init', 'guest_agent', 'port_forwards', 'port_forward_backend', 'wait_for',
              'wait_timeout', 'address_sources', 'ssh_host', 'ssh_port')


def doc():
    return yaml.safe_load(mod.DOCUMENTATION)


def test_documentation_matches_argument_spec():
    options = dict(doc()['options'])
    options['uri'] = {'type': 'str', 'default': 'qemu:///system'}  # from the libvirt fragment
    compare(mod.argument_spec(), options)


def _strip(options):
    """Descriptions aside, the option tree; references rewritten to the guests[] path."""
    out = copy.deepcopy(options)

    def walk(tree):
        for o in tree.values():
            o.pop('description', None)
            walk(o.get('suboptions') or {})
    walk(out)
    return out


def test_guest_suboptions_are_virt_install_domains_options_without_defaults():
    single_opts = yaml.safe_load(single.DOCUMENTATION)['options']
    single_opts.pop('uri', None)
    # The cloud-guest options (issue 15) are virt_install_domain's only, not yet the batch's.
    for key in CLOUD_ONLY:
        single_opts.pop(key, None)
    single_opts['disks']['suboptions'].pop('base_image', None)
    for o in single_opts.values():
        o.pop('default', None)
        o.pop('required', None)
    guests = doc()['options']['guests']['suboptions']
    assert _strip(guests) == _strip(single_opts)
    assert doc()['options']['defaults']['suboptions'] == guests
    # the descriptions are the same text, with option references moved under guests[]
    text = json.dumps(dict(single_opts, name=None), sort_keys=True)
    text = re.sub(r'\b(O|RV)\(([a-z_]+)', r'\1(guests[].\2', text)
    text = text.replace('O(guests[].defaults)', 'O(defaults)').replace(
        'O(guests[].guests)', 'O(guests)')
    assert json.loads(text) == dict(guests, name=None)


def test_passwords_are_no_log_in_guests_and_defaults():
    spec = mod.argument_spec()
    for key in ('guests', 'defaults'):
        assert spec[key]['options']['graphics']['options']['password']['no_log'] is True
    assert 'default' not in spec['guests']['options']['state']


def test_examples_are_tasks_of_this_module():
    tasks = yaml.safe_load(mod.EXAMPLES)
    spec = mod.argument_spec()
    ours = [t for t in tasks if 'kvmops.hypervisor.virt_install_domains' in t]
    assert len(ours) >= 3
    for t in ours:
        args = t['kvmops.hypervisor.virt_install_domains']
        assert set(args) <= set(spec), t['name']
        for g in args['guests'] if isinstance(args['guests'], list) else []:
            assert set(g) <= set(spec['guests']['options']), t['name']
