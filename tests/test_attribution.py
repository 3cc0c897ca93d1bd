"""The submission's budget charged to the class whose code used it, the same way every time.

Each graded part gets a budget of its own: a part starts in a fresh worker unless the last one left nothing
behind, a part that left processes behind is not built on (stand-ins instead), and a part whose code goes
over the budget loses all its checks, whichever check met the limit (judge/worker_subject.py).
"""
from __future__ import annotations

import json
import time

import pytest

from autograder.assignment import load
from autograder.config import Limits
from autograder.judge.run import charge
from autograder.judge.worker_subject import WorkerSubject
from autograder.load.submission import load_submission
from autograder.record import CheckResult
from autograder.sandbox.capability import isolation_for
from tests.test_adversarial import grade, manifest, parts, stray
from tests.test_fanout import FANOUT, LIMITS

ISOLATION = isolation_for("auto")
CORRECT_PARTS = ("softmax_naive", "simple_self_attention", "SelfAttention_v1", "SelfAttention_v2",
                 "load_v2_weights_into_v1", "MultiHeadAttentionWrapper", "MultiHeadAttention", "exercise_3_2",
                 "exercise_3_3")
"""Every part of the fan-out fixtures but CausalAttention, whose code fans out: the reference's code."""
LEAVES_A_CHILD = '''
import os
import time
import torch.nn as nn

def softmax_naive(x):
    return x

class CausalAttention(nn.Module):
    def __init__(self, d_in, d_out, context_length, dropout, qkv_bias=False):
        super().__init__()
        if os.fork() == 0:  # a child that outlives the call, using nothing yet
            time.sleep(60)
            os._exit(0)
'''


def test_a_charged_part_loses_every_check_whichever_met_the_limit():
    results = [CheckResult("t", f"test_{i}", part, 2.0 * (i != 2), 2.0, "failed" if i == 2 else "passed", "",
                           [part], "visible") for i, part in enumerate(["CausalAttention"] * 3 + ["SelfAttention_v1"])]
    params = {"where": "CausalAttention", "used": "11", "limit": 10, "processes": 4}
    charged = charge(results, {"CausalAttention": ("student.cpu_budget", params)}, "en")
    assert [r.score for r in charged] == [0.0, 0.0, 0.0, 2.0], "only the charged part loses points, all of them"
    assert all(r.message_key == "student.cpu_budget" and "11 s" in r.output for r in charged[:3]), charged[:3]


def test_a_part_that_leaves_a_process_gets_no_successor_in_its_worker(tmp_path):
    """CausalAttention's construction leaves a sleeping child: the next part starts in a fresh worker, and
    CausalAttention is marked so that the classes built on it use the kit's stand-ins."""
    (tmp_path / "leaves_a_child.py").write_text(LEAVES_A_CHILD, encoding="utf-8")
    subject = WorkerSubject(load_submission(tmp_path / "leaves_a_child.py").chunk_dicts(), Limits(), ISOLATION, load())
    try:
        subject.begin_part("softmax_naive")
        subject.call("softmax_naive", 1.0)
        worker = subject.worker
        subject.begin_part("CausalAttention")
        assert subject.worker is worker, "a part that left nothing behind must not cost a new worker"
        subject.new("CausalAttention", 3, 2, 6, 0.0)
        subject.begin_part("MultiHeadAttentionWrapper")
        assert subject.worker is None or subject.worker is not worker, "the child would use the next part's budget"
        assert subject.left_running == {"CausalAttention": "processes"}, subject.left_running
        subject.call("softmax_naive", 1.0)
        assert subject.restarts == 0, "a fresh worker for a part is not a crash"
    finally:
        subject.close()


class _OverBudget:
    """A worker the budget watchdog ended after the last request of a part, before the next part began."""

    def __init__(self) -> None:
        from autograder.sandbox.errors import WorkerGone

        self.gone = WorkerGone("memory", "335544320", used=335544320.0, processes=5)

    def over_budget(self):
        return self.gone

    def alive(self) -> bool:
        return False

    def close(self) -> None:
        pass


