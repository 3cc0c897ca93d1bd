"""Hidden-test cells of the nbgrader source notebooks call `grade(name)` (nbgrader partial credit)."""
from __future__ import annotations

import contextlib
import inspect
import io
import os
import warnings
from pathlib import Path

from autograder.assignment import GRADED
from autograder.config import Config
from autograder.judge.run import Job
from autograder.report.checklist import checklist_text
from autograder.integrations.selfcheck import run_visible
from autograder.judge.subjects import LocalSubject


def grade(name: str) -> float:
    """Run every check (visible and hidden) of `name` on the kernel's definitions; return the points.

    nbgrader gives a test cell partial credit when its last output is a number, and zero when
    the cell writes to stderr, so warnings are kept off stderr here.
    """
    import torch

    if name not in GRADED:
        raise ValueError(f"{name!r} is not graded here; choose one of: {', '.join(GRADED)}")
    frame = inspect.currentframe().f_back
    namespace = frame.f_globals if frame is not None else {}
    lang = os.environ.get("AUTOGRADER_LANG", "en")
    solutions = Path(os.environ.get("AUTOGRADER_SOLUTIONS", Config().solutions))
    if not Config(solutions=solutions).reference_notebook.is_file():
        raise FileNotFoundError(f"{Config(solutions=solutions).reference_notebook}: no reference solution; set "
                                "AUTOGRADER_SOLUTIONS to the kit's solutions/ folder before running nbgrader")
    job = Job(path=Path("notebook"), lang=lang, subject=LocalSubject(namespace))
    rng = torch.random.get_rng_state()
    captured = io.StringIO()
    try:
        with warnings.catch_warnings(), contextlib.redirect_stderr(captured):
            warnings.simplefilter("ignore")
            result = run_visible(job, Config(solutions=solutions), "none", parts={name}, with_hidden=True)
    finally:
        torch.random.set_rng_state(rng)
    print(checklist_text(result, lang))
    return result.score
