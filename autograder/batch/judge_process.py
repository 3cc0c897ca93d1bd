"""One judge process of `autograder grade`: grades its share of the batch, one record per submission, each written
and handed back to the pool (batch/pool.py) on the line that says it is done."""
from __future__ import annotations

import json
import os
import select
import sys
from pathlib import Path

from autograder import stopwatch
from autograder.assignment import load
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
    if spec["isolation"] not in ("bwrap", "process"):  # resolved by the parent (capability.isolation_for)
        raise SystemExit(f"autograder judge: isolation {spec['isolation']!r} is neither bwrap nor process")
    config = Config(limits=Limits(**spec["limits"]), solutions=Path(spec["solutions"]),
                    assignment=load(Path(spec["assignment"])),
                    cache=Path(spec["cache"]) if spec.get("cache") else None)
    assume(spec.get("probed") or {})  # no probe of its own to wait for before its sandbox starts
    prestart(config.limits, spec["isolation"])  # the slot's sandbox imports torch while this process does
    import torch

    from autograder import pipeline
    from autograder.report.records import save
    from autograder.sources import File

    torch.set_num_threads(1)
    out = Path(spec["out"])
    run = pipeline.Run(spec["isolation"], spec["lang"])
    stopwatch.end("judge start (imports)", start)
    with pipeline.Session(config, run, many=True) as session:  # one pytest session for the judge's share
        preflight = spec.get("preflight")  # the reference solution, graded first (batch/preflight.py)
        if preflight:
            save(pipeline.grade(File(config.reference_notebook), config, run, session), Path(preflight))
            channel.write("preflight\t\n")
        entries, held = list(spec["entries"]), []
        if spec.get("wait"):
            # Until the reference's verdict comes, grade ahead and keep the records: nothing is written or said
            # done before "go" (refused, this process is killed). Each one is announced, so a death is blamed.
            while entries and not parent.said():
                held.append((entries[0], grade(entries.pop(0), config, run, session, channel)))
            if parent.line().strip() != "go":
                channel.close()  # the reference failed under these limits (the pool's word on it): grade nobody
                return
        for entry, record in held:
            report(entry, record, out, channel)
        for entry in entries:
            report(entry, grade(entry, config, run, session, channel), out, channel)


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
    """The lines the parent writes on stdin (the spec, then its word on the reference), read without a buffer of
    Python's that select() could not see into."""

    def __init__(self) -> None:
        self.fd, self.buffer = sys.stdin.fileno(), b""

    def line(self) -> str:
        """The next line ("" once the parent has closed the pipe)."""
        while b"\n" not in self.buffer:
            chunk = os.read(self.fd, 1 << 16)
            if not chunk:
                break
            self.buffer += chunk
        line, _, self.buffer = self.buffer.partition(b"\n")
        return line.decode("utf-8")

    def said(self) -> bool:
        """A line (or the end of the pipe) is there to read."""
        return b"\n" in self.buffer or bool(select.select([self.fd], [], [], 0)[0])


if __name__ == "__main__":
    from autograder.exiting import exit_quickly

    main()
    exit_quickly(0)  # its records are written and said: the interpreter's teardown would only hold up the batch
