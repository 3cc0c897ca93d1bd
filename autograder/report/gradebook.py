"""The class's gradebook: grades.csv and the summary table `autograder grade` prints."""
from __future__ import annotations

import csv
import io
from pathlib import Path

from autograder.i18n import t
from autograder.record import SubmissionResult
from autograder.report.records import write_atomic


def write_gradebook(records: list[tuple[str, SubmissionResult]], path: Path, graded: tuple[str, ...]) -> None:
    """grades.csv: one row per submission, a column per graded part (`graded`, in order), the total and any error."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["submission", *graded, "total", "max_score", "error"])
    for name, record in records:
        parts = record.parts
        writer.writerow([name, *(f"{parts.get(p, (0.0, 0.0))[0]:g}" for p in graded),
                         f"{record.score:g}", f"{record.max_score:g}", record.error or ""])
    write_atomic(path, buffer.getvalue())


def summary_table(records: list[tuple[str, SubmissionResult]], lang: str) -> str:
    """A line per submission: its name, score and why it was not graded, if it was not."""
    width = max([len(t("ui.submission", lang))] + [len(name) for name, _ in records])
    lines = [f"{t('ui.submission', lang):<{width}}  {'score':>9}  note"]
    for name, record in records:
        note = record.error or ""
        lines.append(f"{name:<{width}}  {record.score:>4g}/{record.max_score:<4g}  {note[:60]}")
    return "\n".join(lines)
