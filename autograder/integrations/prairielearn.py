"""PrairieLearn: the question folder and grader image (`autograder export prairielearn`) and the run inside it."""
from __future__ import annotations

import json
import shutil
import sys
import time
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path

from autograder.assignment import Assignment
from autograder.config import ROOT, Config, environment
from autograder.i18n import LANGS, t
from autograder.integrations import hosted
from autograder.integrations.hosted import grade_upload, kit_files, lock, part_lines, require_checkout
from autograder.record import SubmissionResult
from autograder.report.records import write_atomic
from autograder.report.render import render


def question_name(assignment: Assignment | None = None) -> str:
    """The question's folder name: the notebook's of the assignment (default: the one graded here)."""
    return (assignment or Config().assignment).notebook


def uploads(assignment: Assignment | None = None) -> tuple[str, str]:
    """What students may upload: the Jupyter notebook or the marimo file (one is enough)."""
    return f"{question_name(assignment)}.ipynb", f"{question_name(assignment)}.py"
HIDDEN_MODES = ("summary", "visible")
RESULTS_LIMIT = 1_000_000
"""PrairieLearn's documented size limit of results.json, in bytes."""
OUTPUT_CHARS = 4000
"""Longest output kept per test, so that a noisy submission stays under RESULTS_LIMIT."""
TEMPLATES = "autograder.integrations"
"""Whose templates/ folder holds the question page, the Dockerfile and the run script."""


@dataclass(frozen=True)
class PrairieLearnSettings:
    """What the question and its grader do; written into the image as prairielearn.json."""

    image: str = "attention-autograder-grader"
    """The grader image's name, as `docker pull` understands it (info.json's externalGradingOptions.image)."""
    timeout: int = 300
    """Seconds PrairieLearn gives one grading job (its own limit is 600)."""
    hidden_checks: str = "summary"
    """"summary": hidden checks count but show as one line with their total; "visible": shown like the others."""

    def __post_init__(self) -> None:
        if self.hidden_checks not in HIDDEN_MODES:
            raise ValueError(f"hidden_checks={self.hidden_checks!r}: choose one of {', '.join(HIDDEN_MODES)}")
        if not 1 <= self.timeout <= 600:
            raise ValueError(f"timeout={self.timeout}: PrairieLearn accepts 1 to 600 seconds")


def info_json(settings: PrairieLearnSettings) -> dict:
    """The question's info.json; the uuid is derived from the image name, so re-exports keep the question."""
    return {
        "uuid": str(uuid.uuid5(uuid.NAMESPACE_URL, f"attention-autograder/{settings.image}/{question_name()}")),
        "title": t("pl.title", "en"), "topic": "Attention mechanisms", "tags": ["llm", "attention", "chapter3"],
        "type": "v3", "singleVariant": True, "gradingMethod": "External",
        "externalGradingOptions": {"enabled": True, "image": settings.image, "entrypoint": "/grader/run",
                                   "timeout": settings.timeout},
    }


def export(out: Path, settings: PrairieLearnSettings = PrairieLearnSettings(), root: Path = ROOT,
           torch_version: str | None = None) -> list[str]:
    """Write out/questions/ch03_attention (the question) and out/grader (the image's build folder).

    Returns the written files relative to `out`.
    """
    assignment = Config().assignment
    handouts = root / hosted.in_checkout(assignment, "handouts")
    require_checkout(root, *(handouts / lang / name for lang in LANGS for name in uploads()), assignment=assignment)
    torch_version = hosted.torch_version(torch_version)
    question, grader = out / "questions" / question_name(), out / "grader"
    for folder in (question, grader):
        shutil.rmtree(folder, ignore_errors=True)
    texts = []
    for lang in LANGS:  # a folder per language: the downloaded file has the name the upload expects
        (question / "clientFilesQuestion" / lang).mkdir(parents=True)
        names = []
        for name in uploads():
            shutil.copy(handouts / lang / name, question / "clientFilesQuestion" / lang / name)
            names.append(f"{lang}/{name}")
        texts.append({"lang": lang.replace("_", "-"), "title": t("pl.title", lang), "body": t("pl.body", lang),
                      "download": t("pl.download", lang), "files": names})
    (question / "info.json").write_text(json.dumps(info_json(settings), indent=2) + "\n", encoding="utf-8")
    (question / "question.html").write_text(render("pl_question.html.j2", package=TEMPLATES, texts=texts,
                                                   upload=uploads()), encoding="utf-8")
    for path in kit_files(root):
        target = grader / "kit" / path.relative_to(root)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(path, target)
    (grader / "kit" / "prairielearn.json").write_text(json.dumps(asdict(settings), indent=1) + "\n")
    (grader / "kit" / hosted.MANIFEST).write_text(json.dumps(hosted.manifest(assignment), indent=1) + "\n")
    python = f"{sys.version_info.major}.{sys.version_info.minor}"
    (grader / "Dockerfile").write_text(render("pl_Dockerfile.j2", package=TEMPLATES, image=settings.image,
                                              python=python, torch=torch_version), encoding="utf-8")
    (grader / "run").write_text(render("pl_run.sh.j2", package=TEMPLATES), encoding="utf-8")
    (grader / "run").chmod(0o755)
    return sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())


