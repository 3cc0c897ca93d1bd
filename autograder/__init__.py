"""Teaching and grading kit for the attention mechanisms of chapter 3."""
from __future__ import annotations

import os


def check(name: str, lang: str | None = None):
    """Run the visible checks for one graded name against this notebook's definitions."""
    from autograder.selfcheck import check_in_notebook

    checklist = check_in_notebook(name, lang=lang)
    # `nbgrader validate` (and the Validate button) counts a test cell as passed unless it raises.
    if os.environ.get("NBGRADER_EXECUTION") == "validate" and not checklist.passed:
        raise AssertionError(repr(checklist))
    return checklist
