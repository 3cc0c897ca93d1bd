"""What every graded check first makes sure of: the stub's signature, and attention computed at all."""
import pytest

from autograder.checks.precondition import ATTENTION, expect_attention, standing_in
from autograder.judge.contract import STUBS, expect_signature


@pytest.fixture(autouse=True)
def _preconditions(request, sub, note):
    marker = request.node.get_closest_marker("check").kwargs
    part = marker["names"][0]
    if part in STUBS:
        expect_signature(sub, part)
    if part in ATTENTION and standing_in(sub, part):
        note("note.stand_in_heads")
    if part in ATTENTION and not marker.get("structure"):
        expect_attention(sub, part)
