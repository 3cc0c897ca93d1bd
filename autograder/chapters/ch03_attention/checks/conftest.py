"""What every graded check first makes sure of: a constructor the checks can build, and attention computed at all."""
import pytest

from autograder.chapters.ch03_attention.checks.precondition import ATTENTION, expect_attention, standing_in
from autograder.judge.contract import expect_constructible


@pytest.fixture(autouse=True)
def _preconditions(request, sub, note):
    marker = request.node.get_closest_marker("check").kwargs
    part = marker["names"][0]
    if part in sub.stubs:  # the class's signature check names the difference; the others need a constructor to build
        if request.function.__name__.endswith("_signature"):
            return  # the check itself compares the signature with the stub's
        expect_constructible(sub, part)
    if part in ATTENTION and standing_in(sub, part):
        note("note.stand_in_heads")
    if part in ATTENTION and not marker.get("structure"):
        expect_attention(sub, part)
