"""Diagnosis by measured facts: real learners' patterns named (several at once), as .py, .ipynb and marimo."""
from __future__ import annotations

import json
from pathlib import Path

import nbformat
import pytest

from autograder.assignment import load
from autograder.authoring.build import to_marimo
from autograder.chapters.ch03_attention.explain.facts import measure, state_for
from autograder.chapters.ch03_attention.explain.knobs import Knobs, attention
from autograder.chapters.ch03_attention.explain.misconceptions import CATALOGUE, mutate
from autograder.chapters.ch03_attention.explain.mistakes import name
from autograder.config import Config
from autograder.judge.probes import randn
from autograder.judge.subjects import LocalSubject
from autograder.load.submission import load_submission
from tests.claims import untrue
from tests.conftest import FILES, run_cli

GRADED = load().graded

REAL = FILES / "real"
BY_ID = {m.id: m for m in CATALOGUE}
FORMATS = (".py", ".ipynb", "_marimo.py")
TARGET = 0.8
"""Share of the point-costing bugs in tests/files/real that must be named correctly (issue 11)."""


@pytest.fixture(scope="module")
def reference_chunks() -> list[dict]:
    reference = load_submission(Config().reference_notebook)
    return [{"origin": c.origin, "code": c.code} for c in reference.chunks]


def _subject(chunks: list[dict], tag: str) -> LocalSubject:
    return LocalSubject.from_chunks(chunks, f"diag_{tag}")


@pytest.mark.parametrize("part", ["CausalAttention", "MultiHeadAttention"])
def test_the_model_with_default_knobs_is_the_reference(reference_chunks, part):
    reference = _subject(reference_chunks, "ref_model")
    for d_in, d_out, heads in [(3, 2, 2), (5, 6, 3), (4, 8, 4)]:  # chapter sizes, odd head_dim, four heads
        args = (d_in, d_out, 8, 0.0) + ((heads,) if part == "MultiHeadAttention" else ())
        module = reference.new(part, *args, qkv_bias=True)
        weights = state_for(module, 1.5)
        module.load(weights)
        x = randn(2, 7, d_in, seed=d_in)
        ours = attention(Knobs(), weights, x, heads if part == "MultiHeadAttention" else 1,
                         part == "MultiHeadAttention")
        assert ours.float().allclose(module(x), atol=1e-5), f"{part} {args}: the model is not the chapter's attention"


def test_the_reference_has_no_mistakes(reference_chunks):
    reference = _subject(reference_chunks, "ref_facts")
    for part in ("CausalAttention", "MultiHeadAttention"):
        facts = measure(reference, part)
        assert facts.readable and facts.scale == "sqrt_head_dim" and facts.dropout == ["weights"], facts
        assert name(facts, part) == [], f"{part}: the reference was given mistakes"


@pytest.mark.parametrize("id", ["causal_combo_no_mask_scale_tokens", "mha_combo_no_mask_swapped_no_out_proj",
                                "causal_combo_renamed_no_mask", "mha_scale_odd"])
def test_several_mistakes_are_named_at_once(reference_chunks, id):
    m = BY_ID[id]
    found = name(measure(_subject(mutate(reference_chunks, m), id), m.part), m.part)
    assert {i for i, _ in found} == set(m.names), f"{id}: named {found}"


def test_the_measured_scale_power_is_reported(reference_chunks):
    m = BY_ID["mha_scale_odd"]  # keys.shape[-1] ** 0.25
    facts = measure(_subject(mutate(reference_chunks, m), "power"), m.part)
    assert name(facts, m.part) == [("mha_scale_odd", {"power": 0.25})]


def test_a_mistake_found_two_ways_is_named_once(reference_chunks):
    from autograder.chapters.ch03_attention.explain.diagnose import Diagnoser

    diagnoser = Diagnoser(lambda m: _subject(mutate(reference_chunks, m), f"mutant_{m.id}"))
    m = BY_ID["wrapper_uses_global"]  # a structural fact and a matching catalogue entry both say so
    found = [id for id, _ in diagnoser.mistakes(_subject(mutate(reference_chunks, m), "twice"), m.part, 1e12)]
    assert found == ["wrapper_uses_global"], found


