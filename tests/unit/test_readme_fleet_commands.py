"""The README's fleet step 3, run as a new user would: in an empty directory (no
`inventories/` yet), with the collection installed under ~/.ansible/collections. The copy must
give inventories/mine with the guide's hosts and group_vars (issue 27: `cp -r ... inventories/mine`
failed without an existing inventories/). And the README names both ways to run site.yml."""
import os
import re
import subprocess

from support import paths

README = os.path.join(paths.REPO, 'README.md')


def _fleet_step3_block():
    text = open(README).read()
    step = text[text.index('3. The guide\'s inventory'):]
    block = re.search(r'```sh\n(.*?)```', step, re.S).group(1)
    return [line.strip() for line in block.splitlines() if line.strip()]


def test_the_copy_commands_work_in_an_empty_directory(tmp_path):
    lines = _fleet_step3_block()
    setup = [l for l in lines if not l.startswith(('vi ', 'ansible-playbook '))]
    assert any(l.startswith('cp -r ') for l in setup), lines
    home = tmp_path / 'home'
    installed = home / '.ansible' / 'collections' / 'ansible_collections' / 'kvmops'
    installed.mkdir(parents=True)
    os.symlink(paths.REPO, str(installed / 'hypervisor'))
    work = tmp_path / 'work'
    work.mkdir()
    proc = subprocess.run(['bash', '-euc', '\n'.join(setup)], cwd=str(work),
                          env=dict(os.environ, HOME=str(home)), stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, universal_newlines=True, check=False)
    assert proc.returncode == 0, proc.stdout
    for name in ('hosts.yml', 'group_vars/hypervisors.yml'):
        assert (work / 'inventories' / 'mine' / name).is_file(), name
    # the commands that follow use the copy
    assert all('inventories/mine' in l for l in lines if l.startswith(('vi ', 'ansible-playbook ')))


def test_the_readme_explains_both_names_of_site_yml():
    text = open(README).read()
    assert '`kvmops.hypervisor.site` is the collection\'s `playbooks/site.yml`' in text
