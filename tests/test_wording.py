"""Pages and messages that agree with themselves, and files written as people expect them (no grading run)."""
from __future__ import annotations

import json
import os
import re
import shutil
import stat

import pytest
from markupsafe import escape

from autograder.assignment import load
from autograder.i18n import LANGS, catalogue, t
from autograder.judge.run import check_table
from autograder.load.submission import load_submission
from autograder.record import CheckResult, SubmissionResult
from autograder.report.checklist import checklist_html, checklist_text
from autograder.report.class_overview import overview_html
from autograder.report.feedback_page import feedback_html
from autograder.report.records import write_atomic
from tests.conftest import ROOT, run_cli
from tests.test_golden import graded, self_check

T = 6
NAN_MAP = [[[None if q == k == 0 else (1.0 if q == k else 0.0) for k in range(T)] for q in range(T)]]


def prose_parens_nest(text: str) -> bool:
    """Whether a parenthesis of prose opens inside another one. A call's or a shape's parentheses, "f(x)" or
    "shape (2, 6)" inside a prose parenthesis, are code, not prose: only "(" or "（" after a space or a line start that
    holds words counts."""
    depth, stack = 0, []
    for i, char in enumerate(text):
        if char in "(（":
            prose = (i == 0 or not (text[i - 1].isalnum() or text[i - 1] in "_.])'\"")) and \
                not re.match(r"[(（][\d\s,.'\[\]\-]*[)）]", text[i:])
            stack.append(prose)
            depth += prose
            if prose and depth > 1:
                return True
        elif char in ")）" and stack:
            depth -= stack.pop()
    return False


DOUBLED = re.compile(r"\.\)\.|。）。|[.。][.。]|[.。][)）][.。]")


def assert_well_composed(text: str, where: str) -> None:
    for line in text.splitlines():
        assert not prose_parens_nest(line), f"{where}: parentheses nest in {line!r}"
        found = DOUBLED.search(line.replace("...", "…"))
        assert not found, f"{where}: doubled punctuation {found.group()!r} in {line!r}"


def test_the_nesting_detector_tells_prose_from_code():
    assert prose_parens_nest("(x is not implemented yet (it still raises NotImplementedError).)")
    assert prose_parens_nest("（和「CausalAttention returns (batch, tokens)」是同一個錯誤）")
    assert not prose_parens_nest("a fixed buffer (self.register_buffer(\"mask\", ...))")
    assert not prose_parens_nest("shape (2, 6, 3); expected (2, 6, 2) = (batch, tokens, d_out)")
    assert DOUBLED.search("(it still raises NotImplementedError).).") and DOUBLED.search("錯誤。）。")


SENTENCE = {lang: t("student.not_implemented", lang, where="MultiHeadAttentionWrapper") for lang in LANGS}
"""A whole message, with parentheses and a full stop of its own: what a message may carry inside another."""
CARRIERS = ("error", "detail", "reason")
"""Parameters that may hold a whole message or an exception's text (with parentheses and a full stop)."""


@pytest.mark.parametrize("lang", LANGS)
def test_no_message_of_the_catalogue_nests_parentheses(lang):
    for key, template in catalogue(lang).items():
        assert_well_composed(template, f"{lang} {key}")


@pytest.mark.parametrize("lang", LANGS)
def test_a_message_carried_inside_another_neither_nests_parentheses_nor_doubles_full_stops(lang):
    checked = 0
    for key, template in catalogue(lang).items():
        carried = [p for p in CARRIERS if "{" + p + "}" in template]
        if not carried or key.startswith("misconception."):  # a hint's {detail} is a clause the diagnosis makes
            continue
        text = t(key, lang, **dict.fromkeys(carried, SENTENCE[lang]))
        assert_well_composed(text, f"{lang} {key}")
        checked += 1
    assert checked > 5, "the catalogue's carrying messages were not found"


@pytest.mark.parametrize("lang", LANGS)
def test_rendered_checklists_and_pages_are_well_composed(lang):
    for record in (graded(lang), self_check(lang)):
        assert_well_composed(checklist_text(record, lang), f"{lang} checklist")
        assert_well_composed(checklist_text(record, lang, verbose=False), f"{lang} short checklist")
    title = t("check.test_mha_shapes", lang)
    assert "(" in title, "a check title with parentheses, named by the next message"
    assert_well_composed(t("ui.same_error", lang, name=title), f"{lang} ui.same_error")


