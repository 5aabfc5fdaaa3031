"""Benchmark: scoring a large file the ways past one core: threads, processes (torchrun), bf16; .gz against plain text;
peak memory at 20M tokens against 2M; and the machine's own GEMM rate, to say how close to its limit scoring runs.

    python bench/score_volume.py -m runs/bench/equal-time/ptb-25min [--tokens 20M] [--rounds 1] [--work DIR]
        [--kenlm-bin DIR --kenlm-model FILE] [--out results.json]

The text is synthesised, deterministically, from PTB's training split (../shared/data; nothing is
downloaded): its lines written again and again until the file holds `--tokens` tokens as `nlm score`
counts them (words and one <eos> per line), and a copy holding a tenth of them; the full file is also
gzipped (level 6).  Their sha256 are printed.  Each configuration is the real command in a fresh
process, writing its rows with -o (the peak RSS is the kernel's, `wait4`'s ru_maxrss; under torchrun,
the largest process's):

    1 process, 1 thread      nlm --threads 1 score -m RUN FILE -o OUT --precision P      pinned to core 0
    1 process, 2 threads     nlm --threads 2 score ...
    torchrun, 2 x 1 thread   torchrun --standalone --nproc-per-node 2 -m nlm score ...    (one thread per process)

each in fp32 and bf16, `--rounds` times in alternating order (medians reported); then the .gz file
against the plain one and the small file against the full one (fp32, 1 thread, pinned).  torchrun's fp32
output must equal one process's byte for byte (its bf16 one is compared too: bf16 depends a little on how the
lines are batched), 2 threads against 1 give the largest change of one row; bf16 against fp32 gives the
change in perplexity and the largest change of one sentence's log-prob.  The GEMM rate is a
1024 x 1024 float32 (and bfloat16) product on one thread and on two, in this process; the fraction of
the FLOP limit is tokens/s x FLOPs per token (counted from the model's shapes, the adaptive head's
tails weighted by how often the text's tokens fall in them) over the fp32 GEMM rate of the threads
used.  With --kenlm-bin and --kenlm-model, KenLM's `query` scores the same plain file, pinned to core
0, its model-loading time (an empty input) measured apart.  At 20M tokens the whole run takes hours
on a 2-core machine; `--tokens 200K` is a few minutes.  Run it on an idle machine: the load average
is printed first.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import re
import shutil
import statistics
import sys
import time
from pathlib import Path

import torch
from common import data_file, machine, measure, parse_size, sha256

TORCHRUN = ["-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2"]
# name -> (short name, launcher, nlm's global options, the core to pin to, the fp32 limit: (GEMM threads, times))
CONFIGS = {
    "1 process, 1 thread": ("1x1", [], ["--threads", "1"], 0, (1, 1)),
    "1 process, 2 threads": ("1x2", [], ["--threads", "2"], None, (2, 1)),
    "torchrun, 2 x 1 thread": ("2x1", TORCHRUN, [], None, (1, 2)),
}
GATES = {"lstm": 4, "gru": 3, "rnn-tanh": 1, "rnn-relu": 1}


def synthesise(path: Path, tokens: int) -> int:
    """PTB's training lines, again and again, until `tokens` (words + one <eos> per line); returns the count."""
    if path.exists():
        return sum(len(line.split()) + 1 for line in path.open(encoding="utf-8"))
    source = data_file("ptb/ptb.train.txt").read_text(encoding="utf-8").splitlines()
    written = 0
    with path.open("w", encoding="utf-8") as out:
        while written < tokens:
            for line in source:
                out.write(line + "\n")
                written += len(line.split()) + 1
                if written >= tokens:
                    break
    return written


def gzipped(path: Path) -> Path:
    target = path.with_name(path.name + ".gz")
    if not target.exists():
        with path.open("rb") as f, gzip.open(target, "wb", compresslevel=6) as out:
            shutil.copyfileobj(f, out, 1 << 20)
    return target


