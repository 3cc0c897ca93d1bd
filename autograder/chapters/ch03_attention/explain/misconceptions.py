"""Known misconceptions, each a small textual edit of the reference solution (a "mutant")."""
from __future__ import annotations

import ast
from dataclasses import dataclass

CAUSAL, WRAPPER, MHA = "CausalAttention", "MultiHeadAttentionWrapper", "MultiHeadAttention"
DROPOUT_LINE = "        attn_weights = self.dropout(attn_weights)\n"
MASK_LINE = "        attn_scores.masked_fill_(self.mask.bool()[:num_tokens, :num_tokens], -torch.inf)\n"
SCALED = "attn_scores / keys.shape[-1] ** 0.5"
NO_MASK = ("attn_scores.masked_fill_(", "attn_scores.masked_fill(")  # the masked copy is thrown away
BY_TOKENS = ("keys.shape[-1] ** 0.5", "num_tokens ** 0.5")
HEADS_LIST = "[CausalAttention(d_in, d_out, context_length, dropout, qkv_bias) for _ in range(num_heads)]\n        )\n"


@dataclass(frozen=True)
class Misconception:
    """A known mistake: the reference with `edits` applied to the definition of `part`.

    Its name and hint are the catalogue messages `misconception.<id>` and `misconception.<id>.hint`.
    """

    id: str
    part: str
    """The graded name whose definition is edited (and whose points the mistake costs)."""
    edits: tuple[tuple[str, str, int], ...]
    """(old, new, count): `old` must occur exactly `count` times in the definition."""
    combines: tuple[str, ...] = ()
    """For an entry that makes several mistakes at once: the ids of the mistakes the diagnosis must name."""

    @property
    def names(self) -> tuple[str, ...]:
        """The mistakes this entry makes, as the diagnosis names them (message keys)."""
        return self.combines or (self.id,)


def _m(id: str, part: str, *edits: tuple, combines: tuple[str, ...] = ()) -> Misconception:
    return Misconception(id, part, tuple((e[0], e[1], e[2] if len(e) > 2 else 1) for e in edits), combines)


def _attention_variants(prefix: str, part: str) -> list[Misconception]:
    """Mistakes that CausalAttention and MultiHeadAttention share (same code in both)."""
    return [
        _m(f"{prefix}_softmax_dim1", part, ("dim=-1)", "dim=1)")),
        _m(f"{prefix}_no_scaling", part, (SCALED, "attn_scores")),
        _m(f"{prefix}_mask_diagonal0", part, ("diagonal=1", "diagonal=0")),
        _m(f"{prefix}_mask_diagonal2", part, ("diagonal=1", "diagonal=2")),
        _m(f"{prefix}_mask_after_softmax", part, (MASK_LINE, ""), (
            DROPOUT_LINE,
            "        attn_weights = attn_weights.masked_fill(self.mask.bool()[:num_tokens, :num_tokens], 0.0)\n"
            + DROPOUT_LINE)),
        _m(f"{prefix}_mask_not_sliced", part, ("self.mask.bool()[:num_tokens, :num_tokens]", "self.mask.bool()")),
        _m(f"{prefix}_mask_plain_attribute", part, ('self.register_buffer("mask", ', "self.mask = (")),
        _m(f"{prefix}_mask_parameter", part, ('self.register_buffer("mask", ', "self.mask = nn.Parameter(")),
        _m(f"{prefix}_dropout_on_scores", part, (SCALED, f"self.dropout({SCALED})"), (DROPOUT_LINE, "")),
        _m(f"{prefix}_dropout_on_values", part, (DROPOUT_LINE, "        values = self.dropout(values)\n")),
        _m(f"{prefix}_dropout_missing", part, (DROPOUT_LINE, "")),
        _m(f"{prefix}_qkv_bias_ignored", part, ("bias=qkv_bias)\n", "bias=False)\n", 3)),
        # seen in learners' code (docs/real-mistakes.md)
        _m(f"{prefix}_mask_missing", part, NO_MASK),
        _m(f"{prefix}_scale_by_tokens", part, BY_TOKENS),
        _m(f"{prefix}_scale_multiplied", part, (SCALED, "attn_scores * keys.shape[-1] ** 0.5")),
        _m(f"{prefix}_scale_odd", part, ("keys.shape[-1] ** 0.5", "keys.shape[-1] ** 0.25")),
        _m(f"{prefix}_divide_after_softmax", part, (f"torch.softmax({SCALED}, dim=-1)",
                                                    "torch.softmax(attn_scores, dim=-1) / keys.shape[-1] ** 0.5")),
        _m(f"{prefix}_uses_global", part, ("self.mask.bool()", "mask.bool()")),
        _m(f"{prefix}_combo_no_mask_scale_tokens", part, NO_MASK, BY_TOKENS,
           combines=(f"{prefix}_mask_missing", f"{prefix}_scale_by_tokens")),
        _m(f"{prefix}_combo_tril_no_dropout", part, ("torch.triu(", "torch.tril("), (DROPOUT_LINE, ""),
           combines=(f"{prefix}_mask_tril", f"{prefix}_dropout_missing")),
    ]


