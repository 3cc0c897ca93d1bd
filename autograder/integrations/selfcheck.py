"""The student's self-check: visible checks only, from the command line or inside the notebook."""
from __future__ import annotations

import inspect
import os
from pathlib import Path

from autograder.config import GRADED, Config
from autograder.judge.run import Job, run_checks
from autograder.load.submission import SubmissionError, load_submission
from autograder.report.checklist import checklist_html, checklist_text
from autograder.report.records import SubmissionResult
from autograder.judge.subjects import LocalSubject


class Checklist:
    """A self-check result that shows itself as text, or as HTML in Jupyter and marimo."""

    def __init__(self, result: SubmissionResult, lang: str):
        self.result, self.lang = result, lang

    @property
    def passed(self) -> bool:
        return not self.result.error and all(t.status == "passed" for t in self.result.tests)

    def __repr__(self) -> str:
        return checklist_text(self.result, self.lang)

    def text(self, verbose: bool = True) -> str:
        """verbose=False: one line per part, details for the parts begun (the terminal's default)."""
        return checklist_text(self.result, self.lang, verbose)

    def _repr_html_(self) -> str:
        return checklist_html(self.result, self.lang)

    def _mime_(self) -> tuple[str, str]:  # marimo's display protocol
        return "text/html", self._repr_html_()


def run_visible(job: Job, config: Config, isolation: str, parts: set[str] | None = None,
                with_hidden: bool = False, pictures: bool = True) -> SubmissionResult:
    results: list[SubmissionResult] = []
    run_checks([job], config, isolation, results.append, parts=parts, visible_only=not with_hidden, pictures=pictures)
    return results[0]


def check_file(path: Path, config: Config, lang: str | None = None, parts: set[str] | None = None,
               pictures: bool = True) -> Checklist:
    """`autograder check NOTEBOOK`: the submission runs in a worker process, as when it is graded."""
    from autograder.sandbox.capability import isolation_for

    job = Job.read(path, config, lang)
    result = run_visible(job, config, isolation_for(config.sandbox), parts, pictures=pictures)
    return Checklist(result, job.lang)


def _notebook_language(namespace: dict) -> str:
    for candidate in (namespace.get("__file__"), os.environ.get("JPY_SESSION_NAME")):
        if candidate and Path(candidate).is_file():
            try:
                return load_submission(Path(candidate)).lang
            except SubmissionError:
                pass
    return "en"


def _graded_name(what) -> str:
    name = what if isinstance(what, str) else getattr(what, "__name__", None)
    if name not in GRADED:
        shown = repr(what) if isinstance(what, str) else f"{type(what).__name__} {name or what!r}"
        raise ValueError(f"{shown} is not graded here; check one of: {', '.join(GRADED)}")
    return name


def check_in_notebook(what, lang: str | None = None, namespace: dict | None = None) -> Checklist:
    """`check(CausalAttention)` in a notebook cell: visible checks on the kernel's own definitions.

    `what` is the graded function or class itself (or its name). The object passed is the one
    judged, even where the namespace holds another of that name; the rest (a wrapper's heads, say)
    comes from the caller's globals: the kernel's in Jupyter, the notebook's in marimo.
    """
    import torch

    name = _graded_name(what)
    if namespace is None:
        frame = inspect.currentframe()
        while frame is not None and frame.f_globals.get("__name__", "").startswith("autograder"):
            frame = frame.f_back
        namespace = frame.f_globals if frame is not None else {}
    if not isinstance(what, str):
        namespace = {**namespace, name: what}
    lang = lang or os.environ.get("AUTOGRADER_LANG") or _notebook_language(namespace)
    job = Job(path=Path("notebook"), lang=lang, subject=LocalSubject(namespace))
    rng = torch.random.get_rng_state()
    try:
        result = run_visible(job, Config(), "none", parts={name})
    finally:
        torch.random.set_rng_state(rng)
    return Checklist(result, lang)
