# ch3 homework
import math

import torch
from torch import nn


def softmax_naive(x):
    # exponentiate, then divide by the column totals
    top = torch.exp(x)
    bottom = top.sum(dim=0, keepdim=True)
    return top / bottom


def simple_self_attention(inputs):
    sims = torch.matmul(inputs, inputs.transpose(0, 1))
    alpha = softmax_naive(sims.T).T  # my softmax normalises columns, so transpose twice
    return torch.matmul(alpha, inputs)


class SelfAttention_v1(nn.Module):
    def __init__(self, d_in, d_out):
        super().__init__()
        self.W_query = nn.Parameter(torch.rand(d_in, d_out))
        self.W_key = nn.Parameter(torch.rand(d_in, d_out))
        self.W_value = nn.Parameter(torch.rand(d_in, d_out))

    def forward(self, x):
        projected = [torch.matmul(x, mat) for mat in (self.W_query, self.W_key, self.W_value)]
        qq, kk, vv = projected
        energy = torch.matmul(qq, kk.transpose(0, 1)) / math.sqrt(kk.size(-1))
        return torch.matmul(energy.softmax(dim=-1), vv)


class SelfAttention_v2(nn.Module):
    def __init__(self, d_in, d_out, qkv_bias=False):
        super().__init__()
        self.W_query = nn.Linear(d_in, d_out, bias=qkv_bias)
        self.W_key = nn.Linear(d_in, d_out, bias=qkv_bias)
        self.W_value = nn.Linear(d_in, d_out, bias=qkv_bias)

    def forward(self, x):
        qq, kk, vv = (lin(x) for lin in (self.W_query, self.W_key, self.W_value))
        energy = torch.matmul(qq, kk.transpose(0, 1)) / math.sqrt(kk.size(-1))
        return torch.matmul(energy.softmax(dim=-1), vv)


def load_v2_weights_into_v1(sa_v1, sa_v2):
    mapping = {"W_query": sa_v2.W_query, "W_key": sa_v2.W_key, "W_value": sa_v2.W_value}
    with torch.no_grad():
        for attr, lin in mapping.items():
            getattr(sa_v1, attr).copy_(lin.weight.transpose(0, 1))


class CausalAttention(nn.Module):
    def __init__(self, d_in, d_out, context_length, dropout, qkv_bias=False):
        super().__init__()
        self.W_query = nn.Linear(d_in, d_out, bias=qkv_bias)
        self.W_key = nn.Linear(d_in, d_out, bias=qkv_bias)
        self.W_value = nn.Linear(d_in, d_out, bias=qkv_bias)
        self.dropout = nn.Dropout(dropout)
        self.register_buffer("mask", torch.triu(torch.ones(context_length, context_length), diagonal=1))

    def forward(self, x):
        seq_len = x.size(1)
        qq, kk, vv = self.W_query(x), self.W_key(x), self.W_value(x)
        energy = torch.matmul(qq, kk.transpose(1, 2)) / math.sqrt(kk.size(-1))
        hide = self.mask[:seq_len, :seq_len].to(torch.bool)  # future positions
        energy = energy.masked_fill(hide, float("-inf"))
        alpha = self.dropout(energy.softmax(dim=-1))
        return torch.matmul(alpha, vv)


class MultiHeadAttentionWrapper(nn.Module):
    def __init__(self, d_in, d_out, context_length, dropout, num_heads, qkv_bias=False):
        super().__init__()
        self.heads = nn.ModuleList(
            CausalAttention(d_in, d_out, context_length, dropout, qkv_bias) for _ in range(num_heads)
        )

    def forward(self, x):
        outs = [head(x) for head in self.heads]
        return torch.cat(outs, dim=2)


def exercise_3_2():
    return MultiHeadAttentionWrapper(d_in=3, d_out=1, context_length=6, dropout=0.0, num_heads=2)


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

    def _to_heads(self, tensor_in, bsz, seq_len):
        # (bsz, tokens, d_out) -> (bsz, heads, tokens, head_dim)
        return tensor_in.reshape(bsz, seq_len, self.num_heads, self.head_dim).permute(0, 2, 1, 3)

    def forward(self, x):
        bsz, seq_len, _ = x.size()
        qq = self._to_heads(self.W_query(x), bsz, seq_len)
        kk = self._to_heads(self.W_key(x), bsz, seq_len)
        vv = self._to_heads(self.W_value(x), bsz, seq_len)
        energy = torch.matmul(qq, kk.permute(0, 1, 3, 2)) / math.sqrt(self.head_dim)
        hide = self.mask[:seq_len, :seq_len].to(torch.bool)
        energy = energy.masked_fill(hide, float("-inf"))
        alpha = self.dropout(energy.softmax(dim=-1))
        ctx = torch.matmul(alpha, vv).permute(0, 2, 1, 3).reshape(bsz, seq_len, self.d_out)
        return self.out_proj(ctx)


def exercise_3_3():
    return MultiHeadAttention(d_in=768, d_out=768, context_length=1024, dropout=0.0, num_heads=12)
