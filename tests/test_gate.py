"""The gate only attention passes (judge/gate.py): code built to look like attention is refused, every
real mistake of the catalogue is still attention, and so is every correct style, whatever the probe seed."""
from __future__ import annotations

import json
import time

import pytest

from autograder.assignment import load
from autograder.chapters.ch03_attention.checks.precondition import ATTENTION
from autograder.chapters.ch03_attention.explain.misconceptions import CATALOGUE, mutate
from autograder.config import Config
from autograder.judge.expect import CheckFailure
from autograder.judge.gate import expect_attention_family, is_attention, probe, recheck, spot_gate
from autograder.judge.probes import randn
from autograder.judge.subjects import LocalSubject
from autograder.load.submission import load_submission
from autograder.sandbox.inside.execute import execute
from tests.conftest import FILES, run_cli

GAMING = FILES / "gaming"
GAMED = json.loads((GAMING / "manifest.json").read_text())
STATEFUL = sorted(name for name, entry in GAMED.items() if entry.get("stateful"))
"""Classes that are attention while the gate first looks, and then not (a counter, a clock, a memo)."""
NOT_ATTENTION_BY_DESIGN = {
    "causal_returns_values": "returns the values unmixed",
    "wrapper_cat_dim1": "joins the heads along the tokens, so no head's output is read back",
    "wrapper_heads_not_registered": "keeps its heads in a plain list, so the module owns no layer to fit",
}
"""Mistakes of the catalogue whose output is not attention at all: the gate may refuse them."""


def _verdict(sub: LocalSubject, part: str, seed: int) -> str:
    try:
        expect_attention_family(sub, part, seed)
    except CheckFailure as failure:
        return failure.key
    except Exception as error:  # noqa: BLE001 - a mistake that raises is judged by the other checks
        return f"raised {type(error).__name__}"
    return "attention"


def _reference_chunks() -> list[dict]:
    return [{"origin": c.origin, "code": c.code} for c in load_submission(Config().reference_notebook).chunks]


# the last two seeds draw an out_proj that is nearly singular
@pytest.mark.parametrize("seed", [0, 1, 7, 12345, 2**31 - 1, 2898433705, 2744776746])
def test_the_reference_is_attention_whatever_the_seed(seed):
    sub = LocalSubject.from_chunks(_reference_chunks(), f"ref_{seed}")
    assert {part: _verdict(sub, part, seed) for part in ATTENTION} == dict.fromkeys(ATTENTION, "attention")


@pytest.mark.parametrize("seed", [3, 86])
def test_every_real_mistake_is_still_attention(seed):
    reference = _reference_chunks()
    mutants = [m for m in CATALOGUE if m.part in ATTENTION]
    assert len(mutants) > 50, "the catalogue should hold the chapter's real mistakes"
    refused = {}
    for mistake in mutants:
        verdict = _verdict(LocalSubject.from_chunks(mutate(reference, mistake), f"m_{mistake.id}"), mistake.part, seed)
        if verdict == "fail.not_attention":
            refused[mistake.id] = verdict
    assert set(refused) <= set(NOT_ATTENTION_BY_DESIGN), (
        f"the gate refuses real mistakes, which would then earn nothing and be named nowhere: "
        f"{sorted(set(refused) - set(NOT_ATTENTION_BY_DESIGN))}")
    assert "causal_returns_values" in refused, "returning the values unmixed is not attention: the gate must see it"


@pytest.mark.parametrize("seed", [3, 86])
def test_keys_made_by_the_query_layer_are_still_attention(seed):
    """A copy-paste slip, `keys = self.W_query(x)`: the softmax of one layer's projections with themselves is in the
    family. The gate tries such pairs after the pairs of two layers (to find a correct class's fit sooner): they must
    still be tried, and the verdict must be the one the search in its first order gives."""
    chunks = [{**c, "code": c["code"].replace("x @ self.W_key", "x @ self.W_query")
               .replace("self.W_key(x)", "self.W_query(x)")} for c in _reference_chunks()]
    assert chunks != _reference_chunks()
    sub = LocalSubject.from_chunks(chunks, f"same_layer_{seed}")
    assert {part: _verdict(sub, part, seed) for part in ATTENTION} == dict.fromkeys(ATTENTION, "attention")
    for part in ATTENTION:
        p = probe(sub, part, seed)
        module = sub.new(part, *p.args, stand_in=())
        fits: list = []
        assert is_attention(module, p) == is_attention(module, p, fits), part  # fits: the first order


