"""README's "Where things live" and its layer drawing match the tree (issue 24): every path
the table names exists, every package under plugins/module_utils has its row, every file a
package's row names is in that package, every module is named in the modules' row, and the
layer drawing puts every package of test_import_layers.LAYERS on its layer."""
import glob
import importlib.util
import os
import re

import pytest

REPO = os.path.normpath(os.path.join(os.path.dirname(__file__), '..', '..'))
MODULE_UTILS = os.path.join(REPO, 'plugins', 'module_utils')
# Named in the table but made at run time, not in the tree.
NOT_IN_TREE = {'ansible_collections/kvmops/hypervisor'}  # tools/sanity.sh's temporary copy


def section():
    with open(os.path.join(REPO, 'README.md')) as f:
        text = f.read()
    start = text.index('\n## Where things live\n')
    end = text.index('\n## ', start + 1)
    return text[start:end]


def rows():
    """(paths named in the first cell, the second cell) of every row of the table."""
    out = []
    for line in section().split('\n'):
        m = re.match(r'^\| (.+?) \| (.*) \|$', line)
        if not m or m.group(1) in ('path', '---'):
            continue
        out.append((re.findall(r'`([^`]+)`', m.group(1)), m.group(2)))
    return out


def repo_path(token):
    """A path of the first cell, from the repository root ('module_utils/' is under plugins/)."""
    if token.startswith('module_utils/'):
        token = 'plugins/' + token
    return os.path.join(REPO, token)


def exists(path):
    return bool(glob.glob(path.rstrip('/')))


def test_every_path_of_the_table_exists():
    missing = [t for paths, dummy in rows() for t in paths if not exists(repo_path(t))]
    assert missing == []


def test_every_package_has_its_row():
    named = set(t.rstrip('/') for paths, dummy in rows() for t in paths)
    packages = sorted(d for d in os.listdir(MODULE_UTILS)
                      if os.path.isfile(os.path.join(MODULE_UTILS, d, '__init__.py')))
    assert packages, 'no package found: the walk is broken'
    assert [p for p in packages if 'module_utils/' + p not in named] == []


def files_under(directory):
    out = set()
    for d, dirs, files in os.walk(directory):
        rel = os.path.relpath(d, directory)
        for name in files + [x + '/' for x in dirs]:
            out.add(os.path.normpath(os.path.join(rel, name)) + ('/' if name.endswith('/') else ''))
    return out


def test_every_file_a_row_names_exists():
    """A package's row: each `name.py` or `dir/` it names is in the package (or, with a
    slash, in the repository). Any row: each relative path with a slash exists, from the
    repository root or from the row's own path."""
    missing = []
    for paths, what in rows():
        bases = [repo_path(p) for p in paths]
        package = [b for b in bases if b.startswith(MODULE_UTILS + os.sep)]
        tree = files_under(package[0]) if package else set()
        label = paths[0] if paths else what[:20]
        for token in re.findall(r'`([^`]+)`', what):
            if ' ' in token or token.startswith('/') or re.search(r'[:@<]', token) \
                    or token in NOT_IN_TREE:
                continue  # a command, an absolute host path, a URL, a pattern
            is_file = re.match(r'^[\w.-]+\.py$', token)
            if package and (is_file or token.endswith('/')):
                if not any(f == token or f.endswith('/' + token) for f in tree) \
                        and not exists(os.path.join(REPO, token)):
                    missing.append((label, token))
            elif '/' in token and not any(exists(os.path.join(b if os.path.isdir(b) else
                                                              os.path.dirname(b), token))
                                          for b in bases + [REPO]):
                missing.append((label, token))
    assert missing == []


def test_every_module_is_named():
    what = dict((tuple(p), w) for p, w in rows())[('plugins/modules/',)]
    named = set(re.findall(r'`(\w+)`', what))
    modules = set(n[:-3] for n in os.listdir(os.path.join(REPO, 'plugins', 'modules'))
                  if n.endswith('.py') and not n.startswith('_'))
    assert sorted(modules - named) == [] and sorted(named - modules) == []


def layers_of_test():
    path = os.path.join(os.path.dirname(__file__), 'test_import_layers.py')
    spec = importlib.util.spec_from_file_location('kvmops_import_layers', path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.LAYERS


def drawing():
    """{package: layer} of the drawing (the words before its parenthesis on a numbered line)."""
    text = section()
    block = text[text.index('```', text.index('import downwards')):]
    block = block[3:block.index('```', 3)]
    out = {}
    for line in block.split('\n'):
        m = re.match(r'^\s*(\d+)\s+(.*)$', line)
        if not m:
            continue
        for word in re.split(r'[\s,]+', m.group(2).split('(')[0]):
            if word.startswith('_'):
                out['module_utils.' + word] = int(m.group(1))
            elif word.startswith('plugins/'):
                out[word[len('plugins/'):]] = int(m.group(1))
    return out


def test_the_layer_drawing_matches_layers():
    layers = layers_of_test()
    assert drawing() == layers


@pytest.mark.parametrize('package', sorted(
    d for d in os.listdir(MODULE_UTILS) if os.path.isfile(os.path.join(MODULE_UTILS, d, '__init__.py'))))
def test_every_package_has_a_layer(package):
    assert 'module_utils.' + package in layers_of_test()
