import marimo

__generated_with = "0.25.2"
app = marimo.App()

with app.setup:
    import matplotlib.pyplot as plt
    import numpy as np
    import torch
    import torch.nn as nn


    def plot_attention(weights: torch.Tensor, tokens: list[str], title: str) -> plt.Figure:
        """Draw attention weights as heatmaps: one row per query token, one column per key token.

        Args:
            weights: (T, T) for one head, or (heads, T, T) to draw the heads side by side.
            tokens: the T tokens, used as axis labels.
            title: the title above the heatmap; with several heads the head number is appended.
        """
        weights = weights.detach().float().cpu()
        if weights.dim() == 2:
            weights = weights.unsqueeze(0)  # (1, T, T)
        num_heads = weights.shape[0]
        # one colour scale for all heads, stretched to the largest weight so small differences show
        vmax = weights.max().item()
        fig, axes = plt.subplots(
            1, num_heads, figsize=(2.6 * num_heads, 2.6), squeeze=False, layout="constrained"
        )
        for head, ax in enumerate(axes[0]):
            ax.imshow(weights[head], cmap="Blues", vmin=0.0, vmax=vmax)
            for (row, col), value in np.ndenumerate(weights[head].numpy()):
                color = "white" if value > 0.6 * vmax else "black"
                ax.text(col, row, f"{value:.2f}", ha="center", va="center", fontsize=5, color=color)
            ax.set_xticks(range(len(tokens)), tokens, rotation=90, fontsize=7)
            ax.set_yticks(range(len(tokens)), tokens, fontsize=7)
            ax.set_xlabel("key", fontsize=7)
            ax.set_ylabel("query", fontsize=7)
            ax.set_title(title if num_heads == 1 else f"{title}, head {head + 1}", fontsize=8)
        # the notebook displays the returned figure; closing it here avoids a second copy
        plt.close(fig)
        return fig


    def capture_attention_weights(model: nn.Module, x: torch.Tensor) -> list[torch.Tensor]:
        """Run model(x) and return the output of every nn.Dropout inside it, in call order.

        Attention modules apply dropout to their attention weights, so each output is the matrix
        the values get mixed with: (b, T, T) for CausalAttention, (b, heads, T, T) for MultiHeadAttention.
        """
        captured = []

        def record(module: nn.Module, args: tuple, output: torch.Tensor) -> None:
            captured.append(output.detach())

        handles = [m.register_forward_hook(record) for m in model.modules() if isinstance(m, nn.Dropout)]
        try:
            with torch.inference_mode():
                model(x)
        finally:
            for handle in handles:
                handle.remove()
        if not captured:
            raise RuntimeError(
                f"{type(model).__name__} never called an nn.Dropout layer: "
                "apply self.dropout to the attention weights in forward()"
            )
        return captured


@app.cell
def _():
    import marimo as mo

    return (mo,)


@app.cell(hide_code=True)
def _(mo):
    mo.md(r"""
    # Chapter 3 · Attention mechanisms

    This assignment follows chapter 3 of Sebastian Raschka's *Build a Large Language Model (From Scratch)*. It starts from the bare idea of attention (blend the token vectors according to how similar they are) and ends with the multi-head causal attention module found in every GPT block.

    **How this notebook works**

    - Each part opens with an explanation, followed by a cell with a *stub*: a signature and a docstring, with `raise NotImplementedError()` where your code belongs. Replace that line with your implementation. Keep the names and signatures as they are: the grader looks them up by name.
    - The cell after a stub runs your code on the example sentence. Random seeds are set at the same places as in the book, so a correct implementation prints the book's numbers.
    - Each part ends with a check cell, `check(name)`, which runs quick tests on the object your cell defined and prints a checklist. It checks part of each task's points; the rest are checked when your work is graded, so the checklist says how many points it covers and how many more are still to come.

    | Part | Section | You write | Points |
    |---|---|---|---|
    | 1 | 3.3 | `softmax_naive`, `simple_self_attention` | 2 + 6 |
    | 2 | 3.4 | `SelfAttention_v1`, `SelfAttention_v2`, `load_v2_weights_into_v1` (exercise 3.1) | 8 + 8 + 5 |
    | 3 | 3.5 | `CausalAttention` | 24 |
    | 4 | 3.6 | `MultiHeadAttentionWrapper`, `exercise_3_2`, `MultiHeadAttention`, `exercise_3_3` | 14 + 4 + 24 + 5 |

    Total: 100 points.
    """)
    return


