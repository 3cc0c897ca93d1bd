"""What an instructor may change (Limits, Config), the environment variables the kit reads (environment(), their
only reader), and the course's secret the attention gate's probes are drawn from."""
from __future__ import annotations

import hashlib
import os
import re
import secrets
from dataclasses import dataclass, field, replace
from pathlib import Path

from autograder.assignment import Assignment
from autograder.assignment import load as load_assignment

ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Limits:
    """Resource limits for one submission's worker; `autograder grade --limit NAME=VALUE` overrides them."""

    call_seconds: float = 10.0
    """Wall time allowed for one call into the student's code (construct, forward, ...)."""
    load_seconds: float = 30.0
    """Wall time allowed for starting the worker and running the submission's definitions."""
    submission_seconds: float = 180.0
    """Wall time allowed for all checks of one submission together."""
    diagnosis_seconds: float = 20.0
    """Wall time allowed for naming the misconceptions of one submission's failed parts."""
    cpu_seconds: int = 120
    """CPU time of each worker process (RLIMIT_CPU), and of all a submission's processes together."""
    memory_bytes: int = 3 * 2**30
    """Memory of all a submission's processes together, with its private /tmp and /dev/shm (a cgroup, or the
    judge's watchdog); what the worker shares with its pre-warmed parent (torch) is not counted."""
    address_bytes: int = 3 * 2**30
    """Address space of each worker process (RLIMIT_AS): one huge allocation fails at once with a MemoryError."""
    processes: int = 32
    """Processes and threads the worker may have at once (RLIMIT_NPROC, counted for the worker alone)."""
    file_bytes: int = 16 * 2**20
    """Largest file the worker may write (RLIMIT_FSIZE)."""
    disk_bytes: int = 64 * 2**20
    """Size of the worker's private /tmp and /dev/shm together (bubblewrap only)."""
    output_bytes: int = 32 * 1024
    """Bytes of the worker's stdout/stderr kept for the feedback; the rest is counted and dropped."""
    message_bytes: int = 256 * 2**20
    """Largest reply the judge accepts from the worker."""
    source_bytes: int = 8 * 2**20
    """Largest submission file accepted; larger files are rejected before parsing."""
    archive_members: int = 5000
    """Most entries a .zip given to `autograder grade` may hold (a class's download); more: the zip is refused."""
    archive_bytes: int = 2 * 2**30
    """Largest total size of a .zip's files once unpacked (what its directory declares, and what is written)."""
    archive_member_bytes: int = 64 * 2**20
    """Largest unpacked size of one file in a .zip; a larger file gets a record that says so, the rest is graded."""
    archive_ratio: float = 200.0
    """Largest unpacked/packed size ratio of one file in a .zip (a zip bomb packs far more; notebooks ~5-20)."""
    archive_depth: int = 2
    """How deep .zip files inside .zip files are unpacked (2: a student's zip inside the class's download)."""
    restarts: int = 20
    """How many times a crashed worker is restarted for later checks of the same submission."""

    def with_overrides(self, assignments: list[str]) -> Limits:
        """Apply "name=value" strings; byte sizes may end in KiB, MiB or GiB ("memory_bytes=2GiB")."""
        changes: dict[str, float | int] = {}
        for assignment in assignments:
            name, sep, value = assignment.partition("=")
            name = name.strip()
            for unit in ("_bytes", "_seconds"):  # "memory=2GiB" for memory_bytes=2GiB
                if name + unit in self.__dataclass_fields__:
                    name += unit
            if not sep or name not in self.__dataclass_fields__:
                known = ", ".join(self.__dataclass_fields__)
                raise ValueError(f"--limit {assignment!r}: expected NAME=VALUE with NAME one of {known}")
            kind = float if isinstance(getattr(self, name), float) else int
            changes[name] = _number(value.strip(), kind, name)
        return replace(self, **changes)


_UNITS = {"kib": 2**10, "mib": 2**20, "gib": 2**30, "k": 2**10, "m": 2**20, "g": 2**30}


def _number(text: str, kind: type, name: str) -> float | int:
    match = re.fullmatch(r"([0-9]*\.?[0-9]+)\s*([a-zA-Z]*)", text)
    unit = _UNITS.get(match.group(2).lower()) if match and match.group(2) else 1
    if match is None or unit is None:
        raise ValueError(f"--limit {name}={text}: not a number (byte sizes may end in KiB, MiB or GiB)")
    value = float(match.group(1)) * unit
    if value <= 0:
        raise ValueError(f"--limit {name}={text}: must be positive")
    return kind(value)


CGROUP_SWITCH = "AUTOGRADER_CGROUP"
"""The variable that turns the cgroups off ("off"); see Environment.cgroups."""
FORK_SWITCH = "AUTOGRADER_FORK_SERVER"
"""The variable that turns the fallback's fork server off ("off"); see Environment.fork_server."""
TORCH_SETTINGS = {"TORCH_DEVICE_BACKEND_AUTOLOAD": "0"}
"""Set in the kit's own processes (the command, its judges and sandboxes; never a student's kernel): on import, torch
then skips looking through every installed package's entry points for device backends to load (about 30 ms of each
`import torch` here; grading runs on the CPU)."""


