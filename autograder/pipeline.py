"""One submission through the stages, in order: load (read the definitions; nothing runs) -> sandbox (a worker
runs them) -> judge (the checks drive them) -> explain (the misconceptions behind failed parts) -> record.

The batch's judge processes, Gradescope, PrairieLearn and api.py call it; the judge itself never imports explain/.
"""
from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

from autograder.config import Config
from autograder.load.discover import Entry
from autograder.record import SubmissionResult


def explainer(self_check: bool = False):
    """The judge's step 4: explain.explainer.Explainer (the diagnosis, with the reference) where explain/ exists,
    else, and always for the self-check, measure.explainer.MeasuredExplainer (what the student's classes show on
    their own: the self-check says the same in the student bundle as here)."""
    if not self_check:
        try:
            from autograder.explain.explainer import Explainer
        except ImportError:
            pass
        else:
            return Explainer
    from autograder.measure.explainer import MeasuredExplainer
    return MeasuredExplainer


def load(entry: Entry, config: Config, lang: str | None = None):
    """Step 1: read `entry` into a judge.run.Job (a file that cannot be read becomes one that says why).

    Args:
        lang: the feedback language; None: the notebook's own.
    """
    from autograder import stopwatch
    from autograder.judge.run import Job
    from autograder.load.submission import read_file

    if entry.outside:  # never read what the link points to
        return Job(entry.path, lang or config.lang, error=("load.symlink_outside", {}))
    with stopwatch.stage("load"):
        sha256, submission, error = read_file(entry.path, config.limits.source_bytes)
    return Job(entry.path, lang or (submission.lang if submission else config.lang), submission, error, sha256)


def grade_entries(entries: list[Entry], config: Config, isolation: str, lang: str | None = None,
                  on_start: Callable[[Entry], None] | None = None,
                  on_record: Callable[[Entry, SubmissionResult], None] | None = None,
                  visible_only: bool = False, parts: set[str] | None = None,
                  pictures: bool = True) -> list[SubmissionResult]:
    """The pipeline for each of `entries` in turn, in one pytest session (what one judge process does).

    Args:
        isolation: the sandbox for the workers, as `sandbox.capability.isolation_for` chose it.
        on_start: called when an entry's turn comes, before its file is read.
        on_record: called with each record as soon as it is built (the batch writes it then).
        visible_only, parts: the self-check's selection of checks.
        pictures: compute the attention pictures' data (for a feedback page).

    Returns:
        The records, in the order of `entries`.
    """
    from autograder.judge.run import RunOptions, run_checks

    records: list[SubmissionResult] = []

    def jobs() -> Iterator:
        for entry in entries:
            if on_start is not None:
                on_start(entry)  # before reading: a judge that dies on this file knows whom to blame
            yield load(entry, config, lang)

    def recorded(record: SubmissionResult) -> None:
        records.append(record)
        if on_record is not None:
            on_record(entries[len(records) - 1], record)

    options = RunOptions(isolation, parts, visible_only, pictures, explainer(self_check=visible_only))
    run_checks(jobs(), len(entries), config, options, recorded)
    return records


def grade_file(path: Path, config: Config | None = None, lang: str | None = None,
               pictures: bool = True) -> SubmissionResult:
    """Grade one file to its record, as `autograder grade` would, in this process (no pool of judges).

    Args:
        lang: the feedback language; None: the notebook's own.
        pictures: compute the attention pictures' data (for a feedback page).

    Raises:
        RuntimeError: the sandbox `config.sandbox` asks for is not available here.
    """
    from autograder.sandbox.capability import isolation_for
    from autograder.sandbox.zygote_client import prestart

    config = config or Config()
    isolation = isolation_for(config.sandbox)
    prestart(config.limits, isolation)  # the sandbox imports torch while this process does
    path = Path(path)
    [record] = grade_entries([Entry(path, path.name)], config, isolation, lang, pictures=pictures)
    return record
