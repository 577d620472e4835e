"""virt_snapshots: documentation matches the argument spec; the EXAMPLES are tasks of the module
whose options pass the argument spec and the group's normalisation; the per-guest snapshot
options are virt_snapshot's, documented once (doc fragment kvmops.hypervisor.snapshot)."""
import yaml

from ansible_collections.kvmops.hypervisor.plugins.module_utils._snapshot import group
from ansible_collections.kvmops.hypervisor.plugins.module_utils._snapshot.argspec import snapshot_options
from ansible_collections.kvmops.hypervisor.plugins.modules import virt_snapshot, virt_snapshots

from support.module_docs import compare_documentation, documentation, validated_examples


def test_documentation_matches_argument_spec():
    compare_documentation(virt_snapshots)


def test_examples_are_valid_tasks_of_a_patch_window():
    examples = validated_examples(virt_snapshots, 'virt_snapshots')
    states = [params['state'] for dummy, params in examples]
    assert states.count('present') >= 2 and 'reverted' in states and 'absent' in states
    for dummy, params in examples:
        group.normalize(params)


def test_the_per_guest_options_are_virt_snapshots_own():
    shared = snapshot_options()
    for mod in (virt_snapshot, virt_snapshots):
        spec = mod.argument_spec()
        assert dict((k, spec[k]) for k in shared) == shared
        assert 'kvmops.hypervisor.snapshot' in yaml.safe_load(mod.DOCUMENTATION)['extends_documentation_fragment']
    one = documentation(virt_snapshot)['options']
    many = documentation(virt_snapshots)['options']
    for key in shared:
        assert one[key] == many[key], key
