"""Grades into a learning-management system: Canvas's gradebook import CSV and Moodle's grade import CSV."""
from __future__ import annotations

import csv
import io
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from autograder.config import Config
from autograder.load.platforms import person, student_keys
from autograder.record import SubmissionResult
from autograder.report.records import write_atomic

CANVAS_STUDENT = ["Student", "ID", "SIS User ID", "SIS Login ID", "Section"]
"""The identity columns of a Canvas gradebook export, in its order; the import needs them before the grades."""
CANVAS_KEYS = ["SIS Login ID", "SIS User ID", "ID"]
"""The columns Canvas's import finds a student by; a row with none of them is not written."""
MOODLE_STUDENT = ["First name", "Last name", "ID number", "Email address"]
"""The identity columns of a Moodle grade export (Institution and Department left out: the import ignores them)."""
MOODLE_KEYS = {"email": "Email address", "idnumber": "ID number"}
ALIASES = {"Email address": ("email", "e-mail")}
"""Other names a plain roster gives an LMS's column (besides its own name in any case and spacing)."""


@dataclass
class Match:
    """Which record belongs to which roster row, and everything that did not pair up."""

    rows: list[dict[str, str]]
    """The roster's students, in its order."""
    records: dict[int, tuple[str, SubmissionResult]] = field(default_factory=dict)
    """Roster row index -> (record name, record)."""
    problems: list[tuple[str, str, str]] = field(default_factory=list)
    """(kind, name, detail): unmatched submissions, students without one, ambiguous or ungraded work, roster rows
    the LMS could not match (not written)."""
    written: int = 0
    """Roster rows written to the LMS's CSV."""


def read_roster(path: Path) -> list[dict[str, str]]:
    """The students of a roster CSV (a Canvas or Moodle export works as is); Canvas's "Points Possible" row and
    blank lines are skipped. A byte-order mark (Excel, Canvas) is fine."""
    with open(path, newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle)
        if not reader.fieldnames:
            raise ValueError(f"{path}: empty roster (expected a header row)")
        rows = [{k.strip(): (v or "").strip() for k, v in row.items() if k} for row in reader]
    return [r for r in rows if any(r.values()) and r.get("Student", "").strip() != "Points Possible"]


def _squash(name: str) -> str:
    return re.sub(r"[\s_]+", "", name).casefold()


def _column(rows: list[dict[str, str]], name: str) -> str | None:
    """The roster's header for the LMS's column `name`: equal ignoring case and spaces, or one of its ALIASES."""
    wanted = {_squash(n) for n in (name, *ALIASES.get(name, ()))}
    for header in (rows[0] if rows else {}):
        if _squash(header) in wanted:
            return header
    return None


def _get(row: dict[str, str], name: str) -> str:
    """The row's value for the LMS's column `name`, found as `_column` finds it."""
    header = _column([row], name)
    return row.get(header, "") if header else ""


def _identity(row: dict[str, str], column: str) -> str:
    """The row's value for an identity column, or "" when the LMS could not use it (Canvas's ID is a number)."""
    value = _get(row, column)
    if column == "ID" and not value.isdigit() or column == "Email address" and "@" not in value:
        return ""
    return value


def _names(name: str, record: SubmissionResult) -> set[str]:
    """What a submission may be called in a roster: its record name, without suffix, its first folder
    (nbgrader's student id), the stem of its file, and what the LMS's download names say (load.platforms)."""
    first = name.split("__")[0]
    stem = re.sub(r"\.(ipynb|py)$", "", name, flags=re.I)
    names = {name, stem, first, re.sub(r"\.(ipynb|py)$", "", first, flags=re.I), Path(record.submission).stem}
    return {n.casefold() for n in names if n} | student_keys(Path(record.submission))


