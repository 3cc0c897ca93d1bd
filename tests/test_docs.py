"""The docs match the code: every command and option in README, every module and test they name exists, the layout."""
from __future__ import annotations

import ast
import contextlib
import io
import re

import pytest

from autograder.cli import parser
from tests.conftest import ROOT

PACKAGE = ROOT / "autograder"
README = (ROOT / "README.md").read_text(encoding="utf-8")
DOCS = {name: (ROOT / name).read_text(encoding="utf-8")
        for name in ("README.md", "docs/design.md", "docs/developing.md")}


def help_text(*argv: str) -> str:
    """What `autograder ARGV --help` prints, through argparse's public interface only."""
    out = io.StringIO()
    with pytest.MonkeyPatch.context() as patch, contextlib.redirect_stdout(out), pytest.raises(SystemExit) as exited:
        patch.setenv("COLUMNS", "250")  # argparse wraps at the terminal's width: one option a line
        parser().parse_args([*argv, "--help"])
    assert exited.value.code == 0, f"autograder {' '.join(argv)} --help exited {exited.value.code}"
    return out.getvalue()


def commands(top_help: str) -> dict[str, str]:
    """The sub-commands listed under COMMAND in the top-level help: name -> its help line."""
    listing = top_help.split("\n  COMMAND\n", 1)[1].split("\n\n", 1)[0]
    # a name longer than argparse's column ("similarity") has its help line on the next line
    return dict(re.findall(r"^ {4}(\S+)(?:\n? +(\S.*))?$", listing, re.M))


def options(command_help: str) -> list[str]:
    """The long options (--name) of one command's help, --help left out."""
    listing = command_help.split("\noptions:\n", 1)[1].split("\n\n", 1)[0]
    invocations = [line.strip().split("  ")[0] for line in listing.splitlines() if re.match(r"^  -", line)]
    return sorted({opt for inv in invocations for opt in re.findall(r"--[\w-]+", inv)} - {"--help"})


def choices(command_help: str) -> list[str]:
    """The values of a positional argument with choices, e.g. export's {gradescope,prairielearn,...}."""
    listing = command_help.partition("\npositional arguments:\n")[2].split("\n\n", 1)[0]
    return [value for group in re.findall(r"^  \{([\w,-]+)\}", listing, re.M) for value in group.split(",")]


COMMANDS = sorted(commands(help_text()))


def test_the_command_list_is_read_from_the_help():
    assert {"check", "grade", "build"} <= set(COMMANDS), f"read {COMMANDS} from `autograder --help`: the parsing broke"


@pytest.mark.parametrize("command", COMMANDS)
def test_commands_are_documented(command):
    assert f"autograder {command}" in README, f"README.md never shows `autograder {command}`"


@pytest.mark.parametrize("command", COMMANDS)
def test_commands_have_help(command):
    assert commands(help_text())[command], f"`autograder {command}` has no help line in `autograder --help`"


@pytest.mark.parametrize("command", COMMANDS)
def test_options_are_documented(command):
    missing = [opt for opt in options(help_text(command)) if not re.search(rf"{opt}(?![\w-])", README)]
    assert not missing, f"README.md never mentions these options of `autograder {command}`: {missing}"


@pytest.mark.parametrize("command", COMMANDS)
def test_choices_are_documented(command):
    missing = [value for value in choices(help_text(command)) if f"autograder {command} {value}" not in README]
    assert not missing, f"README.md never shows `autograder {command} VALUE` for: {missing}"


# --- module paths named in the docs -------------------------------------------------------------------------

PATH = re.compile(r"(?<![\w/.-])((?:autograder|tests|benchmarks|docs)/[\w/.*<>{}-]*)")
DOTTED = re.compile(r"(?<![\w/.-])autograder((?:\.\w+)+)")
FILE_SUFFIXES = {"zip", "py", "json", "csv", "html", "ipynb", "md"}


def mentioned_paths(text: str) -> set[str]:
    """File and folder paths of the repository in a text; placeholders and globs (`<lang>`, `test_*`) left out."""
    found = {p.rstrip(".,:;)") for p in PATH.findall(text)}
    return {p for p in found if not set(p) & set("*<>{}")}


