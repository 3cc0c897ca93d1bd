"""`autograder diff OLD NEW`: what a regrade changed, for whom and why, before the scores are released."""
from __future__ import annotations

import statistics
import sys
from dataclasses import dataclass, field

from autograder.i18n import t
from autograder.record import SubmissionResult
from autograder.report.class_overview import BINS as BUCKETS
from autograder.report.class_overview import histogram
from autograder.report.records import write_atomic


@dataclass
class Change:
    """One submission graded in both folders."""

    name: str
    old: float
    new: float
    flipped: list[tuple[str, str, str]] = field(default_factory=list)
    """(check id, old status, new status) for every check whose outcome differs ("absent" if it did not run)."""
    why: list[str] = field(default_factory=list)
    """Keys of what differs between the two records' provenance: "submission", "error"."""

    @property
    def delta(self) -> float:
        return self.new - self.old


@dataclass
class Diff:
    """Everything `autograder diff` reports."""

    changes: list[Change]
    """Submissions whose score or check outcomes differ, largest change first."""
    unchanged: int
    only_old: list[str]
    only_new: list[str]
    old_scores: list[float]
    new_scores: list[float]
    maximum: float
    modules: list[tuple[str, str, str]]
    """(check module, old digest, new digest) for every module whose source differs ("" where absent)."""
    versions: tuple[set[str], set[str]]
    """The kit versions that wrote the old and the new records."""


def _statuses(record: SubmissionResult) -> dict[str, str]:
    return {check.check_id: check.status for check in record.tests}


def _modules(records: list[SubmissionResult]) -> dict[str, str]:
    """The checks' sources recorded most often across `records` (a folder graded in one run has one)."""
    counts: dict[tuple, int] = {}
    for record in records:
        key = tuple(sorted(record.checks_files.items()))
        counts[key] = counts.get(key, 0) + 1
    return dict(max(counts, key=counts.get)) if counts else {}


def diff(old: list[tuple[str, SubmissionResult]], new: list[tuple[str, SubmissionResult]]) -> Diff:
    before, after = dict(old), dict(new)
    changes, unchanged = [], 0
    for name in [n for n in after if n in before]:
        a, b = before[name], after[name]
        sa, sb = _statuses(a), _statuses(b)
        flipped = [(c, sa.get(c, "absent"), sb.get(c, "absent")) for c in [*sa, *[c for c in sb if c not in sa]]
                   if sa.get(c) != sb.get(c)]
        why = [k for k, differs in (("submission", a.sha256 != b.sha256), ("error", a.error != b.error)) if differs]
        if flipped or a.score != b.score or why:
            changes.append(Change(name, a.score, b.score, flipped, why))
        else:
            unchanged += 1
    changes.sort(key=lambda c: (-abs(c.delta), c.name))
    files_a, files_b = _modules(list(before.values())), _modules(list(after.values()))
    modules = [(m, files_a.get(m, ""), files_b.get(m, "")) for m in sorted({*files_a, *files_b})
               if files_a.get(m) != files_b.get(m)]
    graded = lambda records: [r.score for r in records.values() if r.tests and not r.error]  # noqa: E731
    maximum = max([r.max_score for r in [*before.values(), *after.values()] if r.max_score] or [100.0])
    return Diff(changes, unchanged, [n for n in before if n not in after], [n for n in after if n not in before],
                graded(before), graded(after), maximum, modules,
                ({r.kit_version or "?" for r in before.values()}, {r.kit_version or "?" for r in after.values()}))


def _stats(scores: list[float]) -> tuple[float, float]:
    return (statistics.fmean(scores), statistics.median(scores)) if scores else (0.0, 0.0)


