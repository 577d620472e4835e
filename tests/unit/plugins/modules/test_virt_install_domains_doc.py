"""virt_install_domains module: documentation matches the argument spec and stays in step
with virt_install_domain's options; the EXAMPLES are tasks of this module."""
import copy
import json
import re

import yaml

from ansible_collections.kvmops.hypervisor.plugins.modules import virt_install_domain as single
from ansible_collections.kvmops.hypervisor.plugins.modules import virt_install_domains as mod
from support.module_docs import compare, documentation

from ansible_collections.kvmops.hypervisor.plugins.doc_fragments import guest as guest_fragment


def doc():
    return documentation(mod)


def test_documentation_matches_argument_spec():
    compare(mod.argument_spec(), doc()['options'])


def _strip(options):
    """Descriptions aside, the option tree."""
    out = copy.deepcopy(options)

    def walk(tree):
        for o in tree.values():
            o.pop('description', None)
            walk(o.get('suboptions') or {})
    walk(out)
    return out


def test_guest_suboptions_are_virt_install_domains_options_without_defaults():
    single_opts = documentation(single)['options']
    single_opts.pop('uri', None)
    for o in single_opts.values():
        o.pop('default', None)
        o.pop('required', None)
    guests = doc()['options']['guests']['suboptions']
    assert _strip(guests) == _strip(single_opts)
    # defaults takes the same options, documented once (under guests[])
    assert 'suboptions' not in doc()['options']['defaults']
    # the descriptions are the same text, with option references moved under guests[]
    text = json.dumps(dict(single_opts, name=None), sort_keys=True)
    text = re.sub(r'\b(O|RV)\(([a-z_]+)', r'\1(guests[].\2', text)
    assert json.loads(text) == dict(guests, name=None)
    assert guests['name']['description'].endswith('required in every item of O(guests), never '
                                                  'in O(defaults).')


def test_the_module_files_do_not_repeat_the_guest_options():
    """One text: the guest options live in the doc fragment, not in either module."""
    for m in (single, mod):
        own = yaml.safe_load(m.DOCUMENTATION).get('options', {})
        assert not set(own) & set(
            yaml.safe_load(guest_fragment.ModuleDocFragment.DOCUMENTATION)['options'])
        for key in ('guests', 'defaults'):
            assert 'suboptions' not in own.get(key, {})


def test_passwords_are_no_log_in_guests_and_defaults():
    spec = mod.argument_spec()
    assert spec['guests']['options']['graphics']['options']['password']['no_log'] is True
    assert 'default' not in spec['guests']['options']['state']
    # defaults is a plain dict: the module masks its no_log values itself
    assert spec['defaults'] == {'type': 'dict'}


def test_the_page_lists_the_guest_options_once():
    """issue 27 point 8: 1,915 lines in ansible-doc, every guest option twice (guests[] and
    defaults). Now once, and the description says where the batch options are."""
    text = json.dumps(doc())
    assert text.count('"address_sources"') == 1
    assert text.count('Graphical console (C(--graphics))') == 1
    description = ' '.join(doc()['description'])
    assert 'the options of the batch are O(defaults), O(parallel), O(preflight)' in description


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


def test_the_clone_features_result_fields_are_documented():
    """template and clone (CloneFeature.result) in both modules' RETURN docs (issue 30)."""
    from ansible_collections.kvmops.hypervisor.plugins.module_utils._guest.features import clone

    class M(object):
        dom = None
        spec = {'clone_from': {'name': 'tpl', 'mode': 'linked'}}
    feature = clone.CloneFeature()
    feature.plans, feature.source_uuid = [{'index': 0, 'action': 'share', 'source': 'x'}], 'u'
    res = {}
    feature.result(M(), res)
    assert set(res) == {'template', 'clone'}
    single_return = yaml.safe_load(single.RETURN)
    many_return = yaml.safe_load(mod.RETURN)['guests']['contains']
    for field in res:
        assert field in single_return and field in many_return, field
    assert single_return['template']['type'] == 'bool' and single_return['clone']['type'] == 'dict'
    for key in res['clone']:
        assert 'C(%s)' % key in ' '.join(single_return['clone']['description']), key
