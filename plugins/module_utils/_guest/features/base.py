# -*- coding: utf-8 -*-
# Copyright: kvmops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The features' hooks and for_guest (the package's __init__.py stays empty: ansible-test
sanity's empty-init test of ansible-core 2.17 requires it). A guest's optional behaviours,
one file each: install.py (the install phase: location, cdrom, import, pxe) and cloud.py
(cloud-image guests: base images, the cloud-init seed, the agent channel, port forwards,
wait_for) and clone.py (clone_from and templates; in every guest's list: it guards
templates). Private to the collection: no API promise.

The guest manager (_guest/manager.py) calls the hooks below, in the order of its run, on
every feature the guest's options enable. A feature implements the hooks it needs; the
others do nothing. `m` is the GuestManager (its spec, plans, domain, check_mode, shared
locks, act/warn).

The feature files are imported only for a guest that uses them (for_guest below), so a
plain guest's run never loads the install-media or cloud code.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type


class Feature(object):
    """The hooks, in the manager's step order. Each does nothing unless a feature says so."""

    name = None  # what GuestManager.feature(name) finds it by

    # -- plan: no side effects in any mode
    def placeholders(self, m):
        """{disk index: storage plan} for disks prepare() makes (not there yet)."""
        return {}

    def plan(self, m):
        """Validate and plan (after the storage plan); may raise DomainError."""

    # -- prepare: the side effects before the preflight (check mode: reports only)
    def prepare(self, m):
        """Fetch, write; True when the storage must be planned again afterwards."""
        return False

    # -- preflight: check mode too
    def preflight(self, m):
        """What QEMU must reach for this feature; raises DomainError."""

    # -- a new domain
    def final_xml(self, m, xml):
        """The final definition (an XML string) with this feature's parts."""
        return xml

    def define_error(self, m, error):
        """A clearer DomainError for libvirt's refusal of the definition, or None."""
        return None

    def create_failed(self, m):
        """Undo what prepare() made for a new domain that was not defined."""

    # -- an existing domain
    def compare_spec(self, m, spec):
        """The spec the drift comparison sees (a feature's own devices as wanted)."""
        return spec

    def blocks_restart(self, m):
        """True when the running guest must not be restarted to apply an update."""
        return False

    def updated(self, m):
        """After the definition was compared (and updated)."""

    # -- power
    def start_new(self, m, dom):
        """Start a domain this run defined; True when the feature did."""
        return False

    def power(self, m):
        """Reach the wanted power state; True when the feature did (else the manager does)."""
        return False

    def finish(self, m):
        """After power and autostart (e.g. wait until the guest answers)."""

    def created(self, m):
        """Record keys (path, or pool/volume) of the images this feature made for the guest in
        this run: the guest's kvmops record marks them as made by kvmops, so remove_storage
        may delete them later."""
        return []

    # -- absent
    def before_remove(self, m):
        """Before the domain is removed: raise DomainError to refuse (e.g. a template that
        linked clones use)."""

    def removed(self, m, had):
        """After the domain was removed (had: it existed)."""

    # -- result
    def result(self, m, res):
        """Add this feature's fields to the module result (a dict, changed in place)."""


def for_guest(install=None, cloud=None, openssl=None):
    """The features a guest's options enable (see _guest/options.py), in hook order: the
    install phase before the cloud image (the cloud devices go into the final definition
    after the install record, its result fields after the install's)."""
    # clone.py: clone_from and template, and the guards every guest needs (a template is
    # never started; a template that linked clones use is never removed).
    from ansible_collections.kvmops.hypervisor.plugins.module_utils._guest.features import (
        clone as _clone)
    features = [_clone.CloneFeature()]
    if install:
        from ansible_collections.kvmops.hypervisor.plugins.module_utils._guest.features import (
            install as _install)
        features.append(_install.InstallFeature(install))
    if cloud:
        from ansible_collections.kvmops.hypervisor.plugins.module_utils._guest.features import (
            cloud as _cloud)
        features.append(_cloud.CloudFeature(cloud, openssl=openssl))
    return features
