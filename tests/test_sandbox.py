"""The worker's sandbox: what it can see, the limits it runs under, and that nothing of it survives.

Each test starts real workers (forked by a zygote that imported torch) running the attack functions in
tests/files/sandbox/attacks.py, in every isolation this machine offers: bubblewrap and the fallback.
"""
from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from autograder.assignment import load
from autograder.batch import capacity
from autograder.config import ROOT, Limits
from autograder.errors import StudentError
from autograder.judge.worker_subject import WorkerSubject
from autograder.sandbox import budget, capability, cgroups, launch
from autograder.sandbox.capability import fallback_walls, isolation_for, weaknesses
from autograder.sandbox.errors import WorkerGone
from autograder.sandbox.launch import Spawn
from autograder.sandbox.processes import UID_BASE, clean_up_after, stamp
from autograder.sandbox.worker_client import WorkerClient
from tests.conftest import UNCACHED

ATTACKS = Path(__file__).parent / "files" / "sandbox" / "attacks.py"
CHUNKS = [{"origin": "attacks.py", "code": ATTACKS.read_text()}]
ROOT_GRADER = os.geteuid() == 0
MODES = [pytest.param("bwrap", marks=pytest.mark.skipif(isolation_for("auto") != "bwrap",
                                                        reason="bubblewrap cannot run here")), "process"]

pytestmark = pytest.mark.slow


def call(worker: WorkerClient, name: str, *args, seconds: float = 30) -> dict:
    return worker.request({"op": "call", "args": {"id": 1, "name": name, "args": list(args)}}, seconds)


def named(marker: str) -> list[int]:
    """Live processes whose argv[0] is `marker` (zombies have no command line)."""
    found = []
    for pid in os.listdir("/proc"):
        try:
            if pid.isdigit() and Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0] == marker.encode():
                found.append(int(pid))
        except OSError:
            pass
    return found


def appears(marker: str, seconds: float = 5) -> bool:
    deadline = time.monotonic() + seconds
    while not named(marker) and time.monotonic() < deadline:
        time.sleep(0.05)
    return bool(named(marker))


def gone(marker: str, seconds: float = 5) -> bool:
    deadline = time.monotonic() + seconds
    while named(marker) and time.monotonic() < deadline:
        time.sleep(0.1)
    return not named(marker)


def bound_under_tmp() -> list[str]:
    """What a fresh sandbox holds in /tmp besides the worker's folder: Python's folders bound there (a venv)."""
    return sorted({Path(root).relative_to("/tmp").parts[0] for root in launch.python_roots()
                   if root.startswith("/tmp/")})


def report(worker: WorkerClient, wait: float = 10.0) -> dict:
    """The worker's last REPORT line; its stderr is read by a thread, so give that thread a moment."""
    deadline = time.monotonic() + wait
    while True:
        lines = [line for line in bytes(worker.stderr).decode().splitlines() if line.startswith("REPORT ")]
        if lines or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert lines, f"the worker reported nothing; its stderr: {bytes(worker.stderr)[-500:]!r}"
    return json.loads(lines[-1][len("REPORT "):])


@pytest.mark.parametrize("mode", MODES)
def test_worker_sees_neither_secrets_nor_the_kit(mode, monkeypatch):
    secret = "s3cret-only-in-the-grader"
    monkeypatch.setenv("AUTOGRADER_TEST_SECRET", secret)
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    listener.settimeout(0.2)
    worker = WorkerClient(CHUNKS, Limits(), mode)
    try:
        call(worker, "look_around", "AUTOGRADER_TEST_SECRET", secret, str(ROOT), listener.getsockname()[1])
        seen = report(worker)
        assert worker.alive(), "looking around must not end the worker"
    finally:
        worker.close()
    assert not seen["secret_in_environ"], "the grader's environment leaked into the worker's own"
    assert seen["cwd"].endswith("work"), f"the worker should start in its private folder, not {seen['cwd']}"
    assert seen["home_writable"], "the worker's private folder should be writable"
    assert not seen["usr_writable"], "/usr must be read-only for the worker"
    assert not seen["shadow_readable"], "/etc/shadow must not be readable"
    if ROOT_GRADER:
        assert seen["uid"] != 0, "a root grader must run the worker under a uid of its own"
        assert not seen["secret_in_proc"], f"the grader's environment shows through /proc: {seen['secret_in_proc']}"
    if mode == "bwrap":
        # RLIMIT_NPROC counts the sandbox's own tasks: the zygote's (its init's) besides the worker's.
        assert Limits().processes < seen["nproc"] <= Limits().processes + 4, \
            f"RLIMIT_NPROC should be set inside the sandbox: {seen['nproc']}"
        assert not seen["secret_in_proc"], "the grader's environment is readable through /proc"
        assert not seen["connected"], "the worker reached a listener on the grader's loopback"
        assert not isinstance(seen["repo_listing"], list), f"the checkout is visible: {seen['repo_listing']}"
        assert not seen["solution_readable"] and not seen["checks_readable"], "solutions or checks are readable"
        assert len(seen["pids"]) <= 2, f"the worker sees other processes than its zygote: {seen['pids']}"
        assert not seen["dev_writable"], "/dev is an unsized tmpfs: it must be read-only"
        with pytest.raises(socket.timeout):
            listener.accept()
    elif ROOT_GRADER and capability.can_drop_root():
        assert not seen["solution_readable"] and not seen["checks_readable"], "solutions or checks are readable"
    listener.close()


