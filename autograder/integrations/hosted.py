"""What the hosted graders (Gradescope, PrairieLearn) share: the kit they ship, the upload to grade, one grade."""
from __future__ import annotations

import ast
import os
import traceback
from dataclasses import dataclass
from pathlib import Path

from autograder.assignment import Assignment
from autograder.config import Config
from autograder.i18n import t
from autograder.load.discover import SUFFIXES
from autograder.record import SubmissionResult


def _assignment(given: Assignment | None) -> Assignment:
    """`given`, else the one this process grades (AUTOGRADER_ASSIGNMENT's, else the kit's default)."""
    return given or Config().assignment


def kit_files(root: Path) -> list[Path]:
    """The files a grader image needs: the package (checks included), the solutions, the project file."""
    files = [root / "pyproject.toml", root / "README.md"]
    for folder in ("autograder", "solutions"):
        for path in sorted((root / folder).rglob("*")):
            relative = path.relative_to(root)
            if path.is_file() and "__pycache__" not in relative.parts and not any(
                    p.startswith(".") for p in relative.parts) and path.suffix not in (".pyc", ".pyo"):
                files.append(path)
    return files


MANIFEST = "assignment.json"
"""Beside the exported kit: which of its assignments it grades, and where that one's solutions lie in the kit."""


def in_checkout(assignment: Assignment, kind: str) -> Path:
    """Where the assignment's "solutions" or "handouts" lie relative to the checkout it belongs to (an assignment
    is autograder/chapters/<name>/ of a checkout; the export copies the checkout's files, not its paths).

    Raises:
        FileNotFoundError: the assignment is not one of a checkout's chapters, or the folder lies outside it.
    """
    checkout = assignment.folder.parents[2]
    folder = getattr(assignment, kind)
    if assignment.folder.parent.name != "chapters" or folder is None or not folder.is_relative_to(checkout):
        raise FileNotFoundError(f"{assignment.folder}: only an assignment in a checkout's autograder/chapters/, "
                                f"with its {kind} in that checkout, can be exported")
    return folder.relative_to(checkout)


def manifest(assignment: Assignment) -> dict:
    """What an export records in MANIFEST: the assignment's folder name under autograder/chapters/ and its
    solutions folder relative to the checkout."""
    return {"assignment": assignment.folder.name, "solutions": in_checkout(assignment, "solutions").as_posix()}


def graded_in(source: Path) -> tuple[Assignment | None, Path]:
    """The exported kit at `source`: the assignment it grades (None: the default, an export without MANIFEST)
    and its solutions folder."""
    from autograder.assignment import CHAPTERS, load

    path = source / MANIFEST
    if not path.is_file():
        return None, source / "solutions"
    import json

    found = json.loads(path.read_text(encoding="utf-8"))
    return load(CHAPTERS / found["assignment"]), source / found["solutions"]


def require_checkout(root: Path, *more: Path, assignment: Assignment | None = None) -> None:
    """Refuse to export from anywhere but the kit's checkout (an installed kit has no solutions/)."""
    assignment = _assignment(assignment)
    reference = assignment.notebook_in(root / in_checkout(assignment, "solutions"))
    missing = [p for p in (root / "pyproject.toml", reference, *more) if not p.is_file()]
    if missing:
        raise FileNotFoundError(f"{missing[0]} is missing; run the export from the kit's repository checkout")


def torch_version(given: str | None = None) -> str:
    """The torch release the image installs: `given`, else this environment's (without a local build tag)."""
    if given is not None:
        return given
    import torch

    return torch.__version__.split("+")[0]


def lock(*folders: Path) -> None:
    """Without bubblewrap the student's worker still drops root: keep the solutions and the results out of reach."""
    if os.geteuid() != 0:
        return
    for folder in folders:
        folder.mkdir(parents=True, exist_ok=True)
        folder.chmod(0o700)


def part_lines(record: SubmissionResult, assignment: Assignment | None = None) -> list[str]:
    """One line per graded part: its name and points, in the notebook's order."""
    parts = record.parts
    return [f"{name:<28} {parts[name][0]:>5g} / {parts[name][1]:g}" for name in _assignment(assignment).graded
            if name in parts]


