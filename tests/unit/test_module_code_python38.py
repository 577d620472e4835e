"""Module code runs on the hypervisor's system Python: 3.8 and later (README's support table).

Two independent checks over plugins/modules and plugins/module_utils (what Ansible ships to the
target), each a few seconds:
- vermin (PyPI) derives the minimum Python of every file from its syntax, the standard-library
  names it uses (functools.cache, str.removeprefix, ...) and its annotations (list[int]), and
  fails on anything that needs more than 3.8;
- a real Python 3.8 byte-compiles every file (pyenv's interpreter on this project's machines;
  the test says so and skips where none is installed: vermin still guards).
The controller-side plugins (inventory, filters, lookups) run on the controller's Python and are
not held to 3.8.
"""
import glob
import os
import shutil
import subprocess
import sys

import pytest

from support import paths

TARGET_DIRS = [os.path.join(paths.REPO, 'plugins', d) for d in ('modules', 'module_utils')]
MIN_PYTHON = '3.8'


def module_files():
    files = []
    for d in TARGET_DIRS:
        for root, _dirs, names in os.walk(d):
            files += [os.path.join(root, n) for n in names if n.endswith('.py')]
    return sorted(files)


def python38():
    """A Python 3.8 interpreter that runs (pyenv's shims only redirect: they are skipped), or None."""
    cands = []
    for home in (os.environ.get('PYENV_ROOT'), os.path.expanduser('~/.pyenv'), '/opt/pyenv'):
        if home:
            cands += sorted(glob.glob(os.path.join(home, 'versions', '3.8.*', 'bin', 'python3.8')))
    if shutil.which('python3.8'):
        cands.append(shutil.which('python3.8'))
    for cand in cands:
        ok = subprocess.run([cand, '-c', 'import sys; assert sys.version_info[:2] == (3, 8)'],
                            capture_output=True, timeout=30, check=False)
        if ok.returncode == 0:
            return cand
    return None


def test_module_code_needs_at_most_python_38_by_vermin():
    vermin = os.path.join(os.path.dirname(sys.executable), 'vermin')
    assert os.path.exists(vermin), 'vermin missing: pip install -r testbed/requirements.txt'
    proc = subprocess.run(
        [vermin, '--target=%s-' % MIN_PYTHON, '--violations', '--no-tips', '--eval-annotations',
         '--no-parse-comments', '--processes=2'] + TARGET_DIRS,
        capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, (
        'module code needs a Python newer than %s (it runs on the target host):\n%s%s'
        % (MIN_PYTHON, proc.stdout, proc.stderr))
    assert len(module_files()) > 50   # the walk saw the collection, not an empty tree


def test_vermin_catches_what_38_lacks(tmp_path):
    """The check above can fail: a 3.9-only file is reported."""
    bad = tmp_path / 'new.py'
    bad.write_text('import functools\n@functools.cache\ndef f(x: list[int]):\n'
                   '    return "ab".removeprefix("a")\n')
    vermin = os.path.join(os.path.dirname(sys.executable), 'vermin')
    proc = subprocess.run([vermin, '--target=%s-' % MIN_PYTHON, '--violations', '--no-tips',
                           '--eval-annotations', str(tmp_path)],
                          capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode != 0
    assert 'str.removeprefix' in proc.stdout and 'functools.cache' in proc.stdout


def test_module_code_compiles_with_a_real_python_38():
    py38 = python38()
    if py38 is None:
        pytest.skip('no Python 3.8 interpreter here (pyenv 3.8.x or python3.8 on PATH); '
                    'the vermin test still guards')
    # compile() in memory: no .pyc is written anywhere
    script = ('import sys\n'
              'bad = []\n'
              'for f in sys.argv[1:]:\n'
              '    try:\n'
              '        with open(f, "rb") as fh:\n'
              '            compile(fh.read(), f, "exec", dont_inherit=True)\n'
              '    except SyntaxError as e:\n'
              '        bad.append("%s:%s: %s" % (f, e.lineno, e.msg))\n'
              'print(sys.version.split()[0])\n'
              'print("\\n".join(bad))\n'
              'sys.exit(1 if bad else 0)\n')
    proc = subprocess.run([py38, '-c', script] + module_files(),
                          capture_output=True, text=True, timeout=120, check=False)
    assert proc.stdout.startswith('3.8.'), proc.stdout + proc.stderr
    assert proc.returncode == 0, 'does not compile with Python %s' % proc.stdout
