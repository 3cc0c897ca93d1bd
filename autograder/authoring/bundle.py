"""The student bundle: assignments and the self-check with visible checks only, no solutions."""
from __future__ import annotations

import ast
import json
import re
import time
import zipfile
from pathlib import Path

from autograder.assignment import Assignment
from autograder.config import ROOT, Config

STUDENT_ENTRY_POINTS = ("__init__.py", "__main__.py", "cli.py", "api.py", "integrations/selfcheck.py",
                        "report/feedback_page.py")
"""What a student runs: `check(...)` in a notebook, `autograder check [--html]`. With the assignment's checks (which
the judge loads as a folder) and its self-check explainer (which the pipeline imports by the name the assignment
gives), these and the modules they import are the bundle's code; nothing else ships."""
DISPATCHERS = ("cli.py", "api.py")
"""Their commands (functions) import their modules when run; a command whose module does not ship is not offered.
The self-check's own modules ship because the entry points above import them at module level."""
NEVER_SHIPPED = ("authoring", "batch")
"""Folders of the instructor's side (building, the batch pool), and the package of the assignment's explainer (the
diagnosis with its catalogue of solution edits). The bundle refuses to build when the self-check's imports reach
one of them."""
WHOLE_FOLDERS = ("sandbox/inside",)
"""Folders that ship whole once their parent package ships: the sandbox's code is started by folder
(`python -m inside.zygote`), not imported."""
DATA_FOLDERS = ("report/templates",)
"""Folders of files that are not code and ship whole once their parent package ships: the templates of the pages
the self-check renders (its checklist in a notebook, `autograder check --html`)."""
OPTIONAL = ("ImportError", "ModuleNotFoundError")


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


def _catches_import_error(node: ast.Try) -> bool:
    names = []
    for handler in node.handlers:
        kinds = handler.type.elts if isinstance(handler.type, ast.Tuple) else [handler.type]
        names += [getattr(kind, "id", "") for kind in kinds]
    return any(name in OPTIONAL for name in names)


def _imports(tree: ast.AST, package: str, top_level_only: bool) -> set[str]:
    """Modules of `package` that the code needs: its imports (not the optional ones, guarded by
    `except ImportError`) and the modules it starts with `python -m package.name`."""
    found: set[str] = set()

    def visit(node: ast.AST, in_function: bool) -> None:
        if isinstance(node, ast.Try) and _catches_import_error(node):
            for child in node.handlers + node.orelse + node.finalbody:
                visit(child, in_function)
            return
        if in_function and top_level_only:
            return
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
        elif isinstance(node, (ast.List, ast.Tuple)):
            values = [e.value if isinstance(e, ast.Constant) else None for e in node.elts]
            found.update(v for m, v in zip(values, values[1:]) if m == "-m" and isinstance(v, str))
        inside = in_function or isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
        for child in ast.iter_child_nodes(node):
            visit(child, inside)

    visit(tree, False)
    return {name for name in found if name == package or name.startswith(package + ".")}


def _module_file(package_dir: Path, module: str) -> Path | None:
    """The file of `package.a.b` (a module or a subpackage), None for a name that is not a module."""
    parts = module.split(".")[1:]
    candidates = [package_dir.joinpath(*parts, "__init__.py")] + ([package_dir.joinpath(*parts).with_suffix(".py")]
                                                                   if parts else [])
    return next((path for path in candidates if path.is_file()), None)


class LeakError(RuntimeError):
    """The self-check's imports reach a folder that never ships to students."""


def _module_folder(package_dir: Path, spec: str) -> Path | None:
    """The folder of the module an assignment names ("package.module:Class"), inside the kit's package."""
    parts = spec.partition(":")[0].split(".")
    return package_dir.joinpath(*parts[1:-1]) if len(parts) > 2 and parts[0] == package_dir.name else None


def student_modules(package_dir: Path, assignment: Assignment) -> list[Path]:
    """The package's files a student needs: the entry points, the assignment's checks and self-check explainer,
    what they import, the packages' `__init__.py` files and the folders that ship whole; never a module of
    NEVER_SHIPPED or of the assignment's explainer's package."""
    todo = [package_dir / name for name in STUDENT_ENTRY_POINTS] + sorted(assignment.checks.glob("*.py"))
    explainer = _module_file(package_dir, assignment.self_explainer.partition(":")[0]) if assignment.self_explainer \
        else None
    todo += [explainer] if explainer is not None else []
    seen: set[Path] = set()
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen.add(path)
        for folder in path.relative_to(package_dir).parents:
            init = package_dir / folder / "__init__.py"
            if folder != Path(".") and init.is_file():
                todo.append(init)
            if folder.as_posix() in WHOLE_FOLDERS:
                todo += sorted((package_dir / folder).glob("*.py"))
        for whole in WHOLE_FOLDERS:
            if path == package_dir / Path(whole).parent / "__init__.py":
                todo += sorted((package_dir / whole).glob("*.py"))
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for module in _imports(tree, package_dir.name, top_level_only=path.name in DISPATCHERS
                               and path.parent == package_dir):
            found = _module_file(package_dir, module)
            if found is not None:
                todo.append(found)
    private = [package_dir / name for name in NEVER_SHIPPED]
    private += [f for f in (_module_folder(package_dir, assignment.explainer),) if f is not None]
    barred = [p for p in seen if any(p.is_relative_to(folder) for folder in private)]
    if barred:
        raise LeakError("the student self-check imports instructor-only modules: "
                        + ", ".join(p.relative_to(package_dir).as_posix() for p in sorted(barred)))
    return sorted(seen)


