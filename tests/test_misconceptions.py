"""The misconception catalogue: every entry applies to the reference, costs points, and is diagnosed by name."""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from autograder.assignment import load
from autograder.chapters.ch03_attention.explain.catalogue_match import outcomes_of, same
from autograder.chapters.ch03_attention.explain.diagnose import MEASURED
from autograder.chapters.ch03_attention.explain.knobs import alternatives
from autograder.chapters.ch03_attention.explain.misconceptions import (
    CATALOGUE,
    CatalogueError,
    Misconception,
    mutate,
    source,
)
from autograder.chapters.ch03_attention.explain.mistakes import DROPOUT_IDS, STRUCTURE_IDS, deviation_id
from autograder.config import Config
from autograder.i18n import LANGS, catalogue
from autograder.judge.subjects import LocalSubject
from autograder.load.submission import load_submission
from tests.claims import CLAIMS, untrue
from tests.conftest import run_cli

GRADED = load().graded


def possible_ids(part: str) -> set[str]:
    """Every mistake id chapter 3's `explain.mistakes.name` can give for `part`: a knob's deviations, the facts it
    names by themselves, an exception's cause, dropout and structure."""
    multihead = part == "MultiHeadAttention"
    prefix = "mha" if multihead else "causal"
    ids = {deviation_id(k, v, multihead)[0] for k, v in alternatives(multihead)}
    ids |= {deviation_id("scale", "power:0.25", multihead)[0], "uses_global", "mask_not_sliced", "renamed_layer",
            "returns_nothing", "fixed_sizes", "init_typo", "view_not_contiguous", "mask_not_bool"}
    ids |= set(DROPOUT_IDS.values()) | STRUCTURE_IDS - (set() if multihead else {"no_divisibility_check"})
    return {f"{prefix}_{i}" for i in ids}


@pytest.fixture(scope="module")
def reference_chunks() -> list[dict]:
    reference = load_submission(Config().reference_notebook)
    return [{"origin": c.origin, "code": c.code} for c in reference.chunks]


def test_catalogue_is_large_and_names_are_unique():
    assert len(CATALOGUE) >= 15, "at least 15 known misconceptions"
    ids = [m.id for m in CATALOGUE]
    assert len(ids) == len(set(ids)), "misconception ids must be unique"
    assert {m.part for m in CATALOGUE} <= set(GRADED)
    for m in CATALOGUE:
        assert re.fullmatch(r"[a-z0-9_]+", m.id), f"{m.id}: ids are message keys, keep them snake_case"


@pytest.mark.parametrize("lang", LANGS)
def test_every_misconception_and_part_has_a_name_and_hint(lang):
    messages = catalogue(lang)
    named = {n for m in CATALOGUE for n in m.names} | {i for part in MEASURED for i in possible_ids(part)}
    for id in sorted(named):
        assert messages.get(f"misconception.{id}"), f"no {lang} name for {id}"
        assert messages.get(f"misconception.{id}.hint"), f"no {lang} hint for {id}"
    for part in GRADED:
        assert messages.get(f"diagnosis.hint.{part}"), f"no {lang} general hint for {part}"


def test_every_edit_applies_exactly_and_the_mutant_runs(reference_chunks):
    for m in CATALOGUE:
        mutated = mutate(reference_chunks, m)
        assert mutated != reference_chunks, f"{m.id} changed nothing"
        LocalSubject.from_chunks(mutated, f"check_{m.id}")  # defines every graded name


def test_an_edit_that_no_longer_applies_fails_loudly(reference_chunks):
    stale = Misconception("stale", "CausalAttention", (("torch.softmax(attn_scores, dim=0)", "x", 1),))
    with pytest.raises(CatalogueError, match="occurs 0 times"):
        mutate(reference_chunks, stale)