@pytest.mark.parametrize("mode", MODES)
def test_fork_bomb_is_contained_and_cleared(mode):
    limits = Limits(processes=16)
    worker = WorkerClient(CHUNKS, limits, mode)
    try:
        count = call(worker, "fork_bomb", "sandbox-test-forkbomb", 300)["result"]["tensor"].item()
    finally:
        worker.close()
    if mode == "bwrap" or ROOT_GRADER:  # otherwise RLIMIT_NPROC also counts the user's other processes
        assert 0 < count <= limits.processes, f"{count} forks succeeded with processes={limits.processes}"
    else:
        assert 0 < count < 5000, "the fork bomb was not refused"
    assert gone("sandbox-test-forkbomb"), "processes of the fork bomb survived the worker"


@pytest.mark.parametrize("mode", MODES)
def test_daemon_and_hung_worker_leave_nothing(mode):
    worker = WorkerClient(CHUNKS, Limits(), mode)
    with pytest.raises(WorkerGone) as gone_worker:
        call(worker, "daemon_then_hang", "sandbox-test-daemon", seconds=3)
    assert gone_worker.value.reason == "timeout", f"expected a timeout, got {gone_worker.value}"
    assert not worker.alive(), "the worker outlived its timeout"
    assert gone("sandbox-test-daemon"), "a double-forked daemon outlived the worker"
    if mode == "process":  # under bwrap the folder is in the slot's sandbox, which a reset empties
        assert not os.path.exists(worker.folder), "the worker's temporary folder is left behind"


JUDGE = """
import sys, time
from autograder.config import Limits
from autograder.sandbox.worker_client import WorkerClient
from tests.conftest import UNCACHED
worker = WorkerClient([{"origin": "attacks.py", "code": open(sys.argv[2]).read()}], Limits(), sys.argv[1])
worker.request({"op": "call", "args": {"id": 1, "name": "daemon", "args": [sys.argv[3]]}}, 30)
print("ready", flush=True)
time.sleep(600)
"""


@pytest.mark.parametrize("mode", MODES)
def test_workers_die_with_their_judge(mode):
    if mode == "process" and not ROOT_GRADER:
        pytest.skip("without bubblewrap or root, a daemonised process can outlive a killed judge (a known gap)")
    marker = f"sandbox-test-judge-{mode}"
    judge = subprocess.Popen([sys.executable, "-c", JUDGE, mode, str(ATTACKS), marker], stdout=subprocess.PIPE,
                             text=True)
    try:
        assert judge.stdout.readline().strip() == "ready", "the judge did not start its worker"
        assert appears(marker), "the daemon did not start"
    finally:
        judge.kill()
        judge.wait()
    clean_up_after(judge.pid)  # what `autograder grade` does when a judge ends
    assert gone(marker), f"processes of a killed judge's worker survived ({mode})"
    assert not list(Path("/tmp").glob(f"autograder-{judge.pid}-*")), "a killed judge's temporary folders remain"


@pytest.mark.parametrize("isolation", MODES)
def test_limits_are_named_and_the_worker_goes_on(isolation):
    limits = Limits(file_bytes=2**20, disk_bytes=8 * 2**20, output_bytes=4096, address_bytes=2 * 2**30)
    subject = WorkerSubject(CHUNKS, limits, isolation, load())
    try:
        with pytest.raises(StudentError) as memory:
            subject.call("allocate", 3.0)
        assert memory.value.key == "student.memory_limit", memory.value.params
        assert memory.value.params["limit"] == "2 GiB", memory.value.params
        with pytest.raises(StudentError) as again:
            subject.call("allocate", 0.001)  # the same call is not tried again: filling memory is slow
        assert again.value.key == "student.memory_limit", again.value.params
        with pytest.raises(StudentError) as big_file:
            subject.call("write_file", "big.bin", 3)
        assert big_file.value.key == "student.file_limit", big_file.value.params
        if isolation == "bwrap":  # the fallback's temporary folder is on the grader's disk
            written = subject.call("fill_tmp", 100).item()
            assert written <= 8, f"{written} MiB written into a private /tmp of 8 MiB"
        subject.call("shout", 4)
        assert subject.worker.alive(), "limits that only refuse must not end the worker"
        assert subject.restarts == 0, "no limit so far should have needed a new worker"
    finally:
        subject.close()
    assert len(subject.stderr) <= limits.output_bytes, f"{len(subject.stderr)} bytes of output kept"
    total = len(subject.stderr) + subject.stderr_dropped
    assert total >= 4 * 2**20, f"only {total} bytes of 4 MiB printed were counted"


