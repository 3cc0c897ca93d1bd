"""The instructor's batch: find submissions, grade them in parallel judges, keep exactly one record each."""
from __future__ import annotations

import hashlib
import json
import os
import re
import selectors
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from autograder.config import Config
from autograder.i18n import t
from autograder.results import SubmissionResult, load, save

SUFFIXES = {".ipynb", ".py"}


@dataclass(frozen=True)
class Entry:
    """A submission file and the name its record is written under."""

    path: Path
    name: str
    outside: bool = False
    """A symlink that points outside the folder it was found in."""


def discover(paths: list[Path]) -> list[Entry]:
    """Submissions under `paths`: files as given; in folders, every .ipynb and .py file."""
    found: list[tuple[Path, str, bool]] = []
    for root in paths:
        root = Path(root)
        if root.is_dir():
            base = root.resolve()
            for path in sorted(root.rglob("*")):
                relative = path.relative_to(root)
                if any(p.startswith(".") for p in relative.parts) or path.suffix.lower() not in SUFFIXES:
                    continue
                if path.is_symlink() or path.is_file():
                    outside = not path.resolve().is_relative_to(base)
                    found.append((path, "__".join(relative.parts), outside))
        else:
            found.append((root, root.name, False))
    entries, seen = [], set()
    for path, name, outside in found:
        name = re.sub(r"[^\w.\-]+", "_", name)
        unique, n = name, 1
        while unique in seen:
            n += 1
            unique = f"{name}~{n}"
        seen.add(unique)
        entries.append(Entry(path, unique, outside))
    return entries


def _up_to_date(entry: Entry, record_path: Path) -> bool:
    try:
        record = json.loads(record_path.read_text(encoding="utf-8"))
        digest = hashlib.sha256(entry.path.read_bytes()).hexdigest()
    except (OSError, ValueError):
        return False
    return record.get("submission") == str(entry.path) and record.get("sha256") == digest


def grade(paths: list[Path], out: Path, config: Config, force: bool = False, lang: str | None = None,
          progress: Callable[[int, int, str], None] | None = None) -> list[tuple[str, SubmissionResult]]:
    """Grade every submission under `paths` into `out`; returns (name, record) for each, in order."""
    from autograder.sandbox import isolation_for

    out.mkdir(parents=True, exist_ok=True)
    entries = discover(paths)
    todo = [e for e in entries if force or not _up_to_date(e, out / f"{e.name}.json")]
    isolation = isolation_for(config.sandbox)
    done = len(entries) - len(todo)
    if progress:
        progress(done, len(entries), "")
    slots = max(1, min(config.jobs, len(todo)))
    chunks = [todo[i::slots] for i in range(slots)] if todo else []
    judges = [_start_judge(chunk, out, config, isolation, lang) for chunk in chunks]
    selector = selectors.DefaultSelector()
    for judge in judges:
        selector.register(judge.stdout, selectors.EVENT_READ)
    open_streams = len(judges)
    while open_streams:
        for key, _ in selector.select():
            line = key.fileobj.readline()
            if not line:
                selector.unregister(key.fileobj)
                open_streams -= 1
                continue
            done += 1
            if progress:
                progress(done, len(entries), line.strip())
    for judge in judges:
        judge.wait()
    records = []
    for entry in entries:
        path = out / f"{entry.name}.json"
        try:
            record = load(path)
        except (OSError, ValueError, TypeError):  # the judge died before writing: still one record
            record = SubmissionResult(submission=str(entry.path), score=0.0, max_score=0.0, execution_time=0.0,
                                      error=t("grader.no_record", lang or config.lang))
            save(record, path)
        records.append((entry.name, record))
    return records


def _start_judge(chunk: list[Entry], out: Path, config: Config, isolation: str, lang: str | None):
    spec = {
        "out": str(out), "isolation": isolation, "lang": lang, "solutions": str(config.solutions),
        "limits": config.limits.__dict__,
        "entries": [{"path": str(e.path), "name": e.name, "outside": e.outside} for e in chunk],
    }
    process = subprocess.Popen([sys.executable, "-m", "autograder.batch"], stdin=subprocess.PIPE,
                               stdout=subprocess.PIPE, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    process.stdin.write(json.dumps(spec))
    process.stdin.close()
    return process
