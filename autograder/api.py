"""The kit as a library: grade a file or a class, self-check a file, write the overview, build, bundle, export.

Grading one file is the pipeline (pipeline.grade): load -> sandbox -> judge -> explain -> record. The command
line calls these functions; these, the batch's judge processes, Gradescope, PrairieLearn, the notebook's
check() and nbgrader's grade() all call pipeline.grade.
"""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from autograder.config import Config
from autograder.record import SubmissionResult

__all__ = ["build_assignments", "check_file", "export", "grade_file", "grade_folder", "similarity_report",
           "student_bundle", "write_overview"]


def grade_folder(paths: list[Path], out: Path, config: Config | None = None, jobs: int | None = None,
                 force: bool = False, lang: str | None = None,
                 progress: Callable[[int, int, str], None] | None = None,
                 notice: Callable[[str], None] | None = None,
                 plan: Callable[[int, int], None] | None = None) -> list[tuple[str, SubmissionResult]]:
    """Grade every submission under `paths` into `out`: a record (JSON and feedback page) each, and grades.csv.

    Args:
        jobs: submissions graded in parallel; None: as many as the machine fits (at most `config.jobs`).
        force: regrade submissions whose record is up to date.
        lang: the feedback language; None: each notebook's own.
        progress: called with (done, total, name) as records are written.
        notice: receives what the instructor should know before the batch starts (isolation, limits, jobs).
        plan: called with (to grade, reused) before the batch starts; a reused record is up to date (same file,
            same checks, same kit) and is kept as it is.

    Returns:
        (name, record) for each submission, in order.

    Raises:
        FileNotFoundError: a path does not exist.
        ValueError: `jobs` is below 1, or more than the machine's memory fits.
        RuntimeError: the sandbox `config.sandbox` asks for is not available here.
    """
    from autograder.batch.capacity import plan_jobs, scope
    from autograder.batch.pool import grade
    from autograder.i18n import t
    from autograder.report.gradebook import write_gradebook
    from autograder.sandbox.capability import isolation_for, weaknesses

    config = config or Config()
    say = notice or (lambda line: None)
    missing = [p for p in paths if not Path(p).exists() and not Path(p).is_symlink()]
    if missing:
        raise FileNotFoundError(f"{missing[0]}: no such file or folder")
    config = config.with_(jobs=jobs) if jobs is not None else config
    if config.jobs < 1:
        raise ValueError("--jobs must be at least 1")
    isolation = isolation_for(config.sandbox)
    if isolation != "bwrap":
        say(t("ui.isolation_warning", lang or "en"))
    for weakness in weaknesses(isolation):
        say(f"WARNING: {weakness}")
    for holds in scope(config.limits, isolation):
        say(f"LIMITS {holds}")
    count, jobs_plan = plan_jobs(config.jobs, config.limits, explicit=jobs is not None)
    say(f"JOBS {jobs_plan}")
    records = grade(paths, out, config.with_(jobs=count), isolation, force=force, lang=lang, progress=progress,
                    notice=say, plan=plan)
    write_gradebook(records, out / "grades.csv", config.assignment.graded)
    return records


def grade_file(path: Path, config: Config | None = None, lang: str | None = None,
               pictures: bool = True) -> SubmissionResult:
    """Grade one file to its record, as `autograder grade` would, in this process (no pool of judges).

    Args:
        lang: the feedback language; None: the notebook's own.
        pictures: compute the attention pictures' data (for a feedback page).

    Raises:
        RuntimeError: the sandbox `config.sandbox` asks for is not available here.
    """
    from autograder.pipeline import grade, sandboxed

    config = config or Config()
    run = sandboxed(config, lang=lang, pictures=pictures)  # first: the sandbox imports torch while we do
    from autograder.sources import File

    return grade(File(Path(path)), config, run)


def check_file(path: Path, config: Config | None = None, lang: str | None = None, parts: set[str] | None = None,
               html: Path | None = None):
    """The student's self-check of a file: the visible checks, the submission in a worker as when graded.

    Args:
        lang: the checklist's language; None: the notebook's own.
        parts: only the checks of these graded names.
        html: also write the feedback page there (diagnoses and pictures where explain/ ships).

    Returns:
        An integrations.selfcheck.Checklist (`.passed`, `.text()`, shown as HTML in a notebook).

    Raises:
        FileNotFoundError: there is no such file.
    """
    from autograder.pipeline import grade, sandboxed

    config = config or Config()
    if not Path(path).exists():
        raise FileNotFoundError(f"{path}: no such file")
    run = sandboxed(config, lang=lang, parts=parts, visible_only=True, pictures=html is not None)  # first: see there
    from autograder.integrations.selfcheck import Checklist
    from autograder.sources import File

    record = grade(File(Path(path)), config, run)
    checklist = Checklist(record, record.language)
    if html is not None:
        from autograder.report.feedback_page import write_feedback

        write_feedback(record, html, checklist.lang)
    return checklist


