"""Training speed: tokens/s of nlm's training path against a bare PyTorch loop, same model, side by side.

Both train the same RNNLM (the PyTorch word-language-model example's defaults: 2 x 200
LSTM, dropout 0.2, batch 20, bptt 35, SGD lr 20, clip 0.25) on PTB.  The reference loop
holds the whole batchified corpus in one tensor, as the example does; nlm reads windows
from its memory-mapped cache and runs the shared Trainer with its LM task and callbacks.
The two alternate, several rounds each, and the median of each is reported.

    python bench/train_speed.py [--steps 150] [--rounds 3] [--threads N]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from common import data_file, machine, sha256
from rich.console import Console

from nlm.io.text import read_lines
from nlm.lm.config import LMDataConfig
from nlm.lm.task import LMTask
from nlm.models.rnn import RNNLM, RNNConfig, detach_state
from nlm.runtime import seed_everything
from nlm.text.build import VocabConfig, build_vocab
from nlm.text.corpus import encode_corpus
from nlm.train.callbacks import ProgressCallback
from nlm.train.config import TrainConfig
from nlm.train.trainer import Callback, Trainer

MODEL = RNNConfig(cell="lstm", layers=2, emb=200, hidden=200, dropout=0.2, tie=False)
DATA = LMDataConfig(batch_size=20, bptt=35)


class StepClock(Callback):
    """Time from the end of the warm-up steps to the last step."""

    def __init__(self, warmup: int) -> None:
        self.warmup, self.start, self.end, self.tokens = warmup, 0.0, 0.0, 0

    def on_batch_end(self, trainer: Trainer) -> None:
        if trainer.progress.global_step == self.warmup:
            self.start, self.tokens = time.perf_counter(), trainer.progress.units
        self.end = time.perf_counter()
        self.final_tokens = trainer.progress.units

    def rate(self) -> float:
        return (self.final_tokens - self.tokens) / (self.end - self.start)


def nlm_path(corpus, vocab, steps: int, warmup: int) -> float:
    seed_everything(1)
    model = RNNLM(MODEL.replace(vocab_size=len(vocab)))
    task = LMTask(model=model, vocab=vocab, train=corpus, valid=None, data=DATA, device=torch.device("cpu"), seed=1)
    clock = StepClock(warmup)
    quiet = ProgressCallback(Console(stderr=True, quiet=True), describe=task.describe)  # as `nlm train` runs it
    config = TrainConfig(lr=20.0, clip=0.25, max_steps=warmup + steps, epochs=1)
    Trainer(task, config, device=torch.device("cpu"), callbacks=[quiet, clock]).fit()
    return clock.rate()


def bare_loop(corpus, vocab, steps: int, warmup: int) -> float:
    """The PyTorch example's loop: batchify, get_batch, repackage_hidden, backward, clip, step."""
    seed_everything(1)
    model = RNNLM(MODEL.replace(vocab_size=len(vocab)))
    ids = torch.from_numpy(corpus.ids[:].astype("int64"))
    rows = ids[: len(ids) // DATA.batch_size * DATA.batch_size].view(DATA.batch_size, -1)
    optimizer = torch.optim.SGD(model.parameters(), lr=20.0)
    model.train()
    hidden, start, tokens = None, 0.0, 0
    for step, i in enumerate(range(0, rows.size(1) - 1, DATA.bptt)):
        if step == warmup:
            start, tokens = time.perf_counter(), 0
        if step == warmup + steps:
            break
        seq = min(DATA.bptt, rows.size(1) - 1 - i)
        inputs, targets = rows[:, i : i + seq], rows[:, i + 1 : i + 1 + seq]
        hidden = detach_state(hidden) if hidden is not None else None
        features, hidden = model(inputs, hidden)
        logits = model.decoder(features)
        loss = F.cross_entropy(logits.reshape(-1, logits.size(-1)), targets.reshape(-1))
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 0.25)
        optimizer.step()
        tokens += targets.numel()
    return tokens / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=150, help="timed steps per measurement")
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    train = data_file("ptb/ptb.train.txt")
    vocab, _ = build_vocab(read_lines(train), config=VocabConfig())
    corpus = encode_corpus(train, vocab, cache_dir=Path(tempfile.mkdtemp(prefix="nlm-bench-")))
    print(f"data: {train} sha256 {sha256(train)[:16]}…, {corpus.tokens:,} tokens, vocabulary {len(vocab):,}")
    print(f"machine: {machine()}")
    print(f"model: {MODEL.layers} x {MODEL.hidden} {MODEL.cell}, batch {DATA.batch_size}, bptt {DATA.bptt}; "
          f"{args.rounds} rounds of {args.steps} steps after {args.warmup} warm-up steps")
    results = {"bare PyTorch loop": [], "nlm Trainer + LMTask": []}
    for _ in range(args.rounds):
        results["bare PyTorch loop"].append(bare_loop(corpus, vocab, args.steps, args.warmup))
        results["nlm Trainer + LMTask"].append(nlm_path(corpus, vocab, args.steps, args.warmup))
    reference = statistics.median(results["bare PyTorch loop"])
    print(f"\n{'path':<24}{'tokens/s (median)':>20}{'rounds':>34}{'vs bare':>10}")
    for name, rates in results.items():
        median = statistics.median(rates)
        print(f"{name:<24}{median:>20,.0f}{'  '.join(f'{r:,.0f}' for r in rates):>34}{median / reference - 1:>+10.1%}")


if __name__ == "__main__":
    main()
