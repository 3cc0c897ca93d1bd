"""Who handed in a file, read from the names an LMS's "download all submissions" gives it (docs/lms-downloads.md).

Canvas:     <sortable name>[_LATE]_<user id>_<file id>_<file name>      the user id is the gradebook's "ID"
Moodle:     <Full name>_<participant id>_assignsubmission_<plugin>_/...  (or the same prefix on each file's name)
Gradescope: submission_<id>/...  with submission_metadata.yml beside it: each submission's submitters
"""
from __future__ import annotations

import functools
import re
from pathlib import Path

CANVAS = re.compile(r"^(?P<name>[^\W_]*)_(?:LATE_)?(?P<user>\d+)_(?P<file>\d+)_.")
MOODLE = re.compile(r"^(?P<name>.+?)_(?P<participant>\d+)_assignsubmission_[a-z]+_")
GRADESCOPE = re.compile(r"^submission_\d+$")
GRADESCOPE_METADATA = "submission_metadata.yml"


def person(name: str) -> str:
    """A person's name as keys compare it: words in lower case, single spaces."""
    return " ".join(name.split()).casefold()


def student_keys(path: Path) -> set[str]:
    """What the platform's naming says about whose file `path` is: Canvas user ids, Moodle full names and
    participant ids ("participant 880001"), Gradescope submitters' e-mail addresses, student ids and names."""
    keys: set[str] = set()
    parts = Path(path).parts
    for i, part in enumerate(parts):
        if canvas := CANVAS.match(part):
            keys.add(canvas["user"])
        elif moodle := MOODLE.match(part):
            keys |= {person(moodle["name"]), f"participant {moodle['participant']}"}
        elif GRADESCOPE.match(part):
            for submitter in _gradescope(Path(*parts[:i]) / GRADESCOPE_METADATA).get(part, []):
                keys |= {str(v).casefold() for v in (submitter.get("email"), submitter.get("sid")) if v}
                keys |= {person(str(submitter["name"]))} if submitter.get("name") else set()
    return keys


def _plain(value: object) -> object:
    """Gradescope writes Ruby symbols as keys (`:name:` reads as ":name"): plain names, all the way down."""
    if isinstance(value, dict):
        return {str(k).strip(":"): _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


@functools.cache
def _gradescope(metadata: Path) -> dict[str, list[dict]]:
    """submission_<id> -> its submitters ({"name", "sid", "email"}), from Gradescope's export; {} if none."""
    import yaml

    try:
        data = _plain(yaml.safe_load(metadata.read_text(encoding="utf-8")))
    except (OSError, ValueError, yaml.YAMLError):
        return {}
    if not isinstance(data, dict):
        return {}
    return {k: [s for s in v.get("submitters") or [] if isinstance(s, dict)]
            for k, v in data.items() if isinstance(v, dict)}
