# Correct variant: reshape/flatten, F.softmax, scaling by multiplying with head_dim**-0.5, bool mask buffer.
import torch
import torch.nn as nn
import torch.nn.functional as F


def softmax_naive(x):
    # numerically stabilised: subtracting the max does not change the result
    shifted = x - x.max(dim=0, keepdim=True).values
    return torch.exp(shifted) / torch.exp(shifted).sum(dim=0)


def simple_self_attention(inputs):
    return F.softmax(inputs @ inputs.mT, dim=-1) @ inputs


class SelfAttention_v1(nn.Module):
    def __init__(self, d_in, d_out):
        super().__init__()
        self.W_query = nn.Parameter(torch.rand(d_in, d_out))
        self.W_key = nn.Parameter(torch.rand(d_in, d_out))
        self.W_value = nn.Parameter(torch.rand(d_in, d_out))
        self.scale = d_out ** -0.5

    def forward(self, x):
        q = x @ self.W_query
        k = x @ self.W_key
        v = x @ self.W_value
        return F.softmax((q @ k.mT) * self.scale, dim=-1) @ v


class SelfAttention_v2(nn.Module):
    def __init__(self, d_in, d_out, qkv_bias=False):
        super().__init__()
        self.W_query = nn.Linear(d_in, d_out, bias=qkv_bias)
        self.W_key = nn.Linear(d_in, d_out, bias=qkv_bias)
        self.W_value = nn.Linear(d_in, d_out, bias=qkv_bias)
        self.scale = d_out ** -0.5

    def forward(self, x):
        q = self.W_query(x)
        k = self.W_key(x)
        v = self.W_value(x)
        return F.softmax((q @ k.mT) * self.scale, dim=-1) @ v


def load_v2_weights_into_v1(sa_v1, sa_v2):
    sa_v1.W_query.data = sa_v2.W_query.weight.data.t().clone()
    sa_v1.W_key.data = sa_v2.W_key.weight.data.t().clone()
    sa_v1.W_value.data = sa_v2.W_value.weight.data.t().clone()
    return sa_v1


class CausalAttention(nn.Module):
    def __init__(self, d_in, d_out, context_length, dropout, qkv_bias=False):
        super().__init__()
        self.d_out = d_out
        self.W_query = nn.Linear(d_in, d_out, bias=qkv_bias)
        self.W_key = nn.Linear(d_in, d_out, bias=qkv_bias)
        self.W_value = nn.Linear(d_in, d_out, bias=qkv_bias)
        self.dropout = nn.Dropout(dropout)
        self.register_buffer("mask", torch.ones(context_length, context_length).triu(1).bool())

    def forward(self, x):
        T = x.shape[1]
        q = self.W_query(x)
        k = self.W_key(x)
        v = self.W_value(x)
        scores = (q @ k.mT) * k.shape[-1] ** -0.5
        scores = scores.masked_fill(self.mask[:T, :T], float("-inf"))
        weights = self.dropout(F.softmax(scores, dim=-1))
        return weights @ v


class MultiHeadAttentionWrapper(nn.Module):
    def __init__(self, d_in, d_out, context_length, dropout, num_heads, qkv_bias=False):
        super().__init__()
        self.heads = nn.ModuleList()
        for _ in range(num_heads):
            self.heads.append(CausalAttention(d_in, d_out, context_length, dropout, qkv_bias))

    def forward(self, x):
        # stack on a new last axis, then flatten (head, d_out) -> head*d_out: same order as cat(dim=-1)
        return torch.stack([h(x) for h in self.heads], dim=-2).flatten(start_dim=-2)


class MultiHeadAttention(nn.Module):
    def __init__(self, d_in, d_out, context_length, dropout, num_heads, qkv_bias=False):
        super().__init__()
        if d_out % num_heads:
            raise AssertionError("d_out must be divisible by num_heads")
        self.d_out = d_out
        self.num_heads = num_heads
        self.head_dim = d_out // num_heads
        self.W_query = nn.Linear(d_in, d_out, bias=qkv_bias)
        self.W_key = nn.Linear(d_in, d_out, bias=qkv_bias)
        self.W_value = nn.Linear(d_in, d_out, bias=qkv_bias)
        self.out_proj = nn.Linear(d_out, d_out)
        self.dropout = nn.Dropout(dropout)
        self.register_buffer("mask", torch.ones(context_length, context_length).triu(1).bool())

    def forward(self, x):
        b, T, _ = x.shape
        q = self.W_query(x).reshape(b, T, self.num_heads, -1).transpose(1, 2)
        k = self.W_key(x).reshape(b, T, self.num_heads, -1).transpose(1, 2)
        v = self.W_value(x).reshape(b, T, self.num_heads, -1).transpose(1, 2)
        scores = (q @ k.mT) * self.head_dim ** -0.5
        scores = scores.masked_fill(self.mask[:T, :T], float("-inf"))
        weights = self.dropout(F.softmax(scores, dim=-1))
        ctx = (weights @ v).transpose(1, 2).flatten(2)
        return self.out_proj(ctx)


def exercise_3_2():
    return MultiHeadAttentionWrapper(d_in=3, d_out=1, context_length=6, dropout=0.0, num_heads=2)


def exercise_3_3():
    return MultiHeadAttention(d_in=768, d_out=768, context_length=1024, dropout=0.0, num_heads=12)
