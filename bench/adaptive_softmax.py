"""Adaptive against full softmax on WikiText-2 (33k words): training tokens/s, and validation perplexity at equal time.

Both heads sit on the same model (by default nlm's: 2 x 200 LSTM, tied, dropout 0.2, batch 20,
bptt 35, SGD lr 20, clip 0.25, plateau schedule) and train through nlm's own path, the shared
Trainer with its LM task.  Run each process on one core with one torch thread:

    speed     alternating rounds of a few hundred steps, full and each --cutoffs in turn on the
              same core; the median tokens/s of each, and the share of training tokens whose
              target falls in the shortlist (the head cluster) or in each tail
    quality   one head trained for --minutes of wall time, then scored on the validation text;
              run one per core at the same time, then `table` their JSON files

    taskset -c 0 python bench/adaptive_softmax.py speed --cutoffs 2000,10000 --cutoffs 4000,20000
    taskset -c 0 python bench/adaptive_softmax.py quality --softmax full --minutes 20 --out runs/asm-full.json &
    taskset -c 1 python bench/adaptive_softmax.py quality --softmax adaptive --cutoffs 2000,10000 \\
        --minutes 20 --out runs/asm-adaptive.json & wait
    python bench/adaptive_softmax.py table runs/asm-full.json runs/asm-adaptive.json
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from common import StepClock, data_file, machine, sha256
from rich.console import Console

from nlm.io.atomic import write_text_atomic
from nlm.io.text import read_lines
from nlm.lm.config import LMDataConfig
from nlm.lm.task import LMTask
from nlm.models.rnn import RNNLM, RNNConfig
from nlm.runtime import seed_everything
from nlm.text.build import VocabConfig, build_vocab
from nlm.text.corpus import encode_corpus
from nlm.train.callbacks import ProgressCallback
from nlm.train.config import TrainConfig
from nlm.train.trainer import Callback, Trainer

DATA = LMDataConfig(batch_size=20, bptt=35, eval_batch_size=10)


def cutoffs(text: str) -> tuple[int, ...]:
    return tuple(int(c) for c in text.split(","))


def load_data():
    """The vocabulary (built from train.txt only) and both encoded splits."""
    train, valid = data_file("wikitext-2/train.txt"), data_file("wikitext-2/valid.txt")
    vocab, _ = build_vocab(read_lines(train), config=VocabConfig())
    cache = Path(tempfile.mkdtemp(prefix="nlm-bench-"))
    corpora = encode_corpus(train, vocab, cache_dir=cache), encode_corpus(valid, vocab, cache_dir=cache)
    print(
        f"data: {train} sha256 {sha256(train)[:16]}…, {corpora[0].tokens:,} tokens; "
        f"{valid.name} sha256 {sha256(valid)[:16]}…, {corpora[1].tokens:,} tokens; vocabulary {len(vocab):,}"
    )
    print(f"machine: {machine()}")
    return vocab, *corpora


def model_config(args, vocab_size: int, softmax: str, cuts: tuple[int, ...]) -> RNNConfig:
    return RNNConfig(
        vocab_size=vocab_size,
        layers=args.layers,
        emb=args.hidden,
        hidden=args.hidden,
        dropout=0.2,
        softmax=softmax,
        cutoffs=cuts,
    )


def task_for(config: RNNConfig, vocab, train, valid) -> LMTask:
    seed_everything(1)
    return LMTask(
        model=RNNLM(config), vocab=vocab, train=train, valid=valid, data=DATA, device=torch.device("cpu"), seed=1
    )


def quiet_progress(task: LMTask) -> ProgressCallback:
    return ProgressCallback(Console(stderr=True, quiet=True), describe=task.describe)  # as `nlm train` runs it


def cluster_shares(ids: np.ndarray, cuts: tuple[int, ...]) -> list[float]:
    """The share of tokens in the shortlist and in each tail cluster."""
    edges = [0, *cuts, np.iinfo(np.int64).max]
    counts = np.histogram(ids, bins=edges)[0]
    return (counts / counts.sum()).tolist()


def speed(args) -> None:
    vocab, train, _ = load_data()
    heads = {"full": ("full", ())} | {f"adaptive {','.join(map(str, c))}": ("adaptive", c) for c in args.cutoffs}
    print(
        f"model: {args.layers} x {args.hidden} lstm, tied; batch {DATA.batch_size}, bptt {DATA.bptt}; "
        f"{args.rounds} rounds of {args.steps} steps after {args.warmup} warm-up steps, heads alternating"
    )
    rates: dict[str, list[float]] = {name: [] for name in heads}
    for _ in range(args.rounds):
        for name, (softmax, cuts) in heads.items():
            task = task_for(model_config(args, len(vocab), softmax, cuts), vocab, train, None)
            clock = StepClock(args.warmup)
            config = TrainConfig(lr=20.0, clip=0.25, max_steps=args.warmup + args.steps, epochs=1, device="cpu")
            Trainer(task, config, device=torch.device("cpu"), callbacks=[quiet_progress(task), clock]).fit()
            rates[name].append(clock.rate())
    full = statistics.median(rates["full"])
    ids = np.asarray(train.ids[:])
    print("\n| head | tokens/s (median) | rounds | vs full | training targets per cluster |\n|---|---:|---|---:|---|")
    for name, (_, cuts) in heads.items():
        median = statistics.median(rates[name])
        shares = " / ".join(f"{s:.1%}" for s in cluster_shares(ids, cuts)) if cuts else "—"
        rounds = ", ".join(f"{r:,.0f}" for r in rates[name])
        print(f"| {name} | {median:,.0f} | {rounds} | {median / full:.2f}x | {shares} |")


class EvalLog(Callback):
    """Every validation result with the training time and tokens at which it was taken, and the time
    spent evaluating: the trainer counts evaluations at epoch ends against --max-time, not the last one."""

    def __init__(self) -> None:
        self.evals: list[dict] = []
        self.trained = 0.0  # the trainer's clock at the latest step
        self.evaluating = 0.0  # seconds spent in evaluations

    def on_batch_end(self, trainer: Trainer) -> None:
        self.trained = trainer.elapsed()

    def on_eval_end(self, trainer: Trainer, metrics: dict[str, float], improved: bool) -> None:
        seconds = trainer.elapsed() - self.trained
        self.evaluating += seconds
        self.evals.append(
            {
                "elapsed": self.trained,
                "tokens": trainer.progress.units,
                "loss": metrics["loss"],
                "ppl": math.exp(metrics["loss"]),
                "epoch": metrics["epoch"],
                "eval_seconds": seconds,
            }
        )

    def steps_seconds(self) -> float:
        """Time in training steps alone, up to the last step (the final evaluation comes after it)."""
        return self.trained - (self.evaluating - self.evals[-1]["eval_seconds"])


def quality(args) -> None:
    vocab, train, valid = load_data()
    cuts = args.cutoffs[0] if args.softmax == "adaptive" else ()
    config = model_config(args, len(vocab), args.softmax, cuts)
    task = task_for(config, vocab, train, valid)
    log = EvalLog()
    train_config = TrainConfig(lr=20.0, clip=0.25, epochs=1000, max_time=args.minutes * 60, device="cpu")
    print(f"model: {config.to_dict()}\ntrain: {train_config.to_dict()}", flush=True)
    started = time.monotonic()
    trainer = Trainer(task, train_config, device=torch.device("cpu"), callbacks=[quiet_progress(task), log])
    progress = trainer.fit()
    final = log.evals[-1]
    result = {
        "softmax": args.softmax,
        "cutoffs": list(cuts),
        "layers": args.layers,
        "hidden": args.hidden,
        "parameters": sum(p.numel() for p in task.model.parameters()),
        "minutes": args.minutes,
        "train_seconds": log.trained,
        "steps_seconds": log.steps_seconds(),
        "wall_seconds": time.monotonic() - started,
        "steps": progress.global_step,
        "tokens": progress.units,
        "tokens_per_s": progress.units / log.steps_seconds(),
        "epochs": progress.units / train.tokens,
        "valid_loss": final["loss"],
        "valid_ppl": math.exp(final["loss"]),
        "evaluations": log.evals,
        "data": {"train_sha256": sha256(data_file("wikitext-2/train.txt")), "vocab": len(vocab)},
        "machine": machine(),
        "torch_threads": torch.get_num_threads(),
    }
    print(json.dumps({k: v for k, v in result.items() if k != "evaluations"}, indent=1))
    if args.out:
        write_text_atomic(Path(args.out), json.dumps(result, indent=1) + "\n")


def table(args) -> None:
    results = [json.loads(Path(f).read_text()) for f in args.files]
    full = next((r for r in results if r["softmax"] == "full"), results[0])
    print(
        "| head | parameters | train time | steps | tokens (epochs) | tokens/s | vs full | valid ppl |\n"
        "|---|---:|---:|---:|---:|---:|---:|---:|"
    )
    for r in results:
        name = r["softmax"] + (f" {','.join(map(str, r['cutoffs']))}" if r["cutoffs"] else "")
        print(
            f"| {name} | {r['parameters']:,} | {r['train_seconds'] / 60:.1f} min | {r['steps']:,} | "
            f"{r['tokens']:,} ({r['epochs']:.2f}) | {r['tokens_per_s']:,.0f} | "
            f"{r['tokens_per_s'] / full['tokens_per_s']:.2f}x | {r['valid_ppl']:.2f} |"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    for name in ("speed", "quality"):
        sub = commands.add_parser(name)
        sub.add_argument("--layers", type=int, default=2)
        sub.add_argument("--hidden", type=int, default=200, help="hidden and embedding size (tied)")
        sub.add_argument(
            "--cutoffs", type=cutoffs, action="append", help="adaptive cutoffs, e.g. 2000,10000 (repeatable for speed)"
        )
        sub.add_argument("--threads", type=int, default=1)
    commands.choices["speed"].add_argument("--steps", type=int, default=200, help="timed steps per measurement")
    commands.choices["speed"].add_argument("--warmup", type=int, default=10)
    commands.choices["speed"].add_argument("--rounds", type=int, default=3)
    commands.choices["quality"].add_argument("--softmax", choices=("full", "adaptive"), required=True)
    commands.choices["quality"].add_argument("--minutes", type=float, default=20.0, help="training wall time")
    commands.choices["quality"].add_argument("--out", help="write the result here as JSON")
    commands.add_parser("table").add_argument("files", nargs="+")
    args = parser.parse_args()
    if args.command != "table":
        torch.set_num_threads(args.threads)
        args.cutoffs = args.cutoffs or [(2000, 10000)]
    {"speed": speed, "quality": quality, "table": table}[args.command](args)


if __name__ == "__main__":
    main()
