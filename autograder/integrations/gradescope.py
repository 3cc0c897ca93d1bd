"""Gradescope: the autograder zip (`autograder export gradescope`) and the grading run inside its container."""
from __future__ import annotations

import json
import os
import sys
import time
import traceback
import zipfile
from dataclasses import asdict, dataclass
from pathlib import Path

from autograder.assignment import GRADED, NOTEBOOK_STEM
from autograder.config import ROOT, Config, environment
from autograder.i18n import t
from autograder.load.discover import SUFFIXES
from autograder.report.records import SubmissionResult, write_atomic

VISIBILITIES = ("visible", "hidden", "after_due_date", "after_published")
TEMPLATES = "autograder.integrations"
"""Whose templates/ folder holds setup.sh and run_autograder."""


@dataclass(frozen=True)
class GradescopeSettings:
    """What students see on Gradescope; written into the zip as gradescope.json."""

    hidden_checks: str = "hidden"
    """Visibility of the hidden checks: "hidden" (never), "after_due_date" or "after_published"."""
    visible_checks: str = "visible"
    """Visibility of the checks students also run in their notebook."""
    stdout_visibility: str = "hidden"
    """The grader's log (/autograder/results/stdout) is for the instructor."""

    def __post_init__(self) -> None:
        for name, value in asdict(self).items():
            if value not in VISIBILITIES:
                raise ValueError(f"{name}={value!r}: choose one of {', '.join(VISIBILITIES)}")


def _kit_files(root: Path) -> list[Path]:
    """The files the container needs: the package (checks included), the solutions, the project file."""
    files = [root / "pyproject.toml", root / "README.md"]
    for folder in ("autograder", "solutions"):
        for path in sorted((root / folder).rglob("*")):
            relative = path.relative_to(root)
            if path.is_file() and "__pycache__" not in relative.parts and not any(
                    p.startswith(".") for p in relative.parts) and path.suffix not in (".pyc", ".pyo"):
                files.append(path)
    return files


def _add_script(archive: zipfile.ZipFile, name: str, text: str) -> None:
    info = zipfile.ZipInfo(name, date_time=(2020, 1, 1, 0, 0, 0))
    info.external_attr = (0o100755 << 16)  # executable: Gradescope runs them directly
    info.compress_type = zipfile.ZIP_DEFLATED
    archive.writestr(info, text)


def export(out: Path, settings: GradescopeSettings = GradescopeSettings(), root: Path = ROOT,
           torch_version: str | None = None) -> list[str]:
    """Write Gradescope's autograder zip at `out`; returns the names it contains.

    Gradescope unpacks it into /autograder/source, runs setup.sh once, then run_autograder per submission.
    """
    missing = [p for p in (root / "pyproject.toml", root / "solutions" / "en" / "ch03_attention.ipynb")
               if not p.is_file()]
    if missing:
        raise FileNotFoundError(f"{missing[0]} is missing; run the export from the kit's repository checkout")
    if torch_version is None:
        import torch

        torch_version = torch.__version__.split("+")[0]
    from autograder.report.render import render  # the export's only: the run in the container renders nothing

    out.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        _add_script(archive, "setup.sh", render("setup.sh.j2", package=TEMPLATES, torch=torch_version))
        _add_script(archive, "run_autograder", render("run_autograder.j2", package=TEMPLATES))
        archive.writestr("gradescope.json", json.dumps(asdict(settings), indent=1) + "\n")
        for path in _kit_files(root):
            archive.write(path, path.relative_to(root).as_posix())
        return archive.namelist()


def _candidates(folder: Path) -> list[Path]:
    return [
        p for p in sorted(folder.rglob("*"))
        if p.is_file() and p.suffix.lower() in SUFFIXES
        and not any(part.startswith(".") or part == "__pycache__" for part in p.relative_to(folder).parts)
    ]


def _preference(folder: Path, path: Path) -> tuple:
    """ch03_attention.* first, notebooks before .py files, shallow before deep."""
    return (path.stem != NOTEBOOK_STEM, path.suffix.lower() != ".ipynb", len(path.relative_to(folder).parts),
            str(path))


def implemented(path: Path) -> int:
    """How many graded names the file defines without `raise NotImplementedError` (read, never run)."""
    import ast

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
            if isinstance(node, (ast.FunctionDef, ast.ClassDef)) and node.name in GRADED:
                stub = any(isinstance(n, ast.Raise) and "NotImplementedError" in ast.unparse(n) for n in ast.walk(node))
                (done.discard if stub else done.add)(node.name)
    return len(done)