@pytest.mark.parametrize("isolation", MODES)
def test_timeouts_and_cpu_limit_name_the_call_and_are_not_repeated(isolation):
    subject = WorkerSubject(CHUNKS, Limits(call_seconds=2), isolation, load())
    try:
        with pytest.raises(StudentError) as hung:
            subject.call("daemon_then_hang", "sandbox-test-hang")
        assert hung.value.key == "student.timeout" and hung.value.params["where"] == "daemon_then_hang", hung.value
        started = time.monotonic()
        with pytest.raises(StudentError) as repeated:
            subject.call("daemon_then_hang", "sandbox-test-hang")
        assert repeated.value.key == "student.timeout", repeated.value
        assert time.monotonic() - started < 1, "a call that hung once was run (and waited for) again"
        subject.limits = Limits(call_seconds=30, cpu_seconds=6)  # counts from the start: importing torch too
        with pytest.raises(StudentError) as burnt:
            subject.call("burn_cpu")
        assert burnt.value.key == "student.cpu_limit", burnt.value
        assert subject.call("threads", 4).item() == 4, "a fresh worker should serve the next call"
    finally:
        subject.close()
    assert gone("sandbox-test-hang"), "the hung call's daemon survived"


@pytest.mark.parametrize("isolation", MODES)
def test_a_fork_bomb_does_not_starve_a_parallel_worker(isolation):
    if isolation != "bwrap" and not ROOT_GRADER:
        pytest.skip("without bubblewrap or root, workers share the user's process count (a known gap)")
    limits = Limits(processes=16)
    bomber, neighbour = WorkerClient(CHUNKS, limits, isolation), WorkerClient(CHUNKS, limits, isolation)
    try:
        call(bomber, "fork_bomb", "sandbox-test-neighbour", 300)
        started = call(neighbour, "threads", 8)["result"]["tensor"].item()
        assert started == 8, f"a parallel worker could start only {started} of 8 threads"
    finally:
        bomber.close()
        neighbour.close()
    assert gone("sandbox-test-neighbour")


@pytest.mark.parametrize("isolation", MODES)
def test_killing_its_parent_does_not_reach_the_grader(isolation):
    if isolation != "bwrap" and not ROOT_GRADER:
        pytest.skip("without bubblewrap or root, a worker can signal the grader (a known gap)")
    worker = WorkerClient(CHUNKS, Limits(), isolation)
    try:
        reply = call(worker, "kill_parent")  # the parent is its zygote: bwrap's init, or the fallback's root one
        assert reply["ok"] and worker.alive(), f"the worker's parent was reached: {reply}"
    finally:
        worker.close()


def test_weaknesses_are_listed_for_the_fallback():
    listed = " ".join(weaknesses("process"))
    walls = fallback_walls()
    assert ("file system" in listed) == ("files" not in walls), listed
    assert ("network" in listed) == ("network" not in walls), listed
    if not ROOT_GRADER:
        assert "environment" in listed and not walls, listed


