# Correct variant: every matrix product is written with torch.einsum (even the nn.Linear projections).
import torch
import torch.nn as nn


def softmax_naive(x):
    e = torch.exp(x)
    return e / torch.einsum("i...->...", e)  # sum over dim 0


def simple_self_attention(inputs):
    scores = torch.einsum("id,jd->ij", inputs, inputs)
    weights = torch.softmax(scores, dim=-1)
    return torch.einsum("ij,jd->id", weights, inputs)


def _linear(layer, x):
    """Apply an nn.Linear with einsum: y = x W^T + b."""
    y = torch.einsum("...i,oi->...o", x, layer.weight)
    if layer.bias is not None:
        y = y + layer.bias
    return y


class SelfAttention_v1(nn.Module):
    def __init__(self, d_in, d_out):
        super().__init__()
        self.W_query = nn.Parameter(torch.rand(d_in, d_out))
        self.W_key = nn.Parameter(torch.rand(d_in, d_out))
        self.W_value = nn.Parameter(torch.rand(d_in, d_out))

    def forward(self, x):
        q = torch.einsum("ti,io->to", x, self.W_query)
        k = torch.einsum("ti,io->to", x, self.W_key)
        v = torch.einsum("ti,io->to", x, self.W_value)
        scores = torch.einsum("qd,kd->qk", q, k)
        weights = torch.softmax(scores / k.shape[-1] ** 0.5, dim=-1)
        return torch.einsum("qk,kd->qd", weights, v)


class SelfAttention_v2(nn.Module):
    def __init__(self, d_in, d_out, qkv_bias=False):
        super().__init__()
        self.W_query = nn.Linear(d_in, d_out, bias=qkv_bias)
        self.W_key = nn.Linear(d_in, d_out, bias=qkv_bias)
        self.W_value = nn.Linear(d_in, d_out, bias=qkv_bias)

    def forward(self, x):
        q = _linear(self.W_query, x)
        k = _linear(self.W_key, x)
        v = _linear(self.W_value, x)
        scores = torch.einsum("qd,kd->qk", q, k)
        weights = torch.softmax(scores / k.shape[-1] ** 0.5, dim=-1)
        return torch.einsum("qk,kd->qd", weights, v)


def load_v2_weights_into_v1(sa_v1, sa_v2):
    # copy in place; no return value (like most students write it)
    with torch.no_grad():
        sa_v1.W_query.copy_(torch.einsum("oi->io", sa_v2.W_query.weight))
        sa_v1.W_key.copy_(torch.einsum("oi->io", sa_v2.W_key.weight))
        sa_v1.W_value.copy_(torch.einsum("oi->io", sa_v2.W_value.weight))


class CausalAttention(nn.Module):
    def __init__(self, d_in, d_out, context_length, dropout, qkv_bias=False):
        super().__init__()
        self.d_out = d_out
        self.W_query = nn.Linear(d_in, d_out, bias=qkv_bias)
        self.W_key = nn.Linear(d_in, d_out, bias=qkv_bias)
        self.W_value = nn.Linear(d_in, d_out, bias=qkv_bias)
        self.dropout = nn.Dropout(dropout)
        self.register_buffer("mask", torch.triu(torch.ones(context_length, context_length), diagonal=1))

    def forward(self, x):
        T = x.shape[1]
        q = _linear(self.W_query, x)
        k = _linear(self.W_key, x)
        v = _linear(self.W_value, x)
        scores = torch.einsum("bqd,bkd->bqk", q, k)
        scores = scores.masked_fill(self.mask[:T, :T].bool(), float("-inf"))
        weights = torch.softmax(scores / k.shape[-1] ** 0.5, dim=-1)
        weights = self.dropout(weights)
        return torch.einsum("bqk,bkd->bqd", weights, v)


class MultiHeadAttentionWrapper(nn.Module):
    def __init__(self, d_in, d_out, context_length, dropout, num_heads, qkv_bias=False):
        super().__init__()
        heads = []
        for _ in range(num_heads):
            heads.append(CausalAttention(d_in, d_out, context_length, dropout, qkv_bias=qkv_bias))
        self.heads = nn.ModuleList(heads)

    def forward(self, x):
        outputs = []
        for head in self.heads:
            outputs.append(head(x))
        return torch.cat(outputs, dim=-1)


class MultiHeadAttention(nn.Module):
    def __init__(self, d_in, d_out, context_length, dropout, num_heads, qkv_bias=False):
        super().__init__()
        assert d_out % num_heads == 0, "d_out must be divisible by num_heads"
        self.d_out = d_out
        self.num_heads = num_heads
        self.head_dim = d_out // num_heads
        self.W_query = nn.Linear(d_in, d_out, bias=qkv_bias)
        self.W_key = nn.Linear(d_in, d_out, bias=qkv_bias)
        self.W_value = nn.Linear(d_in, d_out, bias=qkv_bias)
        self.out_proj = nn.Linear(d_out, d_out)
        self.dropout = nn.Dropout(dropout)
        self.register_buffer("mask", torch.triu(torch.ones(context_length, context_length), diagonal=1))

    def forward(self, x):
        b, T, _ = x.shape
        split = (b, T, self.num_heads, self.head_dim)
        q = _linear(self.W_query, x).view(split)
        k = _linear(self.W_key, x).view(split)
        v = _linear(self.W_value, x).view(split)
        # no transposes needed: einsum picks the axes
        scores = torch.einsum("bqhd,bkhd->bhqk", q, k)
        scores = scores.masked_fill(self.mask[:T, :T].bool(), float("-inf"))
        weights = torch.softmax(scores / self.head_dim ** 0.5, dim=-1)
        weights = self.dropout(weights)
        ctx = torch.einsum("bhqk,bkhd->bqhd", weights, v).reshape(b, T, self.d_out)
        return _linear(self.out_proj, ctx)


def exercise_3_2():
    torch.manual_seed(123)
    return MultiHeadAttentionWrapper(3, 1, 6, 0.0, num_heads=2)


def exercise_3_3():
    return MultiHeadAttention(768, 768, 1024, 0.0, num_heads=12)