@app.cell(hide_code=True)
def _(mo):
    # Cell tags: marimo-only
    mo.md(r"""
    **In marimo.** marimo runs a cell again by itself whenever a cell it depends on changes: after you edit a stub and run it (Ctrl+Enter, or Cmd+Enter on a Mac), its demo and its check cell update on their own, so a check result always belongs to the code you see. A demo that needs a task you have not done yet shows an error until you do it. If the notebook opens without running its cells (some marimo settings run nothing on start-up, or mark changed cells as stale instead of running them), click the `Run` button at the bottom right once. Save with Ctrl+S (Cmd+S): the grader reads the saved file.
    """)
    return


@app.cell(hide_code=True)
def _(mo):
    mo.md(r"""
    ## Setup

    Run the next cell first. Besides importing PyTorch, it defines two helpers for the pictures in this notebook:

    - `plot_attention(weights, tokens, title)` draws attention weights as a heatmap. Row *i* shows how the query token *i* spreads its attention over the tokens in the columns; darker means more weight.
    - `capture_attention_weights(model, x)` runs a module and returns the attention weights it computed. It listens to the module's `nn.Dropout` layers, which are applied right to the attention weights, so it works for the modules of parts 3 and 4.
    """)
    return


@app.cell(hide_code=True)
def _(mo):
    mo.md(r"""
    ## Part 1 · Attention without trainable weights (section 3.3)

    The running example is the sentence `Your journey starts with one step`, split into six tokens. Each token is already embedded as a three-dimensional vector $x^{(1)}, \dots, x^{(6)}$. A real GPT-2 uses 768 dimensions; three keep every number readable.

    Self-attention turns each input vector $x^{(i)}$ into a **context vector** $z^{(i)}$: a blend of *all* input vectors in which the tokens that matter most for token $i$ get the largest share. With no trainable weights this takes three steps for a query token $x^{(i)}$:

    1. **Scores.** Compare the query with every token through a dot product, $\omega_{ij} = x^{(i)} \cdot x^{(j)}$. The dot product is large when two vectors point in similar directions.
    2. **Weights.** Turn the query's scores into positive numbers that add up to 1 with the softmax function, $\alpha_{ij} = e^{\omega_{ij}} / \sum_k e^{\omega_{ik}}$.
    3. **Context vector.** Mix the inputs with these weights, $z^{(i)} = \sum_j \alpha_{ij} \, x^{(j)}$.
    """)
    return


@app.cell
def _():
    tokens = ["Your", "journey", "starts", "with", "one", "step"]
    inputs = torch.tensor(
        [
            [0.43, 0.15, 0.89],  # Your     (x^1)
            [0.55, 0.87, 0.66],  # journey  (x^2)
            [0.57, 0.85, 0.64],  # starts   (x^3)
            [0.22, 0.58, 0.33],  # with     (x^4)
            [0.77, 0.25, 0.10],  # one      (x^5)
            [0.05, 0.80, 0.55],  # step     (x^6)
        ]
    )
    print(inputs.shape)
    return inputs, tokens


@app.cell(hide_code=True)
def _(mo):
    mo.md(r"""
    ### Task 1.1 · `softmax_naive` (2 points)

    Write the softmax formula literally: exponentiate every entry and divide by the sum of the exponentials along dimension 0. For a vector of scores this gives positive weights that sum to 1, and larger scores receive a disproportionately larger share.

    The function is called *naive* because `torch.exp` overflows to `inf` once a score exceeds about 88 (in float32), and `inf / inf` is `nan`. `torch.softmax` avoids this by subtracting the largest score first, which leaves the result unchanged because the factor $e^{-\max}$ cancels. After this task we use `torch.softmax`.

    The cell after the stub runs the three steps for a single query, the second token *journey*, and prints its scores, weights and context vector.
    """)
    return


