"""One judge process of `autograder grade`: grades its share of the batch, one record per submission."""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from autograder import stopwatch
from autograder.config import Config, Limits
from autograder.sandbox.zygote_client import prestart


def main() -> None:
    start = stopwatch.begin("judge start (imports)")
    # Progress goes to the parent on a copy of fd 1; anything else printed goes to stderr.
    channel = os.fdopen(os.dup(sys.stdout.fileno()), "w", buffering=1)
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    spec = json.loads(sys.stdin.readline())
    config = Config(limits=Limits(**spec["limits"]), solutions=Path(spec["solutions"]))
    prestart(config.limits, spec["isolation"])  # the slot's sandbox imports torch while this process does
    import torch

    from autograder.load.discover import Entry
    from autograder.pipeline import grade_entries
    from autograder.record import SubmissionResult
    from autograder.report.feedback_page import write_feedback
    from autograder.report.records import save

    torch.set_num_threads(1)
    out = Path(spec["out"])

    stopwatch.end("judge start (imports)", start)
    entries = [Entry(Path(e["path"]), e["name"], e["outside"]) for e in spec["entries"]]
    preflight = spec.get("preflight")  # the reference solution, graded first (batch/preflight.py)
    reference = Entry(config.reference_notebook, "reference") if preflight else None
    wait = bool(spec.get("wait"))

    def started(entry: Entry) -> None:
        nonlocal wait
        if entry is reference:
            return
        if wait:  # the pool's word on the reference's record, before the first submission is read
            wait = False
            if sys.stdin.readline().strip() != "go":  # it failed under these limits: grade nobody
                channel.close()
                os._exit(0)
        # Announced before the file is even read, so the parent knows whom to blame if this process dies.
        channel.write(f"start\t{entry.name}\n")

    def record(entry: Entry, result: SubmissionResult) -> None:
        if entry is reference:
            save(result, Path(preflight))
            channel.write("preflight\t\n")
            return
        with stopwatch.stage("report"):
            save(result, out / f"{entry.name}.json")
            write_feedback(result, out / f"{entry.name}.html")
        channel.write(f"done\t{entry.name}\n")

    grade_entries([reference, *entries] if reference else entries, config, spec["isolation"], spec["lang"],
                  on_start=started, on_record=record)


if __name__ == "__main__":
    main()