@pytest.mark.parametrize("lang", LANGS)
def test_the_picture_intro_names_the_colours_its_legend_and_picture_use(lang):
    result = SubmissionResult("a.ipynb", 0.0, 1.0, 0.0, language=lang,
                              attention={"student": {"CausalAttention": NAN_MAP},
                                         "reference": {"CausalAttention": NAN_MAP}})
    page = feedback_html(result, lang)
    intro, legend = t("ui.pictures_intro", lang), t("alt.legend_nan", lang)
    assert f"<p>{escape(intro)}</p>" in page and escape(legend) in page, "the intro and the legend are on the page"
    colour = re.split(r"[:：]", legend)[0]  # "orange with crosses", as the legend names NaN
    assert colour in intro, f"the intro says {intro!r}; the legend says {legend!r}"
    assert "fill='#fdb863'" in page and "M0 0L4 4M4 0L0 4" in page, "the picture's NaN cells: orange, crossed"
    assert ("red" if lang == "en" else "紅") not in intro


def _record(*checks: tuple[str, str, float, str, str]) -> SubmissionResult:
    tests = [CheckResult(f"{part} check {i}", f"test_{i}", part, points if status == "passed" else 0.0, points,
                         status, output, [part], "visible", key) for i, (part, status, points, key, output)
             in enumerate(checks)]
    record = SubmissionResult("nb.ipynb", sum(c.score for c in tests), sum(c.max_score for c in tests), 0.0,
                              tests=tests)
    points = load().points  # what the hidden checks add, as pipeline.record notes it for a self-check
    record.hidden_points = {part: max(points[part] - out_of, 0.0) for part, (_, out_of) in record.parts.items()}
    return record


NOT_YET = "x is not implemented yet."
UNTOUCHED = _record(("softmax_naive", "failed", 1.0, "student.not_implemented", NOT_YET),
                    ("CausalAttention", "failed", 2.0, "student.not_implemented", NOT_YET),
                    ("CausalAttention", "failed", 3.0, "student.not_implemented", NOT_YET))


@pytest.mark.parametrize("lang", LANGS)
def test_the_summary_points_to_hints_only_when_hints_are_shown(lang):
    short = checklist_text(UNTOUCHED, lang, verbose=False)
    hints = t("ui.some_failed", lang, count=3)
    assert "not implemented yet" not in short, "no part is started: no details are shown"
    assert hints not in short, f"the summary points to hints that are not there:\n{short}"
    assert t("ui.some_failed_not_started", lang, count=3) in short, short
    verbose = checklist_text(UNTOUCHED, lang, verbose=True)
    assert "not implemented yet" in verbose and hints in verbose, "--verbose shows the messages: they are the hints"


def test_points_say_what_was_earned_and_what_is_checked_later_with_singular_and_plural():
    text = checklist_text(_record(("softmax_naive", "passed", 1.0, "", ""),
                                  ("CausalAttention", "passed", 4.0, "", ""),
                                  ("CausalAttention", "failed", 11.0, "fail.nan", "NaN.")), "en")
    # softmax_naive: 1 visible point of 2, 1 more when graded; CausalAttention: 4 of 15 here, 9 more
    assert "Visible checks: 1 of 1 point earned; 1 more point is checked when your work is graded" in text, text
    assert "Visible checks: 4 of 15 points earned; 9 more points are checked when your work is graded" in text, text
    assert "Visible checks in all: 5 of 16 points earned. 10 more points are checked when your work is graded " \
           "(26 in all)." in text, text
    assert "more are checked" not in text and "checked here" not in text.lower(), text
    assert "3 visible check(s)" not in text and "1 visible check failed." in text, text
    zh = checklist_text(_record(("softmax_naive", "passed", 1.0, "", ""),
                                ("CausalAttention", "passed", 4.0, "", ""),
                                ("CausalAttention", "failed", 11.0, "fail.nan", "NaN.")), "zh_TW")
    assert "這裡檢查 15 分，你得到 4 分；另外 9 分會在正式評分時檢查" in zh, zh
    assert "這裡檢查 16 分，你得到 5 分；另外 10 分會在正式評分時檢查（總分 26 分）。" in zh, zh


@pytest.mark.parametrize("lang", LANGS)
def test_a_name_missing_from_a_python_file_is_not_said_to_be_missing_from_a_notebook(lang):
    notebook = t("refused.missing", lang, name="CausalAttention")
    in_file = t("refused.missing", lang, name="CausalAttention", source="file")
    word = {"en": "notebook", "zh_TW": "筆記本"}[lang]
    assert word in notebook and word not in in_file and {"en": "file", "zh_TW": "檔案"}[lang] in in_file, in_file
    assert "{source}" not in notebook + in_file


