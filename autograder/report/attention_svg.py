"""Attention weights as an SVG heat map: one blue whose lightness is the weight, NaN and masked cells hatched."""
from __future__ import annotations

import functools
import html
import math

BLUES = ("#f7fbff", "#deebf7", "#c6dbef", "#9ecae1", "#6baed6", "#4292c6", "#2171b5", "#08519c", "#08306b")
"""ColorBrewer's 9-class Blues (matplotlib's "Blues"): weights 0 to 1, interpolated between these stops. One hue
whose lightness alone carries the weight, so it reads the same with any colour vision (and in greyscale)."""
NAN_COLOUR = "url(#attention-nan)"
"""NaN cells: orange (the hue farthest from the blues for every colour vision) with dark cross-hatching as a
second cue that needs no colour at all."""
MASKED_COLOUR = "url(#attention-masked)"
"""Masked cells (weight exactly 0): white with grey stripes, so "masked" differs from "small" without colour."""
MASKED_BELOW = 5e-5
"""Weights are kept to 4 decimals: below this a weight is 0, i.e. masked out."""
PATTERNS = ("<defs><pattern id='attention-nan' width='4' height='4' patternUnits='userSpaceOnUse'>"
            "<rect width='4' height='4' fill='#fdb863'/><path d='M0 0L4 4M4 0L0 4' stroke='#7f3b08' "
            "stroke-width='0.8'/></pattern><pattern id='attention-masked' width='4' height='4' "
            "patternUnits='userSpaceOnUse'><rect width='4' height='4' fill='#ffffff'/><path d='M0 4L4 0' "
            "stroke='#8c959f' stroke-width='0.7'/></pattern></defs>")


@functools.cache  # weights have 4 decimals: many cells share a colour
def _blue(weight: float) -> str:
    """The colour of a weight on the BLUES ramp (clamped to [0, 1])."""
    x = min(max(weight, 0.0), 1.0) * (len(BLUES) - 1)
    i = min(int(x), len(BLUES) - 2)
    low, high = bytes.fromhex(BLUES[i][1:]), bytes.fromhex(BLUES[i + 1][1:])
    return "#" + "".join(f"{round(a + (b - a) * (x - i)):02x}" for a, b in zip(low, high))


def _head(matrix: list, left: float, top: float, size: int, tokens: list[str]) -> str:
    """One head's grid: a cell per (query row, key column) with its weight as tooltip, then a thin frame."""
    cells = []
    for q, (query, row) in enumerate(zip(tokens, matrix)):
        for k, (key, weight) in enumerate(zip(tokens, row)):
            nan = weight is None or math.isnan(weight)
            fill = NAN_COLOUR if nan else MASKED_COLOUR if abs(weight) < MASKED_BELOW else _blue(weight)
            cells.append(f"<rect x='{left + k * size}' y='{top + q * size}' width='{size}' height='{size}' "
                         f"fill='{fill}'><title>{html.escape(query)} → "
                         f"{html.escape(key)}: {'NaN' if nan else f'{weight:.3f}'}</title></rect>")
    side = len(tokens) * size
    return "".join(cells) + f"<rect x='{left}' y='{top}' width='{side}' height='{side}' fill='none' stroke='#d0d7de'/>"


def drawn_order(student: dict, reference: dict) -> list[str]:
    """The classes to draw: in the reference's order (the assignment's, as the explainer measured them), then any
    the reference lacks."""
    return [n for n in reference if n in student] + [n for n in student if n not in reference]


def attention_svg(student: dict, reference: dict, labels: tuple[str, str], tokens: list[str]) -> str:
    """One inline SVG for all classes: a row per class, the reference's heads left, the student's right.

    `labels` are the two sides' column captions, with {n} where the head's number goes. A student map that is a
    string (why it could not be read) is drawn as a "?" with the reason as tooltip. No xmlns: the markup is meant for
    an HTML page. `tokens`: the sentence's words, a row and a column each.
    """
    esc, T, heads, cell = html.escape, len(tokens), 2, 16  # heads: slots per side; cell: its side in px
    names = drawn_order(student, reference)
    margin, caption, heading = 52, 18, 20  # width of the y labels; heights of the captions, of a class's name
    row = heading + (T + 1) * cell  # one class: name, grid, gap
    x = lambda i: margin + i * (T + 1) * cell + (2 * cell if i >= heads else 0)  # noqa: E731 - head slot i
    bottom = caption + len(names) * row - cell  # below the last grid: the key labels
    width, height = x(2 * heads - 1) + T * cell + 2, bottom + 48
    out = [f"<svg class='attention' role='img' aria-label='{esc(', '.join(names))}' "
           f"aria-describedby='attention-description' width='{width}' "
           f"height='{height}' viewBox='0 0 {width} {height}' font-family='system-ui,sans-serif' font-size='9' "
           f"shape-rendering='crispEdges'>", PATTERNS]
    for i in range(2 * heads):
        out.append(f"<text x='{x(i) + T * cell / 2}' y='{caption - 6}' text-anchor='middle'>"
                   f"{esc(labels[i // heads].replace('{n}', str(i % heads + 1)))}</text>")
    for r, name in enumerate(names):
        top = caption + r * row + heading
        out.append(f"<text x='{margin}' y='{top - 6}' font-size='11' font-weight='bold'>{esc(name)}</text>")
        out += [f"<text x='{margin - 4}' y='{top + (j + 0.5) * cell}' text-anchor='end' dominant-baseline='central'>"
                f"{esc(token)}</text>" for j, token in enumerate(tokens)]
        for side, maps in enumerate((reference.get(name), student.get(name))):
            if isinstance(maps, list):
                out += [_head(matrix, x(side * heads + h), top, cell, tokens) for h, matrix in enumerate(maps[:heads])]
        if isinstance(student[name], str):
            w, middle = x(2 * heads - 1) + T * cell - x(heads), top + T * cell / 2
            out.append(f"<g><title>{esc(student[name])}</title><rect x='{x(heads)}' y='{top}' width='{w}' "
                       f"height='{T * cell}' fill='#f6f8fa' stroke='#8c959f' stroke-dasharray='4 3'/>"
                       f"<text x='{x(heads) + w / 2}' y='{middle}' font-size='28' text-anchor='middle' "
                       f"dominant-baseline='central'>?</text></g>")
    out += [f"<text transform='translate({x(i) + (j + 0.5) * cell},{bottom + 4}) rotate(-90)' text-anchor='end' "
            f"dominant-baseline='central'>{esc(token)}</text>"
            for i in range(2 * heads) for j, token in enumerate(tokens)]
    return "".join(out) + "</svg>"
