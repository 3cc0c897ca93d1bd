"""End to end in a real browser: a student fills a stub, breaks it and fixes it, in JupyterLab and in `marimo edit`."""
from __future__ import annotations

import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import nbformat
import pytest

from tests.conftest import ROOT

pytestmark = pytest.mark.slow

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--no-first-run", "--disable-sync"]
SOFTMAX_NAIVE = (
    "def softmax_naive(x: torch.Tensor) -> torch.Tensor:\n"
    "    exp_x = torch.exp(x)\n"
    "    return exp_x / exp_x.sum(dim=0)\n"
)
BROKEN = (  # forgets to normalise: the weights no longer sum to 1
    "def softmax_naive(x: torch.Tensor) -> torch.Tensor:\n"
    "    return torch.exp(x)\n"
)
PASSED = "li.check.passed"
FAILED = "li.check.failed"
LANGS = ["en", "zh_TW"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_http(url: str, server: subprocess.Popen, log: Path, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise AssertionError(f"the server exited with {server.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.5)
    raise AssertionError(f"{url} did not answer within {timeout} s:\n{log.read_text()[-3000:]}")


def start(command: list[str], cwd: Path, log: Path, env: dict | None = None) -> subprocess.Popen:
    handle = log.open("w")
    # a session of its own, so the finaliser can stop the server and the kernels it started
    return subprocess.Popen(command, cwd=cwd, stdout=handle, stderr=subprocess.STDOUT, start_new_session=True,
                            env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})})


def stop(server: subprocess.Popen) -> None:
    if server.poll() is None:
        os.killpg(server.pid, 15)
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, 9)
            server.wait(timeout=20)


@pytest.fixture(scope="module")
def browser() -> Iterator:
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing; install Debian's chromium package (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


def private_jupyter_dirs(base: Path) -> dict:
    """Runtime files, settings and workspaces of this server only: no state from the user's own sessions."""
    names = {"JUPYTER_RUNTIME_DIR": "runtime", "JUPYTERLAB_SETTINGS_DIR": "settings",
             "JUPYTERLAB_WORKSPACES_DIR": "workspaces"}
    for name in names.values():
        (base / name).mkdir(parents=True)
    return {key: str(base / name) for key, name in names.items()}


@pytest.fixture(params=LANGS)
def jupyterlab(request, tmp_path) -> Iterator[tuple[str, Path, str]]:
    """JupyterLab on loopback, with a fresh token, serving a copy of assignments/<lang>."""
    root = tmp_path / "lab"
    shutil.copytree(ROOT / "assignments" / request.param, root)
    token, port = secrets.token_hex(16), free_port()
    log = tmp_path / "jupyterlab.log"
    server = start([sys.executable, "-m", "jupyter", "lab", "--no-browser", f"--ServerApp.token={token}",
                    "--ServerApp.ip=127.0.0.1", f"--port={port}", f"--ServerApp.root_dir={root}",
                    "--ServerApp.port_retries=0", *(["--allow-root"] if os.geteuid() == 0 else [])],
                   cwd=root, log=log, env=private_jupyter_dirs(tmp_path / "jupyter"))
    try:
        wait_for_http(f"http://127.0.0.1:{port}/api/status?token={token}", server, log)
        yield f"http://127.0.0.1:{port}/lab/tree/ch03_attention.ipynb?token={token}", log, request.param
    finally:
        stop(server)


def replace_cell_text(page, editor, text: str) -> None:
    """Select everything in a cell's CodeMirror editor and type `text` in its place."""
    editor.click()
    page.keyboard.press("Control+a")
    page.keyboard.insert_text(text)


def test_jupyterlab_fill_break_fix_and_the_check_follows(browser, jupyterlab, tmp_path):
    url, log, lang = jupyterlab
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.set_default_timeout(120_000)
    try:
        page.goto(url)
        cells = page.locator(".jp-Notebook .jp-Cell")
        cells.first.wait_for()
        page.locator(".jp-Notebook-ExecutionIndicator[data-status='idle']").wait_for(timeout=180_000)
        notebook = nbformat.read(ROOT / f"assignments/{lang}/ch03_attention.ipynb", as_version=4)
        sources = [c.source for c in notebook.cells]
        stub = next(i for i, s in enumerate(sources) if s.startswith("def softmax_naive"))
        check_cell = next(i for i, s in enumerate(sources) if "check(softmax_naive)" in s)
        assert stub < check_cell, "the check cell follows the stub"
        editor = cells.nth(stub).locator(".cm-content")
        output = cells.nth(check_cell).locator(".jp-OutputArea-output")

        def run_from(first: int) -> None:  # Shift+Enter from `first` down to the check cell
            cells.nth(first).click()
            page.keyboard.press("Escape")
            for _ in range(check_cell - first + 1):
                page.keyboard.press("Shift+Enter")

        # fill: the student replaces the stub and runs the cells from the top down to the check
        replace_cell_text(page, editor, SOFTMAX_NAIVE)
        assert "exp_x.sum(dim=0)" in editor.inner_text()
        run_from(0)
        output.locator(PASSED).first.wait_for(timeout=240_000)
        page.screenshot(path=str(tmp_path / "jupyterlab.png"), full_page=False)
        assert output.locator(FAILED).count() == 0, output.inner_text()
        assert "softmax_naive" in output.inner_text()
        # break, then fix: each time the student re-runs from the stub down, and the checklist follows
        for text, shown in ((BROKEN, FAILED), (SOFTMAX_NAIVE, PASSED)):
            replace_cell_text(page, editor, text)
            run_from(stub)
            output.locator(shown).first.wait_for(timeout=120_000)
            gone = FAILED if shown == PASSED else PASSED
            assert output.locator(gone).count() == 0, f"{lang}: stale result after the edit: {output.inner_text()}"
    except Exception:
        page.screenshot(path=str(tmp_path / "jupyterlab-failure.png"))
        print(log.read_text()[-3000:])
        raise
    finally:
        page.close()