def test_a_limit_met_between_two_parts_is_charged_to_the_part_that_ran():
    """fanout_shm.py's children (started by CausalAttention) went over the memory budget after CausalAttention's
    last request, on a loaded machine: the next part that asked the worker anything was charged instead."""
    subject = WorkerSubject([], Limits(memory_bytes=320 << 20), ISOLATION, load())
    subject.begin_part("CausalAttention")
    subject.worker = _OverBudget()
    subject.begin_part("MultiHeadAttentionWrapper")
    assert set(subject.charged) == {"CausalAttention"}, subject.charged
    key, params = subject.charged["CausalAttention"]
    assert key == "student.memory_budget" and params["limit"] == "320 MiB" and params["where"] == "CausalAttention"


class _OverBudgetMeanwhile(_OverBudget):
    """A live worker whose budget watchdog notes the overrun while the judge asks what the last part left behind
    (the moment between the two questions, on a loaded machine: fanout_shm.py's children still writing)."""

    def __init__(self) -> None:
        super().__init__()
        self.noted = False
        self.budget = self
        self.stderr, self.stderr_dropped = b"", 0

    def left_behind(self) -> str:
        self.noted = True
        return "unknown"  # what the budget says once an overrun is noted

    def over_budget(self):
        return self.gone if self.noted else None

    def alive(self) -> bool:
        return True


def test_a_limit_noted_while_a_part_ends_is_charged_to_the_part_that_ran():
    subject = WorkerSubject([], Limits(memory_bytes=320 << 20), ISOLATION, load())
    subject.begin_part("CausalAttention")
    subject.worker = _OverBudgetMeanwhile()
    subject.begin_part("MultiHeadAttentionWrapper")
    assert set(subject.charged) == {"CausalAttention"}, subject.charged
    assert subject.worker is None, "the worker that went over the budget serves the next part"


RUNS = 3
MODES = [pytest.param("bwrap", marks=pytest.mark.skipif(ISOLATION != "bwrap", reason="bubblewrap is not usable here")),
         "process"]


@pytest.mark.slow
@pytest.mark.parametrize("mode", MODES)
def test_fan_outs_get_the_same_grade_every_time_and_correct_classes_keep_theirs(mode, tmp_path):
    """fanout_busy.py (children spinning from CausalAttention's first construction) scored 78 in one run and 56
    in the next: the wrapper and MultiHeadAttention lost points when the budget ran out during their checks.
    fanout_late.py makes that land in MultiHeadAttention's checks every time. Graded RUNS times per mode."""
    files = [FANOUT / "fanout_busy.py", FANOUT / "fanout_late.py", FANOUT / "zz_control.py"]
    options = ["--jobs", "2", "--sandbox", mode] + [o for limit in LIMITS for o in ("--limit", limit)]
    seen: dict[str, list[dict]] = {}
    for run in range(RUNS):
        out = tmp_path / f"run{run}"
        result = grade(files, out, *options, cwd=tmp_path)
        assert result.returncode == 0, f"run {run}: exit {result.returncode}\n{result.stderr[-3000:]}"
        for path in files:
            record = json.loads((out / f"{path.name}.json").read_text(encoding="utf-8"))
            seen.setdefault(path.name, []).append(parts(record))
    time.sleep(1)  # processes SIGKILLed at the very end disappear
    survivors = stray(tuple(spec["survivor"] for spec in manifest(FANOUT).values() if "survivor" in spec))
    assert not survivors, f"{mode}: processes of the fan-outs survived: {survivors}"
    control = seen["zz_control.py"][0]
    assert sum(control.values()) == 100, f"{mode}: the reference lost points: {control}"
    for name, runs in seen.items():
        assert all(r == runs[0] for r in runs), f"{mode}: {name} was graded differently across runs: {runs}"
        for part in CORRECT_PARTS:
            assert runs[0][part] == control[part], f"{mode}: {name}: {part}, correct, scored {runs[0][part]}"
    assert seen["fanout_late.py"][0]["CausalAttention"] == control["CausalAttention"], \
        "fanout_late.py: nothing went over the budget while CausalAttention was graded"
