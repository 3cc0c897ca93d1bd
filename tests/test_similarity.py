"""The similarity report on sources written for these tests (tests/files/similarity/): each disguise of a copy is
found alone and combined, independent correct solutions are not flagged, a copy of an --against source is
attributed to it, and each of those fails when the boilerplate exclusion or the rarity weighting is turned off."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from autograder.api import similarity_report
from autograder.record import CheckResult, SubmissionResult
from autograder.report.feedback_page import feedback_html
from autograder.report.records import load, save
from autograder.similarity.compare import Settings
from tests.conftest import FILES, SUBMISSIONS, run_cli

HERE = FILES / "similarity"
CLASS = HERE / "class"
HONEST = [CLASS / n for n in ("honest_bob.py", "honest_chen.py", "honest_dana.py", "honest_gus.ipynb",
                              "honest_hana.ipynb")] + [SUBMISSIONS / f"correct_{n}.py" for n in
                                                       ("einsum", "sdpa", "where", "permute", "reshape")]
"""Independent correct solutions in different styles: ours, and the grading fixtures' variants that were not
written as edits of correct_reference.py (correct_neg1e9, _param_order, _nonpersistent_mask and
_mask_after_softmax_renorm were: they share its lines verbatim, and are copies by construction)."""
DISGUISES = ["copy_renamed.py", "copy_comments.py", "copy_reordered.py", "copy_marimo.py", "copy_notebook.ipynb",
             "copy_one_class.py", "copy_combined.ipynb"]
"""Copies of alice.py: renamed variables; comments rewritten, in English and 繁體中文; definitions and methods
reordered; the same code as marimo and as a Jupyter notebook; one class copied into otherwise own work; and all of
it at once (renamed, re-commented in Chinese, reordered, as a notebook)."""
SETTINGS = Settings()
"""What the tests run with; flip `boilerplate` or `rarity` to False and the tests below fail."""
ABLATIONS = {"no boilerplate exclusion": Settings(boilerplate=False), "no rarity weighting": Settings(rarity=False)}


def listed(folder: Path, out: Path, against: list[Path] = (), settings: Settings = SETTINGS, lang: str = "en"):
    written = similarity_report([folder], out, against, lang, settings)
    docs = written.comparison.docs
    return written, [(docs[p.a].doc.name, docs[p.b].doc.name) for p in written.comparison.pairs]


def a_class(tmp_path: Path, *files: Path) -> Path:
    folder = tmp_path / "class"
    folder.mkdir()
    for path in files:
        shutil.copy(path, folder / path.name)
    return folder


@pytest.mark.parametrize("copy", DISGUISES)
def test_each_disguise_is_found_and_nothing_else(tmp_path, copy):
    _, pairs = listed(a_class(tmp_path, *HONEST, CLASS / "alice.py", CLASS / copy), tmp_path / "out")
    assert pairs == [tuple(sorted(("alice.py", copy)))], f"{copy}: expected only alice's pair, got {pairs}"


def test_independent_correct_solutions_are_not_flagged(tmp_path):
    _, pairs = listed(a_class(tmp_path, *HONEST, CLASS / "alice.py"), tmp_path / "out")
    assert pairs == [], pairs


@pytest.mark.parametrize("name", ABLATIONS)
def test_without_exclusion_or_rarity_honest_students_are_flagged(tmp_path, name):
    """The flag the other tests rely on: turned off, honest pairs are listed (so those tests would fail)."""
    _, pairs = listed(a_class(tmp_path, *HONEST, CLASS / "alice.py", CLASS / "copy_combined.ipynb"),
                      tmp_path / "out", settings=ABLATIONS[name])
    honest = {p.name for p in HONEST}
    wrongly = [p for p in pairs if set(p) <= honest]
    assert wrongly, f"{name}: no honest pair listed, so this setting is not what keeps them apart: {pairs}"


def test_a_copy_of_an_against_source_is_attributed_to_it(tmp_path):
    folder = a_class(tmp_path, *HONEST, HERE / "sourced" / "copy_of_source.py")
    written, pairs = listed(folder, tmp_path / "out", [HERE / "against" / "oldbook"])
    assert pairs == [("copy_of_source.py", "oldbook/attention.py")], pairs
    page = written.page.read_text(encoding="utf-8")
    assert "matches the source oldbook/attention.py" in page
    row = written.csv.read_text(encoding="utf-8").splitlines()[1].split(",")
    assert row[1:3] == ["copy_of_source.py", "oldbook/attention.py"] and row[5] == "yes", row


def test_two_copies_of_a_source_are_attributed_to_it_not_to_each_other(tmp_path):
    second = tmp_path / "copy_of_source_too.py"
    second.write_text((HERE / "sourced" / "copy_of_source.py").read_text().replace("sc", "s_c"))
    folder = a_class(tmp_path, *HONEST, HERE / "sourced" / "copy_of_source.py", second)
    written, _ = listed(folder, tmp_path / "out", [HERE / "against" / "oldbook"])
    docs = written.comparison.docs
    between = [p for p in written.comparison.pairs if {docs[p.a].doc.kind, docs[p.b].doc.kind} == {"student"}]
    assert len(between) == 1 and between[0].source == "oldbook/attention.py", between


def test_three_copies_make_a_cluster(tmp_path):
    written, _ = listed(a_class(tmp_path, *HONEST, CLASS / "alice.py", CLASS / "copy_renamed.py",
                                CLASS / "copy_combined.ipynb"), tmp_path / "out")
    docs = written.comparison.docs
    assert [[docs[n].doc.name for n in c] for c in written.comparison.clusters] == [
        ["alice.py", "copy_combined.ipynb", "copy_renamed.py"]]


def _graded(tmp_path: Path, files: list[Path], diagnosed: dict[str, str]) -> Path:
    """A grade folder as `autograder grade` leaves it: a record per submission, naming its file."""
    graded = tmp_path / "graded"
    for path in files:
        check = CheckResult("c", "test_mha_shapes", "MultiHeadAttention", 1.0, 2.0, "failed", "", [], "visible")
        record = SubmissionResult(str(path), 1.0, 2.0, 0.1, tests=[check], diagnoses=[
            {"part": "MultiHeadAttention", "misconception": diagnosed[path.name], "message": "scaled by d_out"}]
            if path.name in diagnosed else [])
        save(record, graded / f"{path.name}.json")
    return graded


def test_a_shared_mistake_is_the_strongest_evidence_and_stays_off_the_students_page(tmp_path):
    files = [*HONEST, CLASS / "alice.py", CLASS / "copy_one_class.py"]
    plain, _ = listed(_graded(tmp_path / "a", files, {}), tmp_path / "a" / "graded")
    same = {"alice.py": "mha_scale_d_out", "copy_one_class.py": "mha_scale_d_out",
            "honest_bob.py": "mha_scale_d_out", "honest_chen.py": "mha_scale_d_out"}
    graded = _graded(tmp_path / "b", files, same)
    mistaken, pairs = listed(graded, graded)
    assert pairs == [("alice.py", "copy_one_class.py")], "the same diagnosis without shared code is no evidence"
    [before], [after] = plain.comparison.pairs, mistaken.comparison.pairs
    assert after.evidence > before.evidence and after.mistakes, (before, after)
    notes = load(graded / "alice.py.json").similarity_notes
    assert any("shares a rare mistake" in line for line in notes), f"the record names the mistake: {notes}"
    record = load(graded / "copy_one_class.py.json")
    assert record.similarity_notes and "alice.py" in record.similarity_notes[0]
    assert load(graded / "honest_bob.py.json").similarity_notes == []
    page = feedback_html(record, "en")
    assert "alice.py" not in page and "similarity" not in page.lower(), "never on the student's page"


def test_the_page_says_it_is_evidence_not_a_verdict_in_both_languages(tmp_path):
    folder = a_class(tmp_path, *HONEST, CLASS / "alice.py", CLASS / "copy_combined.ipynb")
    en, _ = listed(folder, tmp_path / "en")
    zh, _ = listed(folder, tmp_path / "zh", lang="zh_TW")
    english, chinese = en.page.read_text(encoding="utf-8"), zh.page.read_text(encoding="utf-8")
    assert "evidence for a person to weigh, not a verdict" in english
    assert "<html lang='zh-TW'>" in chinese and "不是結論" in chinese and "evidence for" not in chinese
    assert english.count("<mark>") > 20, "the shared regions are highlighted"
    assert "id='pair-1'" in english and "href='#pair-1'" in english


def test_the_class_overview_links_the_similarity_section(tmp_path):
    graded = _graded(tmp_path, [*HONEST, CLASS / "alice.py", CLASS / "copy_renamed.py"], {})
    result = run_cli("report", str(graded))
    assert result.returncode == 0, result.stderr
    overview = (graded / "report.html").read_text(encoding="utf-8")
    assert "href='similarity.html#pair-1'" in overview and "alice.py ↔ copy_renamed.py" in overview
    assert (graded / "similarity.csv").is_file()


def test_bad_input_gets_a_clear_message(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    result = run_cli("similarity", str(empty), "--out", str(tmp_path / "o"))
    assert result.returncode == 2 and "no submissions" in result.stderr and "Traceback" not in result.stderr
    result = run_cli("similarity", str(SUBMISSIONS / "correct_einsum.py"), "--against", str(tmp_path / "nowhere"),
                     "--out", str(tmp_path / "o"))
    assert result.returncode == 2 and "nowhere: no such file or folder" in result.stderr, result.stderr
    folder = a_class(tmp_path, *HONEST[:3])
    (folder / "broken.ipynb").write_text("{not json")
    result = run_cli("similarity", str(folder), "--out", str(tmp_path / "o"))
    assert result.returncode == 1 and "not compared: broken.ipynb: The notebook is not valid JSON" in result.stderr
    assert "broken.ipynb" in (tmp_path / "o" / "similarity.html").read_text(encoding="utf-8"), "listed, not dropped"
    assert "Traceback" not in result.stderr


def test_every_record_field_round_trips(tmp_path):
    record = SubmissionResult("x.py", 0.0, 1.0, 0.0, similarity_notes=["similarity: shares code with y.py"])
    save(record, tmp_path / "x.json")
    assert json.loads((tmp_path / "x.json").read_text())["similarity_notes"] == record.similarity_notes