@app.function
def softmax_naive(x: torch.Tensor) -> torch.Tensor:
    """Softmax written straight from its formula, normalising along dim 0.

    Args:
        x: scores of shape (T,).
    Returns:
        Positive weights with the shape of x that sum to 1 along dim 0.
    """
    # YOUR CODE HERE
    raise NotImplementedError()


@app.cell
def _(inputs):
    query_2 = inputs[1]  # "journey" asks the question
    # step 1: one dot product per token
    attn_scores_2 = torch.stack([torch.dot(x_j, query_2) for x_j in inputs])  # (6,)
    return (attn_scores_2,)


@app.cell
def _(attn_scores_2, inputs):
    # step 2: normalise with your softmax
    attn_weights_2 = softmax_naive(attn_scores_2)  # (6,)
    # step 3: blend all inputs with the weights
    context_vec_2 = sum(w * x_j for w, x_j in zip(attn_weights_2, inputs))  # (3,)
    print("scores: ", attn_scores_2)
    print("weights:", attn_weights_2, "sum:", round(attn_weights_2.sum().item(), 4))
    print("context:", context_vec_2)
    return (context_vec_2,)


@app.cell
def _():
    from autograder import check
    check(softmax_naive)
    return (check,)


@app.cell(hide_code=True)
def _(mo):
    mo.md(r"""
    ### Task 1.2 · `simple_self_attention` (6 points)

    Every token can take its turn as the query. Collecting the scores of all queries gives a $T \times T$ matrix whose row $i$ holds $\omega_{i1}, \dots, \omega_{iT}$. The next cell builds that matrix with two nested loops, normalises each row with your `softmax_naive` and draws the result: each row of the heatmap is the attention of one query.

    Loops are slow and hide the structure. Your task is to compute all six context vectors at once, without Python loops, in `simple_self_attention(inputs)`:

    - all pairwise dot products come out of a single matrix product of the inputs with their transpose;
    - normalise every *row* of the scores with `torch.softmax(..., dim=-1)`;
    - one more matrix product mixes the inputs, $(T, T) \times (T, d) \to (T, d)$.

    Row 2 of your result must equal the context vector of *journey* from task 1.1.
    """)
    return


@app.cell
def _(inputs, tokens):
    # row i holds the scores of query i against every token, one dot product at a time
    attn_scores_loop = torch.tensor([[torch.dot(x_i, x_j).item() for x_j in inputs] for x_i in inputs])  # (6, 6)
    attn_weights_loop = torch.stack([softmax_naive(row) for row in attn_scores_loop])  # (6, 6)
    plot_attention(attn_weights_loop, tokens, "Simple self-attention")
    return


@app.function
def simple_self_attention(inputs: torch.Tensor) -> torch.Tensor:
    """Self-attention without trainable weights: each token is query, key and value at once.

    Args:
        inputs: token embeddings of shape (T, d).
    Returns:
        Context vectors of shape (T, d); row i is the attention-weighted mix of all inputs for query i.
    """
    # YOUR CODE HERE
    raise NotImplementedError()


@app.cell
def _(inputs):
    all_context_vecs = simple_self_attention(inputs)  # (6, 3)
    print(all_context_vecs)
    return (all_context_vecs,)


@app.cell
def _(all_context_vecs, context_vec_2):
    # row 2 has to agree with the step-by-step result for "journey"
    print("row 2 matches task 1.1:", torch.allclose(all_context_vecs[1], context_vec_2))
    return


@app.cell
def _(check):
    check(simple_self_attention)
    return


