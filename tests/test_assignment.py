"""Assignment: solutions reproduce the book, students get stubs, translations are complete, assignments/ is fresh."""
from __future__ import annotations

import ast
import io
import json
import os
import re
import shutil
import subprocess
import sys
import tokenize
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

from autograder.authoring.build import build, to_marimo

ROOT = Path(__file__).resolve().parent.parent
NAME = "ch03_attention"
LANGS = ("en", "zh_TW")
CJK = re.compile(r"[\u3400-\u9fff\uf900-\ufaff]")

POINTS = {
    "softmax_naive": 2,
    "simple_self_attention": 6,
    "SelfAttention_v1": 8,
    "SelfAttention_v2": 8,
    "load_v2_weights_into_v1": 5,
    "CausalAttention": 24,
    "MultiHeadAttentionWrapper": 14,
    "exercise_3_2": 4,
    "MultiHeadAttention": 24,
    "exercise_3_3": 5,
}

# The chapter's printed results: demo cell id -> rows (or plain strings) its printed output must contain.
BOOK_FIGURES = {
    # 3.3.1: attention weights and context vector of the query "journey"
    "demo_softmax_naive": [(0.1385, 0.2379, 0.2333, 0.1240, 0.1082, 0.1581), (0.4419, 0.6515, 0.5683)],
    # 3.3.2: the second row of all context vectors is the same vector
    "demo_simple_self_attention": [(0.4419, 0.6515, 0.5683)],
    "demo_simple_matches_softmax_naive": ["row 2 matches task 1.1: True"],
    # 3.4.2: torch.manual_seed(123) for v1, torch.manual_seed(789) for v2
    "demo_SelfAttention_v1": [(0.2996, 0.8053)],
    "demo_SelfAttention_v2": [(-0.0739, 0.0713)],
    # exercise 3.1: v1 loaded with v2's weights prints v2's numbers
    "demo_load_v2_weights_into_v1": [(-0.0739, 0.0713), "same output as sa_v2: True"],
    # 3.5.3, 3.6.1, 3.6.2: torch.manual_seed(123) on the two-sentence batch
    "demo_CausalAttention": [(-0.4519, 0.2216), "torch.Size([2, 6, 2])"],
    "demo_MultiHeadAttentionWrapper": [(-0.4519, 0.2216, 0.4772, 0.1063), "torch.Size([2, 6, 4])"],
    "demo_exercise_3_2": ["torch.Size([2, 6, 2])"],
    "demo_MultiHeadAttention": [(0.3190, 0.4858), "torch.Size([2, 6, 2])"],
    "demo_MultiHeadAttention_heads": ["rejected as expected:"],
    # exercise 3.3: GPT-2 small attention
    "demo_exercise_3_3": ["2,360,064 parameters"],
}

# Demo cells that end with a heatmap.
HEATMAPS = {
    "demo_attention_loops",
    "demo_CausalAttention",
    "demo_causal_dropout",
    "demo_MultiHeadAttentionWrapper",
    "demo_MultiHeadAttention",
}

TEST_CELL = (
    "from autograder import check\n"
    "check({name})\n"
    "### BEGIN HIDDEN TESTS\n"
    "from autograder.nbgrader import grade\n"
    'grade("{name}")\n'
    "### END HIDDEN TESTS"
)

# Lines of a solution region that may also appear in a student file because they give nothing away.
# Empty so far: every solution line is specific enough to count as a leak.
GENERIC_SOLUTION_LINES: set[str] = set()


# ---------------------------------------------------------------------------- helpers


def solution_path(lang: str) -> Path:
    return ROOT / "solutions" / lang / f"{NAME}.ipynb"


def student_path(lang: str, suffix: str) -> Path:
    return ROOT / "assignments" / lang / f"{NAME}{suffix}"


def read_nb(path: Path) -> nbformat.NotebookNode:
    return nbformat.read(path, as_version=4)


def grade_id(cell: nbformat.NotebookNode) -> str:
    return cell.metadata.get("nbgrader", {}).get("grade_id", "")


def cell_by_id(nb: nbformat.NotebookNode, cell_id: str) -> nbformat.NotebookNode:
    matches = [cell for cell in nb.cells if grade_id(cell) == cell_id]
    assert len(matches) == 1, f"expected exactly one cell with grade_id {cell_id!r}, found {len(matches)}"
    return matches[0]


def strip_magics(source: str) -> str:
    """Blank out IPython `%magic` and `!shell` lines so the cell parses as Python."""
    return "\n".join("" if re.match(r"\s*[%!]", line) else line for line in source.splitlines())