@pytest.mark.parametrize("seed", [3, 86, 2898433705])
def test_heads_split_by_stride_are_attention(seed):
    """view(b, T, head_dim, num_heads) with the heads permuted to the front: each head is attention over other
    features than the chapter's. The gate refused it once, costing every behaviour point with a claim ("it cannot
    be written as a softmax ...") that is false of it; the values check is what it must fail."""
    sub = LocalSubject.from_chunks(load_submission(FILES / "unseen" / "held_mha_strided_heads.py").chunk_dicts(),
                                   f"strided_{seed}")
    assert _verdict(sub, "MultiHeadAttention", seed) == "attention"
    p = probe(sub, "MultiHeadAttention", seed)
    module = sub.new("MultiHeadAttention", *p.args, stand_in=())
    assert is_attention(module, p) is True


@pytest.mark.parametrize("seed", [3, 86])
def test_heads_with_their_sizes_swapped_are_attention_and_stay_so(seed):
    """view(b, T, head_dim, num_heads).transpose(1, 2): head_dim heads of num_heads columns, fewer than the tokens of
    an ordinary probe, so their weights cannot be read back there. The gate asks again in square probes (as many
    heads as columns), and so do its later looks; the scale is still measured on an ordinary probe, where the heads
    are not the chapter's, so nothing is said of it but the difference."""
    from autograder.judge.gate import scale_message

    sub = LocalSubject.from_chunks(load_submission(FILES / "unseen" / "held_mha_view_dims_swapped.py").chunk_dicts(),
                                   f"swapped_{seed}")
    sub.probe_seed = seed
    assert _as_the_checks_would(sub, "MultiHeadAttention", 12) == {}
    assert scale_message(sub, "MultiHeadAttention", seed)[0] == "fail.large_scores"
    reference = LocalSubject.from_chunks(_reference_chunks(), f"square_{seed}")
    expect_attention_family(reference, "MultiHeadAttention", seed)
    assert probe(reference, "MultiHeadAttention", seed).heads in (2, 3), "the chapter's heads pass ordinary probes"


@pytest.mark.parametrize("name", sorted(set(GAMED) - set(STATEFUL)))
def test_code_built_to_look_like_attention_is_refused(name):
    submission = load_submission(GAMING / name)
    sub = LocalSubject.from_chunks(submission.chunk_dicts(), f"g_{name[:-3]}")
    gamed = set(GAMED[name]["gamed"])
    if "CausalAttention" in gamed:  # the wrapper runs it: without the kit's stand-ins, the whole is not attention
        gamed.add("MultiHeadAttentionWrapper")
    verdicts = {part: _verdict(sub, part, 11) for part in ATTENTION}
    assert {p: v for p, v in verdicts.items() if p in gamed} == dict.fromkeys(gamed, "fail.not_attention")
    assert {p: v for p, v in verdicts.items() if p not in gamed} == dict.fromkeys(set(ATTENTION) - gamed,
                                                                                   "attention"), \
        "the classes copied unchanged from the reference are attention"


def _as_the_checks_would(sub: LocalSubject, name: str, checks: int, pause: float = 0.01) -> dict[str, str]:
    """The gate, then `checks` behaviour checks that each use a module of their own one to four times (and take
    `pause` seconds, as a check in a worker does), each first passing the spot gate, then the last look: the parts
    found not to be attention -> how."""
    try:
        expect_attention_family(sub, name, sub.probe_seed)
    except CheckFailure as failure:
        return {name: failure.key}
    found = {}
    for i in range(checks):
        try:
            spot_gate(sub, name)
        except CheckFailure as failure:
            found[name] = failure.key
        args, shape, _ = ATTENTION[name]
        module = sub.new(name, *args)
        for j in range(1 + i % 4):
            module(randn(*shape, seed=100 * i + j))
        time.sleep(pause)
    return found | dict.fromkeys(recheck(sub, [name]), "recheck")


@pytest.mark.parametrize("name", STATEFUL)
def test_a_class_that_stops_being_attention_is_seen(name):
    sub = LocalSubject.from_chunks(load_submission(GAMING / name).chunk_dicts(), f"s_{name[:-3]}")
    sub.probe_seed = 11
    assert "CausalAttention" in _as_the_checks_would(sub, "CausalAttention", 90)


