"""Run a module or a playbook through real Ansible against localhost and parse the result."""
import json
import os
import subprocess
import tempfile

from . import paths


class AnsibleRunError(AssertionError):
    pass


def ansible_env(extra=None):
    env = dict(os.environ)
    env.update({
        # the checkout first; then the `ansible` bundle's collections, which a plain
        # ansible-core venv (make matrix) does not have
        'ANSIBLE_COLLECTIONS_PATH': os.pathsep.join([paths.COLLECTIONS_DIR] + paths.BUNDLE_SITE_PACKAGES[:1]),
        'ANSIBLE_STDOUT_CALLBACK': 'ansible.posix.json',
        'ANSIBLE_LOAD_CALLBACK_PLUGINS': '1',
        'ANSIBLE_PYTHON_INTERPRETER': paths.TARGET_PYTHON,
        'ANSIBLE_NOCOLOR': '1',
        'ANSIBLE_RETRY_FILES_ENABLED': '0',
        'ANSIBLE_LOCALHOST_WARNING': '0',
        'ANSIBLE_INVENTORY_UNPARSED_WARNING': '0',
        'ANSIBLE_DEPRECATION_WARNINGS': '0',
        'PATH': os.path.join(paths.VENV, 'bin') + os.pathsep + env.get('PATH', ''),
    })
    env.update(extra or {})
    return env


def _run(cmd, env, timeout):
    proc = subprocess.run(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          universal_newlines=True, timeout=timeout, check=False)
    try:
        out = json.loads(proc.stdout)
    except ValueError:
        raise AnsibleRunError('ansible did not print JSON (rc=%s)\nstdout:\n%s\nstderr:\n%s'
                              % (proc.returncode, proc.stdout[-4000:], proc.stderr[-4000:]))
    out['_rc'] = proc.returncode
    out['_stderr'] = proc.stderr
    return out


def run_playbook(playbook, inventory='localhost,', extra_vars=None, check=False, diff=False,
                 env=None, timeout=900, extra_args=()):
    """Run ansible-playbook; return the json callback's document (plus _rc, _stderr)."""
    cmd = [os.path.join(paths.VENV, 'bin', 'ansible-playbook'), '-i', inventory, playbook]
    if inventory == 'localhost,':
        cmd += ['-c', 'local']
    if extra_vars:
        fd, vars_file = tempfile.mkstemp(suffix='.json')
        with os.fdopen(fd, 'w') as f:
            json.dump(extra_vars, f)
        cmd += ['-e', '@' + vars_file]
    if check:
        cmd.append('--check')
    if diff:
        cmd.append('--diff')
    cmd += list(extra_args)
    try:
        return _run(cmd, ansible_env(env), timeout)
    finally:
        if extra_vars:
            os.unlink(vars_file)


def _run_play(tasks, check, diff, env, timeout, host='localhost', inventory='localhost,'):
    """One play of tasks on host, through a temporary playbook; the json document."""
    play = [{'hosts': host, 'gather_facts': False, 'tasks': tasks}]
    fd, path = tempfile.mkstemp(suffix='.yml')
    with os.fdopen(fd, 'w') as f:
        json.dump(play, f)
    try:
        return run_playbook(path, inventory=inventory, check=check, diff=diff, env=env,
                            timeout=timeout)
    finally:
        os.unlink(path)


def run_module(module, args, check=False, diff=False, env=None, timeout=600,
               host='localhost', inventory='localhost,'):
    """Run one module task on localhost (or on host of inventory); return its result dict.

    The arguments go through a temporary playbook (never the command line), so secrets in
    tests are handled the way a user's playbook handles them.
    """
    if '.' not in module:
        module = 'kvmops.hypervisor.' + module
    doc = _run_play([{'name': 'under test', module: args}], check=check, diff=diff, env=env,
                    timeout=timeout, host=host, inventory=inventory)
    try:
        result = doc['plays'][0]['tasks'][0]['hosts'][host]
    except (KeyError, IndexError):
        raise AnsibleRunError('no task result in ansible output: %s\nstderr:\n%s'
                              % (json.dumps(doc)[:4000], doc['_stderr'][-4000:]))
    result['_stderr'] = doc['_stderr']
    return result


def run_tasks(tasks, check=False, diff=False, env=None, timeout=900, ignore_errors=False,
              with_document=False):
    """Run tasks (dicts as in a playbook) in one ansible-playbook on localhost; return each
    task's result, in order (with_document: and the json callback's whole document). One
    playbook for many cases saves Ansible's start-up per case; ignore_errors: every task
    runs, also after one failed."""
    if ignore_errors:
        tasks = [dict({'name': 'task %d' % i}, **dict(t, ignore_errors=True))
                 for i, t in enumerate(tasks)]
    doc = _run_play(tasks, check=check, diff=diff, env=env, timeout=timeout)
    results = [t['hosts']['localhost'] for t in doc['plays'][0]['tasks']]
    return (results, doc) if with_document else results
