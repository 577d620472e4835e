# -*- coding: utf-8 -*-
# Copyright: kvmops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The wait option: seconds, or a number with a unit (30s, 90m, 1h, 1d).

Private to the collection: no API promise. Pure.

A bare number counts SECONDS (the module's unit since 1.0.0); virt-install's --wait counts
MINUTES, so `--wait 60` of the guide is wait: 60m here. 0 = return once the installer has
started, -1 = no limit.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import re

UNITS = {'': 1, 's': 1, 'sec': 1, 'secs': 1, 'second': 1, 'seconds': 1,
         'm': 60, 'min': 60, 'mins': 60, 'minute': 60, 'minutes': 60,
         'h': 3600, 'hour': 3600, 'hours': 3600, 'd': 86400, 'day': 86400, 'days': 86400}
_RE = re.compile(r'^\s*(-?[0-9]+(?:\.[0-9]+)?)\s*([A-Za-z]*)\s*$')


class DurationError(ValueError):
    """A duration the options cannot use. Caught by _guest/features/install (re-wrapped as
    the guest's DomainError naming the option)."""


def parse_wait(value, option='wait'):
    """Seconds (int): 0, -1 or a positive number of seconds."""
    if value is None:
        return 0
    if isinstance(value, bool):
        raise DurationError("%s=%r is not a duration." % (option, value))
    if isinstance(value, (int, float)):
        number, unit = float(value), ''
    else:
        m = _RE.match(str(value))
        if not m:
            raise DurationError(
                "%s=%r is not a duration: give seconds (3600), or a number with a unit such as "
                "30s, 90m or 1h (virt-install's --wait 60 is wait: 60m), 0 (do not wait) or -1 "
                "(no limit)." % (option, value))
        number, unit = float(m.group(1)), m.group(2).lower()
    if unit not in UNITS:
        raise DurationError("%s=%r has an unknown unit %r; use s, m, h or d (a bare number "
                            "counts seconds)." % (option, value, unit))
    if number == -1 and unit == '':
        return -1
    if number < 0:
        raise DurationError("%s=%r: use 0 (return once the installer started), -1 (no limit) "
                            "or a positive duration." % (option, value))
    seconds = number * UNITS[unit]
    if seconds != int(seconds):
        raise DurationError("%s=%r is not a whole number of seconds." % (option, value))
    return int(seconds)


def describe(seconds):
    """'0', '-1 (no limit)', '90m' ... for messages."""
    if seconds < 0:
        return 'no limit'
    for unit, size in (('h', 3600), ('m', 60)):
        if seconds and seconds % size == 0:
            return '%d%s' % (seconds // size, unit)
    return '%ds' % seconds
