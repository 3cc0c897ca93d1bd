"""Hidden-test cells of the nbgrader source notebooks call `grade(name)` (nbgrader partial credit)."""
from __future__ import annotations

import contextlib
import inspect
import io
import warnings

from autograder.config import Config, environment
from autograder.integrations.selfcheck import run_in_kernel
from autograder.report.checklist import checklist_text


def grade(name: str) -> float:
    """Run every check (visible and hidden) of `name` on the kernel's definitions; return the points.

    nbgrader gives a test cell partial credit when its last output is a number, and zero when
    the cell writes to stderr, so warnings are kept off stderr here.
    """
    config = Config()
    graded = config.assignment.graded
    if name not in graded:
        raise ValueError(f"{name!r} is not graded here; choose one of: {', '.join(graded)}")
    frame = inspect.currentframe().f_back
    namespace = frame.f_globals if frame is not None else {}
    settings = environment()
    lang = settings.lang or "en"
    config = config.with_(solutions=settings.solutions or config.solutions)
    if not config.reference_notebook.is_file():
        raise FileNotFoundError(f"{config.reference_notebook}: no reference solution; set "
                                "AUTOGRADER_SOLUTIONS to the kit's solutions/ folder before running nbgrader")
    captured = io.StringIO()
    with warnings.catch_warnings(), contextlib.redirect_stderr(captured):
        warnings.simplefilter("ignore")
        result = run_in_kernel(namespace, name, lang, config, hidden=True)
    print(checklist_text(result, lang))
    return result.score
