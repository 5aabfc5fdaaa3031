"""Benchmark: scoring in fp32, bf16, and with the int8 recurrent layers of `nlm export --precision int8`.

    python bench/int8_onnx.py -m runs/bench/equal-time/ptb-25min [TEXT] [--lines 2000] [--rounds 5]

Exports the model with its recurrent layers in int8 (ONNX Runtime; needs `pip install 'nlm[int8]'`),
then scores TEXT (PTB's validation split by default) with `score_sentences`, batch 64, one thread,
in four ways taking turns, `--rounds` times (CPU time; medians): the original in fp32 and in bf16,
and the int8 export with its embedding and output layer in fp32 and in bf16.  For each: tokens/s,
perplexity, its change from fp32's, and the largest change of one sentence's log-prob.  int8 is
worth shipping on a machine where it beats bf16 here.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
from common import data_file, machine

from nlm.io.text import read_lines
from nlm.lm.export import export_language_model
from nlm.lm.loading import load_language_model
from nlm.lm.scoring import CorpusSummary, score_sentences


def timed(lm, lines: list[str]) -> tuple[float, CorpusSummary, list[float]]:
    start, summary, logprobs = time.process_time(), CorpusSummary(), []
    for result in score_sentences(lm, lines, batch_size=64):
        summary.add(result)
        logprobs.append(result.logprob)
    return time.process_time() - start, summary, logprobs


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-m", "--model", required=True)
    parser.add_argument("text", nargs="?", type=Path, default=None, help="text [PTB validation]")
    parser.add_argument("--lines", type=int, default=2000, help="score the first N lines")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(1)
    text = args.text or data_file("ptb/ptb.valid.txt")
    lines = list(read_lines(text))[: args.lines]
    int8 = Path(tempfile.mkdtemp(prefix="nlm-int8-")) / "int8.pt"
    started = time.perf_counter()
    export_language_model(args.model, output=int8, precision="int8")
    print(f"export to int8: {time.perf_counter() - started:.1f} s, {int8.stat().st_size:,} bytes")
    ways = {
        "fp32": load_language_model(args.model, precision="fp32"),
        "bf16": load_language_model(args.model, precision="bf16"),
        "int8 + fp32": load_language_model(int8, precision="fp32"),
        "int8 + bf16": load_language_model(int8, precision="bf16"),
    }
    seconds: dict[str, list[float]] = {name: [] for name in ways}
    results = {}
    for round_ in range(args.rounds):
        for name in list(ways) if round_ % 2 == 0 else list(ways)[::-1]:
            spent, summary, logprobs = timed(ways[name], lines)
            seconds[name].append(spent)
            results[name] = (summary, logprobs)
    print(f"machine: {machine()}\nmodel: {ways['fp32'].signature}\ntext: {text}, {len(lines):,} lines")
    print("| way | tokens/s (CPU time, median) | vs fp32 | perplexity | change | largest sentence change |")
    print("|---|---:|---:|---:|---:|---:|")
    base_summary, base_logprobs = results["fp32"]
    base_rate = base_summary.tokens / statistics.median(seconds["fp32"])
    for name, (summary, logprobs) in results.items():
        rate = summary.tokens / statistics.median(seconds[name])
        largest = max(abs(a - b) for a, b in zip(logprobs, base_logprobs))
        change = summary.ppl / base_summary.ppl - 1
        print(f"| {name} | {rate:,.0f} | {rate / base_rate:.2f}x | {summary.ppl:.2f} | {change:+.3%} | {largest:.4f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
