# -*- coding: utf-8 -*-
# Copyright: kvmops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""crypt(3)-compatible SHA-512 password hashes ($6$) for cloud-init. Private to the
collection: no API promise.

The target's Python has the crypt module up to 3.12 (removed in 3.13); without it the hash
is made by ``openssl passwd -6`` with the password on stdin (never on a command line).
Where neither exists, give cloud_init.password_hash (e.g. from
``mkpasswd -m sha-512`` or ansible's password_hash('sha512') filter) instead.
A hash is reused when the password still matches it, so a re-run writes the same seed.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import os
import re
import string
import subprocess
import warnings

from ansible_collections.kvmops.hypervisor.plugins.module_utils._common.errors import KvmopsError

try:
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        import crypt as _crypt
except ImportError:  # Python 3.13+
    _crypt = None

# $1$ md5, $2a$/$2y$ bcrypt, $5$ sha256, $6$ sha512, $y$ yescrypt: what cloud-init and
# chpasswd -e accept as already hashed.
HASH_RE = re.compile(r'^\$(1|2[abxy]|5|6|y|7|gy)\$[^\s:]+\$[^\s:]+$')
_SALT_CHARS = string.ascii_letters + string.digits + './'


class PasswordError(KvmopsError):
    """openssl or crypt cannot hash the password. Caught by hash_password (here), which
    then makes a new hash instead of reusing the existing one."""


def is_hashed(value):
    return isinstance(value, str) and bool(HASH_RE.match(value))


def _salt_of(existing):
    parts = existing.split('$')
    # $6$rounds=N$salt$hash keeps rounds in the salt string
    if len(parts) >= 5 and parts[2].startswith('rounds='):
        return '$'.join(parts[:4])
    return '$'.join(parts[:3])


def _new_salt():
    raw = os.urandom(16)
    return '$6$' + ''.join(_SALT_CHARS[b % 64] for b in raw)


def _crypt_with(password, salt, openssl=None):
    if _crypt is not None:
        return _crypt.crypt(password, salt)
    if openssl:
        bare = salt.split('$')[2] if salt.count('$') >= 2 else salt
        if bare.startswith('rounds='):
            raise PasswordError('openssl passwd cannot reproduce a rounds= hash.')
        proc = subprocess.Popen([openssl, 'passwd', '-6', '-salt', bare, '-stdin'],
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE)
        out, err = proc.communicate(password.encode('utf-8') + b'\n')
        if proc.returncode == 0 and out.strip():
            return out.decode('ascii').strip()
        raise PasswordError('openssl passwd -6 failed: %s' % err.decode('utf-8', 'replace'))
    raise PasswordError(
        "cloud_init.password needs a SHA-512 crypt hash, but this Python has no crypt module "
        "(Python 3.13+) and openssl is not installed on the hypervisor. Install openssl, or "
        "give cloud_init.password_hash instead (e.g. \"{{ 'secret' | "
        "ansible.builtin.password_hash('sha512') }}\" or mkpasswd -m sha-512).")


def hash_password(password, existing=None, openssl=None):
    """A $6$ hash of password; existing is returned unchanged when the password matches it."""
    if '\n' in password or '\x00' in password:
        raise PasswordError('cloud_init.password must not contain line breaks or NUL bytes.')
    if existing and is_hashed(existing) and existing.startswith('$6$'):
        try:
            if _crypt_with(password, _salt_of(existing), openssl) == existing:
                return existing
        except PasswordError:
            pass
    return _crypt_with(password, _new_salt(), openssl)
