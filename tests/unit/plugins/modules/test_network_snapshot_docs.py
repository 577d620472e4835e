"""virt_network and virt_snapshot: documentation matches the argument spec; the EXAMPLES are
tasks of the module whose options pass the argument spec and the spec normalisation."""
import pytest

from ansible_collections.kvmops.hypervisor.plugins.module_utils._network import spec as nspec
from ansible_collections.kvmops.hypervisor.plugins.module_utils._snapshot import plan
from ansible_collections.kvmops.hypervisor.plugins.modules import virt_network, virt_snapshot

from support.module_docs import compare_documentation, validated_examples

MODULES = [
    pytest.param(virt_network, 'virt_network', nspec.normalize, 4, id='virt_network'),
    pytest.param(virt_snapshot, 'virt_snapshot', plan.normalize, 5, id='virt_snapshot'),
]


@pytest.mark.parametrize('mod, name, normalize, at_least', MODULES)
def test_documentation_matches_argument_spec(mod, name, normalize, at_least):
    compare_documentation(mod)


@pytest.mark.parametrize('mod, name, normalize, at_least', MODULES)
def test_examples_are_valid_tasks(mod, name, normalize, at_least):
    examples = validated_examples(mod, name)
    assert len(examples) >= at_least
    for dummy, params in examples:
        normalize(params)
