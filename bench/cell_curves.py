"""The README's three-cell comparison: an LSTM, a GRU and a tanh RNN, 40 s of training each, and their curves.

Runs the README's loop as written (`nlm train ... --cell CELL --max-time 40 --seed 1 -q`, one cell after
another, --threads 2 by default), draws `nlm plot ... --x time --y ppl --log` (docs/training-curves.png
with --plot), and prints a Markdown table: best validation perplexity, epochs, steps, the stop reason,
seconds of training; then the machine, the corpus's sha256 and the wall time.  Take the figures on an idle
machine (check `uptime`).

    python bench/cell_curves.py [--seconds 40] [--threads 2] [--out runs/bench/cells] [--plot docs/training-curves.png]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

from common import REPO, machine, sha256

CELLS = ("lstm", "gru", "rnn-tanh")
CORPUS = REPO / "corpora" / "english"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=40.0, help="--max-time of each run (the README's 40)")
    parser.add_argument("--threads", type=int, default=2, help="torch's CPU threads (the README's figures: 2)")
    parser.add_argument("--out", type=Path, default=REPO / "runs" / "bench" / "cells")
    parser.add_argument("--plot", type=Path, default=None, help="also draw the curves here (docs/training-curves.png)")
    args = parser.parse_args()
    nlm = [sys.executable, "-m", "nlm", "--threads", str(args.threads)]
    started = time.monotonic()
    rows = []
    for cell in CELLS:
        run = args.out / cell
        command = [
            *nlm,
            "train",
            "--train",
            str(CORPUS / "train.txt"),
            "--valid",
            str(CORPUS / "valid.txt"),
            "-o",
            str(run),
            "--force",
            "--cell",
            cell,
            "--layers",
            "1",
            "--hidden",
            "128",
            "--dropout",
            "0.3",
            "--max-time",
            f"{args.seconds:g}",
            "--seed",
            "1",
            "-q",
        ]
        subprocess.run(command, check=True)
        metrics = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
        best, last = min(metrics, key=lambda m: m["loss"]), metrics[-1]
        rows.append((cell, best["ppl"], last["epoch"], last["step"], last.get("stop", "?"), last["elapsed"]))
    if args.plot is not None:
        runs = [str(args.out / cell) for cell in CELLS]
        subprocess.run([*nlm, "plot", *runs, "-o", str(args.plot), "--x", "time", "--y", "ppl", "--log"], check=True)
    print("| cell | best validation perplexity | epochs | steps | stopped by | training seconds |")
    print("|---|---:|---:|---:|---|---:|")
    for cell, ppl, epochs, steps, stop, seconds in rows:
        print(f"| {cell} | {ppl:.1f} | {epochs} | {steps:,} | {stop} | {seconds:.1f} |")
    print(f"\nmachine: {machine()}; nlm --threads {args.threads}")
    print(f"corpora/english/train.txt sha256 {sha256(CORPUS / 'train.txt')}")
    print(f"corpora/english/valid.txt sha256 {sha256(CORPUS / 'valid.txt')}")
    print(f"wall time: {time.monotonic() - started:.0f} s for the three runs")


if __name__ == "__main__":
    main()
