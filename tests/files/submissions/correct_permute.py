# Correct variant: permute instead of transpose, reshape instead of view, ValueError for bad head counts.
import torch
import torch.nn as nn


def softmax_naive(x):
    numerator = torch.exp(x)
    denominator = torch.sum(numerator, dim=0)
    return numerator / denominator


def simple_self_attention(inputs):
    attn_scores = torch.matmul(inputs, inputs.permute(1, 0))
    attn_weights = torch.softmax(attn_scores, dim=1)  # dim=1 is the last dim of a 2-D tensor
    return torch.matmul(attn_weights, inputs)


class SelfAttention_v1(nn.Module):
    def __init__(self, d_in, d_out):
        super().__init__()
        self.W_query = nn.Parameter(torch.rand(d_in, d_out))
        self.W_key = nn.Parameter(torch.rand(d_in, d_out))
        self.W_value = nn.Parameter(torch.rand(d_in, d_out))

    def forward(self, x):
        queries = torch.matmul(x, self.W_query)
        keys = torch.matmul(x, self.W_key)
        values = torch.matmul(x, self.W_value)
        attn_scores = torch.matmul(queries, keys.permute(1, 0))
        attn_weights = torch.softmax(attn_scores / (keys.size(-1) ** 0.5), dim=-1)
        return torch.matmul(attn_weights, values)


class SelfAttention_v2(nn.Module):
    def __init__(self, d_in, d_out, qkv_bias=False):
        super().__init__()
        self.W_query = nn.Linear(d_in, d_out, bias=qkv_bias)
        self.W_key = nn.Linear(d_in, d_out, bias=qkv_bias)
        self.W_value = nn.Linear(d_in, d_out, bias=qkv_bias)

    def forward(self, x):
        queries = self.W_query(x)
        keys = self.W_key(x)
        values = self.W_value(x)
        attn_scores = torch.matmul(queries, keys.permute(1, 0))
        attn_weights = torch.softmax(attn_scores / (keys.size(-1) ** 0.5), dim=-1)
        return torch.matmul(attn_weights, values)


def load_v2_weights_into_v1(sa_v1, sa_v2):
    sa_v1.W_query = nn.Parameter(sa_v2.W_query.weight.detach().permute(1, 0).clone())
    sa_v1.W_key = nn.Parameter(sa_v2.W_key.weight.detach().permute(1, 0).clone())
    sa_v1.W_value = nn.Parameter(sa_v2.W_value.weight.detach().permute(1, 0).clone())
    return sa_v1


class CausalAttention(nn.Module):
    def __init__(self, d_in, d_out, context_length, dropout, qkv_bias=False):
        super().__init__()
        self.d_out = d_out
        self.W_query = nn.Linear(d_in, d_out, bias=qkv_bias)
        self.W_key = nn.Linear(d_in, d_out, bias=qkv_bias)
        self.W_value = nn.Linear(d_in, d_out, bias=qkv_bias)
        self.dropout = nn.Dropout(dropout)
        self.register_buffer("mask", torch.ones(context_length, context_length).triu(diagonal=1))

    def forward(self, x):
        n = x.size(1)
        queries = self.W_query(x)
        keys = self.W_key(x)
        values = self.W_value(x)
        attn_scores = torch.matmul(queries, keys.permute(0, 2, 1))
        attn_scores = attn_scores.masked_fill(self.mask[:n, :n] == 1, -torch.inf)
        attn_weights = torch.softmax(attn_scores / (keys.size(-1) ** 0.5), dim=-1)
        attn_weights = self.dropout(attn_weights)
        return torch.matmul(attn_weights, values)


class MultiHeadAttentionWrapper(nn.Module):
    def __init__(self, d_in, d_out, context_length, dropout, num_heads, qkv_bias=False):
        super().__init__()
        self.heads = nn.ModuleList(
            CausalAttention(d_in, d_out, context_length, dropout, qkv_bias) for _ in range(num_heads)
        )

    def forward(self, x):
        return torch.cat(tuple(h(x) for h in self.heads), dim=2)


class MultiHeadAttention(nn.Module):
    def __init__(self, d_in, d_out, context_length, dropout, num_heads, qkv_bias=False):
        super().__init__()
        if d_out % num_heads != 0:
            raise ValueError(f"d_out={d_out} is not divisible by num_heads={num_heads}")
        self.d_out = d_out
        self.num_heads = num_heads
        self.head_dim = d_out // num_heads
        self.W_query = nn.Linear(d_in, d_out, bias=qkv_bias)
        self.W_key = nn.Linear(d_in, d_out, bias=qkv_bias)
        self.W_value = nn.Linear(d_in, d_out, bias=qkv_bias)
        self.out_proj = nn.Linear(d_out, d_out)
        self.dropout = nn.Dropout(dropout)
        self.register_buffer("mask", torch.ones(context_length, context_length).triu(diagonal=1))

    def _split_heads(self, t):
        b, n, _ = t.shape
        return t.reshape(b, n, self.num_heads, self.head_dim).permute(0, 2, 1, 3)

    def forward(self, x):
        b, n, _ = x.shape
        queries = self._split_heads(self.W_query(x))
        keys = self._split_heads(self.W_key(x))
        values = self._split_heads(self.W_value(x))

        attn_scores = torch.matmul(queries, keys.permute(0, 1, 3, 2))
        attn_scores = attn_scores.masked_fill(self.mask[:n, :n] == 1, -torch.inf)
        attn_weights = torch.softmax(attn_scores / (self.head_dim ** 0.5), dim=-1)
        attn_weights = self.dropout(attn_weights)

        context = torch.matmul(attn_weights, values).permute(0, 2, 1, 3).reshape(b, n, self.d_out)
        return self.out_proj(context)


def exercise_3_2():
    mha = MultiHeadAttentionWrapper(3, 1, context_length=6, dropout=0.0, num_heads=2)
    return mha


def exercise_3_3():
    d_model, heads, ctx = 768, 12, 1024
    return MultiHeadAttention(d_model, d_model, ctx, 0.0, heads)
