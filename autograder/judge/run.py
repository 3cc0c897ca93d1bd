"""The trusted side: run the pytest checks against submissions and turn outcomes into records."""
from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from autograder.judge.expect import CheckFailure
from autograder.config import Config
from autograder.i18n import t
from autograder.load.submission import Submission, SubmissionError, file_sha256, load_submission
from autograder.report.records import CheckResult, SubmissionResult
from autograder.errors import StudentError
from autograder.judge.subjects import ReferenceSubject, Subject, WorkerSubject

CHECKS = Path(__file__).parent.parent / "checks"


@dataclass
class Job:
    """One submission to grade, as read by the judge (nothing of it has run yet)."""

    path: Path
    lang: str
    submission: Submission | None = None
    error: tuple[str, dict] | None = None
    sha256: str = ""
    subject: Subject | None = None
    """A ready subject (the in-notebook self-check); otherwise a sandboxed worker is started."""
    results: list[CheckResult] = field(default_factory=list)
    started: float = 0.0

    @classmethod
    def read(cls, path: Path, config: Config, lang: str | None = None) -> Job:
        job = cls(path=Path(path), lang=lang or config.lang)
        job.fill(config, lang)
        return job

    def fill(self, config: Config, lang: str | None = None) -> None:
        """Read the file (the batch reads each submission only when its turn comes)."""
        try:
            self.sha256 = file_sha256(self.path)
            self.submission = load_submission(self.path, config.limits.source_bytes)
            self.lang = lang or self.submission.lang
        except SubmissionError as exc:
            self.error = (exc.key, exc.params)
        except OSError as exc:
            self.error = ("load.unreadable", {"error": exc.strerror or str(exc)})
        except Exception as exc:  # noqa: BLE001 - a file no reader expected must not stop the batch
            self.error = ("load.unreadable", {"error": f"{type(exc).__name__}: {exc}"[:300]})


class _Unloadable(Subject):
    """Stands in for a submission that could not be read: every request fails with the reason."""

    def __init__(self, key: str, params: dict):
        super().__init__()
        self.key, self.params = key, params

    def _send(self, message: dict, what: str, key: str) -> dict:
        raise StudentError(self.key, **self.params)


class Note:
    """Lets a check add an explanation to its result, e.g. how it isolated a bug elsewhere."""

    def __init__(self) -> None:
        self.keys: list[str] = []

    def __call__(self, key: str) -> None:
        self.keys.append(key)