def without_docstrings(tree: ast.AST) -> ast.AST:
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            body = node.body
            if (body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant)
                    and isinstance(body[0].value.value, str)):
                node.body = body[1:]
    return tree


def docstrings(tree: ast.AST) -> list[str]:
    found = []
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            text = ast.get_docstring(node)
            if text:
                found.append(text)
    return found


def comments(source: str) -> list[str]:
    tokens = tokenize.generate_tokens(io.StringIO(source).readline)
    return [tok.string for tok in tokens if tok.type == tokenize.COMMENT]


def english_runs(text: str, min_words: int) -> list[str]:
    """Runs of at least `min_words` English words once code, math, URLs and identifiers are removed."""
    text = re.sub(r"```.*?```", " ", text, flags=re.S)  # fenced code
    text = re.sub(r"`[^`]*`", " ", text)  # code spans
    text = re.sub(r"\$\$.*?\$\$", " ", text, flags=re.S)  # display math
    text = re.sub(r"\$[^$]*\$", " ", text)  # inline math
    text = re.sub(r"https?://\S+", " ", text)  # URLs
    text = re.sub(r"《[^》]*》", " ", text)  # titles (the book's) keep their own language
    text = re.sub(r"\S*[_.()\[\]=<>/@0-9]\S*", " ", text)  # identifiers and code-like tokens
    word = r"[A-Za-z][A-Za-z'-]*"
    return [m.group(0) for m in re.finditer(rf"{word}(?:[ \t]+{word}){{{min_words - 1},}}", text)]


def row_pattern(values: tuple[float, ...]) -> re.Pattern:
    """A printed tensor row with these values in order, e.g. `[-0.4519,  0.2216]`."""
    numbers = r",\s+".join(re.escape(f"{value:.4f}") for value in values)
    return re.compile(rf"\[\s*{numbers}\s*\]")


def assert_figures(text: str, expected: list, where: str) -> None:
    for item in expected:
        if isinstance(item, tuple):
            assert row_pattern(item).search(text), f"{where}: no printed row {list(item)} in:\n{text}"
        else:
            assert item in text, f"{where}: {item!r} not printed; output was:\n{text}"


def stream_text(cell: nbformat.NotebookNode) -> str:
    return "".join(out.get("text", "") for out in cell.get("outputs", []) if out.output_type == "stream")


def graded_definitions(nb: nbformat.NotebookNode) -> set[str]:
    """Names the solution cells define: the stubs of the student version."""
    names = set()
    for cell in nb.cells:
        if cell.metadata.get("nbgrader", {}).get("solution"):
            for node in ast.parse(strip_magics(cell.source)).body:
                if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
                    names.add(node.name)
    return names


def first_stub_call(nb: nbformat.NotebookNode) -> int:
    """Index of the first non-solution code cell that calls one of the stubs."""
    stubs = graded_definitions(nb)
    for index, cell in enumerate(nb.cells):
        if cell.cell_type != "code" or cell.metadata.get("nbgrader", {}).get("solution"):
            continue
        calls = [n for n in ast.walk(ast.parse(strip_magics(cell.source))) if isinstance(n, ast.Call)]
        if any(isinstance(c.func, ast.Name) and c.func.id in stubs for c in calls):
            return index
    raise AssertionError("no cell calls a stub")


def solution_lines(nb: nbformat.NotebookNode) -> list[str]:
    """Non-trivial code lines inside BEGIN/END SOLUTION regions, without trailing comments."""
    lines = []
    for cell in nb.cells:
        inside = False
        for line in cell.source.splitlines():
            if "BEGIN SOLUTION" in line:
                inside = True
            elif "END SOLUTION" in line:
                inside = False
            elif inside:
                code = line.split("  #")[0].strip()
                if (code and not code.startswith("#") and code not in GENERIC_SOLUTION_LINES
                        and len(code) > 3 and code not in {")", "]", "(", "else:", "try:"}):
                    lines.append(code)
    return list(dict.fromkeys(lines))


def student_texts(lang: str) -> dict[str, str]:
    """The text a student sees: cell sources of the .ipynb, and the marimo file as it is."""
    nb = read_nb(student_path(lang, ".ipynb"))
    return {
        "ipynb": "\n".join(cell.source for cell in nb.cells),
        "marimo": student_path(lang, ".py").read_text(encoding="utf-8"),
    }