def test_the_overview_links_pages_names_parts_and_puts_unmatched_failures_last():
    def record(name: str, diagnoses: list[dict]) -> tuple[str, SubmissionResult]:
        tests = [CheckResult("t", check_id, part, 0.0, 1.0, "failed", "", [part], "visible")
                 for check_id, part in (("test_causal_eval_is_deterministic", "CausalAttention"),
                                        ("test_mha_eval_is_deterministic", "MultiHeadAttention"))]
        return name, SubmissionResult(name, 0.0, 2.0, 0.0, tests=tests, diagnoses=diagnoses)

    unknown = {"part": "CausalAttention", "misconception": None, "message": "m"}
    tril = {"part": "CausalAttention", "misconception": "causal_mask_tril", "message": "m"}
    records = [record("ada b.ipynb", [unknown]), record("bob.py", [unknown]), record("cy.py", [unknown, tril]),
               record("dee.py", []), record("eve.py", [])]
    page = overview_html(records, pages={"ada b.ipynb", "bob.py", "cy.py", "eve.py"})
    assert "<a href='ada%20b.ipynb.html'>ada b.ipynb</a>" in page, "each student's name links to their page"
    assert "<a href='eve.py.html'>eve.py</a>" in page, "also a student with no misconception"
    assert "href='dee.py.html'" not in page, "no link to a page that was not written"
    title = t("check.test_mha_eval_is_deterministic", "en")
    assert title == t("check.test_causal_eval_is_deterministic", "en"), "two parts' checks share a title"
    assert f"<code>MultiHeadAttention</code></td><td title='test_mha_eval_is_deterministic'>{title}" in page, page
    rows = page.split("class='misconceptions'")[1]
    assert rows.index("causal_mask_tril") < rows.index(t("ui.report_none_matched", "en")), \
        "the one known misconception comes before the failures that match none, however many those are"


def test_the_kits_own_given_code_is_not_run_when_it_needs_skipped_demo_values():
    for lang in LANGS:
        submission = load_submission(ROOT / "assignments" / lang / "ch03_attention.ipynb")
        kept = "\n".join(chunk.code for chunk in submission.chunks)
        assert "inputs" in submission.skipped_names
        assert "query_2 = inputs[1]" not in kept, "a given cell that reads demo values would fail on every notebook"
        assert "import torch" in kept and "class CausalAttention" in kept


@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_written_files_honour_the_umask(tmp_path, umask, mode):
    old = os.umask(umask)
    try:
        write_atomic(tmp_path / "record.json", "{}")
    finally:
        os.umask(old)
    got = stat.S_IMODE((tmp_path / "record.json").stat().st_mode)
    assert got == mode, f"umask {umask:03o}: mode {got:03o}, expected {mode:03o}"


def test_quick_start_installs_the_cpu_build_it_promises():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    quick = readme.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    setup = next(line for line in quick.splitlines() if "pip install torch" in line)
    assert "CPU build" in setup and "--index-url https://download.pytorch.org/whl/cpu" in setup, setup
    assert "macOS" in quick, "where a plain pin is right"


@pytest.mark.parametrize("lang", LANGS)
def test_checklist_html_summary_matches_what_it_shows(lang):
    html = checklist_html(UNTOUCHED, lang)
    assert "not implemented yet" in html and t("ui.some_failed", lang, count=3) in html, "the page shows every hint"


MISSING = "import torch\n\n\ndef softmax_naive(x):\n    return torch.exp(x) / torch.exp(x).sum(dim=0)\n"
"""A plain .py that defines one graded function and none of the classes."""


@pytest.fixture(scope="module")
def untouched_class(tmp_path_factory):
    """The notebooks as handed out (both languages) and a .py that lacks the classes, graded under umask 027."""
    folder, out = tmp_path_factory.mktemp("class"), tmp_path_factory.mktemp("graded")
    for lang in LANGS:
        shutil.copy(ROOT / "assignments" / lang / "ch03_attention.ipynb", folder / f"untouched_{lang}.ipynb")
    (folder / "missing.py").write_text(MISSING, encoding="utf-8")
    old = os.umask(0o027)
    try:
        first = run_cli("grade", str(folder), "--out", str(out), "--jobs", "1")
        again = run_cli("grade", str(folder), "--out", str(out), "--jobs", "1")
        report = run_cli("report", str(out))
    finally:
        os.umask(old)
    assert first.returncode == 0 and again.returncode == 0 and report.returncode == 0, first.stderr + again.stderr
    records = {path.name[: -len(".json")]: SubmissionResult.from_json(json.loads(path.read_text(encoding="utf-8")))
               for path in out.glob("*.json")}
    return {"folder": folder, "out": out, "first": first, "again": again, "records": records}


@pytest.mark.slow
def test_records_pages_and_grades_honour_the_umask(untouched_class):
    files = [*untouched_class["out"].glob("*.json"), *untouched_class["out"].glob("*.html"),
             untouched_class["out"] / "grades.csv"]
    modes = {path.name: f"{stat.S_IMODE(path.stat().st_mode):03o}" for path in files}
    expected = {"untouched_en.ipynb.json", "untouched_zh_TW.ipynb.json", "missing.py.json", "report.html",
                "untouched_en.ipynb.html", "untouched_zh_TW.ipynb.html", "missing.py.html", "grades.csv"}
    assert expected <= set(modes) and set(modes.values()) == {"640"}, f"umask 027 gives 640: {modes}"


