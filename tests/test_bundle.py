"""The student bundle holds the assignments and the visible self-check, and nothing secret."""
from __future__ import annotations

import os
import re
import subprocess
import sys
import venv
import zipfile

import nbformat
import pytest

from autograder.assignment import load
from autograder.chapters.ch03_attention.explain.misconceptions import CATALOGUE
from autograder.judge.run import check_table
from tests.conftest import ROOT, SUBMISSIONS, run_cli

REGION = re.compile(r"### BEGIN (SOLUTION|HIDDEN TESTS)\n(.*?)### END \1", re.S)
INSTRUCTOR_FOLDERS = ("authoring", "batch", "explain")
INSTRUCTOR_MODULES = ("integrations/gradescope", "integrations/nbgrader", "integrations/prairielearn",
                      "integrations/lms", "report/class_overview", "report/regrade")


COMMON = {"with torch.no_grad():"}  # a PyTorch idiom that the kit's own code uses as well


def _significant(fragment: str) -> list[str]:
    """The lines of a code fragment that would give something away: not short, not a comment, not an idiom."""
    lines = [line.strip() for line in fragment.splitlines()]
    return [line for line in lines if len(line) >= 16 and not line.startswith("#") and line not in COMMON]


def secrets() -> tuple[set[str], str]:
    """Every solution line, hidden-test line and catalogue edit; and the notebooks' public text."""
    secret: set[str] = set()
    public = []
    for source in (ROOT / "solutions").glob("*/*.ipynb"):
        for cell in nbformat.read(source, as_version=4).cells:
            secret.update(line for _, region in REGION.findall(cell.source) for line in _significant(region))
            public.append(REGION.sub("", cell.source))
    for misconception in CATALOGUE:
        for old, new, _ in misconception.edits:
            secret.update(_significant(old) + _significant(new))
    return secret, "\n".join(public)


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    out = tmp_path_factory.mktemp("bundle") / "student.zip"
    result = run_cli("build", "--student", str(out))
    assert result.returncode == 0, result.stderr
    return out


def test_bundle_contains_no_solution_and_no_hidden_check(bundle):
    hidden = [info.check_id for info in check_table(load().checks) if info.hidden]
    visible = [info.check_id for info in check_table(load().checks) if not info.hidden]
    assert hidden and visible
    with zipfile.ZipFile(bundle) as archive:
        names = archive.namelist()
        text = "\n".join(archive.read(n).decode("utf-8", "replace") for n in names)
    assert not any(n.startswith("solutions/") for n in names)
    assert {"assignments/en/ch03_attention.ipynb", "assignments/zh_TW/ch03_attention.py"} <= set(names)
    assert "BEGIN SOLUTION" not in text and "BEGIN HIDDEN TESTS" not in text
    for check_id in hidden:
        assert check_id not in text, f"hidden check {check_id} leaked into the bundle"
    for check_id in visible:
        assert f"def {check_id}(" in text, f"visible check {check_id} is missing"


def test_bundle_members_are_readable_by_all_and_the_readme_comes_in_both_languages(bundle):
    with zipfile.ZipFile(bundle) as archive:
        modes = {info.filename: oct((info.external_attr >> 16) & 0o777) for info in archive.infolist()}
        readme, zh = (archive.read(name).decode("utf-8") for name in ("README.md", "README.zh_TW.md"))
    assert set(modes.values()) == {"0o644"}, {name: mode for name, mode in modes.items() if mode != "0o644"}

    def commands(text: str) -> list[str]:
        """The lines of the README's code blocks, without their comments, the notebooks' language made zh_TW."""
        blocks = re.findall(r"```\w*\n(.*?)```", text, re.S)
        lines = [line.split(" #")[0].strip().replace("assignments/en/", "assignments/zh_TW/")
                 for block in blocks for line in block.splitlines()]
        return [line for line in lines if line and not line.startswith(("#", "::"))]

    assert len(commands(readme)) > 8, "the English README's commands were not found"
    missing = [line for line in commands(readme) if not any(other.startswith(line) for other in commands(zh))]
    assert not missing, f"README.zh_TW.md lacks these commands of README.md: {missing}"
    assert "給學生" in zh and "繳交" in zh and "NotImplementedError" in zh


def test_no_file_of_the_bundle_holds_a_solution_line_or_a_catalogue_edit(bundle):
    secret, public = secrets()
    secret = {line for line in secret if line not in public}  # what the notebooks show students anyway
    assert len(secret) > 50, "the solutions and the catalogue were not read"
    leaks = []
    with zipfile.ZipFile(bundle) as archive:
        for name in archive.namelist():
            text = archive.read(name).decode("utf-8", "replace")
            leaks += [f"{name}: {line}" for line in sorted(secret) if line in text]
    assert not leaks, "the student bundle gives away:\n" + "\n".join(leaks[:40])


