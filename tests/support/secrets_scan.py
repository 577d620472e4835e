"""Look for a secret everywhere a run could leave it: process arguments (sampled from /proc
while the run goes on), output, files written during the run."""
import os
import stat
import threading
import time


class ProcSampler(object):
    """Samples every process's argv (and the environment of Ansible's processes) from /proc
    in a thread until stop(); .seen holds each distinct (pid, argv) once."""

    def __init__(self, interval=0.01):
        self.interval = interval
        self.seen = set()
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self.stop()

    def _sample(self):
        for pid in os.listdir('/proc'):
            if not pid.isdigit():
                continue
            try:
                with open('/proc/%s/cmdline' % pid, 'rb') as f:
                    argv = f.read()
            except OSError:
                continue
            self.seen.add((pid, argv))
            if b'ansible' in argv or b'AnsiballZ' in argv or b'qemu' in argv:
                try:
                    with open('/proc/%s/environ' % pid, 'rb') as f:
                        self.seen.add((pid + ' environ', f.read()))
                except OSError:
                    pass
        self.samples += 1

    def _run(self):
        while not self._stop.is_set():
            self._sample()
            time.sleep(self.interval)

    def stop(self):
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()

    def hits(self, secret):
        s = secret.encode()
        return sorted(set((pid, argv.replace(b'\0', b' ')[:300]) for pid, argv in self.seen
                          if s in argv))


def files_changed_since(roots, since, max_bytes=64 * 1024 * 1024):
    """Regular files under roots modified (or whose inode changed) at or after since.

    Stays on each root's file system: another session's chroot under /tmp (mmdebstrap) has
    /proc mounted inside it, and reading its kmsg (a "regular" file of size 0) never ends.
    Empty files are skipped for the same reason (and hold no secret)."""
    out = []
    for root in roots:
        if not os.path.exists(root):
            continue
        device = os.stat(root).st_dev
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames[:] = [d for d in dirnames if _same_device(os.path.join(dirpath, d), device)]
            for name in filenames:
                path = os.path.join(dirpath, name)
                try:
                    st = os.lstat(path)
                except OSError:
                    continue
                if not stat.S_ISREG(st.st_mode) or st.st_dev != device or \
                        not 0 < st.st_size <= max_bytes:
                    continue
                if max(st.st_mtime, st.st_ctime) >= since:
                    out.append(path)
    return out


def _same_device(path, device):
    try:
        return os.lstat(path).st_dev == device
    except OSError:
        return False


def files_holding(paths, secret):
    s = secret.encode()
    hits = []
    for path in paths:
        try:
            with open(path, 'rb') as f:
                if s in f.read():
                    hits.append(path)
        except OSError:
            continue
    return hits
