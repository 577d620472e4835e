"""virt_snapshot module: documentation matches the argument spec; the EXAMPLES are tasks of
this module whose options pass the argument spec and the spec normalisation."""
import yaml

from ansible_collections.kvmops.hypervisor.plugins.module_utils._snapshot import plan
from ansible_collections.kvmops.hypervisor.plugins.modules import virt_snapshot as mod

from support.module_docs import compare


def test_documentation_matches_argument_spec():
    options = dict(yaml.safe_load(mod.DOCUMENTATION)['options'])
    options['uri'] = {'type': 'str', 'default': 'qemu:///system'}
    compare(mod.argument_spec(), options)


def test_examples_are_valid_tasks():
    from ansible.module_utils.common.arg_spec import ArgumentSpecValidator
    validator = ArgumentSpecValidator(mod.argument_spec())
    tasks = yaml.safe_load(mod.EXAMPLES)
    assert len(tasks) >= 5
    for task in tasks:
        result = validator.validate(task['kvmops.hypervisor.virt_snapshot'])
        assert not result.error_messages, (task['name'], result.error_messages)
        plan.normalize(result.validated_parameters)
