"""The judge's own prctl calls (its workers' mounts, uid and parent-death signal: inside/mounts.py, shared with
the sandbox)."""
from __future__ import annotations

import ctypes
from functools import cache

from autograder.sandbox.inside.mounts import LINUX, die_with_parent

__all__ = ["LINUX", "become_subreaper", "die_with_parent", "is_subreaper"]
PR_SET_CHILD_SUBREAPER = 36
PR_GET_CHILD_SUBREAPER = 37


def become_subreaper(on: bool = True) -> bool:
    """Orphans of our descendants (a fallback worker's double-forked daemons, a batch's forked judges) become our
    children, so we can find and wait for them; `on=False`: no longer. Whether the kernel did it (Linux 3.4 and
    later). Asked each time: a batch turns it off again when it is done (batch/pool.py), so an answer kept from
    before would not say what holds now."""
    return LINUX and _libc().prctl(PR_SET_CHILD_SUBREAPER, int(on), 0, 0, 0) == 0


def is_subreaper() -> bool:
    """Whether orphans of our descendants become our children now."""
    flag = ctypes.c_int(0)
    return LINUX and _libc().prctl(PR_GET_CHILD_SUBREAPER, ctypes.byref(flag), 0, 0, 0) == 0 and flag.value != 0


@cache
def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(None, use_errno=True)
