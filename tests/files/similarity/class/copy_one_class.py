# Ivan's chapter 3 solutions.
import math

import torch
from torch import nn


def softmax_naive(x):
    out = torch.empty_like(x)
    col_sum = torch.zeros_like(x[0])
    for row in x:
        col_sum = col_sum + torch.exp(row)
    for i, row in enumerate(x):
        out[i] = torch.exp(row) / col_sum
    return out


def simple_self_attention(inputs):
    n = inputs.shape[0]
    scores = torch.zeros(n, n)
    for i in range(n):
        for j in range(n):
            scores[i, j] = torch.dot(inputs[i], inputs[j])
    return torch.softmax(scores, dim=1) @ inputs


class SelfAttention_v1(nn.Module):
    def __init__(self, d_in, d_out):
        super().__init__()
        self.W_query = nn.Parameter(torch.rand(d_in, d_out))
        self.W_key = nn.Parameter(torch.rand(d_in, d_out))
        self.W_value = nn.Parameter(torch.rand(d_in, d_out))

    def forward(self, x):
        similarity = torch.einsum("td,sd->ts", x @ self.W_query, x @ self.W_key)
        return torch.softmax(similarity / self.W_query.shape[-1] ** 0.5, -1) @ (x @ self.W_value)


class SelfAttention_v2(nn.Module):
    def __init__(self, d_in, d_out, qkv_bias=False):
        super().__init__()
        self.W_query = nn.Linear(d_in, d_out, bias=qkv_bias)
        self.W_key = nn.Linear(d_in, d_out, bias=qkv_bias)
        self.W_value = nn.Linear(d_in, d_out, bias=qkv_bias)

    def forward(self, x):
        similarity = torch.einsum("td,sd->ts", self.W_query(x), self.W_key(x))
        return torch.softmax(similarity / self.W_query.out_features ** 0.5, -1) @ self.W_value(x)


def load_v2_weights_into_v1(sa_v1, sa_v2):
    sa_v1.W_query = torch.nn.Parameter(sa_v2.W_query.weight.detach().clone().T)
    sa_v1.W_key = torch.nn.Parameter(sa_v2.W_key.weight.detach().clone().T)
    sa_v1.W_value = torch.nn.Parameter(sa_v2.W_value.weight.detach().clone().T)
    return sa_v1


class CausalAttention(nn.Module):
    def __init__(self, d_in, d_out, context_length, dropout, qkv_bias=False):
        super().__init__()
        self.W_query = nn.Linear(d_in, d_out, bias=qkv_bias)
        self.W_key = nn.Linear(d_in, d_out, bias=qkv_bias)
        self.W_value = nn.Linear(d_in, d_out, bias=qkv_bias)
        self.dropout = nn.Dropout(dropout)
        self.register_buffer("mask", torch.triu(torch.ones(context_length, context_length), diagonal=1))

    def forward(self, x):
        similarity = torch.einsum("btd,bsd->bts", self.W_query(x), self.W_key(x))
        t = similarity.shape[-1]
        similarity = similarity + torch.where(self.mask[:t, :t] == 1, float("-inf"), 0.0)
        return self.dropout(torch.softmax(similarity / self.W_query.out_features ** 0.5, -1)) @ self.W_value(x)


class MultiHeadAttentionWrapper(nn.Module):
    def __init__(self, d_in, d_out, context_length, dropout, num_heads, qkv_bias=False):
        super().__init__()
        self.heads = nn.ModuleList([CausalAttention(d_in, d_out, context_length, dropout, qkv_bias)] * 0)
        for _ in range(num_heads):
            self.heads.append(CausalAttention(d_in, d_out, context_length, dropout, qkv_bias))

    def forward(self, x):
        result = self.heads[0](x)
        for head in self.heads[1:]:
            result = torch.cat((result, head(x)), dim=-1)
        return result


def exercise_3_2():
    return MultiHeadAttentionWrapper(num_heads=2, d_out=1, d_in=3, context_length=6, dropout=0.0)


class MultiHeadAttention(nn.Module):
    def __init__(self, d_in, d_out, context_length, dropout, num_heads, qkv_bias=False):
        super().__init__()
        if d_out % num_heads:
            raise ValueError(f"d_out={d_out} is not a multiple of num_heads={num_heads}")
        self.num_heads = num_heads
        self.head_dim = d_out // num_heads
        self.d_out = d_out
        self.W_query = nn.Linear(d_in, d_out, bias=qkv_bias)
        self.W_key = nn.Linear(d_in, d_out, bias=qkv_bias)
        self.W_value = nn.Linear(d_in, d_out, bias=qkv_bias)
        self.out_proj = nn.Linear(d_out, d_out)
        self.dropout = nn.Dropout(dropout)
        self.register_buffer("mask", torch.triu(torch.ones(context_length, context_length), diagonal=1))

    def _heads(self, t, bs, seq):
        # (bs, tokens, d_out) -> (bs, heads, tokens, head_dim)
        return t.reshape(bs, seq, self.num_heads, self.head_dim).permute(0, 2, 1, 3)

    def forward(self, x):
        bs, seq, _ = x.size()
        q = self._heads(self.W_query(x), bs, seq)
        k = self._heads(self.W_key(x), bs, seq)
        v = self._heads(self.W_value(x), bs, seq)
        att_logits = torch.matmul(q, k.permute(0, 1, 3, 2)) / math.sqrt(self.head_dim)
        cut = self.mask[:seq, :seq].to(torch.bool)
        att_logits = att_logits.masked_fill(cut, float("-inf"))
        att_probs = self.dropout(att_logits.softmax(dim=-1))
        combined = torch.matmul(att_probs, v).permute(0, 2, 1, 3).reshape(bs, seq, self.d_out)
        return self.out_proj(combined)


def exercise_3_3():
    return MultiHeadAttention(num_heads=12, d_in=768, d_out=768, context_length=1024, dropout=0.0)
