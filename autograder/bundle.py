"""The student bundle: assignments and the self-check with visible checks only, no solutions."""
from __future__ import annotations

import ast
import json
import zipfile
from pathlib import Path

from autograder.config import ROOT

# Modules students never need: they read the solutions or exist for the instructor.
INSTRUCTOR_ONLY = {"build.py", "bundle.py", "nbgrader.py", "batch.py", "grading.py"}


def _is_hidden_check(node: ast.stmt) -> bool:
    if not isinstance(node, ast.FunctionDef):
        return False
    for decorator in node.decorator_list:
        if isinstance(decorator, ast.Call) and getattr(decorator.func, "id", "") == "check":
            for keyword in decorator.keywords:
                if keyword.arg == "hidden" and isinstance(keyword.value, ast.Constant) and keyword.value.value:
                    return True
    return False


def visible_only(source: str) -> str:
    """A check file without its hidden checks."""
    tree = ast.parse(source)
    tree.body = [node for node in tree.body if not _is_hidden_check(node)]
    return ast.unparse(tree) + "\n"


def student_readme(readme: str) -> str:
    """The README's introduction and student section: nothing written for instructors."""
    sections = readme.split("\n## ")
    keep = [sections[0]] + [s for s in sections[1:] if s.startswith("For students")]
    return "\n## ".join(keep).rstrip() + "\n"


def student_bundle(out: Path, root: Path = ROOT) -> list[str]:
    """Write the zip at `out`; returns the names it contains."""
    package = root / "autograder"
    hidden: set[str] = set()
    for path in (package / "checks").glob("test_*.py"):
        hidden |= {n.name for n in ast.parse(path.read_text(encoding="utf-8")).body if _is_hidden_check(n)}
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in sorted((root / "assignments").rglob("*")):
            if path.is_file():
                archive.write(path, path.relative_to(root).as_posix())
        for path in sorted(package.rglob("*")):
            relative = path.relative_to(root).as_posix()
            if not path.is_file() or "__pycache__" in relative or path.name in INSTRUCTOR_ONLY:
                continue
            if path.parent.name == "checks" and path.name.startswith("test_"):
                archive.writestr(relative, visible_only(path.read_text(encoding="utf-8")))
            elif path.parent.name == "locales":  # titles of hidden checks stay behind too
                messages = json.loads(path.read_text(encoding="utf-8"))
                kept = {k: v for k, v in messages.items() if k.removeprefix("check.") not in hidden}
                archive.writestr(relative, json.dumps(kept, ensure_ascii=False, indent=1, sort_keys=True))
            else:
                archive.write(path, relative)
        archive.write(root / "pyproject.toml", "pyproject.toml")
        archive.writestr("README.md", student_readme((root / "README.md").read_text(encoding="utf-8")))
        return archive.namelist()
