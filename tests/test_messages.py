"""Messages that name the cause: the feedback language, and noise kept from the student's page."""
from __future__ import annotations

import nbformat
import pytest

from autograder.load.submission import load_submission

CODE = "import torch\n\ndef softmax_naive(x):\n    return torch.exp(x) / torch.exp(x).sum(dim=0)\n"


@pytest.mark.parametrize("comment, lang", [
    ("# 自注意力機制的實作：先計算注意力分數，再用軟最大值函數得到注意力權重，最後加權求和得到上下文向量。", "zh_TW"),
    ("# 自己注意機構の実装です。まず注意スコアを計算し、ソフトマックス関数で注意重みを求め、最後に加重和で文脈ベクトルを得ます。", "en"),
    ("# 셀프 어텐션 구현입니다. 먼저 어텐션 점수를 계산하고 소프트맥스 함수로 어텐션 가중치를 구한 다음 가중합으로 문맥 벡터를 얻습니다.", "en"),
    ("# 自己注意(じこちゅうい)機構の實裝。注意分數を計算して、權重を求める。上下文向量を得る。加權總和を計算する。", "en"),
])
def test_only_chinese_prose_selects_traditional_chinese(tmp_path, comment, lang):
    path = tmp_path / "submission.py"
    path.write_text(comment + "\n" + CODE, encoding="utf-8")
    assert load_submission(path).lang == lang


def test_an_assignment_that_needs_demo_values_is_not_run(tmp_path):
    notebook = nbformat.v4.new_notebook()
    notebook.cells = [nbformat.v4.new_code_cell("import torch\ninputs = torch.rand(6, 3)\nd_in = inputs.shape[1]"),
                      nbformat.v4.new_code_cell("typo = undefined_anywhere + 1\nalias = softmax_naive\nd_out = d_in"),
                      nbformat.v4.new_code_cell("inputs = 3\nn = inputs")]
    path = tmp_path / "demo.ipynb"
    nbformat.write(notebook, path)
    submission = load_submission(path)
    kept = [chunk.code.strip() for chunk in submission.chunks]
    assert "d_in = inputs.shape[1]" not in kept and "d_out = d_in" not in kept, "they could only fail"
    assert {"inputs", "d_in", "d_out"} <= submission.skipped_names
    assert "typo = undefined_anywhere + 1" in kept, "a name nothing defines is the student's own mistake: it runs"
    assert "n = inputs" in kept, "inputs = 3 is kept, so what reads it afterwards runs"
