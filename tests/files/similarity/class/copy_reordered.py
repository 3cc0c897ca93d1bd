import math
import torch
from torch import nn


class MultiHeadAttention(nn.Module):
    def forward(self, x):
        batch, n_tok, _ = x.size()
        q = self._heads(self.W_query(x), batch, n_tok)
        k = self._heads(self.W_key(x), batch, n_tok)
        v = self._heads(self.W_value(x), batch, n_tok)
        logits = torch.matmul(q, k.permute(0, 1, 3, 2)) / math.sqrt(self.head_dim)
        blocked = self.mask[:n_tok, :n_tok].to(torch.bool)
        logits = logits.masked_fill(blocked, float("-inf"))
        probs = self.dropout(logits.softmax(dim=-1))
        merged = torch.matmul(probs, v).permute(0, 2, 1, 3).reshape(batch, n_tok, self.d_out)
        return self.out_proj(merged)

    def _heads(self, t, batch, n_tok):
        # (batch, tokens, d_out) -> (batch, heads, tokens, head_dim)
        return t.reshape(batch, n_tok, self.num_heads, self.head_dim).permute(0, 2, 1, 3)

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


def exercise_3_3():
    return MultiHeadAttention(d_in=768, d_out=768, context_length=1024, dropout=0.0, num_heads=12)


class CausalAttention(nn.Module):
    def forward(self, x):
        n_tok = x.size(1)
        q, k, v = self.W_query(x), self.W_key(x), self.W_value(x)
        logits = torch.matmul(q, k.transpose(1, 2)) / math.sqrt(k.size(-1))
        blocked = self.mask[:n_tok, :n_tok].to(torch.bool)  # future positions
        logits = logits.masked_fill(blocked, float("-inf"))
        probs = self.dropout(logits.softmax(dim=-1))
        return torch.matmul(probs, v)

    def __init__(self, d_in, d_out, context_length, dropout, qkv_bias=False):
        super().__init__()
        self.W_query = nn.Linear(d_in, d_out, bias=qkv_bias)
        self.W_key = nn.Linear(d_in, d_out, bias=qkv_bias)
        self.W_value = nn.Linear(d_in, d_out, bias=qkv_bias)
        self.dropout = nn.Dropout(dropout)
        self.register_buffer("mask", torch.triu(torch.ones(context_length, context_length), diagonal=1))


def load_v2_weights_into_v1(sa_v1, sa_v2):
    pairs = {"W_query": sa_v2.W_query, "W_key": sa_v2.W_key, "W_value": sa_v2.W_value}
    with torch.no_grad():
        for name, layer in pairs.items():
            getattr(sa_v1, name).copy_(layer.weight.transpose(0, 1))


def softmax_naive(x):
    # exponentiate, then divide by the column totals
    numer = torch.exp(x)
    denom = numer.sum(dim=0, keepdim=True)
    return numer / denom


class MultiHeadAttentionWrapper(nn.Module):
    def forward(self, x):
        pieces = [head(x) for head in self.heads]
        return torch.cat(pieces, dim=2)

    def __init__(self, d_in, d_out, context_length, dropout, num_heads, qkv_bias=False):
        super().__init__()
        self.heads = nn.ModuleList(
            CausalAttention(d_in, d_out, context_length, dropout, qkv_bias) for _ in range(num_heads)
        )


class SelfAttention_v2(nn.Module):
    def forward(self, x):
        q, k, v = (layer(x) for layer in (self.W_query, self.W_key, self.W_value))
        logits = torch.matmul(q, k.transpose(0, 1)) / math.sqrt(k.size(-1))
        return torch.matmul(logits.softmax(dim=-1), v)

    def __init__(self, d_in, d_out, qkv_bias=False):
        super().__init__()
        self.W_query = nn.Linear(d_in, d_out, bias=qkv_bias)
        self.W_key = nn.Linear(d_in, d_out, bias=qkv_bias)
        self.W_value = nn.Linear(d_in, d_out, bias=qkv_bias)


def exercise_3_2():
    return MultiHeadAttentionWrapper(d_in=3, d_out=1, context_length=6, dropout=0.0, num_heads=2)


def simple_self_attention(inputs):
    gram = torch.matmul(inputs, inputs.transpose(0, 1))
    probs = softmax_naive(gram.T).T  # my softmax normalises columns, so transpose twice
    return torch.matmul(probs, inputs)


class SelfAttention_v1(nn.Module):
    def forward(self, x):
        proj = [torch.matmul(x, w) for w in (self.W_query, self.W_key, self.W_value)]
        q, k, v = proj
        logits = torch.matmul(q, k.transpose(0, 1)) / math.sqrt(k.size(-1))
        return torch.matmul(logits.softmax(dim=-1), v)

    def __init__(self, d_in, d_out):
        super().__init__()
        self.W_query = nn.Parameter(torch.rand(d_in, d_out))
        self.W_key = nn.Parameter(torch.rand(d_in, d_out))
        self.W_value = nn.Parameter(torch.rand(d_in, d_out))