@app.cell(hide_code=True)
def _(mo):
    mo.md(r"""
    ## Part 2 · Self-attention with trainable weights (section 3.4)

    In part 1 every vector played three roles at once: it asked the question (query), it was compared against (key), and it was the content being mixed (value). Nothing in that computation can be trained. Real attention gives each role its own trainable matrix and projects every input three times:

    $$q^{(i)} = x^{(i)} W_q, \qquad k^{(i)} = x^{(i)} W_k, \qquad v^{(i)} = x^{(i)} W_v$$

    The score of query $i$ for token $j$ becomes $q^{(i)} \cdot k^{(j)}$, and the context vector mixes the *values*. In matrix form, with the inputs stacked as the rows of $X$:

    $$Q = X W_q, \quad K = X W_k, \quad V = X W_v, \qquad Z = \operatorname{softmax}\left(\frac{Q K^\top}{\sqrt{d_k}}\right) V$$

    Dividing by $\sqrt{d_k}$, where $d_k$ is the size of the keys (`keys.shape[-1]`), is what makes this *scaled* dot-product attention. Dot products of longer vectors tend to be larger in magnitude, and softmax turns large scores into an almost one-hot distribution whose gradients are nearly zero, which stalls training. The next cell shows the effect.
    """)
    return


@app.cell
def _():
    demo_scores = torch.tensor([0.4, -0.2, 0.3, -0.1, 0.5])
    print(torch.softmax(demo_scores, dim=-1))
    # the same ranking at eight times the magnitude: nearly all weight lands on one entry
    print(torch.softmax(demo_scores * 8, dim=-1))
    return


@app.cell(hide_code=True)
def _(mo):
    mo.md(r"""
    ### Task 2.1 · `SelfAttention_v1` (8 points)

    Turn the formulas above into an `nn.Module`. Store the three matrices as `nn.Parameter` attributes `W_query`, `W_key` and `W_value`, each of shape `(d_in, d_out)` and filled by `torch.rand`. Create them in exactly this order: after `torch.manual_seed(123)` the order decides which random numbers each matrix receives, and therefore whether your output matches the book's.

    `forward(x)` takes one sequence of shape `(T, d_in)` and returns its context vectors, shape `(T, d_out)`. Normalise every row of the scaled scores with `torch.softmax(..., dim=-1)`.
    """)
    return


@app.class_definition
class SelfAttention_v1(nn.Module):
    """Self-attention whose query, key and value matrices are raw trainable parameters.

    Attributes:
        W_query, W_key, W_value: nn.Parameter of shape (d_in, d_out), created in this order with torch.rand.
    """

    def __init__(self, d_in: int, d_out: int) -> None:
        super().__init__()
        # YOUR CODE HERE
        raise NotImplementedError()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map a sequence x of shape (T, d_in) to its context vectors, shape (T, d_out)."""
        # YOUR CODE HERE
        raise NotImplementedError()


@app.cell
def _(inputs):
    torch.manual_seed(123)
    sa_v1 = SelfAttention_v1(d_in=3, d_out=2)
    print(sa_v1(inputs))
    return


@app.cell
def _(check):
    check(SelfAttention_v1)
    return


@app.cell(hide_code=True)
def _(mo):
    mo.md(r"""
    ### Task 2.2 · `SelfAttention_v2` (8 points)

    `nn.Linear(d_in, d_out, bias=False)` computes the same product as `x @ W`, but it stores its weight as `(d_out, d_in)` and multiplies by the transpose. Using it instead of raw parameters brings two things: a better initialisation (scaled to the input size, which keeps activations in a sensible range) and an optional bias term, switched on here by `qkv_bias=True`.

    Write `SelfAttention_v2` with three `nn.Linear` layers named `W_query`, `W_key` and `W_value`, created in this order with `bias=qkv_bias`; the rest of the computation is the same as in version 1. The output differs from version 1 because the weights start from different random values.
    """)
    return


@app.class_definition
class SelfAttention_v2(nn.Module):
    """Self-attention whose query, key and value projections are nn.Linear layers.

    Attributes:
        W_query, W_key, W_value: nn.Linear(d_in, d_out, bias=qkv_bias), created in this order.
    """

    def __init__(self, d_in: int, d_out: int, qkv_bias: bool = False) -> None:
        super().__init__()
        # YOUR CODE HERE
        raise NotImplementedError()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map a sequence x of shape (T, d_in) to its context vectors, shape (T, d_out)."""
        # YOUR CODE HERE
        raise NotImplementedError()


