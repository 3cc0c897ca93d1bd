"""Judges forked from a batch's first judge once it has imported torch and the kit, instead of each importing them.

A judge spends about 2 s of CPU on its imports (torch's 1.5 s) before its first submission, and a batch's judges all
start at once, beside their sandboxes, on the same cores. So the pool (pool.py) starts one judge as a process of its
own and hands it the pipes of the others: its spec's "siblings", each with the sibling's own spec. Once it has
imported everything, that judge forks each sibling, twice: the process between exits at once, so that the
sibling's parent becomes the pool, a subreaper, which waits for it, kills it and is told its end as for any judge.
A sibling closes what it inherited of its forker (its pipes to the pool, its sandbox), says its pid on its own pipe
("forked"), starts a sandbox of its own and grades its share. A sibling that is never born (its forker died first)
is started again as a process of its own, and nobody is blamed for it.
"""
from __future__ import annotations

import os
import signal
import time
from typing import TextIO

from autograder.sandbox.inside.mounts import die_with_parent
from autograder.sandbox.zygote_client import forget_all

ADOPTION_SECONDS = 5.0
"""How long a sibling waits to be the pool's child; a pool that is not a subreaper never adopts it."""


class Sibling:
    """The pool's handle on a sibling judge, with the parts of subprocess.Popen the pool uses; its pid is known once
    the sibling says it (`born`)."""

    def __init__(self) -> None:
        their_stdin, ours = os.pipe()
        self.stdin = os.fdopen(ours, "w", buffering=1)
        ours, their_stdout = os.pipe()
        self.stdout = os.fdopen(ours, "rb", buffering=0)
        self.theirs = (their_stdin, their_stdout)
        """Its ends of the pipes, handed to the first judge (pass_fds), then closed here (`handed`)."""
        self.pid: int | None = None
        self.returncode: int | None = None

    def spec(self, spec: dict) -> dict:
        """What the first judge needs to fork it: its pipes' numbers there and its own spec."""
        return {"stdin": self.theirs[0], "stdout": self.theirs[1], "spec": spec}

    def handed(self) -> None:
        for fd in self.theirs:
            os.close(fd)

    def born(self, pid: int) -> None:
        self.pid = pid

    def wait(self) -> int:
        """Its exit code (negative: the signal that ended it); -1 if it was never born, or is not our child."""
        if self.returncode is None:
            if self.pid is None:
                self.returncode = -1
            else:
                try:
                    self.returncode = os.waitstatus_to_exitcode(os.waitpid(self.pid, 0)[1])
                except ChildProcessError:
                    self.returncode = -1
        return self.returncode

    def kill(self) -> None:
        """SIGKILL it (not yet waited for, its pid is not anyone else's); one never born has nothing to kill."""
        if self.pid is not None and self.returncode is None:
            try:
                os.kill(self.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


def fork(sibling: dict, every: list[dict], channel: TextIO) -> tuple[TextIO, dict] | None:
    """Fork the judge `sibling` describes (an entry of `every`, the spec's "siblings"). Here: None, once its pipes
    are closed here. In the sibling, the pool's child by then: its pipe to the pool (it has said "forked" on it)
    and its spec; stdin is its own."""
    pool = os.getppid()
    middle = os.fork()
    if middle:
        os.waitpid(middle, 0)
        for fd in (sibling["stdin"], sibling["stdout"]):
            os.close(fd)
        return None
    try:
        if os.fork():
            os._exit(0)
        deadline = time.monotonic() + ADOPTION_SECONDS
        while os.getppid() != pool:  # until the process between is gone and the pool has adopted us
            if time.monotonic() > deadline:
                os._exit(1)
            time.sleep(0.001)
        die_with_parent()
        if os.getppid() != pool:  # the pool ended meanwhile
            os._exit(1)
        channel.close()  # the forker's pipe: its end of file must tell the pool when the forker ends
        os.dup2(sibling["stdin"], 0)
        for fd in {fd for other in every for fd in (other["stdin"], other["stdout"])} - {sibling["stdout"]}:
            try:
                os.close(fd)
            except OSError:  # a sibling forked earlier: its pipes are closed in the forker already
                pass
        forget_all()
        mine = os.fdopen(sibling["stdout"], "w", buffering=1)
        mine.write(f"forked\t{os.getpid()}\n")
        return mine, sibling["spec"]
    except BaseException:  # noqa: BLE001 - a forked child never returns into its forker's code
        os._exit(1)
