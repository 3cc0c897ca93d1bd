"""The judge: run the graded checks on submissions, one pytest session for many, and build their records.

Per submission: its subject is opened (a sandboxed worker, unless the caller brings one), the checks
run (pytest_plugin.py), the failed parts are explained while the worker still lives (only where the
reference exists: the student bundle has no explain/), the worker closes and the record is built.
"""
from __future__ import annotations

import os
import sys
import time
import traceback
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import pytest

from autograder import stopwatch
from autograder.config import Config, probe_seed
from autograder.i18n import t
from autograder.judge import pytest_plugin
from autograder.judge.pytest_plugin import GradingPlugin
from autograder.judge.reference import ReferenceSubject, load_reference
from autograder.judge.subjects import Subject, Unloadable
from autograder.judge.worker_subject import WorkerSubject
from autograder.load.submission import Submission, SubmissionError
from autograder.record import CheckResult, SubmissionResult

CHECKS = Path(__file__).parent.parent / "checks"


@dataclass
class Job:
    """One submission as the judge receives it: already read (nothing of it has run yet)."""

    path: Path
    lang: str
    submission: Submission | None = None
    error: tuple[str, dict] | None = None
    """Why the file could not be read: (message key, params)."""
    sha256: str = ""
    subject: Subject | None = None
    """A ready subject (the in-notebook self-check); otherwise a sandboxed worker is started."""


@dataclass(frozen=True)
class RunOptions:
    """What to run and how: one set for a whole session."""

    isolation: str
    """The sandbox the workers get ("bwrap", "process"); "none" for a subject the caller brings."""
    parts: set[str] | None = None
    """Only the checks of these graded names (None: all)."""
    visible_only: bool = False
    """Only the checks students also run (the self-check)."""
    pictures: bool = True
    """Draw the attention maps for a feedback page (not needed for a text checklist)."""
    explainer: Callable | None = None
    """explain.explainer.Explainer, passed in by the pipeline (the judge never imports explain/); None: no
    diagnoses or pictures (the student bundle, which lacks explain/)."""


class _Session:
    """The submissions of one pytest session, each from its subject's opening to its record."""

    def __init__(self, jobs: Iterator[Job], config: Config, options: RunOptions,
                 on_record: Callable[[SubmissionResult], None]):
        self.jobs, self.config, self.options, self.on_record = jobs, config, options, on_record
        self.job: Job | None = None
        self.subject: Subject | None = None
        self._reference: tuple[ReferenceSubject, list[dict]] | None = None
        self._explainer = None  # an autograder.explain.diagnose.Explainer, made when first needed
        self.started = stopwatch.begin("pytest start and collection")
        self._stage = "pytest start and collection"

    def reference(self) -> ReferenceSubject:
        if self._reference is None:
            self._reference = load_reference(self.config.reference_notebook)
        return self._reference[0]

    def open(self) -> tuple[Subject, str]:
        """The next submission's subject: the caller's, one that says why the file could not be read, or a worker."""
        stopwatch.end(self._stage, self.started)
        job = self.job = next(self.jobs)
        self._stage, self.started = "checks", stopwatch.begin("checks")
        if job.subject is not None:
            self.subject = job.subject
        elif job.error is not None:
            self.subject = Unloadable(*job.error)
        else:
            chunks = job.submission.chunk_dicts()
            self.subject = WorkerSubject(chunks, self.config.limits, self.options.isolation)
            self.subject.probe_seed = probe_seed(self.config.solutions, "\n".join(c["code"] for c in chunks))
            self.subject.source = "file" if job.submission.kind == "py" else "notebook"
        return self.subject, job.lang

    def finished(self, results: list[CheckResult], started: float) -> None:
        job, subject = self.job, self.subject
        stopwatch.end(self._stage, self.started)
        self._stage, self.started = "between submissions", stopwatch.begin("between submissions")
        subject.begin_part(None)
        results = charge(results, subject.charged, job.lang)
        internal: list[str] = []
        with stopwatch.stage("explain"):
            diagnoses, attention = self._explain(job, subject, results, internal)
        if isinstance(subject, WorkerSubject):
            with stopwatch.stage("sandbox end"):
                subject.close()
        record = build_record(job, subject, results, self.options.isolation, started)
        record.diagnoses, record.attention = diagnoses, attention
        record.internal_errors += internal
        record.output = "\n".join(filter(None, [record.output, *(d["message"] for d in diagnoses)]))
        self.job = self.subject = None  # keep none of its code
        self.on_record(record)

    def _explain(self, job: Job, subject: Subject, results: list[CheckResult],
                 internal: list[str]) -> tuple[list[dict], dict]:
        """Diagnoses of the failed parts and the attention pictures' data (sandboxed submissions only); an error
        of the kit's own while finding them is appended to `internal`."""
        explainer = self.options.explainer
        needs_reference = getattr(explainer, "needs_reference", True)
        if job.error is not None or (not isinstance(subject, WorkerSubject) and needs_reference):
            return [], {}  # the self-check's measurements run on the kernel's own definitions too
        if not self.options.pictures and all(r.status == "passed" for r in results):
            return [], {}  # nothing to diagnose, no page to draw on
        if explainer is None:
            return [], {}
        try:
            if self._explainer is None:
                reference, chunks = (self.reference(), self._reference[1]) if needs_reference else (None, None)
                self._explainer = explainer(reference, chunks, self.config.limits.diagnosis_seconds)
            return self._explainer.explain(subject, results, job.lang, self.options.pictures)
        except (OSError, SubmissionError):  # no reference here (the student bundle)
            return [], {}
        except Exception as exc:  # noqa: BLE001 - extra feedback must never cost a submission its record
            print(f"autograder: no diagnosis for {job.path}: {type(exc).__name__}: {exc}", file=sys.stderr)
            internal.append(t("grader.internal_diagnosis", job.lang, error=describe_defect(exc)))
            return [], {}


