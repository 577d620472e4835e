# -*- coding: utf-8 -*-
# Copyright: kvmops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function
__metaclass__ = type


class ModuleDocFragment(object):
    """Attribute fragments, as in community.docker: use the ones that fit a module."""

    DOCUMENTATION = r'''
options: {}
attributes:
  check_mode:
    description: Can run in check_mode and return changed status prediction without modifying target.
  diff_mode:
    description: Will return details on what has changed (or possibly needs changing in check_mode), when in diff mode.
'''

    ACTIONGROUP_KVM = r'''
options: {}
attributes:
  action_group:
    description: Use C(group/kvmops.hypervisor.kvm) in C(module_defaults) to set defaults for this module.
    support: full
    membership:
      - kvmops.hypervisor.kvm
'''

    FACTS = r'''
options: {}
attributes:
  facts:
    description: Action returns an C(ansible_facts) dictionary that will update existing host facts.
'''

    IDEMPOTENT = r'''
options: {}
attributes:
  idempotent:
    description:
      - When run twice in a row outside check mode, with the same arguments, the second invocation indicates no change.
'''
