"""The self-check: its checklist (points, parts, errors) and the one-line check inside a notebook."""
from __future__ import annotations

import nbformat
import pytest
import torch
from nbclient import NotebookClient

from autograder.assignment import load
from autograder.integrations.selfcheck import check_in_notebook
from autograder.judge.run import check_table
from autograder.record import CheckResult, SubmissionResult
from autograder.report.checklist import checklist_html, checklist_text
from tests.conftest import ROOT, SUBMISSIONS

GRADED = load().graded
POINTS = load().points


def run_notebook(tmp_path, code: str, check_cell: str) -> list[dict]:
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(code), nbformat.v4.new_code_cell(check_cell)])
    resources = {"metadata": {"path": str(tmp_path)}}
    NotebookClient(notebook, timeout=300, kernel_name="python3", resources=resources).execute()
    return notebook.cells[1].outputs


def result_of(*checks: tuple[str, str, float, str, str]) -> SubmissionResult:
    """A self-check record from (part, status, points, message key, output) per visible check."""
    tests = [CheckResult(name=f"{part} check {i}", check_id=f"test_{i}", part=part, score=points if status == "passed"
                         else 0.0, max_score=points, status=status, output=output, tags=[part], visibility="visible",
                         message_key=key) for i, (part, status, points, key, output) in enumerate(checks)]
    record = SubmissionResult(submission="nb.ipynb", score=sum(c.score for c in tests),
                              max_score=sum(c.max_score for c in tests), execution_time=0.0, tests=tests)
    # what the hidden checks add, as pipeline.record notes it for a self-check
    record.hidden_points = {part: max(POINTS[part] - out_of, 0.0) for part, (_, out_of) in record.parts.items()}
    return record


RAISED = "CausalAttention.forward raised RuntimeError: {} (cell 37, line 32)"
RECORD = result_of(
    ("softmax_naive", "passed", 1.0, "", ""),
    ("SelfAttention_v1", "failed", 2.0, "student.not_implemented", "SelfAttention_v1 is not implemented yet."),
    ("SelfAttention_v1", "failed", 2.0, "student.not_implemented", "SelfAttention_v1 is not implemented yet."),
    ("CausalAttention", "passed", 4.0, "", ""),
    ("CausalAttention", "failed", 5.0, "student.raised", RAISED.format("size [2, 2] but got [2, 6]")),
    ("CausalAttention", "failed", 6.0, "student.raised", RAISED.format("tensor a (12) must match b (2)")),
)


def test_the_notebooks_points_are_the_checks_points():
    """What the checklist promises as "more when graded" is what the hidden checks carry."""
    declared = dict.fromkeys(GRADED, 0.0)
    for info in check_table(load().checks):
        declared[info.names[0]] += info.points
    assert declared == POINTS, "config.POINTS differs from the checks' points"
    for lang in ("en", "zh_TW"):
        nb = nbformat.read(ROOT / "solutions" / lang / "ch03_attention.ipynb", as_version=4)
        cells = {c.metadata.nbgrader["grade_id"]: c.metadata.nbgrader for c in nb.cells}
        notebook = {name: cells[f"test_{name}"]["points"] for name in GRADED}
        assert notebook == POINTS, f"{lang}: the notebook's points differ from config.POINTS"


def test_checklist_shows_visible_and_hidden_points_that_add_up():
    text = checklist_text(RECORD, "en")
    # CausalAttention: 4 of the 15 visible points here, 24 - 15 = 9 more when graded; 1 + 4 + 9 = 14 in all
    assert "Visible checks: 4 of 15 points earned; 9 more points are checked when your work is graded" in text, text
    assert "Visible checks in all: 5 of 20 points earned. 14 more points are checked when your work is graded " \
           "(34 in all)." in text, text
    zh = checklist_text(RECORD, "zh_TW")
    assert "這裡檢查 15 分，你得到 4 分；另外 9 分會在正式評分時檢查" in zh, zh
    assert "公開的檢查" in zh and "看得到" not in zh, zh
    html = checklist_html(RECORD, "en")
    assert "9 more points are checked when your work is graded" in html and "(34 in all)" in html, html


def test_terminal_summary_leads_with_a_line_per_part_and_details_for_started_parts():
    text = checklist_text(RECORD, "en", verbose=False)
    lines = text.splitlines()
    summary = {line.split()[1]: line for line in lines if line[:1] in "✓✗·" and len(line.split()) > 1}
    assert summary["softmax_naive"].startswith("✓") and "done" in summary["softmax_naive"], text
    assert summary["SelfAttention_v1"].startswith("·") and "not started" in summary["SelfAttention_v1"], text
    assert summary["CausalAttention"].startswith("✗") and "2 of 3 checks failing" in summary["CausalAttention"], text
    assert "is not implemented yet" not in text, "a part not started gets no details"
    # one RuntimeError at one line stops two checks: its message is shown once
    assert text.count("RuntimeError") == 1 and "The same error as “CausalAttention check 4”." in text, text
    assert "--verbose" in text and "counted from 1" in text, text
    verbose = checklist_text(RECORD, "en", verbose=True)
    assert "is not implemented yet" in verbose and "softmax_naive check 0" in verbose, verbose


