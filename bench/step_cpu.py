"""CPU milliseconds per training step, the bare loop or nlm's, each in a fresh process: what a busy machine
disturbs least (a process waiting for a core costs no CPU time; its page faults do).

    python bench/step_cpu.py [--pairs 4] [--core 0] [--steps 30]

Each pair runs `bare` (bench/reference_loop.py) then `nlm` (the Trainer with the LM task and the callbacks
`nlm train` gives it: divergence guard, LR schedule, checkpoints, progress), one torch thread each,
pinned to one core; the time, system time and page faults of steps 6 to 5 + --steps are reported.
"""

from __future__ import annotations

import argparse
import io
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from common import data_file

WARMUP = 5


def usage() -> tuple[float, float, int]:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return time.thread_time(), r.ru_stime, r.ru_minflt


def report(path: str, start: tuple, end: tuple, steps: int) -> None:
    cpu, system, faults = ((b - a) / steps for a, b in zip(start, end))
    print(
        f"{path:<5} {cpu * 1e3:6.1f} ms/step CPU  (system {system * 1e3:4.1f} ms, {faults:6.0f} page faults)",
        flush=True,
    )


def bare(train: Path, steps: int) -> None:
    import reference_loop as ref

    ids, vocab_size = ref.read_ids(train)
    s = ref.SETTINGS
    torch.manual_seed(1)
    model = ref.ExampleLSTM(vocab_size, emb=s["emb"], hidden=s["hidden"], layers=s["layers"], dropout=s["dropout"])
    data, run = ref.columns(ids, s["batch_size"]), dict(lr=s["lr"], clip=s["clip"], bptt=s["bptt"])
    ref.train_steps(model, data, steps=WARMUP, **run)
    start = usage()
    ref.train_steps(model, data, steps=steps, **run)
    report("bare", start, usage(), steps)


def nlm(train: Path, steps: int) -> None:
    from rich.console import Console

    from nlm.io.text import read_lines
    from nlm.lm.config import LMDataConfig
    from nlm.lm.task import LMTask
    from nlm.models.rnn import RNNLM, RNNConfig
    from nlm.text.build import VocabConfig, build_vocab
    from nlm.text.corpus import encode_corpus
    from nlm.train.callbacks import CheckpointCallback, ProgressCallback
    from nlm.train.config import TrainConfig
    from nlm.train.control import DivergenceGuard, LRSchedule
    from nlm.train.hooks import Callback
    from nlm.train.rundir import RunFolder
    from nlm.train.trainer import Trainer

    class Clock(Callback):
        def on_batch_end(self, trainer) -> None:
            step = trainer.progress.global_step
            if step == WARMUP:
                self.start = usage()
            elif step == WARMUP + steps:
                report("nlm", self.start, usage(), steps)

    work = Path(tempfile.mkdtemp(prefix="nlm-step-cpu-"))
    vocab, _ = build_vocab(read_lines(train), config=VocabConfig())
    torch.manual_seed(1)
    task = LMTask(
        model=RNNLM(RNNConfig(vocab_size=len(vocab))),
        vocab=vocab,
        train=encode_corpus(train, vocab, cache_dir=work),
        valid=None,
        data=LMDataConfig(),
        device=torch.device("cpu"),
        seed=1,
    )
    config = TrainConfig(lr=20.0, max_steps=WARMUP + steps)
    with RunFolder.create(work / "run", force=True) as folder:
        callbacks = [
            DivergenceGuard(task.uniform_loss),
            LRSchedule(config),
            CheckpointCallback(folder),
            ProgressCallback(Console(file=io.StringIO()), describe=task.describe),
            Clock(),
        ]
        Trainer(task, config, device=torch.device("cpu"), callbacks=callbacks).fit()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pairs", type=int, default=4)
    parser.add_argument("--core", type=int, default=0)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--path", choices=("bare", "nlm"), help=argparse.SUPPRESS)  # one measurement, in this process
    args = parser.parse_args()
    train = data_file("ptb/ptb.train.txt")
    if args.path:
        torch.set_num_threads(1)
        (bare if args.path == "bare" else nlm)(train, args.steps)
        return
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    for _ in range(args.pairs):
        for path in ("bare", "nlm"):
            subprocess.run(
                ["taskset", "-c", str(args.core), sys.executable, __file__, "--path", path, "--steps", str(args.steps)],
                check=True,
                env=env,
            )


if __name__ == "__main__":
    main()