def test_bundle_ships_no_instructor_module(bundle):
    with zipfile.ZipFile(bundle) as archive:
        names = set(archive.namelist())
    shipped = [m for m in INSTRUCTOR_MODULES if f"autograder/{m}.py" in names]
    shipped += [n for n in names if n.split("/")[1:2] and n.split("/")[1] in INSTRUCTOR_FOLDERS]
    assert not shipped, f"instructor-only modules in the student bundle: {shipped}"
    inside = {f"autograder/sandbox/inside/{p.name}" for p in (ROOT / "autograder/sandbox/inside").glob("*.py")}
    assert {"autograder/integrations/selfcheck.py", "autograder/sandbox/__init__.py"} | inside <= names


def test_bundled_cli_offers_only_what_the_bundle_can_do(bundle, tmp_path):
    with zipfile.ZipFile(bundle) as archive:
        archive.extractall(tmp_path)
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    run = [sys.executable, "-m", "autograder"]
    shown = subprocess.run([*run, "--help"], cwd=tmp_path, capture_output=True, text=True, env=env, timeout=60)
    assert shown.returncode == 0, shown.stderr
    assert "check" in shown.stdout and not re.search(r"\b(grade|build|export|report)\b", shown.stdout), shown.stdout
    refused = subprocess.run([*run, "grade", "x"], cwd=tmp_path, capture_output=True, text=True, env=env, timeout=60)
    assert refused.returncode == 2 and "Traceback" not in refused.stderr, refused.stderr
    html = subprocess.run([*run, "check", "--help"], cwd=tmp_path, capture_output=True, text=True, env=env, timeout=60)
    assert "pictures" not in html.stdout and "diagnos" not in html.stdout, html.stdout


@pytest.mark.slow
def test_bundled_self_check_works_without_the_solutions(bundle, tmp_path):
    with zipfile.ZipFile(bundle) as archive:
        archive.extractall(tmp_path)
    correct = tmp_path / "mine.py"
    correct.write_text((SUBMISSIONS / "correct_reference.py").read_text())
    for target, code in ((correct, 0), (tmp_path / "assignments/en/ch03_attention.ipynb", 1)):
        result = subprocess.run([sys.executable, "-m", "autograder", "check", str(target)], cwd=tmp_path,
                                capture_output=True, text=True, timeout=600)
        assert result.returncode == code, result.stdout + result.stderr
    assert str(ROOT) not in result.stdout


@pytest.mark.slow
def test_student_bundle_installs_into_a_fresh_virtualenv_and_checks(bundle, tmp_path):
    """What the student README says, on this machine: a venv without the system's packages, the CPU
    build of torch (pip's configured wheel folder or index), then `pip install .` of the unpacked bundle."""
    kit, home = tmp_path / "kit", tmp_path / "venv"
    with zipfile.ZipFile(bundle) as archive:
        archive.extractall(kit)
    venv.create(home, with_pip=True, system_site_packages=False)
    python = str(home / "bin" / "python")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}

    def run(*args: str, cwd=tmp_path, timeout: float = 1200) -> subprocess.CompletedProcess:
        return subprocess.run(list(args), cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)

    torch_version = __import__("torch").__version__.split("+")[0]
    for step in ([python, "-m", "pip", "install", "-q", f"torch=={torch_version}"],
                 [python, "-m", "pip", "install", "-q", "."]):  # as the README says: in the unpacked folder
        done = run(*step, cwd=kit)
        assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    left = sorted(p.name for p in kit.iterdir() if p.name == "build" or p.name.endswith(".egg-info"))
    assert not left, f"`pip install .` left {left} in the student's folder"
    where = run(python, "-c", "import autograder, importlib.util as u; print(autograder.__file__); print("
                              "u.find_spec('nbgrader'), u.find_spec('autograder.chapters.ch03_attention.explain'))")
    assert str(home) in where.stdout and "None None" in where.stdout, where.stdout + where.stderr
    # JupyterLab's extensions come with packages: none of the environment's own is nbgrader's (this
    # machine's base Python has nbgrader, and `jupyter labextension list` shows its folder too)
    assert (home / "share" / "jupyter" / "labextensions").is_dir(), "JupyterLab's extensions folder is missing"
    assert not list((home / "share" / "jupyter").rglob("*nbgrader*")), "nbgrader's extension was installed"
    assert run(python, "-m", "pip", "show", "nbgrader").returncode != 0, "nbgrader is installed for the student"
    autograder = str(home / "bin" / "autograder")
    untouched = run(autograder, "check", str(kit / "assignments" / "en" / "ch03_attention.ipynb"))
    assert untouched.returncode == 1 and "not started" in untouched.stdout, untouched.stdout + untouched.stderr
    assert len(untouched.stdout.splitlines()) < 30, f"a wall of output for an untouched notebook:\n{untouched.stdout}"
    solved = run(autograder, "check", str(SUBMISSIONS / "correct_marimo.py"))
    assert solved.returncode == 0, solved.stdout + solved.stderr
