"""Hostile and broken submissions graded for real with `autograder grade`, one batch per folder.

tests/files/adversarial/ holds submissions that try to cheat or to harm the grader, and
tests/files/malformed/ files that cannot be read as notebooks; each folder's manifest.json says
what must happen to each file. The batches run once per isolation this machine offers (bubblewrap
and the fallback, `--sandbox`); one test per file checks its record, and one test per folder checks
the batch as a whole (nothing escaped, nothing lost).
A last test SIGKILLs a running batch and runs it again.
"""
from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

from autograder.i18n import catalogue
from autograder.load.discover import discover
from autograder.sandbox.capability import isolation_for

FILES = Path(__file__).parent / "files"
ADVERSARIAL, MALFORMED = FILES / "adversarial", FILES / "malformed"
SECRET = "AUTOGRADER_ADVERSARY_SECRET", "hunter2-7f3a-only-in-the-grader"
LEFT_BY_ADVERSARIES = ("adversary-daemon-7f3a", "adversary-forkbomb-7f3a")
NEVER_IN_A_RECORD = (SECRET[1], "LEAK ", "CONNECTED ", "SECRET ")
ISOLATION = isolation_for("auto")
ISOLATIONS = ["bwrap", "process"] if ISOLATION == "bwrap" else ["process"]
"""Every isolation this machine offers: each batch is graded under each (`--sandbox`)."""

pytestmark = pytest.mark.slow


def manifest(folder: Path) -> dict[str, dict]:
    return json.loads((folder / "manifest.json").read_text(encoding="utf-8"))


def message(key: str) -> re.Pattern:
    """The English message `key` with any parameters, as a pattern."""
    parts = re.split(r"\{[^}]*\}", catalogue("en")[key])
    return re.compile(".*".join(re.escape(p) for p in parts), re.DOTALL)


def stray(names: tuple[str, ...]) -> list[str]:
    found = []
    for pid in os.listdir("/proc"):
        try:
            argv0 = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0].decode()
        except (OSError, ValueError):
            continue
        if argv0 in names:
            found.append(f"{pid} {argv0}")
    return found


def grade(paths: list[Path], out: Path, *options: str, env: dict | None = None, cwd: Path | None = None):
    return subprocess.run(["autograder", "grade", *map(str, paths), "--out", str(out), *options],
                          capture_output=True, text=True, env=env, cwd=cwd, timeout=1200)


def records(folder: Path, out: Path) -> dict[str, dict]:
    """File name -> its record, through the same names `autograder grade` gives records."""
    return {entry.path.name: json.loads((out / f"{entry.name}.json").read_text(encoding="utf-8"))
            for entry in discover([folder])}


def parts(record: dict) -> dict[str, float]:
    return {name: value["score"] for name, value in record["parts"].items()}


def expanded(value, record: dict) -> list[str]:
    return list(record["parts"]) if value == "*" else list(value)


@pytest.fixture(scope="module", params=ISOLATIONS)
def adversarial(request, tmp_path_factory):
    """The adversarial folder graded once per isolation, with a loopback listener and a secret in the grader's
    environment."""
    isolation = request.param
    if isolation != "bwrap" and os.geteuid() != 0:
        pytest.skip("without bubblewrap or root, these submissions could harm the machine that grades them")
    work = tmp_path_factory.mktemp(f"adversarial-{isolation}")
    listener = socket.socket()
    for port in range(47300, 47400):  # the range network.py scans
        try:
            listener.bind(("127.0.0.1", port))
            break
        except OSError:
            continue
    listener.listen()
    listener.setblocking(False)
    before = set(os.listdir("/tmp"))
    out = work / "out"
    env = {**os.environ, SECRET[0]: SECRET[1]}
    # call_seconds=3: the infinite loop costs two short timeouts, not two of 10 s.
    result = grade([ADVERSARIAL], out, "--jobs", "2", "--limit", "call_seconds=3", "--sandbox", isolation, env=env,
                   cwd=work)
    connections = []
    try:
        while True:
            connections.append(listener.accept()[1])
    except BlockingIOError:
        pass
    listener.close()
    time.sleep(1)  # processes SIGKILLed at the very end disappear
    return {"result": result, "out": out, "cwd": work, "records": records(ADVERSARIAL, out),
            "connections": connections, "stray": stray(LEFT_BY_ADVERSARIES),
            "new_in_tmp": set(os.listdir("/tmp")) - before, "isolation": isolation}


