"""Feedback pages: the student's page from `autograder check --html`, the instructor's class overview."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from autograder.record import CheckResult, SubmissionResult
from autograder.report.class_overview import overview_html
from tests.conftest import SUBMISSIONS, run_cli

CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--no-first-run"]


def render(page_path: Path, screenshot: Path) -> str:
    """Open a page in headless Chromium from a file:// URL; save a screenshot and return the visible text."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1000, "height": 800})
            requests: list[str] = []
            page.on("request", lambda request: requests.append(request.url))
            page.goto(page_path.resolve().as_uri())
            page.wait_for_load_state("load")
            broken = page.evaluate("Array.from(document.images).filter(i => !i.complete || i.naturalWidth == 0).length")
            assert broken == 0, "every embedded image decodes"
            assert all(url.startswith(("file:", "data:")) for url in requests), f"the page fetched {requests}"
            page.screenshot(path=str(screenshot), full_page=True)
            return page.inner_text("body")
        finally:
            browser.close()


def test_overview_counts_on_a_hand_made_class():
    def record(name: str, score: float, passed: bool, diagnoses: list[dict], error: str | None = None):
        check = CheckResult("title", "test_causal_no_peeking", "CausalAttention", 3.0 if passed else 0.0, 3.0,
                            "passed" if passed else "failed", "", ["CausalAttention"], "visible")
        tests = [] if error else [check]
        return name, SubmissionResult(name, score, 3.0, 1.0, tests=tests, error=error, diagnoses=diagnoses)

    tril = {"part": "CausalAttention", "misconception": "causal_mask_tril", "message": "m"}
    heads = {"part": "MultiHeadAttentionWrapper", "misconception": None, "message": "m",
             "depends_on": "CausalAttention"}
    page = overview_html([record("a", 3, True, []), record("b", 0, False, [tril]), record("c", 0, False, [tril, heads]),
                          record("d", 0, False, [], error="The file is empty.")])
    assert "3 of 4 submissions graded" in page
    assert "1/3 (33%)" in page, "pass rate of the one check"
    assert "data-id='causal_mask_tril'" in page and "<td class='num'>2</td>" in page, "the misconception, twice"
    assert "failed together with CausalAttention" in page, "a part failing because of the part it builds on"
    assert "<td class='who'>b, c</td>" in page, "who made the mistake"
    assert "The file is empty." in page, "the ungraded submission and its reason"


@pytest.mark.slow
def test_class_overview_renders_in_a_browser(graded_fixtures, tmp_path):
    folder = tmp_path / "graded"
    shutil.copytree(graded_fixtures["__out__"]["path"], folder)
    broken = tmp_path / "broken.ipynb"
    broken.write_text('{"cells": [', encoding="utf-8")  # cut off mid-file
    graded = run_cli("grade", str(broken), "--out", str(folder))
    assert graded.returncode == 0, graded.stderr[-2000:]
    result = run_cli("report", str(folder))
    assert result.returncode == 0 and "report.html" in result.stdout, result.stderr
    text = render(folder / "report.html", tmp_path / "report.png")
    assert (tmp_path / "report.png").stat().st_size > 10_000, "a screenshot with content"
    assert "Class overview" in text and "Score distribution" in text
    assert "Pass rate per check" in text and "CausalAttention never looks at later tokens" in text
    assert "Most frequent misconceptions" in text and "lower triangle masked instead of the upper" in text
    assert "broken.ipynb" in text and "not valid JSON" in text, "the ungraded submission with its reason"
    chinese = run_cli("report", str(folder), "--lang", "zh_TW")
    assert chinese.returncode == 0 and "全班概況" in (folder / "report.html").read_text(encoding="utf-8")


@pytest.mark.slow
def test_check_writes_a_feedback_page_in_traditional_chinese(tmp_path):
    page = tmp_path / "feedback.html"
    result = run_cli("check", str(SUBMISSIONS / "bug_causal_tril_mask.py"), "--part", "CausalAttention",
                     "--lang", "zh_TW", "--html", str(page))
    assert result.returncode == 1, result.stderr[-2000:]
    assert "遮住了下三角而不是上三角" in result.stdout, "the diagnosis is in the checklist"
    text = render(page, tmp_path / "feedback.png")
    assert "遮住了下三角而不是上三角" in text and "注意力權重" in text
    html = page.read_text(encoding="utf-8")
    assert "data-misconception='causal_mask_tril'" in html and html.count("<svg class='attention'") == 1
    assert ">你的：第 1 個注意力頭</text>" in html, "the picture's captions are in the student's language"


def test_attention_svg_draws_cells_nan_and_unreadable_maps():
    from xml.etree import ElementTree

    from autograder.assignment import load
    from autograder.i18n import t
    from autograder.report.attention_svg import NAN_COLOUR, attention_svg

    TOKENS = list(load().tokens)
    T = len(TOKENS)
    diagonal = [[1.0 if q == k else 0.2 for k in range(T)] for q in range(T)]
    with_nan = [row[:] for row in diagonal]
    with_nan[0][1] = None  # records hold NaN as None
    reason = "RuntimeError: shape '[1, 6, 2]' is invalid for <input> & more"
    student = {"MultiHeadAttention": [diagonal, with_nan], "CausalAttention": reason}
    reference = {"CausalAttention": [diagonal], "MultiHeadAttention": [diagonal, diagonal]}
    labels = tuple(t("ui.head_caption", "zh_TW", who=t(side, "zh_TW")) for side in ("ui.reference", "ui.yours"))

    svg = ElementTree.fromstring(attention_svg(student, reference, labels, TOKENS))  # well-formed, every text escaped
    assert svg.tag == "svg" and svg.get("class") == "attention" and svg.get("role") == "img"
    assert svg.get("aria-label") == "CausalAttention, MultiHeadAttention", "the classes, in the graded order"
    cells = {rect.find("title").text: rect.get("fill") for rect in svg.iter("rect") if rect.find("title") is not None}
    assert len([r for r in svg.iter("rect") if r.find("title") is not None]) == 5 * T * T, "reference 1+2, student 2"
    assert cells["Your → journey: NaN"] == NAN_COLOUR and list(cells.values()).count(NAN_COLOUR) == 1

    def darkness(colour: str) -> int:
        return -sum(bytes.fromhex(colour[1:]))

    assert darkness(cells["Your → Your: 1.000"]) > darkness(cells["Your → journey: 0.200"]) > darkness("#ffffff")
    unreadable = [g for g in svg.iter("g") if g.findtext("title") == reason]
    assert len(unreadable) == 1 and unreadable[0].findtext("text") == "?", "the student's CausalAttention"
    assert [e.text for e in svg.iter("text")].count("?") == 1
    texts = {e.text for e in svg.iter("text")}
    assert {"參考實作：第 1 個注意力頭", "參考實作：第 2 個注意力頭",
            "你的：第 1 個注意力頭", "你的：第 2 個注意力頭"} <= texts
    assert {"CausalAttention", "MultiHeadAttention"} <= texts and set(TOKENS) <= texts


def test_report_of_a_missing_folder_is_a_usage_error(tmp_path):
    result = run_cli("report", str(tmp_path / "nowhere"))
    assert result.returncode == 2 and "nowhere" in result.stderr
