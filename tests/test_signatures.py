"""Issue 23: correct code under other parameter or layer names loses only the naming point; the wrapper's heads get
dropout and qkv_bias; two mistakes in one class cost at least what either costs alone. Graded for real."""
from __future__ import annotations

import json

import pytest

from autograder.i18n import catalogue
from tests.conftest import FILES, run_cli

pytestmark = pytest.mark.slow

SIGNATURES, PAIRS = FILES / "signatures", FILES / "pairs"
NAMING = {  # fixture -> the checks that charge its names, one point each (everything else full marks)
    "block_size.py": {"test_causal_signature", "test_mha_signature"},
    "bias_for_qkv_bias.py": {"test_v2_signature", "test_causal_signature", "test_wrapper_signature",
                             "test_mha_signature"},
    "dim_in_n_heads.py": {"test_mha_signature"},
    "num_heads_before_dropout.py": {"test_wrapper_signature"},
    "keyword_only.py": {"test_causal_signature"},
    "renamed_layers.py": {"test_causal_layout"},
}
BOTH = {"v2_no_scale_and_softmax_dim0.py": ("v2_no_scale.py", "v2_softmax_dim0.py"),
        "causal_no_scale_and_no_mask.py": ("causal_no_scale.py", "causal_no_mask.py"),
        "causal_no_scale_and_softmax_dim1.py": ("causal_no_scale.py", "causal_softmax_dim1.py"),
        "mha_no_scale_and_no_out_proj.py": ("mha_no_scale.py", "mha_no_out_proj.py"),
        "mha_no_scale_and_no_dropout.py": ("mha_no_scale.py", "mha_no_dropout.py")}


@pytest.fixture(scope="module")
def graded(tmp_path_factory) -> dict[str, dict]:
    folder = tmp_path_factory.mktemp("issue23")
    for path in [*SIGNATURES.glob("*.py"), *PAIRS.glob("*.py")]:
        (folder / path.name).write_bytes(path.read_bytes())
    out = tmp_path_factory.mktemp("issue23_out")
    result = run_cli("grade", str(folder), "--out", str(out), "--jobs", "2")
    assert result.returncode == 0, result.stderr[-3000:]
    return {p.name[: -len(".json")]: json.loads(p.read_text()) for p in out.glob("*.py.json")}


@pytest.mark.parametrize("name", sorted(NAMING))
def test_correct_code_under_other_names_loses_only_the_naming_point(graded, name):
    record = graded[name]
    lost = {t["check_id"]: t["max_score"] - t["score"] for t in record["tests"] if t["score"] < t["max_score"]}
    assert lost == dict.fromkeys(NAMING[name], 1.0), f"{name}: {lost}"
    assert record["score"] == 100 - len(NAMING[name])


def test_the_naming_is_said_in_words(graded):
    outputs = {t["check_id"]: t["output"] for t in graded["block_size.py"]["tests"]}
    assert "the stub asks for context_length, the constructor says block_size" in outputs["test_mha_signature"]
    outputs = {t["check_id"]: t["output"] for t in graded["renamed_layers.py"]["tests"]}
    assert "found layers W_K, W_Q, W_V; the assignment asks for W_key, W_query, W_value" in \
        outputs["test_causal_layout"], outputs["test_causal_layout"]


def test_an_unmatchable_constructor_fails_its_behaviour_checks_and_says_why(graded):
    tests = [t for t in graded["config_dict.py"]["tests"] if t["part"] == "MultiHeadAttention"]
    assert tests[0]["check_id"] == "test_mha_signature" and "cannot be matched" in tests[0]["output"], tests[0]
    assert "Missing: d_in, d_out, context_length, dropout, num_heads, qkv_bias" in tests[0]["output"]
    for test in tests[1:]:
        assert test["score"] == 0 and "cannot be matched with the stub's" in test["output"], test
    others = {p: v for p, v in graded["config_dict.py"]["parts"].items()
              if p not in ("MultiHeadAttention", "exercise_3_3")}
    assert all(v["score"] == v["max_score"] for v in others.values()), others


@pytest.mark.parametrize("key", ["fail.signature", "fail.signature_again", "fail.signature_renamed",
                                 "fail.signature_order", "fail.signature_keyword_only", "fail.layer_names",
                                 "fail.wrapper_qkv_bias_false", "fail.wrapper_dropout_rate",
                                 "fail.wrapper_no_dropout"])
def test_the_messages_exist_in_both_languages(key):
    assert catalogue("en")[key] and catalogue("zh_TW")[key] != catalogue("en")[key]


def test_a_wrapper_that_swaps_dropout_and_qkv_bias_loses_the_dropout_points(graded):
    tests = {t["check_id"]: t for t in graded["wrapper_swapped_args.py"]["tests"]}
    check = tests["test_wrapper_heads_drop_out_at_its_rate"]
    assert check["status"] == "failed" and check["score"] == 0 and check["max_score"] == 2, check
    assert graded["wrapper_swapped_args.py"]["parts"]["MultiHeadAttentionWrapper"]["score"] <= 11


@pytest.mark.parametrize("both", sorted(BOTH))
def test_two_mistakes_cost_at_least_what_either_costs_alone(graded, both):
    part = {"v2": "SelfAttention_v2", "causal": "CausalAttention", "mha": "MultiHeadAttention"}[both.split("_")[0]]
    scores = {name: graded[name]["parts"][part]["score"] for name in (both, *BOTH[both])}
    assert all(s < graded[both]["parts"][part]["max_score"] for s in scores.values()), scores
    assert scores[both] <= min(scores[single] for single in BOTH[both]), scores


def test_a_wrapper_that_does_not_pass_dropout_on_loses_the_dropout_points(graded):
    tests = {t["check_id"]: t for t in graded["wrapper_drops_nothing.py"]["tests"]}
    check = tests["test_wrapper_heads_drop_out_at_its_rate"]
    assert check["status"] == "failed" and "dropout rates are heads.0.dropout: p=0" in check["output"], check
    lost = {t: v["max_score"] - v["score"] for t, v in tests.items() if v["score"] < v["max_score"]}
    assert lost == {"test_wrapper_heads_drop_out_at_its_rate": 2.0}, lost