def reasons(result: Diff, lang: str) -> list[str]:
    """Why scores moved, as sentences: changed check modules, another kit version, resubmitted files."""
    lines = [t("diff.module_changed", lang, module=m, old=a or "-", new=b or "-") for m, a, b in result.modules]
    if result.versions[0] != result.versions[1]:
        lines.append(t("diff.version_changed", lang, old=", ".join(sorted(result.versions[0])),
                       new=", ".join(sorted(result.versions[1]))))
    resubmitted = [c.name for c in result.changes if "submission" in c.why]
    if resubmitted:
        lines.append(t("diff.resubmitted", lang, count=len(resubmitted), names=", ".join(resubmitted[:8])))
    if not lines and result.changes:
        lines.append(t("diff.same_sources", lang))
    return lines


def table(result: Diff, lang: str) -> str:
    """The terminal report."""
    lines = reasons(result, lang) + [""]
    width = max([len(t("ui.submission", lang))] + [len(c.name) for c in result.changes])
    lines.append(f"{t('ui.submission', lang):<{width}}  {'old':>6} {'new':>6} {'Δ':>6}  {t('diff.flipped', lang)}")
    for c in result.changes:
        flips = ", ".join(f"{check} {a}→{b}" for check, a, b in c.flipped) or "-"
        lines.append(f"{c.name:<{width}}  {c.old:>6g} {c.new:>6g} {c.delta:>+6g}  {flips}")
    lines.append(t("diff.counts", lang, changed=len(result.changes), unchanged=result.unchanged))
    for key, names in (("diff.only_old", result.only_old), ("diff.only_new", result.only_new)):
        if names:
            lines.append(t(key, lang, names=", ".join(names)))
    (mean_a, median_a), (mean_b, median_b) = _stats(result.old_scores), _stats(result.new_scores)
    lines += ["", t("diff.distribution", lang),
              f"{'':>9}  {'old':>4} {'new':>4}"]
    step = result.maximum / BUCKETS
    for i, (a, b) in enumerate(zip(histogram(result.old_scores, result.maximum),
                                   histogram(result.new_scores, result.maximum))):
        lines.append(f"{i * step:>4g}-{(i + 1) * step:<4g}  {a:>4} {b:>4}  {'#' * b}")
    lines.append(t("diff.stats", lang, mean_old=mean_a, mean_new=mean_b, median_old=median_a, median_new=median_b))
    return "\n".join(lines)


def diff_html(result: Diff, lang: str) -> str:
    from autograder.report.render import render_page

    step = result.maximum / BUCKETS
    buckets = [{"range": f"{i * step:g}–{(i + 1) * step:g}", "old": a, "new": b} for i, (a, b) in
               enumerate(zip(histogram(result.old_scores, result.maximum),
                             histogram(result.new_scores, result.maximum)))]
    (mean_a, median_a), (mean_b, median_b) = _stats(result.old_scores), _stats(result.new_scores)
    return render_page("diff.html.j2", lang, result=result, reasons=reasons(result, lang),
                       buckets=buckets, peak=max([1] + [max(b["old"], b["new"]) for b in buckets]),
                       check_name=lambda check_id: t(f"check.{check_id}", lang),
                       stats=t("diff.stats", lang, mean_old=mean_a, mean_new=mean_b, median_old=median_a,
                               median_new=median_b))


def cli(args) -> int:
    """`autograder diff OLD_DIR NEW_DIR`: print the table, write NEW_DIR/diff.html; exit 1 when scores moved."""
    from autograder.report.class_overview import read_records

    for folder in (args.old, args.new):
        if not folder.is_dir():
            print(f"autograder diff: {folder}: no such folder", file=sys.stderr)
            return 2
    old, new = read_records(args.old), read_records(args.new)
    if not old or not new:
        print(f"autograder diff: {args.old if not old else args.new} holds no records", file=sys.stderr)
        return 2
    result = diff(old, new)
    print(table(result, args.lang))
    page = args.new / "diff.html"
    write_atomic(page, diff_html(result, args.lang))
    print(f"\nwrote {page}")
    return 1 if any(c.delta for c in result.changes) else 0
