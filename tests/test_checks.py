"""The checks themselves: declared points, visibility, messages in both languages."""
from __future__ import annotations

import re
from pathlib import Path

import nbformat
import pytest

from autograder.assignment import load
from autograder.i18n import LANGS, catalogue
from autograder.judge.run import check_table

GRADED = load().graded

ROOT = Path(__file__).resolve().parent.parent
POINTS = {"softmax_naive": 2, "simple_self_attention": 6, "SelfAttention_v1": 8, "SelfAttention_v2": 8,
          "load_v2_weights_into_v1": 5, "CausalAttention": 24, "MultiHeadAttentionWrapper": 14,
          "exercise_3_2": 4, "MultiHeadAttention": 24, "exercise_3_3": 5}


def test_every_check_is_marked_with_a_graded_name_and_points():
    table = check_table(load().checks)
    assert len(table) >= 40
    for info in table:
        assert info.names and info.names[0] in GRADED and info.points > 0, info
        assert set(info.names) <= set(GRADED), info


def test_points_per_part_add_up_to_one_hundred():
    totals: dict[str, float] = {}
    for info in check_table(load().checks):
        totals[info.names[0]] = totals.get(info.names[0], 0) + info.points
    assert totals == POINTS


def test_every_part_has_visible_and_hidden_checks():
    for part in GRADED:
        kinds = {info.hidden for info in check_table(load().checks) if info.names[0] == part}
        assert kinds == {True, False}, f"{part} needs both visible and hidden checks"


def test_visible_checks_do_not_need_the_solutions():
    for info in check_table(load().checks):
        if not info.hidden:
            assert "ref" not in info.fixtures, f"{info.check_id} is visible but compares with the reference"


@pytest.mark.parametrize("lang", LANGS)
def test_every_check_has_a_title(lang):
    messages = catalogue(lang)
    for info in check_table(load().checks):
        assert messages.get(f"check.{info.check_id}"), f"no {lang} title for {info.check_id}"


def test_every_message_key_used_in_the_code_exists():
    used = set()
    for path in (ROOT / "autograder").rglob("*.py"):
        used |= set(re.findall(r'"((?:load|student|refused|fail|note|ui|grader)\.[a-z_0-9]+)"', path.read_text()))
    missing = used - set(catalogue("en"))
    assert not missing, f"keys used but not in en.json: {sorted(missing)}"


def test_catalogues_have_the_same_keys_and_placeholders():
    import string

    english, chinese = catalogue("en"), catalogue("zh_TW")
    assert set(english) == set(chinese)
    for key, text in english.items():
        fields = {f for _, f, _, _ in string.Formatter().parse(text) if f}
        assert fields == {f for _, f, _, _ in string.Formatter().parse(chinese[key]) if f}, key
        assert chinese[key].strip(), f"empty zh_TW message {key}"
        assert re.search(r"[\u4e00-\u9fff]", chinese[key]), f"zh_TW message {key} is not translated"


@pytest.mark.parametrize("lang", LANGS)
def test_solution_test_cells_carry_the_checks_points(lang):
    notebook = nbformat.read(ROOT / "solutions" / lang / "ch03_attention.ipynb", as_version=4)
    found = {}
    for cell in notebook.cells:
        meta = cell.metadata.get("nbgrader", {})
        if meta.get("grade") and cell.cell_type == "code":
            name = re.search(r'grade\("(\w+)"\)', cell.source).group(1)
            found[name] = meta["points"]
    assert found == POINTS


STRUCTURE = {"test_v1_signature", "test_v1_parameters", "test_v2_signature", "test_v2_layers",
             "test_causal_signature", "test_causal_layout", "test_causal_mask_is_buffer", "test_wrapper_signature",
             "test_wrapper_layout", "test_wrapper_passes_qkv_bias", "test_mha_signature", "test_mha_layout",
             "test_mha_mask_is_buffer", "test_mha_rejects_indivisible_d_out"}
"""The checks that judge how a class is built; every other check of an attention class judges behaviour."""