def describe_defect(exc: BaseException) -> str:
    """An exception of the kit's own code, for a bug report: its type, message and the kit's line that raised it."""
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if f"{os.sep}autograder{os.sep}" in f.filename]
    where = ""
    if frames:
        path = frames[-1].filename
        where = f" ({path[path.rindex(f'{os.sep}autograder{os.sep}') + 1:]}:{frames[-1].lineno})"
    return f"{type(exc).__name__}: {str(exc)[:300]}{where}"


def charge(results: list[CheckResult], charged: dict[str, tuple[str, dict]], lang: str) -> list[CheckResult]:
    """Every check of a part whose code went over the submission's budget fails with that reason, the checks
    before the one that met it too: which check that is depends on timing, the part's grade must not."""
    return [result if result.part not in charged else
            replace(result, score=0.0, status="failed", output=t(charged[result.part][0], lang,
                                                                   **charged[result.part][1]),
                    message_key=charged[result.part][0])
            for result in results]


def build_record(job: Job, subject: Subject, results: list[CheckResult], isolation: str,
                 started: float) -> SubmissionResult:
    """The submission's record: its checks' results, what went wrong while loading, its worker's output."""
    problems = list(job.submission.problems) if job.submission else []
    stderr = ""
    if isinstance(subject, WorkerSubject):
        problems += [("load.failed_statement", failure) for failure in subject.load_failures]
        stderr = subject.stderr.decode("utf-8", "replace")
        if subject.stderr_dropped:
            stderr += "\n" + t("student.output_truncated", job.lang, dropped=subject.stderr_dropped)
    output = "\n".join(t(key, job.lang, **params) for key, params in problems)
    # A check that raised something other than its own failures met a case it was not written for.
    internal = [t("grader.internal_check", job.lang, check=r.check_id, error=r.output)
                for r in results if r.message_key == "fail.unexpected"]
    return SubmissionResult(
        submission=str(job.path), score=sum(r.score for r in results),
        max_score=sum(r.max_score for r in results), execution_time=round(time.monotonic() - started, 3),
        output=output, tests=results, error=t(job.error[0], job.lang, **job.error[1]) if job.error else None,
        isolation=isolation if isinstance(subject, WorkerSubject) else "none",
        language=job.lang, sha256=job.sha256, stderr=stderr,
        internal_errors=internal,
    )


def run_checks(jobs: Iterable[Job], count: int, config: Config, options: RunOptions,
               on_record: Callable[[SubmissionResult], None]) -> int:
    """Run the checks on `count` submissions, taken from `jobs` one at a time when their turn comes
    (so a lazy iterable reads each file only then); `on_record` receives each record as soon as it is built.
    """
    session = _Session(iter(jobs), config, options, on_record)
    plugin = GradingPlugin(count, session.open, session.finished, session.reference,
                           config.limits.submission_seconds, options.parts, options.visible_only)
    # Nothing in the judge prints (student output stays in the worker): no capture to set up per check.
    # Only the kit's own plugins: another package's pytest plugin (pytest-benchmark, ...) must not run inside a
    # student's kernel, where nbgrader scores a cell 0 for a word on stderr.
    args = [str(CHECKS), "-c", os.devnull, "--rootdir", str(CHECKS), "--assert=plain", "--disable-plugin-autoload"]
    for plugin_name in ("capture", "cacheprovider", "terminal", "warnings", "stepwise", "unraisableexception",
                        "threadexception"):
        args += ["-p", f"no:{plugin_name}"]
    try:
        return pytest.main(args, plugins=[plugin, pytest_plugin])
    finally:
        stopwatch.end(session._stage, session.started)


@dataclass(frozen=True)
class CheckInfo:
    """A check as declared in its file, without running it."""

    check_id: str
    module: str
    names: tuple[str, ...]
    points: float
    hidden: bool
    fixtures: tuple[str, ...]
    structure: bool = False
    """Judges how the module is built, not what it computes (no behaviour precondition)."""


def check_table() -> list[CheckInfo]:
    """Every check in autograder/checks, in file order."""
    import importlib
    import inspect

    table = []
    for path in sorted(CHECKS.glob("test_*.py")):
        module = importlib.import_module(f"autograder.checks.{path.stem}")
        functions = [f for name, f in inspect.getmembers(module, inspect.isfunction)
                     if name.startswith("test_") and f.__module__ == module.__name__]
        for function in sorted(functions, key=lambda f: f.__code__.co_firstlineno):
            marks = [m for m in getattr(function, "pytestmark", []) if m.name == "check"]
            kwargs = marks[0].kwargs if marks else {"names": (), "points": 0, "hidden": False}
            table.append(CheckInfo(function.__name__, path.stem, tuple(kwargs["names"]), kwargs["points"],
                                   kwargs["hidden"], tuple(inspect.signature(function).parameters),
                                   bool(kwargs.get("structure"))))
    return table