CATALOGUE: tuple[Misconception, ...] = (
    _m("softmax_naive_sum_of_x", "softmax_naive", ("exp_x / exp_x.sum(dim=0)", "exp_x / x.sum(dim=0)")),
    _m("simple_softmax_dim0", "simple_self_attention", ("dim=-1)", "dim=0)")),
    _m("v1_keys_queries_swapped", "SelfAttention_v1", ("queries @ keys.T", "keys @ queries.T")),
    _m("v1_scale_by_d_in", "SelfAttention_v1", ("keys.shape[-1] ** 0.5", "x.shape[-1] ** 0.5")),
    _m("v1_softmax_dim0", "SelfAttention_v1", ("dim=-1)", "dim=0)")),
    _m("v2_no_scaling", "SelfAttention_v2", ("attn_scores / keys.shape[-1] ** 0.5", "attn_scores")),
    _m("v2_scale_by_d_k", "SelfAttention_v2", ("keys.shape[-1] ** 0.5", "keys.shape[-1]")),
    _m("v2_qkv_bias_ignored", "SelfAttention_v2", ("bias=qkv_bias)\n", "bias=False)\n", 3)),
    _m("load_no_transpose", "load_v2_weights_into_v1", (".weight.T)", ".weight)", 3)),
    *_attention_variants("causal", CAUSAL),
    _m("causal_scale_by_d_in", CAUSAL, ("keys.shape[-1] ** 0.5", "d_in ** 0.5")),
    _m("causal_scale_by_d_k", CAUSAL, ("keys.shape[-1] ** 0.5", "keys.shape[-1]")),
    _m("causal_mask_tril", CAUSAL, ("torch.triu(", "torch.tril(")),
    _m("causal_mask_zero_fill", CAUSAL, ("-torch.inf)", "0.0)")),
    _m("causal_dropout_on_output", CAUSAL, (DROPOUT_LINE, ""),
       ("return attn_weights @ values", "return self.dropout(attn_weights @ values)")),
    _m("causal_dropout_always", CAUSAL, ("self.dropout(attn_weights)",
                                         "torch.nn.functional.dropout(attn_weights, self.dropout.p)")),
    _m("causal_weights_transposed", CAUSAL, ("return attn_weights @ values",
                                             "return attn_weights.transpose(1, 2) @ values")),
    _m("causal_wrong_projection", CAUSAL, ("queries = self.W_query(x)", "queries = self.W_key(x)")),
    _m("causal_returns_values", CAUSAL, ("return attn_weights @ values", "return values")),
    _m("causal_returns_nothing", CAUSAL, ("return attn_weights @ values", "context_vec = attn_weights @ values")),
    _m("causal_combo_renamed_no_mask", CAUSAL, ("self.W_query", "self.w_query", 2), NO_MASK,
       combines=("causal_renamed_layer", "causal_mask_missing")),
    _m("wrapper_cat_dim1", WRAPPER, ("dim=-1)", "dim=1)")),
    _m("wrapper_shared_head", WRAPPER, ("qkv_bias) for _ in range(num_heads)]", "qkv_bias)] * num_heads")),
    _m("wrapper_qkv_bias_ignored", WRAPPER, ("dropout, qkv_bias) for _", "dropout) for _")),
    _m("wrapper_extra_projection", WRAPPER, (HEADS_LIST, HEADS_LIST + "        self.out_proj = "
                                                         "nn.Linear(num_heads * d_out, num_heads * d_out)\n"),
       ("return torch.cat([head(x) for head in self.heads], dim=-1)",
        "return self.out_proj(torch.cat([head(x) for head in self.heads], dim=-1))")),
    _m("wrapper_heads_not_registered", WRAPPER, ("self.heads = nn.ModuleList(", "self.heads = list(")),
    _m("wrapper_uses_global", WRAPPER, ("[CausalAttention(", "[CausalSelfAttention(")),
    _m("exercise_3_2_d_out2", "exercise_3_2", ("d_out=1", "d_out=2")),
    *_attention_variants("mha", MHA),
    _m("mha_softmax_query_dim", MHA, ("dim=-1)", "dim=2)")),
    _m("mha_scale_by_d_out", MHA, ("keys.shape[-1] ** 0.5", "self.d_out ** 0.5")),
    _m("mha_view_no_transpose", MHA, *[
        (f"{n}.view(b, num_tokens, self.num_heads, self.head_dim)", f"{n}.view(b, self.num_heads, num_tokens, "
         "self.head_dim)") for n in ("queries", "keys", "values")], *[
        (f"        {n} = {n}.transpose(1, 2)  # (b, heads, T, head_dim)\n", "")
        for n in ("queries", "keys", "values")]),
    _m("mha_context_no_transpose", MHA, ("(attn_weights @ values).transpose(1, 2)", "(attn_weights @ values)")),
    _m("mha_one_head", MHA, *[(f"{n}.view(b, num_tokens, self.num_heads, self.head_dim)",
                               f"{n}.view(b, num_tokens, 1, self.d_out)") for n in ("queries", "keys", "values")]),
    _m("mha_no_out_proj", MHA, ("return self.out_proj(context_vec)", "return context_vec")),
    _m("mha_no_divisibility_check", MHA, ("assert d_out % num_heads == 0, (", "assert True, (")),
    _m("mha_mask_tril", MHA, ("torch.triu(", "torch.tril(")),
    _m("mha_mask_zero_fill", MHA, ("-torch.inf)", "0.0)")),
    _m("mha_scale_by_d_k", MHA, ("keys.shape[-1] ** 0.5", "keys.shape[-1]")),
    _m("mha_wrong_projection", MHA, ("queries = self.W_query(x)", "queries = self.W_value(x)"),
       ("        values = self.W_value(x)", "        values = self.W_query(x)")),
    _m("mha_renamed_layer", MHA, ("self.out_proj", "self.last_layer", 2)),
    _m("mha_combo_no_mask_no_out_proj", MHA, NO_MASK, ("return self.out_proj(context_vec)", "return context_vec"),
       combines=("mha_mask_missing", "mha_no_out_proj")),
    _m("mha_combo_no_mask_swapped_no_out_proj", MHA, NO_MASK,
       ("queries = self.W_query(x)", "queries = self.W_value(x)"),
       ("        values = self.W_value(x)", "        values = self.W_query(x)"),
       ("return self.out_proj(context_vec)", "return context_vec"),
       combines=("mha_mask_missing", "mha_wrong_projection", "mha_no_out_proj")),
    _m("exercise_3_3_context768", "exercise_3_3", ("context_length=1024", "context_length=768")),
    _m("exercise_3_3_heads64", "exercise_3_3", ("num_heads=12", "num_heads=64")),
    _m("exercise_3_3_wrapper", "exercise_3_3", ("MultiHeadAttention(d_in=768, d_out=768",
                                                "MultiHeadAttentionWrapper(d_in=768, d_out=64")),
)


