"""One judge process of `autograder grade`: grades the submissions the pool (batch/pool.py) hands it, one at a time
as it asks for them, one record each, written and handed back on the line that says it is done. The first judge
of a batch forks the others once it has imported everything (batch/siblings.py)."""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from autograder import stopwatch
from autograder.assignment import load
from autograder.batch import siblings
from autograder.config import Config, Limits
from autograder.sandbox.capability import assume
from autograder.sandbox.zygote_client import prestart


def main() -> None:
    start = stopwatch.begin("judge start (imports)")
    # Progress goes to the parent on a copy of fd 1; anything else printed goes to stderr.
    channel = os.fdopen(os.dup(sys.stdout.fileno()), "w", buffering=1)
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    parent = _Parent()
    spec = json.loads(parent.line())
    prepare(spec)
    import torch

    from autograder import pipeline  # noqa: F401 - imported once here, for the siblings forked below too
    from autograder.report import records  # noqa: F401

    torch.set_num_threads(1)
    stage = "judge start (imports)"
    for sibling in spec.get("siblings") or []:  # the other slots' judges, forked now that all is imported
        forked = siblings.fork(sibling, spec["siblings"], channel)
        if forked is not None:  # in the sibling, the pool's child now
            channel, spec = forked
            parent = _Parent()
            stopwatch.reset()
            stage, start = "judge start (forked)", stopwatch.begin("judge start (forked)")
            prepare(spec)
            break
    stopwatch.end(stage, start)
    serve(spec, channel, parent)


def prepare(spec: dict) -> None:
    """Take what the pool found of the machine, and start the slot's sandbox (it imports torch meanwhile)."""
    if spec["isolation"] not in ("bwrap", "process"):  # resolved by the parent (capability.isolation_for)
        raise SystemExit(f"autograder judge: isolation {spec['isolation']!r} is neither bwrap nor process")
    assume(spec.get("probed") or {})  # no probe of its own to wait for before its sandbox starts
    prestart(Limits(**spec["limits"]), spec["isolation"])


def serve(spec: dict, channel, parent: _Parent) -> None:
    """Grade the share `spec` names, one record at a time, each said on `channel` once written."""
    from autograder import pipeline
    from autograder.report.records import save
    from autograder.sources import File

    config = Config(limits=Limits(**spec["limits"]), solutions=Path(spec["solutions"]),
                    assignment=load(Path(spec["assignment"])),
                    cache=Path(spec["cache"]) if spec.get("cache") else None)
    out = Path(spec["out"])
    run = pipeline.Run(spec["isolation"], spec["lang"])
    with pipeline.Session(config, run, many=True) as session:  # one pytest session for all it grades
        preflight = spec.get("preflight")  # the reference solution, graded first (batch/preflight.py)
        if preflight:
            save(pipeline.grade(File(config.reference_notebook), config, run, session), Path(preflight))
            channel.write("preflight\t\n")
        pool = _Pool(parent, channel, waiting=bool(spec.get("wait")))
        held = []  # graded while the reference's verdict is awaited: nothing is written or said done before "go"
        while (entry := pool.next()) is not None:
            record = grade(entry, config, run, session, channel)
            if pool.waiting:
                held.append((entry, record))
                continue
            for earlier, kept in held:
                report(earlier, kept, out, channel)
            held = []
            report(entry, record, out, channel)
        if not pool.verdict():  # the reference failed under these limits (the pool's word on it): grade nobody
            channel.close()
            return
        for entry, record in held:
            report(entry, record, out, channel)


def grade(entry: dict, config, run, session, channel):
    """Grade one submission of the share, announced before the file is even read (so the parent knows whom to
    blame if this process dies)."""
    from autograder import pipeline
    from autograder.sources import File

    channel.write(f"start\t{entry['name']}\n")
    return pipeline.grade(File(Path(entry["path"]), entry["outside"]), config, run, session)


def report(entry: dict, record, out: Path, channel) -> None:
    """Write the record and its page, and hand the record to the parent."""
    from autograder import pipeline

    with stopwatch.stage("report"):
        pipeline.write(record, out, entry["name"])
    channel.write(f"done\t{entry['name']}\t{json.dumps(record.to_json(), ensure_ascii=False)}\n")


class _Parent:
    """The lines the pool writes on stdin: the spec (a sibling has it from its forker), then its answers and its
    word on the reference (_Pool)."""

    def __init__(self) -> None:
        self.fd, self.buffer = 0, b""

    def line(self) -> str:
        """The next line ("" once the parent has closed the pipe)."""
        while b"\n" not in self.buffer:
            chunk = os.read(self.fd, 1 << 16)
            if not chunk:
                break
            self.buffer += chunk
        line, _, self.buffer = self.buffer.partition(b"\n")
        return line.decode("utf-8")


class _Pool:
    """The submissions the pool hands this judge, one each time it asks ("ready"), and the pool's word on the
    reference ("go" or "stop"), which may come between them."""

    def __init__(self, parent: _Parent, channel, waiting: bool) -> None:
        self.parent, self.channel, self.waiting, self.stopped = parent, channel, waiting, False

    def next(self) -> dict | None:
        """The next submission to grade; None when there is none (or the pool said "stop", or is gone)."""
        self.channel.write("ready\t\n")
        while not self.stopped:
            word, _, rest = self.parent.line().partition("\t")
            if word == "grade":
                return json.loads(rest)
            if not self._verdict(word):
                return None  # "end", or the pool closed the pipe
        return None

    def verdict(self) -> bool:
        """Whether the reference passed: "go" (at once if said already); False on "stop" or a closed pipe."""
        while self.waiting and not self.stopped:
            if not self._verdict(self.parent.line()):
                return False
        return not self.stopped

    def _verdict(self, word: str) -> bool:
        """Take "go" or "stop"; False for any other word."""
        if word == "go":
            self.waiting = False
        elif word == "stop":
            self.stopped = True
        return word in ("go", "stop")


if __name__ == "__main__":
    from autograder.exiting import exit_quickly

    main()
    exit_quickly(0)  # its records are written and said: the interpreter's teardown would only hold up the batch