@pytest.mark.slow
def test_a_rerun_says_how_many_records_it_reused(untouched_class):
    first = untouched_class["first"].stdout
    assert "3 submissions: 3 graded now, 0 reused (up to date), 0 not gradable" in first, first
    again = untouched_class["again"]
    assert "3 submissions: 0 graded now, 3 reused (up to date)" in again.stdout, again.stdout
    assert "REUSED 3 up-to-date records" in again.stderr and "--force" in again.stderr, again.stderr


def test_a_file_refused_now_is_not_called_a_reused_record(tmp_path):
    """A refusal is written without a judge; in a new grade folder it is not "an up-to-date record of an earlier run"
    (it was, and `autograder grade tests/files/submissions` said "REUSED 1" into an empty folder). Run again, it is."""
    folder, out = tmp_path / "class", tmp_path / "graded"
    folder.mkdir()
    (folder / "notes.txt").write_text("not a notebook", encoding="utf-8")
    first = run_cli("grade", str(folder), "--out", str(out), "--jobs", "1")
    assert first.returncode == 0, first.stderr
    assert "1 submission: 0 graded now, 0 reused (up to date), 1 not gradable" in first.stdout, first.stdout
    assert "NOT GRADED" in first.stderr and "REUSED" not in first.stderr, first.stderr
    again = run_cli("grade", str(folder), "--out", str(out), "--jobs", "1")
    assert "1 submission: 0 graded now, 1 reused (up to date), 1 not gradable" in again.stdout, again.stdout
    assert "REUSED 1 up-to-date record " in again.stderr, again.stderr


WRAPPER_CHECKS = sum(1 for info in check_table(load().checks) if info.names[0] == "MultiHeadAttentionWrapper")


@pytest.mark.slow
def test_untouched_notebooks_get_no_note_about_the_kits_own_cells_nor_about_stand_in_heads(untouched_class):
    for lang in LANGS:
        record = untouched_class["records"][f"untouched_{lang}.ipynb"]
        assert record.language == lang and not record.instructor_notes, record.instructor_notes
        assert "NameError" not in record.output, record.output
        wrapper = [test for test in record.tests if test.part == "MultiHeadAttentionWrapper"]
        assert len(wrapper) == WRAPPER_CHECKS and all(test.status == "failed" for test in wrapper)
        said = [test.name for test in wrapper if t("note.stand_in_heads", lang) in test.output]
        assert not said, f"a wrapper that is not written did not run with stand-in heads: {said}"


@pytest.mark.slow
def test_a_python_file_is_called_a_file(untouched_class):
    outputs = "\n".join(test.output for test in untouched_class["records"]["missing.py"].tests)
    assert "is not defined in your file" in outputs and "notebook" not in outputs, outputs
    notebook = "\n".join(test.output for test in untouched_class["records"]["untouched_en.ipynb"].tests)
    assert "file" not in notebook, "the notebooks' stubs exist: nothing is missing from them"


@pytest.mark.slow
def test_every_graded_checklist_is_well_composed(untouched_class):
    for name, record in untouched_class["records"].items():
        for lang in LANGS:
            assert_well_composed(checklist_text(record, lang), f"{name} {lang}")
            assert_well_composed(checklist_text(record, lang, verbose=False), f"{name} {lang} short")


@pytest.mark.slow
def test_every_checklist_of_the_fixture_class_is_well_composed(graded_fixtures):
    records = [SubmissionResult.from_json(data) for name, data in graded_fixtures.items() if name != "__out__"]
    assert len(records) > 50
    for record in records:
        for lang in LANGS:
            assert_well_composed(checklist_text(record, lang), record.submission)
        assert_well_composed(checklist_text(record, record.language, verbose=False), record.submission)


@pytest.mark.slow
def test_the_overview_of_a_graded_folder_links_every_page(untouched_class):
    page = (untouched_class["out"] / "report.html").read_text(encoding="utf-8")
    for name in untouched_class["records"]:
        assert f"<a href='{name}.html'>{name}</a>" in page, name


@pytest.mark.slow
@pytest.mark.parametrize("lang", LANGS)
def test_the_self_check_of_an_untouched_notebook_sends_nobody_to_hints_that_are_not_there(untouched_class, lang):
    result = run_cli("check", str(untouched_class["folder"] / f"untouched_{lang}.ipynb"))
    assert result.returncode == 1, result.stderr
    visible = sum(1 for info in check_table(load().checks) if not info.hidden)  # an untouched notebook fails every one
    assert t("ui.some_failed_not_started", lang, count=visible) in result.stdout, result.stdout
    assert t("ui.some_failed", lang, count=visible) not in result.stdout, result.stdout
