"""Memory and time of vocabulary, token cache and training start on WikiText-103-sized corpora.

    python bench/corpus_memory.py [--sizes 10M,100M] [--workdir /tmp/nlm-corpus-bench] [--cpu 1]

Each corpus is synthesised from WikiText-2's training split (../shared/data): its lines
are written again and again until the corpus holds the asked number of whitespace tokens,
and every word outside the 100 most frequent takes one of 8 spellings (`word`, `word~1`
.. `word~7`, chosen by position), so a corpus has about 265,000 types, as WikiText-103
has 267,000.  Both sizes hold nearly the same types, so what changes between them is
the number of tokens alone.  The files are deterministic (their sha256 is printed).

Every step runs in a fresh process pinned to one core (`--cpu`, one torch thread); its
peak resident memory is the kernel's count for that process (`wait4`'s ru_maxrss), and
this measuring process stays small, since a forked child starts from its parent's size:

    python + numpy + sentencepiece   the floor: an interpreter with nlm's text libraries
    vocab word         nlm vocab build CORPUS -o word.txt
    vocab bpe          nlm vocab build CORPUS -o bpe.model --level bpe --size 8000
                       (sentencepiece trains on a sample of at most 100,000 lines, the default)
    vocab bpe, 1M      the same with --sample-lines 1000000
    encode word|bpe    the corpus into nlm's token cache, as `nlm train` does first
    train word|bpe     nlm train --vocab V --max-steps 5 on the cached corpus (stream mode)
    sentence batches   what sentence mode adds: the line index sorted by length and cut
                       into batches of 20 (LMTask's `sentence_batches`), and 5 of them padded

Throughput is per CPU second of the step (words of the corpus, and ids written for the
encode steps), which other work on the machine disturbs less than wall time.  The table
goes to stdout, progress to stderr.  Corpora, vocabularies and caches go to `--workdir`
(about 2 GB at 100M tokens: check `df -h` first), removed at the end unless `--keep`.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from collections import Counter
from pathlib import Path

from common import REPO, data_file, measure, parse_size, sha256

SPELLINGS = 8  # spellings of every word outside the most frequent
PLAIN = 100  # the most frequent words keep one spelling
BPE_SIZE = 8000


def _spellings(lines: list[str]) -> list[list[str]]:
    """For each line, its SPELLINGS versions: version s gives the word at position j spelling (j + s) % SPELLINGS."""
    plain = {w for w, _ in Counter(w for line in lines for w in line.split()).most_common(PLAIN)} | {"<unk>"}
    versions = []
    for line in lines:
        words = line.split()
        versions.append(
            [
                " "
                + " ".join(
                    w if w in plain or (j + s) % SPELLINGS == 0 else f"{w}~{(j + s) % SPELLINGS}"
                    for j, w in enumerate(words)
                )
                + " "
                if words
                else ""
                for s in range(SPELLINGS)
            ]
        )
    return versions


def synthesise(path: Path, tokens: int) -> int:
    """Write a corpus of at least `tokens` whitespace tokens (whole lines); returns its token count."""
    source = data_file("wikitext-2/train.txt").read_text(encoding="utf-8").split("\n")[:-1]
    versions, counts = _spellings(source), [len(line.split()) for line in source]
    written, copy = 0, 0
    with path.open("w", encoding="utf-8") as out:
        while written < tokens:
            for i, line_versions in enumerate(versions):
                out.write(line_versions[(7 * i + 3 * copy) % SPELLINGS] + "\n")
                written += counts[i]
                if written >= tokens:
                    break
            copy += 1
    return written


def steps(corpus: Path, work: Path) -> list[tuple[str, list[str]]]:
    nlm, child = [sys.executable, "-m", "nlm"], [sys.executable, str(Path(__file__).resolve()), "child"]
    train = nlm + ["train", "--train", str(corpus), "--max-steps", "5", "--force", "--quiet"]
    return [
        ("python + numpy + sentencepiece", [sys.executable, "-c", "import numpy, sentencepiece"]),
        ("vocab word", nlm + ["vocab", "build", str(corpus), "-o", str(work / "word.txt")]),
        (
            "vocab bpe",
            nlm
            + ["vocab", "build", str(corpus), "-o", str(work / "bpe.model"), "--level", "bpe", "--size", str(BPE_SIZE)],
        ),
        (
            "vocab bpe, 1M sample",
            nlm
            + [
                "vocab",
                "build",
                str(corpus),
                "-o",
                str(work / "bpe-1m.model"),
                "--level",
                "bpe",
                "--size",
                str(BPE_SIZE),
                "--sample-lines",
                "1000000",
            ],
        ),
        ("encode word", child + ["encode", str(work / "word.txt"), str(corpus)]),
        ("encode bpe", child + ["encode", str(work / "bpe.model"), str(corpus)]),
        ("train word", train + ["--vocab", str(work / "word.txt"), "-o", str(work / "run-word")]),
        ("train bpe", train + ["--vocab", str(work / "bpe.model"), "-o", str(work / "run-bpe")]),
        ("sentence batches bpe", child + ["sentence-batches", str(work / "bpe.model"), str(corpus)]),
    ]


def run_child(task: str, args: list[str]) -> None:
    """Work kept out of the measuring process (whose size a forked child would inherit as its starting peak),
    and the steps that have no command of their own, run through the library as the commands would."""
    if task == "synthesise":
        print(f"words {synthesise(Path(args[0]), int(args[1]))}")
    elif task == "encode":
        from nlm.text.corpus import default_cache_dir, encode_corpus
        from nlm.text.vocab_files import load_vocab

        corpus = encode_corpus(args[1], load_vocab(args[0]), cache_dir=default_cache_dir())
        print(f"cache tokens {corpus.tokens}")
    elif task == "sentence-batches":
        from nlm.text.batches import lines_window, sentence_batches
        from nlm.text.corpus import default_cache_dir, encode_corpus
        from nlm.text.vocab_files import load_vocab

        corpus = encode_corpus(args[1], load_vocab(args[0]), cache_dir=default_cache_dir())
        batches = sentence_batches(corpus, 20, seed=1)
        shapes = [tuple(lines_window(corpus, batch).inputs.shape) for batch in batches[:5]]
        print(f"{len(batches):,} batches of 20 lines; the first five {shapes}")


def machine() -> str:
    """The hardware in one line, without importing torch (which would make this process big)."""
    info = {}
    for name in ("/proc/cpuinfo", "/proc/meminfo"):
        for line in Path(name).read_text().splitlines():
            key, _, value = line.partition(":")
            info.setdefault(key.strip(), value.strip())
    memory = int(info.get("MemTotal", "0 kB").split()[0]) / 2**20
    return f"{info.get('model name', '?')}, {os.cpu_count()} cores, {memory:.0f} GiB; Python {sys.version.split()[0]}"


def peak_of_this_process() -> float:
    line = next(x for x in Path("/proc/self/status").read_text().splitlines() if x.startswith("VmHWM"))
    return int(line.split()[1]) / 1024


Result = tuple[float, float, float, str]  # peak MiB, wall s, CPU s, throughput


def bench_size(tokens: int, workdir: Path, cpu: int) -> dict[str, Result]:
    work = workdir / f"{tokens}"
    work.mkdir(parents=True, exist_ok=True)
    corpus = work / "corpus.txt"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "NLM_CACHE_DIR": str(work / "cache")}
    me = [sys.executable, str(Path(__file__).resolve()), "child"]
    _, wall, _ = measure(me + ["synthesise", str(corpus), str(tokens)], cpu=cpu, env=env, log=work / "synthesise.log")
    words = int((work / "synthesise.log").read_text().split("words ")[-1])
    print(
        f"\n{corpus}: {words:,} tokens, {corpus.stat().st_size / 2**20:,.0f} MiB, sha256 {sha256(corpus)}, "
        f"written in {wall:.0f} s",
        file=sys.stderr,
    )
    results = {}
    for name, command in steps(corpus, work):
        log = work / f"{name.replace(' ', '-').replace(',', '')}.log"
        peak, wall, cpu_s = measure(command, cpu=cpu, env=env, log=log)
        output = log.read_text()
        rate = f"{words / cpu_s / 1e6:.2f}M words/s" if name.startswith(("vocab", "encode")) else ""
        if name.startswith("encode"):
            rate += f", {int(output.split('cache tokens ')[-1]) / cpu_s / 1e6:.2f}M ids/s"
        results[name] = (peak, wall, cpu_s, rate)
        print(f"{name:<32} peak {peak:8,.0f} MiB  wall {wall:7.1f} s  cpu {cpu_s:7.1f} s  {rate}", file=sys.stderr)
        if name.startswith("vocab"):
            print("    " + output.strip().replace("\n", "\n    "), file=sys.stderr)
    corpus.unlink()
    return results


def table(sizes: list[int], results: list[dict[str, Result]]) -> str:
    label = [f"{s / 1e6:g}M" for s in sizes]
    rows = [
        "| step | "
        + " | ".join(f"peak RSS {x}" for x in label)
        + f" | {label[-1]} / {label[0]} | "
        + " | ".join(f"wall (CPU) {x}" for x in label)
        + f" | per CPU second, {label[-1]} |",
        "|" + "---|" * (2 * len(sizes) + 3),
    ]
    for name in results[0]:
        peaks = " | ".join(f"{r[name][0]:,.0f} MiB" for r in results)
        times = " | ".join(f"{r[name][1]:,.1f} s ({r[name][2]:,.1f} s)" for r in results)
        rows.append(
            f"| {name} | {peaks} | {results[-1][name][0] / results[0][name][0]:.2f} | {times} "
            f"| {results[-1][name][3]} |"
        )
    return "\n".join(rows)


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "child":
        return run_child(sys.argv[2], sys.argv[3:])
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="10M,100M", help="corpus sizes in whitespace tokens")
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/nlm-corpus-bench"))
    parser.add_argument("--cpu", type=int, default=1, help="the core every step is pinned to")
    parser.add_argument("--keep", action="store_true", help="keep the work folder")
    args = parser.parse_args()
    sizes = [parse_size(s) for s in args.sizes.split(",")]
    args.workdir.mkdir(parents=True, exist_ok=True)
    if args.workdir.resolve().is_relative_to(REPO):
        sys.exit(f"--workdir {args.workdir} is inside the repository; use a temporary folder")
    free = shutil.disk_usage(args.workdir).free
    if free < 20 * max(sizes):
        sys.exit(f"{args.workdir} has {free / 2**30:.1f} GiB free; {20 * max(sizes) / 2**30:.1f} GiB are needed")
    source = data_file("wikitext-2/train.txt")
    print(f"data: {source} sha256 {sha256(source)}\nmachine: {machine()}", file=sys.stderr)
    try:
        results = [bench_size(size, args.workdir, args.cpu) for size in sizes]
    finally:
        if not args.keep:
            shutil.rmtree(args.workdir, ignore_errors=True)
    print(table(sizes, results))
    print(
        f"(this measuring process peaked at {peak_of_this_process():.0f} MiB, below every step: "
        "a forked child starts from its parent's size)",
        file=sys.stderr,
    )
    print(json.dumps({"sizes": sizes, "results": results}), file=sys.stderr)


if __name__ == "__main__":
    main()
