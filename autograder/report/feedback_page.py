"""One student's feedback page: score, diagnoses, attention pictures beside the reference's, the checklist."""
from __future__ import annotations

import html
from pathlib import Path

from autograder.i18n import t
from autograder.report.checklist import checklist_html
from autograder.report.records import SubmissionResult, write_atomic

STYLE = """body{font-family:system-ui,sans-serif;max-width:60em;margin:1.5em auto;padding:0 1em;color:#24292f}
h1{font-size:1.4em}h2{font-size:1.15em;margin-top:1.6em;border-bottom:1px solid #d0d7de}
.diagnosis{background:#fff8c5;border-left:4px solid #d4a72c;padding:.5em .8em;margin:.5em 0}
.diagnosis.unknown{background:#f6f8fa;border-color:#8c959f}
figure{margin:.8em 0}figcaption{font-family:monospace}pre{white-space:pre-wrap}
img,svg.attention{max-width:100%;height:auto}"""


def _pictures(result: SubmissionResult, lang: str) -> list[str]:
    student, reference = result.attention.get("student") or {}, result.attention.get("reference") or {}
    if not student:
        return []
    try:
        from autograder.report.alttext import attention_text
        from autograder.report.attention_svg import attention_svg
    except ImportError:  # the student bundle draws no pictures: they need the reference
        return []
    rows = [f"<h2>{html.escape(t('ui.pictures', lang))}</h2>", f"<p>{html.escape(t('ui.pictures_intro', lang))}</p>"]
    for name, maps in student.items():
        if isinstance(maps, str):
            rows.append(f"<p class='picture-failed'>{html.escape(t('ui.picture_failed', lang, name=name, reason=maps))}</p>")
    labels = tuple(t("ui.head_caption", lang, who=t(side, lang)) for side in ("ui.reference", "ui.yours"))
    rows.append(attention_svg(student, reference, labels))
    rows.append(attention_text(student, reference, lang))  # the picture's text alternative and weights as tables
    return rows


def feedback_html(result: SubmissionResult, lang: str | None = None, title: str = "") -> str:
    """A self-contained HTML page (pictures inline as SVG, nothing fetched)."""
    lang = lang or result.language or "en"
    name = title or Path(result.submission).name
    rows = [f"<h1>{html.escape(t('ui.feedback_title', lang, name=name))}</h1>",
            f"<p class='score'>{html.escape(t('ui.score_line', lang, score=result.score, max_score=result.max_score))}</p>"]
    if result.error:
        rows.append(f"<p><b>{html.escape(t('ui.not_graded', lang, error=result.error))}</b></p>")
    messages = {d["message"] for d in result.diagnoses}
    problems = [line for line in result.output.splitlines() if line and line not in messages]
    if problems:
        rows.append("<pre class='problems'>" + html.escape("\n".join(problems)) + "</pre>")
    if result.diagnoses:
        rows.append(f"<h2>{html.escape(t('ui.diagnoses', lang))}</h2>")
        for diagnosis in result.diagnoses:
            kind = "diagnosis" if diagnosis.get("misconception") else "diagnosis unknown"
            rows.append(f"<div class='{kind}' data-misconception='{html.escape(str(diagnosis.get('misconception')))}'>"
                        f"{html.escape(diagnosis['message'])}</div>")
    rows += _pictures(result, lang)
    rows.append(f"<h2>{html.escape(t('ui.checklist', lang))}</h2>")
    rows.append(checklist_html(result, lang))
    return (f"<!DOCTYPE html>\n<html lang='{lang.replace('_', '-')}'><head><meta charset='utf-8'>"
            f"<title>{html.escape(name)}</title><style>{STYLE}</style></head><body><main>\n"
            + "\n".join(rows) + "\n</main></body></html>\n")


def write_feedback(result: SubmissionResult, path: Path, lang: str | None = None) -> None:
    write_atomic(Path(path), feedback_html(result, lang))