NEW_WIRING = '''
class CausalAttention(nn.Module):
    def __init__(self, d_in, d_out, context_length, dropout, qkv_bias=False):
        super().__init__()
        self.W_query = nn.Linear(d_in, d_out, bias=qkv_bias)
        self.W_key = nn.Linear(d_in, d_out, bias=qkv_bias)
        self.W_value = nn.Linear(d_in, d_out, bias=qkv_bias)
        self.dropout = nn.Dropout(dropout)
        self.register_buffer("mask", torch.triu(torch.ones(context_length, context_length), diagonal=1))

    def forward(self, x):
        b, t, _ = x.shape
        scores = self.W_query(x) @ self.W_key(x).transpose(1, 2)
        scores = scores.masked_fill(self.mask.bool()[:t, :t], -torch.inf)
        weights = self.dropout(torch.softmax(scores / self.W_key.out_features ** 0.5, dim=-1))
        return (weights @ self.W_value(x)).transpose(1, 2).reshape(b, t, -1)  # features and tokens mixed up
'''


def test_a_mistake_nobody_catalogued_is_not_given_a_name(reference_chunks):
    chunks = [c for c in reference_chunks if "class CausalAttention" not in c["code"]]
    chunks.append({"origin": "new wiring", "code": NEW_WIRING})
    facts = measure(_subject(chunks, "new_wiring"), "CausalAttention")
    assert name(facts, "CausalAttention") == [], "an unknown mistake must be reported as unknown"


def _notebook(source: str) -> nbformat.NotebookNode:
    """A py:percent script as the Jupyter notebook a learner would have."""
    cells, kind, lines = [], None, []

    def flush() -> None:
        text = "\n".join(lines).strip("\n")
        if kind == "markdown":
            cells.append(nbformat.v4.new_markdown_cell("\n".join(line[2:] for line in text.splitlines())))
        elif kind == "code" and text:
            cells.append(nbformat.v4.new_code_cell(text))

    for line in source.splitlines():
        if line.startswith("# %%"):
            flush()
            kind, lines = ("markdown" if "[markdown]" in line else "code"), []
        else:
            lines.append(line)
    flush()
    notebook = nbformat.v4.new_notebook(cells=cells)
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    return notebook