@pytest.mark.slow
def test_probes_tell_every_mutant_from_the_reference_and_from_each_other(reference_chunks):
    reference = LocalSubject.from_chunks(reference_chunks, "probe_reference")
    outcomes, expected = {}, {}
    for m in CATALOGUE:
        outcomes[m.id] = outcomes_of(LocalSubject.from_chunks(mutate(reference_chunks, m), f"probe_{m.id}"), m.part)
        if m.part not in expected:
            expected[m.part] = outcomes_of(reference, m.part)

    def alike(a: dict, b: dict) -> bool:
        return all(same(a[k], b[k]) for k in a)

    for m in CATALOGUE:
        assert not alike(outcomes[m.id], expected[m.part]), f"{m.id} looks like the reference on the probes"
        if m.part in MEASURED:  # named from measured facts, not by matching (see the graded test below)
            continue
        twins = [n.id for n in CATALOGUE if n.part == m.part and n.id != m.id and alike(outcomes[m.id], outcomes[n.id])]
        assert not twins, f"{m.id} cannot be told from {twins} on the probes"


@pytest.fixture(scope="module")
def graded_mutants(tmp_path_factory, reference_chunks) -> tuple[Path, dict[str, dict]]:
    """Every catalogue entry applied to the reference, as a plain .py submission, graded in ONE batch."""
    folder = tmp_path_factory.mktemp("mutants")
    for m in CATALOGUE:
        (folder / f"{m.id}.py").write_text(source(mutate(reference_chunks, m)), encoding="utf-8")
    out = tmp_path_factory.mktemp("graded_mutants")
    result = run_cli("grade", str(folder), "--out", str(out), "--jobs", "2")
    assert result.returncode == 0, result.stderr[-3000:]
    return out, {p.name[: -len(".py.json")]: json.loads(p.read_text()) for p in out.glob("*.py.json")}


@pytest.mark.slow
def test_every_misconception_costs_points_and_is_diagnosed(graded_mutants):
    out, records = graded_mutants
    assert set(records) == {m.id for m in CATALOGUE}
    caught, diagnosed, problems = 0, 0, []
    for m in CATALOGUE:
        record = records[m.id]
        part = record["parts"][m.part]
        lost = part["score"] < part["max_score"]
        names = {d["misconception"] for d in record["diagnoses"] if d["part"] == m.part}
        caught += lost
        diagnosed += names == set(m.names)
        if not lost:
            problems.append(f"{m.id}: the checks give {m.part} full marks")
        elif names != set(m.names):  # every mistake named, and nothing else
            problems.append(f"{m.id}: diagnosed as {names or 'nothing'}, expected {set(m.names)}")
        elif not all(d["message"] in record["output"] for d in record["diagnoses"] if d["part"] == m.part):
            problems.append(f"{m.id}: the diagnosis is not in the record's output")
    score = f"mutation score: {caught}/{len(CATALOGUE)} caught by the checks, {diagnosed}/{len(CATALOGUE)} diagnosed"
    print(score)
    assert not problems, score + "\n" + "\n".join(problems)


@pytest.mark.slow
def test_each_mutant_gets_a_feedback_page_naming_its_misconception(graded_mutants):
    out, records = graded_mutants
    page = (out / "causal_mask_tril.py.html").read_text(encoding="utf-8")
    assert "data-misconception='causal_mask_tril'" in page
    assert "lower triangle masked instead of the upper" in page
    assert page.count("<svg class='attention'") == 1, "one picture with every attention class"
    assert "http://" not in page and "https://" not in page, "the page fetches nothing"
    # NaN attention weights (the first query sees nothing) must not make the record invalid JSON
    text = (out / "causal_mask_diagonal0.py.json").read_text(encoding="utf-8")
    record = json.loads(text, parse_constant=lambda name: pytest.fail(f"{name} in a record: not strict JSON"))
    assert record["attention"]["student"]["CausalAttention"][0][0] == [None] * 6


