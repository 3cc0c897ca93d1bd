"""The pytest plugin: every graded check runs on each subject handed to it in turn, one CheckResult per check."""
from __future__ import annotations

import time
from collections.abc import Callable, Generator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace

import pytest

from autograder.errors import StudentError
from autograder.i18n import t
from autograder.judge.expect import CheckFailure
from autograder.judge.gate import recheck
from autograder.judge.reference import ReferenceSubject
from autograder.judge.subjects import Subject
from autograder.record import CheckResult


class Note:
    """Lets a check add an explanation to its result, e.g. how it isolated a bug elsewhere."""

    def __init__(self) -> None:
        self.keys: list[str] = []

    def __call__(self, key: str) -> None:
        self.keys.append(key)


@dataclass
class _Current:
    """The subject the checks are running on."""

    subject: Subject
    lang: str
    started: float
    results: list[CheckResult] = field(default_factory=list)


_PLUGIN = pytest.StashKey["GradingPlugin"]()
"""The session's GradingPlugin, for the fixtures below (pytest 10 takes no fixtures defined on an instance)."""


class GradingPlugin:
    """Runs every collected check on each subject handed to it in turn (one pytest session for them all).

    `next_subject()` returns the next (subject, feedback language), already opened by the caller, or None when
    there are no more; `deliver(results)` receives its CheckResult list when its last check has run. The
    plugin opens nothing and writes nothing: the caller (judge/session.py) hands subjects in and takes
    results out.
    """

    def __init__(self, next_subject: Callable[[], tuple[Subject, str] | None],
                 deliver: Callable[[list[CheckResult]], None], reference: Callable[[], ReferenceSubject],
                 submission_seconds: float, parts: set[str] | None = None, visible_only: bool = False):
        self.next_subject, self.deliver, self.reference = next_subject, deliver, reference
        self.submission_seconds, self.parts, self.visible_only = submission_seconds, parts, visible_only
        self.current: _Current | None = None

    def pytest_configure(self, config: pytest.Config) -> None:
        config.addinivalue_line("markers", "check(names, points, hidden): a graded check")
        config.stash[_PLUGIN] = self

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

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtestloop(self, session: pytest.Session) -> bool:
        """All checks on one subject, then the next: the checks are collected once, and each subject's are torn
        down to the last fixture before the next subject's begin."""
        if session.testsfailed and not session.config.option.continue_on_collection_errors:
            raise session.Interrupted(f"{session.testsfailed} error(s) while collecting the checks")
        items = session.items
        for subject, lang in iter(self.next_subject, None):
            self.current = _Current(subject, lang, time.monotonic())
            for i, item in enumerate(items):
                item.config.hook.pytest_runtest_protocol(item=item, nextitem=items[i + 1] if i + 1 < len(items)
                                                         else None)
            results = self._revoked(items, self.current)
            self.current = None
            self.deliver(results)
        return True

    def _revoked(self, items: list[pytest.Item], current: _Current) -> list[CheckResult]:
        """The results, with every behaviour check of a class that was not attention every time it ran taken back
        (judge/gate.py, recheck): what it earned while it was attention proves nothing of what it is."""
        if time.monotonic() - current.started > self.submission_seconds:
            return current.results  # out of time: its remaining checks failed already
        markers = [item.get_closest_marker("check").kwargs for item in items]
        behaviour = {item.originalname for item, m in zip(items, markers) if not m.get("structure")}
        changed = recheck(current.subject, list(dict.fromkeys(m["names"][0] for m in markers)))
        return [replace(r, score=0.0, status="failed", message_key="fail.attention_changes",
                        output=t("fail.attention_changes", current.lang, **changed[r.part]))
                if r.part in changed and r.check_id in behaviour else r for r in current.results]

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_setup(self, item: pytest.Item) -> Generator[None, None, None]:
        with self._settling():
            return (yield)

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_call(self, item: pytest.Item) -> Generator[None, None, None]:
        with self._settling():
            return (yield)

    @contextmanager
    def _settling(self) -> Iterator[None]:
        """The subject's deferred requests (Subject.defer) are sent before a check's phase ends, so that a failure
        among them is this check's. A phase that failed sends them too (it had asked for them), but its own failure
        is the one it reports."""
        try:
            yield
        except BaseException:
            if self.current is not None:
                try:
                    self.current.subject.settle()
                except StudentError:
                    pass
            raise
        if self.current is not None:
            self.current.subject.settle()

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_makereport(self, item: pytest.Item, call: pytest.CallInfo) -> pytest.TestReport:
        """Record the check's result. Replaces pytest's own report, which formats a traceback for
        every failed check (about 2 ms each) that nobody reads."""
        failed = call.excinfo is not None
        if call.when == "call" or (call.when == "setup" and failed):
            current = self.current
            if current is None:
                raise RuntimeError(f"{item.nodeid} ran outside a subject's turn")
            current.results.append(_check_result(item, current.lang, call.excinfo, item.funcargs.get("note")))
        return pytest.TestReport(item.nodeid, item.location, {}, "failed" if failed else "passed",
                                 call.excinfo.exconly() if failed else None, call.when,
                                 duration=call.duration, start=call.start, stop=call.stop)


NOT_WRITTEN = {"student.not_implemented", "refused.missing"}
"""Failures that say the class is not there yet (the stub still raises, or the name is not defined)."""


# The fixtures live at module level and read the session's plugin from the config: pytest passes this module to
# pytest.main as a plugin beside the GradingPlugin instance (judge/run.py).

@pytest.fixture
def sub(request: pytest.FixtureRequest) -> Subject:
    """The subject whose turn it is (opened by the caller, which closes it after the results)."""
    return request.config.stash[_PLUGIN].current.subject


@pytest.fixture
def ref(request: pytest.FixtureRequest) -> Subject:
    reference = request.config.stash[_PLUGIN].reference()
    reference.begin(request.node.originalname)
    return reference


@pytest.fixture
def note() -> Note:
    return Note()


@pytest.fixture(autouse=True)
def _budget(request: pytest.FixtureRequest, sub: Subject) -> None:
    plugin = request.config.stash[_PLUGIN]
    part = request.node.get_closest_marker("check").kwargs["names"][0]
    sub.begin_part(part)  # each part has a budget of its own (judge/worker_subject.py)
    if part in sub.charged:  # its code went over the budget in an earlier check: not run again
        key, params = sub.charged[part]
        raise StudentError(key, **params)
    if time.monotonic() - plugin.current.started > plugin.submission_seconds:
        raise StudentError("student.submission_timeout", seconds=plugin.submission_seconds)


def _check_result(item: pytest.Item, lang: str, excinfo: pytest.ExceptionInfo | None, note: Note | None) -> CheckResult:
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
    # a note says how the check ran the class: a class that is not written yet did not run at all
    ran = key not in NOT_WRITTEN
    notes = [t(k, lang) for k in (note.keys if note and ran else [])]
    return CheckResult(
        name=t(f"check.{check_id}", lang), check_id=check_id, part=marker["names"][0],
        score=0.0 if excinfo is not None else float(marker["points"]), max_score=float(marker["points"]),
        status="failed" if excinfo is not None else "passed", output="\n".join([message, *notes]).strip(),
        tags=list(marker["names"]), visibility="hidden" if marker["hidden"] else "visible", message_key=key,
    )