@app.cell
def _():
    torch.manual_seed(789)
    sa_v2 = SelfAttention_v2(d_in=3, d_out=2)
    return (sa_v2,)


@app.cell
def _(inputs, sa_v2):
    print(sa_v2(inputs))
    return


@app.cell
def _(check):
    check(SelfAttention_v2)
    return


@app.cell(hide_code=True)
def _(mo):
    mo.md(r"""
    ### Exercise 3.1 · `load_v2_weights_into_v1` (5 points)

    The two classes compute the same function; they only store their weights differently. Show it: write `load_v2_weights_into_v1(sa_v1, sa_v2)`, which overwrites the three matrices of `sa_v1` with those of `sa_v2`, so that both modules return the same output for any input.

    - `sa_v2.W_query.weight` has shape `(d_out, d_in)`, while `sa_v1.W_query` has shape `(d_in, d_out)`.
    - Change the parameters in place, for example with `Tensor.copy_`, inside a `torch.no_grad()` block. Autograd refuses in-place changes to a leaf tensor that requires gradients, and the copy is not a computation to differentiate anyway.
    - `sa_v2` must have been built with `qkv_bias=False`, since version 1 has no bias.
    - The function returns nothing; it modifies `sa_v1`.
    """)
    return


@app.function
def load_v2_weights_into_v1(sa_v1: SelfAttention_v1, sa_v2: SelfAttention_v2) -> None:
    """Overwrite the weights of sa_v1 in place so that sa_v1(x) equals sa_v2(x) for every x.

    nn.Linear stores its weight as (d_out, d_in); SelfAttention_v1 stores (d_in, d_out).
    """
    # YOUR CODE HERE
    raise NotImplementedError()


@app.cell
def _(inputs, sa_v2):
    torch.manual_seed(123)
    sa_v1_loaded = SelfAttention_v1(d_in=3, d_out=2)
    load_v2_weights_into_v1(sa_v1_loaded, sa_v2)
    print(sa_v1_loaded(inputs))
    print("same output as sa_v2:", torch.allclose(sa_v1_loaded(inputs), sa_v2(inputs)))
    return


@app.cell
def _(check):
    check(load_v2_weights_into_v1)
    return


@app.cell(hide_code=True)
def _(mo):
    mo.md(r"""
    ## Part 3 · Causal attention (section 3.5)

    A GPT model writes text one token at a time, from left to right. While it learns to predict the token that follows position $i$, it must not see the tokens after $i$, or it could simply copy the answer. **Causal** (or masked) attention therefore lets each query attend only to itself and to earlier tokens: in the weight matrix, every entry above the diagonal has to be zero.

    The clean way to get those zeros is to mask the scores *before* the softmax. Set every score above the diagonal to $-\infty$: since $e^{-\infty} = 0$, those positions receive exactly zero weight, and the remaining weights of each row still add up to 1. (Zeroing the weights after the softmax would need a second normalisation.) The positions to hide are the ones in `torch.triu(torch.ones(T, T), diagonal=1)`, which has ones strictly above the diagonal.

    GPT models also apply **dropout** to the attention weights during training: each weight is set to zero with probability $p$, and the survivors are multiplied by $1/(1-p)$ so that the expected total stays the same. This discourages the model from relying on a few particular connections. In evaluation mode (`model.eval()`) dropout does nothing.

    The next cell shows both ingredients on small examples.
    """)
    return


@app.cell
def _():
    # 1 marks a future position, hidden from the query in that row
    print(torch.triu(torch.ones(4, 4), diagonal=1))
    torch.manual_seed(123)
    # about half of the entries become 0; the others grow from 1 to 1 / (1 - 0.5) = 2
    print(nn.Dropout(0.5)(torch.ones(4, 4)))
    return