def _candidates(folder: Path) -> list[Path]:
    return [
        p for p in sorted(folder.rglob("*"))
        if p.is_file() and p.suffix.lower() in SUFFIXES
        and not any(part.startswith(".") or part == "__pycache__" for part in p.relative_to(folder).parts)
    ]


def _preference(folder: Path, path: Path, stem: str) -> tuple:
    """The assignment's own name (`stem`) first, notebooks before .py files, shallow before deep."""
    return (path.stem != stem, path.suffix.lower() != ".ipynb", len(path.relative_to(folder).parts),
            str(path))


def implemented(path: Path, graded: tuple[str, ...]) -> int:
    """How many of the `graded` names the file defines without `raise NotImplementedError` (read, never run)."""
    from autograder.load.submission import load_submission

    try:
        chunks = load_submission(path).chunks
    except Exception:  # noqa: BLE001 - an unreadable file has nothing implemented; grading says why
        return 0
    done = set()
    for chunk in chunks:
        try:
            tree = ast.parse(chunk.code)
        except SyntaxError:
            continue
        for node in tree.body:
            if isinstance(node, (ast.FunctionDef, ast.ClassDef)) and node.name in graded:
                stub = any(isinstance(n, ast.Raise) and "NotImplementedError" in ast.unparse(n) for n in ast.walk(node))
                (done.discard if stub else done.add)(node.name)
    return len(done)


def pick_submission(folder: Path, assignment: Assignment | None = None) -> tuple[Path | None, str]:
    """The file to grade among the uploaded ones, and why, for the result ("" when only one was uploaded).

    The file the student worked on: the most graded names implemented, then the newest, then the
    assignment's own name (notebooks before .py files).
    """
    assignment = _assignment(assignment)
    candidates = _candidates(folder)
    if len(candidates) < 2:
        return (candidates[0] if candidates else None), ""
    counts = {path: implemented(path, assignment.graded) for path in candidates}
    rank = {path: (counts[path], path.stat().st_mtime) for path in candidates}
    top = max(rank.values())
    best = min((p for p in candidates if rank[p] == top), key=lambda p: _preference(folder, p, assignment.notebook))
    others = ", ".join(f"{p.relative_to(folder).as_posix()} {counts[p]}" for p in candidates if p != best)
    shown = best.relative_to(folder).as_posix()
    if counts[best] > max(counts[p] for p in candidates if p != best):
        why = t("gradescope.picked_implemented", "en", file=shown, count=len(candidates), done=counts[best],
                total=len(assignment.graded), others=others)
    elif any(p.stat().st_mtime < best.stat().st_mtime for p in candidates if counts[p] == counts[best]):
        why = t("gradescope.picked_newest", "en", file=shown, count=len(candidates), done=counts[best],
                total=len(assignment.graded))
    else:
        why = t("gradescope.picked_name", "en", file=shown, count=len(candidates))
    return best, why


def find_submission(folder: Path, assignment: Assignment | None = None) -> Path | None:
    """The notebook to grade among the uploaded files (see pick_submission)."""
    return pick_submission(folder, assignment)[0]


@dataclass(frozen=True)
class Graded:
    """What became of one upload: the file picked and why, and its record (None: no file, or the kit failed)."""

    shown: str | None
    """The picked file, relative to the upload folder; None when the upload holds no notebook or .py file."""
    why: str = ""
    """Why this file, when there were several (pick_submission)."""
    record: SubmissionResult | None = None
    """None with a file: grading it raised (the traceback went to stderr, the instructor's log)."""


def grade_upload(folder: Path, solutions: Path, assignment: Assignment | None = None) -> Graded:
    """Pick the upload's file and grade it as `autograder grade` would, in this process: a container holds
    one submission, so no pool of judges. `assignment`: None for the default."""
    from autograder.pipeline import grade, sandboxed
    from autograder.sources import File

    config = Config(solutions=solutions, jobs=1, **({"assignment": assignment} if assignment else {}))
    path, why = pick_submission(folder, config.assignment)
    if path is None:
        return Graded(None)
    shown = path.relative_to(folder).as_posix()
    try:
        return Graded(shown, why, grade(File(path), config, sandboxed(config)))
    except Exception:  # noqa: BLE001 - still one result: the platform shows a bare failure otherwise
        traceback.print_exc()
        return Graded(shown, why)
