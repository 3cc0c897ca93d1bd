# 陳同學：用 F.softmax 與 view/transpose，並把切 head 的步驟寫成函式。
import torch
import torch.nn.functional as F
from torch import nn


def softmax_naive(x):
    return torch.div(torch.exp(x), torch.sum(torch.exp(x), dim=0))


def simple_self_attention(inputs):
    return F.softmax(torch.mm(inputs, inputs.t()), dim=1).mm(inputs)


class SelfAttention_v1(nn.Module):
    def __init__(self, d_in, d_out):
        super().__init__()
        self.W_query = nn.Parameter(torch.rand(d_in, d_out))
        self.W_key = nn.Parameter(torch.rand(d_in, d_out))
        self.W_value = nn.Parameter(torch.rand(d_in, d_out))

    def forward(self, x):
        Q, K, V = x.mm(self.W_query), x.mm(self.W_key), x.mm(self.W_value)
        A = F.softmax(Q.mm(K.t()) * K.shape[-1] ** -0.5, dim=-1)
        return A.mm(V)


class SelfAttention_v2(nn.Module):
    def __init__(self, d_in, d_out, qkv_bias=False):
        super().__init__()
        self.W_query = nn.Linear(d_in, d_out, bias=qkv_bias)
        self.W_key = nn.Linear(d_in, d_out, bias=qkv_bias)
        self.W_value = nn.Linear(d_in, d_out, bias=qkv_bias)

    def forward(self, x):
        Q, K, V = self.W_query(x), self.W_key(x), self.W_value(x)
        A = F.softmax(Q.mm(K.t()) * K.shape[-1] ** -0.5, dim=-1)
        return A.mm(V)


def load_v2_weights_into_v1(sa_v1, sa_v2):
    for label in ("W_query", "W_key", "W_value"):
        setattr(sa_v1, label, nn.Parameter(getattr(sa_v2, label).weight.detach().t().contiguous()))


class CausalAttention(nn.Module):
    def __init__(self, d_in, d_out, context_length, dropout, qkv_bias=False):
        super().__init__()
        self.W_query = nn.Linear(d_in, d_out, bias=qkv_bias)
        self.W_key = nn.Linear(d_in, d_out, bias=qkv_bias)
        self.W_value = nn.Linear(d_in, d_out, bias=qkv_bias)
        self.dropout = nn.Dropout(dropout)
        self.register_buffer("mask", torch.triu(torch.ones(context_length, context_length), diagonal=1))

    def forward(self, x):
        T = x.shape[-2]
        Q, K, V = self.W_query(x), self.W_key(x), self.W_value(x)
        S = torch.bmm(Q, K.transpose(1, 2)) * K.shape[-1] ** -0.5
        S = torch.where(self.mask[:T, :T].bool(), torch.full_like(S, float("-inf")), S)
        return torch.bmm(self.dropout(F.softmax(S, dim=-1)), V)


class MultiHeadAttentionWrapper(nn.Module):
    def __init__(self, d_in, d_out, context_length, dropout, num_heads, qkv_bias=False):
        super().__init__()
        self.heads = nn.ModuleList([CausalAttention(d_in, d_out, context_length, dropout, qkv_bias=qkv_bias)
                                    for _ in range(num_heads)])

    def forward(self, x):
        return torch.cat(tuple(map(lambda h: h(x), self.heads)), dim=-1)


def exercise_3_2():
    torch.manual_seed(0)
    return MultiHeadAttentionWrapper(d_in=3, d_out=1, context_length=6, dropout=0.0, num_heads=2)


def split_heads(t, n_heads):
    B, T, D = t.shape
    return t.view(B, T, n_heads, D // n_heads).transpose(1, 2)


def merge_heads(t):
    B, H, T, Dh = t.shape
    return t.transpose(1, 2).contiguous().view(B, T, H * Dh)


class MultiHeadAttention(nn.Module):
    def __init__(self, d_in, d_out, context_length, dropout, num_heads, qkv_bias=False):
        super().__init__()
        if d_out % num_heads != 0:
            raise ValueError("d_out has to be divisible by num_heads")
        self.num_heads, self.head_dim = num_heads, d_out // num_heads
        self.W_query = nn.Linear(d_in, d_out, bias=qkv_bias)
        self.W_key = nn.Linear(d_in, d_out, bias=qkv_bias)
        self.W_value = nn.Linear(d_in, d_out, bias=qkv_bias)
        self.out_proj = nn.Linear(d_out, d_out)
        self.dropout = nn.Dropout(dropout)
        self.register_buffer("mask", torch.triu(torch.ones(context_length, context_length), diagonal=1))

    def forward(self, x):
        T = x.shape[1]
        Q = split_heads(self.W_query(x), self.num_heads)
        K = split_heads(self.W_key(x), self.num_heads)
        V = split_heads(self.W_value(x), self.num_heads)
        S = Q @ K.transpose(-2, -1) * self.head_dim ** -0.5
        S = torch.where(self.mask[:T, :T].bool(), torch.full_like(S, float("-inf")), S)
        return self.out_proj(merge_heads(self.dropout(F.softmax(S, dim=-1)) @ V))


def exercise_3_3():
    return MultiHeadAttention(d_in=768, d_out=768, context_length=1024, dropout=0.0, num_heads=12, qkv_bias=False)
