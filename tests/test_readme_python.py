"""The README's "From Python" examples run as written: every ```python block of that section, in order, as one
program, from a fresh working folder holding the repository's `corpora/`, with a training budget of seconds."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest
from conftest import REPO

README = REPO / "README.md"
BUDGET = (re.compile(r"max_time=\d+"), "max_time=3, max_steps=20")


def python_blocks(text: str) -> list[str]:
    """The ```python blocks between the "## From Python" heading and the next level-2 heading."""
    section = text.split("\n## From Python", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```python\n(.*?)```", section, re.S)


def test_the_section_shows_training_rescoring_surprisal_next_tokens_and_errors():
    program = "\n".join(python_blocks(README.read_text()))
    for call in (
        "nlm.train(",
        "nlm.load(",
        ".score(",
        "token_scores(",
        "words=True",
        ".next_tokens(",
        "beam=",
        "NlmError",
    ):
        assert call in program, call


@pytest.mark.slow
def test_every_python_block_runs(tmp_path):
    (tmp_path / "corpora").symlink_to(REPO / "corpora")
    program = BUDGET[0].sub(BUDGET[1], "\n".join(python_blocks(README.read_text())))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "NLM_CACHE_DIR": str(tmp_path / "cache")}
    done = subprocess.run(
        [sys.executable, "-c", program], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, f"{program}\n--- stderr ---\n{done.stderr[-3000:]}"
    out = done.stdout.splitlines()
    assert out[0].startswith("max-steps 20 ") or out[0].startswith("max-time ")
    assert any(line.startswith("best: The miller") for line in out)
    assert out[-1] == "66 runs/no-such-run: no such checkpoint"
    assert (tmp_path / "runs" / "py" / "best.pt").exists()