def kernel_env() -> dict[str, str]:
    """The environment for kernels and scripts: the repository's autograder package importable."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    env.pop("MPLBACKEND", None)  # kernels keep ipykernel's inline backend, which renders the heatmaps
    return env


def execute(nb: nbformat.NotebookNode, cwd: Path) -> tuple[int | None, CellExecutionError | None]:
    """Run the code cells in order in a python3 kernel; stop at the first error, return (index, error)."""
    client = NotebookClient(nb, kernel_name="python3", timeout=600, resources={"metadata": {"path": str(cwd)}})
    with client.setup_kernel(env=kernel_env()):
        for index, cell in enumerate(nb.cells):
            if cell.cell_type != "code":
                continue
            try:
                client.execute_cell(cell, index)
            except CellExecutionError as error:
                return index, error
    return None, None


def run_script(path: Path, cwd: Path) -> subprocess.CompletedProcess:
    env = kernel_env()
    env["MPLBACKEND"] = "Agg"
    return subprocess.run(
        [sys.executable, str(path)], cwd=cwd, env=env, capture_output=True, text=True, timeout=600
    )


# ---------------------------------------------------------------------------- executions (one per file)


@pytest.fixture(scope="module", params=LANGS)
def executed_solution(request, tmp_path_factory):
    nb = read_nb(solution_path(request.param))
    index, error = execute(nb, tmp_path_factory.mktemp(f"solution_{request.param}"))
    return request.param, nb, index, error


@pytest.fixture(scope="module", params=LANGS)
def executed_student(request, tmp_path_factory):
    nb = read_nb(student_path(request.param, ".ipynb"))
    index, error = execute(nb, tmp_path_factory.mktemp(f"student_{request.param}"))
    return request.param, nb, index, error


# ---------------------------------------------------------------------------- solutions run


@pytest.mark.slow
def test_solution_runs_and_reproduces_the_book(executed_solution):
    lang, nb, index, error = executed_solution
    assert error is None, f"{lang}: solution failed in cell {index} ({grade_id(nb.cells[index])}):\n{error}"
    for cell_id, expected in BOOK_FIGURES.items():
        assert_figures(stream_text(cell_by_id(nb, cell_id)), expected, f"{lang} {cell_id}")
    for cell_id in HEATMAPS:
        images = [o for o in cell_by_id(nb, cell_id).outputs if "image/png" in o.get("data", {})]
        assert len(images) == 1, f"{lang} {cell_id}: expected one heatmap, got {len(images)} images"


@pytest.mark.slow
def test_solution_earns_full_points(executed_solution):
    """The hidden grade(name) call of each test cell returns that cell's points (nbgrader partial credit)."""
    lang, nb, index, error = executed_solution
    assert error is None, f"{lang}: solution failed in cell {index}:\n{error}"
    for name, points in POINTS.items():
        cell = cell_by_id(nb, f"test_{name}")
        stderr = [o.text for o in cell.outputs if o.output_type == "stream" and o.name == "stderr"]
        assert not stderr, f"{lang} test_{name} wrote to stderr, which nbgrader scores as 0:\n{stderr}"
        results = [o for o in cell.outputs if o.output_type == "execute_result"]
        assert len(results) == 1, f"{lang} test_{name}: expected grade() to return the points, got {cell.outputs}"
        score = float(results[0].data["text/plain"])
        assert score == points, f"{lang} test_{name}: the reference solution scored {score}, expected {points}"


@pytest.mark.slow
@pytest.mark.parametrize("lang", LANGS)
def test_marimo_solution_runs_as_script(lang, tmp_path):
    script = tmp_path / f"{NAME}.py"
    script.write_text(to_marimo(read_nb(solution_path(lang))), encoding="utf-8")
    lint = subprocess.run([sys.executable, "-m", "marimo", "check", "--strict", str(script)], capture_output=True,
                          text=True)
    assert lint.returncode == 0, f"{lang}: marimo check on the solution failed:\n{lint.stdout}"
    done = run_script(script, tmp_path)
    assert done.returncode == 0, f"{lang}: marimo solution failed:\n{done.stderr[-3000:]}"
    # all demo output goes to one stream here; the rows are distinctive enough to find anywhere
    for cell_id, expected in BOOK_FIGURES.items():
        assert_figures(done.stdout, expected, f"{lang} marimo {cell_id}")


# ---------------------------------------------------------------------------- students get stubs


