# Functions the sandbox tests call inside a worker (tests/test_sandbox.py): each tries one escape.
# Results come back as tensors, or as one JSON line on stderr starting with "REPORT ".
import json
import os
import socket
import sys
import time

import torch


def report(data):
    sys.stderr.write("REPORT " + json.dumps(data) + "\n")
    sys.stderr.flush()
    return torch.zeros(1)


def _readable(path):
    try:
        with open(path, "rb") as handle:
            handle.read(1)
        return True
    except OSError:
        return False


def _listing(path):
    try:
        return sorted(os.listdir(path))
    except OSError as exc:
        return exc.strerror


def _writable(path):
    try:
        with open(path, "w") as handle:
            handle.write("x")
        os.unlink(path)
        return True
    except OSError:
        return False


def look_around(secret_name, secret_value, repo, port):
    """What the worker can see of the machine: files, environment, network, processes, identity."""
    environ_hits = []
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                with open(f"/proc/{pid}/environ", "rb") as handle:
                    if secret_value.encode() in handle.read():
                        environ_hits.append(int(pid))
            except OSError:
                pass
    try:
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
        connected = True
    except OSError:
        connected = False
    import resource

    return report({
        "uid": os.getuid(),
        "secret_in_environ": secret_name in os.environ or secret_value in json.dumps(dict(os.environ)),
        "secret_in_proc": environ_hits,
        "connected": connected,
        "repo_listing": _listing(repo),
        "solution_readable": _readable(os.path.join(repo, "solutions", "en", "ch03_attention.ipynb")),
        "checks_readable": _readable(os.path.join(repo, "autograder", "checks", "test_3_causal.py")),
        "shadow_readable": _readable("/etc/shadow"),
        "root_listing": _listing("/root"),
        "pids": sorted(int(p) for p in os.listdir("/proc") if p.isdigit()),
        "ppid": os.getppid(),
        "cwd": os.getcwd(),
        "home_writable": _writable(os.path.join(os.environ.get("HOME", "/nonexistent"), "probe.txt")),
        "usr_writable": _writable("/usr/probe.txt"),
        "dev_writable": _writable("/dev/probe.txt"),
        "nproc": resource.getrlimit(resource.RLIMIT_NPROC)[0],
    })


def fork_bomb(marker, seconds):
    """Fork until refused; the children sleep under the name `marker`. Returns how many forks succeeded."""
    count = 0
    try:
        while count < 5000:
            if os.fork() == 0:
                os.execv("/bin/sleep", [marker, str(seconds)])
            count += 1
    except OSError:
        pass
    return torch.tensor([count])


def threads(count):
    """Start `count` threads that sleep briefly; returns how many started."""
    import threading

    started = 0
    try:
        for _ in range(int(count)):
            threading.Thread(target=time.sleep, args=(0.5,)).start()
            started += 1
    except RuntimeError:
        pass
    return torch.tensor([started])


def hold_in_threads(count, mib):
    """Start `count` threads that each hold `mib` MiB and sleep; this one waits until all of them hold it."""
    import threading

    held = threading.Semaphore(0)

    def hold():
        block = b"x" * (mib << 20)
        held.release()
        time.sleep(60 + len(block) * 0)

    for _ in range(int(count)):
        threading.Thread(target=hold, daemon=True).start()
    for _ in range(int(count)):
        held.acquire(timeout=30)
    return torch.tensor([count])


def daemon(marker):
    """Double-fork a session leader that runs `sleep` under the name `marker`, then return at once."""
    if os.fork() == 0:
        os.setsid()
        if os.fork() == 0:
            os.execv("/bin/sleep", [marker, "300"])
        os._exit(0)
    os.wait()
    return torch.zeros(1)


def daemon_then_hang(marker):
    daemon(marker)
    while True:
        pass


def allocate(gib):
    return torch.ones(int(gib * 2**28)).sum().reshape(1)


def burn_cpu():
    while True:
        pass


def write_file(name, mib):
    with open(name, "wb") as handle:
        for _ in range(int(mib)):
            handle.write(b"x" * 2**20)
    return torch.zeros(1)


def fill_tmp(mib):
    """Write 1 MiB files into the temporary folder until refused; returns how many MiB were written."""
    written = 0
    try:
        while written < mib:
            with open(os.path.join(os.environ["HOME"], f"fill{written}"), "wb") as handle:
                handle.write(b"x" * 2**20)
            written += 1
    except OSError:
        pass
    return torch.tensor([written])


def shout(mib):
    for _ in range(int(mib) * 16):
        print("y" * 65535)
    return torch.zeros(1)


def kill_parent():
    import signal

    try:
        os.kill(os.getppid(), signal.SIGKILL)
    except OSError:
        pass
    return torch.zeros(1)


def exit_now():
    os._exit(0)


SHM_KEY = 0x7F3A