def pick_submission(folder: Path) -> tuple[Path | None, str]:
    """The file to grade among the uploaded ones, and why, for the result ("" when only one was uploaded).

    The file the student worked on: the most graded names implemented, then the newest, then the
    assignment's own name (notebooks before .py files).
    """
    candidates = _candidates(folder)
    if len(candidates) < 2:
        return (candidates[0] if candidates else None), ""
    counts = {path: implemented(path) for path in candidates}
    rank = {path: (counts[path], path.stat().st_mtime) for path in candidates}
    top = max(rank.values())
    best = min((p for p in candidates if rank[p] == top), key=lambda p: _preference(folder, p))
    others = ", ".join(f"{p.relative_to(folder).as_posix()} {counts[p]}" for p in candidates if p != best)
    shown = best.relative_to(folder).as_posix()
    if counts[best] > max(counts[p] for p in candidates if p != best):
        why = t("gradescope.picked_implemented", "en", file=shown, count=len(candidates), done=counts[best],
                total=len(GRADED), others=others)
    elif any(p.stat().st_mtime < best.stat().st_mtime for p in candidates if counts[p] == counts[best]):
        why = t("gradescope.picked_newest", "en", file=shown, count=len(candidates), done=counts[best],
                total=len(GRADED))
    else:
        why = t("gradescope.picked_name", "en", file=shown, count=len(candidates))
    return best, why


def find_submission(folder: Path) -> Path | None:
    """The notebook to grade among the uploaded files (see pick_submission)."""
    return pick_submission(folder)[0]


def _summary(record: SubmissionResult, shown: str) -> str:
    lines = [f"Graded {shown}: {record.score:g} / {record.max_score:g} points."]
    if record.error:
        lines.append(record.error)
    if record.output:
        lines.append(record.output)
    parts = record.parts
    if parts:
        lines.append("")
        lines += [f"{name:<28} {parts[name][0]:>5g} / {parts[name][1]:g}" for name in GRADED if name in parts]
    return "\n".join(lines)


def to_gradescope(record: SubmissionResult, shown: str, settings: GradescopeSettings) -> dict:
    """A kit record as Gradescope's results.json: only the keys Gradescope documents."""
    order = list(GRADED)
    counters: dict[str, int] = {}
    tests = []
    for check in record.tests:
        counters[check.part] = counters.get(check.part, 0) + 1
        part_number = order.index(check.part) + 1 if check.part in order else len(order) + 1
        tests.append({
            "score": check.score,
            "max_score": check.max_score,
            "status": "passed" if check.status == "passed" else "failed",
            "name": check.name,
            "number": f"{part_number}.{counters[check.part]}",
            "output": check.output,
            "tags": list(check.tags),
            "visibility": settings.hidden_checks if check.visibility == "hidden" else settings.visible_checks,
        })
    return {
        "score": record.score,
        "execution_time": round(record.execution_time, 3),
        "output": _summary(record, shown),
        "visibility": "visible",
        "stdout_visibility": settings.stdout_visibility,
        "tests": tests,
        "extra_data": {
            "submission": shown, "max_score": record.max_score, "language": record.language,
            "isolation": record.isolation, "sha256": record.sha256, "error": record.error,
            "parts": {k: {"score": s, "max_score": m} for k, (s, m) in record.parts.items()},
        },
    }


def _failure(message: str, started: float) -> dict:
    return {"score": 0.0, "execution_time": round(time.monotonic() - started, 3), "output": message,
            "visibility": "visible", "stdout_visibility": "hidden", "tests": [], "extra_data": {}}


def _lock(*folders: Path) -> None:
    """Without bubblewrap the student's worker still drops root: keep the solutions and results.json out of reach."""
    if os.geteuid() != 0:
        return
    for folder in folders:
        folder.mkdir(parents=True, exist_ok=True)
        folder.chmod(0o700)


def grade_one(path: Path, solutions: Path) -> SubmissionResult:
    """One uploaded file graded as `autograder grade` would, in this process: a container holds one submission,
    so no pool of judges (shared with the PrairieLearn run)."""
    from autograder.pipeline import grade_file

    return grade_file(path, Config(solutions=solutions, jobs=1))


def run(root: Path) -> dict:
    """Grade root/submission and write root/results/results.json; returns what was written."""
    started = time.monotonic()
    source = root / "source"
    settings_file = source / "gradescope.json"
    settings = GradescopeSettings(**json.loads(settings_file.read_text())) if settings_file.is_file() \
        else GradescopeSettings()
    _lock(source, root / "results")
    path, why = pick_submission(root / "submission")
    if path is None:
        results = _failure("No .ipynb or .py file was found in your submission. Upload your notebook "
                           "ch03_attention.ipynb (or the marimo file ch03_attention.py) and submit again.", started)
    else:
        shown = path.relative_to(root / "submission").as_posix()
        try:
            results = to_gradescope(grade_one(path, source / "solutions"), shown, settings)
            if why:
                results["output"] = why + "\n\n" + results["output"]
                results["extra_data"]["picked"] = why
        except Exception:  # noqa: BLE001 - still one result: Gradescope shows a bare failure otherwise
            traceback.print_exc()
            results = _failure(f"The autograder could not grade {shown}; your instructor can see why in the "
                               "autograder output. Please tell them.", started)
    write_atomic(root / "results" / "results.json", json.dumps(results, ensure_ascii=False, indent=1))
    print(results["output"])
    return results


if __name__ == "__main__":
    run(Path(sys.argv[1]) if len(sys.argv) > 1 else environment().root or Path("/autograder"))
