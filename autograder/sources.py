"""Where a submission's definitions come from, the one thing that differs between the front ends: a file, read
(nothing runs) and run in a sandboxed worker; or the objects already in the student's kernel.

Each source does the pipeline's first two stages its own way: `load` (① read it) and `open` (② the subject the
checks drive, closed when the block ends).
"""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from autograder import stopwatch
from autograder.config import Config, probe_seed
from autograder.judge.run import Job
from autograder.judge.subjects import LocalSubject, Subject, Unloadable
from autograder.judge.worker_subject import WorkerSubject


@dataclass(frozen=True)
class File:
    """A submission file: its definitions run in a sandboxed worker of their own."""

    path: Path
    outside: bool = False
    """A symlink that points outside the folder it was found in: never read."""

    def load(self, config: Config, lang: str | None = None) -> Job:
        """Read the file into its definitions (a file that cannot be read becomes a Job that says why).

        Args:
            lang: the feedback language; None: the notebook's own.
        """
        from autograder.load.submission import read_file

        if self.outside:  # never read what the link points to
            return Job(self.path, lang or config.lang, error=("load.symlink_outside", {}))
        with stopwatch.stage("load"):
            sha256, submission, error = read_file(self.path, config.limits.source_bytes)
        return Job(self.path, lang or (submission.lang if submission else config.lang), submission, error, sha256)

    @contextmanager
    def open(self, job: Job, config: Config, isolation: str) -> Iterator[Subject]:
        """A worker (under `isolation`) that runs the file's definitions, or one that says why it could not be read;
        the worker ends with the block."""
        if job.error is not None:
            yield Unloadable(*job.error, config.assignment)
            return
        chunks = job.submission.chunk_dicts()
        subject = WorkerSubject(chunks, config.limits, isolation, config.assignment)
        subject.probe_seed = probe_seed(config.solutions, "\n".join(c["code"] for c in chunks))
        subject.source = "file" if job.submission.kind == "py" else "notebook"
        try:
            yield subject
        finally:
            with stopwatch.stage("sandbox end"):
                subject.close()


@dataclass(frozen=True)
class Kernel:
    """The objects in the student's running kernel (the in-notebook check(), nbgrader's grade()): nothing to read,
    no worker to start, since they already run there."""

    namespace: dict = field(repr=False)

    def load(self, config: Config, lang: str | None = None) -> Job:
        return Job(Path("notebook"), lang or config.lang)

    @contextmanager
    def open(self, job: Job, config: Config, isolation: str) -> Iterator[Subject]:
        yield LocalSubject(self.namespace, config.assignment)


Source = File | Kernel