@pytest.mark.parametrize("seed", [0, 11, 2898433705])
def test_attention_that_stays_attention_is_never_taken_back(seed):
    sub = LocalSubject.from_chunks(_reference_chunks(), f"stays_{seed}")
    sub.probe_seed = seed
    assert {part: _as_the_checks_would(sub, part, 12) for part in ATTENTION} == dict.fromkeys(ATTENTION, {})


@pytest.mark.parametrize("seed", [3, 86])
def test_every_real_mistake_stays_attention_every_time(seed):
    reference = _reference_chunks()
    taken_back = {}
    for mistake in (m for m in CATALOGUE if m.part in ATTENTION and m.id not in NOT_ATTENTION_BY_DESIGN):
        sub = LocalSubject.from_chunks(mutate(reference, mistake), f"again_{mistake.id}")
        sub.probe_seed = seed
        try:
            found = _as_the_checks_would(sub, mistake.part, 12, pause=0.0)
        except Exception:  # noqa: BLE001 - a mistake that raises is judged by the other checks
            continue
        if found:
            taken_back[mistake.id] = found
    assert not taken_back, f"real mistakes judged not attention by a later look: {taken_back}"


def _judged_alone(part: str, broken: set[str]) -> bool:
    """The wrapper runs the student's own CausalAttention: with that one broken, it is judged with a stand-in."""
    return not (part == "MultiHeadAttentionWrapper" and "CausalAttention" in broken)


@pytest.mark.parametrize("folder", ["submissions", "real"])
def test_correct_and_mistaken_work_of_every_style_is_attention(folder):
    manifest = json.loads((FILES / folder / "manifest.json").read_text())
    judged = 0
    for name, entry in manifest.items():
        bugs = entry.get("bugs", {})
        wrong = set(entry["wrong"]) if "wrong" in entry else set(bugs)
        sub = LocalSubject.from_chunks(load_submission(FILES / folder / name).chunk_dicts(), f"c_{name[:-3]}")
        for part in ATTENTION:
            if not _judged_alone(part, wrong) or (part in wrong and part not in bugs):  # a mistake without an id
                continue
            verdict = _verdict(sub, part, 5)
            if part not in wrong:
                assert verdict == "attention", f"{name}: {part} is right, yet {verdict}"
            elif not set(bugs.get(part, ())) & set(NOT_ATTENTION_BY_DESIGN):
                assert verdict != "fail.not_attention", f"{name}: {part}'s mistake {bugs.get(part)} is refused"
            judged += 1
    assert judged > 60


@pytest.mark.slow
def test_gamed_classes_earn_structure_points_only(tmp_path):
    from autograder.judge.run import check_table

    structure = {info.check_id for info in check_table(load().checks) if info.structure}
    result = run_cli("grade", str(GAMING), "--out", str(tmp_path), "--jobs", "2")
    assert result.returncode == 0, result.stderr[-3000:]
    for name, entry in GAMED.items():
        record = json.loads((tmp_path / f"{name}.json").read_text())
        for part in entry["gamed"]:
            behaviour = [t for t in record["tests"] if t["part"] == part and t["check_id"] not in structure]
            assert behaviour, f"{name}: {part} has no behaviour checks, so this proves nothing"
            earned = {t["check_id"]: t["score"] for t in behaviour if t["score"] > 0}
            assert not earned, f"{name}: {part} earns behaviour points without being attention: {earned}"
        for part in set(ATTENTION) - set(entry["gamed"]):
            full = record["parts"][part]["score"] == record["parts"][part]["max_score"]
            if entry.get("stateful") and part == "MultiHeadAttentionWrapper":
                # built on the gamed CausalAttention: judged with the kit's stand-ins (full marks) once that is
                # seen to change, or, when it changes during the wrapper's own checks, a class that changes too
                behaviour = [t for t in record["tests"] if t["part"] == part and t["check_id"] not in structure]
                assert full or not any(t["score"] for t in behaviour), (name, part)
            else:
                assert full, (name, part)


