"""Talk to a guest through qemu-guest-agent (virtio-serial channel org.qemu.guest_agent.0).

The channel is a host-side UNIX socket: nothing here sends network traffic to the guest.
"""
import base64
import json
import time

import libvirt
import libvirt_qemu


def agent_command(dom, command, arguments=None, timeout=10):
    cmd = {'execute': command}
    if arguments is not None:
        cmd['arguments'] = arguments
    return json.loads(libvirt_qemu.qemuAgentCommand(dom, json.dumps(cmd), timeout, 0))['return']


def agent_exec(dom, path, *args, timeout=30):
    """Run a command in the guest; (exit code, stdout, stderr) once it has exited."""
    request = {'path': path, 'arg': list(args), 'capture-output': True}
    pid = agent_command(dom, 'guest-exec', request)['pid']
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        st = agent_command(dom, 'guest-exec-status', {'pid': pid})
        if st.get('exited'):
            return (st.get('exitcode'),
                    base64.b64decode(st.get('out-data', '')).decode('utf-8', 'replace'),
                    base64.b64decode(st.get('err-data', '')).decode('utf-8', 'replace'))
        time.sleep(0.5)
    raise AssertionError('guest-exec %s %s did not finish within %ss' % (path, args, timeout))


def wait_for_agent(dom, timeout, interval=2.0):
    """Wait until the guest agent answers guest-ping; seconds waited."""
    start = time.monotonic()
    last = None
    while time.monotonic() - start < timeout:
        try:
            agent_command(dom, 'guest-ping', timeout=5)
            return time.monotonic() - start
        except libvirt.libvirtError as exc:
            last = exc
        time.sleep(interval)
    raise AssertionError('the guest agent of %s did not answer within %ss (last error: %s)'
                         % (dom.name(), timeout, last))
