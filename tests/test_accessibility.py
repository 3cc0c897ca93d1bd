"""Feedback everyone can read: text alternatives of the attention pictures, a palette with second cues, pages
that declare their language, and axe-core run on every page in the Chromium the browser tests use."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from autograder.assignment import load
from autograder.record import CheckResult, SubmissionResult
from autograder.report.alttext import attention_text, describe
from autograder.report.attention_svg import MASKED_COLOUR, NAN_COLOUR, attention_svg
from autograder.report.class_overview import overview_html
from tests.conftest import FILES, ROOT, SUBMISSIONS, run_cli

AXE = ROOT / "node_modules" / "axe-core" / "axe.min.js"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--no-first-run", "--disable-sync"]
TOKENS = list(load().tokens)
T = len(TOKENS)
CAUSAL = [[[round(1 / (q + 1), 4) if k <= q else 0.0 for k in range(T)] for q in range(T)]]
"""A correct single-head causal map: each token spreads its weight evenly over itself and the tokens before it."""
UNIFORM = [[[round(1 / T, 4)] * T for _ in range(T)]]
"""A map that looks ahead: every token attends to every token."""


def with_nan(maps: list) -> list:
    broken = json.loads(json.dumps(maps))
    broken[0][2][1] = None  # records hold NaN as None
    return broken


def test_description_says_what_differs_from_the_reference():
    same = describe("CausalAttention", CAUSAL, CAUSAL, "en", TOKENS)
    assert same == "CausalAttention: your weights match the reference's."
    peeking = describe("CausalAttention", UNIFORM, CAUSAL, "en", TOKENS)
    assert "15 weight(s) let a token attend to a later token" in peeking, peeking  # the 15 cells above the diagonal
    assert "from “Your” to “Your”" in peeking, "the largest difference: the first token keeps 1.0 in the reference"
    assert "1 weight(s) are NaN" in describe("CausalAttention", with_nan(CAUSAL), CAUSAL, "en", TOKENS)
    assert "讀不到" in describe("CausalAttention", "RuntimeError: boom", CAUSAL, "zh_TW", TOKENS)
    hiding = describe("SelfAttention_v2", CAUSAL, UNIFORM, "zh_TW", TOKENS)
    assert "有 15 個權重被遮成 0" in hiding, hiding


def test_weights_are_tables_a_screen_reader_can_walk():
    from xml.etree import ElementTree

    block = attention_text({"CausalAttention": with_nan(CAUSAL)}, {"CausalAttention": CAUSAL}, "en", TOKENS)
    tree = ElementTree.fromstring(block)
    tables = list(tree.iter("table"))
    assert len(tables) == 2, "the reference's head and the student's"
    mine = tables[1]
    assert mine.findtext("caption").startswith("CausalAttention, yours, head 1")
    assert [th.get("scope") for th in mine.iter("th")] == ["col"] * T + ["row"] * T
    cells = list(mine.find("tbody").iter("td"))
    assert len(cells) == T * T and cells[0].text == "1.000"
    assert cells[1].get("class") == "num masked" and "masked" in "".join(cells[1].itertext()), "masked, in words"
    assert cells[2 * T + 1].text == "NaN", "NaN, in words"
    assert tree.find("ul").get("id") == "attention-description"


def test_palette_gives_nan_and_masked_cells_a_cue_besides_colour():
    from xml.etree import ElementTree

    svg = ElementTree.fromstring(attention_svg({"CausalAttention": with_nan(CAUSAL)}, {"CausalAttention": CAUSAL},
                                               ("{n}", "{n}"), TOKENS))
    assert svg.get("aria-describedby") == "attention-description", "the picture points to its description"
    patterns = {p.get("id"): p for p in svg.iter("pattern")}
    assert NAN_COLOUR == "url(#attention-nan)" and MASKED_COLOUR == "url(#attention-masked)"
    assert {"attention-nan", "attention-masked"} <= set(patterns)
    for pattern in patterns.values():
        assert pattern.find("path") is not None, "a hatching, visible without colour"
    fills = {r.findtext("title"): r.get("fill") for r in svg.iter("rect") if r.find("title") is not None}
    assert list(fills.values()).count(NAN_COLOUR) == 1 and fills["starts → journey: NaN"] == NAN_COLOUR
    assert fills["Your → journey: 0.000"] == MASKED_COLOUR, "a masked cell is striped"
    every = [r.get("fill") for r in svg.iter("rect") if r.find("title") is not None]
    assert every.count(MASKED_COLOUR) == 2 * 15, "the 15 cells above the diagonal, on both sides"


def test_overview_histogram_speaks_the_page_language():
    record = SubmissionResult("a.py", 3.0, 3.0, 1.0, tests=[
        CheckResult("t", "test_causal_no_peeking", "CausalAttention", 3.0, 3.0, "passed", "", ["CausalAttention"],
                    "visible")])
    page = overview_html([("a.py", record)], "zh_TW")
    assert "<html lang='zh-TW'>" in page
    svg = page[page.index("<svg class='histogram'"):page.index("</svg>")]
    assert ">分數</text>" in svg and ">份數</text>" in svg and ">score<" not in svg
    assert "<img" not in page, "no picture of text"
    assert "<th scope='row'>2.7–3</th><td class='num'>1</td>" in page, "the bins as a table"


@pytest.fixture(scope="module")
def pages(tmp_path_factory) -> dict[str, Path]:
    """Every kind of page the kit writes, in both languages: real feedback pages from `autograder check --html`,
    a feedback page with NaN and unreadable maps, the class overview and the regrade diff."""
    from autograder.report.feedback_page import feedback_html
    from autograder.report.regrade import diff, diff_html

    out = tmp_path_factory.mktemp("pages")
    found = {}
    for lang in ("en", "zh_TW"):
        page = out / f"feedback-{lang}.html"
        result = run_cli("check", str(SUBMISSIONS / "bug_causal_tril_mask.py"), "--lang", lang, "--html", str(page))
        assert result.returncode == 1 and page.is_file(), result.stderr[-2000:]
        found[page.name] = page
    check = CheckResult("Mask", "test_causal_no_peeking", "CausalAttention", 0.0, 3.0, "failed", "It peeks.",
                        ["CausalAttention"], "visible")
    broken = SubmissionResult("nan.py", 0.0, 3.0, 1.0, tests=[check], diagnoses=[
        {"part": "CausalAttention", "misconception": None, "message": "Nothing known matched."}],
        attention={"student": {"CausalAttention": with_nan(UNIFORM), "MultiHeadAttention": "RuntimeError: shape"},
                   "reference": {"CausalAttention": CAUSAL, "MultiHeadAttention": CAUSAL * 2}, "tokens": TOKENS})
    fixed = SubmissionResult("nan.py", 3.0, 3.0, 1.0, tests=[CheckResult(**{**check.__dict__, "status": "passed",
                                                                             "score": 3.0})])
    for lang in ("en", "zh_TW"):
        for name, text in ((f"nan-{lang}.html", feedback_html(broken, lang)),
                           (f"overview-{lang}.html", overview_html([("nan.py", broken), ("b.py", fixed)], lang)),
                           (f"diff-{lang}.html", diff_html(diff([("nan.py", broken)], [("nan.py", fixed)]), lang))):
            (out / name).write_text(text, encoding="utf-8")
            found[name] = out / name
    from autograder.api import similarity_report  # the similarity report on its tests' class, with pairs

    similar = FILES / "similarity" / "class"
    for lang in ("en", "zh_TW"):
        written = similarity_report([similar / "alice.py", similar / "copy_combined.ipynb", similar / "honest_bob.py"],
                                    out / f"similarity-{lang}", lang=lang)
        found[f"similarity-{lang}.html"] = written.page
    return found


@pytest.mark.slow
def test_no_serious_accessibility_violation_in_chromium(pages):
    if not AXE.is_file():
        pytest.fail(f"{AXE} is missing: run `npm ci` in {ROOT} (package.json lists axe-core)")
    from playwright.sync_api import sync_playwright

    report = {}
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            for name, path in sorted(pages.items()):
                page.goto(path.resolve().as_uri())
                expected = "zh-TW" if "zh_TW" in name else "en"
                assert page.evaluate("document.documentElement.lang") == expected, f"{name} declares its language"
                page.add_script_tag(path=str(AXE))
                results = page.evaluate("() => axe.run(document, {resultTypes: ['violations']})")
                report[name] = [(v["id"], v["impact"], [n["target"] for n in v["nodes"]][:3])
                                for v in results["violations"]]
                assert results["passes"], f"axe ran no rule on {name}"
        finally:
            browser.close()
    serious = {name: [v for v in found if v[1] in ("serious", "critical")] for name, found in report.items()}
    assert not any(serious.values()), json.dumps(serious, indent=1, ensure_ascii=False)
    # the overview and the diff are the kit's own pages from end to end: nothing at all is left on them
    assert not any(report[n] for n in report if n.startswith(("overview", "diff", "similarity"))), json.dumps(
        report, indent=1)


@pytest.mark.slow
def test_the_checker_itself_reports_a_serious_violation(tmp_path):
    """The harness can fail: a picture without a text alternative is reported as critical."""
    if not AXE.is_file():
        pytest.fail(f"{AXE} is missing: run `npm ci` in {ROOT} (package.json lists axe-core)")
    from playwright.sync_api import sync_playwright

    page_path = tmp_path / "control.html"
    page_path.write_text("<!DOCTYPE html><html lang='en'><head><title>c</title></head><body><main>"
                         "<svg role='img' width='10' height='10'><rect width='10' height='10'/></svg>"
                         "</main></body></html>")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            page.goto(page_path.resolve().as_uri())
            page.add_script_tag(path=str(AXE))
            results = page.evaluate("() => axe.run(document, {resultTypes: ['violations']})")
        finally:
            browser.close()
    assert ("svg-img-alt", "serious") in {(v["id"], v["impact"]) for v in results["violations"]}


def test_weights_ramp_reads_in_greyscale():
    """Lightness alone orders the weights, so no hue has to be told apart (any colour vision, or a print-out)."""
    from autograder.report.attention_svg import _blue

    def luminance(colour: str) -> float:  # WCAG relative luminance
        channels = [c / 255 for c in bytes.fromhex(colour[1:])]
        r, g, b = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
        return 0.2126 * r + 0.7152 * g + 0.0722 * b

    steps = [luminance(_blue(i / 20)) for i in range(21)]
    assert all(a > b for a, b in zip(steps, steps[1:])), "every step darker than the one before"
    assert (steps[0] + 0.05) / (steps[-1] + 0.05) > 7, "the ends of the ramp far apart"
