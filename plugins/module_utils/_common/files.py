# -*- coding: utf-8 -*-
# Copyright: kvmops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Files the collection writes: atomically (temp file, fsync, rename), and removed quietly.
Private to the collection: no API promise.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import os
import tempfile


def write_atomic(directory, name, data, mode=0o644):
    """Write bytes to directory/name atomically: a reader sees the old file or the new one."""
    fd, tmp = tempfile.mkstemp(prefix='.%s.' % name, dir=directory)
    try:
        with os.fdopen(fd, 'wb') as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, mode)
        os.rename(tmp, os.path.join(directory, name))
    except Exception:
        unlink_quietly(tmp)
        raise


def unlink_quietly(path):
    """Remove a file; a file that is not there (or cannot go) is no error."""
    try:
        os.unlink(path)
    except OSError:
        pass
