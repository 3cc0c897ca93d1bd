"""The reference's memo: each check's answers are computed once per batch, and never wrong."""
from __future__ import annotations

import torch

from autograder.config import Config
from autograder.judge.reference import ReferenceSubject
from autograder.load.submission import load_submission

CHUNKS = [{"origin": c.origin, "code": c.code} for c in load_submission(Config().reference_notebook).chunks]


def reference() -> tuple[ReferenceSubject, list[dict]]:
    """A reference that records every request it really runs."""
    subject = ReferenceSubject.from_chunks(CHUNKS, "reference_memo_test")
    ran: list[dict] = []
    handle = subject.handler.handle
    subject.handler.handle = lambda message: ran.append(message) or handle(message)
    return subject, ran


def probe(subject: ReferenceSubject, scale: float) -> torch.Tensor:
    """What a check does: build a module, change its weights (from a student's answer), run it."""
    subject.begin("test_probe")
    module = subject.new("CausalAttention", 3, 2, 6, 0.0)
    state = {k: v * scale for k, v in module.state().items() if k != "mask"}
    module.load(state)
    return module(torch.ones(1, 4, 3) * 0.5)


def test_a_history_seen_before_runs_nothing():
    subject, ran = reference()
    first = probe(subject, 1.0)
    count = len(ran)
    again = probe(subject, 1.0)
    assert count == 4, f"the first probe should run its 4 requests, ran {count}"
    assert len(ran) == count, f"the same history ran {len(ran) - count} requests again instead of none"
    assert torch.equal(first, again), "the memo answered differently from the first run"


def test_a_new_request_replays_the_history_and_answers_right():
    subject, ran = reference()
    probe(subject, 1.0)
    count = len(ran)
    changed = probe(subject, 2.0)  # new, state: from the memo; load with other weights: new
    assert len(ran) == count + 4, f"expected the 2 remembered requests replayed and 2 new ones, ran {len(ran) - count}"
    fresh, _ = reference()
    expected = probe(fresh, 2.0)
    assert torch.equal(changed, expected), "after a replay the reference answered differently from a fresh one"


def test_modules_are_numbered_within_a_check():
    subject, ran = reference()
    probe(subject, 1.0)
    subject.new("SelfAttention_v2", 3, 2)  # ids move on; the next check's numbering must not
    count = len(ran)
    probe(subject, 1.0)
    assert len(ran) == count, "a check's memo depends on the ids earlier checks used"
