# -*- coding: utf-8 -*-
# Copyright: kvmops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The content of a cloud-init NoCloud seed: user-data, meta-data, network-config.
Private to the collection: no API promise. Pure logic (no files, no tools).

Dictionaries are written as JSON after the '#cloud-config' line: JSON is YAML, so cloud-init
reads it, the target needs no YAML emitter, and the same input always gives the same bytes
(sorted keys), which is what makes "the seed changed" a byte comparison.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import json
import re

from ansible_collections.kvmops.hypervisor.plugins.module_utils._common.errors import KvmopsError
from ansible_collections.kvmops.hypervisor.plugins.module_utils._cloud import password as _pw
from ansible_collections.kvmops.hypervisor.plugins.module_utils._cloud import seal as _seal

try:
    from ansible.module_utils.common.yaml import yaml_load, HAS_YAML
except ImportError:  # pragma: no cover - older ansible-core
    try:
        import yaml as _yaml
        HAS_YAML = True

        def yaml_load(text):
            return _yaml.safe_load(text)
    except ImportError:
        HAS_YAML = False
        yaml_load = None

CLOUD_CONFIG = '#cloud-config'
FILES = ('user-data', 'meta-data', 'network-config')
_HOSTNAME_RE = re.compile(r'^(?=.{1,253}$)[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?'
                          r'(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$')
_KEY_RE = re.compile(r'^(ssh-(rsa|dss|ed25519)|ecdsa-sha2-nistp(256|384|521)|'
                     r'sk-(ssh-ed25519|ecdsa-sha2-nistp256)@openssh\.com)\s+[A-Za-z0-9+/=]+(\s.*)?$')


def _load_yaml(text, option):
    if not HAS_YAML:
        raise KvmopsError("%s is given as text, which must be parsed as YAML, but PyYAML is not "
                          "installed for the Python running the module (Debian/Ubuntu: "
                          "python3-yaml, RHEL: python3-pyyaml). Give it as a dictionary instead."
                          % option)
    try:
        return yaml_load(text)
    # yaml.YAMLError and whatever else a broken document raises
    except Exception as exc:  # pylint: disable=broad-except
        mark = getattr(exc, 'problem_mark', None)
        where = ' (line %d, column %d)' % (mark.line + 1, mark.column + 1) if mark else ''
        raise KvmopsError.rewrap(exc, "%s is not valid YAML%s: %s. Fix the text, or give a "
                                 "dictionary." % (option, where, getattr(exc, 'problem', None) or exc))


def _dump(data):
    return json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + '\n'


def clear_text_passwords(cfg):
    """Where a cloud-config dict carries a password in clear text (paths such as
    'users[0].plain_text_passwd'); hashes ($6$...) are fine."""
    found = []
    if not isinstance(cfg, dict):
        return found
    if isinstance(cfg.get('password'), str) and not _pw.is_hashed(cfg['password']):
        found.append('password')
    for i, user in enumerate(cfg.get('users') or []):
        if not isinstance(user, dict):
            continue
        if user.get('plain_text_passwd'):
            found.append('users[%d].plain_text_passwd' % i)
        if isinstance(user.get('passwd'), str) and not _pw.is_hashed(user['passwd']):
            found.append('users[%d].passwd' % i)
    chpasswd = cfg.get('chpasswd')
    if isinstance(chpasswd, dict):
        lst = chpasswd.get('list')
        lines = lst.splitlines() if isinstance(lst, str) else (lst or [])
        for i, line in enumerate(lines):
            if isinstance(line, str) and ':' in line:
                value = line.split(':', 1)[1]
                if value not in ('R', 'RANDOM') and not _pw.is_hashed(value):
                    found.append('chpasswd.list[%d]' % i)
        for i, user in enumerate(chpasswd.get('users') or []):
            if isinstance(user, dict) and user.get('type', 'text') == 'text' and \
                    user.get('password') not in (None, 'R', 'RANDOM'):
                found.append('chpasswd.users[%d].password' % i)
    return found


def _user_data(ci):
    """(cloud-config dict or None, raw text or None) from cloud_init.user_data."""
    ud = ci.get('user_data')
    if ud is None:
        return {}, None
    if isinstance(ud, dict):
        return dict(ud), None
    if not isinstance(ud, str):
        raise KvmopsError("cloud_init.user_data must be a dictionary (cloud-config) or a string "
                          "(cloud-config YAML starting with #cloud-config, a #! script, or a MIME "
                          "multi-part); got %s." % type(ud).__name__)
    first = ud.lstrip().split('\n', 1)[0].strip()
    if first == CLOUD_CONFIG:
        cfg = _load_yaml(ud, 'cloud_init.user_data')
        if cfg is None:
            cfg = {}
        if not isinstance(cfg, dict):
            raise KvmopsError("cloud_init.user_data is #cloud-config but its YAML is a %s, not a "
                              "mapping of cloud-config keys." % type(cfg).__name__)
        return cfg, None
    if first.startswith('#!') or first.lower().startswith('content-type:') or \
            first.startswith('#include') or first.startswith('## template'):
        return None, ud
    raise KvmopsError("cloud_init.user_data is text that cloud-init would ignore: it must start "
                      "with '#cloud-config' (cloud-config YAML), '#!' (a script) or be MIME "
                      "multi-part. Add the '#cloud-config' line, or give a dictionary.")


