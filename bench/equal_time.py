"""PTB at equal training time: the real PyTorch word-language-model example against an nlm preset.

The two train side by side, each pinned to a core of its own (`taskset`) with one torch thread, for
the same number of minutes (25 by default):

  example  pytorch/examples `word_language_model/main.py` with its defaults (untied 2 x 200 LSTM,
           dropout 0.2, SGD lr 20 / 4 on a plateau, clip 0.25, bptt 35, batch 20), run from the
           folder given with --example (a checkout of pytorch/examples you fetched yourself: nlm
           downloads nothing).  It has no time limit of its own, so it gets as many whole epochs as
           end within the budget (`--epochs N`, N from --epoch-seconds); its figure is the best
           validation perplexity it printed at the end of an epoch.
  nlm      `nlm train --recipe RECIPE --max-time SECONDS` (default recipe ptb-25min); its figure is
           the best validation perplexity in RUN/metrics.jsonl.

Both read ../shared/data/ptb/ptb.{train,valid}.txt and count `<eos>` (73,760 validation tokens).
The example's loader also demands a test.txt: it gets a copy of the validation split, so the "test"
line it prints is the validation figure again.

    python bench/equal_time.py --example ~/src/examples/word_language_model [--minutes 25] [--recipe ptb-25min]
        [--nlm-args "--anneal cosine"] [--name RUN_NAME]

`--nlm-args` adds options to nlm's command (a variant of the recipe); `--name` names nlm's run folder under
--out (default: the recipe's name; give another to keep a 10-minute run beside the 25-minute one).
The table says what stopped nlm's run and how much of its budget it trained: a time-budgeted recipe on
`--schedule budget` uses all of it.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import REPO, data_file, machine, sha256

NLM = Path(sys.executable).with_name("nlm")
EPOCH_LINE = re.compile(
    r"end of epoch\s+(\d+)\s+\|\s+time:\s+([\d.]+)s\s+\|\s+valid loss\s+([\d.]+)\s+\|\s+valid ppl\s+([\d.]+)"
)


def _env() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def example_data(folder: Path) -> Path:
    data = folder / "ptb"
    data.mkdir()
    for split in ("train", "valid"):
        os.symlink(data_file(f"ptb/ptb.{split}.txt"), data / f"{split}.txt")
    shutil.copyfile(data_file("ptb/ptb.valid.txt"), data / "test.txt")
    return data


def example_figure(log: str) -> tuple[float, int, float]:
    """(best validation perplexity, epochs, seconds of training) from the example's log."""
    epochs = [(int(e), float(t), float(ppl)) for e, t, _, ppl in EPOCH_LINE.findall(log)]
    if not epochs:
        sys.exit("the example printed no end-of-epoch line; its log:\n" + log[-2000:])
    return min(ppl for _, _, ppl in epochs), len(epochs), sum(t for _, t, _ in epochs)


