"""Where the repository, the venv, the collection link and the tiny guest assets live."""
import glob
import os

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
VENV = os.environ.get('KVMOPS_VENV', os.path.join(REPO, '.venv'))
# ansible_collections/kvmops/hypervisor -> the repository, so Ansible and imports find us.
COLLECTIONS_DIR = os.path.join(REPO, '.build', 'collections')
COLLECTION_LINK = os.path.join(COLLECTIONS_DIR, 'ansible_collections', 'kvmops', 'hypervisor')
# The `ansible` bundle's collections (community.libvirt, ansible.posix, community.general):
# the site-packages directory that holds them, in the test venv or, when a controller-matrix
# venv with plain ansible-core runs the tests (make matrix), in the project's main venv.
BUNDLE_SITE_PACKAGES = sorted(
    os.path.dirname(d) for v in (VENV, os.path.join(REPO, '.venv'))
    for d in glob.glob(os.path.join(v, 'lib', 'python3*', 'site-packages', 'ansible_collections')))
ASSETS = os.environ.get('KVMOPS_ASSETS', '/var/cache/kvmops-testbed/tiny')
FIXTURES = os.path.join(REPO, 'tests', 'fixtures')
# Modules run on the target with its system Python, as on a real host.
TARGET_PYTHON = os.environ.get('KVMOPS_TARGET_PYTHON', '/usr/bin/python3')
URI = os.environ.get('KVMOPS_URI', 'qemu:///system')
# testbed/with_testbed_lock.sh reads the same variable.
DAEMON_LOCK = os.environ.get('KVMOPS_TESTBED_LOCK', '/run/kvmops-testbed.lock')


def ensure_collection_link():
    if os.path.islink(COLLECTION_LINK) or os.path.exists(COLLECTION_LINK):
        return
    os.makedirs(os.path.dirname(COLLECTION_LINK), exist_ok=True)
    try:
        os.symlink(REPO, COLLECTION_LINK)
    except FileExistsError:
        pass
