"""virt_console_token: documentation matches the argument spec; the EXAMPLES are tasks whose
options pass the argument spec."""
from ansible_collections.kvmops.hypervisor.plugins.modules import virt_console_token

from support.module_docs import compare_documentation, validated_examples


def test_documentation_matches_argument_spec():
    compare_documentation(virt_console_token)


def test_examples_are_valid_tasks():
    examples = validated_examples(virt_console_token, 'virt_console_token')
    assert len(examples) == 2
