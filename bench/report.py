# -*- coding: utf-8 -*-
"""Turn bench/.work/raw/*.json into bench/results.md, bench/results.json and bench/ratios.png."""
import json
import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import benchlib as B  # noqa: E402

OUT_MD = os.path.join(B.BENCH, 'results.md')
OUT_JSON = os.path.join(B.BENCH, 'results.json')
OUT_PNG = os.path.join(B.BENCH, 'ratios.png')

TOOL_NAMES = {
    'kvmops': 'kvmops.hypervisor.virt_install_domain (loop)',
    'guide_loop': '(a) guide: shell loop of virt-install',
    'community': '(b) community.libvirt.virt_install (loop)',
    'noop': '(c) no-op loop (ansible.builtin.ping)',
    'libvirt_floor': '(d) libvirt floor: define + start through libvirt-python, no tool',
}


def load(name):
    path = os.path.join(B.RAW, '%s.json' % name)
    if not os.path.exists(path):
        return None
    with open(path) as f:
        return json.load(f)


def read_text(name):
    try:
        with open(os.path.join(B.RAW, name)) as f:
            return f.read().strip()
    except OSError:
        return None


def med(times, key):
    s = (times or {}).get(key)
    return s['median'] if s else None


def ratio(a, b):
    if a is None or b is None or b == 0:
        return None
    return a / b


def fs(x, unit='s'):
    if x is None:
        return 'n/a'
    if unit == 'ms':
        return '%.2f ms' % (x * 1000.0)
    if x < 0.1:
        return '%.3f s' % x
    return '%.2f s' % x


def fr(x):
    return 'n/a' if x is None else '%.2fx' % x


class Goals(object):
    def __init__(self):
        self.items = []

    def ratio_max(self, case, text, value, limit, numerator=None, denominator=None, floor=None):
        """A goal 'value <= limit' on a ratio of medians; says by how much it is met or missed."""
        g = {'case': case, 'goal': text, 'kind': 'ratio_max', 'limit': limit, 'value': value}
        if value is None:
            g.update(met=None, detail='not measured')
        elif value <= limit:
            g.update(met=True, detail='met: %.2fx against at most %.2fx (%.0f%% below the limit)'
                     % (value, limit, (1 - value / limit) * 100))
        else:
            extra = ''
            if numerator is not None and denominator is not None:
                extra = '; the median would have to drop from %s to %s (%s less)' % (
                    fs(numerator), fs(limit * denominator), fs(numerator - limit * denominator))
                if floor is not None and limit * denominator < floor:
                    extra += (', below the %s that libvirt and QEMU alone took to define and start '
                              'the same guests one after another (floor (d)): out of reach for any '
                              'tool that starts them one by one, as all of these do' % fs(floor))
            g.update(met=False, detail='NOT met: %.2fx against at most %.2fx (%.0f%% over the limit%s)'
                     % (value, limit, (value / limit - 1) * 100, extra))
        self.items.append(g)
        return g

    def seconds_max(self, case, text, value, limit):
        g = {'case': case, 'goal': text, 'kind': 'seconds_max', 'limit': limit, 'value': value}
        if value is None:
            g.update(met=None, detail='not measured')
        elif value < limit:
            g.update(met=True, detail='met: %s against under %s (%s to spare)'
                     % (fs(value), fs(limit), fs(limit - value)))
        else:
            g.update(met=False, detail='NOT met: %s against under %s (%s too slow, %.0f%% over)'
                     % (fs(value), fs(limit), fs(value - limit), (value / limit - 1) * 100))
        self.items.append(g)
        return g

    def exact(self, case, text, value, expected, detail_ok, detail_bad):
        g = {'case': case, 'goal': text, 'kind': 'exact', 'limit': expected, 'value': value}
        if value is None:
            g.update(met=None, detail='not measured')
        elif value == expected:
            g.update(met=True, detail='met: ' + detail_ok)
        else:
            g.update(met=False, detail='NOT met: ' + detail_bad)
        self.items.append(g)
        return g


def met_word(g):
    return {True: 'yes', False: '**no**', None: 'not measured'}[g['met']]


def times_table(times, order, baselines, names=None):
    """Markdown table: tool, median, min, max, ratio of medians to each baseline."""
    names = names or TOOL_NAMES
    head = '| tool | median | min | max | n |' + ''.join(' / %s |' % b[0] for b in baselines)
    sep = '|---|---:|---:|---:|---:|' + '---:|' * len(baselines)
    rows = [head, sep]
    for k in order:
        s = times.get(k)
        if not s:
            continue
        cells = ''.join(' %s |' % fr(ratio(s['median'], med(times, b[1]))) for b in baselines)
        rows.append('| %s | %s | %s | %s | %d |%s' % (
            names.get(k, k), fs(s['median']), fs(s['min']), fs(s['max']), s['n'], cells))
    return '\n'.join(rows)


