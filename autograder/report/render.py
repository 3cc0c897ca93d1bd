"""Jinja2 templates of a package's templates/ folder: pages (HTML-escaped) and container scripts (verbatim)."""
from __future__ import annotations

import functools

import jinja2

from autograder.i18n import t


@functools.cache
def _environment(package: str) -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.PackageLoader(package, "templates"),
        autoescape=jinja2.select_autoescape(["html", "html.j2"]),
        undefined=jinja2.StrictUndefined, keep_trailing_newline=True, trim_blocks=True, lstrip_blocks=True,
    )


def render(template: str, /, package: str = "autograder.report", **context: object) -> str:
    """The `template` of `package`'s templates/ filled with `context`; a missing variable is an error, not an
    empty string."""
    return _environment(package).get_template(template).render(**context)


def render_page(template: str, /, lang: str, **context: object) -> str:
    """A report template in `lang`: it gets `lang` as HTML's lang attribute spells it ("zh-TW") and `tr(key,
    **params)`, the catalogue's message in that language."""
    return render(template, lang=lang.replace("_", "-"), tr=lambda key, **params: t(key, lang, **params), **context)
