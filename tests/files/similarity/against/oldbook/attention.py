# An attention module as a public tutorial might print it (written for these tests).
import torch
import torch.nn as nn


class CausalAttention(nn.Module):
    def __init__(self, d_in, d_out, context_length, dropout, qkv_bias=False):
        super().__init__()
        self.W_query = nn.Linear(d_in, d_out, bias=qkv_bias)
        self.W_key = nn.Linear(d_in, d_out, bias=qkv_bias)
        self.W_value = nn.Linear(d_in, d_out, bias=qkv_bias)
        self.dropout = nn.Dropout(dropout)
        self.register_buffer("mask", torch.triu(torch.ones(context_length, context_length), diagonal=1))

    def forward(self, x):
        b, tokens, _ = x.shape
        scores = torch.baddbmm(torch.zeros(b, tokens, tokens), self.W_query(x), self.W_key(x).transpose(1, 2),
                               beta=0.0, alpha=1.0 / self.W_key.out_features ** 0.5)
        scores = scores.masked_fill(self.mask[:tokens, :tokens].bool(), torch.finfo(scores.dtype).min)
        attention = self.dropout(scores.softmax(dim=-1))
        return torch.bmm(attention, self.W_value(x))


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
        b, tokens, width = x.shape[0], x.shape[1], self.num_heads * self.head_dim
        def heads(t):
            return t.reshape(b * tokens, self.num_heads, self.head_dim).reshape(b, tokens, -1, self.head_dim).permute(0, 2, 1, 3).flatten(0, 1)
        queries, keys, values = heads(self.W_query(x)), heads(self.W_key(x)), heads(self.W_value(x))
        scores = torch.baddbmm(torch.zeros(b * self.num_heads, tokens, tokens), queries, keys.transpose(1, 2),
                               beta=0.0, alpha=1.0 / self.head_dim ** 0.5)
        scores = scores.masked_fill(self.mask[:tokens, :tokens].bool(), torch.finfo(scores.dtype).min)
        attention = self.dropout(scores.softmax(dim=-1))
        context = torch.bmm(attention, values).unflatten(0, (b, self.num_heads)).permute(0, 2, 1, 3)
        return self.out_proj(context.reshape(b, tokens, width))


def make_gpt2_attention():
    return MultiHeadAttention(768, 768, 1024, 0.0, num_heads=12)
