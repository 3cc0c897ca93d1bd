"""Gradescope: the autograder zip (`autograder export gradescope`) and the grading run inside its container."""
from __future__ import annotations

import json
import sys
import time
import zipfile
from dataclasses import asdict, dataclass
from pathlib import Path

from autograder.assignment import Assignment
from autograder.config import ROOT, Config, environment
from autograder.integrations import hosted
from autograder.integrations.hosted import (  # noqa: F401 - find_submission, pick_submission: kept names
    find_submission,
    grade_upload,
    kit_files,
    lock,
    part_lines,
    pick_submission,
    require_checkout,
)
from autograder.record import SubmissionResult
from autograder.report.records import write_atomic

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
    assignment = Config().assignment
    require_checkout(root, assignment=assignment)
    chosen = hosted.manifest(assignment)
    torch_version = hosted.torch_version(torch_version)
    from autograder.report.render import render  # the export's only: the run in the container renders nothing

    out.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        _add_script(archive, "setup.sh", render("setup.sh.j2", package=TEMPLATES, torch=torch_version))
        _add_script(archive, "run_autograder", render("run_autograder.j2", package=TEMPLATES))
        archive.writestr("gradescope.json", json.dumps(asdict(settings), indent=1) + "\n")
        archive.writestr(hosted.MANIFEST, json.dumps(chosen, indent=1) + "\n")
        for path in kit_files(root):
            archive.write(path, path.relative_to(root).as_posix())
        return archive.namelist()


def _summary(record: SubmissionResult, shown: str, assignment: Assignment) -> str:
    lines = [f"Graded {shown}: {record.score:g} / {record.max_score:g} points."]
    if record.error:
        lines.append(record.error)
    if record.output:
        lines.append(record.output)
    if record.parts:
        lines += ["", *part_lines(record, assignment)]
    return "\n".join(lines)


def to_gradescope(record: SubmissionResult, shown: str, settings: GradescopeSettings,
                  assignment: Assignment | None = None) -> dict:
    """A kit record as Gradescope's results.json: only the keys Gradescope documents."""
    assignment = assignment or Config().assignment
    order = list(assignment.graded)
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
        "output": _summary(record, shown, assignment),
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


def run(root: Path) -> dict:
    """Grade root/submission and write root/results/results.json; returns what was written."""
    started = time.monotonic()
    source = root / "source"
    settings_file = source / "gradescope.json"
    settings = GradescopeSettings(**json.loads(settings_file.read_text())) if settings_file.is_file() \
        else GradescopeSettings()
    lock(source, root / "results")
    assignment, solutions = hosted.graded_in(source)
    assignment = assignment or Config().assignment
    graded = grade_upload(root / "submission", solutions, assignment)
    if graded.shown is None:
        stem = assignment.notebook
        results = _failure("No .ipynb or .py file was found in your submission. Upload your notebook "
                           f"{stem}.ipynb (or the marimo file {stem}.py) and submit again.", started)
    elif graded.record is None:
        results = _failure(f"The autograder could not grade {graded.shown}; your instructor can see why in the "
                           "autograder output. Please tell them.", started)
    else:
        results = to_gradescope(graded.record, graded.shown, settings, assignment)
        if graded.why:
            results["output"] = graded.why + "\n\n" + results["output"]
            results["extra_data"]["picked"] = graded.why
    write_atomic(root / "results" / "results.json", json.dumps(results, ensure_ascii=False, indent=1))
    print(results["output"])
    return results


if __name__ == "__main__":
    run(Path(sys.argv[1]) if len(sys.argv) > 1 else environment().root or Path("/autograder"))
