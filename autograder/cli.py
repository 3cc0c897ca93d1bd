"""Command line: parse, call the library (autograder.api), print, and turn what happened into an exit code."""
from __future__ import annotations

import argparse
import functools
import importlib.util
import os
import sys
from pathlib import Path

from autograder.config import ROOT, TORCH_SETTINGS, Config
from autograder.exiting import exit_quickly
from autograder.i18n import LANGS

EPILOG = """exit codes: 0 success; 1 the job ran but found problems (failed checks, stale files);
2 wrong usage (unknown option, missing file, limits the reference solution fails)."""

TOP_EXAMPLES = """examples:
  autograder check assignments/en/ch03_attention.ipynb     # a student's self-check
  autograder grade submissions/ --out graded/              # grade a class
  autograder export gradescope --out autograder.zip        # the Gradescope autograder
  autograder diff graded/ graded-v2/                       # what a regrade changed, before release
  autograder COMMAND --help                                # the options of one command

"""


def _check(args: argparse.Namespace, config: Config) -> int:
    from autograder.api import check_file

    try:
        checklist = check_file(args.notebook, config, args.lang, set(args.part) if args.part else None, args.html)
    except FileNotFoundError as exc:
        print(f"autograder check: {exc}", file=sys.stderr)
        return 2
    print(checklist.text(verbose=args.verbose))
    return 0 if checklist.passed else 1


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


def _grade(args: argparse.Namespace, config: Config) -> int:
    from autograder.api import grade_folder
    from autograder.report.gradebook import summary_table

    def progress(done: int, total: int, name: str) -> None:
        width = 30
        filled = width * done // max(total, 1)
        print(f"\r[{'#' * filled}{'.' * (width - filled)}] {done}/{total} {name[:40]:<40}", end="", file=sys.stderr,
              flush=True)

    counts = {"graded": 0, "reused": 0}

    def plan(todo: int, reused: int) -> None:
        counts.update(graded=todo, reused=reused)
        if reused:
            print(f"REUSED {_count(reused, 'up-to-date record')} of an earlier run (--force regrades them); "
                  f"grading {todo}", file=sys.stderr)

    try:
        records = grade_folder(args.paths, args.out, config, args.jobs, force=args.force, lang=args.lang,
                               progress=progress, notice=lambda line: print(line, file=sys.stderr), plan=plan)
    except (FileNotFoundError, ValueError, RuntimeError) as exc:  # ValueError: also limits the reference fails
        print(f"\nautograder grade: {exc}", file=sys.stderr)
        return 2
    print(file=sys.stderr)
    print(summary_table(records, args.lang or "en"))
    ungraded = sum(1 for _, record in records if record.error)
    print(f"\n{_count(len(records), 'submission')}: {counts['graded']} graded now, {counts['reused']} reused "
          f"(up to date), {ungraded} not gradable (the record says why); records and grades.csv in {args.out}")
    defects = [name for name, record in records if record.internal_errors]
    if defects:  # the kit's own errors: scores stand, but say so where the instructor looks
        print(f"{len(defects)} record(s) note an error of the grader's own (internal_errors; please report it): "
              f"{', '.join(defects[:10])}{' ...' if len(defects) > 10 else ''}", file=sys.stderr)
    return 0 if all((args.out / f"{name}.json").exists() for name, _ in records) else 1


def _report(args: argparse.Namespace, config: Config) -> int:
    from autograder.api import write_overview

    try:
        print(f"wrote {write_overview(args.folder, args.lang, args.against or [])}")
    except NotADirectoryError as exc:
        print(f"autograder report: {exc}", file=sys.stderr)
        return 2
    return 0


def _similarity(args: argparse.Namespace, config: Config) -> int:
    from autograder.api import similarity_report

    try:
        written = similarity_report(args.paths, args.out, args.against or [], args.lang)
    except ImportError as exc:
        print(f"autograder similarity: needs {exc.name}; install the instructor's tools with pip install "
              "\".[instructor]\"", file=sys.stderr)
        return 2
    except (FileNotFoundError, ValueError) as exc:
        print(f"autograder similarity: {exc}", file=sys.stderr)
        return 2
    for item in written.unreadable:
        print(f"not compared: {item.name}: {item.reason}", file=sys.stderr)
    pairs = written.comparison.pairs
    print(f"{len(pairs)} pair(s) listed, strongest first, in {written.page} and {written.csv}")
    print("similar code is evidence for a person to weigh, not a verdict")
    return 1 if written.unreadable else 0


def _diff(args: argparse.Namespace, config: Config) -> int:
    from autograder.report.regrade import cli

    return cli(args)


