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
    # Warm-up · From scores to attention

    Two short tasks before chapter 3: turn scores into weights, then use those weights to mix token vectors. Fill in each cell marked for you, run it, then run the check cell below it.
    """)
    return


@app.cell(hide_code=True)
def _(mo):
    mo.md(r"""
    ## Task 1 · `row_softmax` (4 points)

    Given a matrix of scores, return weights of the same shape: every entry positive, every row summing to 1. Subtract each row's largest score before exponentiating, so that large scores do not overflow.
    """)
    return


@app.function
def row_softmax(scores: torch.Tensor) -> torch.Tensor:
    """Softmax along the last dimension, stable for large scores."""
    # YOUR CODE HERE
    raise NotImplementedError()


@app.cell
def _():
    from autograder import check
    check(row_softmax)
    return (check,)


@app.cell(hide_code=True)
def _(mo):
    mo.md(r"""
    ## Task 2 · `DotProductAttention` (6 points)

    One head of self-attention for an input of shape `(tokens, d_in)`. Keep three `nn.Linear(d_in, d_out, bias=False)` layers named `W_query`, `W_key` and `W_value`. Score every query against every key, divide by the square root of `d_out`, turn each row into weights with `row_softmax`, and return the weighted sum of the values: shape `(tokens, d_out)`.
    """)
    return


@app.class_definition
class DotProductAttention(nn.Module):
    """Scaled dot-product self-attention with one head."""

    def __init__(self, d_in: int, d_out: int):
        super().__init__()
        # YOUR CODE HERE
        raise NotImplementedError()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # YOUR CODE HERE
        raise NotImplementedError()


@app.cell
def _(check):
    check(DotProductAttention)
    return


if __name__ == "__main__":
    app.run()
