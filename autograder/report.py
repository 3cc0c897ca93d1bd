"""Feedback and gradebook writers: checklists (text and HTML), grades.csv, the summary table."""
from __future__ import annotations

import csv
import html
import io
from pathlib import Path

from autograder.config import GRADED
from autograder.i18n import t
from autograder.results import SubmissionResult, write_atomic


def _by_part(result: SubmissionResult) -> dict[str, list]:
    parts: dict[str, list] = {}
    for test in result.tests:
        parts.setdefault(test.part, []).append(test)
    return parts


def checklist_text(result: SubmissionResult, lang: str) -> str:
    lines = []
    if result.error:
        lines.append(t("ui.not_graded", lang, error=result.error))
    if result.output:
        lines.append(result.output)
    for part, tests in _by_part(result).items():
        score, max_score = result.parts[part]
        lines.append(f"\n{part}  ({t('ui.points', lang, score=score, max_score=max_score)})")
        for test in tests:
            mark = "✓" if test.status == "passed" else "✗"
            lines.append(f"  {mark} {test.name}")
            lines += [f"      {line}" for line in test.output.splitlines() if line]
    failed = sum(test.status == "failed" for test in result.tests)
    lines.append("")
    lines.append(t("ui.all_passed", lang) if not failed and not result.error else t("ui.some_failed", lang, count=failed))
    return "\n".join(lines).strip()


def checklist_html(result: SubmissionResult, lang: str) -> str:
    rows = []
    if result.error:
        rows.append(f"<p><b>{html.escape(t('ui.not_graded', lang, error=result.error))}</b></p>")
    for part, tests in _by_part(result).items():
        score, max_score = result.parts[part]
        rows.append(f"<h4 style='margin:.6em 0 .2em'><code>{html.escape(part)}</code> "
                    f"&middot; {html.escape(t('ui.points', lang, score=score, max_score=max_score))}</h4><ul style='list-style:none;padding-left:.5em'>")
        for test in tests:
            ok = test.status == "passed"
            mark = "<span style='color:#1a7f37'>&#10004;</span>" if ok else "<span style='color:#cf222e'>&#10008;</span>"
            detail = "" if not test.output else f"<div style='margin-left:1.6em;color:#57606a'>{html.escape(test.output)}</div>"
            rows.append(f"<li class='check {'passed' if ok else 'failed'}'>{mark} {html.escape(test.name)}{detail}</li>")
        rows.append("</ul>")
    failed = sum(test.status == "failed" for test in result.tests)
    summary = t("ui.all_passed", lang) if not failed and not result.error else t("ui.some_failed", lang, count=failed)
    rows.append(f"<p class='summary'>{html.escape(summary)}</p>")
    return "<div class='autograder-checklist'>" + "\n".join(rows) + "</div>"


def write_gradebook(records: list[tuple[str, SubmissionResult]], path: Path) -> None:
    """grades.csv: one row per submission, a column per graded part, the total and any error."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["submission", *GRADED, "total", "max_score", "error"])
    for name, record in records:
        parts = record.parts
        writer.writerow([name, *(f"{parts.get(p, (0.0, 0.0))[0]:g}" for p in GRADED),
                         f"{record.score:g}", f"{record.max_score:g}", record.error or ""])
    write_atomic(path, buffer.getvalue())


def summary_table(records: list[tuple[str, SubmissionResult]], lang: str) -> str:
    width = max([len(t("ui.submission", lang))] + [len(name) for name, _ in records])
    lines = [f"{t('ui.submission', lang):<{width}}  {'score':>9}  note"]
    for name, record in records:
        note = record.error or ""
        lines.append(f"{name:<{width}}  {record.score:>4g}/{record.max_score:<4g}  {note[:60]}")
    return "\n".join(lines)
