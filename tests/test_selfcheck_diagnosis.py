"""The student's self-check says what the grade says: a mistake the measurements prove is named in the terminal,
in --html and in the notebook's check cell, in both languages, with no reference solution (as in the bundle)."""
from __future__ import annotations

import subprocess
import sys

import pytest

from autograder.assignment import load
from autograder.chapters.ch03_attention.measure.explainer import MeasuredExplainer, self_check_entries
from autograder.integrations.selfcheck import check_in_notebook
from autograder.judge.subjects import LocalSubject
from autograder.load.submission import load_submission
from autograder.sandbox.inside.execute import execute
from tests.conftest import FILES, ROOT

DISCARDED = FILES / "real" / "real_causal_mask_discarded.py"
"""masked_fill's result thrown away: the mask buffer is right, the scores never get it."""
CAUSE = {"en": "no mask is applied", "zh_TW": "完全沒有套用遮罩"}
WRONG_BUFFER_HINT = {"en": "The mask must hide every position above the diagonal",
                     "zh_TW": "遮罩必須遮住對角線以上的每一個位置"}
NO_EXPLAIN = "import sys; sys.modules['autograder.chapters.ch03_attention.explain'] = None; " \
             "from autograder.cli import main; raise SystemExit(main(sys.argv[1:]))"
"""The command line as the student bundle runs it: explain/ (the diagnosis with the reference) is not there."""


def _check(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", NO_EXPLAIN, "check", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=600)


@pytest.mark.parametrize("lang", ["en", "zh_TW"])
def test_autograder_check_names_the_discarded_mask_and_its_page_has_it(tmp_path, lang):
    page = tmp_path / "check.html"
    result = _check(str(DISCARDED), "--part", "CausalAttention", "--lang", lang, "--html", str(page))
    assert result.returncode == 1, result.stderr[-2000:]
    assert CAUSE[lang] in result.stdout, result.stdout
    assert "masked_fill" in result.stdout
    assert WRONG_BUFFER_HINT[lang] not in result.stdout, "a hint about the buffer, which is right, is false here"
    html = page.read_text(encoding="utf-8")
    assert CAUSE[lang] in html and "masked_fill" in html


def test_a_correct_class_gets_no_diagnosis_from_the_self_check():
    result = _check(str(FILES / "submissions" / "correct_reference.py"), "--part", "CausalAttention")
    assert result.returncode == 0, result.stdout + result.stderr[-2000:]
    assert "measured on your class" not in result.stdout and "known mistake" not in result.stdout


def test_the_notebook_check_cell_names_it(monkeypatch):
    namespace, _ = execute(load_submission(DISCARDED).chunk_dicts(), "selfcheck_discarded")
    checklist = check_in_notebook(namespace["CausalAttention"], lang="en", namespace=namespace)
    assert not checklist.passed
    assert CAUSE["en"] in checklist.text() and CAUSE["en"] in checklist._repr_html_()


def test_the_self_check_says_only_measured_facts_when_nothing_is_proven():
    source = (FILES / "unseen" / "held_mha_tril_minus1.py")
    namespace, _ = execute(load_submission(source).chunk_dicts(), "selfcheck_tril")
    [entry] = self_check_entries(LocalSubject(namespace, load()), "MultiHeadAttention", "en")
    assert entry["misconception"] is None and entry["measured"]
    assert "changes when token" in entry["message"], entry  # the future reaches earlier tokens: measured, true
    assert MeasuredExplainer.needs_reference is False


@pytest.mark.parametrize("source, part", [(FILES / "submissions" / "bug_causal_tril_mask.py", "CausalAttention"),
                                          (FILES / "real" / "real_mha_tril.py", "MultiHeadAttention")])
def test_the_self_check_names_a_reversed_mask_from_what_reaches_each_token(source, part):
    namespace, _ = execute(load_submission(source).chunk_dicts(), f"selfcheck_{source.stem}")
    [entry] = self_check_entries(LocalSubject(namespace, load()), part, "en")
    assert entry["misconception"].endswith("_mask_tril"), entry


def test_what_reaches_each_token_is_read_as_the_mask_predicts():
    """The model the reversed mask is proven with, held to the reference: its causal mask predicts what it shows."""
    from autograder.chapters.ch03_attention.measure.observe import SIZES, attention_reach, observe

    namespace, _ = execute(load_submission(FILES / "submissions" / "correct_reference.py").chunk_dicts(), "reach")
    for part in ("CausalAttention", "MultiHeadAttention"):
        found = observe(LocalSubject(namespace, load()), part)
        assert found.reach == attention_reach(lambda q, k: k <= q, SIZES[part][3]), part
        assert found.reach != attention_reach(lambda q, k: k >= q + 2, SIZES[part][3]), part


def test_a_read_out_the_heads_garble_says_nothing_of_the_axis():
    """Heads split by stride garble the equal-QKV read-out (its identity layers assume the chapter's heads): what it
    reads is no weights of the class, whose softmax does run over the keys. The axis is said only when the read-out's
    zeros are where a mask puts them, as for weights divided after the softmax, which truly sum to 1 nowhere."""
    from autograder.chapters.ch03_attention.measure.observe import facts, observe

    def said(name: str) -> tuple[list | None, set[str]]:
        namespace, _ = execute(load_submission(FILES / "unseen" / name).chunk_dicts(), f"axis_{name[:-3]}")
        found = observe(LocalSubject(namespace, load()), "MultiHeadAttention")
        return found.axes, {key for key, _ in facts(found)}

    axes, keys = said("held_mha_strided_heads.py")
    assert axes is None and not keys & {"fact.no_axis", "fact.axis"}, (axes, keys)
    assert "fact.causal" in keys  # what the probes that do not assume the heads' layout show is still said
    axes, keys = said("held_mha_divide_after_softmax.py")
    assert axes == [] and "fact.no_axis" in keys, (axes, keys)