def nlm_figure(run: Path) -> tuple[float, float, int, float, str]:
    """(best validation perplexity, epochs, steps, seconds of training, what stopped it) from the run's metrics."""
    metrics = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    valid = [m for m in metrics if m.get("split") == "valid"]
    data = json.loads((run / "config.json").read_text())["data"]
    # Stream mode: the training tokens (each line's words and its <eos>) in batch_size columns, read in bptt windows.
    with data_file("ptb/ptb.train.txt").open() as train:
        tokens = sum(len(line.split()) + 1 for line in train)
    steps_per_epoch = math.ceil((tokens // data["batch_size"] - 1) / data["bptt"])
    last = metrics[-1]
    stop = last.get("stop", "?")
    return min(m["ppl"] for m in valid), last["step"] / steps_per_epoch, last["step"], last["elapsed"], stop


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--example", type=Path, required=True, help="pytorch/examples' word_language_model folder")
    parser.add_argument("--minutes", type=float, default=25.0)
    parser.add_argument("--recipe", default="ptb-25min")
    parser.add_argument(
        "--epoch-seconds",
        type=float,
        default=238.0,
        help="the example's seconds per epoch (training and validation) on one core of this machine",
    )
    parser.add_argument("--out", type=Path, default=REPO / "runs" / "bench" / "equal-time")
    parser.add_argument("--nlm-args", default="", help="more options for nlm train, e.g. '--anneal cosine'")
    parser.add_argument("--name", help="nlm's run folder under --out [default: the recipe's name]")
    args = parser.parse_args()
    main_py = args.example / "main.py"
    if not main_py.exists():
        sys.exit(f"not the example's folder: {main_py} does not exist")
    seconds = args.minutes * 60
    epochs = max(1, int(seconds // args.epoch_seconds))
    args.out.mkdir(parents=True, exist_ok=True)
    print(f"machine: {machine()}")
    for split in ("train", "valid"):
        print(f"data: ptb/ptb.{split}.txt sha256 {sha256(data_file(f'ptb/ptb.{split}.txt'))}")
    with tempfile.TemporaryDirectory() as scratch:
        data = example_data(Path(scratch))
        name = args.name or args.recipe
        run = args.out / name
        with (
            (args.out / f"example-{args.minutes:g}min.log").open("w") as example_log,
            (args.out / f"{name}.log").open("w") as nlm_log,
        ):
            start = time.monotonic()
            example = subprocess.Popen(
                [
                    "taskset",
                    "-c",
                    "0",
                    sys.executable,
                    str(main_py),
                    "--data",
                    str(data),
                    "--epochs",
                    str(epochs),
                    "--save",
                    str(Path(scratch) / "model.pt"),
                ],
                cwd=args.example,
                env=_env(),
                stdout=example_log,
                stderr=subprocess.STDOUT,
            )
            try:
                ours = subprocess.run(
                    [
                        "taskset",
                        "-c",
                        "1",
                        str(NLM),
                        "--threads",
                        "1",
                        "train",
                        "--recipe",
                        args.recipe,
                        "--train",
                        str(data_file("ptb/ptb.train.txt")),
                        "--valid",
                        str(data_file("ptb/ptb.valid.txt")),
                        "-o",
                        str(run),
                        "--force",
                        "--max-time",
                        str(seconds),
                        "-q",
                        *shlex.split(args.nlm_args),
                    ],
                    env=_env(),
                    stderr=nlm_log,
                    timeout=seconds + 900,
                )
                ours_wall = time.monotonic() - start
                if ours.returncode == 0:
                    example.wait(timeout=seconds + 900)
                example_wall = time.monotonic() - start
            finally:
                if example.poll() is None:  # nlm failed or hung: do not leave the example training
                    example.kill()
                    example.wait()
    if ours.returncode or example.returncode:
        sys.exit(f"a run failed: nlm exit {ours.returncode}, example exit {example.returncode} (logs in {args.out})")
    ex_ppl, ex_epochs, ex_train = example_figure((args.out / f"example-{args.minutes:g}min.log").read_text())
    nlm_ppl, nlm_epochs, nlm_steps, nlm_train, stop = nlm_figure(run)
    print("\n| run | epochs | training time | wall | stopped by | best validation perplexity |")
    print("|---|---:|---:|---:|---|---:|")
    print(
        f"| pytorch/examples main.py, defaults, --epochs {epochs} | {ex_epochs} | {ex_train / 60:.1f} min | "
        f"{example_wall / 60:.1f} min | its epochs | {ex_ppl:.2f} |"
    )
    extra = f" {args.nlm_args}" if args.nlm_args else ""
    print(
        f"| nlm train --recipe {args.recipe} --max-time {seconds:g}{extra} | {nlm_epochs:.2f} ({nlm_steps:,} steps) | "
        f"{nlm_train / 60:.1f} min ({nlm_train / seconds:.0%} of the budget) | {ours_wall / 60:.1f} min | {stop} | "
        f"{nlm_ppl:.2f} |"
    )
    print(f"\nnlm / example perplexity: {nlm_ppl / ex_ppl:.3f} ({(nlm_ppl / ex_ppl - 1) * 100:+.1f}%)")


if __name__ == "__main__":
    main()
