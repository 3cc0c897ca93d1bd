"""Golden files: the checklist, the feedback page, grades.csv and Gradescope's results.json, byte for byte.

Built from hand-made records (no grading run), so they are fast and the same on every machine. After an intended
change of the output, `python -m pytest tests/test_golden.py --update-goldens` rewrites tests/golden/; review the
diff before committing it.
"""
from __future__ import annotations

import difflib
import json
from pathlib import Path

import pytest

from autograder.assignment import load
from autograder.i18n import t
from autograder.integrations.gradescope import GradescopeSettings, to_gradescope
from autograder.record import CheckResult, SubmissionResult
from autograder.report.checklist import checklist_text
from autograder.report.feedback_page import feedback_html
from autograder.report.gradebook import write_gradebook

GOLDEN = Path(__file__).parent / "golden"
T = 6  # tokens of the chapter's sentence
CAUSAL = [[[round(1 / (q + 1), 4) if k <= q else 0.0 for k in range(T)] for q in range(T)]]
"""The reference's causal map: each token spreads its weight evenly over itself and the tokens before it."""
TRIL = [[[round(1 / (T - q), 4) if k >= q else 0.0 for k in range(T)] for q in range(T)]]
"""The lower triangle masked instead of the upper: each token looks only at itself and later tokens."""
RAISED = "RuntimeError: shape '[2, 6, 2, 1]' is invalid for input of size 36 (cell 14, line 22)"


def _check(check_id: str, part: str, points: float, status: str, lang: str, hidden: bool = False,
           key: str = "", **params: str) -> CheckResult:
    """A check as the judge records it: its title and message in `lang`."""
    output = t(key, lang, **params) if key else ""
    return CheckResult(t(f"check.{check_id}", lang), check_id, part, float(points) if status == "passed" else 0.0,
                       float(points), status, output, [part], "hidden" if hidden else "visible", key)


def graded(lang: str) -> SubmissionResult:
    """A graded record: passed, failed and hidden checks, two checks stopped by one raised error, a diagnosis that
    names a misconception and one that names none, and attention maps (one of them unreadable)."""
    raised = {"key": "student.raised", "type": "RuntimeError", "message": "shape '[2, 6, 2, 1]' is invalid for "
              "input of size 36", "line": " (cell 14, line 22)"}
    tests = [
        _check("test_softmax_naive_on_scores", "softmax_naive", 1, "passed", lang),
        _check("test_softmax_naive_matches_reference", "softmax_naive", 1, "passed", lang, hidden=True),
        _check("test_causal_shapes", "CausalAttention", 3, "passed", lang),
        _check("test_causal_no_peeking", "CausalAttention", 3, "failed", lang, key="fail.future_leak",
               where="CausalAttention.forward", position="2"),
        _check("test_causal_matches_reference", "CausalAttention", 4, "failed", lang, hidden=True,
               key="fail.future_leak", where="CausalAttention.forward", position="0"),
        _check("test_mha_layout", "MultiHeadAttention", 2, "passed", lang),
        _check("test_mha_shapes", "MultiHeadAttention", 3, "failed", lang, where="MultiHeadAttention.forward",
               **raised),
        _check("test_mha_no_peeking", "MultiHeadAttention", 3, "failed", lang, where="MultiHeadAttention.forward",
               **raised),
        _check("test_mha_matches_reference", "MultiHeadAttention", 4, "failed", lang, hidden=True,
               where="MultiHeadAttention.forward", **raised),
    ]
    misconception = t("ui.diagnosis", lang, part="CausalAttention", name=t("misconception.causal_mask_tril", lang),
                      hint=t("misconception.causal_mask_tril.hint", lang))
    unknown = t("ui.no_diagnosis", lang, part="MultiHeadAttention", hint=t("diagnosis.hint.MultiHeadAttention", lang))
    return SubmissionResult(
        "submissions/ada/ch03_attention.ipynb", sum(c.score for c in tests), sum(c.max_score for c in tests), 12.34567,
        output=f"{misconception}\n{unknown}\nCell 3 printed 5000 lines; the first 200 are kept.", tests=tests,
        isolation="bwrap", language=lang, sha256="ab" * 32,
        diagnoses=[{"part": "CausalAttention", "misconception": "causal_mask_tril", "message": misconception},
                   {"part": "MultiHeadAttention", "misconception": None, "message": unknown}],
        attention={"student": {"SelfAttention_v2": CAUSAL, "CausalAttention": TRIL, "MultiHeadAttention": RAISED},
                   "reference": {"SelfAttention_v2": CAUSAL, "CausalAttention": CAUSAL,
                                 "MultiHeadAttention": CAUSAL * 2},
                   "tokens": ["Your", "journey", "starts", "with", "one", "step"]},
        kit_version="0.1.0", checks_digest="0123456789ab", checks_files={"test_3_causal.py": "0123456789ab"})


