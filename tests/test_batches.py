"""Requests in one round trip: a batch is answered up to and including its first failure, a deferred request's
failure is raised where the next request is made (with its own words), and a hang inside a batch is charged to
the request that hung.

The workers run the fallback sandbox (bubblewrap batches the same way: the protocol is the worker's, not the
sandbox's)."""
from __future__ import annotations

import time

import pytest
import torch

from autograder.assignment import load
from autograder.config import Limits
from autograder.errors import StudentError
from autograder.judge.pytest_plugin import GradingPlugin, _Current
from autograder.judge.subjects import LocalSubject
from autograder.judge.worker_subject import WorkerSubject
from autograder.sandbox.inside.execute import execute
from autograder.sandbox.worker_client import WorkerClient

CODE = '''
import sys
import torch
from torch import nn

def ok():
    return torch.zeros(1)

def boom():
    raise ValueError("boom on purpose")

def mark():
    print("THIRD RAN", file=sys.stderr)
    return torch.ones(1)

class Layer(nn.Module):
    def __init__(self):
        super().__init__()
        self.W = nn.Linear(2, 2)

    def forward(self, x):
        if x.shape[0] == 3:
            while True:
                pass
        print("FORWARD RAN", file=sys.stderr)
        return self.W(x)

    def load_state_dict(self, state, strict=True):
        if "W.bias" in state and float(state["W.bias"][0]) == 7.0:
            raise RuntimeError("a bias of 7 refused on purpose")
        return super().load_state_dict(state, strict=strict)
'''
CHUNKS = [{"origin": "batches.py", "code": CODE}]


def call(name: str, id: int) -> dict:
    return {"op": "call", "args": {"id": id, "name": name, "args": []}}


def stderr_of(worker: WorkerClient, wait: float = 2.0) -> str:
    """The worker's stderr so far (read by a thread: give it a moment to catch up)."""
    time.sleep(wait)
    return bytes(worker.stderr).decode()


@pytest.fixture
def counted(monkeypatch):
    """Round trips into workers, counted: each is one call of WorkerClient.replies."""
    trips = []
    replies = WorkerClient.replies

    def counting(self, messages, seconds):
        trips.append([m["op"] for m in messages])
        return replies(self, messages, seconds)

    monkeypatch.setattr(WorkerClient, "replies", counting)
    return trips


def test_a_batch_is_answered_up_to_its_first_failure():
    worker = WorkerClient(CHUNKS, Limits(), "process")
    try:
        replies = list(worker.replies([call("ok", 1), call("boom", 2), call("mark", 3)], lambda: 30.0))
        assert [r["ok"] for r in replies] == [True, False], replies
        assert replies[1]["error"]["type"] == "ValueError", replies[1]
        assert "THIRD RAN" not in stderr_of(worker), "a request after a failed one ran"
        # the worker reads on from the next batch: nothing of the last one is left in the pipe
        assert [r["ok"] for r in worker.replies([call("mark", 4), call("ok", 5)], lambda: 30.0)] == [True, True]
        assert "THIRD RAN" in stderr_of(worker)
    finally:
        worker.close()


def test_a_deferred_load_travels_with_the_next_request(counted):
    subject = WorkerSubject(CHUNKS, Limits(), "process", load())
    try:
        module = subject.new("Layer")
        state = {"W.weight": torch.eye(2), "W.bias": torch.tensor([1.0, -1.0])}
        module.load(state, wait=False)
        assert counted[-1] == ["new"], "a deferred load was sent on its own"
        out = module(torch.ones(2, 2))
        assert counted[-1] == ["load", "forward"], counted
        assert torch.equal(out, torch.tensor([[2.0, 0.0], [2.0, 0.0]])), "the forward did not see the load"
    finally:
        subject.close()


def test_a_deferred_failure_is_raised_by_the_next_request_in_its_own_words():
    subject = WorkerSubject(CHUNKS, Limits(), "process", load())
    try:
        module = subject.new("Layer")
        module.load({"W.bias": torch.full((2,), 7.0)}, wait=False)  # the student's load_state_dict raises
        with pytest.raises(StudentError) as error:
            module(torch.ones(2, 2))
        assert error.value.params["where"] == "Layer.load_state_dict", error.value.params
        assert "FORWARD RAN" not in stderr_of(subject.worker), "the request after a failed one ran"
        assert not subject.pending, "a failed round trip left requests to send"
    finally:
        subject.close()


