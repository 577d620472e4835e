"""Every place under plugins/ that catches an error which may be a KvmopsError and raises
another one keeps the caught error's result fields: it raises `SomeError.rewrap(exc, ...)`
(_common/errors.py, the one implementation, tested in test_errors.py), never a new
`SomeError(str(exc))` that drops them (issue 24).

The files are parsed with ast. A handler may catch a KvmopsError when it is bare, or names
Exception, BaseException, KvmopsError, one of the collection's KvmopsError subclasses, or
another base of such a subclass. Raising the caught error itself (`raise`, `raise exc`) is
fine; any other raise inside such a handler must be a rewrap of the caught error."""
import ast
import os

ROOT = os.path.join(os.path.dirname(__file__), '..', '..', '..', '..', '..', 'plugins')
WIDE = {'Exception', 'BaseException'}


def py_files():
    for d, dummy, files in os.walk(ROOT):
        for name in sorted(files):
            if name.endswith('.py'):
                path = os.path.join(d, name)
                with open(path) as f:
                    yield os.path.relpath(path, ROOT), ast.parse(f.read(), path)


def last_name(node):
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr
    return None


def error_family(trees):
    """Names of KvmopsError and its subclasses in plugins/, and their other bases."""
    classes = {}
    for dummy, tree in trees:
        for node in ast.walk(tree):
            if isinstance(node, ast.ClassDef):
                classes[node.name] = [last_name(b) for b in node.bases]
    family = {'KvmopsError'}
    grown = True
    while grown:
        grown = False
        for name, bases in classes.items():
            if name not in family and family.intersection(bases):
                family.add(name)
                grown = True
    other_bases = set(b for n in family for b in classes.get(n, ()) if b and b != 'object')
    return family, classes, other_bases - family


def caught_names(handler):
    if handler.type is None:
        return None
    elts = handler.type.elts if isinstance(handler.type, ast.Tuple) else [handler.type]
    return set(last_name(e) for e in elts)


def raises_in(body):
    """The raise statements of a handler's body, not those of functions defined in it."""
    todo = list(body)
    while todo:
        node = todo.pop()
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda, ast.ClassDef)):
            continue
        if isinstance(node, ast.Raise):
            yield node
        todo.extend(ast.iter_child_nodes(node))


def is_rewrap_of(exc, name):
    return (isinstance(exc, ast.Call) and isinstance(exc.func, ast.Attribute)
            and exc.func.attr == 'rewrap' and exc.args
            and isinstance(exc.args[0], ast.Name) and exc.args[0].id == name)


def rewrap_sites():
    """(file:line, handler catches, raise is a rewrap) of every raise in a handler that may
    catch a KvmopsError."""
    trees = list(py_files())
    family, dummy, other_bases = error_family(trees)
    wide = WIDE | family | other_bases
    out = []
    for rel, tree in trees:
        for h in ast.walk(tree):
            if not isinstance(h, ast.ExceptHandler):
                continue
            names = caught_names(h)
            if names is not None and not names & wide:
                continue
            for r in raises_in(h.body):
                if r.exc is None or (isinstance(r.exc, ast.Name) and r.exc.id == h.name):
                    continue  # the caught error itself, fields and all
                out.append(('%s:%d' % (rel, r.lineno), sorted(names or ['(bare)']),
                            h.name is not None and is_rewrap_of(r.exc, h.name)))
    return out


def test_every_rewrap_of_a_kvmops_error_keeps_its_result_fields():
    sites = rewrap_sites()
    # Today's sites (a floor, so that a broken walk cannot pass by finding none).
    assert len(sites) >= 15, sites
    dropping = [(where, names) for where, names, ok in sites if not ok]
    assert dropping == [], (
        'these raise a new error from one that may be a KvmopsError and drop its result '
        'fields: raise SomeError.rewrap(exc[, msg]) instead: %s' % dropping)


def test_rewrap_targets_take_the_plain_constructor():
    """rewrap() calls cls(msg, **result): a class used with rewrap must not change __init__."""
    trees = list(py_files())
    dummy, classes, dummy2 = error_family(trees)
    inits = set()
    targets = set()
    for dummy3, tree in trees:
        for node in ast.walk(tree):
            if isinstance(node, ast.ClassDef) and any(
                    isinstance(b, ast.FunctionDef) and b.name == '__init__' for b in node.body):
                inits.add(node.name)
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                    and node.func.attr == 'rewrap'):
                targets.add(last_name(node.func.value))
    assert targets, 'no rewrap call found: the walk is broken'
    inits.discard('KvmopsError')  # the plain constructor itself: KvmopsError(msg, **result)
    assert not targets & inits, sorted(targets & inits)


def test_the_check_sees_a_dropping_rewrap(tmp_path):
    """The walk itself: a handler that re-raises a new error from str(exc) is found."""
    src = ('def f():\n'
           '    try:\n'
           '        g()\n'
           '    except SomeError as exc:\n'
           '        raise OtherError(str(exc))\n'
           '    except KvmopsError as exc:\n'
           '        raise OtherError.rewrap(exc)\n')
    tree = ast.parse(src)
    handlers = [h for h in ast.walk(tree) if isinstance(h, ast.ExceptHandler)]
    got = [is_rewrap_of(r.exc, h.name) for h in handlers for r in raises_in(h.body)]
    assert got == [False, True]
