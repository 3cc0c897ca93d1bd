"""The attention weights drawn on feedback pages: read from a subject on the chapter's sentence."""
from __future__ import annotations

import math
from collections.abc import Callable

import torch

from autograder.chapters.ch03_attention import CHAPTER
from autograder.judge.probes import INPUTS, identity_state, layer_of, weights_from_output
from autograder.judge.subjects import Subject

D_K = 2
"""Query/key size of the drawn heads, as in the chapter (d_out=2)."""


def _sentence_queries_keys(heads: int, T: int) -> Callable[[str, list[int]], torch.Tensor | None]:
    """Query and key weights under which a module on one-hot tokens behaves like a d_k=2 head on the sentence.

    Token j enters as e_j, so W_query = W_q @ INPUTS.T gives query j = W_q @ x_j. Each head's
    block of 2T rows holds W_q in its first D_K rows (zeros elsewhere), scaled so that dividing by
    sqrt(2T) instead of sqrt(D_K) leaves the scores of the chapter. With the values and out_proj of
    judge.probes.identity_state, the output *is* the attention-weight matrix.
    """
    generator = torch.Generator().manual_seed(123)
    block = 2 * T
    fix = (block / D_K) ** 0.25  # on both queries and keys: sqrt(block / D_K) on the scores
    query, key = torch.zeros(heads * block, T), torch.zeros(heads * block, T)
    for h in range(heads):
        for matrix in (query, key):
            matrix[h * block : h * block + D_K] = torch.rand(D_K, 3, generator=generator) * 2.0 @ INPUTS.T * fix
    sources = {"W_query": query, "W_key": key}

    def queries_keys(name: str, _: list[int]) -> torch.Tensor | None:
        layer, head = layer_of(name)
        if layer not in sources:
            return None
        return sources[layer] if head is None else sources[layer][head * block : (head + 1) * block]
    return queries_keys


def sentence_weights(sub: Subject, name: str, heads: int | None) -> torch.Tensor:
    """The (heads, T, T) attention weights of `name` on the sentence, read through the module's output."""
    T, n = len(CHAPTER.tokens), heads or 1
    d_out = 2 * T * (n if name == "MultiHeadAttention" else 1)
    args = {"SelfAttention_v2": (T, d_out), "CausalAttention": (T, d_out, T, 0.0)}.get(name, (T, d_out, T, 0.0, n))
    module = sub.new(name, *args)
    module.load(identity_state(module.params.items(), T, n, _sentence_queries_keys(n, T)))
    x = torch.eye(T)
    out = module(x) if name == "SelfAttention_v2" else module(x.unsqueeze(0))
    out = out.unsqueeze(0) if out.dim() == 2 else out
    weights, _ = weights_from_output(out.float(), T, n)
    return weights[0]  # (heads, T, T)


def attention_maps(sub: Subject, skip: set[str] = frozenset(), lang: str = "en") -> dict[str, list | str]:
    """Class name -> (heads, T, T) weights as nested lists (4 decimals), or the reason they could not be read.

    Classes in `skip` (their code hung or crashed during the checks) are not run again.
    """
    from autograder.errors import StudentError
    from autograder.i18n import t

    maps: dict[str, list | str] = {}
    for name, heads in CHAPTER.drawn.items():
        if name in skip:
            maps[name] = t("ui.picture_skipped", lang)
            continue
        try:
            # NaN and infinities become None: records are strict JSON (Gradescope reads them too)
            maps[name] = [[[round(v, 4) if math.isfinite(v) else None for v in row.tolist()] for row in head]
                          for head in sentence_weights(sub, name, heads)]
        except StudentError as error:
            maps[name] = t(error.key, lang, **error.params)
        except Exception as error:  # noqa: BLE001 - an output of the wrong shape cannot be drawn
            maps[name] = f"{type(error).__name__}: {error}"[:300]
    return maps