# Fixture submissions written by hand (tests/files/submissions) whose bug is in the catalogue.
FIXTURE_DIAGNOSES = {
    "bug_causal_tril_mask.py": ("CausalAttention", "causal_mask_tril"),
    "bug_causal_dropout_on_output.py": ("CausalAttention", "causal_dropout_on_output"),
    "bug_causal_dropout_before_softmax.py": ("CausalAttention", "causal_dropout_on_scores"),
    "bug_mha_dropout_on_values.py": ("MultiHeadAttention", "mha_dropout_on_values"),
    "bug_mha_view_no_transpose.py": ("MultiHeadAttention", "mha_view_no_transpose"),
    "bug_mha_scale_by_d_out.py": ("MultiHeadAttention", "mha_scale_by_d_out"),
    "bug_wrapper_shared_head.py": ("MultiHeadAttentionWrapper", "wrapper_shared_head"),
    "bug_v1_keys_queries_swapped.py": ("SelfAttention_v1", "v1_keys_queries_swapped"),
    "bug_load_v2_no_transpose.py": ("load_v2_weights_into_v1", "load_no_transpose"),
    "bug_exercise_3_3_heads64.py": ("exercise_3_3", "exercise_3_3_heads64"),
}


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(FIXTURE_DIAGNOSES))
def test_hand_written_bugs_get_the_right_diagnosis(graded_fixtures, name):
    part, expected = FIXTURE_DIAGNOSES[name]
    found = {d["misconception"] for d in graded_fixtures[name]["diagnoses"] if d["part"] == part}
    assert found == {expected}, f"{name}: {part} diagnosed as {found}, expected {expected}"


@pytest.mark.slow
def test_correct_submissions_get_no_diagnosis(graded_fixtures, manifest):
    for name, entry in manifest.items():
        if entry["full_marks"]:
            assert graded_fixtures[name]["diagnoses"] == [], name


@pytest.mark.slow
def test_no_check_message_names_a_cause_the_mutant_does_not_have(graded_mutants):
    _, records = graded_mutants
    by_id = {m.id: m for m in CATALOGUE}
    shown = {t["message_key"] for r in records.values() for t in r["tests"] if t["status"] == "failed"}
    assert len(shown & set(CLAIMS)) >= 10, "the catalogue must meet the messages that name a cause"
    untrue_claims = {name: found for name, record in records.items()
                     if (found := untrue(record, {by_id[name].part: list(by_id[name].names)}))}
    assert not untrue_claims, untrue_claims


@pytest.mark.slow
def test_no_check_message_names_a_cause_a_fixture_does_not_have(graded_fixtures, manifest):
    checked = 0
    for name, entry in manifest.items():
        stem = name.rsplit(".", 1)[0]
        if not stem.startswith(("bug_", "correct_")):
            continue
        known = {part: [] for part in entry["right"]} | {part: [stem[len("bug_"):]] for part in entry["wrong"]}
        assert not untrue(graded_fixtures[name], known), name
        checked += 1
    assert checked > 40


def test_only_finished_stable_failures_are_diagnosed():
    from autograder.chapters.ch03_attention.measure.failed_parts import failed_parts, unstable_parts
    from autograder.record import CheckResult

    def result(part: str, status: str, key: str = "") -> CheckResult:
        return CheckResult("t", "c", part, 0.0, 1.0, status, "", [part], "visible", key)

    results = [
        result("softmax_naive", "passed"),  # full marks: nothing to diagnose
        result("simple_self_attention", "failed", "student.not_implemented"),  # unfinished
        result("SelfAttention_v1", "failed", "fail.values"),  # a real mistake
        result("SelfAttention_v1", "failed", "student.raised"),
        result("CausalAttention", "failed", "fail.values"),
        result("CausalAttention", "failed", "student.timeout"),  # hung: probing again would hang again
    ]
    assert failed_parts(results) == ["SelfAttention_v1"]
    assert unstable_parts(results) == {"CausalAttention"}


def test_the_scale_is_told_only_when_the_softmax_runs_over_the_keys(reference_chunks):
    """The gate takes a softmax along another axis as attention too; the scale message then may not say what the
    scores are divided by (CI drew a probe where it claimed a wrong divisor for a softmax over the queries)."""
    from autograder.judge.gate import scale_message

    by_id = {m.id: m for m in CATALOGUE}
    keys = {}
    for name in ("mha_softmax_query_dim", "mha_scale_by_d_out"):
        sub = LocalSubject.from_chunks(mutate(reference_chunks, by_id[name]), name)
        keys[name] = {scale_message(sub, "MultiHeadAttention", seed)[0] for seed in range(12)}
    assert keys["mha_softmax_query_dim"] == {"fail.large_scores"}, keys
    assert keys["mha_scale_by_d_out"] == {"fail.head_dim_scaling"}, keys  # over the keys, the scale is still told
