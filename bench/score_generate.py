"""Benchmark: scoring throughput batched against one sentence at a time, and generation speed at two lengths.

    python bench/score_generate.py -m /tmp/ptb-small [TEXT] [--lines N] [--threads T] [--device cpu]

Trains nothing: it times an existing checkpoint.  Scoring runs `score_sentences` over the
text at --batch-size 1 and 64 and checks that the two agree to 1e-4; generation samples
100 and 1,000 tokens (not stopping at <eos>) and reports tokens/s for each, which should be
about equal because the hidden state is carried and no step re-reads the prefix.
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

from nlm.errors import NLMError
from nlm.io.text import read_lines
from nlm.lm.generation import SamplingConfig, generate_ids
from nlm.lm.loading import load_language_model
from nlm.lm.scoring import score_sentences
from nlm.runtime import pick_device

DEFAULT_TEXT = Path(__file__).resolve().parents[2] / "shared" / "data" / "ptb" / "ptb.valid.txt"


def time_scoring(lm, lines: list[str], batch_size: int) -> tuple[float, np.ndarray, int]:
    start = time.perf_counter()
    results = list(score_sentences(lm, lines, batch_size=batch_size))
    seconds = time.perf_counter() - start
    return seconds, np.array([r.logprob for r in results]), sum(r.tokens for r in results)


def time_generation(lm, length: int, repeats: int) -> tuple[float, float, float]:
    """Tokens/s over `repeats` samples of `length` tokens, and ms per step over the first and last 100 steps."""
    config = SamplingConfig(max_tokens=length, seed=0, stop_at_eos=False)
    generator = torch.Generator(device=lm.device).manual_seed(0)
    generate_ids(lm.model, [lm.start_id], config=config.replace(max_tokens=10), generator=generator)  # warm-up
    stamps: list[float] = []
    hook = lm.model.register_forward_pre_hook(lambda module, args: stamps.append(time.perf_counter()))
    try:
        start = time.perf_counter()
        for _ in range(repeats):
            stamps.clear()
            generate_ids(lm.model, [lm.start_id], config=config, generator=generator)
        seconds = time.perf_counter() - start
    finally:
        hook.remove()
    steps = np.diff(stamps) * 1000  # the last sample's forward calls: one per new token
    return length * repeats / seconds, float(steps[:100].mean()), float(steps[-100:].mean())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-m", "--model", required=True, help="checkpoint or run folder")
    parser.add_argument("text", nargs="?", default=str(DEFAULT_TEXT), help="sentences to score [PTB validation]")
    parser.add_argument("--lines", type=int, default=None, help="score only the first N lines")
    parser.add_argument("--batch-size", type=int, default=64, help="the batched run's batch size")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (this box is shared: 1)")
    parser.add_argument("--device", default="cpu", help="cpu, cuda, auto")
    args = parser.parse_args()
    if not Path(args.text).is_file():
        print(f"error: {args.text} not found; give a text file (the PTB validation split by default)", file=sys.stderr)
        return 66
    torch.set_num_threads(args.threads)
    try:
        lm = load_language_model(args.model, device=pick_device(args.device))
        lines = list(read_lines(args.text))[: args.lines]
    except NLMError as e:
        print(f"error: {e}", file=sys.stderr)
        return e.exit_code
    config = lm.model_config
    print(f"model {lm.signature}: {config.cell} {config.layers}x{config.hidden}, vocabulary {len(lm.vocab):,}")
    print(
        f"device {lm.device}, {args.threads} torch thread(s), {platform.processor() or platform.machine()}, "
        f"torch {torch.__version__}"
    )
    print(f"text {args.text}: {len(lines):,} sentences\n")
    print(f"{'scoring':<24}{'seconds':>10}{'sentences/s':>14}{'tokens/s':>12}")
    timings = {}
    for batch_size in (1, args.batch_size):
        seconds, scores, tokens = time_scoring(lm, lines, batch_size)
        timings[batch_size] = scores
        print(
            f"{f'--batch-size {batch_size}':<24}{seconds:>10.2f}"
            f"{len(lines) / seconds:>14,.0f}{tokens / seconds:>12,.0f}"
        )
    difference = float(np.abs(timings[1] - timings[args.batch_size]).max())
    print(
        f"max |batched - one at a time| = {difference:.2e} nats "
        f"({'agree' if difference <= 1e-4 else 'DISAGREE'} to 1e-4)\n"
    )
    print(f"{'generation':<24}{'tokens/s':>10}{'ms/step, first 100':>20}{'last 100':>10}")
    for length, repeats in ((100, 10), (1000, 1)):
        rate, first, last = time_generation(lm, length, repeats)
        print(f"{f'{length:,} tokens':<24}{rate:>10,.0f}{first:>20.2f}{last:>10.2f}")
    return 0 if difference <= 1e-4 else 1


if __name__ == "__main__":
    sys.exit(main())
