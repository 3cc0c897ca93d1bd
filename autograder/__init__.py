"""Teaching and grading kit for notebook assignments in PyTorch: the attention mechanisms of chapter 3 by default."""
from __future__ import annotations


def check(what, lang: str | None = None):
    """Run the visible checks of one graded function or class against this notebook's definitions.

    Pass the object itself, `check(MyClass)`: marimo then re-runs the check cell whenever the
    cell that defines it changes, and the check judges exactly that object. A name works too,
    `check("MyClass")`, as in notebooks released before.
    """
    from autograder.config import environment
    from autograder.integrations.selfcheck import check_in_notebook

    checklist = check_in_notebook(what, lang=lang)
    # `nbgrader validate` (and the Validate button) counts a test cell as passed unless it raises.
    if environment().nbgrader_validate and not checklist.passed:
        raise AssertionError(repr(checklist))
    return checklist
