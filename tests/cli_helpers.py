"""Running the real `nlm` app, in-process or as a child process, and the one-line error contract every command keeps.

In-process (`nlm`) is the fast default; a child process (`nlm_process`, `nlm_popen`) is for what CliRunner cannot
fake: signals, locks, kill -9, resource limits, a real stdin or stdout.  Every child has a timeout, and one that must
react to SIGINT gets SIGINT at its default (`default_sigint`) even when the suite itself runs in the background.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from conftest import REPO
from PIL import Image
from typer.testing import CliRunner

from nlm.cli import app

TIMEOUT = 300  # seconds: generous, CI machines are slow and busy; a hang still fails
TINY_LM = ["--emb", "16", "--hidden", "16", "--layers", "1", "--batch-size", "4", "--bptt", "8", "-q"]  # nlm train


def nlm(*args, input: str | bytes | None = None, env: dict[str, str] | None = None):
    return CliRunner().invoke(app, [str(a) for a in args], input=input, env=env)


def one_line_error(result, code: int, words: str) -> None:
    """The exit code, one line on stderr that says what is wrong, no traceback, nothing on stdout."""
    assert result.exit_code == code, (result.exit_code, result.stderr, result.exception)
    assert result.stderr.startswith("nlm: error:") and result.stderr.count("\n") == 1, result.stderr
    assert words in result.stderr and "Traceback" not in result.stderr and result.stdout == ""


def says_one_line(stderr: str, *words: str) -> None:
    """A child's stderr is exactly one line, no traceback, holding each of `words`."""
    assert "Traceback" not in stderr, stderr
    assert len(stderr.strip().splitlines()) == 1, stderr
    for word in words:
        assert word in stderr, stderr


def child_env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}


def nlm_process(*args, cwd: Path | None = None, preexec_fn=None, setup: str = "", timeout: float = TIMEOUT):
    """`python -m nlm ARGS` run to its end in a child process: a CompletedProcess with text stdout and stderr.
    `setup`: Python run in the child once nlm is imported and before the command (a memory cap)."""
    start = (
        ["-m", "nlm"] if not setup else ["-c", f"import sys, nlm.cli\n{setup}\nsys.argv[0] = 'nlm'\nnlm.cli.main()\n"]
    )
    return subprocess.run(
        [sys.executable, *start, *map(str, args)],
        capture_output=True,
        text=True,
        timeout=timeout,
        preexec_fn=preexec_fn,
        cwd=cwd,
        env=child_env(),
    )


def nlm_popen(*args, cwd: Path | None = None, **popen) -> subprocess.Popen:
    """`python -m nlm ARGS` started in a child process, for a test that signals it or reads it as it runs."""
    return subprocess.Popen([sys.executable, "-m", "nlm", *map(str, args)], cwd=cwd, env=child_env(), **popen)


def default_sigint() -> None:
    """preexec_fn: a child started from a background job inherits SIGINT ignored; give it the default back."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def wait_for(condition, what: str, timeout: float = TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def snapshot(folder: Path) -> dict[str, bytes]:
    """The files of a run folder and their bytes (its lock aside), to check what a refused command left."""
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file() and p.name != ".lock"}


def leftovers(folder: Path) -> list[str]:
    """Temporary files of the atomic writer left in `folder`."""
    return sorted(p.name for p in folder.iterdir() if p.name.startswith(".") and p.name.endswith(".tmp"))


def png_size(path) -> tuple[int, int]:
    """Decode the PNG fully (a truncated file fails here) and return its (width, height)."""
    with Image.open(path) as image:
        assert image.format == "PNG"
        image.load()
        return image.size
