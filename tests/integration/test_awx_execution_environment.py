"""The execution environment for AWX/AAP: meta/execution-environment.yml (the collection's
dependencies as ansible-builder reads them) and examples/awx/execution-environment.yml (the
image a user builds).

`ansible-builder create` writes the build context for real. `ansible-builder build` is not run:
it pulls the base image from a container registry this machine cannot reach. What the build
would add for this collection is what `ansible-builder introspect` (the same code the build
runs inside the image) reads from the installed collection, checked here.
"""
import os
import shutil
import subprocess

import yaml

from support import paths

BUILDER = os.path.join(paths.VENV, 'bin', 'ansible-builder')
BINDEP = os.path.join(paths.VENV, 'bin', 'bindep')
EXAMPLE = os.path.join(paths.REPO, 'examples', 'awx')


def run(cmd, **kw):
    return subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          universal_newlines=True, timeout=120, check=False, **kw)


def test_collection_metadata_lists_dependencies_only():
    with open(os.path.join(paths.REPO, 'meta', 'execution-environment.yml')) as f:
        meta = yaml.safe_load(f)
    assert meta['version'] == 1
    assert meta['dependencies'] == {'python': 'meta/ee-requirements.txt', 'system': 'meta/ee-bindep.txt'}
    for rel in meta['dependencies'].values():
        with open(os.path.join(paths.REPO, rel)) as f:
            text = f.read()
        assert 'ansible-core' not in text and 'ansible ' not in text, rel


def test_introspect_reads_the_collections_python_and_system_dependencies():
    proc = run([BUILDER, 'introspect', '--sanitize', paths.COLLECTIONS_DIR])
    assert proc.returncode == 0, proc.stdout
    data = yaml.safe_load(proc.stdout)
    python = [line.split('#')[0].strip() for line in data['python']]
    system = [line.split('#')[0].strip() for line in data['system']]
    assert any(p.startswith('libvirt-python') for p in python), python
    assert any(p.startswith('lxml') for p in python), python
    assert 'libvirt-devel [platform:rpm compile]' in system, system
    assert 'libvirt-libs [platform:rpm]' in system, system
    assert 'openssh-clients [platform:rpm]' in system, system
    assert all('from collection kvmops.hypervisor' in line for line in data['python'] + data['system'])


def test_bindep_file_parses_for_every_profile():
    for profile in ([], ['compile']):
        proc = run([BINDEP, '-f', os.path.join(paths.REPO, 'meta', 'ee-bindep.txt'), '--brief'] + profile)
        # rc 1 only lists packages missing here; a syntax error gives a traceback/"Error".
        assert proc.returncode in (0, 1) and 'Error' not in proc.stdout and 'Traceback' not in proc.stdout, proc.stdout


def test_ansible_builder_create_writes_the_build_context(tmp_path):
    work = tmp_path / 'ee'
    shutil.copytree(EXAMPLE, str(work))
    context = work / 'context'
    proc = run([BUILDER, 'create', '-f', 'execution-environment.yml', '-c', str(context),
                '--output-filename', 'Containerfile'], cwd=str(work))
    assert proc.returncode == 0, proc.stdout
    containerfile = (context / 'Containerfile').read_text()
    assert 'ARG EE_BASE_IMAGE="quay.io/centos/centos:stream9"' in containerfile
    # No ansible-core pin from the collection: the user's choice in the example is what lands.
    assert 'ARG ANSIBLE_INSTALL_REFS="ansible-core>=2.16,<2.20 ansible-runner>=2.4"' in containerfile
    assert 'ansible-galaxy collection install' in containerfile and '-r requirements.yml' in containerfile
    assert 'introspect' in containerfile   # the collections' meta/execution-environment.yml is read in the build
    assert 'kvmops.hypervisor.libvirt_guests' in containerfile
    reqs = yaml.safe_load((context / '_build' / 'requirements.yml').read_text())
    names = [c['name'] for c in reqs['collections']]
    assert 'kvmops.hypervisor' in names and 'community.libvirt' in names
    bindep = (context / '_build' / 'bindep.txt').read_text()
    assert 'python3.11-devel' in bindep
    for script in ('assemble', 'install-from-bindep', 'introspect.py', 'entrypoint'):
        assert (context / '_build' / 'scripts' / script).is_file(), script