@pytest.mark.skipif(not ROOT_GRADER, reason="a fallback worker gets a root of its own only from a root grader")
def test_a_root_graders_fallback_worker_sees_only_what_it_needs():
    """Its own root: Python, the system's folders and its own files; no other folder of the disk, no network.
    The planted file lies outside every folder the kit knows of (not /tmp, not the checkout), readable by all."""
    assert fallback_walls() == {"files", "network"}
    folder = Path(tempfile.mkdtemp(dir="/var/lib", prefix="autograder-test-"))
    os.chmod(folder, 0o755)
    secret = folder / "BEGIN SOLUTION.txt"
    secret.write_text("hidden")
    os.chmod(secret, 0o644)
    code = ("import os, sys, torch; print(sorted(os.listdir('/')), os.path.exists(sys.argv[1]), "
            "os.path.exists(sys.argv[2]), float(torch.ones(3).sum()))")
    with Spawn(Limits(), "process", uid=UID_BASE - 4) as spawn:
        process = spawn.popen([sys.executable, "-E", "-s", "-c", code, str(secret), str(ROOT / "solutions")],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        out, err = process.communicate(timeout=120)
    shutil.rmtree(folder)
    assert process.returncode == 0, err.decode()
    top, secret_seen, solutions_seen, total = out.decode().rsplit(" ", 3)
    assert (secret_seen, solutions_seen, total.strip()) == ("False", "False", "3.0"), out
    assert "'home'" not in top and "'work'" not in top and "'opt'" not in top, top


@pytest.mark.skipif(isolation_for("auto") != "bwrap", reason="bubblewrap cannot run here")
def test_the_next_worker_of_a_slot_finds_nothing_of_the_last():
    """Workers forked by one zygote, one after the other: the first leaves all it can, the second looks."""
    haunted = WorkerClient(CHUNKS, Limits(), "bwrap")
    zygote = haunted.process.zygote
    try:
        call(haunted, "kill_parent")  # SIGKILL to the zygote, the namespace's init: dropped by the kernel
        time.sleep(0.2)
        assert zygote.alive() and haunted.alive(), "a worker killed its zygote"
        call(haunted, "haunt", "sandbox-test-haunt")
        left = report(haunted)
        assert appears("sandbox-test-haunt"), "the haunting daemon did not start"
    finally:
        haunted.close()
    assert left["/tmp"] is True and left["/dev/shm"] is True and left["shm"] >= 0, \
        f"the first worker could not leave its traces, so this test proves nothing: {left}"
    assert gone("sandbox-test-haunt"), "the daemon of the first worker outlived it"
    spy = WorkerClient(CHUNKS, Limits(), "bwrap")
    try:
        assert spy.process.zygote is zygote, "the second worker should come from the same zygote, reset"
        call(spy, "spy")
        seen = report(spy)
    finally:
        spy.close()
    assert seen["tmp"] == sorted(["work", *bound_under_tmp()]), f"/tmp holds what the last worker left: {seen['tmp']}"
    assert seen["shm_files"] == [], f"/dev/shm holds what the last worker left: {seen['shm_files']}"
    assert seen["sysv_shm"] == -1, "the last worker's SysV shared memory survived it"
    assert len(seen["pids"]) == 2, f"the worker sees more than its zygote (the init) and itself: {seen['pids']}"
    for what in ("mem", "environ", "maps", "fd"):
        assert seen[what] == "PermissionError", f"the zygote's /proc/{what} is open to a worker: {seen[what]}"
    assert seen["ptrace"] == -1, "a worker could attach to its zygote with ptrace"


@pytest.mark.skipif(not ROOT_GRADER or not capability.can_drop_root(),
                    reason="fallback workers are kept apart by their user ids, which only a root grader gives")
def test_the_fallback_forks_each_worker_under_a_user_of_its_own_and_leaves_nothing():
    """The fallback's fork server: two workers from one zygote, the first leaves all it can, the second looks."""
    limits = Limits(restarts=5)  # a zygote of its own
    haunted = WorkerClient(CHUNKS, limits, "process")
    zygote = haunted.process.zygote
    try:
        assert zygote.isolation == "process" and zygote.alive(), "the fallback worker was not forked by a zygote"
        call(haunted, "haunt", "sandbox-test-fallback-haunt")
        left = report(haunted)
        assert appears("sandbox-test-fallback-haunt"), "the haunting daemon did not start"
    finally:
        haunted.close()
    assert left["/tmp"] is True and left["/dev/shm"] is True, f"the first worker left nothing to find: {left}"
    assert gone("sandbox-test-fallback-haunt"), "the daemon of the first worker outlived it"
    assert not os.path.exists(haunted.folder), "the first worker's folder is left behind"
    spy = WorkerClient(CHUNKS, limits, "process")
    try:
        assert spy.process.zygote is zygote, "the second worker should come from the same zygote"
        assert spy.uid not in (None, 0, haunted.uid), f"workers must not share a user: {haunted.uid}, {spy.uid}"
        call(spy, "spy")
        seen = report(spy)
    finally:
        spy.close()
        zygote.stop()
    assert not {"haunt.txt", "locked"} & set(seen["tmp"]), f"/tmp holds what the last worker left: {seen['tmp']}"
    assert seen["shm_files"] == [], f"/dev/shm holds what the last worker left: {seen['shm_files']}"
    for what in ("mem", "environ", "maps", "fd"):
        assert seen[what] == "PermissionError", f"the zygote's /proc/{what} is open to a worker: {seen[what]}"
    assert seen["ptrace"] == -1, "a worker could attach to its zygote with ptrace"


def test_without_a_fork_server_the_fallback_worker_starts_on_its_own(monkeypatch):
    """Where the fallback cannot fork (macOS), each worker is an interpreter of its own: that path still works."""
    from autograder.sandbox import worker_client

    monkeypatch.setattr(worker_client, "forks", lambda isolation: False)
    worker = WorkerClient(CHUNKS, Limits(), "process")
    try:
        assert not isinstance(worker.process, worker_client.ForkedWorker), "the worker was forked after all"
        assert call(worker, "threads", 2)["result"]["tensor"].item() == 2
        folder = worker.folder
    finally:
        worker.close()
    assert not os.path.exists(folder), "the worker's temporary folder is left behind"


@pytest.mark.parametrize("mode", MODES)
def test_an_answer_that_cannot_be_sent_is_an_error_not_a_crash(mode):
    worker = WorkerClient(CHUNKS, Limits(), mode)
    try:
        reply = call(worker, "odd_dtype")
        assert not reply["ok"] and reply["error"]["type"] == "TypeError", f"expected a TypeError reply: {reply}"
        assert "cannot be sent" in reply["error"]["message"], reply["error"]["message"]
        assert worker.alive(), "the worker died instead of answering with the error"
    finally:
        worker.close()


@pytest.mark.skipif(isolation_for("auto") != "bwrap", reason="bubblewrap cannot run here")
def test_a_reset_spares_what_the_sandbox_mounts_under_tmp(monkeypatch):
    """A virtual environment under /tmp is bound into the sandbox: a reset empties /tmp around it."""
    extra = Path(tempfile.mkdtemp(prefix="mounted-by-test-", dir="/tmp"))
    (extra / "kept.txt").write_text("bound read-only into the sandbox")
    roots = launch.python_roots()
    monkeypatch.setattr(launch, "python_roots", lambda: [*roots, str(extra)])
    limits = Limits(restarts=7)  # a zygote of its own, started with the extra mount
    first = WorkerClient(CHUNKS, limits, "bwrap")
    zygote = first.process.zygote
    try:
        call(first, "write_file", "/tmp/leftover.bin", 1)
    finally:
        first.close()
    second = WorkerClient(CHUNKS, limits, "bwrap")
    try:
        assert second.process.zygote is zygote, "the reset gave up its sandbox over a mount under /tmp"
        call(second, "spy")
        seen = report(second)
    finally:
        second.close()
        zygote.stop()
        shutil.rmtree(extra)
    assert extra.name in bound_under_tmp(), "the extra folder was not bound into the sandbox: this test proves nothing"
    assert seen["tmp"] == sorted(["work", *bound_under_tmp()]), f"/tmp after a reset: {seen['tmp']}"


@pytest.mark.skipif(isolation_for("auto") != "bwrap", reason="bubblewrap cannot run here")
def test_a_worker_that_ends_itself_leaves_its_zygote_ready():
    """A reset with nothing left to kill (the worker exited on its own) keeps the sandbox."""
    limits = Limits(restarts=6)  # a zygote of its own
    first = WorkerClient(CHUNKS, limits, "bwrap")
    zygote = first.process.zygote
    with pytest.raises(WorkerGone):
        call(first, "exit_now")
    first.close()
    second = WorkerClient(CHUNKS, limits, "bwrap")
    try:
        assert second.process.zygote is zygote, "the zygote was replaced after a worker exited on its own"
        assert second.alive()
    finally:
        second.close()
        zygote.stop()


MECHANISMS = [pytest.param("cgroup", marks=pytest.mark.skipif(not budget.available(),
                                                               reason="no writable cgroup v1 memory hierarchy")),
              "watchdog"]


def groups_left() -> list[Path]:
    """This process's workers' cgroups that still exist."""
    return [p for p in Path("/sys/fs/cgroup").glob(f"**/autograder-{os.getpid()}-*") if p.is_dir()]


@pytest.mark.parametrize("isolation", MODES)
@pytest.mark.parametrize("mechanism", MECHANISMS)
def test_a_fork_fan_out_is_stopped_by_one_budget_for_all_its_processes(mechanism, isolation, monkeypatch):
    """Six children of 100 MiB each: every one under RLIMIT_AS, together over a 320 MiB budget."""
    if mechanism == "watchdog":
        monkeypatch.setattr(budget, "available", lambda: ())
    limits = Limits(memory_bytes=320 * 2**20)
    worker = WorkerClient(CHUNKS, limits, isolation)
    assert (worker.budget.group is not None) == (mechanism == "cgroup"), "the wrong mechanism is in force"
    started = time.monotonic()
    try:
        with pytest.raises(WorkerGone) as stopped:
            call(worker, "fan_out", "sandbox-test-fanout", 6, 100, 20)
    finally:
        worker.kill()
    assert stopped.value.reason == "memory", f"{mechanism}: {stopped.value}"
    assert time.monotonic() - started < 10, "the fan-out was not stopped while it held its memory"
    assert stopped.value.params["processes"] >= 2, stopped.value.params
    if mechanism == "cgroup":  # the kernel holds the line; the watchdog may overshoot by one interval
        assert stopped.value.params["used"] <= limits.memory_bytes * 1.01, stopped.value.params
    assert gone("sandbox-test-fanout"), f"{mechanism}: children of a stopped fan-out survived"
    assert not groups_left(), f"cgroups left behind: {groups_left()}"


@pytest.mark.parametrize("isolation", MODES)
@pytest.mark.parametrize("mechanism", MECHANISMS)
def test_files_written_past_the_budget_end_the_tree_though_nothing_waits(mechanism, isolation, monkeypatch):
    """A child writes 480 MiB into /tmp (a tmpfs) with write(2) alone, over a 320 MiB budget, and exits; the call
    waits for it. With a cgroup the refused write fails (ENOMEM) rather than waiting for memory, so nobody
    is left under_oom: the tree still holds the budget in files, and must be ended for it."""
    if mechanism == "watchdog":
        monkeypatch.setattr(budget, "available", lambda: ())
    limits = Limits(memory_bytes=320 * 2**20, disk_bytes=2**30)
    worker = WorkerClient(CHUNKS, limits, isolation)
    try:
        with pytest.raises(WorkerGone) as stopped:
            call(worker, "fill_scratch", "sandbox-test-fill", "/tmp", 480)
            time.sleep(0.5)  # the watchdog looks every 50 ms: a tree over its budget is ended by now
            call(worker, "threads", 1)
    finally:
        worker.kill()
    assert stopped.value.reason == "memory", f"{mechanism}: {stopped.value}"
    if mechanism == "cgroup":
        assert limits.memory_bytes * 0.9 <= stopped.value.params["used"] <= limits.memory_bytes * 1.01, \
            stopped.value.params
    assert gone("sandbox-test-fill"), f"{mechanism}: the writer survived"
    assert not groups_left(), f"cgroups left behind: {groups_left()}"


@pytest.mark.parametrize("isolation", MODES)
@pytest.mark.parametrize("mechanism", MECHANISMS)
def test_a_thread_fan_out_is_counted_though_the_kernel_ends_the_worker_first(mechanism, isolation, monkeypatch):
    """Fifteen threads of 40 MiB in the worker itself, over a 320 MiB budget. With a cgroup the kernel's OOM
    killer ends the worker, all its threads at once, before the judge looks: the message still counts them."""
    if mechanism == "watchdog":
        monkeypatch.setattr(budget, "available", lambda: ())
    limits = Limits(memory_bytes=320 * 2**20)
    worker = WorkerClient(CHUNKS, limits, isolation)
    try:
        with pytest.raises(WorkerGone) as stopped:
            call(worker, "hold_in_threads", 15, 40)
    finally:
        worker.kill()
    assert stopped.value.reason == "memory", f"{mechanism}: {stopped.value}"
    # threads start one after another, each taking its 40 MiB at once: 320 MiB takes more than five of them
    assert stopped.value.params["processes"] > 5, f"{mechanism}: {stopped.value.params}"
    assert not groups_left(), f"cgroups left behind: {groups_left()}"


@pytest.mark.parametrize("isolation", MODES)
def test_a_correct_worker_stays_inside_a_small_budget(isolation):
    """What a worker shares with its zygote (torch) is not its own: a 320 MiB budget is enough for work."""
    worker = WorkerClient(CHUNKS, Limits(memory_bytes=320 * 2**20), isolation)
    try:
        assert call(worker, "fan_out", "sandbox-test-small", 1, 50, 1)["result"]["tensor"].item() == 1
        assert call(worker, "threads", 4)["result"]["tensor"].item() == 4
        assert worker.budget.overrun is None, worker.budget.overrun
    finally:
        worker.kill()
    assert gone("sandbox-test-small")


@pytest.mark.parametrize("isolation", MODES)
@pytest.mark.parametrize("mechanism", MECHANISMS)
def test_busy_children_are_stopped_by_the_cpu_of_the_whole_tree(mechanism, isolation, monkeypatch):
    """Children that spin after the call returned: their CPU time is the submission's."""
    if mechanism == "watchdog":
        monkeypatch.setattr(budget, "available", lambda: ())
    limits = Limits(cpu_seconds=4, call_seconds=30)
    worker = WorkerClient(CHUNKS, limits, isolation)
    try:
        call(worker, "spin", "sandbox-test-spin", 3)
        deadline = time.monotonic() + 30
        while worker.budget.overrun is None and time.monotonic() < deadline:
            time.sleep(0.1)
        overrun = worker.budget.overrun
        assert overrun is not None and overrun.kind in ("cpu", "cpu_share"), f"{mechanism}: {overrun}"
        with pytest.raises(WorkerGone) as ended:
            call(worker, "threads", 1)
        assert ended.value.reason in ("cpu_tree", "cpu_share"), ended.value
    finally:
        worker.kill()
    assert gone("sandbox-test-spin"), f"{mechanism}: spinning children survived"
    assert not groups_left(), f"cgroups left behind: {groups_left()}"


def test_the_batch_fits_the_memory_available():
    limits = Limits(memory_bytes=2 * 2**30)
    slot = limits.memory_bytes + capacity.JUDGE_BYTES
    assert capacity.plan_jobs(4, limits, explicit=False, free=int(2.5 * slot))[0] == 2, "not lowered to what fits"
    assert capacity.plan_jobs(2, limits, explicit=True, free=3 * slot)[0] == 2
    with pytest.raises(ValueError, match="--jobs 2"):
        capacity.plan_jobs(3, limits, explicit=True, free=int(2.5 * slot))
    with pytest.raises(ValueError, match="available"):
        capacity.plan_jobs(1, limits, explicit=False, free=slot // 2)


def test_limits_may_be_named_without_their_unit():
    limits = Limits().with_overrides(["memory=300MiB", "call=3", "disk_bytes=1GiB"])
    assert (limits.memory_bytes, limits.call_seconds, limits.disk_bytes) == (300 * 2**20, 3.0, 2**30), limits


FREEZER = Path("/sys/fs/cgroup/freezer")


@pytest.mark.skipif(not cgroups.available() or not (FREEZER / "cgroup.procs").exists(),
                    reason="no writable cgroup v1 memory and freezer hierarchies")
def test_a_worker_group_is_removed_even_when_a_task_in_it_cannot_die_yet(capfd):
    """A task that SIGKILL cannot end at once (here: frozen, as one asleep in the kernel) goes to the grader's own
    group; its worker's group does not stay behind. Without the move the group stays and the removal says so."""
    frozen = FREEZER / f"autograder-test-{os.getpid()}"
    frozen.mkdir()
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        group = cgroups.Group(64 << 20, 16)
        group.add(sleeper.pid)
        (frozen / "cgroup.procs").write_text(str(sleeper.pid))
        (frozen / "freezer.state").write_text("FROZEN")
        folders = dict(group.folders)
        assert group.remove(), f"the group stayed: {group.folders}; {capfd.readouterr().err}"
        assert not any(f.exists() for f in folders.values()), f"folders left: {folders}"
        own = cgroups._own("memory")
        assert str(sleeper.pid) in (own / "cgroup.procs").read_text().split(), "the task did not go to our group"
    finally:
        (frozen / "freezer.state").write_text("THAWED")
        sleeper.kill()
        sleeper.wait()
        for _ in range(100):
            try:
                frozen.rmdir()
                break
            except OSError:
                time.sleep(0.01)
    assert sleeper.returncode == -9, "the frozen task was not killed once it could run"


@pytest.mark.skipif(not cgroups.available(), reason="no writable cgroup v1 memory hierarchy")
def test_stale_groups_are_told_by_their_judges_start_not_its_number_alone():
    """A group is its judge's while a process of that pid runs that started when the judge did: a later process
    that got the number (pids wrap, at 32768 on many machines) does not keep a dead judge's group."""
    own = cgroups._own("memory")
    living = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        kept = own / f"autograder-{living.pid}-{stamp(living.pid)}-0"
        reused = own / f"autograder-{living.pid}-{stamp(living.pid) - 100}-1"  # a second earlier
        dead = own / f"autograder-{UID_BASE}-1-2"  # beyond any pid
        for folder in (kept, reused, dead):
            folder.mkdir()
        cgroups.remove_stale()
        assert kept.exists(), "the group of a judge that still runs was removed"
        assert not reused.exists(), "a dead judge's group was kept because its pid was given to another process"
        assert not dead.exists(), "the group of a judge that is gone was kept"
    finally:
        living.kill()
        living.wait()
        cgroups.remove_stale(living.pid)
    assert not kept.exists(), "remove_stale(pid) left that judge's group"


@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("unshare"), reason="needs root and unshare(1)")
def test_a_zygote_outside_its_own_pid_namespace_kills_nothing_on_reset():
    """The sandbox's reset kills every process it may signal (kill(-1)): only as the init of the PID namespace
    bubblewrap made for it. A zygote that is not (told "bwrap" where it is not in a sandbox) refuses and kills
    nothing. Run in namespaces of its own (PID, mounts with a /tmp and /dev/shm of its own, IPC), so that a reset
    that does kill and wipe reaches only a sleeper there, never this machine's processes and files."""
    code = ("import os, subprocess, time\n"
            "from autograder.sandbox.inside.zygote import ZygoteServer\n"
            # the kit may live in /tmp (a CI checkout): imported first, then /tmp and /dev/shm of our own
            "for folder in ('/tmp', '/dev/shm'):\n"
            "    subprocess.run(['mount', '-t', 'tmpfs', 'tmpfs', folder], check=True)\n"
            "sleeper = subprocess.Popen(['sleep', '30'])\n"
            "left = ZygoteServer(None, {'isolation': 'bwrap'}).reset()\n"
            "time.sleep(0.2)\n"
            "print(os.getpid(), sleeper.poll(), left)\n"
            "sleeper.kill()\n")
    # sh is the namespace's process 1, the Python under test is not
    result = subprocess.run(["unshare", "--pid", "--fork", "--mount-proc", "--mount", "--ipc", "sh", "-c",
                             f'{sys.executable} -c "$0"', code], capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert result.returncode == 0, result.stderr[-2000:]
    pid, sleeper, left = result.stdout.split(" ", 2)
    assert pid != "1", "the test's zygote is its namespace's process 1: it proves nothing"
    assert sleeper == "None", f"the reset killed a process outside its sandbox: {result.stdout}"
    assert "nothing was killed" in left, f"the reset did not say it refused: {left}"
    with pytest.raises(ValueError):
        from autograder.sandbox.zygote_client import ZygoteClient
        ZygoteClient(Limits(), "auto")


def test_a_worker_judged_over_its_budget_answers_nothing_more(monkeypatch):
    """Once the watchdog has found the tree over a limit, no request is answered, even before its kill has landed
    (the watchdog notes the overrun, then kills): the next request says why the worker ended."""
    worker = WorkerClient(CHUNKS, Limits(), capability.isolation_for("auto"))
    try:
        call(worker, "threads", 1)  # alive and answering
        monkeypatch.setattr(worker.budget, "kill", lambda: None)  # the kill has not landed yet
        monkeypatch.setattr(worker.budget, "_memory", lambda folders: budget.Overrun("memory", 5 * 2**30, 3))
        deadline = time.monotonic() + 10
        while worker.budget.overrun is None and time.monotonic() < deadline:
            time.sleep(0.01)
        assert worker.alive(), "the worker was ended although its kill was held back"
        with pytest.raises(WorkerGone) as ended:
            call(worker, "threads", 1)
        assert ended.value.reason == "memory", ended.value
    finally:
        worker.kill()


@pytest.mark.parametrize("mode", MODES)
def test_a_subreaper_keeps_nothing_of_the_sandboxes_it_ends(mode):
    """A process that has started a fallback worker is a subreaper: what outlives its own child becomes its child.
    bubblewrap's child, the sandbox's init, ends a moment after bwrap: a zygote stopped, or a worker started on its
    own and killed, left it behind as a zombie for as long as the grader lived (CI's pytest kept hundreds)."""
    script = (
        "import psutil, sys, time\n"
        "from autograder.config import Limits\n"
        "from autograder.sandbox import linux, worker_client, zygote_client\n"
        "assert linux.become_subreaper()\n"
        "for _ in range(2):\n"
        "    zygote = zygote_client.zygote_for(Limits(), sys.argv[1])\n"
        "    zygote.fork().end()\n"
        "    zygote.stop()\n"
        "worker_client.forks = lambda isolation: False\n"
        "worker_client.WorkerClient([], Limits(), sys.argv[1]).close()\n"
        "time.sleep(0.2)\n"
        "print([(child.name(), child.status()) for child in psutil.Process().children()])\n")
    done = subprocess.run([sys.executable, "-c", script, mode], env=UNCACHED, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0 and done.stdout == "[]\n", (done.stdout, done.stderr[-2000:])


@pytest.mark.parametrize("mode", MODES)
def test_what_a_worker_left_to_a_subreaper_is_not_kept_as_zombies(mode):
    """A fallback worker's children outlive it: a subreaper (every fallback judge) adopts them, and the kill by the
    worker's user id ended them as our zombies, kept for good (CI's pytest kept 57 in four test files). Each counts
    against its user's process limit, and a judge's 64 user ids come round again: the student graded 64 workers
    after a fork bomb could not fork at all."""
    script = (
        "import json, psutil, sys, time\n"
        "from autograder.config import Limits\n"
        "from autograder.sandbox import linux\n"
        "from autograder.sandbox.worker_client import WorkerClient\n"
        "assert linux.become_subreaper()\n"
        "chunks = [{'origin': 'attacks.py', 'code': open(sys.argv[2]).read()}]\n"
        "for name, args in (('fork_bomb', ['sandbox-test-adopted', 300]), ('daemon', ['sandbox-test-adopted'])):\n"
        "    worker = WorkerClient(chunks, Limits(processes=8), sys.argv[1])\n"
        "    worker.request({'op': 'call', 'args': {'id': 1, 'name': name, 'args': args}}, 30)\n"
        "    worker.close()\n"
        "time.sleep(0.2)\n"
        "print([(child.name(), child.status()) for child in psutil.Process().children()\n"
        "       if child.status() == psutil.STATUS_ZOMBIE])\n")
    done = subprocess.run([sys.executable, "-c", script, mode, str(ATTACKS)], env=UNCACHED, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0 and done.stdout == "[]\n", (done.stdout, done.stderr[-2000:])
    assert gone("sandbox-test-adopted"), "the worker's children outlived it"


@pytest.mark.skipif(not ROOT_GRADER, reason="only a root grader gives each worker a user id of its own")
def test_a_user_id_given_again_comes_with_its_whole_process_limit():
    """A judge's 64 user ids come round again. The second worker under the same id, after a fork bomb, could not
    fork at all: the bomb's children were still counted against the id's process limit, as our zombies."""
    script = (
        "import sys\n"
        "from autograder.config import Limits\n"
        "from autograder.sandbox import capability, linux, zygote_client\n"
        "from autograder.sandbox.worker_client import WorkerClient\n"
        "assert linux.become_subreaper()\n"
        "capability.fresh_uid = zygote_client.fresh_uid = lambda isolation: capability.UID_BASE + 12345 * 64\n"
        "chunks = [{'origin': 'attacks.py', 'code': open(sys.argv[1]).read()}]\n"
        "for _ in range(2):\n"
        "    worker = WorkerClient(chunks, Limits(processes=8), 'process')\n"
        "    reply = worker.request({'op': 'call', 'args': {'id': 1, 'name': 'fork_bomb',\n"
        "                                                   'args': ['sandbox-test-again', 300]}}, 30)\n"
        "    print(int(reply['result']['tensor'].item()))\n"
        "    worker.close()\n")
    done = subprocess.run([sys.executable, "-c", script, str(ATTACKS)], env=UNCACHED, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    first, second = map(int, done.stdout.split())
    assert first > 0 and second == first, f"forks: {first} under the id, then {second} under it again"
    assert gone("sandbox-test-again"), "the bombs' children outlived their workers"
