"""Jinja2 templates of autograder/templates/: pages (HTML-escaped) and container scripts (verbatim)."""
from __future__ import annotations

import functools

import jinja2


@functools.cache
def _environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.PackageLoader("autograder", "templates"),
        autoescape=jinja2.select_autoescape(["html", "html.j2"]),
        undefined=jinja2.StrictUndefined, keep_trailing_newline=True, trim_blocks=True, lstrip_blocks=True,
    )


def render(name: str, **context: object) -> str:
    """The template `name` filled with `context`; a missing variable is an error, not an empty string."""
    return _environment().get_template(name).render(**context)