@dataclass(frozen=True)
class Environment:
    """The environment variables the kit reads; nothing else in the kit reads any (see `environment()`)."""

    lang: str | None = None
    """AUTOGRADER_LANG: the feedback language in a notebook kernel (default: the notebook's, nbgrader's "en")."""
    solutions: Path | None = None
    """AUTOGRADER_SOLUTIONS: the folder holding en/<notebook>.ipynb, for nbgrader's kernels."""
    assignment: Path | None = None
    """AUTOGRADER_ASSIGNMENT: the assignment's folder (default: chapter 3's, autograder/chapters/ch03_attention)."""
    nbgrader_validate: bool = False
    """NBGRADER_EXECUTION=validate: `nbgrader validate` runs the notebook, so a failed self-check raises."""
    notebook: str | None = None
    """JPY_SESSION_NAME: the file of the notebook this Jupyter kernel runs."""
    root: Path | None = None
    """AUTOGRADER_ROOT: the container's folder (Gradescope's /autograder, PrairieLearn's /grade)."""
    source: Path | None = None
    """AUTOGRADER_SOURCE: where the kit lives in the PrairieLearn grader image (/grader/kit)."""
    profile: Path | None = None
    """AUTOGRADER_PROFILE: the file each process appends its time per stage to (stopwatch.py; the benchmark)."""
    fork_server: bool = True
    """AUTOGRADER_FORK_SERVER=off: start each fallback worker on its own, without the fork server (the
    benchmark's "before")."""
    cgroups: bool = True
    """AUTOGRADER_CGROUP=off: hold a submission's memory with the judge's watchdog alone, never a cgroup (the
    fallback's tests; a machine where the groups misbehave)."""
    cache: Path | None = None
    """AUTOGRADER_CACHE: the folder of what the kit keeps between runs (the reference's answers, per kit version);
    "off": keep nothing; unset: $XDG_CACHE_HOME/autograder, else ~/.cache/autograder."""


def environment() -> Environment:
    """Read the kit's environment variables now (unset or empty ones are None)."""
    def path(name: str) -> Path | None:
        return Path(os.environ[name]) if os.environ.get(name) else None

    return Environment(lang=os.environ.get("AUTOGRADER_LANG") or None, solutions=path("AUTOGRADER_SOLUTIONS"),
                       assignment=path("AUTOGRADER_ASSIGNMENT"),
                       nbgrader_validate=os.environ.get("NBGRADER_EXECUTION") == "validate",
                       notebook=os.environ.get("JPY_SESSION_NAME") or None, root=path("AUTOGRADER_ROOT"),
                       source=path("AUTOGRADER_SOURCE"), cgroups=os.environ.get(CGROUP_SWITCH) != "off",
                       profile=path("AUTOGRADER_PROFILE"), fork_server=os.environ.get(FORK_SWITCH) != "off",
                       cache=_cache_folder())


def _cache_folder() -> Path | None:
    chosen = os.environ.get("AUTOGRADER_CACHE")
    if chosen == "off":
        return None
    if chosen:
        return Path(chosen)
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "autograder"


@dataclass(frozen=True)
class Config:
    """Everything the grader is told (limits, paths, parallelism), in one place."""

    limits: Limits = field(default_factory=Limits)
    assignment: Assignment = field(default_factory=lambda: load_assignment(environment().assignment))
    """What is graded: the graded names, points and checks (assignment.py), read from the assignment's folder."""
    solutions: Path = None  # type: ignore[assignment] - set in __post_init__
    """The instructor's sources (default: the folder the assignment names, else the kit's solutions/)."""
    lang: str = "en"
    jobs: int = field(default_factory=lambda: os.cpu_count() or 1)
    sandbox: str = "auto"
    """"auto" (bubblewrap when available), "bwrap" (required) or "process" (fallback only)."""
    cache: Path | None = field(default_factory=lambda: environment().cache)
    """The folder of what the kit keeps between runs (AUTOGRADER_CACHE); None: keep nothing."""

    def __post_init__(self):
        if self.solutions is None:
            object.__setattr__(self, "solutions", self.assignment.solutions or ROOT / "solutions")

    def with_(self, **changes) -> Config:
        if "assignment" in changes and "solutions" not in changes:
            changes["solutions"] = None  # the new assignment's own
        return replace(self, **changes)

    @property
    def reference_notebook(self) -> Path:
        return self.assignment.notebook_in(self.solutions)


PROBE_SECRET = "probe_secret.txt"
"""The course's secret beside the solutions (git-ignored): the attention gate's probes are drawn from it."""


def probe_seed(solutions: Path, content: str) -> int:
    """The seed of the attention gate's probes for a submission whose graded code is `content`: from the course's
    secret (made on first use, kept with the solutions) and that code, so a regrade draws the same probes but a
    student who reads the kit cannot know them. Without a solutions folder (a student's bundle) the secret is ""."""
    secret = ""
    path = solutions / PROBE_SECRET
    if solutions.is_dir():
        try:
            if not path.exists():
                made = path.with_name(f".{PROBE_SECRET}.{os.getpid()}")
                made.write_text(secrets.token_hex(16), encoding="utf-8")
                os.chmod(made, 0o600)
                try:
                    os.link(made, path)  # the first judge's secret wins; the others read it
                except FileExistsError:
                    pass
                made.unlink()
            secret = path.read_text(encoding="utf-8").strip()
        except OSError:  # a read-only copy of the solutions: the probes are drawn from the code alone
            secret = ""
    return int.from_bytes(hashlib.sha256(f"{secret}\n{content}".encode()).digest()[:4], "big")