def _clip(text: str) -> str:
    return text if len(text) <= OUTPUT_CHARS else text[:OUTPUT_CHARS] + "\n…"


def to_prairielearn(record: SubmissionResult, shown: str, settings: PrairieLearnSettings,
                    assignment: Assignment | None = None) -> dict:
    """A kit record as PrairieLearn's results.json: score as a fraction, one test per check."""
    lang = record.language if record.language in LANGS else "en"
    if record.error and not record.tests:  # nothing could be checked: PrairieLearn keeps the attempt
        return {"gradable": False, "score": 0.0, "format_errors": [record.error],
                "message": t("pl.not_gradable", lang, name=shown), "output": _clip(record.output)}
    tests, hidden = [], [c for c in record.tests if c.visibility == "hidden" and settings.hidden_checks == "summary"]
    folded = {id(c) for c in hidden}
    for check in record.tests:
        if id(check) not in folded:
            tests.append({"name": check.name, "description": ", ".join(check.tags), "points": check.score,
                          "max_points": check.max_score, "message": t(f"pl.{check.status}", lang),
                          "output": _clip(check.output)})
    if hidden:
        passed = sum(c.status == "passed" for c in hidden)
        tests.append({"name": t("pl.hidden_name", lang), "description": t("pl.hidden_description", lang),
                      "points": sum(c.score for c in hidden), "max_points": sum(c.max_score for c in hidden),
                      "message": t("pl.hidden_message", lang, passed=passed, total=len(hidden)), "output": ""})
    return {
        "gradable": True, "score": record.score / record.max_score if record.max_score else 0.0,
        "message": t("pl.summary", lang, name=shown, score=record.score, max_score=record.max_score),
        "output": _clip("\n".join(filter(None, [record.error, record.output, *part_lines(record, assignment)]))),
        "tests": tests,
    }


def _failure(message: str) -> dict:
    return {"gradable": False, "score": 0.0, "format_errors": [message], "message": message, "tests": []}


def run(root: Path, source: Path) -> dict:
    """Grade root/student and write root/results/results.json; returns what was written."""
    started = time.monotonic()
    settings_file = source / "prairielearn.json"
    settings = PrairieLearnSettings(**json.loads(settings_file.read_text())) if settings_file.is_file() \
        else PrairieLearnSettings()
    lock(source, root / "results")  # PrairieLearn does not create results/; we do, for root only
    assignment, solutions = hosted.graded_in(source)
    graded = grade_upload(root / "student", solutions, assignment)
    if graded.shown is None:
        names = " / ".join(uploads(assignment))
        results = _failure(" / ".join(t("pl.no_file", lang, names=names) for lang in LANGS))
    elif graded.record is None:
        results = _failure(" / ".join(t("pl.crashed", lang, name=graded.shown) for lang in LANGS))
    else:
        results = to_prairielearn(graded.record, graded.shown, settings, assignment)
    text = json.dumps(results, ensure_ascii=False, indent=1)
    if len(text.encode()) > RESULTS_LIMIT:  # never in practice (outputs are clipped); still a valid file
        results = {**results, "tests": [{**test, "output": ""} for test in results.get("tests", [])], "output": ""}
        text = json.dumps(results, ensure_ascii=False, indent=1)
    write_atomic(root / "results" / "results.json", text)
    print(f"{results['message']} ({time.monotonic() - started:.1f} s)")
    return results


if __name__ == "__main__":
    settings = environment()
    run(Path(sys.argv[1]) if len(sys.argv) > 1 else settings.root or Path("/grade"),
        Path(sys.argv[2]) if len(sys.argv) > 2 else settings.source or Path("/grader/kit"))
