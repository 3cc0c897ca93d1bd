"""Message catalogues: every student-facing string in English and Traditional Chinese."""
from __future__ import annotations

import json
import string
from functools import cache
from pathlib import Path

LANGS = ("en", "zh_TW")
LOCALES = Path(__file__).parent / "locales"


@cache
def catalogue(lang: str) -> dict[str, str]:
    if lang not in LANGS:
        raise ValueError(f"unknown language {lang!r}; choose one of {', '.join(LANGS)}")
    return json.loads((LOCALES / f"{lang}.json").read_text(encoding="utf-8"))


class _Params(dict):
    def __missing__(self, key: str) -> str:
        return "{" + key + "}"


def t(key: str, lang: str = "en", **params: object) -> str:
    """The message `key` in `lang`, filled with `params` (unknown keys are shown as is)."""
    template = catalogue(lang).get(key) or catalogue("en").get(key) or key
    return string.Formatter().vformat(template, (), _Params(params))
