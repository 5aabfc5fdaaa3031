"""Long-range memory: accuracy on the marked tokens of copy and recall tasks, per cell and lag, same budget for all.

For every task and lag, `nlm corpus TASK --lag K` writes the data; then each cell is trained
with the same settings through `nlm train` (sentence mode, one layer, Adam, weights uniform in
+-init_range) and scored on test.txt with `nlm.lm.memory.marked_accuracy`.  Prints a Markdown
table (accuracy, and training seconds in brackets) and, with --plot, accuracy against lag.

    python bench/memory_tasks.py [--tasks copy,recall] [--lags 30,50,100] [--cells lstm,gru,rnn-tanh]
                                 [--steps 300] [--hidden 64] [--plot docs/memory.png]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import machine

from nlm.io.figures import Series, line_chart
from nlm.lm.loading import load_language_model
from nlm.lm.memory import marked_accuracy

NLM = [sys.executable, "-m", "nlm", "--threads", "1"]


def train_args(args: argparse.Namespace, cell: str) -> list[str]:
    return [
        "--mode",
        "sentence",
        "--cell",
        cell,
        "--layers",
        "1",
        "--hidden",
        str(args.hidden),
        "--dropout",
        "0",
        "--init-range",
        str(args.init_range),
        "--optimizer",
        "adam",
        "--lr",
        str(args.lr),
        "--clip",
        "1",
        "--batch-size",
        "32",
        "--max-steps",
        str(args.steps),
        "--epochs",
        "100000",
        "--schedule",
        "none",
        "--device",
        "cpu",
        "--seed",
        str(args.seed),
        "-q",
    ]


def measure(args: argparse.Namespace, work: Path, task: str, lag: int, cell: str) -> tuple[float, float]:
    """(accuracy on the marked tokens of test.txt, seconds of `nlm train`)."""
    data = work / f"{task}-{lag}"
    if not (data / "task.json").exists():
        subprocess.run(
            [
                *NLM,
                "corpus",
                task,
                "-o",
                str(data),
                "--lag",
                str(lag),
                "--symbols",
                str(args.symbols),
                "--lines",
                "2000",
                "--eval-lines",
                "500",
                "--seed",
                str(args.seed),
            ],
            check=True,
            timeout=600,
            capture_output=True,
        )
    run = data / cell
    started = time.perf_counter()
    done = subprocess.run(
        [*NLM, "train", "--train", str(data / "train.txt"), "-o", str(run), "--force", *train_args(args, cell)],
        timeout=3600,
    )
    if done.returncode not in (0, 70):  # 70: the loss blew up (a tanh RNN can); its last checkpoint is what it learned
        raise SystemExit(f"nlm train failed for {task} {lag} {cell} (exit {done.returncode})")
    seconds = time.perf_counter() - started
    return marked_accuracy(load_language_model(run / "last.pt"), data).accuracy, seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", default="copy,recall")
    parser.add_argument("--lags", default="30,50,100")
    parser.add_argument("--cells", default="lstm,gru,rnn-tanh")
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--symbols", type=int, default=8)
    parser.add_argument("--lr", type=float, default=0.005)
    parser.add_argument("--init-range", type=float, default=1.0)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--plot", type=Path, help="also draw accuracy against lag, one line per cell and task")
    args = parser.parse_args()
    tasks, cells, lags = args.tasks.split(","), args.cells.split(","), [int(v) for v in args.lags.split(",")]
    print(
        f"<!-- {machine()}; each `nlm train` on 1 thread; {args.steps} steps, hidden {args.hidden}, "
        f"{args.symbols} symbols (chance {1 / args.symbols:.3f}), "
        f"lr {args.lr}, init +-{args.init_range}, seed {args.seed} -->",
        flush=True,
    )
    print(f"| task | lag | {' | '.join(cells)} |\n|---|---:|{'---:|' * len(cells)}", flush=True)
    results: dict[tuple[str, str], list[float]] = {}
    with tempfile.TemporaryDirectory(prefix="nlm-memory-") as work:
        for task in tasks:
            for lag in lags:
                cellsline = []
                for cell in cells:
                    accuracy, seconds = measure(args, Path(work), task, lag, cell)
                    results.setdefault((task, cell), []).append(accuracy)
                    cellsline.append(f"{accuracy:.3f} ({seconds:.0f} s)")
                print(f"| {task} | {lag} | {' | '.join(cellsline)} |", flush=True)
    if args.plot:
        series = [
            Series(
                f"{cell} {task}",
                lags,
                values,
                group=cell,
                style={"linestyle": "-" if task == "copy" else "--", "marker": "o"},
            )
            for (task, cell), values in results.items()
        ]
        width, height = line_chart(
            series,
            args.plot,
            xlabel="lag (steps between the symbol and the question)",
            ylabel="accuracy on the marked tokens",
            title=f"After {args.steps} steps; chance is {1 / args.symbols:.3f}",
        )
        print(f"wrote {args.plot} ({width}x{height})", file=sys.stderr)


if __name__ == "__main__":
    main()
