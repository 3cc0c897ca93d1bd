"""Text alternatives of the attention pictures: what differs from the reference, and the weights as tables."""
from __future__ import annotations

import math

from autograder.i18n import t
from autograder.report.attention_svg import MASKED_BELOW, MASKED_COLOUR, NAN_COLOUR, _blue, drawn_order
from autograder.report.render import render_page

SAME = 0.01
"""Largest difference of a weight from the reference's that still counts as the same picture."""
PEEKS = 1e-3
"""A weight above this where the reference's is masked means the token looks at a later one."""


def _is_nan(weight: float | None) -> bool:
    return weight is None or math.isnan(weight)


def describe(name: str, student: list | str, reference: list | str | None, lang: str, tokens: list[str]) -> str:
    """One sentence or a few about how the student's map of `name` differs from the reference's."""
    if isinstance(student, str):
        return t("alt.unreadable", lang, name=name, reason=student)
    if not isinstance(reference, list):
        return t("alt.no_reference", lang, name=name)
    nans = peeks = hides = 0
    largest, where = 0.0, (0, 0, 0)
    for h, (mine, theirs) in enumerate(zip(student, reference)):
        for q, (row, expected) in enumerate(zip(mine, theirs)):
            for k, (weight, want) in enumerate(zip(row, expected)):
                if _is_nan(weight):
                    nans += 1
                    continue
                if want is not None and abs(want) < MASKED_BELOW and weight > PEEKS:
                    peeks += 1
                if want is not None and want > PEEKS and abs(weight) < MASKED_BELOW:
                    hides += 1
                if want is not None and abs(weight - want) > largest:
                    largest, where = abs(weight - want), (h, q, k)
    sentences = []
    if len(student) != len(reference):
        sentences.append(t("alt.heads", lang, mine=len(student), theirs=len(reference)))
    if largest <= SAME and not nans and not sentences:
        return t("alt.same", lang, name=name)
    if largest > SAME:
        h, q, k = where
        sentences.append(t("alt.largest", lang, diff=largest, head=h + 1, query=tokens[q], to=tokens[k]))
    for count, key in ((nans, "alt.nans"), (peeks, "alt.peeks"), (hides, "alt.hides")):
        if count:
            sentences.append(t(key, lang, count=count))
    return t("alt.differs", lang, name=name) + " " + " ".join(sentences)


def _cell(weight: float | None) -> tuple[str, str]:
    """A weight as the tables show it: ("nan" | "masked" | "num", its value with 3 decimals)."""
    if _is_nan(weight):
        return "nan", ""
    return ("masked", "") if abs(weight) < MASKED_BELOW else ("num", f"{weight:.3f}")


def _tables(name: str, student: dict, reference: dict, lang: str, tokens: list[str]) -> list[dict]:
    """The reference's heads of `name`, then the student's: a caption and a row of cells per query token."""
    tables = []
    for side, maps in (("ui.reference", reference.get(name)), ("ui.yours", student[name])):
        if isinstance(maps, list):
            tables += [{"caption": t("alt.caption", lang, name=name, who=t(side, lang), head=h + 1),
                        "rows": [(query, [_cell(w) for w in row]) for query, row in zip(tokens, matrix)]}
                       for h, matrix in enumerate(maps)]
    return tables


def attention_text(student: dict, reference: dict, lang: str, tokens: list[str]) -> str:
    """The block under the picture: the description the picture points to, a legend, the weights as tables (a row
    per query token, a column per key token, headers a screen reader announces)."""
    names = drawn_order(student, reference)
    details = [(name, tables) for name in names if (tables := _tables(name, student, reference, lang, tokens))]
    # the patterns the swatches use live in the picture's <defs>, which comes first on the page
    return render_page("attention_text.html.j2", lang, tokens=tokens, details=details,
                       descriptions=[describe(n, student[n], reference.get(n), lang, tokens) for n in names],
                       light=_blue(0.1), dark=_blue(0.9), masked=MASKED_COLOUR, nan=NAN_COLOUR)