@app.cell(hide_code=True)
def _(mo):
    mo.md(r"""
    ### Task 3 · `CausalAttention` (24 points)

    From now on the modules take a **batch** of sequences, shape `(b, T, d_in)`; the example batch stacks our sentence twice. Matrix products work batch by batch, but transposing the keys must now swap only the last two dimensions, `keys.transpose(1, 2)`, instead of using `.T`.

    Build `CausalAttention(d_in, d_out, context_length, dropout, qkv_bias=False)` with these attributes:

    - `W_query`, `W_key`, `W_value`: `nn.Linear(d_in, d_out)` layers with `bias=qkv_bias`, created in this order;
    - `dropout`: an `nn.Dropout` with drop probability `dropout`, applied to the attention weights after the softmax;
    - `mask`: the upper-triangular `(context_length, context_length)` matrix described above, registered with `self.register_buffer("mask", ...)`. A buffer belongs to the module's state: it follows `.to(device)` and is saved by `state_dict()`, but the optimizer never changes it.

    In `forward`, a batch may be shorter than `context_length`, so use only the top-left `T × T` corner of the mask. `masked_fill_` with the boolean mask and `-torch.inf` does the masking in place. Scale and normalise as before.
    """)
    return


@app.cell
def _(inputs):
    batch = torch.stack((inputs, inputs), dim=0)  # (2, 6, 3): the sentence twice
    return (batch,)


@app.class_definition
class CausalAttention(nn.Module):
    """Single-head self-attention in which each token attends only to itself and earlier tokens.

    Attributes:
        W_query, W_key, W_value: nn.Linear(d_in, d_out, bias=qkv_bias), created in this order.
        dropout: nn.Dropout(dropout), applied to the attention weights.
        mask: buffer (context_length, context_length), 1 above the diagonal (future positions).
    """

    def __init__(
        self, d_in: int, d_out: int, context_length: int, dropout: float, qkv_bias: bool = False
    ) -> None:
        super().__init__()
        # YOUR CODE HERE
        raise NotImplementedError()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map a batch x of shape (b, T, d_in), T <= context_length, to context vectors (b, T, d_out)."""
        # YOUR CODE HERE
        raise NotImplementedError()


@app.cell
def _(batch, tokens):
    torch.manual_seed(123)
    ca = CausalAttention(d_in=3, d_out=2, context_length=6, dropout=0.0)
    context_vecs = ca(batch)
    print(context_vecs)
    print(context_vecs.shape)
    # the first example of the batch: nothing above the diagonal
    plot_attention(capture_attention_weights(ca, batch)[0][0], tokens, "Causal attention")
    return


@app.cell
def _(batch, tokens):
    # a fresh module in training mode with dropout 0.5: some weights vanish, the survivors double
    torch.manual_seed(123)
    ca_dropout = CausalAttention(d_in=3, d_out=2, context_length=6, dropout=0.5)
    plot_attention(capture_attention_weights(ca_dropout, batch)[0][0], tokens, "Causal, dropout 0.5")
    return


@app.cell
def _(check):
    check(CausalAttention)
    return


@app.cell(hide_code=True)
def _(mo):
    mo.md(r"""
    ## Part 4 · Multi-head attention (section 3.6)

    A single attention module learns one notion of which tokens are relevant to each other. **Multi-head attention** runs several causal attention modules, the *heads*, side by side on the same input, each with its own projection matrices, and concatenates their outputs. The heads can then specialise: one might follow the previous word, another the subject of the sentence. The smallest GPT-2 has 12 heads in each layer.

    You will build it twice: first as a plain wrapper around your `CausalAttention`, then as a single module that computes all heads with a few tensor operations.
    """)
    return


@app.cell(hide_code=True)
def _(mo):
    mo.md(r"""
    ### Task 4.1 · `MultiHeadAttentionWrapper` (14 points)

    Keep `num_heads` independent `CausalAttention(d_in, d_out, context_length, dropout, qkv_bias)` modules in an attribute `heads` of type `nn.ModuleList`; a plain Python list would hide their parameters from PyTorch. `forward` runs every head on `x` and concatenates the results along the last dimension, so each head contributes `d_out` features and the output has shape `(b, T, num_heads * d_out)`.

    The heatmaps after the demo show one weight matrix per head: the same causal pattern, different weights.
    """)
    return


@app.class_definition
class MultiHeadAttentionWrapper(nn.Module):
    """num_heads independent CausalAttention heads whose outputs are concatenated.

    Attributes:
        heads: nn.ModuleList of num_heads CausalAttention(d_in, d_out, context_length, dropout, qkv_bias).
    """

    def __init__(
        self,
        d_in: int,
        d_out: int,
        context_length: int,
        dropout: float,
        num_heads: int,
        qkv_bias: bool = False,
    ) -> None:
        super().__init__()
        # YOUR CODE HERE
        raise NotImplementedError()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map a batch x of shape (b, T, d_in) to (b, T, num_heads * d_out)."""
        # YOUR CODE HERE
        raise NotImplementedError()


