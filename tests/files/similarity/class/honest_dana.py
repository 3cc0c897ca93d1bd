# Dana: scale the queries first, baddbmm-free, in-place masking on a copy.
import math

import torch
import torch.nn as nn


def softmax_naive(x):
    shifted = x - x.max(dim=0).values
    e = torch.exp(shifted)
    return e / e.sum(dim=0)


def simple_self_attention(inputs):
    context = []
    for row in inputs:
        w = softmax_naive(inputs @ row)
        context.append((w[:, None] * inputs).sum(dim=0))
    return torch.stack(context)


class SelfAttention_v1(nn.Module):
    def __init__(self, d_in, d_out):
        super().__init__()
        self.W_query = nn.Parameter(torch.rand(d_in, d_out))
        self.W_key = nn.Parameter(torch.rand(d_in, d_out))
        self.W_value = nn.Parameter(torch.rand(d_in, d_out))

    def forward(self, x):
        d_k = self.W_key.size(1)
        query = torch.matmul(x, self.W_query) / math.sqrt(d_k)
        attn = torch.softmax(torch.matmul(query, torch.matmul(x, self.W_key).t()), dim=-1)
        return torch.matmul(attn, torch.matmul(x, self.W_value))


class SelfAttention_v2(nn.Module):
    def __init__(self, d_in, d_out, qkv_bias=False):
        super().__init__()
        self.W_query = nn.Linear(d_in, d_out, bias=qkv_bias)
        self.W_key = nn.Linear(d_in, d_out, bias=qkv_bias)
        self.W_value = nn.Linear(d_in, d_out, bias=qkv_bias)

    def forward(self, x):
        d_k = self.W_key.weight.size(0)
        query = self.W_query(x) / math.sqrt(d_k)
        attn = torch.softmax(torch.matmul(query, self.W_key(x).t()), dim=-1)
        return torch.matmul(attn, self.W_value(x))


def load_v2_weights_into_v1(sa_v1, sa_v2):
    state = {f"W_{n}": getattr(sa_v2, f"W_{n}").weight.T for n in ("query", "key", "value")}
    sa_v1.load_state_dict(state)


class CausalAttention(nn.Module):
    def __init__(self, d_in, d_out, context_length, dropout, qkv_bias=False):
        super().__init__()
        self.W_query = nn.Linear(d_in, d_out, bias=qkv_bias)
        self.W_key = nn.Linear(d_in, d_out, bias=qkv_bias)
        self.W_value = nn.Linear(d_in, d_out, bias=qkv_bias)
        self.dropout = nn.Dropout(dropout)
        self.register_buffer("mask", torch.triu(torch.ones(context_length, context_length), diagonal=1))

    def forward(self, x):
        steps = x.size(-2)
        d_k = self.W_key.weight.size(0)
        query = self.W_query(x) / math.sqrt(d_k)
        attn = torch.matmul(query, self.W_key(x).transpose(-2, -1))
        attn = attn.clone()
        attn.masked_fill_(self.mask[:steps, :steps] > 0, float("-inf"))
        attn = self.dropout(torch.softmax(attn, dim=-1))
        return torch.matmul(attn, self.W_value(x))


class MultiHeadAttentionWrapper(nn.Module):
    def __init__(self, d_in, d_out, context_length, dropout, num_heads, qkv_bias=False):
        super().__init__()
        self.heads = nn.ModuleList()
        for _ in range(num_heads):
            self.heads.append(CausalAttention(d_in, d_out, context_length, dropout, qkv_bias))

    def forward(self, x):
        return torch.concat([module(x) for module in self.heads], dim=x.dim() - 1)


def exercise_3_2():
    settings = dict(d_in=3, d_out=1, context_length=6, dropout=0.0, num_heads=2)
    return MultiHeadAttentionWrapper(**settings)


class MultiHeadAttention(nn.Module):
    def __init__(self, d_in, d_out, context_length, dropout, num_heads, qkv_bias=False):
        super().__init__()
        if d_out % num_heads:
            raise AssertionError("d_out % num_heads must be 0")
        self.num_heads = num_heads
        self.head_dim = d_out // num_heads
        self.W_query = nn.Linear(d_in, d_out, bias=qkv_bias)
        self.W_key = nn.Linear(d_in, d_out, bias=qkv_bias)
        self.W_value = nn.Linear(d_in, d_out, bias=qkv_bias)
        self.out_proj = nn.Linear(d_out, d_out)
        self.dropout = nn.Dropout(dropout)
        self.register_buffer("mask", torch.triu(torch.ones(context_length, context_length), diagonal=1))

    def forward(self, x):
        size, steps, width = x.size(0), x.size(1), self.num_heads * self.head_dim
        shape = (size, steps, self.num_heads, self.head_dim)
        query = (self.W_query(x) / math.sqrt(self.head_dim)).view(shape).transpose(1, 2)
        key = self.W_key(x).view(shape).transpose(1, 2)
        value = self.W_value(x).view(shape).transpose(1, 2)
        attn = torch.matmul(query, key.transpose(-2, -1))
        attn.masked_fill_(self.mask[:steps, :steps] > 0, float("-inf"))
        attn = self.dropout(torch.softmax(attn, dim=-1))
        out = torch.matmul(attn, value).transpose(1, 2).reshape(size, steps, width)
        return self.out_proj(out)


def exercise_3_3():
    gpt2_small = {"d_in": 768, "d_out": 768, "context_length": 1024, "dropout": 0.0, "num_heads": 12}
    return MultiHeadAttention(**gpt2_small)
