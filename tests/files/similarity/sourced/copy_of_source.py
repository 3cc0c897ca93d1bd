# Fern: chapter 3.
import torch
import torch.nn as nn


def softmax_naive(x):
    powered = torch.pow(torch.e, x)
    return powered / powered.sum(axis=0)


def simple_self_attention(inputs):
    similarity = torch.inner(inputs, inputs)
    return torch.nn.functional.softmax(similarity, dim=-1) @ inputs


class SelfAttention_v1(nn.Module):
    def __init__(self, d_in, d_out):
        super().__init__()
        self.W_query = nn.Parameter(torch.rand(d_in, d_out))
        self.W_key = nn.Parameter(torch.rand(d_in, d_out))
        self.W_value = nn.Parameter(torch.rand(d_in, d_out))

    def forward(self, x):
        sim = torch.inner(x @ self.W_query, x @ self.W_key) / self.W_key.shape[1] ** 0.5
        return sim.softmax(dim=-1) @ x @ self.W_value


class SelfAttention_v2(nn.Module):
    def __init__(self, d_in, d_out, qkv_bias=False):
        super().__init__()
        self.W_query = nn.Linear(d_in, d_out, bias=qkv_bias)
        self.W_key = nn.Linear(d_in, d_out, bias=qkv_bias)
        self.W_value = nn.Linear(d_in, d_out, bias=qkv_bias)

    def forward(self, x):
        sim = torch.inner(self.W_query(x), self.W_key(x)) / self.W_key.weight.shape[0] ** 0.5
        return sim.softmax(dim=-1) @ self.W_value(x)


def load_v2_weights_into_v1(sa_v1, sa_v2):
    sa_v1.W_query = nn.Parameter(sa_v2.W_query.weight.transpose(-1, -2).detach())
    sa_v1.W_key = nn.Parameter(sa_v2.W_key.weight.transpose(-1, -2).detach())
    sa_v1.W_value = nn.Parameter(sa_v2.W_value.weight.transpose(-1, -2).detach())


class CausalAttention(nn.Module):
    def __init__(self, d_in, d_out, context_length, dropout, qkv_bias=False):
        super().__init__()
        self.W_query = nn.Linear(d_in, d_out, bias=qkv_bias)
        self.W_key = nn.Linear(d_in, d_out, bias=qkv_bias)
        self.W_value = nn.Linear(d_in, d_out, bias=qkv_bias)
        self.dropout = nn.Dropout(dropout)
        self.register_buffer("mask", torch.triu(torch.ones(context_length, context_length), diagonal=1))

    def forward(self, x):
        b, n_t, _ = x.shape
        sc = torch.baddbmm(torch.zeros(b, n_t, n_t), self.W_query(x), self.W_key(x).transpose(1, 2),
                               beta=0.0, alpha=1.0 / self.W_key.out_features ** 0.5)
        sc = sc.masked_fill(self.mask[:n_t, :n_t].bool(), torch.finfo(sc.dtype).min)
        probs = self.dropout(sc.softmax(dim=-1))
        return torch.bmm(probs, self.W_value(x))


class MultiHeadAttention(nn.Module):
    def __init__(self, d_in, d_out, context_length, dropout, num_heads, qkv_bias=False):
        super().__init__()
        assert d_out % num_heads == 0
        self.num_heads = num_heads
        self.head_dim = d_out // num_heads
        self.W_query = nn.Linear(d_in, d_out, bias=qkv_bias)
        self.W_key = nn.Linear(d_in, d_out, bias=qkv_bias)
        self.W_value = nn.Linear(d_in, d_out, bias=qkv_bias)
        self.out_proj = nn.Linear(d_out, d_out)
        self.dropout = nn.Dropout(dropout)
        self.register_buffer("mask", torch.triu(torch.ones(context_length, context_length), diagonal=1))

    def forward(self, x):
        b, n_t, dim_all = x.shape[0], x.shape[1], self.num_heads * self.head_dim
        def to_heads(t):
            return t.reshape(b * n_t, self.num_heads, self.head_dim).reshape(b, n_t, -1, self.head_dim).permute(0, 2, 1, 3).flatten(0, 1)
        queries, keys, values = to_heads(self.W_query(x)), to_heads(self.W_key(x)), to_heads(self.W_value(x))
        sc = torch.baddbmm(torch.zeros(b * self.num_heads, n_t, n_t), queries, keys.transpose(1, 2),
                               beta=0.0, alpha=1.0 / self.head_dim ** 0.5)
        sc = sc.masked_fill(self.mask[:n_t, :n_t].bool(), torch.finfo(sc.dtype).min)
        probs = self.dropout(sc.softmax(dim=-1))
        mixed = torch.bmm(probs, values).unflatten(0, (b, self.num_heads)).permute(0, 2, 1, 3)
        return self.out_proj(mixed.reshape(b, n_t, dim_all))


class MultiHeadAttentionWrapper(nn.Module):
    def __init__(self, d_in, d_out, context_length, dropout, num_heads, qkv_bias=False):
        super().__init__()
        self.heads = nn.ModuleList(map(lambda _: CausalAttention(d_in, d_out, context_length, dropout, qkv_bias),
                                       range(num_heads)))

    def forward(self, x):
        return torch.dstack([head(x) for head in self.heads])


def exercise_3_2():
    return MultiHeadAttentionWrapper(3, 1, 6, dropout=0.0, num_heads=2)


def exercise_3_3():
    return MultiHeadAttention(768, 768, 1024, dropout=0.0, num_heads=12)