MARIMO_NOTEBOOK = '''\
import marimo

app = marimo.App()


@app.cell
def _():
    import torch
    return (torch,)


@app.cell
def _(torch):
    def softmax_naive(x: torch.Tensor) -> torch.Tensor:
        exp_x = torch.exp(x)
        return exp_x / exp_x.sum(dim=0)
    return (softmax_naive,)


@app.cell
def _(softmax_naive):
    from autograder import check
    softmax_naive  # run after the definition
    check("softmax_naive")
    return


if __name__ == "__main__":
    app.run()
'''


@pytest.fixture
def marimo_app(tmp_path) -> Iterator[tuple[str, Path]]:
    """`marimo run --headless` on loopback serving a small notebook that solves softmax_naive."""
    notebook = tmp_path / "softmax.py"
    notebook.write_text(MARIMO_NOTEBOOK, encoding="utf-8")
    token, port = secrets.token_hex(16), free_port()
    log = tmp_path / "marimo.log"
    server = start([sys.executable, "-m", "marimo", "run", str(notebook), "--headless", "--host", "127.0.0.1",
                    "--port", str(port), "--token-password", token], cwd=tmp_path, log=log)
    try:
        wait_for_http(f"http://127.0.0.1:{port}/health", server, log)
        yield f"http://127.0.0.1:{port}/?access_token={token}", log
    finally:
        stop(server)


def test_marimo_app_shows_the_passing_checklist(browser, marimo_app, tmp_path):
    url, log = marimo_app
    page = browser.new_page(viewport={"width": 1200, "height": 900})
    page.set_default_timeout(120_000)
    try:
        page.goto(url)
        page.locator(PASSED).first.wait_for(timeout=240_000)
        page.screenshot(path=str(tmp_path / "marimo.png"))
        assert page.locator(FAILED).count() == 0
        assert "softmax_naive" in page.locator(".autograder-checklist").first.inner_text()
    except Exception:
        page.screenshot(path=str(tmp_path / "marimo-failure.png"))
        print(log.read_text()[-3000:])
        raise
    finally:
        page.close()


@pytest.fixture(params=LANGS)
def marimo_edit(request, tmp_path) -> Iterator[tuple[str, Path, str]]:
    """`marimo edit --headless` on loopback, editing a copy of assignments/<lang>/ch03_attention.py,
    with marimo settings of its own (its defaults: nothing runs until the student asks)."""
    folder = tmp_path / "work"
    folder.mkdir()
    shutil.copy(ROOT / "assignments" / request.param / "ch03_attention.py", folder)
    token, port = secrets.token_hex(16), free_port()
    log = tmp_path / "marimo-edit.log"
    server = start([sys.executable, "-m", "marimo", "edit", str(folder / "ch03_attention.py"), "--headless",
                    "--host", "127.0.0.1", "--port", str(port), "--token-password", token], cwd=folder, log=log,
                   env={"XDG_CONFIG_HOME": str(tmp_path / "config"), "HOME": str(tmp_path)})
    try:
        wait_for_http(f"http://127.0.0.1:{port}/health", server, log)
        yield f"http://127.0.0.1:{port}/?access_token={token}", log, request.param
    finally:
        stop(server)


def test_marimo_edit_fill_break_fix_and_the_check_follows(browser, marimo_edit, tmp_path):
    """The check cell is never run by hand: marimo re-runs it because it depends on softmax_naive."""
    url, log, lang = marimo_edit
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.set_default_timeout(120_000)
    try:
        page.goto(url)
        cell = page.locator("[data-cell-id]")
        cell.first.wait_for()
        # as the notebook tells the student: run it once with the button at the bottom right
        page.locator("[data-testid=chrome-controls-bottom-right] [data-testid=run-button]").click()
        check_cell = cell.filter(has_text="check(softmax_naive)")
        check_cell.first.wait_for()  # cells render one after another; count once this one is there
        assert check_cell.count() == 1, "one check cell for softmax_naive"
        check_cell.locator(FAILED).first.wait_for(timeout=300_000)  # the untouched stub fails its check
        stub = cell.filter(has_text="def softmax_naive")
        assert stub.count() == 1, "one cell defines softmax_naive"
        editor = stub.locator(".cm-content")
        for step, (text, shown, gone) in enumerate(((SOFTMAX_NAIVE, PASSED, FAILED), (BROKEN, FAILED, PASSED),
                                                     (SOFTMAX_NAIVE, PASSED, FAILED))):
            replace_cell_text(page, editor, text)
            page.keyboard.press("Control+Enter")  # runs the edited cell only
            check_cell.locator(shown).first.wait_for(timeout=120_000)
            check_cell.locator(gone).first.wait_for(state="detached", timeout=60_000)
            page.screenshot(path=str(tmp_path / f"marimo-edit-{step}.png"))
        assert "softmax_naive" in check_cell.locator(".autograder-checklist").inner_text()
    except Exception:
        page.screenshot(path=str(tmp_path / "marimo-edit-failure.png"))
        print(log.read_text()[-3000:])
        raise
    finally:
        page.close()
