# Bob: loops where the chapter uses them, one head at a time in MultiHeadAttention.
import torch
import torch.nn as nn


def softmax_naive(x):
    exps = x.exp()
    return exps / exps.sum(0)


def simple_self_attention(inputs):
    weights = torch.empty(inputs.shape[0], inputs.shape[0])
    for i, query in enumerate(inputs):
        weights[i] = torch.softmax(inputs @ query, dim=0)
    return weights @ inputs


class SelfAttention_v1(nn.Module):
    def __init__(self, d_in, d_out):
        super().__init__()
        self.W_query = nn.Parameter(torch.rand(d_in, d_out))
        self.W_key = nn.Parameter(torch.rand(d_in, d_out))
        self.W_value = nn.Parameter(torch.rand(d_in, d_out))

    def forward(self, x):
        scores = (x @ self.W_query) @ (x @ self.W_key).T
        scaled = scores / (self.W_key.shape[1] ** 0.5)
        return torch.softmax(scaled, dim=1) @ (x @ self.W_value)


class SelfAttention_v2(nn.Module):
    def __init__(self, d_in, d_out, qkv_bias=False):
        super().__init__()
        self.W_query = nn.Linear(d_in, d_out, bias=qkv_bias)
        self.W_key = nn.Linear(d_in, d_out, bias=qkv_bias)
        self.W_value = nn.Linear(d_in, d_out, bias=qkv_bias)

    def forward(self, x):
        scores = self.W_query(x) @ self.W_key(x).T
        scaled = scores / (self.W_key.out_features ** 0.5)
        return torch.softmax(scaled, dim=1) @ self.W_value(x)


def load_v2_weights_into_v1(sa_v1, sa_v2):
    sa_v1.W_query.data = sa_v2.W_query.weight.data.t().clone()
    sa_v1.W_key.data = sa_v2.W_key.weight.data.t().clone()
    sa_v1.W_value.data = sa_v2.W_value.weight.data.t().clone()


class CausalAttention(nn.Module):
    def __init__(self, d_in, d_out, context_length, dropout, qkv_bias=False):
        super().__init__()
        self.W_query = nn.Linear(d_in, d_out, bias=qkv_bias)
        self.W_key = nn.Linear(d_in, d_out, bias=qkv_bias)
        self.W_value = nn.Linear(d_in, d_out, bias=qkv_bias)
        self.dropout = nn.Dropout(dropout)
        self.register_buffer("mask", torch.triu(torch.ones(context_length, context_length), diagonal=1))

    def forward(self, x):
        length = x.shape[1]
        scores = self.W_query(x) @ self.W_key(x).transpose(-1, -2)
        future = self.mask[:length, :length] == 1
        scores = scores.masked_fill(future, -torch.inf)
        weights = torch.softmax(scores / (self.W_key.out_features ** 0.5), dim=-1)
        return self.dropout(weights) @ self.W_value(x)


class MultiHeadAttentionWrapper(nn.Module):
    def __init__(self, d_in, d_out, context_length, dropout, num_heads, qkv_bias=False):
        super().__init__()
        heads = []
        for _ in range(num_heads):
            heads.append(CausalAttention(d_in, d_out, context_length, dropout, qkv_bias))
        self.heads = nn.ModuleList(heads)

    def forward(self, x):
        outputs = []
        for head in self.heads:
            outputs.append(head(x))
        return torch.cat(outputs, dim=-1)


def exercise_3_2():
    wrapper = MultiHeadAttentionWrapper(3, 1, 6, 0.0, num_heads=2)
    return wrapper


class MultiHeadAttention(nn.Module):
    def __init__(self, d_in, d_out, context_length, dropout, num_heads, qkv_bias=False):
        super().__init__()
        assert d_out % num_heads == 0, "num_heads must divide d_out"
        self.num_heads = num_heads
        self.head_dim = d_out // num_heads
        self.W_query = nn.Linear(d_in, d_out, bias=qkv_bias)
        self.W_key = nn.Linear(d_in, d_out, bias=qkv_bias)
        self.W_value = nn.Linear(d_in, d_out, bias=qkv_bias)
        self.out_proj = nn.Linear(d_out, d_out)
        self.dropout = nn.Dropout(dropout)
        self.register_buffer("mask", torch.triu(torch.ones(context_length, context_length), diagonal=1))

    def forward(self, x):
        length = x.shape[1]
        future = self.mask[:length, :length] == 1
        q_all, k_all, v_all = self.W_query(x), self.W_key(x), self.W_value(x)
        heads = []
        for h in range(self.num_heads):
            part = slice(h * self.head_dim, (h + 1) * self.head_dim)
            scores = q_all[..., part] @ k_all[..., part].transpose(-1, -2)
            scores = scores.masked_fill(future, -torch.inf)
            weights = torch.softmax(scores / self.head_dim ** 0.5, dim=-1)
            heads.append(self.dropout(weights) @ v_all[..., part])
        return self.out_proj(torch.cat(heads, dim=-1))


def exercise_3_3():
    return MultiHeadAttention(768, 768, 1024, 0.0, 12)