@pytest.fixture(scope="module")
def manifest() -> dict[str, dict]:
    return json.loads((REAL / "manifest.json").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def graded_real(tmp_path_factory, manifest) -> dict[tuple[str, str], dict]:
    """Every real-pattern fixture in three formats, graded in one batch: (fixture, format) -> record."""
    folder = tmp_path_factory.mktemp("real")
    for file in manifest:
        source = (REAL / file).read_text(encoding="utf-8")
        stem = Path(file).stem
        notebook = _notebook(source)
        (folder / f"{stem}.py").write_text(source, encoding="utf-8")
        nbformat.write(notebook, folder / f"{stem}.ipynb")
        (folder / f"{stem}_marimo.py").write_text(to_marimo(notebook), encoding="utf-8")
    out = tmp_path_factory.mktemp("real_graded")
    result = run_cli("grade", str(folder), "--out", str(out), "--jobs", "2")
    assert result.returncode in (0, 1), result.stderr[-3000:]
    records = {}
    for file in manifest:
        stem = Path(file).stem
        for form in FORMATS:
            path = out / f"{stem}{form}.json"
            assert path.exists(), f"no record for {stem}{form}"
            records[(file, form)] = json.loads(path.read_text(encoding="utf-8"))
    return records


def _named(record: dict) -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for d in record["diagnoses"]:
        if d["misconception"]:
            found.setdefault(d["part"], set()).add(d["misconception"])
    return found


@pytest.mark.slow
def test_real_patterns_are_named_and_nothing_is_named_wrongly(graded_real, manifest):
    bugs = named = 0
    wrong, missed, free = [], [], []
    for (file, form), record in graded_real.items():
        expected = manifest[file]["bugs"]
        found = _named(record)
        for part, ids in expected.items():
            if record["parts"][part]["score"] >= record["parts"][part]["max_score"]:
                free.append(f"{file}{form}: {part} lost no points")
            for id in ids:
                bugs += 1
                named += id in found.get(part, set())
                if id not in found.get(part, set()):
                    missed.append(f"{file}{form}: {part} {id}")
        for part, ids in found.items():
            extra = ids - set(expected.get(part, []))
            if extra:
                wrong.append(f"{file}{form}: {part} named {sorted(extra)}")
    rate = named / bugs
    print(f"real-pattern naming rate: {named}/{bugs} = {rate:.0%}; wrongly named: {len(wrong)}; missed: {missed}")
    assert not free, "every real-pattern bug must cost points:\n" + "\n".join(free)
    assert not wrong, "named wrongly:\n" + "\n".join(wrong)
    assert rate >= TARGET, f"naming rate {rate:.0%} < {TARGET:.0%}; missed:\n" + "\n".join(missed)


@pytest.mark.slow
def test_every_format_gets_the_same_grade_and_diagnosis(graded_real, manifest):
    for file in manifest:
        records = {form: graded_real[(file, form)] for form in FORMATS}
        scores = {form: r["score"] for form, r in records.items()}
        assert len(set(scores.values())) == 1, f"{file}: scores differ by format {scores}"
        named = {form: _named(r) for form, r in records.items()}
        assert all(n == named[".py"] for n in named.values()), f"{file}: diagnoses differ by format {named}"


@pytest.mark.slow
def test_no_check_message_names_a_cause_a_real_pattern_does_not_have(graded_real, manifest):
    for (file, form), record in graded_real.items():
        known = {part: list(manifest[file]["bugs"].get(part, [])) for part in GRADED}
        assert not untrue(record, known), f"{file}{form}: {untrue(record, known)}"


@pytest.mark.slow
def test_correct_real_submissions_get_full_marks_and_no_diagnosis(graded_real, manifest):
    correct = [file for file, entry in manifest.items() if not entry["bugs"]]
    assert correct, "the manifest must include correct submissions"
    for file in correct:
        for form in FORMATS:
            record = graded_real[(file, form)]
            failed = [t["check_id"] for t in record["tests"] if t["status"] != "passed"]
            assert record["score"] == record["max_score"], f"{file}{form}: {failed}"
            assert record["diagnoses"] == [], f"{file}{form}: {record['diagnoses']}"


def _causal_variant(*edits: tuple[str, str]) -> LocalSubject:
    chunks = [{"origin": c.origin, "code": c.code} for c in load_submission(Config().reference_notebook).chunks]
    for chunk in chunks:
        if "class CausalAttention" in chunk["code"]:
            for old, new in edits:
                assert old in chunk["code"], old
                chunk["code"] = chunk["code"].replace(old, new)
    return LocalSubject.from_chunks(chunks, f"train_{abs(hash(edits))}")


NO_SCALING = ("torch.softmax(attn_scores / keys.shape[-1] ** 0.5, dim=-1)", "torch.softmax(attn_scores, dim=-1)")


@pytest.mark.parametrize(("train_mode", "named"), [
    ((), True),  # the chapter's dropout, on the weights
    ((("self.dropout(attn_weights)", "self.dropout(self.dropout(attn_weights))"),), False),  # dropped out twice
    ((("self.dropout(attn_weights)", "attn_weights * (torch.rand_like(attn_weights) > 0.5) * 2"),), False),  # own RNG
    ((("attn_weights = self.dropout(attn_weights)", "pass"),
      ("return attn_weights @ values", "return self.dropout(attn_weights @ values)")), True),  # on the output instead
    ((("return attn_weights @ values", "return self.dropout(attn_weights @ values)"),), False),  # weights and output
])
def test_a_mistake_is_named_only_when_it_reproduces_train_mode_too(train_mode, named):
    """Without scaling, eval mode matches causal_no_scaling every time; train mode decides: a model of that
    mistake with dropout at one place, drawing the mask as torch does, must give the very outputs."""
    facts = measure(_causal_variant(NO_SCALING, *train_mode), "CausalAttention")
    assert facts.train is not None
    found = {id for id, _ in name(facts, "CausalAttention")}
    assert ("causal_no_scaling" in found) == named, found