def test_zh_tw_positions_are_translated():
    zh = checklist_text(RECORD, "zh_TW", verbose=False)
    # positions are localised when messages are made
    assert "cell 37" in zh, "the record's own text is left as recorded"
    from autograder.i18n import t

    message = t("student.raised", "zh_TW", where="f", type="RuntimeError", message="x", line=" (cell 37, line 32)")
    assert "第 37 個儲存格，第 32 行" in message and "cell" not in message, message
    assert "第 8 個儲存格" in t("load.syntax", "zh_TW", origin="cell 8", line=3, error="e")


def test_check_judges_the_object_it_is_given_not_the_namespace():
    def softmax_naive(x: torch.Tensor) -> torch.Tensor:
        exp_x = torch.exp(x)
        return exp_x / exp_x.sum(dim=0)

    def broken(x: torch.Tensor) -> torch.Tensor:  # forgets to normalise
        return torch.exp(x)

    broken.__name__ = "softmax_naive"
    namespace = {"torch": torch, "softmax_naive": softmax_naive}
    assert check_in_notebook(softmax_naive, "en", namespace).passed
    assert not check_in_notebook(broken, "en", namespace).passed, "the namespace's copy was judged instead"
    assert check_in_notebook("softmax_naive", "en", namespace).passed, "a name still works"
    with pytest.raises(ValueError, match="not graded"):
        check_in_notebook(print, "en", namespace)


@pytest.mark.slow
def test_check_renders_a_passing_checklist(tmp_path):
    code = (SUBMISSIONS / "correct_reference.py").read_text()
    outputs = run_notebook(tmp_path, code, "from autograder import check\ncheck(CausalAttention)")
    html = outputs[-1]["data"]["text/html"]
    assert html.count("class='check passed'") >= 6 and "class='check failed'" not in html
    assert "All visible checks pass" in html
    assert "9 more points are checked when your work is graded" in html, html
    assert "text/plain" in outputs[-1]["data"] and "✓" in outputs[-1]["data"]["text/plain"]


@pytest.mark.slow
def test_check_explains_a_bug_in_the_kernels_definitions(tmp_path):
    code = (SUBMISSIONS / "bug_causal_tril_mask.py").read_text()
    outputs = run_notebook(tmp_path, code, 'from autograder import check\ncheck("CausalAttention", lang="zh_TW")')
    html = outputs[-1]["data"]["text/html"]
    assert "class='check failed'" in html and "遮罩" in html


@pytest.mark.slow
def test_check_leaves_the_students_random_state_alone(tmp_path):
    code = (SUBMISSIONS / "correct_reference.py").read_text()
    cell = ("import torch\nfrom autograder import check\ntorch.manual_seed(123)\ncheck(MultiHeadAttention)\n"
            "after = torch.rand(1).item()\ntorch.manual_seed(123)\nprint(after == torch.rand(1).item())")
    outputs = run_notebook(tmp_path, code, cell)
    assert "True" in "".join(o.get("text", "") for o in outputs)


def test_the_self_check_loads_no_pytest_plugin_installed_in_the_environment(tmp_path):
    """A plugin some other package installed (pytest-benchmark warns under xdist) must not run inside the check:
    in nbgrader's kernel a word on stderr scores the cell 0."""
    import subprocess
    import sys

    (tmp_path / "noisy_plugin.py").write_text(
        "import sys\ndef pytest_configure(config):\n    sys.stderr.write('NOISY PLUGIN LOADED\\n')\n")
    info = tmp_path / "noisy_plugin-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: noisy-plugin\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text("[pytest11]\nnoisy = noisy_plugin\n")
    code = ("import torch\nfrom autograder import check\n"
            "def softmax_naive(x):\n    return torch.exp(x) / torch.exp(x).sum(dim=0)\n"
            "print(check(softmax_naive).passed)\n")
    env = {**__import__("os").environ, "PYTHONPATH": f"{tmp_path}:{ROOT}"}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    probe = subprocess.run([sys.executable, "-c", "import importlib.metadata as m; "
                            "print([e.name for e in m.entry_points(group='pytest11')])"],
                           capture_output=True, text=True, env=env, timeout=60)
    assert "noisy" in probe.stdout, f"the fake plugin is not installed, so this test proves nothing: {probe.stdout}"
    assert done.returncode == 0, done.stderr
    assert "NOISY PLUGIN LOADED" not in done.stderr, f"an installed pytest plugin ran inside the check:\n{done.stderr}"
