"""Shared fixtures: one CPU thread, a private corpus cache, small corpora, the shared data folder."""

from __future__ import annotations

import random
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"

torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _private_cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("NLM_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "cache"))


@pytest.fixture
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip("../shared/data is not here")
    return SHARED_DATA


def tiny_text(lines: int = 200, seed: int = 0) -> str:
    """Sentences from a small grammar: repetitive enough for a tiny model to learn in seconds."""
    rng = random.Random(seed)
    subjects = ["the cat", "a dog", "my friend", "the old man", "our teacher"]
    verbs = ["sees", "likes", "walks to", "finds", "paints"]
    objects = ["the river", "a red house", "the market", "a small boat", "the hills"]
    return "".join(f"{rng.choice(subjects)} {rng.choice(verbs)} {rng.choice(objects)} .\n" for _ in range(lines))


def write_grammar_corpus(folder: Path, train_lines: int) -> tuple[Path, Path]:
    train, valid = folder / "train.txt", folder / "valid.txt"
    train.write_text(tiny_text(train_lines, seed=1))
    valid.write_text(tiny_text(60, seed=2))
    return train, valid


@pytest.fixture
def tiny_corpus(tmp_path) -> tuple[Path, Path]:
    return write_grammar_corpus(tmp_path, 300)


@contextmanager
def killed_after(process: subprocess.Popen, seconds: float) -> Iterator[subprocess.Popen]:
    """Kill `process` if it is still running after `seconds`, so a blocking read of its output cannot hang the suite."""
    timer = threading.Timer(seconds, process.kill)
    timer.start()
    try:
        yield process
    finally:
        timer.cancel()
        if process.poll() is None:
            process.kill()
        process.wait(timeout=seconds)
