"""One judge process of `autograder grade`: grades its share of the batch, one record per submission."""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from autograder.cli import skip_slow_imports
from autograder.config import Config, Limits
from autograder.sandbox.zygote_client import prestart


def main() -> None:
    # Progress goes to the parent on a copy of fd 1; anything else printed goes to stderr.
    channel = os.fdopen(os.dup(sys.stdout.fileno()), "w", buffering=1)
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    spec = json.load(sys.stdin)
    config = Config(limits=Limits(**spec["limits"]), solutions=Path(spec["solutions"]))
    prestart(config.limits, spec["isolation"])  # the slot's sandbox imports torch while this process does
    skip_slow_imports()
    import torch

    from autograder.report.feedback_page import write_feedback
    from autograder.judge.run import Job, run_checks
    from autograder.report.records import SubmissionResult, save

    torch.set_num_threads(1)
    out = Path(spec["out"])
    jobs, names = [], {}
    for entry in spec["entries"]:
        job = Job(Path(entry["path"]), spec["lang"] or config.lang)
        if entry["outside"]:  # never read what the link points to
            job.error = ("load.symlink_outside", {})
        jobs.append(job)
        names[id(job)] = entry["name"]
    current: list[str] = []

    def started(job: Job) -> None:
        # Announced before the file is even read, so the parent knows whom to blame if this process dies.
        current[:] = [names[id(job)]]
        channel.write(f"start\t{current[0]}\n")
        if job.error is None:
            job.fill(config, spec["lang"])

    def record(result: SubmissionResult) -> None:
        save(result, out / f"{current[0]}.json")
        write_feedback(result, out / f"{current[0]}.html")
        channel.write(f"done\t{current[0]}\n")

    run_checks(jobs, config, spec["isolation"], record, on_start=started)

if __name__ == "__main__":
    main()
