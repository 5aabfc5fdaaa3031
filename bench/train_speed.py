"""Training speed: `nlm train` against the PyTorch example's bare loop, tokens/s and their ratio.

Each round runs both, each a process of its own pinned to one core (`taskset -c`) with one torch
thread, on PTB with the example's configuration (2 x 200 LSTM, tied, dropout 0.2, batch 20,
bptt 35, SGD lr 20, clip 0.25):

  bare  bench/reference_loop.py: the example's loop restated (seq-first `nn.LSTM`, `log_softmax`
        + `nll_loss`, a hand-written SGD update), over the corpus held in one tensor;
  nlm   the real command, `nlm --threads 1 train --train ptb.train.txt -o RUN --max-steps N`,
        with its defaults (progress on stderr, checkpoints, the divergence guard, the schedule),
        timed by its own clock: `elapsed` in RUN/metrics.jsonl, from the start of training to
        the end of step N.  Both times cover the first step to the last.

On one core (`--cores 0`, the default) the two run one after the other, alternating which goes
first; with two (`--cores 0,1`) they run side by side, swapping cores every round (twice as fast,
but the two then share the memory bus and the last-level cache).  Reported: tokens/s of each per
round, the ratio nlm / bare, and the median ratio.

    python bench/train_speed.py [--steps 300] [--rounds 4] [--cores 0]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from common import REPO, data_file, machine, sha256

BATCH, BPTT = 20, 35
REFERENCE = REPO / "bench" / "reference_loop.py"
NLM = Path(sys.executable).with_name("nlm")


def _pinned(core: int, command: list[str]) -> list[str]:
    return ["taskset", "-c", str(core), *command]


def bare_command(core: int, train: Path, steps: int) -> list[str]:
    return _pinned(
        core, [sys.executable, str(REFERENCE), "--data", str(train), "--steps", str(steps), "--threads", "1"]
    )


def nlm_command(core: int, train: Path, steps: int, run: Path, cache: Path) -> list[str]:
    return _pinned(
        core,
        [
            str(NLM),
            "--threads",
            "1",
            "train",
            "--train",
            str(train),
            "-o",
            str(run),
            "--force",
            "--max-steps",
            str(steps),
            "--cache-dir",
            str(cache),
        ],
    )


def _env() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def bare_rate(process: subprocess.Popen) -> float:
    out, _ = process.communicate()
    if process.returncode:
        sys.exit(f"the reference loop failed (exit {process.returncode})")
    return json.loads(out.strip().splitlines()[-1])["tokens_per_s"]


def nlm_rate(process: subprocess.Popen, run: Path, log: Path) -> float:
    process.wait()
    if process.returncode:
        sys.exit(f"nlm train failed (exit {process.returncode}); see {log}")
    metrics = json.loads((run / "metrics.jsonl").read_text().splitlines()[-1])
    return metrics["step"] * BATCH * BPTT / metrics["elapsed"]  # every window is full: steps < one epoch


def one_round(k: int, cores: list[int], train: Path, steps: int, work: Path) -> tuple[float, float, str]:
    """Tokens/s of the bare loop and of nlm in round k, and where each ran."""
    run, log = work / f"run-{k}", work / f"nlm-{k}.log"
    side_by_side = len(cores) == 2
    bare_core, nlm_core = (cores[k % 2], cores[(k + 1) % 2]) if side_by_side else (cores[0], cores[0])

    def start(path: str) -> subprocess.Popen:
        if path == "bare":
            return subprocess.Popen(
                bare_command(bare_core, train, steps), stdout=subprocess.PIPE, text=True, env=_env()
            )
        with log.open("w") as stderr:
            return subprocess.Popen(
                nlm_command(nlm_core, train, steps, run, work / "cache"),
                stdout=subprocess.DEVNULL,
                stderr=stderr,
                env=_env(),
            )

    def rate(path: str, process: subprocess.Popen) -> float:
        return bare_rate(process) if path == "bare" else nlm_rate(process, run, log)

    order = ("bare", "nlm") if k % 2 == 0 else ("nlm", "bare")
    if side_by_side:
        processes = {path: start(path) for path in order}
        rates = {path: rate(path, processes[path]) for path in order}
        where = f"bare on core {bare_core}, nlm on core {nlm_core}"
    else:
        rates = {path: rate(path, start(path)) for path in order}
        where = f"both on core {bare_core}, {order[0]} first"
    return rates["bare"], rates["nlm"], where


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--steps", type=int, default=300, help="training steps per measurement (under one PTB epoch: 1,327)"
    )
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--cores", default="0", help="one core (one after the other) or two (side by side)")
    args = parser.parse_args()
    cores = [int(c) for c in args.cores.split(",")]
    if not 1 <= len(cores) <= 2 or not 1 <= args.steps < 1327:
        sys.exit("--cores takes one or two core numbers; --steps must be below 1,327 (one epoch)")
    train = data_file("ptb/ptb.train.txt")
    os.environ.update(_env())  # so that machine() reports the workers' one thread
    print(f"data: {train} sha256 {sha256(train)}")
    print(f"machine: {machine()}; each process pinned to one core")
    print(f"{args.rounds} rounds of {args.steps} steps of {BATCH} x {BPTT} tokens\n")
    print(f"{'round':<7}{'bare tok/s':>12}{'nlm tok/s':>12}{'nlm / bare':>12}   where")
    ratios = []
    with tempfile.TemporaryDirectory(prefix="nlm-speed-") as work:
        subprocess.run([str(NLM), "vocab", "--help"], stdout=subprocess.DEVNULL, check=True)  # fail early without nlm
        for k in range(args.rounds):
            bare, nlm, where = one_round(k, cores, train, args.steps, Path(work))
            ratios.append(nlm / bare)
            print(f"{k + 1:<7}{bare:>12,.0f}{nlm:>12,.0f}{nlm / bare:>12.3f}   {where}", flush=True)
    print(
        f"\nmedian ratio nlm / bare: {statistics.median(ratios):.3f} (rounds: {', '.join(f'{r:.3f}' for r in ratios)})"
    )


if __name__ == "__main__":
    main()
