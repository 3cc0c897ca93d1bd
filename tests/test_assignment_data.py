"""The assignment is data: one folder read into one object, and no code outside autograder/chapters/ names what it
grades."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from autograder.assignment import AssignmentError, load
from autograder.config import Config
from tests.conftest import ROOT

PACKAGE = ROOT / "autograder"
CHAPTERS = PACKAGE / "chapters"


def mentions(path: Path, names: tuple[str, ...]) -> list[str]:
    """The lines of `path` that name one of `names` as a word."""
    pattern = re.compile(r"\b(" + "|".join(map(re.escape, names)) + r")\b")
    return [f"{path.relative_to(ROOT)}:{i}: {line.strip()}" for i, line in
            enumerate(path.read_text(encoding="utf-8").splitlines(), 1) if pattern.search(line)]


def generic_files() -> list[Path]:
    """The package's code, templates and message catalogues outside the assignment folders."""
    return [p for p in sorted(PACKAGE.rglob("*")) if p.suffix in (".py", ".j2", ".json", ".css")
            and not p.is_relative_to(CHAPTERS) and "__pycache__" not in p.parts]


def test_no_code_outside_the_assignment_folders_names_a_graded_name():
    graded = tuple(name for folder in CHAPTERS.iterdir() if (folder / "assignment.toml").is_file()
                   for name in load(folder).graded)
    assert "CausalAttention" in graded and len(generic_files()) > 80, "the search looks where it should"
    assert PACKAGE / "locales" / "zh_TW.json" in generic_files(), "the kit's own messages are searched too"
    found = [line for path in generic_files() for line in mentions(path, graded)]
    assert not found, "generic code names a graded name:\n" + "\n".join(found)
    # the same search finds them where they belong
    assert mentions(CHAPTERS / "ch03_attention" / "stand_ins.py", graded)
    assert mentions(CHAPTERS / "ch03_attention" / "locales" / "zh_TW.json", graded)


def test_the_default_assignment_is_chapter_3_read_from_its_folder():
    chapter = Config().assignment
    assert chapter.folder == CHAPTERS / "ch03_attention" and chapter.notebook == "ch03_attention"
    assert sum(chapter.points.values()) == 100
    assert chapter.stubs["CausalAttention"] == ("d_in", "d_out", "context_length", "dropout", "qkv_bias=False")
    assert chapter.attention["MultiHeadAttentionWrapper"].heads == "concat"
    assert chapter.depends == {"MultiHeadAttentionWrapper": "CausalAttention",
                               "exercise_3_2": "MultiHeadAttentionWrapper", "exercise_3_3": "MultiHeadAttention"}
    assert Config().reference_notebook == ROOT / "solutions" / "en" / "ch03_attention.ipynb"


@pytest.mark.parametrize("text, says", [
    (None, "has no assignment.toml"),
    ("name = [", "cannot be read"),
    ('name = "x"\nnotebook = "x"\n', "lacks 'parts'"),
    ('name = "x"\nnotebook = "x"\n[parts.f]\nsection = "1"\n', "lacks 'points'"),
    ('name = "x"\nnotebook = "x"\n[parts.f]\nsection = "1"\npoints = 1\ndepends = "g"\n', "depends on 'g'"),
    ('name = "x"\nnotebook = "x"\n[parts.C]\nsection = "1"\npoints = 1\n'
     'attention = { causal = true, batched = true, heads = "many" }\n', "attention.heads is 'many'"),
])
def test_a_folder_that_is_no_assignment_is_refused_saying_why(tmp_path, text, says):
    if text is not None:
        (tmp_path / "assignment.toml").write_text(text)
    with pytest.raises(AssignmentError, match=re.escape(says)):
        load(tmp_path)
