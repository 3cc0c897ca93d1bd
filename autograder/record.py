"""The data model every stage shares: a submission's record and its checks' results (Gradescope's results.json
schema plus the kit's fields). Writing records is report/'s job (report/records.py)."""
from __future__ import annotations

import functools
import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path


@functools.cache
def kit_version() -> str:
    """The installed kit's version (pyproject's), or "unknown" when running from a bare checkout."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("attention-autograder")
    except PackageNotFoundError:
        return "unknown"


@functools.cache
def checks_files(folder: Path) -> dict[str, str]:
    """File name -> first 12 hex digits of the SHA-256 of each check module's source, as graded now."""
    return {path.name: hashlib.sha256(path.read_bytes()).hexdigest()[:12] for path in sorted(folder.glob("*.py"))}


def checks_digest(folder: Path) -> str:
    """One digest over all check modules in `folder`: equal digests mean the same checks produced two records."""
    return _digest(checks_files(folder))


def checked_by(folder: Path) -> dict:
    """A record's checks_digest and checks_files, for the checks in `folder` (Assignment.checks)."""
    return {"checks_digest": checks_digest(folder), "checks_files": dict(checks_files(folder))}


def _digest(files: dict[str, str]) -> str:
    return hashlib.sha256(json.dumps(files, sort_keys=True).encode()).hexdigest()[:12]


@dataclass
class CheckResult:
    """One graded check of one submission."""

    name: str
    """The check's title in the feedback language."""
    check_id: str
    """The pytest function name, stable across languages."""
    part: str
    """The graded name that earns the points."""
    score: float
    max_score: float
    status: str
    """"passed" or "failed"."""
    output: str
    """What the student should know: the failure message and any notes."""
    tags: list[str]
    """All graded names the check touches."""
    visibility: str
    """"visible" (in the self-check) or "hidden" (Gradescope hides it from students)."""
    message_key: str = ""
    """Catalogue key of the failure message, for statistics across languages."""


@dataclass
class SubmissionResult:
    """Everything known about one submission after grading (or failing to)."""

    submission: str
    score: float
    max_score: float
    execution_time: float
    output: str = ""
    tests: list[CheckResult] = field(default_factory=list)
    error: str | None = None
    """Why the submission could not be graded at all, if it could not."""
    isolation: str = ""
    language: str = "en"
    sha256: str = ""
    stderr: str = ""
    instructor_notes: list[str] = field(default_factory=list)
    """What the student is not shown. Empty in today's records: the loader no longer runs statements that need
    skipped demo code, which older records noted here."""
    similarity_notes: list[str] = field(default_factory=list)
    """Instructor only, never on the student's page: `autograder similarity`'s lines on whom this submission shares
    unusual code with, and why (replaced at each run)."""
    internal_errors: list[str] = field(default_factory=list)
    """Errors of the kit's own met while grading (a defect to report; empty when none): the score stands, but
    what they name (a diagnosis, a check's message) is missing or wrong."""
    diagnoses: list[dict] = field(default_factory=list)
    """Per part that lost points: {"part", "misconception" (catalogue id, or None if none matched), "message"},
    and "depends_on" (a failed part this one builds on) when none matched."""
    attention: dict = field(default_factory=dict)
    """Attention weights on the assignment's sentence: {"student" | "reference": {class: (heads, T, T) or reason},
    "tokens": [its words]}."""
    hidden_points: dict[str, float] = field(default_factory=dict)
    """Per part, the points of the hidden checks a self-check did not run (empty in a graded record)."""
    kit_version: str = field(default_factory=kit_version)
    """The kit's version that wrote the record ("" in records written before records carried it)."""
    checks_digest: str = ""
    """Digest of the check modules that produced the record (see checks_files); "": no checks ran."""
    checks_files: dict[str, str] = field(default_factory=dict)
    """Check module -> digest of its source, so a regrade diff can name the module that changed."""

    @property
    def parts(self) -> dict[str, tuple[float, float]]:
        totals: dict[str, tuple[float, float]] = {}
        for test in self.tests:
            got, out_of = totals.get(test.part, (0.0, 0.0))
            totals[test.part] = (got + test.score, out_of + test.max_score)
        return totals

    def to_json(self) -> dict:
        data = asdict(self)
        data["parts"] = {k: {"score": s, "max_score": m} for k, (s, m) in self.parts.items()}
        return data

    @classmethod
    def from_json(cls, data: dict) -> SubmissionResult:
        data = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        for key, empty in (("kit_version", ""), ("checks_digest", ""), ("checks_files", {})):
            data.setdefault(key, empty)  # an old record: unknown, not today's checks
        data["tests"] = [CheckResult(**t) for t in data.get("tests", [])]
        return cls(**data)
