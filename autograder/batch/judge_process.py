"""One judge process of `autograder grade`: grades its share of the batch, one record per submission, each written
and handed back to the pool (batch/pool.py) on the line that says it is done."""
from __future__ import annotations

import json
import os
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
    spec = json.loads(sys.stdin.readline())
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
        if spec.get("wait") and sys.stdin.readline().strip() != "go":
            channel.close()  # the reference failed under these limits (the pool's word on it): grade nobody
            return
        for entry in spec["entries"]:
            # Announced before the file is even read, so the parent knows whom to blame if this process dies.
            channel.write(f"start\t{entry['name']}\n")
            record = pipeline.grade(File(Path(entry["path"]), entry["outside"]), config, run, session)
            with stopwatch.stage("report"):
                pipeline.write(record, out, entry["name"])
            channel.write(f"done\t{entry['name']}\t{json.dumps(record.to_json(), ensure_ascii=False)}\n")


if __name__ == "__main__":
    from autograder.exiting import exit_quickly

    main()
    exit_quickly(0)  # its records are written and said: the interpreter's teardown would only hold up the batch
