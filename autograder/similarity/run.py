"""`autograder similarity`: read the class and the sources, compare, write the report."""
from __future__ import annotations

from pathlib import Path

from autograder.config import Config
from autograder.similarity.compare import Settings, compare
from autograder.similarity.corpus import boilerplate, class_documents, source_documents
from autograder.similarity.report import Written, write_report


def similarity(paths: list[Path], out: Path, against: list[Path] = (), lang: str = "en",
               settings: Settings | None = None) -> Written:
    """Compare a class (a grade folder or submissions) with itself and with the `against` folders; write
    out/similarity.html, out/similarity.csv and, for a grade folder, each record's instructor-only lines.

    Raises:
        FileNotFoundError: a path, an --against folder, the stub or the reference solution is missing.
        ValueError: nothing to compare (an empty folder), or an --against folder without code.
    """
    settings = settings or Settings()
    config = Config()
    max_bytes = config.limits.source_bytes
    forced, given = boilerplate(settings.k, config) if settings.boilerplate else (set(), frozenset())
    docs, unreadable, _ = class_documents(list(paths), given, lang, max_bytes)
    if not docs:
        reasons = "; ".join(f"{u.name}: {u.reason}" for u in unreadable[:3])
        raise ValueError(f"no submission could be read ({reasons})")
    sources, unread_sources = source_documents(list(against), given, lang, max_bytes)
    comparison = compare(docs + sources, settings, forced)
    return write_report(comparison, unreadable + unread_sources, Path(out), lang, [str(a) for a in against])
