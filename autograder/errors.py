"""The error a request raises when the student's code failed, shared by the judge, the checks and the explanation."""
from __future__ import annotations

from typing import Any


class StudentError(Exception):
    """A request failed because of the student's code; `key` names the message in the catalogue."""

    def __init__(self, key: str, **params: Any):
        super().__init__(key, params)
        self.key = key
        self.params = params