def mentioned_names(text: str) -> set[str]:
    """Dotted names under autograder (`autograder.judge.run`, `autograder.nbgrader.grade`); file names left out."""
    return {"autograder" + rest for rest in DOTTED.findall(text) if rest.rsplit(".", 1)[-1] not in FILE_SUFFIXES}


def _bindings(body: list[ast.stmt]) -> dict[str, ast.stmt]:
    """The names a module or class body binds: definitions, assignments, imports."""
    bound: dict[str, ast.stmt] = {}
    for node in body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            bound[node.name] = node
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            bound |= {t.id: node for t in targets if isinstance(t, ast.Name)}
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            bound |= {(a.asname or a.name).split(".")[0]: node for a in node.names}
    return bound


def resolves(dotted: str) -> bool:
    """Is this a module of the kit, or a name defined in one (`autograder.nbgrader.grade`)? Read, not imported."""
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        where = PACKAGE.parent.joinpath(*parts[:cut])
        source = where.with_suffix(".py") if where.with_suffix(".py").is_file() else where / "__init__.py"
        if not source.is_file():
            continue
        body = ast.parse(source.read_text(encoding="utf-8")).body
        for attribute in parts[cut:]:
            node = _bindings(body).get(attribute)
            if node is None:
                return False
            body = node.body if isinstance(node, ast.ClassDef) else []
        return True
    return False


TEST_ID = re.compile(r"(?<![\w/.-])(tests/[\w/]+\.py)::(\w+)")


def defines(path: str, name: str) -> bool:
    """Does this test file define a function (or class) of that name?"""
    body = ast.parse((ROOT / path).read_text(encoding="utf-8")).body
    return name in _bindings(body)


MENTIONS = sorted({(doc, p) for doc, text in DOCS.items() for p in mentioned_paths(text)})
NAMES = sorted({(doc, n) for doc, text in DOCS.items() for n in mentioned_names(text)})


TESTS = sorted({(doc, f"{path}::{name}") for doc, text in DOCS.items() for path, name in TEST_ID.findall(text)})


def test_the_docs_name_modules_at_all():
    assert len([p for _, p in MENTIONS if p.startswith("autograder/")]) >= 10, "the path pattern finds nothing"
    assert len(NAMES) >= 3, "the dotted-name pattern finds nothing"


@pytest.mark.parametrize(("doc", "path"), MENTIONS, ids=[f"{d}:{p}" for d, p in MENTIONS])
def test_paths_in_the_docs_exist(doc, path):
    assert (ROOT / path).exists(), f"{doc} names {path}, which does not exist"


@pytest.mark.parametrize(("doc", "name"), NAMES, ids=[f"{d}:{n}" for d, n in NAMES])
def test_dotted_names_in_the_docs_exist(doc, name):
    assert resolves(name), f"{doc} names {name}, which is no module of the kit nor a name in one"


@pytest.mark.parametrize(("doc", "test"), TESTS, ids=[f"{d}:{t}" for d, t in TESTS])
def test_tests_named_in_the_docs_exist(doc, test):
    path, name = test.split("::")
    assert (ROOT / path).is_file() and defines(path, name), f"{doc} names {test}, which does not exist"


# --- the layout block ----------------------------------------------------------------------------------------

TREE_LINE = re.compile(r"^(?P<indent>[\s│├└─]*)(?P<name>[\w.-]+)(?P<folder>/)?(?:\s|$)")


def layout_entries(readme: str) -> dict[str, list[str]]:
    """README's "## Layout" code block: {"top": top-level folders, "package": autograder's folders, "files": files}.

    One entry a line, its name first (a folder's ending in "/"), nested by indentation (tree characters count as
    spaces); a line that starts with words (a continued description) names nothing.
    """
    section = readme.split("\n## Layout\n", 1)[1].split("\n## ", 1)[0]
    block = section.split("```", 2)[1]
    entries: dict[str, list[str]] = {"top": [], "package": [], "files": []}
    stack: list[tuple[int, str]] = []
    for line in block.splitlines()[1:]:
        match = TREE_LINE.match(line)
        if not match or not (match["folder"] or "." in match["name"]):
            continue
        depth = len(match["indent"])
        while stack and stack[-1][0] >= depth:
            stack.pop()
        path = "/".join([name for _, name in stack] + [match["name"]])
        if match["folder"]:
            stack.append((depth, match["name"]))
            entries["package" if path.startswith("autograder/") else "top"].append(path)
        else:
            entries["files"].append(path)
    return entries


