"""Write tests/RELIABILITY.md from the fault tests' records and JUnit report.

    python tools/reliability_report.py [--out OUT] JUNIT_XML...
    python tools/reliability_report.py [--out OUT] --stress-section

The records are the JSON files tests/support/faults.record() writes into
.build/reports/reliability/ (what was injected, how many times, what the module reported,
what was left); the JUnit report gives each test's outcome and wall time. Run by
`make reliability`, which runs every fault test first. The section on libvirtd under
concurrent guest starts comes from tests/reliability/stress-daemon.jsonl (one line per
`make stress-daemon` run, kept in git); `--stress-section` rewrites only that section.
"""
import glob
import json
import os
import sys
import time
import xml.etree.ElementTree as ET

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RECORDS = os.path.join(REPO, '.build', 'reports', 'reliability')

# Every fault the reliability issue (16) names, and the words its record's fault starts with.
EXPECTED = [
    ('libvirtd stopped before a run', 'libvirtd stopped before a run'),
    ('libvirtd killed during define', 'libvirtd SIGKILLed during define'),
    ('libvirtd killed during start', 'libvirtd SIGKILLed during start'),
    ('libvirtd killed during an install phase\'s wait', 'libvirtd SIGKILLed during an install'),
    ('libvirtd restarted between two tasks', 'libvirtd restarted between two tasks'),
    ('libvirtd dies in the middle of a test (the suite goes on)',
     'libvirtd SIGKILLed in the middle of a test'),
    ('image directory full', 'image directory'),
    ('qemu.conf on a full file system', 'qemu.conf on a full file system'),
    ('install-tree server dies mid-download', 'install-tree server dies'),
    ('install-tree server serves a truncated file', 'install-tree server serves a truncated'),
    ('controller interrupted (SIGINT)', 'controller interrupted (SIGINT'),
    ('controller interrupted (SIGTERM)', 'controller interrupted (SIGTERM'),
    ('two runs at once on the same guest list', 'two ansible-playbook runs at once on the same guest'),
    ('two runs at once on the same qemu.conf', 'two ansible-playbook runs at once on the same qemu'),
    # issue 26: the race forced at the exact step
    ('two vnc_listen runs editing different keys of one qemu.conf', 'two vnc_listen runs editing different keys'),
    ('virt_backup killed during a backup', 'virt_backup killed during a backup'),
    ('libvirtd killed during a backup', 'libvirtd SIGKILLed during a backup'),
    ('backup repository file system full', 'backup repository file system full'),
    # issue 26: hostile input, the guest core
    ('a forged qcow2 header on a guest\'s raw disk', 'hostile guest: forged qcow2 header'),
    ('remove_storage and an image kvmops did not make', 'remove_storage on a guest with a'),
    ('remove_storage on a domain defined by virsh', 'remove_storage on a domain defined by'),
    ('serial log path outside the log directories', 'serial log path outside'),
    ('a failed define\'s rollback races a concurrent run', 'failed define rolls back'),
    ('an installer destroyed or crashed mid-install', 'installer stopped mid-install'),
    ('two runs starting one pending install', 'two runs starting one pending install'),
    ('a base image with its own backing file', 'hostile base image'),
    ('a run killed mid-download (partial files)', 'run SIGKILLed mid-download'),
    ('cloud_init.user_data holding a secret', 'cloud_init.user_data holding a secret'),
]


def junit_cases(path):
    cases = {}
    if not path or not os.path.exists(path):
        return cases
    for case in ET.parse(path).getroot().iter('testcase'):
        if not case.get('name'):
            continue  # an interrupted session's placeholder entry
        nodeid = case.get('classname', '').replace('.', '/') + '.py::' + case.get('name', '')
        outcome = 'passed'
        for child in case:
            if child.tag in ('failure', 'error'):
                outcome = 'FAILED'
            elif child.tag == 'skipped':
                outcome = 'skipped'
        cases[nodeid] = {'outcome': outcome, 'seconds': float(case.get('time') or 0)}
    return cases


def cell(text):
    return str(text if text is not None else '').replace('|', '\\|').replace('\n', ' ')


STRESS_LOG = os.path.join(REPO, 'tests', 'reliability', 'stress-daemon.jsonl')
STRESS_TITLE = '## libvirtd under concurrent guest starts beside container churn (issue 25)'


def stress_section():
    """The runs of `make stress-daemon` (tools/stress_daemon.py appends one line per run to
    tests/reliability/stress-daemon.jsonl, which is kept in git: runs before and after)."""
    runs = []
    if os.path.exists(STRESS_LOG):
        with open(STRESS_LOG) as f:
            runs = [json.loads(line) for line in f if line.strip()]
    lines = [STRESS_TITLE, '',
             '`make stress-daemon` (tools/stress_daemon.py, under the exclusive test-bed lock): '
             'rounds of the ten-guest batch of test_ten_guests_in_one_run (create and start, '
             'then remove) while privileged systemd podman containers of the `hypervisor` '
             'recipe are started and removed in a loop beside them; the daemon is checked '
             'after every module run. A crash is counted, described (signal, kernel line, '
             'core file) and libvirtd is started again.', '',
             '| When | libvirt | cgroups | Batch | Rounds | Guests per round (at a time) | '
             'Container cycles (slots) | Seconds | Daemon crashes | Failed guests | '
             'Load start -> end |',
             '|---|---|---|---|---|---|---|---|---|---|---|']
    for r in runs:
        lines.append('| %s |' % ' | '.join(cell(x) for x in (
            r.get('when'), r.get('libvirt_version', r.get('libvirt')), r.get('cgroups', ''),
            r.get('batch', ''), r.get('rounds'), '%s (%s)' % (r.get('guests_per_round'),
                                                              r.get('parallel')),
            '%s (%s)' % (r.get('container_cycles'), r.get('container_slots')),
            r.get('seconds'), r.get('daemon_crashes'), r.get('failed_guests'),
            '%s -> %s' % (r.get('load_start'), r.get('load_end')))))
    if not runs:
        lines.append('| (no run recorded) | | | | | | | | | | |')
    deaths = [(r.get('when'), d) for r in runs for d in r.get('deaths', [])]
    if deaths:
        lines += ['', 'The crashes (the first line of what was seen: the daemon watch, the kernel, gdb):', '']
        lines += ['- %s, round %s (%s): %s' % (w, d.get('round'), d.get('step'),
                                               cell(d.get('death', '').splitlines()[0]))
                  for w, d in deaths]
    return lines