def test_a_wrapper_whose_heads_have_other_names_is_judged_by_what_it_computes():
    """Heads registered with add_module (head_0, head_1, ...) instead of an nn.ModuleList named heads: the layout
    check says so, and that is all. The gate once found no head (it looked under "heads."), the diagnosis named an
    extra layer after the heads, and the qkv_bias check said it was not passed on: all false of this class."""
    from autograder.chapters.ch03_attention.checks import test_4_multihead as checks
    from autograder.chapters.ch03_attention.explain.facts import wrapper_facts

    source = (FILES / "submissions" / "correct_reference.py").read_text()
    modulelist = """        self.heads = nn.ModuleList(
            [CausalAttention(d_in, d_out, context_length, dropout, qkv_bias)
             for _ in range(num_heads)]
        )

    def forward(self, x):
        return torch.cat([head(x) for head in self.heads], dim=-1)"""
    added = """        self.num_heads = num_heads
        for i in range(num_heads):
            self.add_module(f"head_{i}", CausalAttention(d_in, d_out, context_length, dropout, qkv_bias))

    def forward(self, x):
        return torch.cat([getattr(self, f"head_{i}")(x) for i in range(self.num_heads)], dim=-1)"""
    assert modulelist in source
    namespace, _ = execute([{"origin": "cell 1", "code": source.replace(modulelist, added)}], "add_module_wrapper")
    sub = LocalSubject(namespace, load())
    for seed in (3, 86):
        assert _verdict(sub, "MultiHeadAttentionWrapper", seed) == "attention"
    assert wrapper_facts(sub) == []
    extra = load_submission(FILES / "real" / "real_wrapper_extra_projection.py").chunk_dicts()
    assert ("wrapper_extra_projection", {}) in wrapper_facts(LocalSubject.from_chunks(extra, "extra_projection"))
    checks.test_wrapper_passes_qkv_bias(sub)
    checks.test_wrapper_concatenates_heads_in_order(sub)
    with pytest.raises(CheckFailure, match="fail.heads_modulelist"):
        checks.test_wrapper_layout(sub)


def test_qkv_bias_is_looked_for_on_the_layers_that_project_the_input():
    """A fused qkv layer built with bias=qkv_bias has its bias: the gradient check once said "W_query has the wrong
    bias" of a class without W_query. A class that ignores qkv_bias still fails it, named by its own layer."""
    from autograder.chapters.ch03_attention.checks import test_4_multihead as checks

    source = (FILES / "submissions" / "correct_reference.py").read_text()
    start, end = source.index("class MultiHeadAttention(nn.Module):"), source.index("def exercise_3_2")
    fused = '''class MultiHeadAttention(nn.Module):
    def __init__(self, d_in, d_out, context_length, dropout, num_heads, qkv_bias=False):
        super().__init__()
        self.num_heads, self.head_dim, self.d_out = num_heads, d_out // num_heads, d_out
        self.qkv = nn.Linear(d_in, 3 * d_out, bias=qkv_bias)
        self.out_proj = nn.Linear(d_out, d_out)
        self.dropout = nn.Dropout(dropout)
        self.register_buffer("mask", torch.triu(torch.ones(context_length, context_length), diagonal=1))

    def forward(self, x):
        b, T, _ = x.shape
        q, k, v = self.qkv(x).view(b, T, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        s = (q @ k.transpose(-2, -1)).masked_fill(self.mask.bool()[:T, :T], float("-inf"))
        w = self.dropout(torch.softmax(s / self.head_dim ** 0.5, dim=-1))
        return self.out_proj((w @ v).transpose(1, 2).reshape(b, T, self.d_out))


'''

    def subject(code: str, name: str) -> LocalSubject:
        namespace, _ = execute([{"origin": "cell 1", "code": code}], name)
        return LocalSubject(namespace, load())

    checks.test_mha_gradients(subject(source[:start] + fused + source[end:], "fused"))
    for code, layer in ((source[:start] + fused.replace("bias=qkv_bias", "bias=False") + source[end:], "qkv"),
                        (source.replace("nn.Linear(d_in, d_out, bias=qkv_bias)", "nn.Linear(d_in, d_out, bias=False)"),
                         "W_query")):
        with pytest.raises(CheckFailure) as failed:
            checks.test_mha_gradients(subject(code, f"no_bias_{layer}"))
        assert failed.value.key == "fail.qkv_bias" and failed.value.params["name"] == layer, failed.value.params
