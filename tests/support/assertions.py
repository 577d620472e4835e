"""Assertions the unit tests share."""
import pytest


def raises_naming(error, message, call, *args, **kwargs):
    """call(*args, **kwargs) raises error, and its message contains message; the error."""
    with pytest.raises(error) as exc:
        call(*args, **kwargs)
    assert message in str(exc.value), str(exc.value)
    return exc.value
