"""Attention-weight pictures on the chapter's sentence: read the weights from a subject, draw them as PNG."""
from __future__ import annotations

import base64
import io
import math

import torch

from autograder.checks.probes import INPUTS, weights_from_output
from autograder.subject import Subject

TOKENS = ["Your", "journey", "starts", "with", "one", "step"]
CLASSES = {"SelfAttention_v2": None, "CausalAttention": None, "MultiHeadAttention": 2, "MultiHeadAttentionWrapper": 2}
"""Graded classes drawn, with their number of heads (None: a single head)."""
D_K = 2
"""Query/key size of the drawn heads, as in the chapter (d_out=2)."""


def _sentence_state(params: dict[str, list[int]], heads: int, T: int) -> dict[str, torch.Tensor]:
    """Weights that make a module on one-hot tokens behave like a d_k=2 head on the sentence.

    Token j enters as e_j, so W_query = W_q @ INPUTS.T gives query j = W_q @ x_j. Each head's
    block of 2T rows holds W_q in its first D_K rows (zeros elsewhere), scaled so that dividing by
    sqrt(2T) instead of sqrt(D_K) leaves the scores of the chapter. Values are [e_j, e_j], so the
    output *is* the attention-weight matrix (see probes.identity_probe).
    """
    generator = torch.Generator().manual_seed(123)
    block = 2 * T
    fix = (block / D_K) ** 0.25  # on both queries and keys: sqrt(block / D_K) on the scores
    query, key = torch.zeros(heads * block, T), torch.zeros(heads * block, T)
    for h in range(heads):
        for matrix in (query, key):
            matrix[h * block : h * block + D_K] = torch.rand(D_K, 3, generator=generator) * 2.0 @ INPUTS.T * fix
    sources = {"W_query": query, "W_key": key, "W_value": torch.cat([torch.eye(T), torch.eye(T)]).repeat(heads, 1)}
    state = {}
    for name, shape in params.items():
        parts = name.split(".")
        rows = slice(int(parts[1]) * block, (int(parts[1]) + 1) * block) if parts[0] == "heads" else slice(None)
        kind = parts[-2] if len(parts) > 1 else ""
        if parts[-1] == "bias":
            state[name] = torch.zeros(shape)
        elif kind in sources:
            state[name] = sources[kind][rows]
        elif kind == "out_proj":
            state[name] = torch.eye(shape[0])
    return state


def read_weights(sub: Subject, name: str, heads: int | None) -> torch.Tensor:
    """The (heads, T, T) attention weights of `name` on the sentence, read through the module's output."""
    T, n = len(TOKENS), heads or 1
    d_out = 2 * T * (n if name == "MultiHeadAttention" else 1)
    args = {"SelfAttention_v2": (T, d_out), "CausalAttention": (T, d_out, T, 0.0)}.get(name, (T, d_out, T, 0.0, n))
    module = sub.new(name, *args)
    module.load(_sentence_state(module.params, n, T))
    x = torch.eye(T)
    out = module(x) if name == "SelfAttention_v2" else module(x.unsqueeze(0))
    out = out.unsqueeze(0) if out.dim() == 2 else out
    weights, _ = weights_from_output(out.float(), T, n)
    return weights[0]  # (heads, T, T)


def attention_maps(sub: Subject, skip: set[str] = frozenset(), lang: str = "en") -> dict[str, list | str]:
    """Class name -> (heads, T, T) weights as nested lists (4 decimals), or the reason they could not be read.

    Classes in `skip` (their code hung or crashed during the checks) are not run again.
    """
    from autograder.i18n import t
    from autograder.subject import StudentError

    maps: dict[str, list | str] = {}
    for name, heads in CLASSES.items():
        if name in skip:
            maps[name] = t("ui.picture_skipped", lang)
            continue
        try:
            # NaN and infinities become None: records are strict JSON (Gradescope reads them too)
            maps[name] = [[[round(v, 4) if math.isfinite(v) else None for v in row.tolist()] for row in head]
                          for head in read_weights(sub, name, heads)]
        except StudentError as error:
            maps[name] = t(error.key, lang, **error.params)
        except Exception as error:  # noqa: BLE001 - an output of the wrong shape cannot be drawn
            maps[name] = f"{type(error).__name__}: {error}"[:300]
    return maps


def attention_png(student: dict, reference: dict, labels: tuple[str, str]) -> str:
    """One image for all classes: a row per class, the reference's heads left, the student's right.

    A single axes keeps rendering cheap. Weights run from white (0) to dark blue (1); NaN is red.
    """
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    T, heads, gap = len(TOKENS), 2, 2
    names = [n for n in CLASSES if n in student]
    block = lambda i: i * (T + 1) + (gap if i >= heads else 0)  # noqa: E731 - column of head slot i
    width, height = block(2 * heads - 1) + T, len(names) * (T + gap + 1)
    grid = torch.full((height, width), float("nan"))
    filled = torch.zeros(height, width, dtype=torch.bool)
    for r, name in enumerate(names):
        top = r * (T + gap + 1) + gap + 1 - 1
        for side, maps in enumerate((reference.get(name), student.get(name))):
            if not isinstance(maps, list):
                continue
            for h, matrix in enumerate(maps[:heads]):
                left = block(side * heads + h)
                values = [[float("nan") if v is None else v for v in row] for row in matrix]
                grid[top : top + T, left : left + T] = torch.tensor(values, dtype=torch.float32)
                filled[top : top + T, left : left + T] = True
    image = torch.where(filled & grid.isnan(), torch.tensor(-1.0), grid)  # NaN weights: below the scale
    cmap = matplotlib.colormaps["Blues"].copy()
    cmap.set_under("#cf222e")
    cmap.set_bad("white")
    fig = Figure(figsize=(0.2 * width + 1.2, 0.2 * height + 0.9), dpi=100)
    ax = fig.add_axes((0.9 / (0.2 * width + 1.2), 0.6 / (0.2 * height + 0.9), 0.2 * width / (0.2 * width + 1.2),
                       0.2 * height / (0.2 * height + 0.9)))
    ax.imshow(image.numpy(), cmap=cmap, vmin=0.0, vmax=1.0, interpolation="nearest")
    ax.set_frame_on(False)
    xticks = [block(i) + j for i in range(2 * heads) for j in range(T)]
    ax.set_xticks(xticks, TOKENS * (2 * heads), rotation=90, fontsize=6)
    yticks = [r * (T + gap + 1) + gap + j for r in range(len(names)) for j in range(T)]
    ax.set_yticks(yticks, TOKENS * len(names), fontsize=6)
    ax.tick_params(length=0)
    for r, name in enumerate(names):
        ax.text(-0.5, r * (T + gap + 1) + gap - 0.9, name, fontsize=7, fontweight="bold", va="bottom")
        if not isinstance(student.get(name), list):
            ax.text(block(heads) + T, r * (T + gap + 1) + gap + T / 2, "?", fontsize=14, ha="center", va="center")
    for i in range(2 * heads):
        who = labels[i // heads]
        ax.text(block(i) + T / 2 - 0.5, -0.7, f"{who}, head {i % heads + 1}", fontsize=6, ha="center", va="bottom")
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")
