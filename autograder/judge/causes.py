"""The cause of an exception the student's code raised, in the learner's terms, read from its type and message."""
from __future__ import annotations

import re

CAUSES = (
    ("RuntimeError", re.compile(r"view size is not compatible with input tensor's size and stride"),
     "cause.view_not_contiguous"),
    ("RuntimeError", re.compile(r"masked_fill_? only supports boolean masks"), "cause.mask_not_bool"),
    ("RuntimeError", re.compile(r"expected .*mask.* to be (a )?bool", re.I), "cause.mask_not_bool"),
)
"""(exception type, what its message says, the message key that explains it)."""


def cause_of(kind: str, message: str) -> str | None:
    """The message key of what made `kind: message` happen, or None when it is not one we know."""
    return next((key for type_, pattern, key in CAUSES if kind == type_ and pattern.search(message)), None)
