"""The reference solution as the checks' other subject: run in the judge, each answer computed once per kit version
(kept on disk between runs: judge/kept_answers.py)."""
from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from autograder import stopwatch
from autograder.assignment import Assignment
from autograder.judge.subjects import LocalSubject, Subject, cloned, stand_ins_of
from autograder.load.submission import load_submission
from autograder.sandbox.inside.handler import Handler

MEMO_ENTRIES = 20_000
"""Replies the reference keeps (about 2 MB per 1,000): far more than all checks ask of a correct submission."""


class ReferenceSubject(LocalSubject):
    """The reference solution, each check's answers computed once per batch.

    A check asks the reference the same things for every submission, unless the student's
    answers change what it asks next. Each reply is kept under the check's history of requests
    so far (module ids numbered within the check); a history seen before is answered from the
    memo without running anything. At the first request not seen before, the check's history is
    replayed for real, then the request runs. Construction is seeded from the history, so a
    replay builds the very modules whose answers were kept.

    The definitions run when first needed (`namespace` may be a function that runs them): a memo that
    answers everything (one kept from an earlier run) never runs the reference at all.
    """

    def __init__(self, namespace: dict | Callable[[], dict], assignment: Assignment,
                 memo: dict[bytes, dict] | None = None):
        Subject.__init__(self, assignment)
        self._namespace = namespace
        self._handler: Handler | None = None
        self.memo: dict[bytes, dict] = dict(memo or {})
        self.computed = 0
        """Replies computed here (not from the memo): what there is to keep for the next run."""
        self.begin("")

    @property
    def handler(self) -> Handler:
        if self._handler is None:
            namespace = self._namespace() if callable(self._namespace) else self._namespace
            self._handler = Handler(namespace, stand_ins_of(self.assignment))
        return self._handler

    def begin(self, check: str) -> None:
        """A check starts: its history is empty and the modules of the last one can go."""
        self.history = hashlib.sha256(check.encode()).digest()
        self.unplayed: list[dict] = []
        self.numbers: dict[int, int] = {}
        if self._handler is not None:
            self._handler.objects.clear()

    def binding(self, name: str) -> None:
        """The reference's constructors are the stub's: no signature request, which would enter (and so change)
        the history of whichever check builds a class first."""
        return None

    def _send(self, message: dict, what: str, key: str) -> dict:
        from autograder.sandbox.inside.protocol import encode

        self.history = hashlib.sha256(self.history + encode(self._numbered(message))).digest()
        message = {**message, "seed": int.from_bytes(self.history[:7], "big")}
        reply = self.memo.get(self.history)
        if reply is None:
            with stopwatch.stage("reference answers"):
                for earlier in self.unplayed:
                    self._run(earlier)
                self.unplayed = []
                if len(self.memo) >= MEMO_ENTRIES:  # submissions that make checks ask new things: start afresh
                    self.memo.clear()
                reply = self.memo[self.history] = self._run(message)
                self.computed += 1
        else:
            stopwatch.add("reference answers: from the memo", 0.0)
            self.unplayed.append(message)
        return cloned(reply)

    def _run(self, message: dict) -> dict:
        if message["op"] in ("new", "call"):  # the only requests that draw random numbers outside a forward
            torch.default_generator.manual_seed(message["seed"])
        return self.handler.handle(cloned(message))

    def _numbered(self, message: dict) -> dict:
        """`message` with module ids replaced by their order of appearance in this check."""
        def number(id: Any) -> Any:
            return self.numbers.setdefault(id, len(self.numbers)) if isinstance(id, int) else id

        args = dict(message["args"])
        for field in ("id", "parent", "source"):
            if field in args:
                args[field] = number(args[field])
        if "args" in args:
            args["args"] = [{"$obj": number(a["$obj"])} if isinstance(a, dict) and "$obj" in a else a
                            for a in args["args"]]
        return {"op": message["op"], "args": args}


def load_reference(notebook: Path, assignment: Assignment,
                   memo: dict[bytes, dict] | None = None) -> tuple[ReferenceSubject, list[dict]]:
    """The reference notebook's subject, answering from `memo` first, and its definitions (which the diagnosis runs
    mutated); the definitions run when the subject first needs them."""
    chunks = load_submission(notebook).chunk_dicts()

    def definitions() -> dict:
        with stopwatch.stage("reference load"):
            return LocalSubject.from_chunks(chunks, "reference", assignment).handler.namespace

    return ReferenceSubject(definitions, assignment, memo), chunks
