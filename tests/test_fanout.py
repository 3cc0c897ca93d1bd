"""Submissions whose processes together go over their limits, graded for real with `autograder grade`.

tests/files/fanout/ holds fan-outs (forks, threads, /dev/shm, an orphan, busy children) that each
stay under every per-process limit; its manifest.json says what each record must show. The folder
is graded once per mechanism this machine offers (a cgroup, the judge's watchdog alone) and per
isolation (bubblewrap, the fallback), with the limits scaled down so that no test takes much of
the machine: 320 MiB per submission, two judges.
"""
from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from autograder.config import CGROUP_SWITCH
from autograder.sandbox import cgroups
from tests.test_adversarial import (
    ISOLATIONS,
    check_batch,
    check_record,
    grade,
    manifest,
    records,
    stray,
)

FANOUT = Path(__file__).parent / "files" / "fanout"
LIMITS = ["memory=320MiB", "call_seconds=3", "cpu_seconds=10", "disk_bytes=1GiB"]
"""disk_bytes: room in /tmp and /dev/shm to write more than the memory budget."""
NO_CGROUP = pytest.mark.skipif(not cgroups.available(), reason="no writable cgroup v1 memory hierarchy")
MECHANISMS = [pytest.param(("cgroup", i), marks=NO_CGROUP, id=f"cgroup-{i}") for i in ISOLATIONS]
MECHANISMS += [pytest.param(("watchdog", i), id=f"watchdog-{i}") for i in ISOLATIONS]

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module", params=MECHANISMS)
def fanout(request, tmp_path_factory):
    mechanism, isolation = request.param
    if os.geteuid() != 0 and isolation != "bwrap":
        pytest.skip("without bubblewrap or root, a fan-out's processes share the grader's user (a known gap)")
    work = tmp_path_factory.mktemp(f"fanout-{mechanism}-{isolation}")
    env = {**os.environ, CGROUP_SWITCH: "on" if mechanism == "cgroup" else "off"}
    out = work / "out"
    options = ["--jobs", "2", "--sandbox", isolation] + [o for limit in LIMITS for o in ("--limit", limit)]
    planted = []  # a group of a judge that was killed: the batch removes it
    for controller in cgroups.available() if mechanism == "cgroup" else ():
        planted.append(cgroups._own(controller) / f"autograder-{1 << 28}-1-0")  # beyond any pid
        planted[-1].mkdir()
    before = worker_groups()
    result = grade([FANOUT], out, *options, env=env, cwd=work)
    time.sleep(1)  # processes SIGKILLed at the very end disappear
    survivors = tuple(spec["survivor"] for spec in manifest(FANOUT).values() if "survivor" in spec)
    # only the batch's own: a group of an earlier process that was killed, in another cgroup (another terminal, another
    # CI step), is beyond the reach of a batch, which cleans up only below its own groups (sandbox/cgroups.py)
    after = worker_groups()
    groups = [str(p) for p in after if p not in before]
    stale = [str(p) for p in planted if p.exists()]
    return {"result": result, "out": out, "cwd": work, "records": records(FANOUT, out), "stray": stray(survivors),
            "groups": groups, "stale": stale, "mechanism": mechanism, "isolation": isolation}


def worker_groups() -> list[Path]:
    """The workers' cgroups whose judge has ended (named autograder-<judge pid>-<its start>-<n>), anywhere."""
    return [p for p in Path("/sys/fs/cgroup").glob("**/autograder-*-*") if p.is_dir() and "probe" not in p.name
            and not Path(f"/proc/{p.name.split('-')[1]}").exists()]


@pytest.mark.parametrize("name", sorted(manifest(FANOUT)))
def test_fanout_submission(fanout, name):
    spec = manifest(FANOUT)[name]
    record, control = fanout["records"][name], fanout["records"]["zz_control.py"]
    check_record(spec, record, control, f"{name} ({fanout['mechanism']}, {fanout['isolation']})",
                 fanout["isolation"])
    keys = {t["message_key"] for t in record["tests"] if t["status"] != "passed"}
    if "keys_any" in spec:
        assert keys & set(spec["keys_any"]), f"{name} ({fanout['mechanism']}): none of {spec['keys_any']} in {keys}"
    for test in record["tests"]:
        if test["message_key"] == "student.memory_budget":
            assert "320 MiB" in test["output"], f"{name}: the message does not name the limit: {test['output']}"


def test_fanout_batch_leaves_nothing(fanout):
    """One record each, the control untouched by its neighbours, no process and no cgroup left."""
    check_batch(fanout, FANOUT)
    assert "LIMITS per submission" in fanout["result"].stderr, "grade did not say which limits hold"
    expected = "cgroup v1" if fanout["mechanism"] == "cgroup" else "watchdog"
    assert expected in fanout["result"].stderr, f"grade did not say that the {expected} is in force"
    assert not fanout["stray"], f"processes of the fan-outs survived the batch: {fanout['stray']}"
    said = [line for line in fanout["result"].stderr.splitlines() if "cgroup" in line and "removed" in line]
    assert not fanout["groups"], f"the workers' cgroups were left behind: {fanout['groups']}; the batch said: {said}"
    assert not fanout["stale"], f"a group of a judge that had ended stayed below the batch's own: {fanout['stale']}"
    stderr = json.dumps(fanout["records"]["zz_control.py"]["tests"])
    assert "student." not in stderr.replace('"message_key": ""', ""), "the control met a limit"
