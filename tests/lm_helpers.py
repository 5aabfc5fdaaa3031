"""Tiny language models for the scoring, generation and CLI tests, trained once per test session.

Each model is trained into a folder under pytest's session temp directory; a second call
with the same name finds the folder and reuses it, so test modules share the training.
"""

from __future__ import annotations

import io
from pathlib import Path

from rich.console import Console

from nlm.corpora.markov import MarkovSource
from nlm.lm.config import LMDataConfig
from nlm.lm.training import LMJob
from nlm.models.rnn import RNNConfig
from nlm.text.build import VocabConfig
from nlm.train.config import TrainConfig

SOURCE = MarkovSource.random(num_words=12, concentration=0.5, mean_length=6.0, seed=7)


def write_corpus(folder: Path, lines: int = 300, seed: int = 0) -> tuple[Path, Path]:
    """A small Markov corpus: train.txt and valid.txt."""
    folder.mkdir(parents=True, exist_ok=True)
    train, valid = folder / "train.txt", folder / "valid.txt"
    if not train.exists():
        train.write_text("".join(s + "\n" for s in SOURCE.sample(lines, seed=seed)))
        valid.write_text("".join(s + "\n" for s in SOURCE.sample(lines // 5, seed=seed + 1)))
    return train, valid


def train_tiny_lm(
    root: Path,
    name: str,
    *,
    level: str = "word",
    mode: str = "stream",
    size: int | None = None,
    steps: int = 30,
    hidden: int = 16,
    train_file: Path | None = None,
    valid_file: Path | None = None,
    lr: float = 0.02,
    epochs: int = 50,
    softmax: str = "full",
    cutoffs: tuple[int, ...] = (),
) -> Path:
    """Train (or reuse) a one-layer LSTM into root/name and return the run folder."""
    run_dir = root / name
    if (run_dir / "best.pt").exists():
        return run_dir
    if train_file is None:
        train_file, valid_file = write_corpus(root / "corpus")
    job = LMJob(
        train=str(train_file),
        valid=str(valid_file) if valid_file else None,
        cache_dir=root / "cache",
        vocab_config=VocabConfig(level=level, size=size),
        data=LMDataConfig(mode=mode, batch_size=8, bptt=12, eval_batch_size=4),
        model=RNNConfig(emb=hidden, hidden=hidden, layers=1, dropout=0.0, softmax=softmax, cutoffs=cutoffs),
    )
    job.start(
        output=run_dir,
        console=Console(file=io.StringIO()),
        quiet=True,
        train=TrainConfig(optimizer="adam", lr=lr, max_steps=steps, epochs=epochs, device="cpu", seed=3),
    )
    return run_dir


# The output heads the scoring and generation tests run on.  The tiny word vocabulary has 16
# symbols: the adaptive head keeps the specials and 3 words in its shortlist, and two tail clusters
# (4 and 5 words, projected to 16 / 4 and 16 / 16 dimensions) hold the rest.
HEADS = {"full": {}, "adaptive": {"softmax": "adaptive", "cutoffs": (7, 11)}}


def tiny_word_lm(tmp_path_factory, head: str) -> Path:
    """The session's tiny word model with the output head `head` (a key of HEADS)."""
    name = "word" if head == "full" else f"word-{head}"
    return train_tiny_lm(session_root(tmp_path_factory), name, **HEADS[head])


def session_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.getbasetemp() / "tiny-lms"
    root.mkdir(exist_ok=True)
    return root