@pytest.mark.slow
def test_student_notebook_stops_at_first_stub(executed_student):
    lang, nb, index, error = executed_student
    solution = read_nb(solution_path(lang))
    expected = grade_id(solution.cells[first_stub_call(solution)])  # by id: the formats keep different cells
    assert error is not None, f"{lang}: the student notebook ran to the end; the stubs should raise"
    assert grade_id(nb.cells[index]) == expected, (
        f"{lang}: first error in cell {index} ({grade_id(nb.cells[index])}), expected the first stub call "
        f"in {expected}:\n{error}"
    )
    assert error.ename == "NotImplementedError", f"{lang}: expected NotImplementedError, got {error.ename}: {error}"


@pytest.mark.slow
@pytest.mark.parametrize("lang", LANGS)
def test_marimo_student_stops_at_first_stub(lang, tmp_path):
    done = run_script(student_path(lang, ".py"), tmp_path)
    assert done.returncode != 0, f"{lang}: the marimo student notebook ran to the end; the stubs should raise"
    last_line = done.stderr.strip().splitlines()[-1]
    assert last_line.startswith("NotImplementedError"), f"{lang}: unexpected failure:\n{done.stderr[-3000:]}"
    assert "softmax_naive(attn_scores_2)" in done.stderr, f"{lang}: did not fail at the first stub:\n{done.stderr}"
    assert "torch.Size([6, 3])" in done.stdout, f"{lang}: the cells before the first stub did not run"


