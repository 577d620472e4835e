# -*- coding: utf-8 -*-
"""Per-task CPU seconds of the whole ansible-playbook process tree (bench only).

CPU time (user + system) of the controller process plus every reaped child (task workers and,
through them, the module processes they ran), taken at each task start: the difference to the
next task start is what that task cost, whatever else runs on the machine. Writes JSON lines
to $TASK_CPU_FILE (one per task, in order; handlers included) at the end of the playbook.
"""
from __future__ import annotations

import json
import multiprocessing
import os
import resource
import time

from ansible.plugins.callback import CallbackBase

DOCUMENTATION = '''
name: task_cpu
type: aggregate
short_description: CPU seconds per task (controller, workers, modules)
description: Writes one JSON line per task to the file named by TASK_CPU_FILE.
requirements: [enable in ansible.cfg or ANSIBLE_CALLBACKS_ENABLED]
'''


def _reap(limit=2.0):
    """Wait (up to limit s) until the last task's workers have exited and been reaped, so their
    CPU (and their modules') is counted for that task, not the next one."""
    end = time.perf_counter() + limit
    while multiprocessing.active_children() and time.perf_counter() < end:
        time.sleep(0.002)


def _cpu():
    s = resource.getrusage(resource.RUSAGE_SELF)
    c = resource.getrusage(resource.RUSAGE_CHILDREN)
    return s.ru_utime + s.ru_stime + c.ru_utime + c.ru_stime


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = 'aggregate'
    CALLBACK_NAME = 'task_cpu'
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self):
        super(CallbackModule, self).__init__()
        self._rows = []
        self._cur = None
        self._t0 = time.perf_counter()
        self._c0 = _cpu()

    def _close(self):
        _reap()
        if self._cur is not None:
            self._cur['cpu'] = round(_cpu() - self._cur.pop('_c'), 4)
            self._cur['wall'] = round(time.perf_counter() - self._cur.pop('_t'), 4)
            self._rows.append(self._cur)
            self._cur = None

    def _start(self, task, kind):
        self._close()
        self._cur = {'task': task.get_name(), 'action': task.action, 'kind': kind,
                     'status': [], '_c': _cpu(), '_t': time.perf_counter()}

    def v2_playbook_on_task_start(self, task, is_conditional):
        self._start(task, 'task')

    def v2_playbook_on_handler_task_start(self, task):
        self._start(task, 'handler')

    def _status(self, status, result=None):
        if self._cur is not None:
            self._cur['status'].append(status)

    def v2_runner_on_ok(self, result):
        self._status('changed' if result._result.get('changed') else 'ok')

    def v2_runner_on_skipped(self, result):
        self._status('skipped')

    def v2_runner_on_failed(self, result, ignore_errors=False):
        self._status('failed')

    def v2_runner_item_on_ok(self, result):
        self._status('item')

    def v2_playbook_on_stats(self, stats):
        self._close()
        path = os.environ.get('TASK_CPU_FILE')
        if not path:
            return
        with open(path, 'w') as f:
            for row in self._rows:
                f.write(json.dumps(row) + '\n')
            f.write(json.dumps({'task': '__total__', 'cpu': round(_cpu() - self._c0, 4),
                                'wall': round(time.perf_counter() - self._t0, 4)}) + '\n')
