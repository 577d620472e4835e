# -*- coding: utf-8 -*-
# Copyright: kvmops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The browser console's token files, and the websockify token plugin that reads them.

One file per guest in the token directory (named after the guest's UUID), in websockify's
TokenFile syntax plus one comment line that websockify's own plugins skip:

    # kvmops-console {"domain": "vm1", "uuid": "...", "target": "127.0.0.1:5901",
    #                 "created": 1765100000, "expires": 1765101800}
    <token>: 127.0.0.1:5901

The target is the guest's own VNC on loopback (``127.0.0.1:PORT``, ``[::1]`` written as
``::1:PORT``) or its UNIX socket (``unix_socket:/path``, websockify's spelling).

Expiry is enforced twice:
- :class:`ExpiringTokenDir` is the token plugin websockify runs with (``--token-plugin
  kvmops_console_tokens.ExpiringTokenDir --token-source DIR``): it reads the directory at
  every connection and refuses a token whose ``expires`` has passed, whose file has no valid
  kvmops line, or whose target is not loopback or a UNIX socket, at the second it expires;
- virt_console_token removes expired files on every run, so stock websockify
  (``--token-plugin TokenFile``) refuses them from the next run on.

This file imports nothing of the collection and nothing outside Python's standard library:
the kvm_host role copies it to the hypervisor as websockify's plugin, so that the module and
websockify read one format from one implementation. Python 3.8 compatible.
Private to the collection: no API promise.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import hmac
import ipaddress
import json
import os
import re
import time

MARKER = '# kvmops-console '
SUFFIX = '.token'
UNIX_PREFIX = 'unix_socket:'
# secrets.token_urlsafe output; what websockify's parser and a URL carry unchanged
TOKEN_RE = re.compile(r'^[A-Za-z0-9_-]{32,128}$')
UUID_RE = re.compile(r'^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$')


class TokenFormatError(ValueError):
    """A token file or target that kvmops would not write."""


def target_problem(target):
    """Why a target string is not one a console token may point at, or None.

    Allowed: a loopback address (127.0.0.0/8, ::1) with a port 1-65535, or a UNIX socket path
    (absolute, no ':' which websockify's parser splits on, no white space)."""
    if not isinstance(target, str) or not target:
        return 'the target is empty'
    if target.startswith(UNIX_PREFIX):
        path = target[len(UNIX_PREFIX):]
        if not path.startswith('/'):
            return 'the UNIX socket path %r is not absolute' % path
        if ':' in path or any(c.isspace() for c in path):
            return ('the UNIX socket path %r holds a colon or white space, which websockify '
                    "cannot read back" % path)
        return None
    host, sep, port = target.rpartition(':')
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        return 'the target %r is not ADDRESS:PORT' % target
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return 'the target address %r is not an IP address' % host
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if not ip.is_loopback:
        return ('the target %s is not on loopback: a console token may only point at a '
                "guest's VNC on 127.0.0.1 (or ::1) or its UNIX socket" % target)
    return None


def render(entry):
    """The text of a token file for entry (dict: token, domain, uuid, target, created,
    expires). Raises TokenFormatError for a token or target kvmops would not write."""
    token = entry['token']
    if not TOKEN_RE.match(token or ''):
        raise TokenFormatError('a console token must be 32-128 URL-safe characters')
    problem = target_problem(entry['target'])
    if problem:
        raise TokenFormatError(problem)
    meta = {'domain': entry['domain'], 'uuid': entry['uuid'], 'target': entry['target'],
            'created': int(entry['created']), 'expires': int(entry['expires'])}
    return '%s%s\n%s: %s\n' % (MARKER, json.dumps(meta, sort_keys=True), token, entry['target'])


def parse(text):
    """The entry of a token file's text (dict as render takes it), or None when the text is
    not a kvmops token file or disagrees with itself (token line target != recorded target)."""
    meta = None
    token = target = None
    for line in text.splitlines():
        line = line.strip()
        if line.startswith(MARKER):
            if meta is not None:
                return None
            try:
                meta = json.loads(line[len(MARKER):])
            except ValueError:
                return None
        elif line and not line.startswith('#'):
            if token is not None:
                return None
            parts = re.split(r':\s', line, maxsplit=1)
            if len(parts) != 2:
                return None
            token, target = parts[0], parts[1].strip()
    if not isinstance(meta, dict) or token is None:
        return None
    try:
        entry = {'token': token, 'target': target, 'domain': str(meta['domain']),
                 'uuid': str(meta['uuid']), 'created': int(meta['created']),
                 'expires': int(meta['expires'])}
    except (KeyError, TypeError, ValueError):
        return None
    if meta.get('target') != target or not TOKEN_RE.match(token) or target_problem(target):
        return None
    return entry


def file_name(uuid):
    """The token file of a guest: <uuid>.token (a UUID never holds a path separator)."""
    if not UUID_RE.match(uuid or ''):
        raise TokenFormatError('not a libvirt UUID: %r' % (uuid,))
    return uuid + SUFFIX


def websockify_target(target):
    """[host, port] as websockify's proxy wants it (host 'unix_socket' for a socket)."""
    if target.startswith(UNIX_PREFIX):
        return ['unix_socket', target[len(UNIX_PREFIX):]]
    host, dummy, port = target.rpartition(':')
    return [host, port]


def read_dir(directory):
    """{file name: (entry or None, text)} of every *.token file of the directory."""
    out = {}
    try:
        names = sorted(os.listdir(directory))
    except OSError:
        return out
    for name in names:
        if not name.endswith(SUFFIX):
            continue
        try:
            with open(os.path.join(directory, name), 'r') as f:
                text = f.read(65536)
        except (IOError, OSError, UnicodeDecodeError):
            out[name] = (None, '')
            continue
        out[name] = (parse(text), text)
    return out


class ExpiringTokenDir(object):
    """websockify token plugin: ``--token-plugin kvmops_console_tokens.ExpiringTokenDir
    --token-source DIR``. websockify makes one instance with the source and calls
    lookup(token) per connection; None makes websockify close the connection ("Token ... not
    found") before any byte reaches the guest."""

    def __init__(self, src, clock=time.time):
        self.source = src
        self.clock = clock

    def lookup(self, token):
        if not isinstance(token, str) or not TOKEN_RE.match(token):
            return None
        now = self.clock()
        found = None
        for entry, dummy in read_dir(self.source).values():
            # compare every entry in constant time; no early exit on a match
            if entry is not None and hmac.compare_digest(entry['token'], token):
                found = entry
        if found is None or found['expires'] <= now:
            return None
        return websockify_target(found['target'])
