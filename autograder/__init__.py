"""Teaching and grading kit for the attention mechanisms of chapter 3."""
from __future__ import annotations


def check(name: str, lang: str | None = None):
    """Run the visible checks for one graded name against this notebook's definitions."""
    from autograder.selfcheck import check_in_notebook

    return check_in_notebook(name, lang=lang)
