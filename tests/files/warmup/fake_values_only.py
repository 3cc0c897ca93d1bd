# Looks the part (three layers, the right shapes) but returns the values untouched: no token looks at another.
import torch
import torch.nn as nn


def row_softmax(scores):
    raise NotImplementedError()


class DotProductAttention(nn.Module):
    def __init__(self, d_in, d_out):
        super().__init__()
        self.W_query = nn.Linear(d_in, d_out, bias=False)
        self.W_key = nn.Linear(d_in, d_out, bias=False)
        self.W_value = nn.Linear(d_in, d_out, bias=False)

    def forward(self, x):
        scores = self.W_query(x) @ self.W_key(x).T  # computed, then ignored
        return self.W_value(x) + 0 * scores.sum()
