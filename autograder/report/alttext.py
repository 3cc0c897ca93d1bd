"""Text alternatives of the attention pictures: what differs from the reference, and the weights as tables."""
from __future__ import annotations

import html
import math

from autograder.i18n import t
from autograder.assignment import DRAWN as CLASSES, TOKENS
from autograder.report.attention_svg import MASKED_BELOW, MASKED_COLOUR, NAN_COLOUR, _blue

STYLE = ("table.weights{border-collapse:collapse;margin:.4em 0}table.weights td,table.weights th{padding:.1em .4em;"
         "border:1px solid #d0d7de;font-size:.85em}td.nan{font-weight:bold}.note{color:#57606a}"
         ".legend svg{vertical-align:middle}")
SAME = 0.01
"""Largest difference of a weight from the reference's that still counts as the same picture."""
PEEKS = 1e-3
"""A weight above this where the reference's is masked means the token looks at a later one."""


def _is_nan(weight: float | None) -> bool:
    return weight is None or math.isnan(weight)


def describe(name: str, student: list | str, reference: list | str | None, lang: str) -> str:
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
        sentences.append(t("alt.largest", lang, diff=largest, head=h + 1, query=TOKENS[q], to=TOKENS[k]))
    for count, key in ((nans, "alt.nans"), (peeks, "alt.peeks"), (hides, "alt.hides")):
        if count:
            sentences.append(t(key, lang, count=count))
    return t("alt.differs", lang, name=name) + " " + " ".join(sentences)


def _cell(weight: float | None, lang: str) -> str:
    if _is_nan(weight):
        return f"<td class='num nan'>{html.escape(t('alt.nan', lang))}</td>"
    if abs(weight) < MASKED_BELOW:
        return f"<td class='num masked'>0 <span class='note'>({html.escape(t('alt.masked', lang))})</span></td>"
    return f"<td class='num'>{weight:.3f}</td>"


def weights_table(matrix: list, caption: str, lang: str) -> str:
    """One head's weights: a row per query token, a column per key token, headers a screen reader announces."""
    esc = html.escape
    head = "".join(f"<th scope='col'>{esc(token)}</th>" for token in TOKENS)
    rows = "".join(f"<tr><th scope='row'>{esc(query)}</th>{''.join(_cell(w, lang) for w in row)}</tr>"
                   for query, row in zip(TOKENS, matrix))
    return (f"<table class='weights'><caption>{esc(caption)}</caption><thead><tr><td></td>{head}</tr></thead>"
            f"<tbody>{rows}</tbody></table>")


def _swatch(fill: str) -> str:
    return (f"<svg width='14' height='14' aria-hidden='true' focusable='false'><rect width='14' height='14' "
            f"fill='{fill}' stroke='#57606a' stroke-width='0.5'/></svg>")


def attention_text(student: dict, reference: dict, lang: str) -> str:
    """The block under the picture: the description the picture points to, a legend, the weights as tables."""
    esc = html.escape
    names = [n for n in CLASSES if n in student]
    items = "".join(f"<li>{esc(describe(n, student[n], reference.get(n), lang))}</li>" for n in names)
    legend = (f"<p class='legend'>{_swatch(_blue(0.1))} {_swatch(_blue(0.9))} {esc(t('alt.legend_ramp', lang))} "
              f"{_swatch(MASKED_COLOUR)} {esc(t('alt.legend_masked', lang))} "
              f"{_swatch(NAN_COLOUR)} {esc(t('alt.legend_nan', lang))}</p>")
    details = []
    for name in names:
        tables = []
        for side, maps in (("ui.reference", reference.get(name)), ("ui.yours", student[name])):
            if isinstance(maps, list):
                who = t(side, lang)
                tables += [weights_table(m, t("alt.caption", lang, name=name, who=who, head=h + 1), lang)
                           for h, m in enumerate(maps)]
        if tables:
            details.append(f"<details><summary>{esc(t('alt.tables', lang, name=name))}</summary>{''.join(tables)}"
                           "</details>")
    # the patterns the swatches use live in the picture's <defs>, which comes first on the page
    return (f"<div class='attention-text'><style>{STYLE}</style><ul id='attention-description'>{items}</ul>"
            f"{legend}{''.join(details)}</div>")