def _build(args: argparse.Namespace, config: Config) -> int:
    from autograder import api

    if args.student:
        names = api.student_bundle(args.student)
        print(f"wrote {args.student} ({len(names)} files: assignments and visible checks only)")
        return 0
    try:
        changed = api.build_assignments(check=args.check)
    except ModuleNotFoundError as exc:  # nbgrader is the instructor's: pip install ".[instructor]"
        print(f"autograder build: needs {exc.name}; install the instructor's tools with pip install "
              "\".[instructor]\"", file=sys.stderr)
        return 2
    shown = [str(path.relative_to(ROOT)) for path in changed]
    if args.check:
        for name in shown:
            print(f"stale: {name}")
        print("run `autograder build` to regenerate assignments/ from solutions/" if changed
              else "assignments/ is up to date with solutions/")
        return 1 if changed else 0
    for path, name in zip(changed, shown):
        print(f"{'wrote' if path.exists() else 'removed'}: {name}")
    if not changed:
        print("assignments/ was already up to date")
    return 0


def _export(args: argparse.Namespace, config: Config) -> int:
    from autograder.api import export

    command = f"autograder export {args.platform}"
    if args.platform == "gradescope" and (args.graded is not None or args.hidden_visibility not in (
            None, "hidden", "after_due_date", "after_published")):
        print(f"{command}: takes no GRADED_DIR; --hidden-visibility is hidden, after_due_date or after_published",
              file=sys.stderr)
        return 2
    if args.platform == "prairielearn" and (args.out is None or args.graded is not None):
        print(f"{command}: give --out DIR (and no GRADED_DIR)", file=sys.stderr)
        return 2
    if args.platform in ("canvas", "moodle") and None in (args.graded, args.roster, args.out):
        print(f"{command}: give GRADED_DIR, --roster CSV and --out FILE", file=sys.stderr)
        return 2
    out = args.out or Path("autograder.zip")
    try:
        written = export(args.platform, out, args.hidden_visibility, args.image, args.timeout, args.graded,
                         args.roster, args.assignment, args.parts, args.key,
                         notice=lambda line: print(line, file=sys.stderr))
    except {"gradescope": FileNotFoundError, "prairielearn": (ValueError, FileNotFoundError)}.get(
            args.platform, (OSError, ValueError, UnicodeDecodeError)) as exc:
        print(f"{'autograder export' if args.platform == 'gradescope' else command}: {exc}", file=sys.stderr)
        return 2
    if args.platform == "gradescope":
        print(f"wrote {out} ({len(written)} files); upload it as the assignment's autograder on Gradescope")
    elif args.platform == "prairielearn":
        from autograder.integrations.prairielearn import question_name

        print(f"wrote {len(written)} files under {out}:\n"
              f"  copy {out / 'questions' / question_name()} into your course's questions/ folder\n"
              f"  build the grader: docker build -t {args.image} {out / 'grader'} && docker push {args.image}")
    else:
        found = written.found
        for kind, name, detail in found.problems:
            print(f"{kind}: {name}: {detail}", file=sys.stderr)
        print(f"wrote {out} ({found.written} of {len(found.rows)} students written, {len(found.records)} with a "
              f"grade; {written.records} records); {len(found.problems)} to look at in {written.unmatched}")
        return 1 if found.problems else 0
    return 0


def _explainer() -> str:
    """The module of the diagnosis with the reference (the assignment's explainer; "" when it has none)."""
    from autograder.config import Config

    return Config().assignment.explainer.partition(":")[0]


