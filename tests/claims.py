"""What a check's message claims about the student's code, held against what each fixture is known to get wrong.

A message that names a cause ("the weights are scaled after the softmax", "your mask buffer is right") is true of
a fixture only if the fixture's known mistakes in that part make it so. Messages that only say what was measured
(a shape, a difference, a leak) claim no cause and are not listed.
"""
from __future__ import annotations

SCALE = ("no_scaling", "scale", "one_head", "divide_after_softmax")  # the last: the softmax gets unscaled scores
BUFFER_WRONG = ("diagonal0", "diagonal2", "tril")
DROPOUT_ABSENT = ("dropout_missing", "no_dropout", "dropout_not_applied")

CLAIMS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    # message key: (one of these must be among the part's mistakes, none of these may be)
    "fail.head_dim_scaling": (SCALE, ()),
    "fail.large_scores_scale_right": ((), SCALE),
    "fail.rows_not_normalised_masked": (("mask_after_softmax",), ()),
    "fail.weights_columns": (("softmax_dim1", "softmax_query_dim", "softmax_dim0", "softmax_dim2"), ()),
    "fail.rows_scaled": (("divide_after_softmax",), ()),
    "fail.dropout_before_softmax": (("dropout_on_scores", "dropout_before_softmax"), ()),
    "fail.dropout_after_weights": (("dropout_on_values", "dropout_on_output", "dropout_values"), ()),
    "fail.dropout_no_effect": (DROPOUT_ABSENT, ()),
    "fail.dropout_in_eval": (("dropout_always",), ()),
    "fail.out_proj_unused": (("no_out_proj", "out_proj_unused"), ()),
    "fail.weights_nan_diagonal": (BUFFER_WRONG, ()),
    "fail.future_leak_mask_wrong": (BUFFER_WRONG, ()),
    "fail.future_leak_grad_mask_wrong": (BUFFER_WRONG, ()),
    "fail.future_leak_mask_right": ((), BUFFER_WRONG),
    "fail.future_leak_grad_mask_right": ((), BUFFER_WRONG),
    "fail.first_token_mask_right": ((), BUFFER_WRONG),
    "fail.weights_above_diagonal_mask_right": ((), BUFFER_WRONG),
}


def untrue(record: dict, mistakes: dict[str, list[str]]) -> list[str]:
    """Every failed check of `record` whose message names a cause that the part's known `mistakes` (part -> ids;
    a part missing from it is not judged) do not give, as "part: check: key (mistakes)"."""
    found = []
    for test in record["tests"]:
        claim = CLAIMS.get(test.get("message_key", ""))
        if test["status"] != "failed" or claim is None or test["part"] not in mistakes:
            continue
        ids, (needs, forbids) = mistakes[test["part"]], claim
        if (needs and not any(n in i for i in ids for n in needs)) or any(f in i for i in ids for f in forbids):
            found.append(f"{test['part']}: {test['check_id']}: {test['message_key']} ({', '.join(ids) or 'none'})")
    return found
