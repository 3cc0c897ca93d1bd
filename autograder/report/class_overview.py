"""The instructor's class overview of a grade folder: scores, pass rates, misconceptions, ungraded work."""
from __future__ import annotations

import json
import statistics
from collections import Counter
from pathlib import Path
from urllib.parse import quote

from autograder.i18n import t
from autograder.record import SubmissionResult
from autograder.report.records import write_atomic
from autograder.report.render import render_page


def read_records(folder: Path) -> list[tuple[str, SubmissionResult]]:
    """Every record in a grade folder, by file name (other JSON files are skipped)."""
    records = []
    for path in sorted(Path(folder).glob("*.json")):
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            if not isinstance(data, dict) or "submission" not in data or "tests" not in data:
                continue
            records.append((path.name[: -len(".json")], SubmissionResult.from_json(data)))
        except (OSError, ValueError, TypeError):
            continue
    return records


BINS = 10


def histogram(scores: list[float], maximum: float) -> list[int]:
    """Counts per tenth of the maximum score; the last bin includes the maximum."""
    counts = [0] * BINS
    for score in scores:
        counts[min(int(score / maximum * BINS), BINS - 1) if maximum > 0 else 0] += 1
    return counts


def _histogram(scores: list[float], maximum: float) -> dict:
    """The score histogram's geometry in px, a bar per bin: its range, count, left edge and height."""
    counts, step = histogram(scores, maximum), maximum / BINS
    peak, bar, top, left, bottom = max(counts) or 1, 36, 150, 40, 170  # top: the tallest bar's height
    return {"width": left + BINS * bar + 10, "height": bottom + 40, "bar": bar, "top": top, "left": left,
            "right": left + BINS * bar, "bottom": bottom,
            "bars": [{"range": f"{i * step:g}–{(i + 1) * step:g}", "start": f"{i * step:g}", "count": count,
                      "x": left + i * bar, "height": top * count / peak} for i, count in enumerate(counts)]}


def _pass_rates(graded: list[tuple[str, SubmissionResult]], lang: str) -> list[dict]:
    """Per check, in check order: how many graded submissions pass it."""
    passed: dict[str, list[int]] = {}
    parts: dict[str, str] = {}
    for _, record in graded:
        for test in record.tests:
            counts = passed.setdefault(test.check_id, [0, 0])
            counts[0] += test.status == "passed"
            counts[1] += 1
            parts[test.check_id] = test.part
    rows = []
    for check_id, (ok, total) in passed.items():
        rate = ok / total if total else 0.0
        rows.append({"id": check_id, "part": parts[check_id], "title": t(f"check.{check_id}", lang), "passed": ok,
                     "total": total, "rate": f"{rate:.0%}", "bar": f"{8 * rate:.2f}"})
    return rows


def _misconceptions(graded: list[tuple[str, SubmissionResult]], lang: str) -> list[dict]:
    """The diagnoses of the graded submissions, with who made each mistake: the known misconceptions most frequent
    first, then the parts that failed with the part they build on, then failures that match nothing known."""
    who: dict[tuple, list[str]] = {}
    for name, record in graded:
        for d in record.diagnoses:
            who.setdefault((d.get("part", ""), d.get("misconception"), d.get("depends_on")), []).append(name)
    counts = Counter({key: len(names) for key, names in who.items()})

    def kind(key: tuple) -> int:  # a known misconception, a part failing with the one it builds on, nothing known
        return 0 if key[1] else 1 if key[2] else 2

    rows = []
    for (part, id, depends_on), count in sorted(counts.most_common(), key=lambda item: kind(item[0])):
        name = (t(f"misconception.{id}", lang) if id else t("ui.report_dependency", lang, dependency=depends_on)
                if depends_on else t("ui.report_none_matched", lang))
        rows.append({"part": part, "id": id, "name": name, "count": count, "who": who[(part, id, depends_on)]})
    return rows


def overview_html(records: list[tuple[str, SubmissionResult]], lang: str = "en", pages: set[str] = frozenset(),
                  similarity: dict | None = None) -> str:
    """The class overview page: the score histogram, pass rates, misconceptions, what could not be graded, and
    the records that note an error of the kit's own.

    Args:
        pages: the records whose feedback page (NAME.html) lies beside the overview: their names link to it.
        similarity: the similarity report's section (see write_overview), or None.
    """
    graded = [(n, r) for n, r in records if not r.error and r.tests]
    scores = [r.score for _, r in graded]
    maximum = max([r.max_score for _, r in graded] or [100.0])
    return render_page("overview.html.j2", lang, graded=len(graded), total=len(records),
                       mean=statistics.fmean(scores) if scores else 0.0,
                       median=statistics.median(scores) if scores else 0,
                       histogram=_histogram(scores, maximum) if scores else None,
                       checks=_pass_rates(graded, lang), misconceptions=_misconceptions(graded, lang),
                       ungraded=[(n, r) for n, r in records if r.error or not r.tests],
                       records=records, pages={name: quote(f"{name}.html") for name in pages}, similarity=similarity,
                       internal=[(n, r) for n, r in records if r.internal_errors])


def write_overview(folder: Path, lang: str = "en", similarity: dict | None = None) -> Path:
    """`autograder report DIR`: DIR/report.html from the records in DIR; returns its path. `similarity`: the
    similarity report's section ({"page", "pairs", "count"} or {"error"}), written above report/."""
    path = Path(folder) / "report.html"
    records = read_records(folder)
    pages = {name for name, _ in records if (Path(folder) / f"{name}.html").is_file()}
    write_atomic(path, overview_html(records, lang, pages, similarity))
    return path