def _ships(module: str) -> bool:
    """Is this command's module part of this copy of the kit? The student bundle leaves the instructor's out."""
    if not module:
        return False
    try:
        spec = importlib.util.find_spec(module)
    except ModuleNotFoundError:  # its folder did not ship
        return False
    return spec is not None and spec.origin is not None and Path(spec.origin).is_relative_to(Path(__file__).parent)


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(
        prog="autograder", description="Teaching and grading kit for chapter 3 (attention mechanisms).",
        epilog=TOP_EXAMPLES + EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = top.add_subparsers(dest="command", required=True, metavar="COMMAND")
    command = functools.partial(commands.add_parser, formatter_class=argparse.RawDescriptionHelpFormatter)

    check = command(
        "check", help="self-check a notebook with the visible checks",
        description="Run the visible checks on a notebook and print a checklist with hints.",
        epilog="example:\n  autograder check assignments/en/ch03_attention.ipynb --lang zh_TW\n\n" + EPILOG,
    )
    check.add_argument("notebook", type=Path, help="a .ipynb, marimo .py or plain .py file")
    check.add_argument("--lang", choices=LANGS, help="feedback language (default: the notebook's)")
    check.add_argument("--part", action="append", metavar="NAME", help="check only this graded name (repeatable)")
    check.add_argument("--html", type=Path, metavar="FILE",
                       help="also write the feedback page (" + ("diagnoses, attention pictures, checklist"
                                                                if _ships(_explainer()) else "score and checklist")
                       + ") to FILE")
    check.add_argument("--verbose", action="store_true",
                       help="show every check of every part (default: a line per part, details for the parts begun)")
    check.set_defaults(run=_check)
    if not _ships("autograder.batch.pool"):  # the student bundle: the self-check is all it holds
        top.epilog = "example:\n  autograder check assignments/en/ch03_attention.ipynb\n\n" + EPILOG
        return top

    grade = command(
        "grade", help="grade a class of submissions",
        description="Grade submissions (files or folders) into one JSON record each and grades.csv.",
        epilog="example:\n  autograder grade submissions/ --out graded/ --jobs 2\n\n" + EPILOG,
    )
    grade.add_argument("paths", type=Path, nargs="+", metavar="PATH", help="submission files or folders")
    grade.add_argument("--out", type=Path, required=True, help="folder for the records and grades.csv")
    grade.add_argument("--jobs", type=int, help="submissions graded in parallel (default: number of cores)")
    grade.add_argument("--lang", choices=LANGS, help="feedback language (default: each notebook's)")
    grade.add_argument("--force", action="store_true", help="regrade submissions that already have a record")
    grade.add_argument("--sandbox", choices=["auto", "bwrap", "process"], default="auto",
                       help="isolation of student code (default: bubblewrap when available)")
    grade.add_argument("--limit", action="append", default=[], metavar="NAME=VALUE",
                       help="change one resource limit, e.g. call_seconds=5 or memory=2GiB (memory_bytes) "
                            "(repeatable; names and defaults: autograder/config.py Limits)")
    grade.set_defaults(run=_grade)

    report = command(
        "report", help="write the class overview of a grade folder",
        description="Write DIR/report.html for the instructor: score distribution, pass rate per check, "
                    "the most frequent misconceptions, the submissions that could not be graded, and the "
                    "strongest pairs of the similarity report (DIR/similarity.html).",
        epilog="example:\n  autograder report graded/ --lang zh_TW\n\n" + EPILOG,
    )
    report.add_argument("folder", type=Path, metavar="DIR", help="a folder written by autograder grade --out")
    report.add_argument("--lang", choices=LANGS, default="en", help="language of the page (default: en)")
    report.add_argument("--against", type=Path, action="append", metavar="FOLDER",
                        help="the similarity section also compares with the code in FOLDER (repeatable)")
    report.set_defaults(run=_report)

    similarity = command(
        "similarity", help="rank pairs of submissions that share unusual code (evidence, not a verdict)",
        description="Compare the graded definitions of a class with each other and with the folders named with "
                    "--against (the book's repository, last year's submissions). Writes OUT/similarity.html "
                    "(ranked pairs, clusters, each pair side by side with the shared code highlighted and why) "
                    "and OUT/similarity.csv; for a grade folder, also each record's instructor-only lines. "
                    "Exit 1 when a file could not be compared (each is named).",
        epilog="examples:\n  autograder similarity graded/ --out graded/\n"
               "  autograder similarity submissions/ --against LLMs-from-scratch/ --against last-year/ --out sim/\n\n"
               + EPILOG,
    )
    similarity.add_argument("paths", type=Path, nargs="+", metavar="GRADED_OR_SUBMISSIONS",
                            help="a folder written by autograder grade --out (its diagnoses count), or submission "
                                 "files and folders")
    similarity.add_argument("--against", type=Path, action="append", metavar="FOLDER",
                            help="also compare with the code in FOLDER (repeatable)")
    similarity.add_argument("--out", type=Path, required=True, help="folder for similarity.html and similarity.csv")
    similarity.add_argument("--lang", choices=LANGS, default="en", help="language of the page (default: en)")
    similarity.set_defaults(run=_similarity)

    diff = command(
        "diff", help="compare two grade folders before releasing a regrade",
        description="Compare the records of OLD_DIR and NEW_DIR (e.g. before and after fixing a check): who changed "
                    "and by how much, which checks flipped for whom, the score distribution before and after, and "
                    "why (the check modules whose source changed, another kit version, resubmitted files). Prints "
                    "a table and writes NEW_DIR/diff.html next to the class overview; exit 1 when a score moved.",
        epilog="example:\n  autograder grade submissions/ --out graded-v2/ && autograder diff graded/ graded-v2/\n\n"
               + EPILOG,
    )
    diff.add_argument("old", type=Path, metavar="OLD_DIR", help="the grade folder students have seen")
    diff.add_argument("new", type=Path, metavar="NEW_DIR", help="the regraded folder; diff.html is written here")
    diff.add_argument("--lang", choices=LANGS, default="en", help="language of the report (default: en)")
    diff.set_defaults(run=_diff)

    build = command(
        "build", help="regenerate assignments/ from solutions/",
        description="Generate the student notebooks (Jupyter and marimo, both languages) from solutions/.",
        epilog="examples:\n  autograder build --check\n  autograder build --student ch03-student.zip\n\n" + EPILOG,
    )
    build.add_argument("--check", action="store_true", help="write nothing; exit 1 when a file is stale")
    build.add_argument("--student", type=Path, metavar="ZIP",
                       help="instead, write the student bundle: assignments and visible checks, no solutions")
    build.set_defaults(run=_build)
    export = command(
        "export", help="write what a course platform needs (gradescope, prairielearn) or grades for an LMS "
                       "(canvas, moodle)",
        description="gradescope: the autograder zip (setup.sh, run_autograder, the kit and the solutions).\n"
                    "prairielearn: a question folder and the grader image's build folder (Dockerfile, kit).\n"
                    "canvas, moodle: GRADED_DIR's scores as the CSV their gradebook import accepts, students\n"
                    "matched through --roster; unmatched submissions and students are listed, never dropped.",
        epilog="examples:\n  autograder export gradescope --out autograder.zip --hidden-visibility after_published\n"
               "  autograder export prairielearn --out pl/ --image myorg/ch03-grader:2025\n"
               "  autograder export canvas graded/ --roster canvas-export.csv --assignment 'Chapter 3 (1234)' "
               "--out canvas.csv\n"
               "  autograder export moodle graded/ --roster moodle-export.csv --key email --parts --out moodle.csv\n\n"
               + EPILOG,
    )
    export.add_argument("platform", choices=["gradescope", "prairielearn", "canvas", "moodle"],
                        help="the platform to export for")
    export.add_argument("graded", type=Path, nargs="?", metavar="GRADED_DIR",
                        help="canvas, moodle: a folder written by autograder grade --out")
    export.add_argument("--out", type=Path, help="the zip (gradescope, default autograder.zip), folder "
                        "(prairielearn) or CSV (canvas, moodle) to write")
    export.add_argument("--hidden-visibility", choices=["hidden", "after_due_date", "after_published", "summary",
                                                        "visible"],
                        help="gradescope: when students see the hidden checks (default: hidden); prairielearn: "
                             "summary (one line with their total, the default) or visible")
    export.add_argument("--image", default="attention-autograder-grader",
                        help="prairielearn: the grader image's name in info.json (default: %(default)s)")
    export.add_argument("--timeout", type=int, default=300,
                        help="prairielearn: seconds per grading job, at most 600 (default: %(default)s)")
    export.add_argument("--roster", type=Path, metavar="CSV",
                        help="canvas, moodle: the students (the LMS's own gradebook export works), optionally with "
                             "a 'submission' column naming each one's submission")
    export.add_argument("--assignment", help="canvas, moodle: the grade column, e.g. 'Chapter 3 (1234)' as Canvas "
                        "names it (default: the roster's column that starts with 'Chapter 3', else 'Chapter 3')")
    export.add_argument("--key", choices=["email", "idnumber"], default="email",
                        help="moodle: the column Moodle matches users on (default: email)")
    export.add_argument("--parts", action="store_true", help="canvas, moodle: also one column per graded part")
    export.set_defaults(run=_export)
    return top


def run() -> None:
    """The command's entry point (`autograder`, `python -m autograder`): `main`, then a quick exit (exiting.py);
    when `main` raises, Python exits as usual."""
    for name, value in TORCH_SETTINGS.items():  # before anything imports torch; a setting of the user's stays
        os.environ.setdefault(name, value)
    exit_quickly(main())


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    config = Config()
    if getattr(args, "sandbox", None):
        config = config.with_(sandbox=args.sandbox)
    if getattr(args, "limit", None):
        try:
            config = config.with_(limits=config.limits.with_overrides(args.limit))
        except ValueError as exc:
            print(f"autograder {args.command}: {exc}", file=sys.stderr)
            return 2
    return args.run(args, config)