class CatalogueError(Exception):
    """A misconception no longer applies to the reference: its edit must be updated."""


def _defines(code: str, name: str) -> bool:
    try:
        body = ast.parse(code).body
    except SyntaxError:
        return False
    return any(isinstance(n, (ast.FunctionDef, ast.ClassDef)) and n.name == name for n in body)


def mutate(chunks: list[dict], misconception: Misconception) -> list[dict]:
    """The reference's chunks with `misconception` applied; raises CatalogueError when it does not apply."""
    targets = [i for i, c in enumerate(chunks) if _defines(c["code"], misconception.part)]
    if len(targets) != 1:
        raise CatalogueError(f"{misconception.id}: the reference defines {misconception.part} {len(targets)} times")
    index = targets[0]
    code = chunks[index]["code"]
    for old, new, count in misconception.edits:
        found = code.count(old)
        if found != count:
            raise CatalogueError(f"{misconception.id}: {old!r} occurs {found} times in {misconception.part}, "
                                 f"expected {count}; update the catalogue to the reference")
        code = code.replace(old, new)
    try:
        ast.parse(code)
    except SyntaxError as exc:
        raise CatalogueError(f"{misconception.id}: the edited {misconception.part} is not valid Python: "
                             f"{exc}") from None
    return [*chunks[:index], {**chunks[index], "code": code}, *chunks[index + 1 :]]


def source(chunks: list[dict]) -> str:
    """Chunks as one plain .py submission."""
    return "\n\n\n".join(c["code"].strip("\n") for c in chunks) + "\n"
