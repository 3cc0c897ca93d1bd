"""The assignment's contract that every stage shares: graded names and points, the notebook, the chapter's sentence."""
from __future__ import annotations

NOTEBOOK_STEM = "ch03_attention"
"""The notebook's file name without suffix (solutions/<lang>/, assignments/<lang>/, what students upload)."""

# Graded names in notebook order, with the chapter section they belong to.
GRADED: dict[str, str] = {
    "softmax_naive": "3.3",
    "simple_self_attention": "3.3",
    "SelfAttention_v1": "3.4",
    "SelfAttention_v2": "3.4",
    "load_v2_weights_into_v1": "3.4",
    "CausalAttention": "3.5",
    "MultiHeadAttentionWrapper": "3.6",
    "exercise_3_2": "3.6",
    "MultiHeadAttention": "3.6",
    "exercise_3_3": "3.6",
}

# The notebook's points per graded name (its test cells' nbgrader points): visible and hidden checks together.
POINTS: dict[str, float] = {
    "softmax_naive": 2, "simple_self_attention": 6, "SelfAttention_v1": 8, "SelfAttention_v2": 8,
    "load_v2_weights_into_v1": 5, "CausalAttention": 24, "MultiHeadAttentionWrapper": 14, "exercise_3_2": 4,
    "MultiHeadAttention": 24, "exercise_3_3": 5,
}

TOKENS = ["Your", "journey", "starts", "with", "one", "step"]
"""The chapter's example sentence, one token per input row (autograder.judge.probes.INPUTS)."""
DRAWN = {"SelfAttention_v2": None, "CausalAttention": None, "MultiHeadAttention": 2, "MultiHeadAttentionWrapper": 2}
"""Graded classes drawn on feedback pages, with their number of heads (None: a single head)."""
DEPENDS = {"MultiHeadAttentionWrapper": "CausalAttention", "exercise_3_2": "MultiHeadAttentionWrapper",
           "exercise_3_3": "MultiHeadAttention"}
"""Parts built on another graded name: their failures may be that name's mistakes showing through."""