def student_readme(readme: str) -> str:
    """The README's introduction and student section: nothing written for instructors."""
    sections = readme.split("\n## ")
    keep = [sections[0]] + [s for s in sections[1:] if s.startswith("For students")]
    return "\n## ".join(keep).rstrip() + "\n"


STUDENT_README_ZH = Path(__file__).parent / "README.zh_TW.md"
"""The student section of the README in Traditional Chinese, for the bundle (README.zh_TW.md there)."""
STUDENT_BUILD = """[build-system]
# flit_core builds the wheel straight from this folder: `pip install .` leaves no build/ or *.egg-info here
requires = ["flit_core>=3.9,<5"]
build-backend = "flit_core.buildapi"
"""
STUDENT_TABLES = ("project", "project.scripts")
"""The tables of pyproject.toml the bundle keeps: no instructor extras, no tool settings."""


def student_pyproject(pyproject: str) -> str:
    """The bundle's pyproject.toml: the project and its command, built by flit_core (module `autograder`)."""
    tables = re.split(r"\n(?=\[)", pyproject)
    kept = [table.rstrip() + "\n" for table in tables if table[1:].split("]")[0] in STUDENT_TABLES]
    return "\n".join([STUDENT_BUILD, *kept, '[tool.flit.module]\nname = "autograder"\n'])


def _add(archive: zipfile.ZipFile, name: str, data: str | bytes) -> None:
    """One member, readable by everyone who unpacks it (0644), whatever the umask of the checkout."""
    info = zipfile.ZipInfo(name, date_time=time.localtime()[:6])
    info.external_attr = 0o100644 << 16
    info.compress_type = zipfile.ZIP_DEFLATED
    archive.writestr(info, data)


def _without_hidden(path: Path, hidden: set[str]) -> str:
    """A message catalogue without the titles of the hidden checks."""
    messages = json.loads(path.read_text(encoding="utf-8"))
    kept = {k: v for k, v in messages.items() if k.removeprefix("check.") not in hidden}
    return json.dumps(kept, ensure_ascii=False, indent=1, sort_keys=True)


def student_bundle(out: Path, root: Path = ROOT, assignment: Assignment | None = None) -> list[str]:
    """Write the zip at `out`; returns the names it contains. `assignment`: one inside the kit's package
    (default: the one graded here)."""
    root = Path(root).resolve()
    package = root / "autograder"
    assignment = assignment or Config().assignment
    if not assignment.folder.is_relative_to(package):
        raise ValueError(f"{assignment.folder}: the student bundle ships assignments inside the kit's package "
                         f"({package / 'chapters'}) only")
    hidden: set[str] = set()
    for path in assignment.checks.glob("test_*.py"):
        hidden |= {n.name for n in ast.parse(path.read_text(encoding="utf-8")).body if _is_hidden_check(n)}
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        def copy(path: Path) -> None:
            _add(archive, path.relative_to(root).as_posix(), path.read_bytes())

        handouts = assignment.handouts or root / "assignments"
        for path in sorted(handouts.rglob("*")):  # as assignments/<lang>/..., whatever the folder's name
            if path.is_file():
                _add(archive, "assignments/" + path.relative_to(handouts).as_posix(), path.read_bytes())
        modules = student_modules(package, assignment)
        for path in modules:
            if path.parent == assignment.checks and path.name.startswith("test_"):
                _add(archive, path.relative_to(root).as_posix(), visible_only(path.read_text(encoding="utf-8")))
            else:
                copy(path)
        for path in (assignment.folder / "assignment.toml", assignment.stand_ins):  # data the judge reads
            if path.is_file():
                copy(path)
        _add(archive, "autograder/chapters/default", assignment.folder.name + "\n")  # what this copy grades
        for path in sorted(assignment.folder.glob("locales/*.json")):  # its check titles, the hidden ones left out
            _add(archive, path.relative_to(root).as_posix(), _without_hidden(path, hidden))
        for folder in DATA_FOLDERS:
            if package / Path(folder).parent / "__init__.py" in modules:
                for path in sorted(p for p in (package / folder).iterdir() if p.is_file()):
                    copy(path)
        for path in sorted((package / "locales").glob("*.json")):  # titles of hidden checks stay behind too
            _add(archive, path.relative_to(root).as_posix(), _without_hidden(path, hidden))
        _add(archive, "pyproject.toml", student_pyproject((root / "pyproject.toml").read_text(encoding="utf-8")))
        _add(archive, "README.md", student_readme((root / "README.md").read_text(encoding="utf-8")))
        _add(archive, "README.zh_TW.md", STUDENT_README_ZH.read_text(encoding="utf-8"))
        return archive.namelist()