def match(records: list[tuple[str, SubmissionResult]], rows: list[dict[str, str]], keys: list[str]) -> Match:
    """Pair records with roster rows: through a "submission" column when the roster has one (several names
    separated by ";"), else through the `keys` columns (an e-mail address also by the part before "@")."""
    found = Match(rows)
    submission = _column(rows, "submission")
    columns = [submission] if submission else [c for c in (_column(rows, k) for k in keys) if c]
    if not columns:
        raise ValueError(f"the roster has none of the columns submission, {', '.join(keys)}")
    index: dict[str, set[int]] = {}
    for i, row in enumerate(rows):
        for column in columns:
            for value in filter(None, (v.strip() for v in row.get(column, "").split(";" if submission else "\0"))):
                for key in {value, value.split("@")[0]} if "@" in value else {value}:
                    index.setdefault(key.casefold(), set()).add(i)
        if not submission:  # the names a Moodle or Gradescope download gives (load.platforms.student_keys)
            full = _get(row, "Full name") or " ".join(filter(None, (_get(row, "First name"), _get(row, "Last name"))))
            for key in filter(None, (person(full), _get(row, "Identifier").casefold())):
                index.setdefault(key, set()).add(i)
    for name, record in records:
        students = set().union(*(index.get(n, set()) for n in _names(name, record)))
        if not students:
            found.problems.append(("submission without student", name, "no roster row matches its name"))
        elif len(students) > 1:
            who = ", ".join(_who(rows[i]) for i in sorted(students))
            found.problems.append(("ambiguous submission", name, f"matches several students: {who}"))
        else:
            [i] = students
            if i in found.records:  # the better of two submissions counts; both are listed
                other = found.records[i][0]
                found.problems.append(("second submission", name, f"{_who(rows[i])} also has {other}"))
                if record.score <= found.records[i][1].score:
                    continue
            found.records[i] = (name, record)
            if record.error:
                found.problems.append(("not graded", name, record.error.splitlines()[0][:200]))
    for i, row in enumerate(rows):
        if i not in found.records:
            found.problems.append(("student without submission", _who(row), "their grade cell is left empty"))
    return found


def _who(row: dict[str, str]) -> str:
    names = [_get(row, "Student"), " ".join(filter(None, (_get(row, "First name"), _get(row, "Last name"))))]
    ids = [_get(row, k) for k in ("SIS Login ID", "Email address", "ID number", "ID") if _get(row, k)]
    name = next((n for n in names if n), "")
    ids = ids or ([] if name else [v for v in row.values() if v][:1])  # a plain roster: its first value
    return " ".join(filter(None, [name, f"({ids[0]})" if ids else ""])) or "?"


def _unwritable(found: Match, row: dict[str, str], columns: list[str], lms: str) -> bool:
    """Does `row` name nobody the LMS can find (all of `columns` empty or unusable)? Then it is reported."""
    if any(_identity(row, c) for c in columns):
        return False
    have = ", ".join(h for h in row) or "none"
    found.problems.append(("row not written", _who(row), f"no {' or '.join(columns)} that {lms} can match (the "
                           f"roster's columns: {have}); use the gradebook {lms} exports as the roster"))
    return True


def _score(found: Match, i: int, part: str | None) -> str:
    if i not in found.records:
        return ""  # blank: Canvas and Moodle leave the existing grade alone
    record = found.records[i][1]
    return f"{record.score:g}" if part is None else f"{record.parts.get(part, (0.0, 0.0))[0]:g}"


def _grade_columns(assignment: str, parts: tuple[str, ...]) -> list[tuple[str, str | None]]:
    """The total's column, then one per graded part in `parts` (none: the total only)."""
    return [(assignment, None)] + [(f"{assignment}: {p}", p) for p in parts]


