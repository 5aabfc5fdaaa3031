"""Train a recipe (`nlm train --recipe NAME`) on the data it was published on, then fine-tune the NT-ASGD ones.

    python bench/recipes.py awd-ptb --device cuda            # main run, then --resume --finetune
    python bench/recipes.py zaremba-medium -- --max-time 3600  # options after -- go to nlm train

Each run goes to runs/recipes/NAME (--force), its stderr to NAME.log; the last line printed is a
table row: recipe | published | nlm measured | command | hardware | wall time.
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import time
from pathlib import Path

from common import REPO, data_file, machine

from nlm.lm.recipes import RECIPES


def run(command: list[str], log: Path) -> float:
    """Run `command` with stderr to `log`; its wall time in seconds (exit on failure)."""
    start = time.monotonic()
    with log.open("w") as err:
        code = subprocess.call(command, stderr=err, cwd=REPO)
    if code != 0:
        sys.exit(f"{' '.join(command)} exited {code}; see {log}")
    return time.monotonic() - start


def measured(run_dir: Path) -> str:
    """The best validation figure in metrics.jsonl: perplexity, and bits per token for character data."""
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    best = min(rows, key=lambda m: m["loss"])
    return (
        f"valid ppl {math.exp(best['loss']):.2f}, {best['loss'] / math.log(2):.4f} bits/token "
        f"(epoch {best['epoch']} of {rows[-1]['epoch']}, step {best['step']})"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("recipe", choices=sorted(RECIPES))
    parser.add_argument("--device", default="auto")
    parser.add_argument("--out", type=Path, default=REPO / "runs" / "recipes")
    parser.add_argument("--no-finetune", action="store_true", help="skip the fine-tuning of an NT-ASGD recipe")
    argv = sys.argv[1:]
    cut = argv.index("--") if "--" in argv else len(argv)
    args, extra = parser.parse_args(argv[:cut]), argv[cut + 1 :]  # after --: options for nlm train
    recipe, nlm = RECIPES[args.recipe], [sys.executable, "-m", "nlm"]
    args.out.mkdir(parents=True, exist_ok=True)
    run_dir = args.out / recipe.name
    train, valid = (str(data_file(f)) for f in recipe.files)
    command = [
        *nlm,
        "train",
        "--recipe",
        recipe.name,
        "--train",
        train,
        "--valid",
        valid,
        "-o",
        str(run_dir),
        "--force",
        "--device",
        args.device,
        *extra,
    ]
    wall = run(command, args.out / f"{recipe.name}.log")
    print(f"{recipe.name}: {measured(run_dir)}; {wall / 60:.1f} min", flush=True)
    if recipe.options.get("optimizer") == "ntasgd" and not args.no_finetune:
        finetune = [*nlm, "train", "--resume", str(run_dir), "--finetune"]
        wall += run(finetune, args.out / f"{recipe.name}-finetune.log")
        command += ["&&", "nlm", *finetune[3:]]
    shown = " ".join(["nlm", *command[3:]])
    print(f"| {recipe.name} | {recipe.figure} | {measured(run_dir)} | `{shown}` | {machine()} | {wall / 60:.1f} min |")


if __name__ == "__main__":
    main()
