"""The assignment's contract that every stage shares: the chapter's sentence and the classes drawn on it."""
from __future__ import annotations

TOKENS = ["Your", "journey", "starts", "with", "one", "step"]
"""The chapter's example sentence, one token per input row (autograder.judge.probes.INPUTS)."""
DRAWN = {"SelfAttention_v2": None, "CausalAttention": None, "MultiHeadAttention": 2, "MultiHeadAttentionWrapper": 2}
"""Graded classes drawn on feedback pages, with their number of heads (None: a single head)."""
DEPENDS = {"MultiHeadAttentionWrapper": "CausalAttention", "exercise_3_2": "MultiHeadAttentionWrapper",
           "exercise_3_3": "MultiHeadAttention"}
"""Parts built on another graded name: their failures may be that name's mistakes showing through."""
