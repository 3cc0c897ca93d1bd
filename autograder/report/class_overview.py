"""The instructor's class overview of a grade folder: scores, pass rates, misconceptions, ungraded work."""
from __future__ import annotations

import html
import json
import statistics
from collections import Counter
from pathlib import Path

from autograder.i18n import t
from autograder.report.records import SubmissionResult, write_atomic

STYLE = """body{font-family:system-ui,sans-serif;max-width:60em;margin:1.5em auto;padding:0 1em;color:#24292f}
h1{font-size:1.4em}h2{font-size:1.15em;margin-top:1.6em;border-bottom:1px solid #d0d7de}
table{border-collapse:collapse}td,th{padding:.2em .6em;border-bottom:1px solid #eaeef2;text-align:left}
td.who{font-size:.8em;color:#57606a}td.num{text-align:right;font-variant-numeric:tabular-nums}.bar{background:#54aeff;height:.7em;display:inline-block}"""


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


def _histogram(scores: list[float], maximum: float, lang: str) -> str:
    """The score histogram as inline SVG labelled in the page's language, and its numbers as a table."""
    esc, counts, step = html.escape, histogram(scores, maximum), maximum / BINS
    x_label, y_label = t("ui.report_histogram_x", lang), t("ui.report_histogram_y", lang)
    ranges = [f"{i * step:g}–{(i + 1) * step:g}" for i in range(BINS)]
    peak, bar, height, left, bottom = max(counts) or 1, 36, 150, 40, 170
    out = [f"<svg class='histogram' role='img' aria-label='{esc(t('ui.report_scores', lang))}' "
           f"aria-describedby='histogram-table' width='{left + BINS * bar + 10}' height='{bottom + 40}' "
           f"font-family='system-ui,sans-serif' font-size='11'>"]
    for i, count in enumerate(counts):
        h = height * count / peak
        out.append(f"<rect x='{left + i * bar + 2}' y='{bottom - h:.1f}' width='{bar - 4}' height='{h:.1f}' "
                   f"fill='#0969da'><title>{esc(ranges[i])}: {count}</title></rect>"
                   f"<text x='{left + i * bar + bar / 2}' y='{bottom + 14}' text-anchor='middle'>{i * step:g}</text>")
        if count:
            out.append(f"<text x='{left + i * bar + bar / 2}' y='{bottom - h - 3:.1f}' "
                       f"text-anchor='middle'>{count}</text>")
    out.append(f"<line x1='{left}' y1='{bottom}' x2='{left + BINS * bar}' y2='{bottom}' stroke='#24292f'/>"
               f"<text x='{left + BINS * bar / 2}' y='{bottom + 32}' text-anchor='middle'>{esc(x_label)}</text>"
               f"<text transform='translate(12,{bottom - height / 2}) rotate(-90)' text-anchor='middle'>"
               f"{esc(y_label)}</text></svg>")
    rows = "".join(f"<tr><th scope='row'>{esc(r)}</th><td class='num'>{c}</td></tr>" for r, c in zip(ranges, counts))
    out.append(f"<details><summary>{esc(t('ui.report_histogram_table', lang))}</summary><table id='histogram-table'>"
               f"<thead><tr><th scope='col'>{esc(x_label)}</th><th scope='col'>{esc(y_label)}</th></tr></thead>"
               f"<tbody>{rows}</tbody></table></details>")
    return "".join(out)