def test_marimo_files_pass_marimo_check():
    """`marimo check --strict` parses the files as `marimo edit` does and fails on warnings too."""
    files = [str(student_path(lang, ".py")) for lang in LANGS]
    done = subprocess.run(
        [sys.executable, "-m", "marimo", "check", "--strict", *files], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, f"marimo check failed:\n{done.stdout}\n{done.stderr}"


@pytest.mark.parametrize("lang", LANGS)
def test_student_files_contain_no_solution(lang):
    lines = solution_lines(read_nb(solution_path(lang)))
    assert len(lines) > 30, f"{lang}: only {len(lines)} solution lines found; are the markers missing?"
    for kind, text in student_texts(lang).items():
        leaked = [line for line in lines if line in text]
        assert not leaked, f"{lang} {kind}: solution code in the student file: {leaked}"
        for marker in ("BEGIN HIDDEN TESTS", "END HIDDEN TESTS", "autograder.nbgrader", "BEGIN SOLUTION",
                       "END SOLUTION"):
            assert marker not in text, f"{lang} {kind}: {marker!r} found in the student file"
        assert text.count("raise NotImplementedError()") >= 15, f"{lang} {kind}: stubs missing"


@pytest.mark.parametrize("lang", LANGS)
def test_student_notebook_is_nbgrader_release(lang):
    nb = read_nb(student_path(lang, ".ipynb"))
    for cell in nb.cells:
        meta = cell.metadata["nbgrader"]
        assert "checksum" in meta, f"{lang} {grade_id(cell)}: no checksum; not made by nbgrader's pipeline"
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None, f"{lang} {grade_id(cell)}: outputs left"
        if not meta["solution"]:
            assert cell.metadata.get("editable") is False, f"{lang} {grade_id(cell)}: should be read-only"
    for name in POINTS:
        source = cell_by_id(nb, f"test_{name}").source
        assert source == f"from autograder import check\ncheck({name})", f"{lang} test_{name}: {source!r}"


# ---------------------------------------------------------------------------- the source notebooks


@pytest.mark.parametrize("lang", LANGS)
def test_solution_metadata(lang):
    nb = read_nb(solution_path(lang))
    assert nb.metadata.kernelspec.name == "python3", f"{lang}: kernelspec should be python3"
    ids = [grade_id(cell) for cell in nb.cells]
    assert all(ids) and len(ids) == len(set(ids)), f"{lang}: every cell needs a unique grade_id"
    for cell in nb.cells:
        meta = cell.metadata["nbgrader"]
        assert meta["schema_version"] == 3, f"{lang} {grade_id(cell)}: nbgrader schema_version must be 3"
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None, f"{lang} {grade_id(cell)}: clear outputs"
        if meta["solution"]:
            assert grade_id(cell).startswith("solution_"), f"{lang}: solution cell {grade_id(cell)} misnamed"
            assert "### BEGIN SOLUTION" in cell.source and "### END SOLUTION" in cell.source
            assert not meta["locked"], f"{lang} {grade_id(cell)}: solution cells must stay editable"
        else:
            assert meta["locked"], f"{lang} {grade_id(cell)}: markdown, setup and demo cells are read-only"
    graded = {grade_id(c)[len("test_"):]: c for c in nb.cells if c.metadata["nbgrader"]["grade"]}
    assert set(graded) == set(POINTS), f"{lang}: graded names {sorted(graded)} differ from the contract"
    for name, cell in graded.items():
        assert cell.metadata["nbgrader"]["points"] == POINTS[name], f"{lang} test_{name}: wrong points"
        assert cell.source == TEST_CELL.format(name=name), f"{lang} test_{name}: test cell differs:\n{cell.source}"
        solution = cell_by_id(nb, f"solution_{name}")
        assert nb.cells.index(solution) < nb.cells.index(cell), f"{lang}: test_{name} comes before its solution"
        assert name in graded_definitions(nb), f"{lang}: no solution cell defines {name}"
    assert sum(POINTS.values()) == 100


def test_languages_share_the_code():
    en, zh = (read_nb(solution_path(lang)) for lang in LANGS)
    assert [grade_id(c) for c in en.cells] == [grade_id(c) for c in zh.cells], "cell lists differ"
    for a, b in zip(en.cells, zh.cells):
        assert a.cell_type == b.cell_type and a.metadata == b.metadata, f"{grade_id(a)}: type or metadata differ"
        if a.cell_type == "code":
            dump_a, dump_b = (
                ast.dump(without_docstrings(ast.parse(strip_magics(c.source)))) for c in (a, b)
            )
            assert dump_a == dump_b, f"{grade_id(a)}: code differs between en and zh_TW beyond comments/docstrings"


def test_translation_is_complete():
    nb = read_nb(solution_path("zh_TW"))
    for cell in nb.cells:
        where = f"zh_TW {grade_id(cell)}"
        if cell.cell_type == "markdown":
            assert CJK.search(cell.source), f"{where}: markdown without Chinese"
            runs = english_runs(cell.source, 3)
            assert not runs, f"{where}: untranslated English: {runs}"
            continue
        tree = ast.parse(strip_magics(cell.source))
        for text in docstrings(tree):
            assert CJK.search(text), f"{where}: docstring not translated: {text!r}"
            assert not english_runs(text, 3), f"{where}: untranslated English in docstring: {text!r}"
        for comment in comments(strip_magics(cell.source)):
            if re.match(r"#+ (BEGIN|END) (SOLUTION|HIDDEN TESTS)", comment):
                continue
            # notation such as `# (b, T, d_out)` or `# Your (x^1)` needs no translation
            if english_runs(comment, 2):
                assert CJK.search(comment), f"{where}: comment not translated: {comment!r}"
            assert not english_runs(comment, 3), f"{where}: untranslated English in comment: {comment!r}"


def test_english_has_no_chinese():
    nb = read_nb(solution_path("en"))
    for cell in nb.cells:
        assert not CJK.search(cell.source), f"en {grade_id(cell)}: Chinese text in the English notebook"


# ---------------------------------------------------------------------------- generated files are fresh


def test_committed_assignments_are_fresh():
    stale = build(check=True)
    assert stale == [], f"assignments/ is stale, run `autograder build`: {[str(p) for p in stale]}"


@pytest.mark.slow
def test_check_detects_an_edited_solution(tmp_path):
    for folder in ("solutions", "assignments"):
        shutil.copytree(ROOT / folder, tmp_path / folder)
    assert build(check=True, root=tmp_path) == [], "the copy should start fresh"

    source = tmp_path / "solutions" / "en" / f"{NAME}.ipynb"
    nb = read_nb(source)
    cell_by_id(nb, "md_softmax_naive").source += "\n\nOne more sentence."
    nbformat.write(nb, source)
    expected = [tmp_path / "assignments" / "en" / f"{NAME}{suffix}" for suffix in (".ipynb", ".py")]
    assert build(check=True, root=tmp_path) == expected, "check should report both generated files of en"
    assert "One more sentence." not in expected[0].read_text(encoding="utf-8"), "check must not write"

    assert build(root=tmp_path) == expected, "build should rewrite exactly the stale files"
    assert "One more sentence." in expected[1].read_text(encoding="utf-8")
    assert build(check=True, root=tmp_path) == [], "a rebuild must be byte-identical"

    orphan = tmp_path / "assignments" / "en" / "old_chapter.ipynb"
    orphan.write_text(json.dumps({}), encoding="utf-8")
    assert build(check=True, root=tmp_path) == [orphan], "a file without a source is stale"
    build(root=tmp_path)
    assert not orphan.exists(), "build should remove generated files whose source is gone"
