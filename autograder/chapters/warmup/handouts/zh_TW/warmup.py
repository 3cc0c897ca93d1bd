import marimo

__generated_with = "0.25.2"
app = marimo.App()

with app.setup:
    import torch
    import torch.nn as nn


@app.cell
def _():
    import marimo as mo

    return (mo,)


@app.cell(hide_code=True)
def _(mo):
    mo.md(r"""
    # 暖身 · 從分數到注意力

    進入第 3 章之前的兩個小任務：先把分數轉成權重，再用這些權重混合詞元向量。把標示給你的儲存格寫完並執行，接著執行下面的檢查儲存格。
    """)
    return


@app.cell(hide_code=True)
def _(mo):
    mo.md(r"""
    ## 任務 1 · `row_softmax`（4 分）

    輸入一個分數矩陣，回傳形狀相同的權重：每個元素都是正數，每一列的總和都是 1。取指數之前，先把每一列減去該列最大的分數，分數很大時才不會溢位。
    """)
    return


@app.function
def row_softmax(scores: torch.Tensor) -> torch.Tensor:
    """沿著最後一個維度做 softmax，分數很大時也穩定。"""
    # 在這裡寫你的程式碼
    raise NotImplementedError()


@app.cell
def _():
    from autograder import check
    check(row_softmax)
    return (check,)


@app.cell(hide_code=True)
def _(mo):
    mo.md(r"""
    ## 任務 2 · `DotProductAttention`（6 分）

    對形狀為 `(tokens, d_in)` 的輸入做單頭自注意力。保留三個 `nn.Linear(d_in, d_out, bias=False)` 層，分別命名為 `W_query`、`W_key`、`W_value`。讓每個查詢和每個鍵算出分數，除以 `d_out` 的平方根，用 `row_softmax` 把每一列轉成權重，最後回傳值向量的加權總和，形狀為 `(tokens, d_out)`。
    """)
    return


@app.class_definition
class DotProductAttention(nn.Module):
    """單頭的縮放點積自注意力。"""

    def __init__(self, d_in: int, d_out: int):
        super().__init__()
        # 在這裡寫你的程式碼
        raise NotImplementedError()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # 在這裡寫你的程式碼
        raise NotImplementedError()


@app.cell
def _(check):
    check(DotProductAttention)
    return


if __name__ == "__main__":
    app.run()
