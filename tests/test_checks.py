"""The checks themselves: declared points, visibility, messages in both languages."""
from __future__ import annotations

import json
import re
from pathlib import Path

import nbformat
import pytest

from autograder.config import GRADED
from autograder.i18n import LANGS, catalogue
from autograder.judge import check_table

ROOT = Path(__file__).resolve().parent.parent
POINTS = {"softmax_naive": 2, "simple_self_attention": 6, "SelfAttention_v1": 8, "SelfAttention_v2": 8,
          "load_v2_weights_into_v1": 5, "CausalAttention": 24, "MultiHeadAttentionWrapper": 14,
          "exercise_3_2": 4, "MultiHeadAttention": 24, "exercise_3_3": 5}


def test_every_check_is_marked_with_a_graded_name_and_points():
    table = check_table()
    assert len(table) >= 40
    for info in table:
        assert info.names and info.names[0] in GRADED and info.points > 0, info
        assert set(info.names) <= set(GRADED), info


def test_points_per_part_add_up_to_one_hundred():
    totals: dict[str, float] = {}
    for info in check_table():
        totals[info.names[0]] = totals.get(info.names[0], 0) + info.points
    assert totals == POINTS


def test_every_part_has_visible_and_hidden_checks():
    for part in GRADED:
        kinds = {info.hidden for info in check_table() if info.names[0] == part}
        assert kinds == {True, False}, f"{part} needs both visible and hidden checks"


def test_visible_checks_do_not_need_the_solutions():
    for info in check_table():
        if not info.hidden:
            assert "ref" not in info.fixtures, f"{info.check_id} is visible but compares with the reference"


@pytest.mark.parametrize("lang", LANGS)
def test_every_check_has_a_title(lang):
    messages = catalogue(lang)
    for info in check_table():
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
