"""The judge's own prctl calls (its workers' mounts, uid and parent-death signal: inside/mounts.py, shared with
the sandbox)."""
from __future__ import annotations

import ctypes
from functools import cache

from autograder.sandbox.inside.mounts import LINUX, die_with_parent

__all__ = ["LINUX", "become_subreaper", "die_with_parent"]
PR_SET_CHILD_SUBREAPER = 36


@cache
def become_subreaper(on: bool = True) -> bool:
    """Orphans of our descendants (a fallback worker's double-forked daemons, a batch's forked judges) become our
    children, so we can find and wait for them; `on=False`: no longer.

    The kernel grants it (Linux 3.4 and later) or never will.
    """
    return LINUX and ctypes.CDLL(None, use_errno=True).prctl(PR_SET_CHILD_SUBREAPER, int(on), 0, 0, 0) == 0
