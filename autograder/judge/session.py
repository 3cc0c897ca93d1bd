"""The judge's stage: the graded checks run on a subject they are handed, and return their results.

`Checks.run(subject, lang)` starts a pytest session for that one subject. `KeptChecks` keeps one session open
on a thread of its own, so that a judge process grading many submissions collects the checks once: each
`run` hands it a subject and waits for the results. Either way, the caller opens and closes the subject; the
checks open nothing and write nothing.
"""
from __future__ import annotations

import os
import queue
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from autograder import stopwatch
from autograder.config import Config
from autograder.judge import kept_answers, pytest_plugin
from autograder.judge.pytest_plugin import GradingPlugin
from autograder.judge.reference import MEMO_ENTRIES, ReferenceSubject, load_reference
from autograder.judge.run import charge
from autograder.judge.subjects import Subject
from autograder.record import CheckResult


class Checks:
    """The graded checks (all, or a selection), with the reference solution they compare with."""

    def __init__(self, config: Config, parts: set[str] | None = None, visible_only: bool = False,
                 kept: Path | None = None):
        """`kept`: the folder of the reference's answers kept between runs (judge/kept_answers.py); None: keep none."""
        self.config, self.parts, self.visible_only = config, parts, visible_only
        self._reference: tuple[ReferenceSubject, list[dict]] | None = None
        self._kept: Path | None = None
        """The file of the reference's answers kept between runs, once the reference is loaded."""
        self._kept_folder = kept

    def reference(self) -> tuple[ReferenceSubject, list[dict]]:
        """The reference's subject and its definitions, loaded when first needed (the checks' `ref`, the diagnosis)."""
        if self._reference is None:
            memo = {}
            if self._kept_folder is not None:
                try:
                    self._kept = kept_answers.path_for(self._kept_folder, self.config.reference_notebook,
                                                         self.config.assignment.folder)
                except OSError:  # no reference here: load_reference says so as before
                    self._kept = None
                else:
                    memo = kept_answers.read(self._kept)
            self._reference = load_reference(self.config.reference_notebook, self.config.assignment, memo)
        return self._reference

    def run(self, subject: Subject, lang: str) -> list[CheckResult]:
        """The results of the checks on `subject`, in a pytest session of its own.

        Raises:
            RuntimeError: the checks did not run (the kit's own checks could not be collected).
        """
        handed: list[tuple[Subject, str]] = [(subject, lang)]
        results: list[list[CheckResult]] = []
        code = self._session(lambda: handed.pop() if handed else None, results.append)
        if not results:
            raise RuntimeError(f"the checks did not run (pytest exit code {code})")
        return self._charged(subject, results[0], lang)

    def close(self) -> None:
        """Nothing stays open between runs; the reference's new answers are kept for the next run."""
        if self._reference is not None and self._kept is not None and self._reference[0].computed:
            kept_answers.write(self._kept, self._reference[0].memo, MEMO_ENTRIES)

    def __enter__(self) -> Checks:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _charged(self, subject: Subject, results: list[CheckResult], lang: str) -> list[CheckResult]:
        subject.begin_part(None)  # the checks are over: what runs next (the diagnosis) is no part's
        return charge(results, subject.charged, lang)

    def _session(self, next_subject: Callable[[], tuple[Subject, str] | None],
                 deliver: Callable[[list[CheckResult]], None]) -> int:
        """One pytest session over the subjects `next_subject` hands in; returns pytest's exit code."""
        timer = _Timer()

        def handed() -> tuple[Subject, str] | None:
            timer.waiting()
            turn = next_subject()
            if turn is not None:
                timer.checking()
            return turn

        def delivered(results: list[CheckResult]) -> None:
            timer.waiting()
            deliver(results)

        plugin = GradingPlugin(handed, delivered, lambda: self.reference()[0], self.config.limits.submission_seconds,
                               self.parts, self.visible_only)
        # Nothing in the judge prints (student output stays in the worker): no capture to set up per check.
        # Only the kit's own plugins: another package's pytest plugin (pytest-benchmark, ...) must not run inside a
        # student's kernel, where nbgrader scores a cell 0 for a word on stderr.
        checks = str(self.config.assignment.checks)
        args = [checks, "-c", os.devnull, "--rootdir", checks, "--assert=plain",
                "--disable-plugin-autoload"]
        for name in ("capture", "cacheprovider", "terminal", "warnings", "stepwise", "unraisableexception",
                     "threadexception", "logging"):
            args += ["-p", f"no:{name}"]
        try:
            return pytest.main(args, plugins=[plugin, pytest_plugin])
        finally:
            timer.stop()


class KeptChecks(Checks):
    """Checks whose pytest session stays open on a thread of its own between runs: collected once for many
    subjects. Each `run` hands the thread a subject and waits for its results."""

    def __init__(self, config: Config, parts: set[str] | None = None, visible_only: bool = False,
                 kept: Path | None = None):
        super().__init__(config, parts, visible_only, kept)
        self._inbox: queue.Queue = queue.Queue()
        self._outbox: queue.Queue = queue.Queue()
        self._ready = threading.Event()
        self._code: int | None = None
        self._thread = threading.Thread(target=self._serve, daemon=True, name="checks")
        self._thread.start()
        self._ready.wait()  # collected: the first submission's time starts after it, as every other's does

    def run(self, subject: Subject, lang: str) -> list[CheckResult]:
        if not self._thread.is_alive():
            raise RuntimeError(f"the checks' session has ended (pytest exit code {self._code})")
        self._inbox.put((subject, lang))
        results = self._outbox.get()
        if results is None:
            raise RuntimeError(f"the checks' session has ended (pytest exit code {self._code})")
        return self._charged(subject, results, lang)

    def close(self) -> None:
        if self._thread.is_alive():
            self._inbox.put(None)
            self._thread.join()
        super().close()

    def _serve(self) -> None:
        import torch

        torch.set_num_threads(1)  # this thread's own setting (see one_torch_thread); it ends with the session

        def next_subject() -> tuple[Subject, str] | None:
            self._ready.set()
            return self._inbox.get()

        try:
            self._code = self._session(next_subject, self._outbox.put)
        finally:
            self._ready.set()
            self._outbox.put(None)  # a run waiting for results learns that none will come


@contextmanager
def one_torch_thread() -> Iterator[None]:
    """Torch on one thread in this thread while the block runs, then the caller's setting again (a student's
    kernel keeps its own). The checks and the diagnosis run thousands of operations on tiny tensors: more threads
    only wait for each other, above all on a busy machine (a softmax of 2x6x6 took 8 ms on two threads of a
    loaded 2-core machine, 0.003 ms on one)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


class _Timer:
    """The profile's stages of a check session (stopwatch.py): its start and collection, each subject's checks,
    and the time between subjects."""

    def __init__(self) -> None:
        self.name, self.started = "pytest start and collection", stopwatch.begin("pytest start and collection")
        self.first = True

    def waiting(self) -> None:
        self._switch("pytest start and collection" if self.first else "between submissions")

    def checking(self) -> None:
        self.first = False
        self._switch("checks")

    def stop(self) -> None:
        stopwatch.end(self.name, self.started)

    def _switch(self, name: str) -> None:
        if name != self.name:
            stopwatch.end(self.name, self.started)
            self.name, self.started = name, stopwatch.begin(name)
