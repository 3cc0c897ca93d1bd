"""The student's self-check: visible checks only, from the command line or inside the notebook."""
from __future__ import annotations

import inspect
from pathlib import Path

from autograder.config import Config, environment
from autograder.load.submission import SubmissionError, load_submission
from autograder.record import SubmissionResult
from autograder.report.checklist import checklist_html, checklist_text


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
        return checklist_html(self.result, self.lang, diagnoses=True)

    def _mime_(self) -> tuple[str, str]:  # marimo's display protocol
        return "text/html", self._repr_html_()


def run_in_kernel(namespace: dict, name: str, lang: str, config: Config, hidden: bool = False) -> SubmissionResult:
    """The checks of `name` on the kernel's own definitions, through the pipeline (no worker: they already run here).

    Args:
        hidden: the hidden checks too (nbgrader's grading), not only the visible ones.
    """
    import torch

    from autograder.pipeline import Run, grade
    from autograder.sources import Kernel

    rng = torch.random.get_rng_state()
    try:
        return grade(Kernel(namespace), config, Run("none", lang, {name}, visible_only=not hidden, pictures=False))
    finally:
        torch.random.set_rng_state(rng)


def _notebook_language(namespace: dict) -> str:
    for candidate in (namespace.get("__file__"), environment().notebook):
        if candidate and Path(candidate).is_file():
            try:
                return load_submission(Path(candidate)).lang
            except SubmissionError:
                pass
    return "en"


def _graded_name(what, graded: tuple[str, ...]) -> str:
    name = what if isinstance(what, str) else getattr(what, "__name__", None)
    if name not in graded:
        shown = repr(what) if isinstance(what, str) else f"{type(what).__name__} {name or what!r}"
        raise ValueError(f"{shown} is not graded here; check one of: {', '.join(graded)}")
    return name


def check_in_notebook(what, lang: str | None = None, namespace: dict | None = None) -> Checklist:
    """`check(MyClass)` in a notebook cell: visible checks on the kernel's own definitions.

    `what` is the graded function or class itself (or its name). The object passed is the one
    judged, even where the namespace holds another of that name; the rest (a wrapper's heads, say)
    comes from the caller's globals: the kernel's in Jupyter, the notebook's in marimo.
    """
    config = Config()  # the assignment: AUTOGRADER_ASSIGNMENT's, else the kit's default
    name = _graded_name(what, config.assignment.graded)
    if namespace is None:
        frame = inspect.currentframe()
        while frame is not None and frame.f_globals.get("__name__", "").startswith("autograder"):
            frame = frame.f_back
        namespace = frame.f_globals if frame is not None else {}
    if not isinstance(what, str):
        namespace = {**namespace, name: what}
    lang = lang or environment().lang or _notebook_language(namespace)
    return Checklist(run_in_kernel(namespace, name, lang, config), lang)
