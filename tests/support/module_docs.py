"""A module's DOCUMENTATION options against its argument_spec (type, default, choices,
required, elements, suboptions), the check every module's unit test makes."""
import importlib

import yaml


class _Fragments(object):
    """The collection's doc fragments by name, for ansible's own merge (add_fragments)."""

    def get(self, name):
        prefix = 'kvmops.hypervisor.'
        if not name.startswith(prefix) or '.' in name[len(prefix):]:
            return None
        try:
            mod = importlib.import_module('ansible_collections.kvmops.hypervisor.plugins.'
                                          'doc_fragments.' + name[len(prefix):])
        except ImportError:
            return None
        cls = mod.ModuleDocFragment
        cls.ansible_name = name
        return cls


def documentation(module):
    """The module's DOCUMENTATION with its doc fragments merged, as ansible-doc shows it."""
    from ansible.utils.plugin_docs import add_fragments
    doc = yaml.safe_load(module.DOCUMENTATION)
    add_fragments(doc, module.__file__, _Fragments(), is_module=True)
    return doc


def compare(spec, options, path=''):
    assert sorted(spec) == sorted(options), path
    for key, s in spec.items():
        o = options[key]
        where = path + key
        assert o.get('type', 'str') == s.get('type', 'str'), where
        assert o.get('default') == s.get('default'), where
        assert sorted(o.get('choices') or []) == sorted(s.get('choices') or []), where
        assert bool(o.get('required')) == bool(s.get('required')), where
        assert o.get('elements') == s.get('elements'), where
        if s.get('options'):
            compare(s['options'], o.get('suboptions') or {}, where + '.')


def compare_documentation(module):
    """The documented options (doc fragments merged) against module.argument_spec()."""
    compare(module.argument_spec(), documentation(module)['options'])


def validated_examples(module, name):
    """Each EXAMPLES task's options for module `name`, through its argument spec:
    [(task name, validated parameters)]; fails on the first task the spec refuses."""
    from ansible.module_utils.common.arg_spec import ArgumentSpecValidator
    validator = ArgumentSpecValidator(module.argument_spec())
    out = []
    for task in yaml.safe_load(module.EXAMPLES):
        result = validator.validate(task['kvmops.hypervisor.' + name])
        assert not result.error_messages, (task['name'], result.error_messages)
        out.append((task['name'], result.validated_parameters))
    return out
