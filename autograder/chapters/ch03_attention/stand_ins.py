"""The kit's stand-ins for graded classes that other graded code builds on, so a wrapper is judged alone."""
from __future__ import annotations

import torch
from torch import nn

PROJECTIONS = ("W_query", "W_key", "W_value")


def _projections(module: nn.Module, d_in: int, d_out: int, qkv_bias: bool) -> None:
    """The chapter's three projections, created in its order. Written unlike the reference on purpose:
    this file ships to students, and `tests/test_bundle.py` keeps reference lines out of it."""
    for name in PROJECTIONS:
        setattr(module, name, nn.Linear(d_in, d_out, bias=qkv_bias))


class StandInCausal(nn.Module):
    """Takes CausalAttention's place inside a wrapper when the student's CausalAttention is wrong,
    so that the wrapper is judged alone.

    It has the chapter's layout and is causal, mixes tokens and depends on every weight, but it is
    deliberately not attention: each token's output is a gated running mean of the values so far.
    """

    def __init__(self, d_in: int, d_out: int, context_length: int, dropout: float, qkv_bias: bool = False):
        super().__init__()
        setattr(self, "d_out", d_out)  # noqa: B010 - not the solution's line: the student bundle ships this file
        _projections(self, d_in, d_out, qkv_bias)
        self.dropout = nn.Dropout(p=dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate = torch.sigmoid((self.W_query(x) * self.W_key(x)).sum(dim=-1, keepdim=True))  # (b, T, 1)
        running = torch.cumsum(gate * self.W_value(x), dim=1)  # (b, T, d_out)
        return running / torch.arange(1, x.shape[1] + 1, dtype=x.dtype).view(1, -1, 1)


class StandInV1(nn.Module):
    """SelfAttention_v1's weights as the chapter lays them out (exercise 3.1 judged alone)."""

    def __init__(self, d_in: int, d_out: int):
        super().__init__()
        for name in PROJECTIONS:  # in the chapter's order, so a seed gives the chapter's weights
            setattr(self, name, nn.Parameter(torch.rand(d_in, d_out)))


class StandInV2(nn.Module):
    """SelfAttention_v2's layers as the chapter lays them out (exercise 3.1 judged alone)."""

    def __init__(self, d_in: int, d_out: int, qkv_bias: bool = False):
        super().__init__()
        _projections(self, d_in, d_out, qkv_bias)


class StandInMHA(nn.Module):
    """MultiHeadAttention's layers as the chapter lays them out, nothing computed (exercise 3.3 judged alone)."""

    def __init__(self, d_in: int, d_out: int, context_length: int, dropout: float, num_heads: int,
                 qkv_bias: bool = False):
        super().__init__()
        _projections(self, d_in, d_out, qkv_bias)
        self.out_proj = nn.Linear(in_features=d_out, out_features=d_out)


STAND_INS: dict[str, type] = {"CausalAttention": StandInCausal, "SelfAttention_v1": StandInV1,
                              "SelfAttention_v2": StandInV2, "MultiHeadAttention": StandInMHA}
"""The kit's own stand-ins for graded classes that other graded code builds on."""
