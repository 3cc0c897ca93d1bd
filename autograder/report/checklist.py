"""The checklist of one record: per part, what passed and what failed, as text and as HTML."""
from __future__ import annotations

import re

from autograder.i18n import t
from autograder.record import SubmissionResult
from autograder.report.render import render_page

POSITIONS = re.compile(r"\b(cell|line) \d|個儲存格|第 \d+ 行")
NOT_STARTED = {"student.not_implemented", "refused.missing"}
"""Messages of a part the student has not begun: the stub still raises, or the name is not there."""


def _by_part(result: SubmissionResult) -> dict[str, list]:
    parts: dict[str, list] = {}
    for test in result.tests:
        parts.setdefault(test.part, []).append(test)
    return parts


def _graded(result: SubmissionResult) -> bool:
    """A record with hidden checks (graded) rather than a self-check of the visible ones."""
    return any(test.visibility != "visible" for test in result.tests)


def _hidden_points(result: SubmissionResult, part: str) -> float:
    return 0.0 if _graded(result) else result.hidden_points.get(part, 0.0)


def points_text(result: SubmissionResult, part: str, lang: str) -> str:
    """"Visible checks: 9 of 15 points earned; 9 more points are checked when your work is graded" (self-check),
    "18/24 points" (graded)."""
    score, max_score = result.parts[part]
    hidden = _hidden_points(result, part)
    if hidden:
        return t("ui.points_here", lang, score=score, max_score=max_score, hidden=hidden)
    return t("ui.points", lang, score=score, max_score=max_score)


def total_text(result: SubmissionResult, lang: str) -> str:
    """The self-check's points against the notebook's ("Visible checks in all: 12 of 51 points earned. 49 more
    points ...")."""
    parts = result.parts
    hidden = sum(_hidden_points(result, part) for part in parts)
    if not hidden or len(parts) < 2:
        return ""
    return t("ui.total_here", lang, score=result.score, max_score=result.max_score, hidden=hidden,
             total=result.max_score + hidden)


def summary_text(result: SubmissionResult, lang: str, shown: list | None = None) -> str:
    """The checklist's last word: all visible checks pass, or how many failed; it points to the hints above only
    when failures with a message are among the checks `shown` (None: all of them)."""
    failed = sum(test.status == "failed" for test in result.tests)
    if not failed and not result.error:
        return t("ui.all_passed", lang)
    hints = any(test.status == "failed" and test.output for test in (result.tests if shown is None else shown))
    return t("ui.some_failed" if hints or result.error else "ui.some_failed_not_started", lang, count=failed)


def part_status(tests: list) -> str:
    """"done", "not_started" (nothing passes and a check says the stub is untouched) or "failing"."""
    failed = [test for test in tests if test.status != "passed"]
    if not failed:
        return "done"
    if len(failed) == len(tests) and any(test.message_key in NOT_STARTED for test in failed):
        return "not_started"
    return "failing"


RAISED = re.compile(r"(\w+(?:Error|Exception))\b.*(\([^()]*\))\s*$", re.S)


def _same_error(test) -> str:
    """What makes two failures one error: the same text, or the same exception raised at the same line."""
    found = RAISED.search(test.output) if test.message_key == "student.raised" else None
    return f"{found.group(1)} {found.group(2)}" if found else test.output


def _details(part: str, tests: list, result: SubmissionResult, lang: str) -> list[str]:
    lines = [f"\n{part}  ({points_text(result, part, lang)})"]
    shown: dict[str, str] = {}
    for test in tests:
        mark = "✓" if test.status == "passed" else "✗"
        lines.append(f"  {mark} {test.name}")
        if test.output and _same_error(test) in shown:  # one bug stops several checks: say it once
            lines.append(f"      {t('ui.same_error', lang, name=shown[_same_error(test)])}")
            continue
        shown[_same_error(test)] = test.name
        lines += [f"      {line}" for line in test.output.splitlines() if line]
    return lines


def checklist_text(result: SubmissionResult, lang: str, verbose: bool = True) -> str:
    """The checklist as text. verbose=False: a line per part, details only for the parts begun."""
    lines = []
    if result.error:
        lines.append(t("ui.not_graded", lang, error=result.error))
    if result.output:
        lines.append(result.output)
    parts = _by_part(result)
    if not verbose and len(parts) > 1:
        width = max(len(part) for part in parts)
        lines.append("")
        for part, tests in parts.items():
            status = part_status(tests)
            mark = {"done": "✓", "not_started": "·", "failing": "✗"}[status]
            failed = sum(test.status != "passed" for test in tests)
            label = t("ui.part_failing", lang, count=failed, total=len(tests)) if status == "failing" \
                else t(f"ui.part_{status}", lang)
            lines.append(f"{mark} {part:<{width}}  {label}  ·  {points_text(result, part, lang)}")
        parts = {part: tests for part, tests in parts.items() if part_status(tests) == "failing"}
    for part, tests in parts.items():
        lines += _details(part, tests, result, lang)
    failed = sum(test.status == "failed" for test in result.tests)
    lines.append("")
    total = total_text(result, lang)
    if total:
        lines.append(total)
    lines.append(summary_text(result, lang, [test for tests in parts.values() for test in tests]))
    if failed and (not verbose and len(_by_part(result)) > 1):
        lines.append(t("ui.verbose_hint", lang))
    if POSITIONS.search("\n".join(lines)):
        lines.append(t("ui.positions", lang))
    return "\n".join(lines).strip()


def checklist_html(result: SubmissionResult, lang: str, diagnoses: bool = False) -> str:
    """The checklist as an HTML block, for the feedback page and the notebook's display.

    Args:
        diagnoses: put the record's diagnoses first (the notebook's display; the feedback page has its own).
    """
    parts = [(part, points_text(result, part, lang), tests) for part, tests in _by_part(result).items()]
    return render_page("checklist.html.j2", lang, error=result.error, parts=parts, total=total_text(result, lang),
                       summary=summary_text(result, lang),
                       diagnoses=[d["message"] for d in result.diagnoses] if diagnoses else [])
