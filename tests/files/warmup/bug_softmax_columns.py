# Normalises down the columns instead of along each row; the attention class is right.
import torch
import torch.nn as nn


def row_softmax(scores):
    e = torch.exp(scores)
    return e / e.sum(dim=0, keepdim=True)


class DotProductAttention(nn.Module):
    def __init__(self, d_in, d_out):
        super().__init__()
        self.W_query = nn.Linear(d_in, d_out, bias=False)
        self.W_key = nn.Linear(d_in, d_out, bias=False)
        self.W_value = nn.Linear(d_in, d_out, bias=False)

    def forward(self, x):
        scores = self.W_query(x) @ self.W_key(x).T / self.W_key.out_features ** 0.5
        return torch.softmax(scores, dim=-1) @ self.W_value(x)
