"""Before a batch: the reference solution, graded under the limits in force, must get full marks.

A limit the reference cannot pass (`--limit memory=1KiB` meant as 1 GiB) would otherwise blame every student
for it. The first judge grades the reference before its share of the class, in the same pytest session (so
the reference's answers it computes then serve the class too); the other judges start meanwhile and grade
ahead, but hand in nothing (no record, no page, no line said done) before the verdict (batch/pool.py,
judge_process.py). If it is not full marks, they are killed and nobody is graded. A pass is kept with the
reference's answers (kept_verdict): a later batch under the same limits, kit and reference skips the preflight.
"""
from __future__ import annotations

import shutil
import tempfile
from dataclasses import asdict, fields
from pathlib import Path

from autograder.config import Config, Limits
from autograder.i18n import t
from autograder.record import SubmissionResult
from autograder.report.records import load

LIMIT_OF = {
    "student.memory_budget": "memory_bytes", "student.memory_limit": "address_bytes",
    "student.timeout": "call_seconds", "student.cpu_share": "call_seconds", "student.load_timeout": "load_seconds",
    "student.submission_timeout": "submission_seconds", "student.cpu_limit": "cpu_seconds",
    "student.cpu_budget": "cpu_seconds", "student.process_limit": "processes", "student.file_limit": "file_bytes",
    "student.disk_limit": "disk_bytes", "student.protocol": "message_bytes",
}
"""The message key a check fails with -> the limit (a field of config.Limits) it names. A reference that cannot
be read at all (source_bytes) fails no check: then the limits changed from the defaults are named."""


class LimitsRefused(ValueError):
    """The reference solution does not get full marks under the limits given: nobody is graded."""


class Preflight:
    """The reference's record, written by the first judge into a folder of its own, and the verdict on it."""

    def __init__(self, limits: Limits, lang: str):
        self.limits, self.lang = limits, lang
        self._folder = Path(tempfile.mkdtemp(prefix="autograder-preflight-"))
        self.record = self._folder / "reference.json"
        self.judge: int | None = None
        """The pid of the judge that grades the reference."""

    def refusal(self, died: int | None = None) -> str | None:
        """None when the reference got full marks; else why the batch is refused (`died`: its judge's exit code)."""
        if died is not None:
            return t("grader.reference_died", self.lang, code=died, limits=named_limits(self.limits, set(), self.lang))
        try:
            return refusal(load(self.record), self.limits, self.lang)
        except (OSError, ValueError, TypeError) as exc:  # no record although the judge said it wrote it
            return t("grader.reference_died", self.lang, code=str(exc), limits=named_limits(self.limits, set(),
                                                                                            self.lang))

    def close(self) -> None:
        shutil.rmtree(self._folder, ignore_errors=True)


def kept_verdict(config: Config, isolation: str) -> Path | None:
    """Where a pass of the reference under `config`'s limits is kept between batches (judge/kept_answers.py, keyed
    by the kit, the reference, torch, Python, the limits and `isolation`); None where nothing is kept: no cache, or
    a cache that student code could write (capability.grader_files_safe)."""
    from autograder.judge import kept_answers
    from autograder.sandbox.capability import grader_files_safe

    if config.cache is None or not grader_files_safe(isolation):
        return None
    try:
        return kept_answers.passed_path(config.cache, config.reference_notebook, config.assignment.folder,
                                        asdict(config.limits), isolation)
    except OSError:  # no reference to read: the preflight says so
        return None


def passed_before(kept: Path | None) -> bool:
    from autograder.judge import kept_answers

    return kept is not None and kept_answers.passed(kept)


def remember_pass(kept: Path | None) -> None:
    from autograder.judge import kept_answers

    if kept is not None:
        kept_answers.remember_passed(kept)


def full_marks(record: SubmissionResult) -> bool:
    return record.error is None and bool(record.tests) and record.score == record.max_score


def refusal(record: SubmissionResult, limits: Limits, lang: str) -> str | None:
    """None when `record` (the reference's) has full marks; else why the batch is refused, naming the limits."""
    if full_marks(record):
        return None
    failed = [c for c in record.tests if c.status != "passed"]
    failures = list(dict.fromkeys(c.output.split("\n")[0] for c in failed))
    if record.error is not None:
        failures.insert(0, record.error)
    more = f" (+{len(failures) - 2})" if len(failures) > 2 else ""
    implicated = {LIMIT_OF[c.message_key] for c in failed if c.message_key in LIMIT_OF}
    return t("grader.reference_fails", lang, score=record.score, max_score=record.max_score or 100,
             limits=named_limits(limits, implicated, lang), failures=" / ".join(failures[:2]) + more)


def named_limits(limits: Limits, implicated: set[str], lang: str) -> str:
    """The limits to blame: those the failures name that were changed, else those named, else those changed."""
    defaults = {f.name: f.default for f in fields(Limits)}
    changed = {name for name, default in defaults.items() if getattr(limits, name) != default}
    named = sorted(implicated & changed or implicated or changed)
    return ", ".join(f"{name}={_shown(name, getattr(limits, name))} "
                     f"({t('grader.limit_default', lang, value=_shown(name, defaults[name]))})"
                     for name in named) or t("grader.limits_defaults", lang)


def _shown(name: str, value: float) -> str:
    if not name.endswith("_bytes"):
        return f"{value:g}"
    for unit, size in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if value >= size:
            return f"{value / size:g}{unit}"
    return f"{value:g}"