class GradingPlugin:
    """Parametrises every check over the jobs and records one CheckResult per (job, check)."""

    def __init__(self, jobs: list[Job], config: Config, isolation: str, parts: set[str] | None,
                 visible_only: bool, on_result: Callable[[SubmissionResult], None],
                 on_start: Callable[[Job], None] | None = None, pictures: bool = True):
        self.jobs, self.config, self.isolation, self.pictures = jobs, config, isolation, pictures
        self.parts, self.visible_only, self.on_result = parts, visible_only, on_result
        self.on_start = on_start
        self._reference: ReferenceSubject | None = None
        self._reference_chunks: list[dict] = []
        self._explainer = None  # an autograder.explain.diagnose.Explainer, made when first needed

    def pytest_configure(self, config: pytest.Config) -> None:
        config.addinivalue_line("markers", "check(names, points, hidden): a graded check")

    def pytest_generate_tests(self, metafunc: pytest.Metafunc) -> None:
        if "sub" in metafunc.fixturenames:
            metafunc.parametrize("sub", self.jobs, indirect=True, scope="session",
                                 ids=[f"job{i}" for i in range(len(self.jobs))])

    def pytest_collection_modifyitems(self, config: pytest.Config, items: list[pytest.Item]) -> None:
        keep = []
        for item in items:
            marker = item.get_closest_marker("check")
            if marker is None:
                raise RuntimeError(f"{item.nodeid} is not marked with @check")
            if self.visible_only and marker.kwargs["hidden"]:
                continue
            if self.parts is not None and marker.kwargs["names"][0] not in self.parts:
                continue
            keep.append(item)
        items[:] = keep

    @pytest.fixture(scope="session")
    def sub(self, request: pytest.FixtureRequest) -> Iterator[Subject]:
        job: Job = request.param
        job.started = time.monotonic()
        if self.on_start is not None:
            self.on_start(job)
        if job.subject is not None:
            subject = job.subject
        elif job.error is not None:
            subject = _Unloadable(*job.error)
        else:
            chunks = [{"origin": c.origin, "code": c.code} for c in job.submission.chunks]
            subject = WorkerSubject(chunks, self.config.limits, self.isolation)
        yield subject
        diagnoses, attention = self._explain(job, subject)
        if isinstance(subject, WorkerSubject):
            subject.close()
        record = self._record(job, subject)
        record.diagnoses, record.attention = diagnoses, attention
        record.output = "\n".join(filter(None, [record.output, *(d["message"] for d in diagnoses)]))
        self.on_result(record)
        job.submission = job.subject = None  # a batch keeps every job: keep none of its code

    @pytest.fixture
    def ref(self, request: pytest.FixtureRequest) -> Subject:
        reference = self._reference_subject()
        reference.begin(request.node.originalname)
        return reference

    def _reference_subject(self) -> ReferenceSubject:
        if self._reference is None:
            reference = load_submission(self.config.reference_notebook)
            self._reference_chunks = [{"origin": c.origin, "code": c.code} for c in reference.chunks]
            self._reference = ReferenceSubject.from_chunks(self._reference_chunks, "reference")
        return self._reference

    def _explain(self, job: Job, subject: Subject) -> tuple[list[dict], dict]:
        """Diagnoses of the failed parts and the attention pictures' data (sandboxed submissions only)."""
        if not isinstance(subject, WorkerSubject) or job.error is not None:
            return [], {}
        if not self.pictures and all(r.status == "passed" for r in job.results):
            return [], {}  # nothing to diagnose, no page to draw on
        try:
            if self._explainer is None:
                reference = self._reference_subject()
                # imported only where a reference exists: the student bundle ships neither
                from autograder.explain.explainer import Explainer

                self._explainer = Explainer(reference, self._reference_chunks, self.config.limits.diagnosis_seconds)
            return self._explainer.explain(subject, job.results, job.lang, self.pictures)
        except (OSError, SubmissionError, ImportError):  # no reference (or no diagnosis) here: the student bundle
            return [], {}
        except Exception as exc:  # noqa: BLE001 - extra feedback must never cost a submission its record
            print(f"autograder: no diagnosis for {job.path}: {type(exc).__name__}: {exc}", file=sys.stderr)
            return [], {}

    @pytest.fixture
    def note(self) -> Note:
        return Note()

    @pytest.fixture(autouse=True)
    def _budget(self, request: pytest.FixtureRequest, sub: Subject) -> None:
        job: Job = request.node.callspec.params["sub"]
        if time.monotonic() - job.started > self.config.limits.submission_seconds:
            raise StudentError("student.submission_timeout", seconds=self.config.limits.submission_seconds)

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_makereport(self, item: pytest.Item, call: pytest.CallInfo) -> pytest.TestReport:
        """Record the check's result. Replaces pytest's own report, which formats a traceback for
        every failed check (about 2 ms each) that nobody reads."""
        failed = call.excinfo is not None
        if call.when == "call" or (call.when == "setup" and failed):
            job: Job = item.callspec.params["sub"]
            note = item.funcargs.get("note")
            job.results.append(self._check_result(item, job.lang, call.excinfo, note))
        return pytest.TestReport(item.nodeid, item.location, {}, "failed" if failed else "passed",
                                 call.excinfo.exconly() if failed else None, call.when,
                                 duration=call.duration, start=call.start, stop=call.stop)

    def _check_result(self, item: pytest.Item, lang: str, excinfo, note: Note | None) -> CheckResult:
        marker = item.get_closest_marker("check").kwargs
        check_id = item.originalname
        key, message = "", ""
        if excinfo is not None:
            error = excinfo.value
            if isinstance(error, (CheckFailure, StudentError)):
                key, params = error.key, error.params
            else:
                key, params = "fail.unexpected", {"type": type(error).__name__, "message": str(error)[:300]}
            message = t(key, lang, **params)
        notes = [t(k, lang) for k in (note.keys if note else [])]
        return CheckResult(
            name=t(f"check.{check_id}", lang), check_id=check_id, part=marker["names"][0],
            score=0.0 if excinfo is not None else float(marker["points"]), max_score=float(marker["points"]),
            status="failed" if excinfo is not None else "passed", output="\n".join([message, *notes]).strip(),
            tags=list(marker["names"]), visibility="hidden" if marker["hidden"] else "visible", message_key=key,
        )

    def _record(self, job: Job, subject: Subject) -> SubmissionResult:
        problems = list(job.submission.problems) if job.submission else []
        stderr = ""
        quiet = []
        if isinstance(subject, WorkerSubject):
            for failure in subject.load_failures:
                demo = job.submission is not None and job.submission.needs_demo_code(failure)
                (quiet if demo else problems).append(("load.failed_statement", failure))
            stderr = subject.stderr.decode("utf-8", "replace")
            if subject.stderr_dropped:
                stderr += "\n" + t("student.output_truncated", job.lang, dropped=subject.stderr_dropped)
        output = "\n".join(t(key, job.lang, **params) for key, params in problems)
        return SubmissionResult(
            submission=str(job.path), score=sum(r.score for r in job.results),
            max_score=sum(r.max_score for r in job.results), execution_time=round(time.monotonic() - job.started, 3),
            output=output, tests=job.results, error=t(job.error[0], job.lang, **job.error[1]) if job.error else None,
            isolation=self.isolation if isinstance(subject, WorkerSubject) else "none",
            language=job.lang, sha256=job.sha256, stderr=stderr,
            instructor_notes=[t(key, job.lang, **params) for key, params in quiet],
        )


def run_checks(jobs: list[Job], config: Config, isolation: str, on_result: Callable[[SubmissionResult], None],
               parts: set[str] | None = None, visible_only: bool = False,
               on_start: Callable[[Job], None] | None = None, pictures: bool = True) -> int:
    """Run the checks over `jobs`; `on_result` receives each submission's record as soon as it is done.

    `pictures`: draw the attention maps for a feedback page (not needed for a text checklist).
    """
    plugin = GradingPlugin(jobs, config, isolation, parts, visible_only, on_result, on_start, pictures)
    # Nothing in the judge prints (student output stays in the worker): no capture to set up per check.
    args = [str(CHECKS), "-c", os.devnull, "--rootdir", str(CHECKS), "--assert=plain"]
    for plugin_name in ("capture", "cacheprovider", "terminal", "warnings", "stepwise", "unraisableexception",
                        "threadexception"):
        args += ["-p", f"no:{plugin_name}"]
    return pytest.main(args, plugins=[plugin])


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