def overview_html(records: list[tuple[str, SubmissionResult]], lang: str = "en") -> str:
    graded = [(n, r) for n, r in records if not r.error and r.tests]
    ungraded = [(n, r) for n, r in records if r.error or not r.tests]
    scores = [r.score for _, r in graded]
    maximum = max([r.max_score for _, r in graded] or [100.0])
    esc = html.escape
    rows = [f"<h1>{esc(t('ui.report_title', lang))}</h1>",
            f"<p class='summary'>{esc(t('ui.report_summary', lang, graded=len(graded), total=len(records), mean=statistics.fmean(scores) if scores else 0.0, median=statistics.median(scores) if scores else 0))}</p>",
            f"<h2>{esc(t('ui.report_scores', lang))}</h2>"]
    if scores:
        rows.append(_histogram(scores, maximum, lang))
    # pass rate per check, in check order
    passed: dict[str, list[int]] = {}
    titles: dict[str, str] = {}
    for _, record in graded:
        for test in record.tests:
            counts = passed.setdefault(test.check_id, [0, 0])
            counts[0] += test.status == "passed"
            counts[1] += 1
            titles.setdefault(test.check_id, t(f"check.{test.check_id}", lang))
    rows.append(f"<h2>{esc(t('ui.report_checks', lang))}</h2><table class='checks'>"
                f"<tr><th>{esc(t('ui.report_check', lang))}</th><th>{esc(t('ui.report_passed', lang))}</th><td></td></tr>")
    for check_id, (ok, total) in passed.items():
        rate = ok / total if total else 0.0
        rows.append(f"<tr><td title='{esc(check_id)}'>{esc(titles[check_id])}</td><td class='num'>{ok}/{total} "
                    f"({rate:.0%})</td><td><span class='bar' style='width:{8 * rate:.2f}em'></span></td></tr>")
    rows.append("</table>")
    # misconceptions
    def key(d: dict) -> tuple:
        return d.get("part", ""), d.get("misconception"), d.get("depends_on")

    counts = Counter(key(d) for _, r in graded for d in r.diagnoses)
    who: dict[tuple, list[str]] = {}
    for name, record in graded:
        for d in record.diagnoses:
            who.setdefault(key(d), []).append(name)
    rows.append(f"<h2>{esc(t('ui.report_misconceptions', lang))}</h2>")
    if counts:
        rows.append(f"<table class='misconceptions'><tr><th>{esc(t('ui.part', lang))}</th>"
                    f"<th>{esc(t('ui.report_misconception', lang))}</th><th>{esc(t('ui.report_count', lang))}</th>"
                    f"<th>{esc(t('ui.submission', lang))}</th></tr>")
        for (part, id, depends_on), count in counts.most_common():
            name = (t(f"misconception.{id}", lang) if id else t("ui.report_dependency", lang, dependency=depends_on)
                    if depends_on else t("ui.report_none_matched", lang))
            rows.append(f"<tr><td><code>{esc(part)}</code></td><td data-id='{esc(str(id))}'>{esc(name)}</td>"
                        f"<td class='num'>{count}</td><td class='who'>{esc(', '.join(who[(part, id, depends_on)][:12]))}"
                        f"{' …' if len(who[(part, id, depends_on)]) > 12 else ''}</td></tr>")
        rows.append("</table>")
    else:
        rows.append(f"<p>{esc(t('ui.report_nothing', lang))}</p>")
    # ungraded
    rows.append(f"<h2>{esc(t('ui.report_ungraded', lang))}</h2>")
    if ungraded:
        rows.append(f"<table class='ungraded'><tr><th>{esc(t('ui.submission', lang))}</th>"
                    f"<th>{esc(t('ui.report_reason', lang))}</th></tr>")
        for name, record in ungraded:
            rows.append(f"<tr><td>{esc(name)}</td><td>{esc(record.error or '-')}</td></tr>")
        rows.append("</table>")
    else:
        rows.append(f"<p>{esc(t('ui.report_nothing', lang))}</p>")
    return (f"<!DOCTYPE html>\n<html lang='{lang.replace('_', '-')}'><head><meta charset='utf-8'>"
            f"<title>{esc(t('ui.report_title', lang))}</title><style>{STYLE}</style></head><body><main>\n"
            + "\n".join(rows) + "\n</main></body></html>\n")


def write_overview(folder: Path, lang: str = "en") -> Path:
    """`autograder report DIR`: DIR/report.html from the records in DIR; returns its path."""
    path = Path(folder) / "report.html"
    write_atomic(path, overview_html(read_records(folder), lang))
    return path