def self_check(lang: str) -> SubmissionResult:
    """A self-check (visible checks only): one part done, one not started, one failing."""
    tests = [
        _check("test_softmax_naive_on_scores", "softmax_naive", 1, "passed", lang),
        _check("test_v1_parameters", "SelfAttention_v1", 2, "failed", lang, key="student.not_implemented",
               where="SelfAttention_v1.__init__"),
        _check("test_v1_shapes", "SelfAttention_v1", 2, "failed", lang, key="student.not_implemented",
               where="SelfAttention_v1.__init__"),
        _check("test_causal_shapes", "CausalAttention", 3, "passed", lang),
        _check("test_causal_no_peeking", "CausalAttention", 3, "failed", lang, key="fail.future_leak",
               where="CausalAttention.forward", position="2"),
    ]
    return SubmissionResult("ch03_attention.py", 4.0, 11.0, 3.5, tests=tests, language=lang, kit_version="0.1.0",
                            checks_digest="0123456789ab", checks_files={},
                            hidden_points={"softmax_naive": 1.0, "SelfAttention_v1": 4.0, "CausalAttention": 18.0})


def unreadable() -> SubmissionResult:
    """A submission that could not be graded at all."""
    return SubmissionResult("submissions/bob/broken.ipynb", 0.0, 0.0, 0.2, error="The file is not valid JSON "
                            "(line 1, column 12).", kit_version="0.1.0", checks_digest="0123456789ab", checks_files={})


@pytest.fixture
def golden(request):
    """Compare a text with tests/golden/NAME (or rewrite it under --update-goldens)."""
    update = request.config.getoption("--update-goldens")

    def compare(name: str, text: str) -> None:
        path = GOLDEN / name
        if update:
            path.parent.mkdir(exist_ok=True)
            path.write_text(text, encoding="utf-8", newline="")
            return
        assert path.is_file(), f"{path} is missing: run pytest {__file__} --update-goldens and review it"
        expected = path.read_bytes().decode("utf-8")
        if text != expected:
            diff = difflib.unified_diff(expected.splitlines(keepends=True), text.splitlines(keepends=True),
                                        f"golden/{name}", "today's output", n=2)
            pytest.fail(f"the output differs from tests/golden/{name} (--update-goldens rewrites it after an "
                        "intended change):\n" + "".join(diff), pytrace=False)

    return compare


@pytest.mark.parametrize("lang", ["en", "zh_TW"])  # the two catalogues
def test_checklist_text_of_a_graded_record(golden, lang):
    golden(f"checklist.{lang}.txt", checklist_text(graded(lang), lang) + "\n")


@pytest.mark.parametrize("lang", ["en", "zh_TW"])  # the terminal's short form: a line per part
def test_self_check_summary(golden, lang):
    golden(f"selfcheck.{lang}.txt", checklist_text(self_check(lang), lang, verbose=False) + "\n")


def test_feedback_page(golden):
    golden("feedback.en.html", feedback_html(graded("en")))


def test_gradebook_csv(golden, tmp_path):
    path = tmp_path / "grades.csv"
    write_gradebook([("ada__ch03_attention", graded("en")), ("bob__broken", unreadable()),
                     ("ch03_attention", self_check("en"))], path, load().graded)
    golden("grades.csv", path.read_bytes().decode("utf-8"))


def test_gradescope_results(golden):
    settings = GradescopeSettings(hidden_checks="after_published")
    results = to_gradescope(graded("en"), "ch03_attention.ipynb", settings)
    golden("results.json", json.dumps(results, ensure_ascii=False, indent=1) + "\n")
