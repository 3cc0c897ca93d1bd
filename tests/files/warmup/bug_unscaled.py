# Forgets to divide the scores by sqrt(d_out): still attention, but not the reference's outputs.
import torch
import torch.nn as nn


def row_softmax(scores):
    shifted = scores - scores.max(dim=-1, keepdim=True).values
    e = shifted.exp()
    return e / e.sum(dim=-1, keepdim=True)


class DotProductAttention(nn.Module):
    def __init__(self, d_in, d_out):
        super().__init__()
        self.W_query = nn.Linear(d_in, d_out, bias=False)
        self.W_key = nn.Linear(d_in, d_out, bias=False)
        self.W_value = nn.Linear(d_in, d_out, bias=False)

    def forward(self, x):
        return row_softmax(self.W_query(x) @ self.W_key(x).T) @ self.W_value(x)