@app.cell
def _(batch, tokens):
    torch.manual_seed(123)
    mha_wrapper = MultiHeadAttentionWrapper(d_in=3, d_out=2, context_length=6, dropout=0.0, num_heads=2)
    wrapper_vecs = mha_wrapper(batch)
    print(wrapper_vecs)
    print(wrapper_vecs.shape)
    # one (b, T, T) matrix per head; draw the first example of the batch for each
    wrapper_weights = torch.stack([w[0] for w in capture_attention_weights(mha_wrapper, batch)])
    plot_attention(wrapper_weights, tokens, "Wrapper")
    return


@app.cell
def _(check):
    check(MultiHeadAttentionWrapper)
    return


@app.cell(hide_code=True)
def _(mo):
    mo.md(r"""
    ### Exercise 3.2 · `exercise_3_2` (4 points)

    With `d_out=2` and two heads, the wrapper returns four features per token. Write `exercise_3_2()` so that it returns a two-head wrapper (`d_in=3`, `context_length=6`, `dropout=0.0`, `num_heads=2`) whose output on the example batch has shape `(2, 6, 2)`. Which argument has to change?
    """)
    return


@app.function
def exercise_3_2() -> MultiHeadAttentionWrapper:
    """Return a two-head MultiHeadAttentionWrapper whose output on the example batch is (2, 6, 2).

    Keep d_in=3, context_length=6, dropout=0.0 and num_heads=2.
    """
    # YOUR CODE HERE
    raise NotImplementedError()


@app.cell
def _(batch):
    torch.manual_seed(123)
    mha_small = exercise_3_2()
    small_vecs = mha_small(batch)
    print(small_vecs)
    print(small_vecs.shape)
    return


@app.cell
def _(check):
    check(exercise_3_2)
    return


@app.cell(hide_code=True)
def _(mo):
    mo.md(r"""
    ### Task 4.2 · `MultiHeadAttention` (24 points)

    The wrapper computes its heads one after the other, each with its own small matrix products. `MultiHeadAttention` computes them all at once: a single `nn.Linear(d_in, d_out)` per role produces the queries (keys, values) of *all* heads, and each head takes its own slice of `head_dim = d_out // num_heads` columns. Note the difference: here `d_out` is the total output size, shared among the heads, whereas in the wrapper every head had `d_out` features of its own.

    The split is a reshape followed by a transpose that moves the head dimension in front of the tokens:

    ```
    (b, T, d_out) -> view -> (b, T, num_heads, head_dim) -> transpose(1, 2) -> (b, num_heads, T, head_dim)
    ```

    Then `queries @ keys.transpose(2, 3)` yields all scores at once, shape `(b, num_heads, T, T)`; masking, scaling, softmax and dropout work exactly as in `CausalAttention`. Multiply by the values and undo the split: transpose back to `(b, T, num_heads, head_dim)` and merge the last two dimensions with `.contiguous().view(b, T, d_out)`. The `contiguous()` is needed because a transpose only reorders the strides, while `view` requires memory laid out in order. Finally a linear layer `out_proj`, `nn.Linear(d_out, d_out)`, mixes the outputs of the heads.

    Attributes: `W_query`, `W_key`, `W_value` (with `bias=qkv_bias`), `out_proj`, `dropout` and `mask`, created in this order, plus `num_heads` and `head_dim`. When `d_out` is not divisible by `num_heads`, the constructor must fail with an `assert` (or a `ValueError`) whose message says so.
    """)
    return


