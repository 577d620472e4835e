"""virt_backup and virt_backup_restore: documentation matches the argument spec; the EXAMPLES
are tasks of the module whose options pass the argument spec and the spec normalisation."""
import pytest

from ansible_collections.kvmops.hypervisor.plugins.module_utils._backup import plan, restore
from ansible_collections.kvmops.hypervisor.plugins.modules import virt_backup, virt_backup_restore

from support.module_docs import compare_documentation, validated_examples

MODULES = [
    pytest.param(virt_backup, 'virt_backup', plan.normalize, 3, id='virt_backup'),
    pytest.param(virt_backup_restore, 'virt_backup_restore', restore.normalize, 3, id='virt_backup_restore'),
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