def write_overview(graded: Path, lang: str = "en", against: list[Path] = ()) -> Path:
    """Write graded/report.html, the class overview, with its similarity section (graded/similarity.html and
    .csv, written when the graded submissions can be read); returns its path.

    Raises:
        NotADirectoryError: `graded` is not a folder.
    """
    from autograder.report.class_overview import write_overview as write

    if not Path(graded).is_dir():
        raise NotADirectoryError(f"{graded}: no such folder")
    section = None
    try:
        written = similarity_report([Path(graded)], Path(graded), list(against), lang)
        section = {"page": written.page.name, "pairs": written.summary, "count": len(written.comparison.pairs),
                   "error": None}
    except (ImportError, OSError, ValueError) as exc:  # no records, no readable submission, no instructor extra
        section = {"error": str(exc)}
    return write(Path(graded), lang, section)


def similarity_report(paths: list[Path], out: Path, against: list[Path] = (), lang: str = "en", settings=None):
    """Compare a class with itself and with `against` (the book's repository, last year's class): out/similarity.html
    (ranked pairs, clusters, each pair side by side), out/similarity.csv and, for a grade folder, each record's
    instructor-only `similarity_notes`. `paths`: one grade folder, or submission files and folders.

    Returns:
        A similarity.report.Written (the paths, the comparison, the files that could not be read).

    Raises:
        FileNotFoundError: a path or an --against folder does not exist.
        ValueError: nothing to compare (an empty folder), or an --against folder without code.
        ImportError: copydetect is missing (pip install ".[instructor]").
    """
    from autograder.similarity.run import similarity

    return similarity([Path(p) for p in paths], Path(out), [Path(a) for a in against], lang, settings)


def build_assignments(check: bool = False, config: Config | None = None) -> list[Path]:
    """Regenerate the assignment's handouts (assignments/) from its solutions; returns the files changed
    (check=True: that would change).

    Raises:
        ModuleNotFoundError: the instructor's tools (nbgrader) are not installed.
        FileNotFoundError: the assignment names no solutions or no handouts folder.
    """
    import autograder.load.submission  # noqa: F401 - first: it keeps nbformat's import fast (see there)
    from autograder.authoring.build import build

    assignment = (config or Config()).assignment
    if assignment.solutions is None or assignment.handouts is None:
        raise FileNotFoundError(f"{assignment.folder / 'assignment.toml'} names no solutions or no handouts folder")
    return build(check=check, solutions=assignment.solutions, handouts=assignment.handouts)


def student_bundle(out: Path, config: Config | None = None) -> list[str]:
    """Write the student zip (assignments and visible checks, no solutions) at `out`; returns its file names."""
    from autograder.authoring.bundle import student_bundle as bundle

    return bundle(Path(out), assignment=(config or Config()).assignment)


def export(target: str, out: Path, hidden_visibility: str | None = None, image: str = "attention-autograder-grader",
           timeout: int = 300, graded: Path | None = None, roster: Path | None = None, assignment: str | None = None,
           parts: bool = False, key: str = "email", notice: Callable[[str], None] | None = None):
    """Write what a course platform needs, as `autograder export TARGET` does.

    "gradescope": the autograder zip; "prairielearn": the question folder and the grader image's build folder;
    "canvas", "moodle": `graded`'s scores as the CSV the gradebook imports, students matched through `roster`.

    Args:
        hidden_visibility: when students see the hidden checks (Gradescope: hidden, after_due_date,
            after_published; PrairieLearn: summary or visible); None: the platform's default.
        image, timeout: PrairieLearn's grader image name and seconds per grading job.
        graded, roster, assignment, parts, key, notice: Canvas and Moodle (see integrations.lms.export_grades).

    Returns:
        Gradescope, PrairieLearn: the files written (names in the zip, paths relative to `out`);
        Canvas, Moodle: an integrations.lms.GradesExport (who matched, what did not, where that is listed).

    Raises:
        ValueError: a setting the platform does not accept, or a grade folder without records.
        FileNotFoundError: a missing input (the solutions: export from the kit's repository checkout).
    """
    if target == "gradescope":
        from autograder.integrations.gradescope import GradescopeSettings
        from autograder.integrations.gradescope import export as write

        return write(Path(out), GradescopeSettings(hidden_checks=hidden_visibility or "hidden"))
    if target == "prairielearn":
        from autograder.integrations.prairielearn import PrairieLearnSettings
        from autograder.integrations.prairielearn import export as write

        settings = PrairieLearnSettings(image=image, timeout=timeout, hidden_checks=hidden_visibility or "summary")
        return write(Path(out), settings)
    if target in ("canvas", "moodle"):
        from autograder.integrations.lms import export_grades

        return export_grades(target, Path(graded), Path(roster), Path(out), assignment, parts, key, notice)
    raise ValueError(f"export {target!r}: choose gradescope, prairielearn, canvas or moodle")
