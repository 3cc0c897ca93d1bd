"""Generate the student assignments (nbgrader .ipynb and marimo .py) from the instructor's solutions."""
from __future__ import annotations

from pathlib import Path

import nbformat
from nbformat import NotebookNode
from nbgrader.preprocessors import (
    CheckCellMetadata,
    ClearHiddenTests,
    ClearMarkScheme,
    ClearOutput,
    ClearSolutions,
    ComputeChecksums,
    LockCells,
)

ROOT = Path(__file__).resolve().parent.parent.parent
SOLUTIONS = "solutions"  # one folder per language (en, zh_TW, ...) of nbgrader source notebooks
ASSIGNMENTS = "assignments"  # the same folders; each name.ipynb becomes name.ipynb and name.py (marimo)
ONLY_IN = {".ipynb": "jupyter-only", ".py": "marimo-only"}
"""Cell tags for instructions true in one format only: the other format's file leaves the cell out."""
CODE_STUB = {
    "en": "# YOUR CODE HERE\nraise NotImplementedError()",
    "zh_TW": "# 在這裡寫你的程式碼\nraise NotImplementedError()",
}
"""What replaces a solution region, per language (nbgrader's ClearSolutions.code_stub)."""

# nbgrader's GenerateAssignment pipeline (nbgrader/converters/generate_assignment.py), in its
# order, without the steps that need a course database or a header file (SaveCells,
# IncludeHeaderFooter) and without InstantiateTests (no `### AUTOTEST` cells here).
# ClearHiddenTests runs after the first ComputeChecksums, and checksums are computed again after it.
STUDENT_PIPELINE = (
    LockCells,
    ClearSolutions,
    ClearOutput,
    CheckCellMetadata,
    ComputeChecksums,
    ClearHiddenTests,
    ClearMarkScheme,
    ComputeChecksums,
    CheckCellMetadata,
)


def student_notebook(source: NotebookNode, lang: str = "en") -> NotebookNode:
    """Return the student version of an nbgrader source notebook (the argument is left untouched)."""
    nb = nbformat.from_dict(source)  # deep copy: the preprocessors work in place
    resources: dict = {}
    for step in STUDENT_PIPELINE:
        options = {"code_stub": {"python": CODE_STUB.get(lang, CODE_STUB["en"])}} if step is ClearSolutions else {}
        nb, resources = step(**options).preprocess(nb, resources)
    return nb


def for_format(nb: NotebookNode, suffix: str) -> NotebookNode:
    """The notebook without the cells whose instructions hold only in the other format."""
    other = {tag for kind, tag in ONLY_IN.items() if kind != suffix}
    kept = nbformat.from_dict(nb)
    kept.cells = [cell for cell in nb.cells if not other & set(cell.metadata.get("tags", []))]
    return kept


def notebook_text(nb: NotebookNode) -> str:
    """Serialise a notebook the way Jupyter does (sorted keys, one-space indent, final newline)."""
    text = nbformat.writes(nb)
    return text if text.endswith("\n") else text + "\n"


def to_marimo(nb: NotebookNode) -> str:
    """Convert a Jupyter notebook to the source of a marimo notebook with marimo's own converter.

    This is the call `marimo convert` makes (marimo/_cli/convert/commands.py); marimo has no public
    Python API for it. The output records the marimo version (`__generated_with`), so upgrading
    marimo makes `build --check` report the marimo files stale until they are rebuilt.
    """
    from marimo._convert.converters import MarimoConvert

    return MarimoConvert.from_ipynb(notebook_text(nb)).to_py()


def render(source_path: Path) -> dict[str, str]:
    """Generated files for one source notebook: {file suffix: text}."""
    student = student_notebook(nbformat.read(source_path, as_version=4), source_path.parent.name)
    return {".ipynb": notebook_text(for_format(student, ".ipynb")), ".py": to_marimo(for_format(student, ".py"))}


def planned(solutions: Path, handouts: Path) -> dict[Path, str]:
    """Every file `handouts` should contain, mapped to its expected text."""
    files = {}
    for source in sorted(solutions.glob("*/*.ipynb")):
        if source.parent.name.startswith("."):
            continue
        target = handouts / source.parent.name / source.stem
        for suffix, text in render(source).items():
            files[target.with_suffix(suffix)] = text
    return files


def orphans(handouts: Path, expected: dict[Path, str]) -> list[Path]:
    """Generated-looking files in `handouts` whose source notebook no longer exists."""
    found = [
        path
        for pattern in ("*/*.ipynb", "*/*.py")
        for path in handouts.glob(pattern)
        if not path.parent.name.startswith(".")
    ]
    return sorted(path for path in found if path not in expected)


def build(check: bool = False, root: Path = ROOT, solutions: Path | None = None,
          handouts: Path | None = None) -> list[Path]:
    """Regenerate the handouts (root/assignments/) from the solutions (root/solutions/) and return the files that
    were (or, with check, would be) changed.

    With check=True nothing is written; a non-empty result means the handouts are stale: a file is
    missing, differs from what its source generates, or has no source any more.
    """
    root = Path(root)
    solutions, handouts = solutions or root / SOLUTIONS, handouts or root / ASSIGNMENTS
    expected = planned(solutions, handouts)
    stale = [
        path
        for path, text in expected.items()
        if not path.is_file() or path.read_text(encoding="utf-8") != text
    ]
    leftovers = orphans(handouts, expected)
    if not check:
        for path in stale:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(expected[path], encoding="utf-8", newline="\n")
        for path in leftovers:
            path.unlink()
    return sorted(stale + leftovers)