def layout_folders(readme: str) -> dict[str, list[str]]:
    return {key: value for key, value in layout_entries(readme).items() if key != "files"}


def subpackages() -> list[str]:
    return sorted(str(init.parent.relative_to(ROOT)) for init in PACKAGE.glob("*/**/__init__.py"))


def test_the_layout_lists_exactly_the_subpackages():
    listed = layout_folders(README)["package"]
    assert sorted(listed) == subpackages(), (f"README's layout lists {sorted(set(listed) - set(subpackages()))} "
                                             f"that do not exist and misses {sorted(set(subpackages()) - set(listed))}")
    assert len(listed) == len(set(listed)), f"a folder is listed twice: {listed}"


def test_the_layout_lists_top_level_folders_that_exist():
    top = layout_folders(README)["top"]
    assert "autograder" in top and "tests" in top, f"read {top}: the layout block's parsing broke"
    missing = [folder for folder in top if not (ROOT / folder).is_dir()]
    assert not missing, f"README's layout lists {missing}, which are not folders here"


def test_the_layout_names_files_that_exist():
    files = layout_entries(README)["files"]
    assert "autograder/cli.py" in files, f"read {files}: the layout block's parsing broke"
    missing = [path for path in files if not (ROOT / path).is_file()]
    assert not missing, f"README's layout names {missing}, which do not exist"


# --- each check above can fail --------------------------------------------------------------------------------

def test_an_undocumented_option_or_command_is_caught():
    grade_help = help_text("grade")
    assert "--force" in options(grade_help), "the option list misses --force"
    assert not re.search(r"--force(?![\w-])", README.replace("--force", "--forced")), "a renamed option went unseen"
    assert "autograder grade" not in README.replace("autograder grade", "autograder mark")


def test_a_module_that_does_not_exist_is_caught():
    text = "see `autograder/judge/nosuch.py` and `autograder.judge.nosuch`, `autograder.nbgrader.nosuch`"
    assert not (ROOT / "autograder/judge/nosuch.py").exists()
    assert "autograder/judge/nosuch.py" in mentioned_paths(text)
    assert not resolves("autograder.judge.nosuch") and not resolves("autograder.nbgrader.nosuch")
    assert resolves("autograder.nbgrader.grade") and resolves("autograder.judge"), "real names must resolve"
    assert mentioned_names("upload autograder.zip") == set(), "a file name is not a module"
    assert TEST_ID.findall("`tests/test_docs.py::test_nosuch`") == [("tests/test_docs.py", "test_nosuch")]
    assert not defines("tests/test_docs.py", "test_nosuch") and defines("tests/test_docs.py", "resolves")


def test_a_layout_that_misses_or_invents_a_folder_is_caught():
    real = layout_folders(README)["package"]
    dropped = README.replace("\n├── load/", "\n├── loader/")
    assert "autograder/load" in real and "autograder/load" not in layout_folders(dropped)["package"]
    nested = [p for p in real if p.count("/") == 2]
    assert nested, f"no nested folder read from the layout ({real}): sandbox/inside/ must be one"
    invented = README.replace("\n├── load/ ", "\n├── load/ \n│   └── old/   a folder that is gone\n├── x.py ")
    assert "autograder/load/old" in layout_folders(invented)["package"]
    assert "autograder/x.py" in layout_entries(invented)["files"]


def test_config_is_the_only_reader_of_the_environment():
    """README: config.py is the only reader of the environment (sandbox/inside/ sets the worker's own)."""
    readers = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if path.name == "config.py" and path.parent == PACKAGE:
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            text = ast.unparse(node) if isinstance(node, (ast.Call, ast.Subscript)) else ""
            if (isinstance(node, ast.Call) and text.startswith(("os.environ.get(", "os.getenv(", "environ.get("))) or (
                    isinstance(node, ast.Subscript) and isinstance(node.ctx, ast.Load)
                    and text.startswith("os.environ[")):
                readers.append(f"{path.relative_to(ROOT)}:{node.lineno}: {text}")
    assert not readers, "read the variable through config.environment() instead:\n" + "\n".join(readers)
