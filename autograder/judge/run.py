"""What the judge knows of a submission besides its subject: the submission as it was read (Job), its checks'
results charged for what went over its budget, and its record built from them; and the table of checks."""
from __future__ import annotations

import os
import time
import traceback
from dataclasses import dataclass, replace
from pathlib import Path

from autograder.i18n import t
from autograder.judge.subjects import Subject
from autograder.judge.worker_subject import WorkerSubject
from autograder.load.submission import Submission
from autograder.record import CheckResult, SubmissionResult, checked_by


@dataclass
class Job:
    """One submission as it was read (nothing of it has run yet); of the kernel's objects, a name and a language."""

    path: Path
    lang: str
    submission: Submission | None = None
    error: tuple[str, dict] | None = None
    """Why the file could not be read: (message key, params)."""
    sha256: str = ""


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
                 started: float, checks: Path) -> SubmissionResult:
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
        internal_errors=internal, **checked_by(checks),
    )


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


def module_name(path: Path) -> str:
    """The dotted name pytest imports a check module under: its packages (folders with __init__.py) up to the
    first folder without one, which goes on sys.path (pytest's "prepend" import mode)."""
    import sys

    parts, folder = [path.stem], path.parent
    while (folder / "__init__.py").is_file():
        parts.insert(0, folder.name)
        folder = folder.parent
    if str(folder) not in sys.path:
        sys.path.insert(0, str(folder))
    return ".".join(parts)


def check_table(checks: Path) -> list[CheckInfo]:
    """Every check in the folder `checks` (Assignment.checks), in file order."""
    import importlib
    import inspect

    table = []
    for path in sorted(checks.glob("test_*.py")):
        module = importlib.import_module(module_name(path))
        functions = [f for name, f in inspect.getmembers(module, inspect.isfunction)
                     if name.startswith("test_") and f.__module__ == module.__name__]
        for function in sorted(functions, key=lambda f: f.__code__.co_firstlineno):
            marks = [m for m in getattr(function, "pytestmark", []) if m.name == "check"]
            kwargs = marks[0].kwargs if marks else {"names": (), "points": 0, "hidden": False}
            table.append(CheckInfo(function.__name__, path.stem, tuple(kwargs["names"]), kwargs["points"],
                                   kwargs["hidden"], tuple(inspect.signature(function).parameters),
                                   bool(kwargs.get("structure"))))
    return table
