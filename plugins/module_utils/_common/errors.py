# -*- coding: utf-8 -*-
# Copyright: kvmops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The collection's one error class. Private to the collection: no API promise.

Every manager raises KvmopsError (or a subclass) with a message that says what was wrong
and how to fix it, plus result fields (changed, actions, ...) the module reports with it.
A subclass exists only where a caller catches it; a caller that turns one error into
another uses rewrap(), which keeps the result fields.
A module's main() has one `except KvmopsError` and turns it into fail_json.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type


class KvmopsError(Exception):
    """A handled failure: message for the user, result fields for fail_json."""

    def __init__(self, msg, **result):
        super(KvmopsError, self).__init__(msg)
        self.msg = msg
        self.result = result

    def __str__(self):
        return self.msg

    @classmethod
    def rewrap(cls, exc, msg=None):
        """This class for another error (a library's, or an OSError), keeping its message
        (or msg) and the result fields it carries: a re-wrap never drops them."""
        return cls(msg if msg is not None else str(exc), **dict(getattr(exc, 'result', None) or {}))

    def fail_kwargs(self, **extra):
        """Keyword arguments for module.fail_json (extra fields are overridden by ours)."""
        kwargs = dict(extra)
        kwargs.update(self.result)
        kwargs['msg'] = self.msg
        return kwargs