def gemm_gflops(dtype: torch.dtype, threads: int, n: int = 1024, seconds: float = 3.0) -> float:
    torch.set_num_threads(threads)
    a, b = torch.randn(n, n).to(dtype), torch.randn(n, n).to(dtype)
    for _ in range(3):
        torch.mm(a, b)
    count, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        torch.mm(a, b)
        count += 1
    return 2 * n**3 * count / (time.perf_counter() - start) / 1e9


def flops_per_token(model: str, text: Path, sample_lines: int = 20_000) -> float:
    """Multiply-adds x 2 of one scored token: the recurrent layers, then the output head (the adaptive head's
    tails weighted by the share of the text's tokens in each)."""
    from itertools import islice

    from nlm.lm.loading import load_language_model
    from nlm.text.symbols import EOS

    lm = load_language_model(model)
    c = lm.model_config
    sizes = c.layer_sizes
    flops = sum(2 * GATES[c.cell] * out * (inp + out) for inp, out in zip(sizes, sizes[1:]))
    h, cutoffs = c.feature_size, (*c.cutoffs, c.vocab_size)
    if c.softmax == "full":
        return flops + 2 * h * c.vocab_size
    with text.open(encoding="utf-8") as f:
        ids = [i for line in islice(f, sample_lines) for i in (*lm.vocab.encode(line), EOS)]
    flops += 2 * h * (cutoffs[0] + len(cutoffs) - 1)
    for k, (low, high) in enumerate(zip(cutoffs, cutoffs[1:])):
        share = sum(low <= i < high for i in ids) / len(ids)
        projection = int(h // 4 ** (k + 1))
        flops += share * 2 * (h * projection + projection * (high - low))
    return flops


def summary_of(log: Path) -> dict[str, float]:
    text = log.read_text()
    tokens = re.search(r"scored tokens: ([\d,]+)", text)
    ppl = re.search(r"perplexity: ([\d.]+) including", text)
    if not tokens or not ppl:
        sys.exit(f"no summary in {log}:\n{text[-2000:]}")
    return {"tokens": int(tokens.group(1).replace(",", "")), "ppl": float(ppl.group(1))}


def score(args, text: Path, name: str, precision: str, out: Path) -> dict:
    _, launcher, options, cpu, _ = CONFIGS[name]
    command = [sys.executable, *launcher, "-m", "nlm", *options, "score"]
    command += ["-m", args.model, str(text), "-o", str(out), "--batch-size", str(args.batch_size)]
    command += ["--precision", precision, "--device", "cpu"]
    log = out.with_suffix(".log")
    peak, wall, cpu_s = measure(command, cpu=cpu, env={**os.environ, "NLM_CACHE_DIR": str(args.work)}, log=log)
    result = {"config": name, "precision": precision, "peak_mib": peak, "wall_s": wall, "cpu_s": cpu_s, "out": str(out)}
    result.update(summary_of(log))
    result["tokens_per_s"] = result["tokens"] / wall
    rate = result["tokens_per_s"]
    print(f"  {name}, {precision}: {wall:,.1f} s, {rate:,.0f} tokens/s, {peak:,.0f} MiB", file=sys.stderr)
    return result


def kenlm(args, text: Path) -> dict:
    query = Path(args.kenlm_bin) / "query"
    runs = {}
    for name, source in (("load", "/dev/null"), ("score", str(text))):
        log = args.work / f"kenlm-{name}.log"
        command = ["sh", "-c", f'exec "{query}" -v summary "{args.kenlm_model}" < "{source}"']
        runs[name] = measure(command, cpu=0, env=dict(os.environ), log=log)
    tokens = int(re.search(r"Tokens:\s*(\d+)", (args.work / "kenlm-score.log").read_text()).group(1))
    wall, load = runs["score"][1], runs["load"][1]
    rate = tokens / (wall - load)
    return {"tokens": tokens, "wall_s": wall, "load_s": load, "tokens_per_s": rate, "peak_mib": runs["score"][0]}


def compare(a: Path, b: Path) -> float:
    """The largest difference of one row's log-prob between two score outputs."""
    with a.open() as fa, b.open() as fb:
        return max(abs(float(x.split("\t", 1)[0]) - float(y.split("\t", 1)[0])) for x, y in zip(fa, fb))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-m", "--model", required=True, help="checkpoint or run folder (the ptb-25min model)")
    parser.add_argument("--tokens", type=parse_size, default=parse_size("20M"), help="size of the text [20M]")
    parser.add_argument("--rounds", type=int, default=1, help="times each configuration runs, order alternating")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--work", type=Path, default=Path("runs/bench/score-volume"), help="texts and outputs")
    parser.add_argument("--kenlm-bin", help="a folder holding KenLM's query, to time it on the same text")
    parser.add_argument("--kenlm-model", help="the KenLM model (ARPA or binary) for --kenlm-bin")
    parser.add_argument("--out", type=Path, help="also write every figure here as JSON")
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    print(f"load average before the run: {os.getloadavg()[0]:.2f} (take figures only on an idle machine)")
    print(f"machine: {machine()}")
    full, small = args.work / f"ptb-{args.tokens}.txt", args.work / f"ptb-{args.tokens // 10}.txt"
    tokens = {path: synthesise(path, n) for path, n in ((full, args.tokens), (small, args.tokens // 10))}
    packed = gzipped(full)
    for path in (data_file("ptb/ptb.train.txt"), full, packed, small):
        print(f"data: {path} ({path.stat().st_size:,} bytes) sha256 {sha256(path)}")
    gemm = {
        (p, t): gemm_gflops(dtype, t)
        for p, dtype in (("fp32", torch.float32), ("bf16", torch.bfloat16))
        for t in (1, 2)
    }
    flops = flops_per_token(args.model, full)
    print("GEMM 1024^3 GFLOP/s: " + ", ".join(f"{p} {t} thread(s) {v:,.1f}" for (p, t), v in gemm.items()))
    print(
        f"model: {flops / 1e6:.2f} MFLOP per scored token; "
        f"text: {tokens[full]:,} tokens ({tokens[small]:,} in the small one)"
    )
    started = time.perf_counter()
    runs = run_matrix(args, full)
    gz = score(args, packed, "1 process, 1 thread", "fp32", args.work / "out-gz.tsv")
    little = score(args, small, "1 process, 1 thread", "fp32", args.work / "out-small.tsv")
    baseline, bf16 = runs["1 process, 1 thread", "fp32"][-1], runs["1 process, 1 thread", "bf16"][-1]
    # torchrun must write the bytes one process writes (one thread each); a second thread splits the products
    # differently, so against it the largest change of one row is what is reported.
    one, two, shares = "1 process, 1 thread", "1 process, 2 threads", "torchrun, 2 x 1 thread"
    same = {p: sha256(runs[shares, p][-1]["out"]) == sha256(runs[one, p][-1]["out"]) for p in ("fp32", "bf16")}
    same["gz"] = sha256(gz["out"]) == sha256(baseline["out"])
    threads = {p: compare(Path(runs[one, p][-1]["out"]), Path(runs[two, p][-1]["out"])) for p in ("fp32", "bf16")}
    figures = {
        "machine": machine(),
        "gemm_gflops": {f"{p}, {t} thread(s)": v for (p, t), v in gemm.items()},
        "flops_per_token": flops,
        "tokens": tokens[full],
        "configs": table(runs, gemm, flops),
        "gz": gz,
        "small": little,
        "torchrun_equals_one_process": same,
        "two_threads_largest_row_change": threads,
        "bf16_ppl_change": bf16["ppl"] / baseline["ppl"] - 1,
        "bf16_largest_sentence_change": compare(Path(baseline["out"]), Path(bf16["out"])),
    }
    print(
        f"\n.gz against plain (1 thread, fp32): {gz['wall_s']:,.1f} s against {baseline['wall_s']:,.1f} s "
        f"({gz['wall_s'] / baseline['wall_s'] - 1:+.1%}); the same output: {same['gz']}"
    )
    print(
        f"peak RSS at {tokens[full]:,} tokens {baseline['peak_mib']:,.0f} MiB against {little['peak_mib']:,.0f} MiB "
        f"at {tokens[small]:,} ({baseline['peak_mib'] / little['peak_mib']:.2f}x)"
    )
    print(
        f"torchrun 2 x 1 byte for byte the 1-process output: fp32 {same['fp32']}, bf16 {same['bf16']}; "
        f"2 threads against 1, the largest change of one row's log-prob: fp32 {threads['fp32']:.4f}, "
        f"bf16 {threads['bf16']:.4f}"
    )
    print(
        f"bf16 against fp32: perplexity "
        f"{figures['bf16_ppl_change']:+.3%}, the largest change of one sentence's log-prob "
        f"{figures['bf16_largest_sentence_change']:.4f} nats"
    )
    if args.kenlm_bin and args.kenlm_model:
        figures["kenlm"] = k = kenlm(args, full)
        print(
            f"KenLM query (core 0): {k['tokens_per_s']:,.0f} tokens/s ({k['wall_s']:,.1f} s, of which loading "
            f"{k['load_s']:,.1f} s), peak RSS {k['peak_mib']:,.0f} MiB"
        )
    print(f"wall time of the benchmark: {(time.perf_counter() - started) / 60:,.1f} min")
    if args.out:
        args.out.write_text(json.dumps(figures, indent=2) + "\n")
    return 0 if same["fp32"] and same["gz"] else 1  # bf16 depends on the batching a little (reported)


def run_matrix(args, text: Path) -> dict[tuple[str, str], list[dict]]:
    """Every configuration in fp32 and bf16, `--rounds` times, the order reversed every other round."""
    matrix = [(name, p) for p in ("fp32", "bf16") for name in CONFIGS]
    runs: dict[tuple[str, str], list[dict]] = {key: [] for key in matrix}
    for round_ in range(args.rounds):
        print(f"round {round_ + 1} of {args.rounds}", file=sys.stderr)
        for name, precision in matrix if round_ % 2 == 0 else matrix[::-1]:
            out = args.work / f"out-{precision}-{CONFIGS[name][0]}-{round_}.tsv"
            runs[name, precision].append(score(args, text, name, precision, out))
    return runs


def table(runs: dict[tuple[str, str], list[dict]], gemm: dict, flops: float) -> list[dict]:
    """The table of configurations, printed; the same figures returned."""
    rounds = len(next(iter(runs.values())))
    print(
        f"\n| configuration | precision | tokens/s (median of {rounds}) | vs 1 thread fp32 "
        "| of the fp32 FLOP limit | peak RSS |"
    )
    print("|---|---|---:|---:|---:|---:|")
    one = statistics.median(r["tokens_per_s"] for r in runs["1 process, 1 thread", "fp32"])
    rows = []
    for (name, precision), rs in runs.items():
        rate = statistics.median(r["tokens_per_s"] for r in rs)
        threads, times = CONFIGS[name][4]
        share = rate * flops / (times * gemm["fp32", threads] * 1e9)
        peak = max(r["peak_mib"] for r in rs)
        rows.append(
            {
                "config": name,
                "precision": precision,
                "tokens_per_s": rate,
                "vs_one": rate / one,
                "flop_share": share,
                "runs": rs,
            }
        )
        print(f"| {name} | {precision} | {rate:,.0f} | {rate / one:.2f}x | {share:.0%} | {peak:,.0f} MiB |")
    return rows


if __name__ == "__main__":
    sys.exit(main())