def instance_id(ci, domain_name):
    """The instance-id a seed carries: cloud_init.instance_id, else meta_data's, else
    iid-<domain name>."""
    return (ci.get('instance_id') or (ci.get('meta_data') or {}).get('instance-id')
            or 'iid-%s' % domain_name)


def build(ci, domain_name, existing=None, openssl=None):
    """The seed files {name: text} and warnings for a normalised cloud_init dict.

    existing: the seed files already on disk ({name: text}) or None; a password hash in them
    is reused when the password still matches, so a re-run builds the same bytes.
    ci['seal'] (set by clone_from.seal, not a user option): the seal's additions
    (_cloud/seal.py) go into the user-data.
    """
    warnings = []
    cfg, raw = _user_data(ci)
    if ci.get('seal'):
        cfg = _seal.user_data(cfg)
    hostname = ci.get('hostname') or domain_name
    if not _HOSTNAME_RE.match(hostname):
        raise KvmopsError("cloud_init.hostname=%r is not a valid host name (letters, digits and "
                          "'-', dot-separated labels); set cloud_init.hostname." % hostname)
    keys = ci.get('ssh_authorized_keys') or []
    for i, key in enumerate(keys):
        if not isinstance(key, str) or not _KEY_RE.match(key.strip()):
            raise KvmopsError("cloud_init.ssh_authorized_keys[%d] is not an OpenSSH public key "
                              "(ssh-ed25519 AAAA... comment); give the content of a .pub file, "
                              "not a path or a private key." % i)
    pw_hash = ci.get('password_hash')
    if pw_hash is not None and not _pw.is_hashed(pw_hash):
        raise KvmopsError("cloud_init.password_hash is not a crypt hash ($6$salt$hash); give "
                          "cloud_init.password for a clear-text password (the module hashes it).")
    if ci.get('password') is not None:
        if pw_hash is not None:
            raise KvmopsError("give cloud_init.password or cloud_init.password_hash, not both.")
        old = None
        if existing and existing.get('user-data', '').startswith(CLOUD_CONFIG):
            try:
                old = json.loads(existing['user-data'].split('\n', 1)[1]).get('password')
            except (ValueError, AttributeError, IndexError):
                old = None
        pw_hash = _pw.hash_password(ci['password'], existing=old, openssl=openssl)
    if cfg is None:  # a script or multi-part: only meta-data can carry our additions
        if pw_hash:
            raise KvmopsError("cloud_init.password/password_hash need cloud-config user-data "
                              "(a dictionary or #cloud-config text), not a script or multi-part.")
    else:
        clear = clear_text_passwords(cfg)
        if clear:
            warnings.append(
                "cloud_init.user_data carries a password in clear text (%s): it ends up "
                "readable in the seed image on the hypervisor and in the guest's "
                "/var/lib/cloud. Use cloud_init.password (hashed with SHA-512 by the module) or "
                "a hash ($6$...) instead." % ', '.join(clear))
        if keys:
            merged = list(cfg.get('ssh_authorized_keys') or [])
            cfg['ssh_authorized_keys'] = merged + [k.strip() for k in keys
                                                   if k.strip() not in merged]
        if pw_hash:
            cfg['password'] = pw_hash
            chpasswd = dict(cfg.get('chpasswd') or {})
            chpasswd.setdefault('expire', False)
            cfg['chpasswd'] = chpasswd
    meta = dict(ci.get('meta_data') or {})
    meta['instance-id'] = instance_id(ci, domain_name)
    meta['local-hostname'] = hostname
    if cfg is None and keys:
        meta['public-keys'] = [k.strip() for k in keys]
    files = {
        'user-data': CLOUD_CONFIG + '\n' + _dump(cfg) if cfg is not None else raw,
        'meta-data': _dump(meta),
    }
    nc = ci.get('network_config')
    if nc is not None:
        if isinstance(nc, str):
            parsed = _load_yaml(nc, 'cloud_init.network_config')
            if not isinstance(parsed, dict):
                raise KvmopsError("cloud_init.network_config must be a mapping (network: "
                                  "{version: 2, ethernets: ...}).")
            nc = parsed
        if not isinstance(nc, dict):
            raise KvmopsError("cloud_init.network_config must be a dictionary or YAML text.")
        if isinstance(nc.get('network'), dict):
            nc = nc['network']  # cloud-init 22.x's NoCloud wants version: at the top
        if nc.get('version') not in (1, 2):
            raise KvmopsError("cloud_init.network_config needs version: 1 or version: 2 "
                              "(netplan-style ethernets:).")
        files['network-config'] = _dump(nc)
    return files, warnings


def changed_files(want, have):
    """Seed file names whose content differs (added, changed or removed)."""
    names = sorted(set(want) | set(have or {}))
    return [n for n in names if (want.get(n) != (have or {}).get(n))]
