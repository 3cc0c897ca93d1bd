"""Which failed parts to explain: not the unfinished ones, nor those whose code hung, crashed or hit a limit."""
from __future__ import annotations

STABLE_KEYS = {"student.raised", "student.names_differ", "student.param_shape", "student.not_implemented"}
"""Failures of the student's code that probes can safely meet again (anything else: hangs, crashes, limits)."""
SKIP_KEYS = {"student.not_implemented", "refused.missing", "refused.missing_near"}
"""A part whose failures are all of these kinds is simply unfinished: there is nothing to diagnose."""


def _unstable(key: str) -> bool:
    """The code hung, crashed or hit a limit: probing it again would only repeat that, slowly."""
    return key.startswith("student.") and key not in STABLE_KEYS


def failed_parts(results: list) -> list[str]:
    """Parts that lost points for a reason other than being unfinished or unstable, in check order."""
    parts: dict[str, list] = {}
    for result in results:
        parts.setdefault(result.part, []).append(result)
    return [part for part, checks in parts.items()
            if any(c.status == "failed" for c in checks)
            and not all(c.message_key in SKIP_KEYS for c in checks if c.status == "failed")
            and not any(_unstable(c.message_key) for c in checks if c.status == "failed")]


def unstable_parts(results: list) -> set[str]:
    """Parts with a failure whose code hung, crashed or hit a limit (not to be run again)."""
    return {r.part for r in results if r.status == "failed" and _unstable(r.message_key)}
