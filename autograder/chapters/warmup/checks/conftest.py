"""Before a check: a constructor the checks can build; before a behaviour check of a class, attention at all."""
import pytest

from autograder.errors import StudentError
from autograder.judge.contract import expect_constructible
from autograder.judge.expect import CheckFailure
from autograder.judge.gate import expect_attention_family


@pytest.fixture(autouse=True)
def _preconditions(request, sub):
    marker = request.node.get_closest_marker("check").kwargs
    part = marker["names"][0]
    if part in sub.stubs and not request.function.__name__.endswith("_signature"):
        expect_constructible(sub, part)
    if part in sub.assignment.attention and not marker.get("structure"):
        verdict = sub.cached(f"attention:{part}", lambda: _attention(sub, part))
        if verdict is not None:
            raise verdict


def _attention(sub, part: str) -> Exception | None:
    """What the attention gate found wrong with `part` (judged once per submission), or None."""
    try:
        expect_attention_family(sub, part, sub.probe_seed)
    except (CheckFailure, StudentError) as found:
        return found
    return None