def test_judge_side_refusals_stay_eager():
    """A load's names and shapes are checked against the module's description before anything is sent."""
    subject = WorkerSubject(CHUNKS, Limits(), "process", load())
    try:
        module = subject.new("Layer")
        with pytest.raises(StudentError) as error:
            module.load({"W.weight": torch.eye(3)}, wait=False)
        assert error.value.key == "student.param_shape", error.value
        assert not subject.pending
    finally:
        subject.close()


def test_a_hang_inside_a_batch_is_charged_to_the_request_that_hung(counted):
    subject = WorkerSubject(CHUNKS, Limits(call_seconds=2), "process", load())
    try:
        module = subject.new("Layer")
        module.load({"W.bias": torch.zeros(2)}, wait=False)
        with pytest.raises(StudentError) as hung:
            module(torch.ones(3, 2))
        assert counted[-1] == ["load", "forward"], counted
        assert hung.value.key == "student.timeout" and hung.value.params["where"] == "Layer.forward", hung.value
        started = time.monotonic()
        with pytest.raises(StudentError) as again:
            subject.new("Layer")(torch.ones(2, 2))  # the forward is not made again...
        assert again.value.key == "student.timeout" and time.monotonic() - started < 1.5, again.value
        module = subject.new("Layer")  # ...but the load, which did not hang, is
        module.load({"W.bias": torch.zeros(2)})
        assert counted[-1] == ["load"], counted
    finally:
        subject.close()


def test_an_in_process_subject_sends_a_deferred_request_at_once():
    namespace, _ = execute(CHUNKS, "batches")
    subject = LocalSubject(namespace, load())
    module = subject.new("Layer")
    with pytest.raises(StudentError) as error:
        subject.defer("load", "Layer.load_state_dict", id=module.id, state={"W.bias": torch.full((2,), 7.0)})
    assert error.value.params["where"] == "Layer.load_state_dict", error.value.params
    assert not subject.pending


def test_a_check_that_ends_with_a_deferred_request_meets_its_failure():
    subject = WorkerSubject(CHUNKS, Limits(), "process", load())
    plugin = GradingPlugin(lambda: None, lambda results: None, lambda: None, 60)
    plugin.current = _Current(subject, "en", time.monotonic())
    try:
        module = subject.new("Layer")
        with pytest.raises(StudentError) as error, plugin._settling():
            module.load({"W.bias": torch.full((2,), 7.0)}, wait=False)
        assert error.value.params["where"] == "Layer.load_state_dict", error.value.params
        module.load({"W.bias": torch.ones(2)}, wait=False)
        with pytest.raises(AssertionError), plugin._settling():  # the check's own failure is the one it reports
            raise AssertionError("the check failed first")
        assert not subject.pending, "a failed check left its deferred requests for the next check"
    finally:
        subject.close()


def test_a_deferred_build_travels_with_its_first_request(counted):
    subject = WorkerSubject(CHUNKS, Limits(), "process", load())
    try:
        module = subject.new("Layer", wait=False)
        assert counted == [], "a deferred build was sent on its own"
        module(torch.ones(2, 2))
        assert counted[-1] == ["new", "forward"], counted
        other = subject.new("Layer", wait=False)
        assert other.params["W.weight"] == [2, 2], other.params  # looking at it sends the build
        assert counted[-1] == ["new"], counted
    finally:
        subject.close()


def test_a_deferred_build_that_fails_says_so_where_it_is_used():
    subject = WorkerSubject(CHUNKS, Limits(), "process", load())
    try:
        module = subject.new("Missing", wait=False)
        with pytest.raises(StudentError) as error:
            module(torch.ones(2, 2))
        assert error.value.key == "refused.missing", error.value
        with pytest.raises(StudentError) as again:  # the handle of a build that failed says why, every time
            _ = module.info
        assert again.value.key == "refused.missing", again.value
    finally:
        subject.close()


def test_a_hang_after_a_deferred_build_keeps_what_the_build_answered():
    subject = WorkerSubject(CHUNKS, Limits(call_seconds=2), "process", load())
    try:
        module = subject.new("Layer", wait=False)
        with pytest.raises(StudentError) as hung:
            module(torch.ones(3, 2))
        assert hung.value.key == "student.timeout", hung.value
        assert module.info["class"] == "Layer", "the build was answered before the forward hung"
    finally:
        subject.close()