def cpu_line(raw, order, baselines, ratios, tag):
    """The tools' own CPU time (their process trees, not libvirtd or the guests)."""
    cpu = raw.get('tool_cpu') or {}
    if not cpu.get('kvmops'):
        return ''
    parts = ', '.join('%s %s' % (SHORT.get(k, k), fs(cpu[k]['median'])) for k in order if cpu.get(k))
    rs = []
    for label, b in baselines:
        r = ratio(med(cpu, 'kvmops'), med(cpu, b))
        rs.append('%s to %s' % (fr(r), label))
        ratios['%s CPU ours/%s (info)' % (tag, label)] = (r, None)
    return ('CPU time of each tool\'s own processes (user + system of the command and its '
            'children: Ansible with its workers and module processes, or virt-install; not '
            'libvirtd, not the guests), median: %s. Ours: %s. Unlike wall time this hardly '
            'depends on what else runs on the 2 cores.\n' % (parts, ', '.join(rs)))


SHORT = {'kvmops': 'ours', 'guide_loop': '(a)', 'community': '(b)', 'noop': '(c)', 'libvirt_floor': '(d)'}


def not_run(errors, case):
    if case in errors:
        return 'FAILED in this run, nothing measured: `%s`\n' % errors[case].replace('\n', ' ')[:1500]
    return 'Not run.\n'


def load_line(raw):
    ld = (raw or {}).get('load') or {}
    if not ld:
        return ''
    return 'Load average (1/5/15 min) at the start of this case %s, at its end %s.' % (
        ' / '.join('%.2f' % x for x in ld.get('start', [])),
        ' / '.join('%.2f' % x for x in ld.get('end', [])))


