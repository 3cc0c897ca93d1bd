"""The one-line self-check inside a notebook, run in a real Jupyter kernel."""
from __future__ import annotations

import nbformat
import pytest
from nbclient import NotebookClient

from tests.conftest import SUBMISSIONS

pytestmark = pytest.mark.slow


def run_notebook(tmp_path, code: str, check_cell: str) -> list[dict]:
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(code), nbformat.v4.new_code_cell(check_cell)])
    NotebookClient(notebook, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()
    return notebook.cells[1].outputs


def test_check_renders_a_passing_checklist(tmp_path):
    code = (SUBMISSIONS / "correct_reference.py").read_text()
    outputs = run_notebook(tmp_path, code, 'from autograder import check\ncheck("CausalAttention")')
    html = outputs[-1]["data"]["text/html"]
    assert html.count("class='check passed'") >= 6 and "class='check failed'" not in html
    assert "All visible checks pass" in html
    assert "text/plain" in outputs[-1]["data"] and "✓" in outputs[-1]["data"]["text/plain"]


def test_check_explains_a_bug_in_the_kernels_definitions(tmp_path):
    code = (SUBMISSIONS / "bug_causal_tril_mask.py").read_text()
    outputs = run_notebook(tmp_path, code, 'from autograder import check\ncheck("CausalAttention", lang="zh_TW")')
    html = outputs[-1]["data"]["text/html"]
    assert "class='check failed'" in html and "遮罩" in html


def test_check_leaves_the_students_random_state_alone(tmp_path):
    code = (SUBMISSIONS / "correct_reference.py").read_text()
    cell = ("import torch\nfrom autograder import check\ntorch.manual_seed(123)\ncheck('MultiHeadAttention')\n"
            "after = torch.rand(1).item()\ntorch.manual_seed(123)\nprint(after == torch.rand(1).item())")
    outputs = run_notebook(tmp_path, code, cell)
    assert "True" in "".join(o.get("text", "") for o in outputs)
