"""Benchmark: a model scored plain, with the cache pointer, with dynamic evaluation, and with both.

    python bench/adaptation.py -m RUN --valid VALID.txt --train TRAIN.txt [--cache 500] [--rows 1] [--out FILE.json]

The held-out test splits are not in ../shared/data, so the validation text plays both parts: its first half
(by lines) tunes, its second half is measured.  Each condition is `nlm perplexity`'s stream protocol on the
second half, read in --rows rows (1: one stream, as AWD-LSTM's pointer.py and Krause et al.'s dynamiceval.py
read it; the same for all four, so the numbers compare):

  plain    the model alone
  cache    --cache W with theta and lambda chosen on the first half (--tune-cache's grid)
  dynamic  --dynamic-eval --dyn-rule rms --dyn-stats TRAIN, with --dyn-lr and --dyn-decay chosen over the grid
           DYN_GRID_AT_20 on the first --tune-tokens of the first half (as Krause et al.'s --gridfast: 16 runs
           of dynamic evaluation over all of it would take longer than the rest together)
  both     dynamic evaluation with its chosen values, and the cache tuned again under it

For each: perplexity, its change against plain, tokens/s and seconds (the gradient statistics, computed once
and kept in the cache folder, are timed apart), and what was chosen.  It prints the machine and the data's
sha256 and, with --out, writes the table as JSON.  Beside it, the published gains (test perplexities).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import torch
from common import machine, sha256

import nlm
from nlm.errors import NLMError

# The rms rule's grid at 20-token segments, scaled by segment / 20 (Krause et al. scale theirs so): around nlm's
# defaults (1e-4, 0.02) and Krause et al.'s values scaled from 5 tokens to 20 (1.2e-4 .. 4e-4, 0.004 .. 0.02);
# steps of 5e-4 and more made the loss of a ptb-25min model blow up.
DYN_GRID_AT_20 = {"dyn_lr": (5e-5, 1e-4, 2e-4, 3e-4), "dyn_decay": (0.005, 0.01, 0.02, 0.04)}
PUBLISHED = [  # data set, method, before, after (test perplexity), source
    ("PTB", "cache", 56.5, 52.5, "AWD-LSTM README (salesforce/awd-lstm-lm), window 500"),
    ("WikiText-2", "cache", 64.7, 50.6, "AWD-LSTM README, window 3,785"),
    ("PTB", "dynamic", 57.3, 51.1, "Krause et al. 2018 (arXiv:1709.07432), AWD-LSTM"),
    ("WikiText-2", "dynamic", 65.8, 44.3, "Krause et al. 2018, AWD-LSTM"),
]


def halves(valid: Path, folder: Path) -> tuple[Path, Path]:
    lines = valid.read_text(encoding="utf-8").splitlines(keepends=True)
    first, second = folder / "tune.txt", folder / "measure.txt"
    first.write_text("".join(lines[: len(lines) // 2]), encoding="utf-8")
    second.write_text("".join(lines[len(lines) // 2 :]), encoding="utf-8")
    return first, second


def first_tokens(text: Path, tokens: int) -> list[str]:
    """The first lines of `text` that hold about `tokens` words (and one end per line)."""
    lines, count = [], 0
    for line in text.read_text(encoding="utf-8").splitlines():
        if count >= tokens:
            break
        lines.append(line)
        count += len(line.split()) + 1
    return lines


def timed(lm, text: Path, rows: int, **adaptation) -> tuple[float, int, float]:
    start = time.perf_counter()
    result = lm.perplexity(text, rows=rows, **adaptation)
    return result.ppl, result.tokens, time.perf_counter() - start


def best_dynamic(lm, tune: list[str], rows: int, base: dict) -> tuple[dict, float]:
    """The (dyn_lr, dyn_decay) of the grid with the lowest perplexity on the tuning lines (a step size so
    large that the loss blows up counts as infinite)."""
    scale = base["dyn_segment"] / 20
    best, best_ppl = None, float("inf")
    for lr in DYN_GRID_AT_20["dyn_lr"]:
        for decay in DYN_GRID_AT_20["dyn_decay"]:
            options = {**base, "dyn_lr": lr * scale, "dyn_decay": min(1.0, decay * scale)}
            try:
                ppl = lm.perplexity(tune, rows=rows, **options).ppl
            except NLMError:  # diverged
                ppl = float("inf")
            print(
                f"  tuning dynamic: lr {options['dyn_lr']:.3g} decay {options['dyn_decay']:.3g}: {ppl:.2f}", flush=True
            )
            if ppl < best_ppl:
                best, best_ppl = options, ppl
    return best, best_ppl


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-m", "--model", required=True, help="checkpoint or run folder")
    parser.add_argument("--valid", type=Path, required=True, help="validation text: first half tunes, second measures")
    parser.add_argument("--train", type=Path, required=True, help="the model's training text (gradient statistics)")
    parser.add_argument("--cache", type=int, default=500, help="the cache's window W (AWD: 500 PTB, 3785 WikiText-2)")
    parser.add_argument("--dyn-segment", type=int, default=20)
    parser.add_argument("--rows", type=int, default=1)
    parser.add_argument("--tune-tokens", type=int, default=30_000, help="dynamic evaluation's grid runs on these")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"machine: {machine()}")
    for path in (args.valid, args.train):
        print(f"data: {path} sha256 {sha256(path)}")
    try:
        lm = nlm.load(args.model)
        print(f"model: {lm.signature}")
        with tempfile.TemporaryDirectory() as scratch:
            rows = run(lm, args, *halves(args.valid, Path(scratch)))
    except NLMError as error:
        sys.exit(f"bench/adaptation.py: {error}")
    table(rows)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({"machine": machine(), "model": lm.signature, "rows": rows}, indent=2) + "\n")
    return 0


def run(lm, args, tune: Path, measure: Path) -> list[dict]:
    dynamic = {"dynamic_eval": True, "dyn_rule": "rms", "dyn_stats": str(args.train), "dyn_segment": args.dyn_segment}
    start = time.perf_counter()
    lm.perplexity(tune, rows=args.rows, **{**dynamic, "dyn_lr": 0.0})  # the statistics, computed once and kept
    stats_seconds = time.perf_counter() - start
    print(f"gradient statistics: {stats_seconds:.1f} s (computed once per model, text and segment)", flush=True)
    cache = lm.tune_cache(tune, cache=args.cache, rows=args.rows)
    print(cache.describe(), flush=True)
    chosen_dynamic, _ = best_dynamic(lm, first_tokens(tune, args.tune_tokens), args.rows, dynamic)
    both = lm.tune_cache(tune, cache=args.cache, rows=args.rows, **chosen_dynamic)
    print(f"under dynamic evaluation: {both.describe()}", flush=True)
    conditions = {
        "plain": {},
        "cache": {"cache": args.cache, "cache_theta": cache.theta, "cache_lambda": cache.lam},
        "dynamic": chosen_dynamic,
        "both": {**chosen_dynamic, "cache": args.cache, "cache_theta": both.theta, "cache_lambda": both.lam},
    }
    rows = []
    for name, options in conditions.items():
        ppl, tokens, seconds = timed(lm, measure, args.rows, **options)
        shown = {k: v for k, v in options.items() if k not in ("dynamic_eval", "dyn_stats", "dyn_rule")}
        rows.append({"condition": name, "ppl": ppl, "tokens": tokens, "seconds": seconds, "options": shown})
        print(f"{name}: {ppl:.2f} in {seconds:.1f} s", flush=True)
    return rows


def table(rows: list[dict]) -> None:
    plain = rows[0]
    print("\n| condition | options | perplexity (second half of valid) | change | tokens/s | time vs plain |")
    print("|---|---|---:|---:|---:|---:|")
    for row in rows:
        change = row["ppl"] / plain["ppl"] - 1
        options = ", ".join(f"{k} {v:g}" if isinstance(v, float) else f"{k} {v}" for k, v in row["options"].items())
        print(
            f"| {row['condition']} | {options or '—'} | {row['ppl']:.2f} | {change:+.1%} | "
            f"{row['tokens'] / row['seconds']:,.0f} | {row['seconds'] / plain['seconds']:.2f}x |"
        )
    print("\npublished (test perplexity, AWD-LSTM):")
    for data, method, before, after, source in PUBLISHED:
        print(f"  {data} {method}: {before} -> {after} ({after / before - 1:+.1%}); {source}")


if __name__ == "__main__":
    raise SystemExit(main())