def _sysv_shm(create):
    """The id of the SysV shared memory segment SHM_KEY (created when `create`), or -1."""
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    return libc.shmget(SHM_KEY, 4096, (0o1000 | 0o666) if create else 0)  # IPC_CREAT


def haunt(marker):
    """Leave traces for the next worker: files in /tmp and /dev/shm (one folder locked with mode 000),
    a SysV shared memory segment, and a daemon named `marker` that SIGSTOPs and tries to write into
    every process that appears after it. Returns what it managed to leave."""
    left = {}
    for folder in ("/tmp", "/dev/shm"):
        try:
            with open(os.path.join(folder, "haunt.txt"), "w") as handle:
                handle.write("left by the previous submission")
            locked = os.path.join(folder, "locked")
            os.makedirs(os.path.join(locked, "inner"), exist_ok=True)
            open(os.path.join(locked, "inner", "x"), "w").close()
            os.chmod(os.path.join(locked, "inner"), 0)
            os.chmod(locked, 0)
            left[folder] = True
        except OSError as exc:
            left[folder] = str(exc)
    left["shm"] = _sysv_shm(True)
    if os.fork() == 0:
        os.setsid()
        if os.fork() == 0:
            import signal

            seen = set(os.listdir("/proc"))
            os.execv(sys.executable, [marker, "-c", f"""
import os, signal, time
seen = set({sorted(seen)!r})
while True:
    for pid in os.listdir('/proc'):
        if pid.isdigit() and pid not in seen and int(pid) != os.getpid():
            try:
                os.kill(int(pid), signal.SIGSTOP)
                with open(f'/proc/{{pid}}/mem', 'wb') as handle:
                    handle.write(b'x')
            except OSError:
                pass
    time.sleep(0.001)
"""])
        os._exit(0)
    os.wait()
    return report(left)


def spy():
    """What a worker can find of the workers before it, and of the zygote that forked it."""
    parent = os.getppid()
    found = {
        "tmp": sorted(os.listdir("/tmp")),
        "shm_files": sorted(os.listdir("/dev/shm")),
        "sysv_shm": _sysv_shm(False),
        "pids": sorted(int(p) for p in os.listdir("/proc") if p.isdigit()),
        "parent": parent,
        "me": os.getpid(),
    }
    for what in ("mem", "environ", "maps", "fd"):
        path = f"/proc/{parent}/{what}"
        try:
            if what == "fd":
                found[what] = os.listdir(path)
            else:
                with open(path, "rb") as handle:
                    handle.read(16)
                found[what] = "readable"
        except OSError as exc:
            found[what] = type(exc).__name__
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        found["ptrace"] = libc.ptrace(16, parent, None, None)  # PTRACE_ATTACH
    except OSError as exc:
        found["ptrace"] = str(exc)
    return report(found)


def odd_dtype():
    """A tensor the wire format does not carry."""
    return torch.zeros(3, dtype=torch.uint16)


def fan_out(marker, children, mib, seconds):
    """Children (fresh Pythons named `marker`) that each hold `mib` MiB, then sleep; this one waits."""
    import sys
    import time

    hold = f"import time\nb = b'x' * ({mib} << 20)\ntime.sleep(60)"
    for _ in range(children):
        if os.fork() == 0:
            try:
                os.execv(sys.executable, [marker, "-c", hold])
            finally:
                os._exit(1)
    time.sleep(seconds)
    return torch.tensor(children)


def fill_scratch(marker, folder, mib):
    """A child (a fresh Python named `marker`) writes up to `mib` MiB into `folder`, in files of 8 MiB (under
    RLIMIT_FSIZE), through write(2) alone from a buffer it touched first, and exits at the first refusal
    (ENOMEM, ENOSPC); this one waits for it and returns its exit code. No page fault meets the limit, so nothing
    in the tree waits for memory: what the tree holds is its files."""
    import sys

    fill = ("import os\nblock = b'x' * (1 << 20)\ntry:\n"
            f"    for n in range({mib} // 8):\n"
            f"        fd = os.open('{folder}/{marker}-%d' % n, os.O_WRONLY | os.O_CREAT, 0o600)\n"
            "        for _ in range(8):\n            os.write(fd, block)\n        os.close(fd)\n"
            "except OSError as e:\n    os._exit(e.errno)")
    if os.fork() == 0:
        try:
            os.execv(sys.executable, [marker, "-c", fill])
        finally:
            os._exit(1)
    _, status = os.wait()
    return torch.tensor(os.waitstatus_to_exitcode(status))


def spin(marker, children):
    """Children (fresh Pythons named `marker`) that keep a processor busy; returns at once."""
    import sys

    for _ in range(children):
        if os.fork() == 0:
            try:
                os.execv(sys.executable, [marker, "-c", "while True:\n    pass"])
            finally:
                os._exit(1)
    return torch.tensor(children)
