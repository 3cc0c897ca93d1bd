"""One submission through the stages, in order, as plain calls: ① load (read the definitions; nothing runs) ->
② sandbox (a worker runs them) -> ③ judge (the checks drive them) -> ④ explain (what went wrong) -> ⑤ record.

`grade` is the one grading function; the source of the definitions is its one variable (sources.py: a file,
or the objects in the student's kernel). Every front end calls it: api.grade_file and api.check_file
(`autograder check`), the batch's judge processes (`autograder grade`), Gradescope and PrairieLearn, the
in-notebook check() and nbgrader's grade(). The judge never imports explain/: the explainer is chosen here.
"""
from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from autograder.config import Config
from autograder.i18n import t
from autograder.record import CheckResult, SubmissionResult

if TYPE_CHECKING:  # imported where used: `sandboxed` starts the sandbox's torch import before this process's
    from autograder.assignment import Assignment
    from autograder.judge.run import Job
    from autograder.judge.session import Checks
    from autograder.judge.subjects import Subject
    from autograder.sources import Source


@dataclass(frozen=True)
class Run:
    """What a grading run asks for, the same for each of its submissions."""

    isolation: str
    """The sandbox for the workers, resolved once (`sandboxed`); "none" for the objects in a kernel."""
    lang: str | None = None
    """The feedback language; None: each notebook's own."""
    parts: set[str] | None = None
    """Only the checks of these graded names (None: all)."""
    visible_only: bool = False
    """Only the checks students also run (the self-check)."""
    pictures: bool = True
    """Compute the attention pictures' data (for a feedback page; not needed for a text checklist)."""

    @property
    def self_check(self) -> bool:
        """The student's own check (visible checks, or the kernel's objects): explained by what the classes show on
        their own (measure/), never with the reference solution."""
        return self.visible_only or self.isolation == "none"


def sandboxed(config: Config, **choices) -> Run:
    """A run whose files go to sandboxed workers: `config.sandbox` resolved once, and the sandbox's own import of
    torch started while this process's goes on.

    Raises:
        RuntimeError: the sandbox `config.sandbox` asks for is not available here.
    """
    from autograder.sandbox.capability import isolation_for
    from autograder.sandbox.zygote_client import prestart

    isolation = isolation_for(config.sandbox)
    prestart(config.limits, isolation)
    return Run(isolation, **choices)


class Session:
    """What the submissions of one run share: the checks (one pytest session for them all when `many`), the
    reference solution they compare with, and the explainer."""

    def __init__(self, config: Config, run: Run, many: bool = False):
        from autograder.judge.session import Checks, KeptChecks
        from autograder.sandbox.capability import grader_files_safe

        self.config, self.run = config, run
        kept = config.cache if config.cache is not None and grader_files_safe(run.isolation) else None
        self.checks: Checks = (KeptChecks if many else Checks)(config, run.parts, run.visible_only, kept)
        self.explaining = explainer(config.assignment, run.self_check)
        """The explainer's class (explain.explainer.Explainer or measure.explainer.MeasuredExplainer)."""
        self.needs_reference = getattr(self.explaining, "needs_reference", True)
        self._explainer = None

    def explainer(self):
        """The explainer, made when first needed (the diagnosis needs the reference, loaded once)."""
        if self._explainer is None:
            reference, chunks = self.checks.reference() if self.needs_reference else (None, None)
            self._explainer = self.explaining(reference, chunks, self.config.limits.diagnosis_seconds)
        return self._explainer

    def close(self) -> None:
        self.checks.close()

    def __enter__(self) -> Session:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def grade(source: Source, config: Config, run: Run, session: Session | None = None) -> SubmissionResult:
    """Grade one submission from its source to its record.

    Args:
        session: shared by the submissions of a run (one pytest session, one reference); None: one of its own.
    """
    if session is None:
        with Session(config, run) as own:
            return grade(source, config, run, own)
    from autograder.judge.session import one_torch_thread

    started = time.monotonic()
    job = source.load(config, run.lang)                          # ① load: nothing runs
    with source.open(job, config, run.isolation) as subject, one_torch_thread():  # ② sandbox: a worker runs them
        results = session.checks.run(subject, job.lang)          # ③ judge: the checks drive them
        explained = explain(session, job, subject, results)      # ④ explain, while the worker still lives
    return record(job, subject, results, explained, run, started, config)  # ⑤ record


