"""The similarity report: the page (ranked pairs, clusters, each pair side by side), the CSV, and the lines in
each record's instructor-only part."""
from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass
from pathlib import Path

from markupsafe import Markup, escape

from autograder.i18n import t
from autograder.report.records import write_atomic
from autograder.report.render import render_page
from autograder.similarity.compare import Comparison, Fingerprinted, Pair
from autograder.similarity.corpus import Unreadable

SHOWN = 50
"""Pairs shown side by side on the page (all of them are in the CSV)."""


@dataclass
class Written:
    """What `write_report` wrote, for the command line and the class overview."""

    page: Path
    csv: Path
    comparison: Comparison
    unreadable: list[Unreadable]
    summary: list[dict]
    """The strongest pairs as the overview lists them: {"a", "b", "evidence", "share"}."""


def _reasons(pair: Pair, docs: list[Fingerprinted], lang: str) -> list[str]:
    reasons = []
    for mistake in pair.mistakes:
        name = t(f"misconception.{mistake['misconception']}", lang)
        reasons.append(t("similarity.reason_mistake", lang, mistake=name, part=mistake["part"],
                         count=mistake["count"]))
    if docs[pair.a].doc.kind == "source" or docs[pair.b].doc.kind == "source":
        source = docs[pair.a].doc.name if docs[pair.a].doc.kind == "source" else docs[pair.b].doc.name
        reasons.append(t("similarity.reason_source", lang, source=source))
    elif pair.source:
        reasons.append(t("similarity.reason_via_source", lang, source=pair.source))
    strong = [f"{name} ({share:.0%})" for name, share in pair.definitions if share >= 0.5][:4]
    if strong:
        reasons.append(t("similarity.reason_definitions", lang, definitions=", ".join(strong)))
    reasons.append(t("similarity.reason_share", lang, share=pair.share))
    return reasons


def _marked(item: Fingerprinted, shared: set[int], k: int) -> dict[int, list[tuple[int, int, int, int]]]:
    """Per definition, the spans of the tokens in shared fingerprints."""
    spans: dict[int, list[tuple[int, int, int, int]]] = {}
    for value in shared:
        for unit_index, position in item.where.get(value, ()):
            unit, kept = item.doc.units[unit_index], item.kept[unit_index]
            for token in kept[position:position + k]:
                spans.setdefault(unit.definition, []).append(unit.spans[token])
    return spans


def _code(lines: list[str], spans: list[tuple[int, int, int, int]]) -> Markup:
    """The definition's lines with the shared tokens in <mark>."""
    marked = [[False] * (len(line) + 1) for line in lines]
    for row, col, end_row, end_col in spans:
        for r in range(row, min(end_row, len(lines) - 1) + 1):
            start = col if r == row else 0
            stop = end_col if r == end_row else len(lines[r])
            for c in range(start, min(stop, len(lines[r]))):
                marked[r][c] = True
    out = []
    for line, flags in zip(lines, marked):
        pieces, current, run = [], None, ""
        for char, flag in zip(line, flags):
            if flag != current and run:
                pieces.append(Markup("<mark>{}</mark>").format(run) if current else escape(run))
                run = ""
            current = flag
            run += char
        if run:
            pieces.append(Markup("<mark>{}</mark>").format(run) if current else escape(run))
        out.append(Markup("").join(pieces))
    return Markup("\n").join(out)


def _side(item: Fingerprinted, shared: set[int], k: int) -> list[dict]:
    spans = _marked(item, shared, k)
    return [{"name": d.name, "origin": d.origin, "code": _code(d.lines, spans[i])}
            for i, d in enumerate(item.doc.definitions) if i in spans]


def _rows(comparison: Comparison, lang: str) -> list[dict]:
    docs, k = comparison.docs, comparison.settings.k
    rows = []
    for rank, pair in enumerate(comparison.pairs, start=1):
        a, b = docs[pair.a], docs[pair.b]
        row = {"rank": rank, "id": f"pair-{rank}", "a": a.doc.name, "b": b.doc.name, "evidence": pair.evidence,
               "share": pair.share, "kind_a": a.doc.kind, "kind_b": b.doc.kind,
               "reasons": _reasons(pair, docs, lang), "mistakes": pair.mistakes, "source": pair.source,
               "definitions": pair.definitions}
        if rank <= SHOWN:
            row["left"], row["right"] = _side(a, pair.shared, k), _side(b, pair.shared, k)
        rows.append(row)
    return rows


def csv_text(rows: list[dict]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["rank", "a", "b", "evidence", "share", "b_is_source", "shared_mistakes", "also_in_source",
                     "definitions"])
    for row in rows:
        writer.writerow([row["rank"], row["a"], row["b"], f"{row['evidence']:.1f}", f"{row['share']:.2f}",
                         "yes" if "source" in (row["kind_a"], row["kind_b"]) else "no",
                         "; ".join(f"{m['part']}:{m['misconception']}" for m in row["mistakes"]),
                         row["source"] or "",
                         "; ".join(f"{name} {share:.2f}" for name, share in row["definitions"][:6])])
    return out.getvalue()


def _notes(comparison: Comparison, rows: list[dict], lang: str) -> None:
    """Each record gets its lines (replacing those of an earlier run) in `similarity_notes`, which the student's
    page never shows."""
    lines: dict[int, list[str]] = {}
    for pair, row in zip(comparison.pairs, rows):
        for me, other in ((pair.a, pair.b), (pair.b, pair.a)):
            lines.setdefault(me, []).append(t("similarity.note", lang, other=comparison.docs[other].doc.name,
                                              rank=row["rank"], evidence=row["evidence"],
                                              reasons="; ".join(row["reasons"])))
    for number, item in enumerate(comparison.docs):
        if item.doc.record is None:
            continue
        try:
            data = json.loads(item.doc.record.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        data["similarity_notes"] = lines.get(number, [])
        write_atomic(item.doc.record, json.dumps(data, ensure_ascii=False, indent=1))


def write_report(comparison: Comparison, unreadable: list[Unreadable], out: Path, lang: str,
                 sources: list[str]) -> Written:
    """Write out/similarity.html and out/similarity.csv, and the records' lines (graded folders)."""
    rows = _rows(comparison, lang)
    docs = comparison.docs
    clusters = [[docs[n].doc.name for n in group] for group in comparison.clusters]
    students = sum(1 for d in docs if d.doc.kind == "student")
    page = render_page("similarity.html.j2", lang, rows=rows[:SHOWN], more=max(0, len(rows) - SHOWN),
                       clusters=clusters, students=students, sources=sources,
                       files=sum(1 for d in docs if d.doc.kind == "source"), unreadable=unreadable,
                       settings=comparison.settings, ignored=comparison.ignored)
    out = Path(out)
    write_atomic(out / "similarity.html", page)
    write_atomic(out / "similarity.csv", csv_text(rows))
    _notes(comparison, rows, lang)
    summary = [{"a": r["a"], "b": r["b"], "evidence": r["evidence"], "share": r["share"], "id": r["id"]}
               for r in rows[:5]]
    return Written(out / "similarity.html", out / "similarity.csv", comparison, unreadable, summary)
