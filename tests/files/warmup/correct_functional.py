# A correct warm-up written differently from the reference: library softmax, einsum, renamed locals.
import torch
import torch.nn as nn
import torch.nn.functional as F


def row_softmax(scores):
    return F.softmax(scores, dim=-1)


class DotProductAttention(nn.Module):
    def __init__(self, d_in, d_out):
        super().__init__()
        self.W_query = nn.Linear(d_in, d_out, bias=False)
        self.W_key = nn.Linear(d_in, d_out, bias=False)
        self.W_value = nn.Linear(d_in, d_out, bias=False)

    def forward(self, x):
        q, k, v = self.W_query(x), self.W_key(x), self.W_value(x)
        logits = torch.einsum("id,jd->ij", q, k) / (q.shape[-1] ** 0.5)
        return row_softmax(logits) @ v
