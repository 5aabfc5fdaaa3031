"""Shared fixtures: one CPU thread, a private corpus cache, small corpora and runs, the shared data folder."""

from __future__ import annotations

import random
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
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


@pytest.fixture
def corpus(tmp_path) -> Path:
    """A folder with train.txt and valid.txt (the tiny grammar) and latin1.txt (not UTF-8)."""
    write_grammar_corpus(tmp_path, 300)
    (tmp_path / "latin1.txt").write_bytes(b"fine line\ncaf\xe9 au lait\n")
    return tmp_path


@pytest.fixture
def finished_run(corpus) -> tuple[Path, dict[str, bytes]]:
    """A two-epoch run in corpus/run, and a snapshot of its files."""
    from cli_helpers import TINY_LM, nlm, snapshot

    args = ["--train", corpus / "train.txt", "--valid", corpus / "valid.txt", "-o", corpus / "run", "--epochs", "2"]
    result = nlm("train", *args, *TINY_LM)
    assert result.exit_code == 0, result.stderr
    return corpus / "run", snapshot(corpus / "run")


@pytest.fixture(scope="session")
def lm_run(tmp_path_factory) -> Path:
    """The session's tiny word-level language model (lm_helpers)."""
    from lm_helpers import session_root, train_tiny_lm

    return train_tiny_lm(session_root(tmp_path_factory), "word")


@pytest.fixture(scope="session")
def markov_corpus(tmp_path_factory) -> tuple[Path, Path]:
    from lm_helpers import session_root, write_corpus

    return write_corpus(session_root(tmp_path_factory) / "corpus")


@pytest.fixture(scope="module")
def ae_run(tmp_path_factory) -> Path:
    """A one-step autoencoder with a 32-value code."""
    from cli_helpers import nlm

    run = tmp_path_factory.mktemp("ae") / "ae"
    options = ["--max-steps", "1", "--hidden", "32", "--device", "cpu", "-q"]
    result = nlm("autoencoder", "train", "--data", "generated:64", *options, "-o", run)
    assert result.exit_code == 0, result.stderr
    return run


@pytest.fixture(scope="module")
def images(tmp_path_factory) -> Path:
    """512 random 28x28 images as a .npz: their codes (64 KiB) outgrow a 16 KiB file-size limit."""
    path = tmp_path_factory.mktemp("images") / "images.npz"
    np.savez(path, x=np.random.default_rng(0).integers(0, 256, size=(512, 28, 28), dtype=np.uint8))
    return path


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
