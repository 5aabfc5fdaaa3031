"""Word, BPE and character models of WikiText-2 trained for equal time, compared by bits per byte.

Token perplexities of models with different vocabularies cannot be compared; bits per byte and
word perplexity can (README, "Scoring, perplexity, generation, BLEU").  Each level trains the
same network (nlm's defaults: tied 2 x 200 LSTM, dropout 0.2, batch 20, bptt 35, SGD lr 20 / 4
on a plateau, clip 0.25) for --minutes of training time through `nlm.train`, then is scored on
`wikitext-2/valid.txt` with the training-validation (stream) protocol by `LanguageModel.perplexity`:

    word    the training text's 33k words, adaptive softmax (cutoffs 2000,10000: 4.7x the full
            softmax's speed on this vocabulary, README "Adaptive softmax on WikiText-2")
    bpe     sentencepiece BPE, 8,000 pieces besides the specials, full softmax
    char    every character of the training text, full softmax

Run each level in its own process on its own core with one torch thread (two at a time on a
2-core machine), then print the README's table:

    taskset -c 0 python bench/vocab_levels.py run --level word --minutes 20 --out runs/bench/levels-word.json &
    taskset -c 1 python bench/vocab_levels.py run --level bpe --minutes 20 --out runs/bench/levels-bpe.json & wait
    taskset -c 0 python bench/vocab_levels.py run --level char --minutes 20 --out runs/bench/levels-char.json
    python bench/vocab_levels.py table runs/bench/levels-{word,bpe,char}.json
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch
from common import data_file, machine, sha256

import nlm
from nlm.io.atomic import write_text_atomic

LEVELS = {
    "word": {"level": "word", "softmax": "adaptive", "cutoffs": "2000,10000"},
    "bpe": {"level": "bpe", "vocab_size": 8000},
    "char": {"level": "char"},
}


def as_flags(options: dict) -> str:
    return " ".join(f"--{k.replace('_', '-')} {v}" for k, v in options.items())


def run(args) -> None:
    torch.set_num_threads(1)
    train, valid = data_file("wikitext-2/train.txt"), data_file("wikitext-2/valid.txt")
    options = {**LEVELS[args.level], "max_time": args.minutes * 60, "device": "cpu", "seed": 1}
    output = Path(args.runs) / f"levels-{args.level}"
    print(f"nlm train --train {train} --valid {valid} -o {output} --force {as_flags(options)}", flush=True)
    start = time.perf_counter()
    summary = nlm.train(train=train, valid=valid, output=output, force=True, quiet=True, **options)
    lm = nlm.load(output)  # best.pt: the best validation loss
    result = lm.perplexity(valid, protocol="stream")
    record = {
        "level": args.level,
        "options": options,
        "vocabulary": len(lm.vocab),
        "steps": summary.steps,
        "stop_reason": summary.stop_reason,
        "training_minutes": args.minutes,
        "wall_seconds": round(time.perf_counter() - start, 1),
        "token_ppl": result.ppl,
        "bits_per_byte": result.bits_per_byte,
        "word_ppl": result.word_ppl,
        "tokens": result.tokens,
        "bytes": result.bytes,
        "words": result.words,
        "signature": result.signature,
        "data": {"train": sha256(train), "valid": sha256(valid)},
        "machine": machine(),
    }
    print(json.dumps(record, indent=2))
    write_text_atomic(Path(args.out), json.dumps(record, indent=2) + "\n")


def table(args) -> None:
    records = [json.loads(Path(p).read_text()) for p in args.files]
    print("| level | vocabulary | steps | validation tokens | token perplexity | word perplexity | bits per byte |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for r in records:
        print(
            f"| {r['level']} | {r['vocabulary']:,} | {r['steps']:,} | {r['tokens']:,} | {r['token_ppl']:.2f} "
            f"| {r['word_ppl']:.2f} | **{r['bits_per_byte']:.3f}** |"
        )
    first = records[0]
    print(
        f"\n{first['training_minutes']} minutes of training each; valid.txt: {first['bytes']:,} bytes and "
        f"{first['words']:,} words in the predicted span (level {first['level']}); machine: {first['machine']}; "
        f"data sha256: train {first['data']['train']}, valid {first['data']['valid']}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    one = commands.add_parser("run", help="train one level for --minutes and score it")
    one.add_argument("--level", choices=sorted(LEVELS), required=True)
    one.add_argument("--minutes", type=float, default=20.0)
    one.add_argument("--runs", default="runs/bench", help="where the run folders go")
    one.add_argument("--out", required=True, help="the JSON record to write")
    one.set_defaults(handler=run)
    both = commands.add_parser("table", help="the README table from the JSON records")
    both.add_argument("files", nargs="+")
    both.set_defaults(handler=table)
    args = parser.parse_args()
    args.handler(args)


if __name__ == "__main__":
    main()