@app.class_definition
class MultiHeadAttention(nn.Module):
    """Causal multi-head attention computed for all heads at once by splitting d_out into heads.

    Attributes:
        W_query, W_key, W_value: nn.Linear(d_in, d_out, bias=qkv_bias).
        out_proj: nn.Linear(d_out, d_out), mixes the heads.
        dropout: nn.Dropout(dropout), applied to the attention weights.
        mask: buffer (context_length, context_length), 1 above the diagonal.
        num_heads, head_dim: the number of heads and d_out // num_heads.
    """

    def __init__(
        self,
        d_in: int,
        d_out: int,
        context_length: int,
        dropout: float,
        num_heads: int,
        qkv_bias: bool = False,
    ) -> None:
        super().__init__()
        # YOUR CODE HERE
        raise NotImplementedError()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map a batch x of shape (b, T, d_in), T <= context_length, to context vectors (b, T, d_out)."""
        # YOUR CODE HERE
        raise NotImplementedError()


@app.cell
def _(batch, tokens):
    torch.manual_seed(123)
    mha = MultiHeadAttention(d_in=3, d_out=2, context_length=6, dropout=0.0, num_heads=2)
    mha_vecs = mha(batch)
    print(mha_vecs)
    print(mha_vecs.shape)
    # the module's single dropout sees (b, heads, T, T); draw both heads of the first example
    plot_attention(capture_attention_weights(mha, batch)[0][0], tokens, "Multi-head")
    return


@app.cell
def _():
    # three output features cannot be shared evenly between two heads
    try:
        MultiHeadAttention(d_in=3, d_out=3, context_length=6, dropout=0.0, num_heads=2)
        print("no error raised: the constructor should reject d_out=3 with num_heads=2")
    except (AssertionError, ValueError) as err:
        print("rejected as expected:", err)
    return


@app.cell
def _(check):
    check(MultiHeadAttention)
    return


@app.cell(hide_code=True)
def _(mo):
    mo.md(r"""
    ### Exercise 3.3 · `exercise_3_3` (5 points)

    The smallest GPT-2 has 12 attention heads per layer, embeddings with 768 dimensions and a context of 1024 tokens. Write `exercise_3_3()` so that it returns a `MultiHeadAttention` of that size: the same size for input and output, no dropout, and the default `qkv_bias=False`. As a check: it holds four 768 × 768 weight matrices plus the 768 biases of `out_proj`, 2,360,064 parameters in total.
    """)
    return


@app.function
def exercise_3_3() -> MultiHeadAttention:
    """Return a MultiHeadAttention with the sizes of the smallest GPT-2 model."""
    # YOUR CODE HERE
    raise NotImplementedError()


@app.cell
def _():
    gpt2_mha = exercise_3_3()
    num_params = sum(p.numel() for p in gpt2_mha.parameters())
    print(f"{num_params:,} parameters, head_dim = {gpt2_mha.head_dim}")
    return


@app.cell
def _(check):
    check(exercise_3_3)
    return


@app.cell(hide_code=True)
def _(mo):
    mo.md(r"""
    ## What comes next

    `MultiHeadAttention` is the heart of the transformer block. Chapter 4 combines it with layer normalisation, a feed-forward network and shortcut connections, and a stack of such blocks becomes a GPT model.
    """)
    return


@app.cell(hide_code=True)
def _(mo):
    # Cell tags: marimo-only
    mo.md(r"""
    ## How to submit (marimo)

    1. Make sure no cell is stale or shows an error you did not expect: every `check(...)` cell shows its checklist.
    2. Save the notebook (Ctrl+S, or Cmd+S on a Mac).
    3. Hand in this one file, `ch03_attention.py`, where your course says (for example on Gradescope). If you also have the untouched `ch03_attention.ipynb`, leave it out: hand in only the file you worked on.
    """)
    return


if __name__ == "__main__":
    app.run()