@pytest.fixture(scope="module", params=ISOLATIONS)
def malformed(request, tmp_path_factory):
    """The malformed folder graded once per isolation, with a size cap of 512 KiB (so the over-cap file stays
    small)."""
    work = tmp_path_factory.mktemp(f"malformed-{request.param}")
    out = work / "out"
    result = grade([MALFORMED], out, "--jobs", "2", "--limit", "source_bytes=512KiB", "--sandbox", request.param,
                   cwd=work)
    return {"result": result, "out": out, "cwd": work, "records": records(MALFORMED, out),
            "isolation": request.param}


def check_batch(batch: dict, folder: Path) -> None:
    result, out = batch["result"], batch["out"]
    assert result.returncode == 0, f"autograder grade failed ({result.returncode}):\n{result.stderr[-3000:]}"
    entries = discover([folder])
    assert {e.path.name for e in entries if e.refusal is None} == set(manifest(folder)), \
        "the manifest and the folder disagree"
    assert [e.path.name for e in entries if e.refusal] == ["manifest.json"], "every other file is a submission"
    expected = {f"{entry.name}.json" for entry in entries}
    assert expected == {p.name for p in out.glob("*.json")}, "not exactly one record per submission"
    assert not list(out.glob(".tmp-*")), "half-written records were left behind"
    controls = [name for name, spec in manifest(folder).items() if spec.get("control")]
    for name in controls:
        record = batch["records"][name]
        assert record["score"] == record["max_score"] > 0, f"{name} (the reference) lost points: the checks are broken"


def check_record(spec: dict, record: dict, control: dict, name: str, isolation: str = ISOLATION) -> None:
    """The expectations of one manifest entry, against the record and the control graded with it."""
    failed = {t["check_id"]: t for t in record["tests"] if t["status"] != "passed"}
    if "error" in spec:
        assert record["error"] and message(spec["error"]).fullmatch(record["error"]), \
            f"{name}: expected the error {spec['error']}, got {record['error']!r}"
        assert record["score"] == 0, f"{name}: a file that could not be read scored {record['score']}"
    else:
        assert not record["error"], f"{name}: should have been graded, got the error {record['error']!r}"
        assert record["isolation"] == isolation, f"{name}: graded under {record['isolation']!r}, not {isolation}"
    for key in spec.get("problems", []):
        assert any(message(key).fullmatch(line) for line in record["output"].splitlines()), \
            f"{name}: expected {key} in the output, got {record['output'][:500]!r}"
    for check_id in spec.get("failed", []):
        assert check_id in failed, f"{name}: {check_id} passed, but this submission must lose it"
    for key in spec.get("keys", []):
        assert any(t["message_key"] == key for t in failed.values()), \
            f"{name}: no failed check says {key}; keys: {sorted({t['message_key'] for t in failed.values()})}"
    for part in expanded(spec.get("zero", []), control):
        assert parts(record).get(part, 0.0) == 0.0, f"{name}: {part} scored {parts(record).get(part)}"
    for part in spec.get("lost", []):
        assert parts(record)[part] < parts(control)[part], f"{name}: {part} kept all its points"
    for part in expanded(spec.get("same_as_control", []), control):
        assert parts(record).get(part) == parts(control)[part], \
            f"{name}: {part} scored {parts(record).get(part)}, the reference {parts(control)[part]}"
    for text in spec.get("output_has", []):
        assert text in record["output"], f"{name}: {text!r} not in the output {record['output'][:300]!r}"
    for text in spec.get("stderr_has", []):
        assert text in record["stderr"], f"{name}: {text!r} not in the kept stderr {record['stderr'][:300]!r}"


@pytest.mark.parametrize("name", sorted(manifest(ADVERSARIAL)))
def test_adversarial_submission(adversarial, name):
    spec = manifest(ADVERSARIAL)[name]
    if spec.get("requires") == "bwrap" and adversarial["isolation"] != "bwrap":
        pytest.skip(f"{name} is contained only by bubblewrap (a known gap of the fallback)")
    control = adversarial["records"]["zz_control_a.py"]
    check_record(spec, adversarial["records"][name], control, f"{name} ({adversarial['isolation']})",
                 adversarial["isolation"])


