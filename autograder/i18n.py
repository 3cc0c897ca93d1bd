"""Message catalogues: every student-facing string in English and Traditional Chinese."""
from __future__ import annotations

import json
import re
import string
from functools import cache
from pathlib import Path

LOCALES = Path(__file__).parent / "locales"
LANGS = tuple(sorted(path.stem for path in LOCALES.glob("*.json")))
"""The languages that have a catalogue in locales/ ("en", "zh_TW"): `--lang`'s choices, the exports' languages."""


CHAPTER_LOCALES = Path(__file__).parent / "chapters"
"""Each assignment folder there adds the messages only it says (its check titles, its misconceptions and hints):
<folder>/locales/<lang>.json."""


@cache
def catalogue(lang: str) -> dict[str, str]:
    """The kit's messages in `lang`, with those of the assignments' own catalogues (the kit's win a clash)."""
    if lang not in LANGS:
        raise ValueError(f"unknown language {lang!r}; choose one of {', '.join(LANGS)}")
    messages: dict[str, str] = {}
    for path in sorted(CHAPTER_LOCALES.glob(f"*/locales/{lang}.json")):
        messages.update(json.loads(path.read_text(encoding="utf-8")))
    messages.update(json.loads((LOCALES / f"{lang}.json").read_text(encoding="utf-8")))
    return messages


class _Params(dict):
    def __missing__(self, key: str) -> str:
        return "{" + key + "}"


POSITION = re.compile(r"\b(cell|line) (\d+)")
"""Positions as the loader and the worker write them ("cell 9", "cell 9, line 19"): counted from 1."""
POSITIONED = ("origin", "line")
"""The message parameters that hold positions (never the student's own error text)."""


def _positions(value: object, lang: str) -> object:
    """"cell 9, line 19" in the catalogue's words (第 9 個儲存格，第 19 行)."""
    if lang == "en" or not isinstance(value, str) or not POSITION.search(value):
        return value
    text = POSITION.sub(lambda m: t(f"ui.{m.group(1)}", lang, n=m.group(2)), value)
    return text.replace(", ", "，") if lang == "zh_TW" else text


class _Formatter(string.Formatter):
    """str.format, plus "{count:check|checks}": the word before "|" when the number is 1, the one after it
    otherwise (the catalogue's singular and plural; a language without them writes no such field)."""

    def format_field(self, value: object, format_spec: str) -> str:
        if "|" in format_spec:
            one, many = format_spec.split("|", 1)
            return one if value == 1 else many
        return super().format_field(value, format_spec)


VARIANT = "source"
"""A parameter that picks a variant of the message when the catalogue has one: `refused.missing` with
source="file" is `refused.missing.file` (a .py file has no cells to run)."""


BECAUSE = "because"
"""A parameter that holds the key of a message saying why (an exception's cause): its translation follows."""


def t(key: str, lang: str = "en", **params: object) -> str:
    """The message `key` in `lang`, filled with `params` (unknown keys are shown as is); a `because` parameter's
    message is added after it."""
    because = params.pop(BECAUSE, None)
    if because:
        return f"{t(key, lang, **params)} {t(str(because), lang)}"
    mine, english = catalogue(lang), catalogue("en")
    keys = [f"{key}.{params[VARIANT]}", key] if VARIANT in params else [key]
    found = next((k for k in keys if k in mine or k in english), key)
    template = mine.get(found) or english.get(found) or key
    params = {name: _positions(value, lang) if name in POSITIONED else value for name, value in params.items()}
    return _Formatter().vformat(template, (), _Params(params))
