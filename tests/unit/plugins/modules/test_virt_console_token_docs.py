"""virt_console_token: documentation matches the argument spec; the module's tasks in EXAMPLES
pass the argument spec (the example also prints the URLs with ansible.builtin.debug)."""
import yaml
from ansible.module_utils.common.arg_spec import ArgumentSpecValidator

from ansible_collections.kvmops.hypervisor.plugins.modules import virt_console_token

from support.module_docs import compare_documentation

FQCN = 'kvmops.hypervisor.virt_console_token'


def test_documentation_matches_argument_spec():
    compare_documentation(virt_console_token)


def test_examples_are_valid_tasks():
    validator = ArgumentSpecValidator(virt_console_token.argument_spec())
    tasks = [t for t in yaml.safe_load(virt_console_token.EXAMPLES) if FQCN in t]
    assert len(tasks) == 2
    for task in tasks:
        result = validator.validate(task[FQCN])
        assert not result.error_messages, (task['name'], result.error_messages)