@dataclass
class Explained:
    """What the explain stage adds to a record."""

    diagnoses: list[dict]
    attention: dict
    internal_errors: list[str]


def explain(session: Session, job: Job, subject: Subject, results: list[CheckResult]) -> Explained:
    """④ Diagnoses of the failed parts and the attention pictures' data; an error of the kit's own while finding
    them is an internal error of the record, never a lost record."""
    from autograder import stopwatch
    from autograder.judge.run import describe_defect
    from autograder.judge.worker_subject import WorkerSubject
    from autograder.load.submission import SubmissionError

    nothing = Explained([], {}, [])
    if job.error is not None or (not isinstance(subject, WorkerSubject) and session.needs_reference):
        return nothing  # the self-check's measurements run on the kernel's own definitions too
    if not session.run.pictures and all(r.status == "passed" for r in results):
        return nothing  # nothing to diagnose, no page to draw on
    with stopwatch.stage("explain"):
        try:
            diagnoses, attention = session.explainer().explain(subject, results, job.lang, session.run.pictures)
        except (OSError, SubmissionError):  # no reference here (the student bundle)
            return nothing
        except Exception as exc:  # noqa: BLE001 - extra feedback must never cost a submission its record
            print(f"autograder: no diagnosis for {job.path}: {type(exc).__name__}: {exc}", file=sys.stderr)
            return Explained([], {}, [t("grader.internal_diagnosis", job.lang, error=describe_defect(exc))])
    return Explained(diagnoses, attention, [])


def record(job: Job, subject: Subject, results: list[CheckResult], explained: Explained, run: Run,
           started: float, config: Config) -> SubmissionResult:
    """⑤ The submission's record: its checks' results, what was read and said, and what the explain stage found."""
    from autograder.judge.run import build_record

    built = build_record(job, subject, results, run.isolation, started, config.assignment.checks)
    if run.visible_only:  # what the hidden checks are worth: the self-check says it is still to come
        built.hidden_points = {part: max(config.assignment.points.get(part, 0.0) - out_of, 0.0)
                               for part, (_, out_of) in built.parts.items()}
    built.diagnoses, built.attention = explained.diagnoses, explained.attention
    built.internal_errors += explained.internal_errors
    built.output = "\n".join(filter(None, [built.output, *(d["message"] for d in explained.diagnoses)]))
    return built


def write(record: SubmissionResult, out: Path, name: str) -> None:
    """The record on disk, as `autograder grade` leaves it: out/<name>.json and its feedback page out/<name>.html."""
    from autograder.report.feedback_page import write_feedback
    from autograder.report.records import save

    save(record, out / f"{name}.json")
    write_feedback(record, out / f"{name}.html")


def explainer(assignment: Assignment, self_check: bool = False):
    """The explain stage's explainer, as the assignment names it: its `explainer` (the diagnosis, with the
    reference) where that module exists, else, and always for the self-check, its `self_explainer` (what the
    student's classes show on their own: the self-check says the same in the student bundle as here); an
    assignment without either gets the plain one (no diagnoses, no pictures)."""
    import importlib

    for spec in ([] if self_check else [assignment.explainer]) + [assignment.self_explainer]:
        module, _, name = spec.partition(":")
        if not module:
            continue
        try:
            return getattr(importlib.import_module(module), name)
        except ModuleNotFoundError as exc:  # the student bundle has no explain/
            if exc.name is None or not module.startswith(exc.name):
                raise
    return PlainExplainer


class PlainExplainer:
    """No mistake knowledge: the checks' own messages say what went wrong."""

    needs_reference = False

    def __init__(self, reference, chunks, seconds: float):
        pass

    def explain(self, subject, results, lang: str, pictures: bool) -> tuple[list[dict], dict]:
        return [], {}
