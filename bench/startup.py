"""Start-up time, for pipelines and Makefiles that call nlm many times: `echo "w1 w2" | nlm score -m RUN`
against `import torch` alone (also without the collection Python runs at exit, which nlm skips),
each the median of several runs taken in turn (wall seconds, and CPU seconds: user + system,
which a busy machine inflates less).  nlm's own start-up is the score command less torch.

    python bench/startup.py [-m RUN] [--runs 7]

Without -m, a PTB model is trained for one step into a temporary folder first (loading depends on the
checkpoint's size, not on its training).
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import data_file, machine

PYTHON = sys.executable
FROZEN_TORCH = "import atexit, gc, torch; atexit.register(gc.freeze)"  # as nlm exits (nlm/cli/__init__.py)
NLM = str(Path(PYTHON).with_name("nlm"))


def timed(command: list[str], *, stdin: bytes) -> tuple[float, float]:
    """Wall and CPU seconds of one run of `command`."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(command, input=stdin, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def medians(runs: int, commands: dict[str, tuple[list[str], bytes]]) -> dict[str, tuple[float, float]]:
    """Median wall and CPU seconds of each command, run in turn `runs` times (so a busy spell hits them alike)."""
    for command, stdin in commands.values():  # once first, so that every measured run finds its files in the page cache
        timed(command, stdin=stdin)
    times: dict[str, list[tuple[float, float]]] = {name: [] for name in commands}
    for _ in range(runs):
        for name, (command, stdin) in commands.items():
            times[name].append(timed(command, stdin=stdin))
    return {name: (statistics.median(w for w, _ in t), statistics.median(c for _, c in t)) for name, t in times.items()}


def small_model(folder: Path) -> Path:
    train = data_file("ptb/ptb.train.txt")
    run = folder / "ptb-1-step"
    subprocess.run(
        [NLM, "train", "--train", str(train), "-o", str(run), "--max-steps", "1", "-q", "--cache-dir", str(folder)],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-m", "--model", type=Path, default=None, help="a run folder or checkpoint to score with")
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="nlm-startup-") as folder:
        model = args.model or small_model(Path(folder))
        print(
            f"machine: {machine()}\n"
            f"model: {model} ({os.path.getsize(model / 'best.pt' if model.is_dir() else model):,} bytes)"
        )
        rows = medians(
            args.runs,
            {
                "python -c pass": ([PYTHON, "-c", "pass"], b""),
                "python -c 'import torch'": ([PYTHON, "-c", "import torch"], b""),
                "  the same, no collection at exit": ([PYTHON, "-c", FROZEN_TORCH], b""),
                "nlm --help": ([NLM, "--help"], b""),
                'echo "w1 w2" | nlm score -m RUN': ([NLM, "score", "-m", str(model)], b"w1 w2\n"),
            },
        )
    print(f"\n{'command':<34}{'wall s':>8}{'cpu s':>8}   (median of {args.runs})")
    for name, (wall, cpu) in rows.items():
        print(f"{name:<34}{wall:>8.2f}{cpu:>8.2f}")
    score = rows['echo "w1 w2" | nlm score -m RUN']
    for name in ("python -c 'import torch'", "  the same, no collection at exit"):
        torch_alone = rows[name]
        print(
            f"nlm score beyond {name.strip()!r}: {score[0] - torch_alone[0]:+.2f} s wall, "
            f"{score[1] - torch_alone[1]:+.2f} s cpu"
        )


if __name__ == "__main__":
    main()