def main():
    meta = load('meta') or {}
    raw = [load('case%d' % i) for i in range(1, 7)]
    errors = {i + 1: r['error'] for i, r in enumerate(raw) if r and r.get('error')}
    c1, c2, c3, c4, c5, c6 = (None if r and r.get('error') else r for r in raw)
    goals = Goals()
    ratios = {}
    out_json = {'meta': meta, 'cases': {}}
    md = []
    reps = ', '.join('%s for case %s' % (c['reps'], n) for n, c in
                     (('1-2', c1), ('3', c3), ('4', c4), ('5', c5), ('6', c6))
                     if c and c.get('reps') is not None)
    m = meta.get('machine', {})
    v = meta.get('versions', {})
    md.append('# kvmops.hypervisor benchmarks\n')
    md.append('Written by `make bench` (bench/run.sh, bench/bench.py, bench/report.py) on %s UTC; '
              'the whole run took %s s. Every figure below comes from this one run: measured '
              'repetitions after one warm-up repetition (discarded): %s, wall-clock time of '
              'the whole command (an `ansible-playbook` process, a shell loop, a module payload), '
              'median / min / max over the repetitions, and every ratio is a ratio of medians '
              'measured in the same run. The order of the tools is rotated from one repetition '
              'to the next so that drifting load does not always hit the same tool. '
              'How to read and re-run it: bench/README.md.\n'
              % (meta.get('date_utc', '?'), read_text('wall-seconds.txt') or '?', reps))
    md.append('## Machine and versions\n')
    md.append('| | |\n|---|---|')
    md.append('| machine | %s cores (%s), %s GiB memory, %s, kernel %s |' % (
        m.get('cores'), m.get('cpu_model'), m.get('memory_gib'), m.get('distro'), m.get('kernel')))
    md.append('| guests | %s |' % meta.get('domain_type', ''))
    others = meta.get('other_running_domains_at_start')
    if others is not None:
        md.append('| other guests running at the start | %s |' % (
            '%d (%s)' % (len(others), ', '.join(others[:5])) if others else 'none'))
    md.append('| load average at start / end of the run | %s / %s |' % (
        read_text('load-start.txt') or '?', read_text('load-end.txt') or '?'))
    for k, label in (('libvirt', 'libvirt'), ('qemu', 'QEMU (hypervisor version)'),
                     ('virt_install', 'virt-install (virtinst)'), ('ansible_core', 'ansible-core'),
                     ('ansible_package', 'ansible (PyPI package)'),
                     ('community_libvirt', 'community.libvirt'),
                     ('controller_python', 'controller Python'), ('target_python', 'target Python'),
                     ('kvmops_commit', 'kvmops.hypervisor commit')):
        md.append('| %s | %s |' % (label, v.get(k, '?')))
    md.append('')
    md.append('The machine has 2 cores: every started TCG guest boots on the same cores that run '
              'the tool creating the next guest, so "create and start 10 guests" is also a '
              'measure of how long a tool keeps the CPU busy while earlier guests boot.\n')

    summary_idx = len(md)
    md.append('')  # placeholder for the goal summary

    # ---- case 1 --------------------------------------------------------------------
    md.append('## Case 1: create and start 10 tiny guests\n')
    if c1:
        t = c1['times']
        md.append('Each guest: TCG (`qemu` domain type), 256 MiB, 1 vCPU, a new 1 GiB sparse raw '
                  'disk in %s, one NIC on the `default` NAT network, VNC on 127.0.0.1, the tiny '
                  'kernel + initrd booted directly (no install media), no waiting for the guest '
                  'to boot. The exact virt-install command of baseline (a), from '
                  'bench/guide_loop.sh, once per guest:\n' % B.IMG_DIR)
        md.append('```sh\nvirt-install --connect qemu:///system --name "$name" --virt-type qemu '
                  '--memory 256 --vcpus 1 \\\n  --osinfo detect=off,name=generic \\\n'
                  '  --disk path="$img_dir/$name.img",size=1,format=raw,sparse=yes \\\n'
                  '  --network network=default --graphics vnc,listen=127.0.0.1 \\\n'
                  '  --boot kernel="$kernel",initrd="$initrd",kernel_args=console=ttyS0 '
                  '--import --noautoconsole\n```\n')
        md.append('(b) is bench/playbooks/create_community.yml (the same options through '
                  'community.libvirt.virt_install, a `loop:` over the 10 guests), (c) is '
                  'bench/playbooks/noop.yml (the same loop calling ansible.builtin.ping), and ours '
                  'is bench/playbooks/create_kvmops.yml. After every create the guests were '
                  'checked independently (libvirt XML and the image files: running, type qemu, one '
                  'raw 1 GiB sparse disk, NIC on default, VNC on 127.0.0.1); then all were '
                  'destroyed and undefined and their disks removed. Device models follow each '
                  'tool\'s own defaults for a generic OS (virt-install: IDE disk, e1000 NIC, USB '
                  'tablet; ours with os_variant generic: SATA disk, e1000 NIC).\n')
        md.append(times_table(t, ['kvmops', 'guide_loop', 'community', 'noop', 'libvirt_floor'],
                              [('(a)', 'guide_loop'), ('(b)', 'community'), ('(c)', 'noop'),
                               ('(d)', 'libvirt_floor')]))
        md.append('')
        md.append('(d) is not one of the issue\'s baselines: it defines and starts the same guests '
                  'straight through libvirt-python from the harness (a fixed XML, the disk made by '
                  'ftruncate), which is what libvirtd and QEMU cost whatever the tool. Every tool '
                  'pays it; what a tool can save is only what lies above it.\n')
        noop = med(t, 'noop')
        floor = med(t, 'libvirt_floor')
        for base, label in ((noop, 'the no-op floor (c)'), (floor, 'the libvirt floor (d)')):
            per = []
            for k in ('kvmops', 'guide_loop', 'community'):
                if med(t, k) is not None and base is not None:
                    per.append('%s %s' % (SHORT[k], fs((med(t, k) - base) / 10)))
            if per:
                md.append('Time per guest above %s (median minus that floor, divided by 10): %s.\n'
                          % (label, ', '.join(per)))
        if floor is not None and med(t, 'kvmops') is not None and med(t, 'guide_loop') is not None:
            over = ratio(med(t, 'kvmops') - floor, med(t, 'guide_loop') - floor)
            ratios['case1 ours/(a) above the libvirt floor (info)'] = (over, None)
        md.append(cpu_line(c1, ['kvmops', 'guide_loop', 'community', 'noop', 'libvirt_floor'],
                           [('(a)', 'guide_loop'), ('(b)', 'community'), ('(c)', 'noop')], ratios, 'case1'))
        gc = c1.get('guest_cpu_seconds_at_end') or {}
        if gc:
            md.append('CPU time the 10 guests had already used (booting) when the tool returned, '
                      'median: %s. On 2 cores that CPU is taken from the tool that is still creating '
                      'guests, so a longer-running tool is slowed down more by the guests it has '
                      'already started.\n' % ', '.join(
                          '%s %s' % (SHORT[kk], fs(gc[kk]['median']))
                          for kk in ('kvmops', 'guide_loop', 'community', 'libvirt_floor') if gc.get(kk)))
        probs = {k: p for k, p in c1.get('verify_problems', {}).items() if p}
        md.append('Independent check of the guests: %s.\n' % (
            'every tool made the guests the case asks for, in every repetition' if not probs else
            'differences found: %s' % json.dumps({k: p[:4] for k, p in probs.items()})))
        md.append(load_line(c1) + '\n')
        k = med(t, 'kvmops')
        g1 = goals.ratio_max(1, 'ours at most 0.5x the virt-install loop (a)',
                             ratio(k, med(t, 'guide_loop')), 0.5, k, med(t, 'guide_loop'), floor)
        g2 = goals.ratio_max(1, 'ours at most 0.35x community.libvirt.virt_install (b)',
                             ratio(k, med(t, 'community')), 0.35, k, med(t, 'community'), floor)
        g3 = goals.ratio_max(1, 'ours within 1.3x the no-op loop (c)', ratio(k, noop), 1.3, k, noop,
                             floor)
        ratios['case1 ours/(a) virt-install loop'] = (g1['value'], 0.5)
        ratios['case1 ours/(b) community.libvirt'] = (g2['value'], 0.35)
        ratios['case1 ours/(c) no-op loop'] = (g3['value'], 1.3)
        ratios['case1 (b)/(a) (info)'] = (ratio(med(t, 'community'), med(t, 'guide_loop')), None)
        out_json['cases']['1'] = {
            'title': 'create and start 10 tiny guests',
            'tool_cpu_medians': {kk: med(c1.get('tool_cpu'), kk) for kk in (c1.get('tool_cpu') or {})},
            'medians': {kk: med(t, kk) for kk in t},
            'min': {kk: t[kk]['min'] for kk in t if t[kk]}, 'max': {kk: t[kk]['max'] for kk in t if t[kk]},
            'ratios': {'kvmops/guide_loop': g1['value'], 'kvmops/community': g2['value'],
                       'kvmops/noop': g3['value'],
                       'community/guide_loop': ratio(med(t, 'community'), med(t, 'guide_loop'))},
            'goals': [g1, g2, g3]}
        md.append('Goals: ' + '; '.join('%s: %s' % (g['goal'], g['detail']) for g in (g1, g2, g3)) + '.\n')
    else:
        md.append(not_run(errors, 1))

    # ---- case 2 --------------------------------------------------------------------
    md.append('## Case 2: re-run of case 1 (nothing to do)\n')
    if c2:
        t = c2['times']
        md.append('Right after ours created the 10 guests (and once they had finished booting: '
                  'median wait %s), the same three playbooks ran again over them: ours (full '
                  'drift detection: the options are compared with each domain\'s normalised '
                  'inactive XML), community.libvirt.virt_install (its re-run only checks that a '
                  'domain of that name exists, so it was run over the same guests), and the no-op '
                  'loop, measured in the same state.\n'
                  % fs((c2.get('quiet_wait') or {}).get('median')))
        md.append(times_table(t, ['kvmops', 'community', 'noop'],
                              [('(c) no-op', 'noop'), ('(b)', 'community')]))
        md.append('')
        own = c2.get('own_time_one_guest') or {}
        if own:
            labels = {'kvmops': 'ours', 'community': '(b) community.libvirt.virt_install',
                      'ping': '(c) ansible.builtin.ping'}
            md.append('The module\'s own time for one re-run item (its AnsiballZ payload run by the '
                      'target Python: interpreter start, unpacking, imports and the work): %s.\n'
                      % ', '.join('%s %s' % (labels[kk], fs(own[kk]['median']))
                                  for kk in ('kvmops', 'community', 'ping') if own.get(kk)))
            if own.get('kvmops') and own.get('ping') and med(t, 'kvmops') and med(t, 'noop'):
                md.append('Per item, ours\' re-run costs %s more than the no-op loop; the module\'s '
                          'own time is %s more than ping\'s. The rest of a re-run is Ansible\'s '
                          'per-task cost, which both loops pay.\n' % (
                              fs((med(t, 'kvmops') - med(t, 'noop')) / 10),
                              fs(own['kvmops']['median'] - own['ping']['median'])))
        md.append(cpu_line(c2, ['kvmops', 'community', 'noop'], [('(c)', 'noop'), ('(b)', 'community')],
                           ratios, 'case2 re-run'))
        ch = c2.get('changed', {})
        kchanged = ch.get('kvmops')
        gz = goals.exact(2, 'ours reports changed=0 on the re-run',
                         (max(kchanged) if kchanged else None), 0,
                         'changed=0 in every repetition (%s items each)' % len(B_GUESTS),
                         'changed items per repetition: %s' % kchanged)
        k = med(t, 'kvmops')
        gr = goals.ratio_max(2, 'ours\' re-run at most 1.3x the no-op loop (c)',
                             ratio(k, med(t, 'noop')), 1.3, k, med(t, 'noop'))
        ratios['case2 re-run ours/(c) no-op loop'] = (gr['value'], 1.3)
        ratios['case2 re-run (b)/(c) (info)'] = (ratio(med(t, 'community'), med(t, 'noop')), None)
        md.append(load_line(c2) + '\n')
        md.append('Goals: %s: %s; %s: %s. community.libvirt\'s re-run beside it: %s, %s the no-op '
                  'loop, without any drift detection.\n' % (
                      gz['goal'], gz['detail'], gr['goal'], gr['detail'], fs(med(t, 'community')),
                      fr(ratio(med(t, 'community'), med(t, 'noop')))))
        out_json['cases']['2'] = {
            'title': 're-run of case 1', 'medians': {kk: med(t, kk) for kk in t},
            'tool_cpu_medians': {kk: med(c2.get('tool_cpu'), kk) for kk in (c2.get('tool_cpu') or {})},
            'min': {kk: t[kk]['min'] for kk in t if t[kk]}, 'max': {kk: t[kk]['max'] for kk in t if t[kk]},
            'ratios': {'kvmops/noop': gr['value'],
                       'community/noop': ratio(med(t, 'community'), med(t, 'noop'))},
            'changed': ch, 'own_time_one_guest_medians': {kk: own[kk]['median'] for kk in own if own[kk]},
            'goals': [gz, gr]}
    else:
        md.append(not_run(errors, 2))

    # ---- case 3 --------------------------------------------------------------------
    md.append('## Case 3: check mode of case 1 on a clean host\n')
    if c3:
        t = c3['times']
        md.append('Before and after every run (the warm-up included) the harness listed all '
                  'domains, storage pools, volumes, networks and every file and directory under '
                  '%s. "Side effects" counts entries that appeared or disappeared and belong to the '
                  'benchmark; changes made meanwhile by other users of the machine are counted '
                  'apart and ignored.\n' % B.IMAGE_ROOT)
        rows = ['| tool | median | min | max | side effects (all runs) | predicted changes |',
                '|---|---:|---:|---:|---|---|']
        names3 = {'kvmops': 'ours, `--check`', 'community': '(b) community.libvirt, `--check`',
                  'guide_dry_run': '(a) virt-install loop with `--dry-run`'}
        eff_total = {}
        for kk in ('kvmops', 'community', 'guide_dry_run'):
            s = t.get(kk)
            if not s:
                continue
            effs = [e['side_effects'] for e in c3['effects'][kk]]
            eff_total[kk] = sum(effs)
            pc = c3.get('predicted_changes', {}).get(kk)
            rows.append('| %s | %s | %s | %s | %s in %d runs | %s |' % (
                names3[kk], fs(s['median']), fs(s['min']), fs(s['max']), sum(effs), len(effs),
                'changed=%s of 10' % pc[0] if pc and pc[0] is not None else '-'))
        md.append('\n'.join(rows) + '\n')
        for kk, ex in c3.get('examples', {}).items():
            md.append('- %s left behind, e.g.: %s' % (names3[kk], '; '.join(
                '%s +%s -%s' % (kind, d['added'], d['removed']) for kind, d in ex.items())))
        md.append('')
        g = goals.exact(3, 'ours in check mode has zero side effects', eff_total.get('kvmops'), 0,
                        'identical domain, pool, volume, network and file lists before and after in '
                        'all %d runs' % len(c3['effects'].get('kvmops', [])),
                        '%s side effects' % eff_total.get('kvmops'))
        md.append(load_line(c3) + '\n')
        md.append('Goal: %s: %s.\n' % (g['goal'], g['detail']))
        out_json['cases']['3'] = {'title': 'check mode on a clean host',
                                  'medians': {kk: med(t, kk) for kk in t},
                                  'side_effects': eff_total, 'goals': [g],
                                  'ratios': {'kvmops/community': ratio(med(t, 'kvmops'), med(t, 'community'))}}
    else:
        md.append(not_run(errors, 3))

    # ---- case 4 --------------------------------------------------------------------
    md.append('## Case 4: kvm_capability_facts against virt-host-validate and setup\n')
    if c4:
        own = c4['own_time']
        pb = c4['playbook_time']
        md.append('"Own time" is the module\'s AnsiballZ payload (kept with '
                  'ANSIBLE_KEEP_REMOTE_FILES) run by the target Python: what the module costs on '
                  'the host, without the controller. "As a playbook" is a one-task '
                  '`ansible-playbook` run (bench/playbooks/facts_*.yml, ping_once.yml).\n')
        rows = ['| what | own time median | min | max | as a playbook (median) |',
                '|---|---:|---:|---:|---:|']
        vh = c4.get('virt_host_validate')
        if vh:
            rows.append('| `virt-host-validate qemu` (rc %s) | %s | %s | %s | - |' % (
                c4.get('virt_host_validate_rc'), fs(vh['median']), fs(vh['min']), fs(vh['max'])))
        for kk, label in (('kvmops', 'kvmops.hypervisor.kvm_capability_facts'),
                          ('setup', 'ansible.builtin.setup (all facts)'),
                          ('ping', 'ansible.builtin.ping (floor)')):
            s = own.get(kk)
            if s:
                rows.append('| %s | %s | %s | %s | %s |' % (
                    label, fs(s['median']), fs(s['min']), fs(s['max']), fs(med(pb, kk))))
        md.append('\n'.join(rows) + '\n')
        vs = c4.get('virt_host_validate_summary') or {}
        facts = c4.get('kvm_capability') or {}
        if vs:
            md.append('virt-host-validate said: %d PASS, %d WARN, %d FAIL; %s' % (
                vs.get('PASS', 0), vs.get('WARN', 0), vs.get('FAIL', 0),
                '; '.join(vs.get('not_pass', [])[:6])))
        if facts:
            md.append('\nkvm_capability_facts said: domain_type=%s, kvm_usable=%s, checks %s. '
                      'Reasons: %s\n' % (
                          facts.get('domain_type'), facts.get('kvm_usable'),
                          ', '.join('%s %s' % (c['name'], c['result']) for c in facts.get('checks', [])),
                          ' '.join(facts.get('reasons') or [])))
        md.append(load_line(c4) + '\n')
        g = goals.seconds_max(4, 'kvm_capability_facts\' own time under 0.3 s', med(own, 'kvmops'), 0.3)
        ratios['case4 facts own time / 0.3 s'] = (ratio(med(own, 'kvmops'), 0.3), 1.0)
        ratios['case4 facts own / setup own (info)'] = (ratio(med(own, 'kvmops'), med(own, 'setup')), None)
        md.append('Goal: %s: %s. Beside it: setup\'s own time %s (%s of ours), virt-host-validate '
                  '%s.\n' % (g['goal'], g['detail'], fs(med(own, 'setup')),
                             fr(ratio(med(own, 'setup'), med(own, 'kvmops'))),
                             fs((vh or {}).get('median'))))
        out_json['cases']['4'] = {
            'title': 'kvm_capability_facts vs virt-host-validate and setup',
            'medians': {'own_' + kk: med(own, kk) for kk in own},
            'playbook_medians': {kk: med(pb, kk) for kk in pb},
            'virt_host_validate_median': (vh or {}).get('median'),
            'ratios': {'kvmops_own/setup_own': ratio(med(own, 'kvmops'), med(own, 'setup')),
                       'kvmops_own/virt_host_validate': ratio(med(own, 'kvmops'), (vh or {}).get('median'))},
            'facts': facts, 'goals': [g]}
    else:
        md.append(not_run(errors, 4))

    # ---- case 5 --------------------------------------------------------------------
    md.append('## Case 5: disk creation, 1 GiB vs 100 GiB raw sparse, qcow2 backing-store clone\n')
    if c5:
        t = c5['times']
        md.append('Ours: the virt_install_domain payload (own time, see case 4) defining a guest '
                  '(state=present, not started) with one new disk; the same for the module\'s '
                  'disk code alone (plan_disks + create_missing, called in-process; each sample is the '
                  'median of 15 calls). Floors: '
                  '`qemu-img create` and `virsh vol-create-as --allocation 0` (what virt-install '
                  'uses). The base of the clone is a 1 GiB raw image; the clone is qcow2 '
                  '(`-b base -F raw`).\n')
        names5 = {
            'raw_1g': 'ours, module run, raw 1 GiB', 'raw_100g': 'ours, module run, raw 100 GiB',
            'qcow2_clone': 'ours, module run, qcow2 clone',
            'kvmops_storage_raw_1g': 'ours, disk code only, raw 1 GiB',
            'kvmops_storage_raw_100g': 'ours, disk code only, raw 100 GiB',
            'kvmops_storage_qcow2_clone': 'ours, disk code only, qcow2 clone',
            'qemu_img_raw_1g': 'qemu-img create raw 1 GiB', 'qemu_img_raw_100g': 'qemu-img create raw 100 GiB',
            'qemu_img_qcow2_clone': 'qemu-img create qcow2 clone',
            'virsh_vol_raw_1g': 'virsh vol-create-as raw 1 GiB', 'virsh_vol_raw_100g': 'virsh vol-create-as raw 100 GiB'}
        rows = ['| what | median | min | max | n |', '|---|---:|---:|---:|---:|']
        for kk in names5:
            s = t.get(kk)
            if s:
                unit = 'ms' if s['median'] < 0.01 else 's'
                rows.append('| %s | %s | %s | %s | %d |' % (
                    names5[kk], fs(s['median'], unit), fs(s['min'], unit), fs(s['max'], unit),
                    s['n']))
        md.append('\n'.join(rows) + '\n')
        sz = c5.get('sizes') or {}
        if sz:
            md.append('Images the module made: %s.\n' % ', '.join(
                '%s: %d bytes apparent, %d bytes allocated' % (kk, v['apparent'], v['allocated'])
                for kk, v in sorted(sz.items())))
        g = goals.ratio_max(5, 'module run with 100 GiB / with 1 GiB under 1.5',
                            ratio(med(t, 'raw_100g'), med(t, 'raw_1g')), 1.5)
        r_store = ratio(med(t, 'kvmops_storage_raw_100g'), med(t, 'kvmops_storage_raw_1g'))
        r_clone = ratio(med(t, 'qcow2_clone'), med(t, 'raw_1g'))
        ratios['case5 100 GiB / 1 GiB (module run)'] = (g['value'], 1.5)
        ratios['case5 100 GiB / 1 GiB (disk code, info)'] = (r_store, None)
        ratios['case5 qcow2 clone / raw 1 GiB (info)'] = (r_clone, None)
        md.append(load_line(c5) + '\n')
        md.append('Goal: %s: %s. The disk code alone: 100 GiB / 1 GiB %s; the qcow2 clone costs %s '
                  'the raw 1 GiB module run (it runs qemu-img).\n' % (g['goal'], g['detail'],
                                                                      fr(r_store), fr(r_clone)))
        out_json['cases']['5'] = {'title': 'disk creation', 'medians': {kk: med(t, kk) for kk in t},
                                  'ratios': {'raw_100g/raw_1g': g['value'],
                                             'storage_raw_100g/storage_raw_1g': r_store,
                                             'qcow2_clone/raw_1g': r_clone},
                                  'goals': [g]}
    else:
        md.append(not_run(errors, 5))

    # ---- case 6 --------------------------------------------------------------------
    md.append('## Case 6: site.yml on a prepared host\n')
    if c6 and c6.get('available'):
        t = c6['times']
        runs = [r for r in c6['runs'] if r['rep'] > 0]
        md.append('`ansible-playbook -i %s %s` with the demo inventory, its names moved under the '
                  'benchmark prefix (%s), the tiny install tree served on 127.0.0.1. Every '
                  'repetition is a first converge of a new image directory, pool and guest '
                  '(installed from the tree), then the idempotent re-run; in between, everything '
                  'was removed again (guest, pool, directory, install-media cache entry, SELinux '
                  'rule%s). Exclusive test-bed lock.\n' % (
                      c6['inventory'], c6['site'], ', '.join('%s=%s' % kv for kv in sorted(c6['overrides'].items())),
                      ', qemu.conf restored (%d libvirtd restarts)' % c6['libvirtd_restarts_to_restore_qemu_conf']
                      if c6.get('libvirtd_restarts_to_restore_qemu_conf') else ''))
        rows = ['| run | median | min | max | tasks ok (changed included) | changed | skipped |',
                '|---|---:|---:|---:|---:|---:|---:|']
        for kk, label in (('first', 'first converge'), ('rerun', 're-run')):
            s = t.get('first_converge' if kk == 'first' else 'rerun')
            if not s or not runs:
                continue
            st = runs[-1][kk]['counts']['stats']['localhost']
            changed = sorted(set(r[kk]['counts']['stats']['localhost']['changed'] for r in runs))
            rows.append('| %s | %s | %s | %s | %d | %s | %d |' % (
                label, fs(s['median']), fs(s['min']), fs(s['max']), st['ok'],
                '/'.join(str(c) for c in changed), st['skipped']))
        md.append('\n'.join(rows) + '\n')
        md.append('The host-wide parts (packages, libvirtd, /dev/kvm, the default network, '
                  'qemu.conf) were already in place on this prepared host, so in the first converge '
                  'they only check and report ok; what a first converge creates here is the image '
                  'directory, its pool and the guest.\n')
        if runs:
            md.append('Tasks that changed in the first converge: %s.\n' % ', '.join(
                runs[-1]['first']['changed_tasks']))
            rerun_changed = max(r['rerun']['counts']['stats']['localhost']['changed'] for r in runs)
        else:
            rerun_changed = None
        g = goals.exact(6, 'site.yml re-run reports changed=0', rerun_changed, 0,
                        'changed=0 in every re-run', 'the re-run changed %s tasks' % rerun_changed)
        md.append(load_line(c6) + '\n')
        md.append('Goal: %s: %s.\n' % (g['goal'], g['detail']))
        out_json['cases']['6'] = {'title': 'site.yml converge and re-run',
                                  'medians': {kk: med(t, kk) for kk in t},
                                  'ratios': {'rerun/first_converge': ratio(med(t, 'rerun'), med(t, 'first_converge'))},
                                  'tasks': runs[-1]['first']['counts']['stats'] if runs else None,
                                  'goals': [g]}
    else:
        why = (c6 or {}).get('why', 'case 6 was not run')
        if 6 in errors:
            why = 'the case failed'
            md.append(not_run(errors, 6))
        else:
            md.append('Not measurable yet: %s.\n' % why)
        out_json['cases']['6'] = {'title': 'site.yml converge and re-run', 'available': False,
                                  'why': why}

    # ---- goal summary -------------------------------------------------------------
    lines = ['## Goals at a glance\n', '| case | goal | met | how far |', '|---|---|---|---|']
    for g in goals.items:
        lines.append('| %s | %s | %s | %s |' % (g['case'], g['goal'], met_word(g), g['detail']))
    for case in sorted(errors):
        lines.append('| %s | every goal of this case | **not measured** | the case FAILED: %s |'
                     % (case, errors[case].replace('\n', ' ').replace('|', '/')[:300]))
    if not (c6 and c6.get('available')) and 6 not in errors:
        lines.append('| 6 | site.yml converge and re-run with task counts | not measurable yet | %s |'
                     % (c6 or {}).get('why', 'not run'))
    lines.append('\nThe chart bench/ratios.png shows every ratio against its limit.\n')
    md[summary_idx] = '\n'.join(lines)

    out_json['goals'] = goals.items
    out_json['chart'] = {k: {'value': v[0], 'limit': v[1]} for k, v in ratios.items()}
    with open(OUT_JSON, 'w') as f:
        json.dump(out_json, f, indent=1, sort_keys=True)
        f.write('\n')
    with open(OUT_MD, 'w') as f:
        f.write('\n'.join(md).rstrip() + '\n' + kept_sections())
    chart(ratios)
    print('[bench] wrote %s, %s, %s' % tuple(os.path.relpath(p, B.REPO) for p in (OUT_MD, OUT_JSON, OUT_PNG)))


