"""Why a worker stopped answering: raised by the worker's client and by the zygote that forked it."""
from __future__ import annotations


class WorkerGone(Exception):
    """The worker stopped answering: `reason` is "timeout", "crashed", "cpu", "protocol", or one of the
    whole tree's limits, "memory", "cpu_tree" or "cpu_share" (with `used` and `processes`)."""

    def __init__(self, reason: str, detail: str = "", **params: object):
        super().__init__(f"{reason} {detail}".strip())
        self.reason = reason
        self.detail = detail
        self.params = params
