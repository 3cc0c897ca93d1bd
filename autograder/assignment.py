"""An assignment as data: one folder (autograder/chapters/<name>/ or a course's own) read into one object.

The folder holds `assignment.toml` (graded names in notebook order, points, stub signatures, where the solutions
and the handouts are), `checks/` (the pytest checks), `stand_ins.py` (the kit's stand-ins for graded classes that
other graded code builds on, run in the worker) and, where it has them, its mistake knowledge (the explainers the
toml names). Every stage reads the assignment from `Config.assignment`; no other module names a graded class.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass, field
from pathlib import Path

import tomllib

CHAPTERS = Path(__file__).resolve().parent / "chapters"
CHOSEN = CHAPTERS / "default"
"""A file naming the folder under chapters/ that a copy of the kit grades by default (the student bundle writes it:
the bundle holds that assignment only); without it, chapter 3."""


def default() -> Path:
    """The assignment the kit grades unless AUTOGRADER_ASSIGNMENT names another."""
    name = CHOSEN.read_text(encoding="utf-8").strip() if CHOSEN.is_file() else "ch03_attention"
    return CHAPTERS / name


class AssignmentError(ValueError):
    """An assignment folder the kit cannot read: what is wrong, and where."""


@dataclass(frozen=True)
class Attention:
    """What the attention gate asks of a graded class (judge/gate.py)."""

    causal: bool
    """Each token attends to itself and the tokens before it only."""
    batched: bool
    """Its input is (batch, tokens, d_in); else (tokens, d_in)."""
    heads: str = ""
    """"": one head; "concat": heads side by side, each of d_out columns; "split": d_out split among the heads."""


@dataclass(frozen=True)
class Part:
    """One graded name: a function or a class the student writes."""

    name: str
    section: str
    points: float
    signature: tuple[str, ...] | None = None
    """A class's __init__ parameters after self, as the stub writes them (`qkv_bias=False` with its default)."""
    built_with: tuple | None = None
    """The arguments the class's signature check builds it with."""
    attention: Attention | None = None
    depends: str | None = None
    """The graded name it builds on: its failures may be that name's mistakes showing through."""
    fixed: bool = False
    """The exercise fixes its code: every honest answer is alike (the similarity report ignores it)."""


@dataclass(frozen=True, eq=False)
class Assignment:
    """One assignment, read from its folder (`load`)."""

    folder: Path
    name: str
    title: str
    """What a course gradebook calls it (Canvas's and Moodle's column, unless told otherwise)."""
    notebook: str
    """The notebook's file name without suffix (solutions/<lang>/, assignments/<lang>/, what students upload)."""
    parts: dict[str, Part] = field(repr=False)
    tokens: tuple[str, ...] = ()
    """The words of the pictures' example sentence, one per input row."""
    solutions: Path | None = None
    """The instructor's sources (<lang>/<notebook>.ipynb), when the folder says where they are."""
    handouts: Path | None = None
    """What students get (<lang>/<notebook>.ipynb and .py, built from the solutions)."""
    drawn: dict[str, int] = field(default_factory=dict, repr=False)
    """The graded classes on the feedback page's attention pictures, in their order, with their heads."""
    explainer: str = ""
    """"module:Class" explaining a graded record's failures with the reference (empty: the generic one)."""
    self_explainer: str = ""
    """"module:Class" for the self-check, from what the student's classes show on their own (empty: none)."""

    @property
    def checks(self) -> Path:
        return self.folder / "checks"

    @property
    def stand_ins(self) -> Path:
        return self.folder / "stand_ins.py"

    @property
    def graded(self) -> tuple[str, ...]:
        """The graded names, in notebook order."""
        return tuple(self.parts)

    @property
    def points(self) -> dict[str, float]:
        return {name: part.points for name, part in self.parts.items()}

    @property
    def depends(self) -> dict[str, str]:
        return {name: part.depends for name, part in self.parts.items() if part.depends}

    @property
    def stubs(self) -> dict[str, tuple[str, ...]]:
        """Each graded class's __init__ parameters after self."""
        return {name: part.signature for name, part in self.parts.items() if part.signature is not None}

    @property
    def built_with(self) -> dict[str, tuple]:
        return {name: part.built_with for name, part in self.parts.items() if part.built_with is not None}

    @property
    def attention(self) -> dict[str, Attention]:
        """The graded classes that compute attention."""
        return {name: part.attention for name, part in self.parts.items() if part.attention is not None}

    def notebook_in(self, folder: Path, lang: str = "en") -> Path:
        return folder / lang / f"{self.notebook}.ipynb"

    def stand_ins_source(self) -> str:
        """stand_ins.py's text ("" when the assignment has none): sent to the worker with the definitions."""
        return _text(self.stand_ins)


@functools.cache
def _text(path: Path) -> str:
    return path.read_text(encoding="utf-8") if path.is_file() else ""


def load(folder: Path | None = None) -> Assignment:
    """The assignment in `folder` (read once per process).

    Raises:
        AssignmentError: no readable assignment.toml, or one that lacks what every assignment needs.
    """
    return _load(Path(folder if folder is not None else default()).resolve())


@functools.cache
def _load(folder: Path) -> Assignment:
    path = folder / "assignment.toml"
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise AssignmentError(f"{folder} is not an assignment folder: it has no assignment.toml") from None
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise AssignmentError(f"{path} cannot be read: {exc}") from None
    try:
        parts = {name: _part(name, spec) for name, spec in data["parts"].items()}
        if not parts:
            raise KeyError("parts")
        for part in parts.values():
            if part.depends and part.depends not in parts:
                raise AssignmentError(f"{path}: {part.name} depends on {part.depends!r}, which is not graded")
        where = [(folder / data[key]).resolve() if key in data else None for key in ("solutions", "handouts")]
        return Assignment(folder, str(data["name"]), str(data.get("title", data["name"])), str(data["notebook"]),
                          parts, tuple(str(t) for t in data.get("tokens", ())), *where,
                          {str(k): int(v) for k, v in data.get("drawn", {}).items()},
                          str(data.get("explainer", "")), str(data.get("self_explainer", "")))
    except KeyError as exc:
        raise AssignmentError(f"{path} lacks {exc.args[0]!r}") from None
    except (TypeError, ValueError) as exc:
        if isinstance(exc, AssignmentError):
            raise
        raise AssignmentError(f"{path}: {exc}") from None


def _part(name: str, spec: dict) -> Part:
    attention = spec.get("attention")
    if attention is not None:
        attention = Attention(bool(attention["causal"]), bool(attention["batched"]), str(attention.get("heads", "")))
        if attention.heads not in ("", "concat", "split"):
            raise ValueError(f"{name}: attention.heads is {attention.heads!r}, not one of '', 'concat', 'split'")
    signature = spec.get("signature")
    built_with = spec.get("built_with")
    return Part(name, str(spec["section"]), float(spec["points"]),
                None if signature is None else tuple(str(s) for s in signature),
                None if built_with is None else tuple(built_with), attention, spec.get("depends"),
                bool(spec.get("fixed", False)))
