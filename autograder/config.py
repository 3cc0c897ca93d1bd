"""Settings an instructor may change: limits, points layout, paths."""
from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# Graded names in notebook order, with the chapter section they belong to.
GRADED: dict[str, str] = {
    "softmax_naive": "3.3",
    "simple_self_attention": "3.3",
    "SelfAttention_v1": "3.4",
    "SelfAttention_v2": "3.4",
    "load_v2_weights_into_v1": "3.4",
    "CausalAttention": "3.5",
    "MultiHeadAttentionWrapper": "3.6",
    "exercise_3_2": "3.6",
    "MultiHeadAttention": "3.6",
    "exercise_3_3": "3.6",
}


@dataclass(frozen=True)
class Limits:
    """Resource limits for one submission's worker."""

    call_seconds: float = 10.0
    """Wall time allowed for one call into the student's code (construct, forward, ...)."""
    load_seconds: float = 30.0
    """Wall time allowed for importing the submission's definitions."""
    submission_seconds: float = 180.0
    """Wall time allowed for all checks of one submission together."""
    cpu_seconds: int = 120
    """CPU time of the worker process (RLIMIT_CPU)."""
    memory_bytes: int = 3 * 2**30
    """Address space of the worker process (RLIMIT_AS)."""
    processes: int = 32
    """Processes and threads the worker may have (RLIMIT_NPROC, inside its own user namespace)."""
    file_bytes: int = 16 * 2**20
    """Largest file the worker may write (RLIMIT_FSIZE)."""
    output_bytes: int = 32 * 1024
    """Bytes of the worker's stdout/stderr kept for the feedback."""
    message_bytes: int = 256 * 2**20
    """Largest reply the judge accepts from the worker."""
    source_bytes: int = 8 * 2**20
    """Largest submission file accepted; larger files are rejected before parsing."""
    restarts: int = 20
    """How many times a crashed worker is restarted for later checks of the same submission."""


@dataclass(frozen=True)
class Config:
    """Everything the grader reads from its environment, in one place."""

    limits: Limits = field(default_factory=Limits)
    solutions: Path = ROOT / "solutions"
    lang: str = "en"
    jobs: int = field(default_factory=lambda: os.cpu_count() or 1)
    sandbox: str = "auto"
    """"auto" (bubblewrap when available), "bwrap" (required) or "process" (fallback only)."""

    def with_(self, **changes) -> Config:
        return replace(self, **changes)

    @property
    def reference_notebook(self) -> Path:
        return self.solutions / "en" / "ch03_attention.ipynb"