def test_adversarial_batch_is_contained(adversarial):
    check_batch(adversarial, ADVERSARIAL)
    assert not adversarial["stray"], f"processes of adversarial submissions survived the batch: {adversarial['stray']}"
    everything = [p for p in adversarial["cwd"].rglob("*") if p.is_file()]
    assert {p.suffix for p in everything} <= {".json", ".csv", ".html"}, f"unexpected files: {everything}"
    for path in everything:
        text = path.read_text(encoding="utf-8", errors="replace")
        for secret in NEVER_IN_A_RECORD:
            assert secret not in text, f"{path.name} contains {secret!r}: something escaped the sandbox"
        if path.name != "write_fake_results.py.json" and path.suffix == ".json":
            assert "ADVERSARY_WAS_HERE" not in text, f"{path.name} was forged"
    assert not any("ADVERSARY" in name for name in adversarial["new_in_tmp"]), \
        f"an adversary wrote into the grader's /tmp: {adversarial['new_in_tmp']}"
    if adversarial["isolation"] == "bwrap":
        assert not adversarial["connections"], "a submission connected to the grader's loopback"
    flood = adversarial["out"] / "print_flood.py.json"
    assert flood.stat().st_size < 200_000, f"2 MB of prints made a {flood.stat().st_size}-byte record"


@pytest.mark.parametrize("name", sorted(manifest(MALFORMED)))
def test_malformed_submission(malformed, name):
    control = malformed["records"]["zz_control.py"]
    check_record(manifest(MALFORMED)[name], malformed["records"][name], control, f"{name} ({malformed['isolation']})",
                 malformed["isolation"])


def test_malformed_batch_survives(malformed):
    check_batch(malformed, MALFORMED)
    for folder in (malformed["cwd"], MALFORMED, Path.cwd()):
        assert not (folder / "PWNED").exists(), f"a file name was run as a shell command (in {folder})"
    linked = malformed["records"]["link_etc_passwd.py"]
    assert "root:" not in json.dumps(linked), "the content of a link outside the folder was read"


def test_killed_batch_resumes_without_losing_or_repeating_a_record(tmp_path):
    """SIGKILL `autograder grade` and its judges mid-batch; the rerun grades only what is missing."""
    folder, out = tmp_path / "class", tmp_path / "out"
    folder.mkdir()
    source = (FILES / "submissions" / "correct_reference.py").read_text()
    for i in range(4):
        (folder / f"student_{i}.py").write_text(f"# student {i}\n{source}")
    batch = subprocess.Popen(["autograder", "grade", str(folder), "--out", str(out), "--jobs", "2"],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 600
    while not list(out.glob("student_*.json")) and batch.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
    tree = _descendants(batch.pid)
    os.killpg(batch.pid, signal.SIGKILL)
    killed_at = time.time()
    batch.wait()
    assert batch.returncode == -signal.SIGKILL, "the batch finished before it could be killed; grade more files"
    done_before = {p.name: p.stat().st_mtime_ns for p in out.glob("student_*.json")}
    assert 1 <= len(done_before) < 4, f"the kill came too late to test anything: {sorted(done_before)}"
    time.sleep(2)
    alive = [pid for pid in tree if _alive(pid)]
    assert not alive, f"judges or workers outlived the killed batch: {alive}"

    rerun = grade([folder], out, "--jobs", "2")
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    left = [(p.name, p.stat().st_mtime, os.listdir(p), _alive(pid), killed_at) for pid in tree
            for p in Path("/tmp").glob(f"autograder-{pid}-*")]
    assert not left, f"temporary folders of the killed judges survived the rerun: {left}"
    names = sorted(p.name for p in out.glob("*.json"))
    assert names == [f"student_{i}.py.json" for i in range(4)], f"records after the rerun: {names}"
    for name, mtime in done_before.items():
        assert (out / name).stat().st_mtime_ns == mtime, f"{name} was graded again although it was done"
    for name in names:
        record = json.loads((out / name).read_text())
        assert record["score"] == record["max_score"] > 0 and not record["error"], f"{name}: {record['error']}"
    assert not list(out.glob(".tmp-*")), "half-written records were left behind"
    rows = (out / "grades.csv").read_text().splitlines()
    assert len(rows) == 5, f"grades.csv should have a header and 4 rows: {rows}"

    graded = {name: (out / name).stat().st_mtime_ns for name in names}
    again = grade([folder], out, "--jobs", "2")
    assert again.returncode == 0, again.stderr[-2000:]
    assert graded == {name: (out / name).stat().st_mtime_ns for name in names}, "a finished batch was regraded"
    forced = grade([folder / "student_0.py"], out, "--force")
    assert forced.returncode == 0, forced.stderr[-2000:]
    assert (out / "student_0.py.json").stat().st_mtime_ns != graded["student_0.py.json"], \
        "--force did not grade the submission again"


def _descendants(root: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            ppid = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        children.setdefault(ppid, []).append(int(pid))
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo += children.get(pid, [])
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")
