"""virt_migrate: documentation matches the argument spec; the EXAMPLES are tasks whose options
pass the argument spec and plan.normalize."""
from ansible_collections.kvmops.hypervisor.plugins.module_utils._migrate import plan
from ansible_collections.kvmops.hypervisor.plugins.modules import virt_migrate

from support.module_docs import compare_documentation, validated_examples


def test_documentation_matches_argument_spec():
    compare_documentation(virt_migrate)


def test_examples_are_valid_tasks():
    examples = validated_examples(virt_migrate, 'virt_migrate')
    assert len(examples) >= 3
    for dummy, params in examples:
        plan.normalize(params)
