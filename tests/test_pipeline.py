"""One grading function: every front end calls pipeline.grade, with the source of the definitions as its variable;
the judge runs the checks on the subjects it is handed, one pytest session for many."""
from __future__ import annotations

import pytest

from autograder import api, pipeline
from autograder.config import Config
from autograder.integrations import hosted, nbgrader, selfcheck
from autograder.judge.session import Checks, KeptChecks
from autograder.judge.subjects import LocalSubject
from autograder.load.submission import load_submission
from autograder.record import SubmissionResult
from autograder.sources import File, Kernel
from tests.conftest import SUBMISSIONS


@pytest.fixture
def graded(monkeypatch) -> list[tuple[object, pipeline.Run]]:
    """The calls of pipeline.grade, (source, run) each, each answered with an empty record; no sandbox starts."""
    calls = []

    def grade(source, config, run, session=None):
        calls.append((source, run))
        return SubmissionResult(submission="x", score=0.0, max_score=0.0, execution_time=0.0)

    monkeypatch.setattr(pipeline, "grade", grade)
    monkeypatch.setattr(pipeline, "sandboxed", lambda config, **choices: pipeline.Run("process", **choices))
    return calls


def test_every_front_end_calls_the_one_grading_function(graded, tmp_path):
    path = SUBMISSIONS / "correct_reference.py"
    api.grade_file(path)
    api.check_file(path, parts={"CausalAttention"})
    upload = tmp_path / "upload"
    upload.mkdir()
    (upload / "ch03_attention.py").write_text(path.read_text())
    hosted.grade_upload(upload, Config().solutions)  # Gradescope's and PrairieLearn's run
    selfcheck.check_in_notebook("CausalAttention", lang="en", namespace={})  # check() in a notebook
    nbgrader.grade("CausalAttention")  # a hidden-test cell
    sources = [type(source) for source, _ in graded]
    assert sources == [File, File, File, Kernel, Kernel], f"the front ends graded other sources: {sources}"
    runs = [run for _, run in graded]
    assert runs[1].visible_only and runs[1].parts == {"CausalAttention"}, f"check_file asked for {runs[1]}"
    assert runs[3].visible_only and not runs[4].visible_only, "the notebook's check() is visible, grade() all"
    assert all(run.isolation == "none" for run in runs[3:]), "the kernel's objects are not sandboxed"


def _subject(name: str) -> LocalSubject:
    return LocalSubject.from_chunks(load_submission(SUBMISSIONS / name).chunk_dicts(), name.removesuffix(".py"))


def test_a_kept_session_gives_each_subject_the_results_of_a_session_of_its_own():
    config = Config()
    names = ["correct_reference.py", "bug_causal_tril_mask.py", "correct_reference.py"]
    alone = [Checks(config, {"CausalAttention"}, visible_only=True).run(_subject(n), "en") for n in names]
    with KeptChecks(config, {"CausalAttention"}, visible_only=True) as checks:
        kept = [checks.run(_subject(n), "en") for n in names]
    assert alone[0] and all(r.status == "passed" for r in alone[0]), "the reference's class fails a visible check"
    assert any(r.status == "failed" for r in alone[1]), "the buggy class passes every visible check"
    for name, one, other in zip(names, alone, kept):
        assert [(r.check_id, r.status, r.output) for r in one] == [(r.check_id, r.status, r.output) for r in other], \
            f"{name}: the kept session's results differ from a session of its own"


def test_the_checks_run_torch_on_one_thread_and_give_the_kernel_its_setting_back():
    """Thousands of operations on tiny tensors: on more threads they wait for each other (pipeline.grade). A
    student's kernel keeps its own setting afterwards."""
    import runpy

    import torch

    seen: list[int] = []
    namespace = runpy.run_path(str(SUBMISSIONS / "correct_reference.py"))
    original = namespace["CausalAttention"].forward

    def forward(self, x):
        seen.append(torch.get_num_threads())
        return original(self, x)

    namespace["CausalAttention"].forward = forward
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        selfcheck.check_in_notebook("CausalAttention", lang="en", namespace=namespace)
        after = torch.get_num_threads()
    finally:
        torch.set_num_threads(before)
    assert seen and set(seen) == {1}, f"the checks ran the class on {sorted(set(seen))} threads, not 1"
    assert after == 2, f"the kernel's 2 threads became {after} after the check"