def kept_sections():
    """Sections other scripts own (<!-- section:NAME --> ... <!-- /section:NAME -->, e.g.
    bench/fleet.py's), carried over from the results.md being replaced."""
    if not os.path.exists(OUT_MD):
        return ''
    with open(OUT_MD) as f:
        old = f.read()
    kept = re.findall(r'(?s)<!-- section:([\w-]+) -->.*?<!-- /section:\1 -->', old)
    blocks = [re.search(r'(?s)<!-- section:%s -->.*?<!-- /section:%s -->' % (n, n), old).group(0) for n in kept]
    return ''.join('\n' + b + '\n' for b in blocks)


def chart(ratios):
    import matplotlib  # pylint: disable=import-outside-toplevel
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt  # pylint: disable=import-outside-toplevel
    from matplotlib.ticker import FuncFormatter  # pylint: disable=import-outside-toplevel
    items = [(k, v, lim) for k, (v, lim) in ratios.items() if v is not None and v > 0]
    if not items:
        return
    # per case: the goals first, then the figures for information
    items.sort(key=lambda i: (i[0].split(' ', 1)[0], i[2] is None))
    values = [i[1] for i in items] + [i[2] for i in items if i[2]] + [1.0]
    lo, hi = min(values) / 1.5, max(values) * 1.6
    fig, ax = plt.subplots(figsize=(10, 0.45 * len(items) + 1.6))
    ys = list(range(len(items)))[::-1]
    for y, (label, value, limit) in zip(ys, items):
        color = '#888888' if limit is None else ('#2e7d32' if value <= limit else '#c62828')
        ax.barh(y, value - lo, left=lo, color=color, height=0.6)
        ax.text(value * 1.03, y, '%.2fx' % value, va='center', fontsize=8)
        if limit is not None:
            ax.plot([limit, limit], [y - 0.42, y + 0.42], color='black', linewidth=2.5)
    ax.set_yticks(ys)
    ax.set_yticklabels([i[0] for i in items], fontsize=8)
    ax.set_xscale('log')
    ax.set_xlim(lo, hi)
    ax.set_xticks([x for x in (0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 20) if lo <= x <= hi])
    ax.xaxis.set_major_formatter(FuncFormatter(lambda x, _pos: '%gx' % x))
    ax.xaxis.set_minor_formatter(FuncFormatter(lambda x, _pos: ''))
    ax.axvline(1.0, color='#bbbbbb', linewidth=0.8, linestyle='--')
    ax.set_xlabel('ratio of medians (log scale); black tick = goal limit; '
                  'green = goal met, red = missed, grey = for information')
    ax.set_title('kvmops.hypervisor benchmarks: ratios measured in one run')
    fig.tight_layout()
    fig.savefig(OUT_PNG, dpi=110)
    plt.close(fig)


B_GUESTS = list(range(10))  # the 10 guests of cases 1-3

if __name__ == '__main__':
    main()
