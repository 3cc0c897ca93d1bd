"""What each check costs: CPU in the judge and in the worker, per graded submission, and the requests it makes.

    python benchmarks/check_cost.py [NOTEBOOK] [-n 20] [--sandbox bwrap|process]

One judge (this process) grades NOTEBOOK (default: the English solution, which runs every check to the end) once
untimed and then n times, one submission after another. For each check, and for its setup apart (the preconditions:
the attention gate runs in the setup of a class's first behaviour check), it sums the judge's own CPU (this thread)
and the worker's (every thread of the submission's worker process; what that starts is not counted), read from the
kernel's scheduler statistics in nanoseconds, and counts the round trips into the worker and the requests they
carried. It prints the checks by cost, the totals, and what the marginal-cost goal of issue 21 would allow (0.05x a
`python -c "import torch"` timed here, on 2 cores: at most 0.1x of it in CPU, for everything).

Compare with the profile by stage of benchmarks/grade_vs_nbgrader.py: this one says which checks the time of the
stage "checks" belongs to, so that a decision on fewer or different probes can be taken from measurements.
"""
from __future__ import annotations

import argparse
import collections
import os
import sys
import time
from pathlib import Path

import _pytest.runner
from grade_vs_nbgrader import timed  # this folder is sys.path[0] when the script runs

ROOT = Path(__file__).resolve().parent.parent


def workers_cpu() -> float:
    """CPU seconds so far of every thread of this process's live workers (a worker that ended no longer counts)."""
    from autograder.sandbox import worker_client

    total = 0
    for client in list(worker_client._LIVE):
        pid = getattr(client.process, "worker", None) or client.process.pid  # bwrap: the worker, not bwrap
        try:
            for task in os.listdir(f"/proc/{pid}/task"):
                with open(f"/proc/{pid}/task/{task}/schedstat") as handle:
                    total += int(handle.read().split()[0])
        except OSError:  # ended meanwhile
            continue
    return total / 1e9


class Tally:
    """Per check: judge CPU, worker CPU (in all, and in its setup: the preconditions, the attention gate among
    them), round trips and requests; counted while `on`."""

    def __init__(self) -> None:
        self.judge: collections.Counter = collections.Counter()
        self.worker: collections.Counter = collections.Counter()
        self.setup: collections.Counter = collections.Counter()
        self.trips: collections.Counter = collections.Counter()
        self.requests: collections.Counter = collections.Counter()
        self.on = False
        self.current = "other"

    def wrap(self, call_and_report):
        """pytest's call_and_report (one phase of one check: setup, call or teardown), timed."""
        def phase(item, when, log=True, **kwargs):
            name = self.current = item.name.split("[")[0]
            worker = workers_cpu()
            judge = time.thread_time()  # (the tally's own reads fall outside it)
            try:
                return call_and_report(item, when, log, **kwargs)
            finally:
                judge = time.thread_time() - judge
                worker = max(workers_cpu() - worker, 0.0)
                self.current = "other"
                if self.on:
                    self.judge[name] += judge
                    self.worker[name] += worker
                    if when == "setup":
                        self.setup[name] += judge + worker
        return phase

    def count(self, replies):
        def counted(client, messages, seconds):
            if self.on:
                self.trips[self.current] += 1
                self.requests[self.current] += len(messages)
            return replies(client, messages, seconds)
        return counted


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("notebook", nargs="?", type=Path, default=ROOT / "solutions" / "en" / "ch03_attention.ipynb")
    parser.add_argument("-n", type=int, default=20, help="timed grades (after one untimed)")
    parser.add_argument("--sandbox", choices=("bwrap", "process"), default="bwrap")
    parser.add_argument("--top", type=int, default=25, help="checks listed, the dearest first")
    args = parser.parse_args()

    import torch

    from autograder import pipeline
    from autograder.config import Config
    from autograder.sandbox import worker_client
    from autograder.sandbox.zygote_client import prestart
    from autograder.sources import File

    torch.set_num_threads(1)  # as a judge runs
    tally = Tally()
    _pytest.runner.call_and_report = tally.wrap(_pytest.runner.call_and_report)
    worker_client.WorkerClient.replies = tally.count(worker_client.WorkerClient.replies)
    config, run = Config(), pipeline.Run(args.sandbox, None)
    prestart(config.limits, run.isolation)
    with pipeline.Session(config, run, many=True) as session:
        first = pipeline.grade(File(args.notebook), config, run, session)
        tally.on = True
        start = time.perf_counter()
        for _ in range(args.n):
            pipeline.grade(File(args.notebook), config, run, session)
        wall = time.perf_counter() - start
    floor, _, _ = timed([sys.executable, "-c", "import torch"], ROOT)  # as the speed benchmark times it

    n = args.n
    judge, worker = sum(tally.judge.values()) / n, sum(tally.worker.values()) / n
    print(f"{args.notebook.name}, --sandbox {args.sandbox}, score {first.to_json().get('score')}, {n} grades "
          f"by one judge, one after another: {wall / n * 1000:.0f} ms wall per submission")
    print(f"in the checks, per submission: judge {judge * 1000:.0f} ms + worker {worker * 1000:.0f} ms CPU, "
          f"{sum(tally.trips[k] for k in tally.judge) / n:.0f} round trips carrying "
          f"{sum(tally.requests[k] for k in tally.judge) / n:.0f} requests (the first check also starts the worker)")
    print(f"`import torch` here: {floor:.2f} s; a marginal cost of 0.05x of it on 2 cores allows about "
          f"{0.1 * floor * 1000:.0f} ms of CPU per submission, everything included")
    print()
    print(f"{'CPU ms':>7} {'judge':>6} {'worker':>6} {'setup':>6} {'trips':>5} {'reqs':>5}  check "
          f"(setup: its preconditions, the attention gate among them, judge and worker)")
    checks = sorted(tally.judge, key=lambda k: -(tally.judge[k] + tally.worker[k]))
    rest = checks[args.top:]
    rows = [(name, [name]) for name in checks[:args.top]] + ([(f"the other {len(rest)} checks", rest)] if rest else [])
    columns = (lambda k: tally.judge[k] + tally.worker[k], tally.judge.__getitem__, tally.worker.__getitem__,
               tally.setup.__getitem__)
    for label, names in rows:
        cpu = " ".join(f"{sum(column(k) for k in names) / n * 1000:{w}.1f}" for column, w in zip(columns, (7, 6, 6, 6)))
        print(f"{cpu} {sum(tally.trips[k] for k in names) / n:5.0f} {sum(tally.requests[k] for k in names) / n:5.0f}"
              f"  {label}")
    setup = sum(tally.setup.values()) / n
    print(f"\nin all, the checks' setup {setup * 1000:.0f} ms and their calls {(judge + worker - setup) * 1000:.0f} ms")
    sys.stdout.flush()
    os._exit(0)  # the session's zygotes and pools are gone; skip the interpreter's slow teardown of torch


if __name__ == "__main__":
    main()
