"""_common/errors.py: the one error class, and a re-wrap that keeps the result fields."""
from ansible_collections.kvmops.hypervisor.plugins.module_utils._common.errors import KvmopsError


class Wrapped(KvmopsError):
    pass


def test_rewrap_keeps_the_message_and_the_result_fields():
    inner = KvmopsError('disk full', actions=['created disk a'], changed=True)
    out = Wrapped.rewrap(inner)
    assert isinstance(out, Wrapped) and str(out) == 'disk full'
    assert out.result == {'actions': ['created disk a'], 'changed': True}
    assert out.result is not inner.result
    out = Wrapped.rewrap(inner, 'disks[0]: disk full')
    assert str(out) == 'disks[0]: disk full' and out.result['changed'] is True


def test_rewrap_of_a_foreign_error_has_no_fields():
    out = Wrapped.rewrap(OSError(28, 'No space left on device'))
    assert 'No space left' in str(out) and out.result == {}
    assert out.fail_kwargs(changed=False) == {'changed': False, 'msg': str(out)}