def replace_stress_section(out):
    """Rewrite only the stress section of an existing RELIABILITY.md."""
    with open(out) as f:
        text = f.read().rstrip('\n').split('\n')
    if STRESS_TITLE in text:
        start = text.index(STRESS_TITLE)
        end = next((i for i in range(start + 1, len(text)) if text[i].startswith('## ')),
                   len(text))
        text = text[:start] + stress_section() + [''] + text[end:]
    else:
        text += [''] + stress_section()
    with open(out, 'w') as f:
        f.write('\n'.join(text).rstrip('\n') + '\n')
    print('updated the stress section of %s' % out)


def main():
    args = sys.argv[1:]
    out = os.path.join(REPO, 'tests', 'RELIABILITY.md')
    if args[:1] == ['--out']:
        out, args = args[1], args[2:]
    if args[:1] == ['--stress-section']:
        replace_stress_section(out)
        return 0
    cases = {}
    for junit in args:
        cases.update(junit_cases(junit))
    rows = []
    for path in sorted(glob.glob(os.path.join(RECORDS, '*.json'))):
        with open(path) as f:
            rows.append(json.load(f))
    rows.sort(key=lambda r: r['fault'])
    lines = [
        '# Reliability: faults injected against the real daemon, and what happened',
        '',
        'Generated by `make reliability` (tools/reliability_report.py) from the records the '
        'fault tests write; do not edit by hand. Last run: %s.' % time.strftime(
            '%Y-%m-%d %H:%M UTC', time.gmtime()),
        '',
        'Every test runs against the real libvirtd and QEMU (TCG) of the test bed, is bounded '
        'in time and removes what it created. Tests in `make test`: the full file systems '
        '(tests/integration/test_faults_storage.py), the install-tree server faults '
        '(test_faults_install_media.py), concurrent runs with 2 repetitions and the '
        'interrupted controller (test_faults_concurrency.py), and the secrets checks '
        '(test_secrets.py), the backup faults (test_virt_backup.py: the module killed during '
        'a backup, a full repository), the hostile guest storage and base images '
        '(test_hostile_guest_storage.py, test_hostile_base_image.py). Only in `make '
        'reliability`: the installer destroyed or crashed mid-install and two runs starting one '
        'install (test_hostile_install.py: they boot the tiny guest several times), the '
        'libvirtd stops, kills and '
        'restarts (test_faults_daemon.py, under the exclusive test-bed lock, because they '
        'stall every other test using the daemon) and the 20 repetitions of the concurrent '
        'runs; libvirtd killed during a backup is also in `make backups`.',
        '',
        '| Fault | Injected | Runs | What the module reported | What was left | Test | Suite |',
        '|---|---|---|---|---|---|---|',
    ]
    for r in rows:
        case = cases.get(r['test'], {})
        outcome = case.get('outcome', 'passed' if r.get('ok') else 'FAILED')
        secs = case.get('seconds')
        test = '%s (%s%s)' % (r['test'].split('::')[-1], outcome,
                              ', %.0f s' % secs if secs is not None else '')
        lines.append('| %s |' % ' | '.join(cell(x) for x in (
            r['fault'], r['injected'], r['runs'], r['reported'], r['left'], test, r['suite'])))
    notes = [r for r in rows if r.get('notes')]
    if notes:
        lines += ['', '## Limits found', '']
        lines += ['- %s: %s' % (r['fault'], r['notes']) for r in notes]
    missing = [label for label, start in EXPECTED
               if not any(r['fault'].startswith(start) for r in rows)]
    failed = sorted(n for n, c in cases.items() if c['outcome'] == 'FAILED')
    lines += [''] + stress_section()
    lines += ['', '## Not measured in the last run', '']
    lines += ['- %s' % m for m in missing] or ['- none: every fault of issue 16 has a record']
    if failed:
        lines += ['', '## Failed tests in the last run', '']
        lines += ['- `%s`' % n for n in failed]
    timed = sorted(((c['seconds'], n) for n, c in cases.items()), reverse=True)
    if timed:
        lines += ['', '## Wall time per test (last run)', '', '| Test | Seconds | Outcome |',
                  '|---|---|---|']
        lines += ['| %s | %.1f | %s |' % (n, s, cases[n]['outcome']) for s, n in timed]
    with open(out, 'w') as f:
        f.write('\n'.join(lines) + '\n')
    print('wrote %s: %d faults recorded, %d not measured, %d failed'
          % (out, len(rows), len(missing), len(failed)))
    return 1 if failed else 0


if __name__ == '__main__':
    sys.exit(main())
