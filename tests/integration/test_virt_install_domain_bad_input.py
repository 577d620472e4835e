"""virt_install_domain refuses bad input before anything is created: one playbook, one task
per bad input, each failing with the message that names it."""
import json
import os

from support.ansible_run import run_tasks


BAD_INPUTS = [
    ({'memory': -512}, 'memory'),
    ({'name': 'a/b'}, 'name'),
    ({'cmdline': "console=ttyS0'/><devices/>"}, 'metacharacters'),
    ({'disks': [{'path': 'relative.img', 'size': 1}]}, 'relative path'),
    ({'disks': [{'path': '@IMG@/x.img', 'size': 1, 'bus': 'floppy'}]}, 'bus'),
    ({'disks': [{'path': '@IMG@/same.img', 'size': 1}, {'path': '@IMG@/same.img'}]}, 'both use'),
    ({'kernel': '/nonexistent/vmlinuz'}, 'not a file'),
    ({'graphics': {'type': 'vnc', 'password': '123456789'}}, 'only 8'),
]


def test_bad_input_fails_before_anything_is_created(conn, prefix, image_dir, tiny):
    """One playbook, one task per bad input (ignore_errors): each fails with its message."""
    tasks = []
    for i, (bad, _match) in enumerate(BAD_INPUTS):
        args = dict(name=prefix + 'bad', state='running', virt_type='qemu', networks=[],
                    kernel=tiny['kernel'], graphics={'type': 'none'},
                    disks=[{'path': os.path.join(image_dir, 'ok.img'), 'size': 1}])
        for key, value in bad.items():
            if key == 'disks':
                value = [dict(d, path=d['path'].replace('@IMG@', image_dir)) for d in value]
            args[key] = value
        tasks.append({'name': 'bad input %d' % i, 'kvmops.hypervisor.virt_install_domain': args,
                      'ignore_errors': True})
    results, doc = run_tasks(tasks, with_document=True)
    assert len(results) == len(BAD_INPUTS)
    for (bad, match), res in zip(BAD_INPUTS, results):
        assert res.get('failed') and match in res['msg'], (bad, res.get('msg'))
    assert '123456789' not in json.dumps(doc)
    assert os.listdir(image_dir) == []
    assert not [d for d in conn.listAllDomains() if d.name().startswith(prefix)]
