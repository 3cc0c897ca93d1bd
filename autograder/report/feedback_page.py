"""One student's feedback page: score, diagnoses, attention pictures beside the reference's, the checklist."""
from __future__ import annotations

from pathlib import Path

from markupsafe import Markup

from autograder.i18n import t
from autograder.record import SubmissionResult
from autograder.report.checklist import checklist_html
from autograder.report.records import write_atomic
from autograder.report.render import render_page


def _pictures(result: SubmissionResult, lang: str) -> dict | None:
    """The attention pictures: the maps that could not be read, the SVG and its text alternative (None: none)."""
    student, reference = result.attention.get("student") or {}, result.attention.get("reference") or {}
    if not student:
        return None
    try:
        from autograder.report.alttext import attention_text
        from autograder.report.attention_svg import attention_svg
    except ImportError:  # the student bundle draws no pictures: they need the reference
        return None
    tokens = result.attention.get("tokens") or _numbered(student, reference)
    labels = tuple(t("ui.head_caption", lang, who=t(side, lang)) for side in ("ui.reference", "ui.yours"))
    return {"failed": [(name, maps) for name, maps in student.items() if isinstance(maps, str)],
            "svg": Markup(attention_svg(student, reference, labels, tokens)),
            "text": Markup(attention_text(student, reference, lang, tokens))}  # its text alternative, weights as tables


def _numbered(*maps: dict) -> list[str]:
    """Rows and columns numbered from 1: the labels of a record written before records named the tokens."""
    sizes = [len(heads[0]) for side in maps for heads in side.values() if isinstance(heads, list) and heads]
    return [str(i + 1) for i in range(max(sizes, default=0))]


def feedback_html(result: SubmissionResult, lang: str | None = None, title: str = "") -> str:
    """A self-contained HTML page (pictures inline as SVG, nothing fetched)."""
    lang = lang or result.language or "en"
    messages = {d["message"] for d in result.diagnoses}
    return render_page("feedback.html.j2", lang, name=title or Path(result.submission).name, result=result,
                       problems=[line for line in result.output.splitlines() if line and line not in messages],
                       pictures=_pictures(result, lang), checklist=Markup(checklist_html(result, lang)))


def write_feedback(result: SubmissionResult, path: Path, lang: str | None = None) -> None:
    write_atomic(Path(path), feedback_html(result, lang))
