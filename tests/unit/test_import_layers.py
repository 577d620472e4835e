"""The collection's packages import downwards only (README "Where things live", the layer
drawing): every file under plugins/ is parsed with ast, and every import of the collection's
own code (at module level or inside a function) is checked. Fails when a package imports a
package of a higher layer, when packages import each other (directly or round a cycle), or
when a package is not in LAYERS (a new package: give it its layer here and in the README)."""
import ast
import os

import pytest

ROOT = os.path.join(os.path.dirname(__file__), '..', '..', 'plugins')
PREFIX = 'ansible_collections.kvmops.hypervisor.plugins.'

# Lower imports from higher, never the other way; within a layer only one way round.
LAYERS = {
    'module_utils._common': 0,      # errors, manager base, files: the ground floor
    'module_utils._libvirt': 1,     # connection, xml, capabilities, qemu access, osinfo
    'module_utils._host': 2,        # host facts
    'module_utils._install': 3,     # library: install media, trees, ISOs, initrd, phase
    'module_utils._cloud': 4,       # library: base images, seeds, devices, reach
    'module_utils._guest': 5,       # one guest: manager, features, batch
    'module_utils._vnc': 5,
    'module_utils._selinux': 5,
    'module_utils._network': 5,
    'module_utils._snapshot': 5,
    'module_utils._backup': 5,      # backups of existing domains: _common, _libvirt only
    'module_utils._migrate': 5,     # moving an existing domain: _common, _libvirt only
    'module_utils._console': 5,     # browser console tokens: _common, _libvirt only
    'module_utils._module': 6,      # the module runner
    'modules': 7,
    'inventory': 7,
    'doc_fragments': 7,
}


def package_of_target(dotted):
    """'module_utils._guest' of 'ansible_collections...plugins.module_utils._guest.manager'."""
    if not dotted.startswith(PREFIX):
        return None
    parts = dotted[len(PREFIX):].split('.')
    if parts[0] == 'module_utils':
        return '.'.join(parts[:2]) if len(parts) > 1 else None
    return parts[0]


def package_of_file(path):
    rel = os.path.relpath(path, ROOT).split(os.sep)
    if rel[0] == 'module_utils':
        return 'module_utils.' + rel[1]
    return rel[0]


def imports_of(path):
    """(line, imported package) of every import of the collection's code in the file."""
    with open(path) as f:
        tree = ast.parse(f.read(), path)
    out = []
    for node in ast.walk(tree):
        targets = []
        if isinstance(node, ast.ImportFrom) and node.module:
            if node.module + '.' == PREFIX + 'module_utils.':
                targets = [node.module + '.' + a.name for a in node.names]
            else:
                targets = [node.module]
        elif isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        for t in targets:
            pkg = package_of_target(t)
            if pkg:
                out.append((node.lineno, pkg))
    return out


def all_files():
    for d, dummy, files in os.walk(ROOT):
        for name in files:
            if name.endswith('.py'):
                yield os.path.join(d, name)


def edges():
    """{(importer, imported): ['file:line', ...]} between different packages."""
    out = {}
    for path in all_files():
        here = package_of_file(path)
        for line, there in imports_of(path):
            if there != here:
                out.setdefault((here, there), []).append(
                    '%s:%d' % (os.path.relpath(path, ROOT), line))
    return out


def test_every_package_has_a_layer():
    packages = set(package_of_file(p) for p in all_files())
    missing = sorted(p for p in packages if p not in LAYERS)
    assert missing == [], 'give these packages a layer in LAYERS and in the README: %s' % missing


def test_no_import_goes_up_a_layer():
    up = ['%s (layer %d) imports %s (layer %d): %s' % (a, LAYERS[a], b, LAYERS[b], ', '.join(w))
          for (a, b), w in sorted(edges().items()) if LAYERS[b] > LAYERS[a]]
    assert up == []


def test_no_two_packages_import_each_other():
    graph = {}
    for (a, b) in edges():
        graph.setdefault(a, set()).add(b)
    cycles = []

    def visit(node, path):
        for nxt in sorted(graph.get(node, ())):
            if nxt in path:
                cycles.append(' -> '.join(path[path.index(nxt):] + [nxt]))
            elif len(path) < len(LAYERS):
                visit(nxt, path + [nxt])
    for start in sorted(graph):
        visit(start, [start])
    assert cycles == []


@pytest.mark.parametrize('source, expected', [
    ('from ansible_collections.kvmops.hypervisor.plugins.module_utils._guest import manager\n',
     ['module_utils._guest']),
    ('def f():\n    from ansible_collections.kvmops.hypervisor.plugins.module_utils._cloud.seed '
     'import build\n', ['module_utils._cloud']),
    ('from ansible_collections.kvmops.hypervisor.plugins.module_utils import _install\n',
     ['module_utils._install']),
    ('import ansible_collections.kvmops.hypervisor.plugins.module_utils._vnc.guard\n',
     ['module_utils._vnc']),
    ('import os\nfrom ansible.module_utils.basic import AnsibleModule\n', []),
])
def test_the_parser_sees_every_kind_of_import(tmp_path, source, expected):
    f = tmp_path / 'x.py'
    f.write_text(source)
    assert [pkg for dummy, pkg in imports_of(str(f))] == expected