def canvas_csv(found: Match, assignment: str, parts: tuple[str, ...], max_score: float) -> str:
    """Canvas's gradebook layout: the identity columns, then a column per grade, "Points Possible" first."""
    columns = _grade_columns(assignment, parts)
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(CANVAS_STUDENT + [name for name, _ in columns])
    part_max = {p: m for _, r in found.records.values() for p, (_, m) in r.parts.items()}
    writer.writerow(["Points Possible", "", "", "", ""]
                    + [f"{max_score if p is None else part_max.get(p, 0.0):g}" for _, p in columns])
    for i, row in enumerate(found.rows):
        if not _unwritable(found, row, CANVAS_KEYS, "Canvas"):
            writer.writerow([_identity(row, c) if c in CANVAS_KEYS else _get(row, c) for c in CANVAS_STUDENT]
                            + [_score(found, i, p) for _, p in columns])
            found.written += 1
    return buffer.getvalue()


def moodle_csv(found: Match, assignment: str, parts: tuple[str, ...], key: str) -> str:
    """Moodle's grade import: one row per user, the key column (e-mail or ID number) mapped at import time."""
    columns = _grade_columns(assignment, parts)
    identity = MOODLE_STUDENT if MOODLE_KEYS[key] in MOODLE_STUDENT else [*MOODLE_STUDENT, MOODLE_KEYS[key]]
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(identity + [name for name, _ in columns])
    for i, row in enumerate(found.rows):
        if not _unwritable(found, row, [MOODLE_KEYS[key]], "Moodle"):
            writer.writerow([_get(row, c) for c in identity] + [_score(found, i, p) for _, p in columns])
            found.written += 1
    return buffer.getvalue()


def problems_csv(found: Match) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["kind", "name", "detail"])
    writer.writerows(found.problems)
    return buffer.getvalue()


@dataclass
class GradesExport:
    """What `export_grades` wrote and what did not pair up."""

    found: Match
    records: int
    """Records read from the grade folder."""
    unmatched: Path
    """The CSV listing every problem in `found` (written even when there is none)."""


def export_grades(platform: str, graded: Path, roster: Path, out: Path, assignment: str | None = None,
                  parts: bool = False, key: str = "email",
                  notice: Callable[[str], None] | None = None) -> GradesExport:
    """`graded`'s scores as the CSV Canvas ("canvas") or Moodle ("moodle") imports, students matched through `roster`.

    Args:
        assignment: the grade column (default: the roster's column that starts with it, else the assignment's title).
        parts: also one column per graded part.
        key: Moodle's user column, "email" or "idnumber".
        notice: receives what the instructor should know (a Canvas column without an id).

    Raises:
        FileNotFoundError, ValueError, OSError, UnicodeDecodeError: with a message that names the fix.
    """
    from autograder.report.class_overview import read_records

    for path in (graded, roster):
        if not path.exists():
            raise FileNotFoundError(f"{path}: no such file or folder")
    records = read_records(graded)
    if not records:
        raise ValueError(f"{graded} holds no records; run autograder grade --out {graded} first")
    rows = read_roster(roster)
    graded_here = Config().assignment
    assignment = assignment or graded_here.title
    columns = graded_here.graded if parts else ()
    if platform == "canvas":
        found = match(records, rows, CANVAS_KEYS)
        named = [h for h in (rows[0] if rows else {}) if h == assignment or h.startswith(assignment + " (")]
        assignment = named[0] if len(named) == 1 else assignment
        if not re.search(r"\(\d+\)$", assignment) and notice is not None:
            notice(f"note: '{assignment}' has no Canvas id '(1234)': Canvas will create a new assignment")
        maximum = max((r.max_score for _, r in records if r.max_score), default=100.0)
        text = canvas_csv(found, assignment, columns, maximum)
    else:
        found = match(records, rows, [MOODLE_KEYS[key], "Username"])
        text = moodle_csv(found, assignment, columns, key)
    write_atomic(out, text)
    unmatched = out.with_name(out.stem + ".unmatched.csv")
    write_atomic(unmatched, problems_csv(found))
    return GradesExport(found, len(records), unmatched)
