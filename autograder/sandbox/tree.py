"""A worker's process tree as the judge's watchdog sees it, read from /proc by hand (psutil cannot, or is too slow).

Three reasons, measured or structural: the watchdog looks every 50 ms, and walking /proc with
psutil.process_iter(["ppid", "create_time"]) took about 4 times as long as the walk below (42 ms
against 10 ms for 115 processes on the 2-core VM); a bubblewrap sandbox's processes are read
through its own /proc (/proc/ZYGOTE/root/proc), which psutil cannot address; and the budget
counts anonymous and shared-memory pages (RssAnon + RssShmem, Pss_Anon + Pss_Shmem), which
psutil does not report (its rss and pss include file pages, which are the page cache's).
"""
from __future__ import annotations

import os

import psutil

from autograder.sandbox.inside.limits import SCRATCH

TICK = os.sysconf("SC_CLK_TCK")


class Tree:
    """The processes of one worker, seen from the judge.

    Under bubblewrap: every process in the sandbox but its init, the zygote (a worker's orphans
    become the zygote's children), listed from the sandbox's own /proc where the judge may look
    (a root grader). Otherwise: the worker, its descendants, and orphans that were reparented to
    the judge (a subreaper) since the worker started, from a walk through /proc. `lender` is the
    zygote whose pages the tree shares (not a member): under bubblewrap the sandbox's init, in
    the fallback the process that forked the worker.
    """

    def __init__(self, worker: int, zygote: int | None = None, lender: int | None = None):
        self.worker, self.zygote = worker, zygote
        self.lender = zygote if lender is None else lender
        self.since = (proc_stat(f"/proc/{worker}") or {}).get("start", 0)
        inside = f"/proc/{zygote}/root/proc"
        self.inside = inside if zygote is not None and os.path.isdir(f"{inside}/1") else None

    def members(self) -> list[str]:
        """The /proc folders of the tree's processes (ended ones not yet reaped too)."""
        if self.inside is not None:
            try:
                return [f"{self.inside}/{p}" for p in os.listdir(self.inside) if p.isdigit() and p != "1"]
            except OSError:
                pass
        return [f"/proc/{pid}" for pid in self.pids()]

    def pids(self) -> list[int]:
        """The tree's processes by their pid here (a walk through all of /proc)."""
        children: dict[int, list[int]] = {}
        roots = [self.zygote] if self.zygote is not None else [self.worker]
        for pid in psutil.pids():
            info = proc_stat(f"/proc/{pid}")
            if info is None:
                continue
            children.setdefault(info["ppid"], []).append(pid)
            if self.zygote is None and info["ppid"] == os.getpid() and info["start"] >= self.since:
                roots.append(pid)  # an orphan of the worker, reparented to the judge
        found, todo = set(), list(dict.fromkeys(roots))
        while todo:
            pid = todo.pop()
            if pid not in found:
                found.add(pid)
                todo += children.get(pid, [])
        return sorted(found - {self.zygote})

    def reaper_cpu(self) -> float:
        """CPU time of ended processes the tree's reaper (the zygote, else the judge) has collected."""
        info = proc_stat(f"/proc/{self.zygote}" if self.zygote is not None else "/proc/self")
        return info["reaped"] if info else 0.0

    def scratch_bytes(self) -> int:
        """Bytes in the worker's private /tmp and /dev/shm; 0 when it shares ours or we cannot look in."""
        pid = self.zygote if self.zygote is not None else self.worker
        try:
            if os.stat(f"/proc/{pid}/ns/mnt").st_ino == os.stat("/proc/self/ns/mnt").st_ino:
                return 0
            used = 0
            for folder in SCRATCH:
                info = os.statvfs(f"/proc/{pid}/root{folder}")
                used += (info.f_blocks - info.f_bfree) * info.f_frsize
            return used
        except OSError:
            return 0


def in_namespace(parent: int, above: int = 0) -> dict[int, int]:
    """The children of `parent` (numbered above `above` here) by their pid in their own (innermost) PID
    namespace -> their pid here. Reading every process's status is slow on a small VM (10 ms or more);
    NSpid is a field psutil does not read."""
    found = {}
    for pid in (p for p in psutil.pids() if p > above):
        try:
            with open(f"/proc/{pid}/status", "rb") as handle:
                fields = dict(line.split(b":", 1) for line in handle.read().splitlines() if b":" in line)
            if int(fields[b"PPid"]) == parent:
                found[int(fields[b"NSpid"].split()[-1])] = pid
        except (OSError, KeyError, ValueError, IndexError):
            continue
    return found


def proc_stat(folder: str) -> dict | None:
    """ppid, start, cpu (its own and its reaped children's), reaped (children's only) and threads (0 when
    it has ended) of the process whose /proc folder is `folder`; None when it is gone."""
    try:
        with open(f"{folder}/stat", "rb") as handle:
            fields = handle.read().rsplit(b")", 1)[1].split()
        times = [int(f) for f in fields[11:15]]
        return {"ppid": int(fields[1]), "start": int(fields[19]), "cpu": sum(times) / TICK,
                "reaped": sum(times[2:]) / TICK, "threads": 0 if fields[0] in (b"Z", b"X") else int(fields[17])}
    except (OSError, IndexError, ValueError):
        return None


def rss(folder: str) -> int:
    """Resident anonymous and shared-memory pages (file pages are the page cache's): from cheap counters."""
    return _fields(f"{folder}/status", (b"RssAnon:", b"RssShmem:"))


def pss(folder: str) -> int:
    """The same pages, each shared one divided among the processes that map it (a walk through its page
    tables: costly); RSS where it cannot be read (never less than the truth)."""
    return _fields(f"{folder}/smaps_rollup", (b"Pss_Anon:", b"Pss_Shmem:")) or rss(folder)


def _fields(path: str, names: tuple[bytes, ...]) -> int:
    """The sum of the fields `names` (in kB) of a /proc file, in bytes; 0 when unreadable."""
    try:
        with open(path, "rb") as handle:
            return sum(int(line.split()[1]) for line in handle if line.startswith(names)) * 1024
    except (OSError, IndexError, ValueError):
        return 0


def tasks(folders: list[str]) -> int:
    """Threads of the tree's living processes."""
    return sum(i["threads"] for i in map(proc_stat, folders) if i)
