# -*- coding: utf-8 -*-
# Copyright: kvmops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Tell the installer where its tree is, as virt-install does (libosinfo's
kernel-url-argument).

Private to the collection: no API promise. Pure.

Booted directly, an installer kernel knows nothing about the tree it came from: anaconda
(RHEL, CentOS, Fedora 7 and later) stops in dracut unable to find stage 2 unless it gets
``inst.repo=<url>`` (older releases ``method=<url>``), SUSE's linuxrc wants
``install=<url>``; Debian and Ubuntu netboot initrds carry the installer and ask for a
mirror themselves, so they get nothing.

Who decides the argument, first match wins (and the result says which):
1. the tree's own .treeinfo ([release] or [general] family and version, the RHEL tree);
2. os_variant (libosinfo's kernel-url-argument when libosinfo knows it, else the families);
3. the layout the tree was found in (redhat: inst.repo, suse: install, debian/ubuntu: none).

Only an http(s)/ftp location is passed this way. An ISO location is attached as a CD-ROM,
where anaconda and linuxrc look by default; a directory on the hypervisor cannot be reached
from inside the guest, so a RHEL or SUSE layout there gets a warning (virt-install warns the
same) unless extra_args already name a source.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import configparser
import re

from ansible_collections.kvmops.hypervisor.plugins.module_utils._libvirt import osinfo as _osinfo

# Kernel arguments that already name the install source (or stage 2).
SOURCE_ARG_PREFIXES = ('inst.repo=', 'repo=', 'method=', 'inst.stage2=', 'stage2=', 'install=',
                       'inst.askmethod', 'askmethod')
_FAMILY_DISTROS = (
    (r'red hat enterprise linux|^rhel', 'rhel'),
    (r'centos stream', 'centos-stream'),
    (r'centos', 'centos'),
    (r'fedora', 'fedora'),
    (r'rocky', 'rocky'),
    (r'alma', 'almalinux'),
    (r'oracle linux', 'ol'),
    (r'scientific linux', 'scientificlinux'),
    (r'suse linux enterprise|^sles|^sled', 'sles'),
    (r'opensuse', 'opensuse'),
)
LAYOUT_ARGS = {'redhat': 'inst.repo', 'suse': 'install', 'debian': None, 'ubuntu': None}


def names_source(extra_args):
    """True when extra_args already tell the installer where its source is."""
    for word in (extra_args or '').split():
        if word.startswith(SOURCE_ARG_PREFIXES):
            return True
    return False


def treeinfo_release(text):
    """{'family': ..., 'version': ...} from a .treeinfo ([release] first, then [general]),
    or None."""
    if not text:
        return None
    if isinstance(text, bytes):
        text = text.decode('utf-8', 'replace')
    cp = configparser.ConfigParser(interpolation=None, strict=False)
    try:
        cp.read_string(text)
    except configparser.Error:
        return None
    for section, fam_key in (('release', 'name'), ('general', 'family')):
        if cp.has_option(section, fam_key):
            family = cp.get(section, fam_key).strip()
            version = cp.get(section, 'version').strip() if cp.has_option(section,
                                                                          'version') else None
            if family:
                return {'family': family, 'version': version}
    return None


def distro_of_family(family):
    f = (family or '').lower()
    for pattern, distro in _FAMILY_DISTROS:
        if re.search(pattern, f):
            return distro
    return None


def decide(kind, layout, release=None, os_info=None):
    """(argument name or None, decided_by) for an install tree.

    kind: url | dir | iso; layout: redhat | suse | debian | ubuntu | None; release: the
    tree's treeinfo_release(); os_info: _libvirt/osinfo.py facts of os_variant."""
    distro = distro_of_family((release or {}).get('family'))
    if distro:
        version = _osinfo.version_of((release or {}).get('version') or '')
        return (_osinfo.kernel_url_arg_for(distro, version),
                "the tree's .treeinfo (%s %s)" % (release['family'], release.get('version') or ''))
    if os_info and (os_info.get('source') == _osinfo.SOURCE_LIBOSINFO or os_info.get('distro')):
        return (os_info.get('kernel_url_arg'),
                'os_variant=%s (%s)' % (os_info.get('os_variant'), os_info.get('source')))
    if layout in LAYOUT_ARGS:
        return LAYOUT_ARGS[layout], 'the %s layout of the tree' % layout
    return None, 'nothing known about the tree'


def plan(location, kind, layout, extra_args, release=None, os_info=None):
    """What to add to the installer's command line:
    {'argument': 'inst.repo=http://...' or None, 'decided_by': str, 'warning': str or None}."""
    out = {'argument': None, 'decided_by': None, 'warning': None}
    if names_source(extra_args):
        out['decided_by'] = 'install.extra_args already name the source'
        return out
    name, why = decide(kind, layout, release, os_info)
    out['decided_by'] = why
    if not name:
        return out
    if kind == 'url':
        out['argument'] = '%s=%s' % (name, location.strip())
    elif kind == 'iso':
        out['decided_by'] = why + '; the ISO is attached as a CD-ROM, where the installer looks'
    else:
        out['warning'] = (
            "install.location=%s is a directory on the hypervisor: the %s installer in the guest "
            "cannot read it and will stop looking for its source (%s=...). Serve the tree over "
            "HTTP (e.g. python3 -m http.server in it) and give that URL, give the installer ISO "
            "instead, or name a source the guest can reach in install.extra_args (e.g. "
            "%s=nfs:server:/path)." % (location, layout or 'tree', name, name))
    return out


def append(cmdline, argument):
    if not argument:
        return cmdline
    return ('%s %s' % (cmdline or '', argument)).strip()
