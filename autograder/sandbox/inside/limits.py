"""What every worker runs under, forked by the zygote or started by the fallback: its limits and its home."""
from __future__ import annotations

import resource

HOME = "/tmp/work"
"""A bubblewrap worker's one writable folder, made afresh for each worker (a reset empties /tmp)."""
SCRATCH = ("/tmp", "/dev/shm")
"""A bubblewrap sandbox's private tmpfs folders: a reset empties them, and what is written there is memory too."""
SETTINGS = ("cpu_seconds", "address_bytes", "file_bytes", "processes", "message_bytes")
"""The limits the judge passes to a zygote (as JSON), which its workers set for themselves."""


def apply_limits(cpu_seconds: int | None, address_bytes: int, file_bytes: int, processes: int | None) -> None:
    """Set the calling process's resource limits, which its children inherit.

    `cpu_seconds` None leaves the CPU time unlimited (a zygote: each worker sets its own); `processes`
    None leaves RLIMIT_NPROC as it is (root is exempt from it, and under bubblewrap the worker sets it
    itself, inside its user namespace). Core dumps are off: a crash must leave nothing, anywhere.
    """
    if cpu_seconds is not None:  # SIGXCPU at the soft limit, which the judge names; SIGKILL 5 s later
        resource.setrlimit(resource.RLIMIT_CPU, (cpu_seconds, cpu_seconds + 5))
    resource.setrlimit(resource.RLIMIT_AS, (address_bytes, address_bytes))
    resource.setrlimit(resource.RLIMIT_FSIZE, (file_bytes, file_bytes))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    if processes is not None:
        resource.setrlimit(resource.RLIMIT_NPROC, (processes, processes))
