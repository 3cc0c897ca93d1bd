"""The command ends without tearing down the interpreter (about 0.5 s of a self-check), yet exits as Python would:
the same status, every exit handler run, every line written, and a thread still at work waited for."""
from __future__ import annotations

import subprocess
import sys

from tests.conftest import ROOT

PRELUDE = ("import atexit, sys, threading, time\n"
           "import autograder.cli as cli\n"
           "atexit.register(lambda: print('exit handler ran', flush=True))\n")


def run(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", PRELUDE + code], cwd=ROOT, capture_output=True, text=True,
                          timeout=120)


def test_the_status_the_output_and_the_exit_handlers_are_kept():
    done = run("def main():\n    print('checked', end='')\n    sys.stderr.write('a warning')\n    return 3\n"
               "cli.main = main\ncli.run()\nprint('never')")
    assert done.returncode == 3, done.stderr
    assert done.stdout == "checkedexit handler ran\n" and done.stderr == "a warning", (done.stdout, done.stderr)


def test_a_thread_still_at_work_is_waited_for():
    done = run("def late():\n    time.sleep(0.5)\n    print('thread done', flush=True)\n"
               "def main():\n    threading.Thread(target=late).start()\n    return 0\n"
               "cli.main = main\ncli.run()")
    assert done.returncode == 0 and done.stdout.splitlines() == ["thread done", "exit handler ran"], done.stdout


def test_an_error_in_the_command_exits_as_python_does():
    done = run("def main():\n    raise KeyError('boom')\ncli.main = main\ncli.run()")
    assert done.returncode == 1 and "KeyError: 'boom'" in done.stderr and "exit handler ran" in done.stdout