def test_only_layout_buffer_and_divisibility_checks_are_structure_checks():
    marked = {info.check_id for info in check_table(load().checks) if info.structure}
    assert marked == STRUCTURE


def _local(path: Path):
    from autograder.judge.subjects import LocalSubject
    from autograder.load.submission import load_submission
    from autograder.sandbox.inside.execute import execute

    chunks = [{"origin": c.origin, "code": c.code} for c in load_submission(path).chunks]
    namespace, failures = execute(chunks, "fixture")
    assert not failures, failures
    return LocalSubject(namespace, load())


ATTENTION = ("SelfAttention_v1", "SelfAttention_v2", "CausalAttention", "MultiHeadAttentionWrapper",
             "MultiHeadAttention")
SUBMISSIONS = ROOT / "tests" / "files" / "submissions"


@pytest.mark.parametrize("fixture", sorted(p.name for p in SUBMISSIONS.glob("nothing_*.py")))
def test_a_forward_that_computes_no_attention_fails_the_precondition(fixture):
    from autograder.chapters.ch03_attention.checks.precondition import expect_attention
    from autograder.errors import StudentError
    from autograder.judge.expect import CheckFailure

    sub = _local(SUBMISSIONS / fixture)
    for name in ATTENTION:
        with pytest.raises((CheckFailure, StudentError)) as caught:
            expect_attention(sub, name)
        assert caught.value.key.startswith(("fail.attention_", "student.not_implemented", "fail.shape")), (
            fixture, name, caught.value.key)


UNBUILDABLE = {"bug_v1_seed_parameter.py", "bug_mha_init_always_raises.py", "bug_signature_no_qkv_bias.py"}
"""Fixtures where the construction itself fails for some class (a constructor matched with the stub's is built)."""


@pytest.mark.parametrize("fixture", sorted(p.name for p in SUBMISSIONS.glob("*.py")
                                           if not p.name.startswith("nothing_") and p.name not in UNBUILDABLE))
def test_attention_with_or_without_bugs_passes_the_precondition(fixture):
    """Every realistic bug still computes attention: the precondition must never hide its real message."""
    from autograder.chapters.ch03_attention.checks.precondition import expect_attention
    from autograder.judge.expect import CheckFailure

    sub = _local(SUBMISSIONS / fixture)
    for name in ATTENTION:
        try:
            expect_attention(sub, name)
        except CheckFailure as failure:  # a wrong output shape may stop it, with its own message
            assert failure.key == "fail.shape", (fixture, name, failure.key, failure.params)


def _subject(code: str):
    from autograder.judge.subjects import LocalSubject
    from autograder.sandbox.inside.execute import execute

    namespace, failures = execute([{"origin": "test", "code": "import torch\nfrom torch import nn\n" + code}], "t")
    assert not failures, failures
    return LocalSubject(namespace, load())


@pytest.mark.parametrize("init, key, words", [
    ("d_in, d_out, context_length, dropout, qkv_bias=False", None, ""),  # the stub's own
    ("d_in, d_out, context_length, dropout, qkv_bias=False, extra=1", None, ""),  # more, with defaults
    ("*args, **kwargs", None, ""),  # anything goes
    ("d_in, d_out, context_length, dropout", "fail.signature", "Missing: qkv_bias"),
    ("d_in, d_out, context_len, dropout, qkv_bias=False", "fail.signature_renamed", "constructor says context_len;"),
    ("d_in, d_out, dropout, context_length, qkv_bias=False", "fail.signature_order", "another order"),
    ("d_in, d_out, block_size, dropout, bias=False", "fail.signature_renamed", "asks for context_length, qkv_bias, the "
     "constructor says block_size, bias"),
    ("d_in, d_out, *, context_length, dropout, qkv_bias=False", "fail.signature_keyword_only",
     "context_length, dropout, qkv_bias can only be passed by name"),
    ("d_in, d_out, ctx, dropout, qkv_bias=False", "fail.signature_renamed", "the constructor says ctx;"),  # by position
    ("cfg", "fail.signature", "Missing: d_in, d_out, context_length, dropout, qkv_bias"),
    ("**kwargs", "fail.signature", "Not in the stub: -"),
    ("d_in, d_out, context_length, dropout, qkv_bias=False, *, seed", "fail.signature", "Not in the stub: seed"),
    ("d_in, d_out, context_length, p, drop, qkv_bias=False", "fail.signature", "Not in the stub: p, drop"),  # two
])
def test_a_signature_is_compared_with_the_stub(init, key, words):
    from autograder.i18n import t
    from autograder.judge.contract import signature_problem

    sub = _subject(f"class CausalAttention(nn.Module):\n    def __init__(self, {init}):\n        super().__init__()\n")
    problem = signature_problem(sub, "CausalAttention")
    assert (problem and problem[0]) == key, problem
    if key:
        message = t(key, "en", **problem[1])
        assert words in message and "d_in, d_out, context_length, dropout, qkv_bias=False" in message, message


