"""The README's tour runs as written: every ```sh block under "A tour", in order, from a fresh working folder.

The blocks run in a temporary folder that holds the repository's `corpora/` (and `../shared`
where this checkout has it), the way a new user runs them from a clone.  Only the budgets change,
so the whole tour takes a minute or two: every `--max-time` becomes a few seconds, every
`--epochs` one, and every `train` command also stops after a few steps.  A command that names
`../shared/data` is skipped where that folder is absent.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO, SHARED_DATA

README = REPO / "README.md"
BUDGETS = [  # (pattern, replacement): the tour's budgets, made small
    (re.compile(r"--max-time \d+"), "--max-time 3"),
    (re.compile(r"--epochs \d+"), "--epochs 1"),
    (re.compile(r"--pretrain-epochs \d+"), "--pretrain-epochs 1"),
    (re.compile(r"--max-steps \d+"), "--max-steps 20"),
    (re.compile(r"(nlm (?:vision |autoencoder )?train\b)"), r"\1 --max-steps 20"),
]


def tour_blocks(text: str) -> list[str]:
    """The ```sh blocks between the "## A tour" heading and the next level-2 heading."""
    tour = text.split("\n## A tour", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```sh\n(.*?)```", tour, re.S)


def small(block: str) -> str:
    for pattern, replacement in BUDGETS:
        block = pattern.sub(replacement, block)
    return block


def test_the_tour_is_found_and_every_command_in_it_is_an_nlm_command():
    blocks = tour_blocks(README.read_text())
    commands = [line for block in blocks for line in block.splitlines() if line.strip() and not line.startswith("#")]
    assert len(blocks) >= 5 and len(commands) >= 25
    shell = ("for ", "done")  # a loop over nlm commands
    assert all(
        "nlm " in line or line.startswith((" ", "\t", *shell)) or line.rstrip().endswith("\\") for line in commands
    )


@pytest.mark.slow
def test_every_block_of_the_tour_runs(tmp_path):
    work = tmp_path / "clone"
    work.mkdir()
    (work / "corpora").symlink_to(REPO / "corpora")
    if SHARED_DATA.is_dir():
        (tmp_path / "shared").symlink_to(SHARED_DATA.parent)
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        "OMP_NUM_THREADS": "1",
        "NLM_CACHE_DIR": str(tmp_path / "cache"),
    }
    for number, block in enumerate(tour_blocks(README.read_text()), start=1):
        if "../shared/data" in block and not SHARED_DATA.is_dir():
            continue
        script = "set -eu\n" + small(block)
        done = subprocess.run(["bash", "-c", script], cwd=work, env=env, capture_output=True, text=True, timeout=900)
        assert done.returncode == 0, f"block {number} failed:\n{script}\n--- stderr ---\n{done.stderr[-3000:]}"
        assert "Traceback" not in done.stderr, done.stderr
