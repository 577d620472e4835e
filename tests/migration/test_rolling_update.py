"""playbooks/rolling_update.yml over three podman hypervisors with one counting guest each
(make migration). The upgrade step runs the apt module's `apt-get dist-upgrade` against the
image's own package lists (rolling_update_refresh_cache: false: no mirror traffic). The
hypervisor image keeps no package lists (/var/lib/apt/lists is empty), so apt finds nothing to
upgrade: "0 upgraded", changed=false, and libvirtd is not restarted. The reboot (forced with
rolling_update_reboot: always) is skipped because the hosts are containers (the play says so)."""
import json
import os

import pytest

from support import migration_fleet as mf
from support import paths
from support.ansible_run import run_playbook

pytestmark = [pytest.mark.migration]

PLAYBOOK = os.path.join(paths.REPO, 'playbooks', 'rolling_update.yml')


def failures(doc):
    """The failed tasks' names and messages (for assertion messages)."""
    out = []
    for play in doc.get('plays', []):
        for task in play['tasks']:
            for host, res in task['hosts'].items():
                if res.get('failed') or res.get('unreachable'):
                    out.append('%s on %s: %s' % (task['task']['name'], host,
                                                 res.get('msg') or json.dumps(res)[:2000]))
    return '\n'.join(out) or doc.get('_stderr', '')[-3000:]


def test_rolling_update_keeps_every_guest_running(tmp_path):
    with mf.fleet(3, shared=True) as names:
        inv = mf.inventory(str(tmp_path / 'inv.json'), names)
        guests = dict((h, 'roll-%d' % i) for i, h in enumerate(names))
        for h, g in guests.items():
            mf.start_guest(h, g, wait=False)
        for h, g in guests.items():
            mf.wait_count(h, g, 3)
        boot = dict((g, mf.counts(h, g)[-1][1]) for h, g in guests.items())
        doc = run_playbook(PLAYBOOK, inventory=inv, timeout=3600, extra_vars={
            'hypervisor_maintenance_unsafe': True, 'rolling_update_refresh_cache': False,
            'rolling_update_reboot': 'always'})
        assert doc['_rc'] == 0, failures(doc) + json.dumps(doc['stats'])
        # serial: 1 -> one play per host in the json callback's document.
        assert len(doc['plays']) == 3
        skipped = [t for p in doc['plays'] for t in p['tasks'] if t['task']['name'] == 'Say that the reboot is skipped inside a container']
        assert all(not list(t['hosts'].values())[0].get('skipped') for t in skipped), skipped
        apt = [(h, r) for p in doc['plays'] for t in p['tasks']
               if t['task']['name'] == 'Upgrade the packages (Debian/Ubuntu, apt dist-upgrade)'
               for h, r in t['hosts'].items()]
        assert sorted(h for h, _r in apt) == sorted(names), apt
        for h, r in apt:
            assert not r.get('skipped') and not r.get('changed'), (h, r)
            assert '0 upgraded' in r.get('stdout', ''), (h, r.get('stdout'))
        restarts = [r for p in doc['plays'] for t in p['tasks']
                    if t['task']['name'] == 'Restart libvirtd when the upgrade touched it and there was no reboot'
                    for r in t['hosts'].values()]
        assert restarts and all(r.get('skipped') for r in restarts), restarts
        for h, g in guests.items():
            found = [(o, mf.state(o, g)) for o in names if mf.state(o, g) is not None]
            assert found == [(h, 'running')], (g, found)
            assert mf.wait_count(h, g, 1)[-1][1] == boot[g], 'the counter of %s restarted' % g
            assert mf.sh(h, 'test', '-e', '/var/lib/kvmops/maintenance.json', check=False).returncode != 0