def test_a_near_miss_name_is_named_and_an_unrelated_one_is_not():
    from autograder.judge.contract import expect_named
    from autograder.judge.expect import CheckFailure

    sub = _subject("class M(nn.Module):\n    def __init__(self):\n        super().__init__()\n"
                   "        self.droput = nn.Dropout(0.1)\n        self.w_query = nn.Linear(2, 2)\n"
                   "        self.other = nn.Linear(2, 2)\n")
    module = sub.new("M")
    for attribute, kind, found in (("dropout", "Dropout", "droput"), ("W_query", "Linear", "w_query")):
        with pytest.raises(CheckFailure) as caught:
            expect_named(module, attribute, kind, "M", "fail.not_linear", name=attribute)
        assert caught.value.key == "fail.near_miss" and caught.value.params["found"] == found, caught.value.params
    with pytest.raises(CheckFailure) as caught:
        expect_named(module, "W_value", "Linear", "M", "fail.not_linear", name="W_value")
    assert caught.value.key == "fail.not_linear", "W_value is not a misspelling of `other` or `w_query`"


@pytest.mark.parametrize("init, body", [
    ("d_in, d_out, block_size, dropout, bias=True", "block_size, dropout, bias"),  # renamed; bias's default differs
    ("dim_in, dim_out, context_length, qkv_bias=False, *, p", "context_length, p, qkv_bias"),
    ("d_in, d_out, /, context_length, dropout, qkv_bias=False", "context_length, dropout, qkv_bias"),
])
def test_a_matched_constructor_is_built_with_the_stubs_arguments(init, body):
    """The stub's arguments reach the student's parameters they were matched with, the stub's defaults too."""
    sub = _subject(f"class CausalAttention(nn.Module):\n    def __init__(self, {init}):\n        super().__init__()\n"
                   f"        self.got = ({body})\n"
                   "        self.register_buffer('mask', torch.zeros(self.got[0], self.got[0]))\n"
                   "        self.drop = nn.Dropout(self.got[1])\n"
                   "        if self.got[2]:\n            self.b = nn.Parameter(torch.zeros(1))\n")
    module = sub.new("CausalAttention", 3, 2, 7, 0.25)
    assert module.buffers["mask"] == [7, 7] and module.info["dropout"] == {"drop": 0.25}, module.info
    assert "b" not in module.params, "qkv_bias is the stub's default, False, whatever the student's default"
    assert "b" in sub.new("CausalAttention", 3, 2, 7, 0.25, qkv_bias=True).params


def test_an_unmatched_constructor_is_built_as_the_checks_ask():
    from autograder.errors import StudentError

    sub = _subject("class CausalAttention(nn.Module):\n    def __init__(self, cfg):\n        super().__init__()\n")
    assert sub.binding("CausalAttention") == "missing"
    with pytest.raises(StudentError) as caught:
        sub.new("CausalAttention", 3, 2, 7, 0.25)
    assert caught.value.params["type"] == "TypeError"
