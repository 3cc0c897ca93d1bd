"""One judge process of `autograder grade`: grades its share of the batch, one record per submission."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import torch

from autograder.config import Config, Limits
from autograder.judge import Job, run_checks
from autograder.results import SubmissionResult, save


def main() -> None:
    torch.set_num_threads(1)
    spec = json.load(sys.stdin)
    config = Config(limits=Limits(**spec["limits"]), solutions=Path(spec["solutions"]))
    out = Path(spec["out"])
    jobs, names = [], {}
    for entry in spec["entries"]:
        if entry["outside"]:  # never read what the link points to
            job = Job(Path(entry["path"]), spec["lang"] or config.lang, error=("load.symlink_outside", {}))
        else:
            job = Job.read(Path(entry["path"]), config, spec["lang"])
        jobs.append(job)
        names[str(job.path)] = entry["name"]

    def record(result: SubmissionResult) -> None:
        save(result, out / f"{names[result.submission]}.json")
        print(names[result.submission], flush=True)

    run_checks(jobs, config, spec["isolation"], record)


if __name__ == "__main__":
    main()
