"""Print the table of the quality runs in runs/bench: best validation perplexity, epochs, wall time.

python bench/summarize.py [runs/bench]
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

from common import REPO, machine, sha256


def summarize(run: Path) -> str:
    metrics = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    config = json.loads((run / "config.json").read_text())
    best = min(metrics, key=lambda m: m["loss"])
    wall = run.parent / f"{run.name}.wall"
    wall_s = int(wall.read_text()) if wall.exists() else float("nan")
    model, train = config["model"], config["train"]
    described = (
        f"{model['layers']}x{model['hidden']} {model['cell']}{' tied' if model['tie'] else ''} "
        f"drop {model['dropout']}, {train['optimizer']} lr {train['lr']:g} {train['schedule']}, "
        f"clip {train['clip']:g}, "
        f"bptt {config['data']['bptt']} batch {config['data']['batch_size']}"
    )
    quality = f"ppl {best['ppl']:.2f}" + (
        f" / {best['loss']:.4f} nats / {best['loss'] / math.log(2):.4f} bpc" if "bpc" in best else ""
    )
    # The first evaluation closes epoch 1 (unless the run stopped sooner), so it gives the steps per epoch.
    epochs = metrics[-1]["step"] / metrics[0]["step"] if len(metrics) > 1 else metrics[-1]["epoch"]
    return (
        f"| {run.name} | {described} | {epochs:.2f} ({metrics[-1]['step']:,} steps) | "
        f"best {quality} (epoch {best['epoch']}) | {metrics[-1]['elapsed'] / 60:.1f} min train, "
        f"{wall_s / 60:.1f} min wall |"
    )


def main() -> None:
    root = Path(sys.argv[1] if len(sys.argv) > 1 else REPO / "runs" / "bench")
    print(f"machine: {machine()}")
    seen = set()
    for run in sorted(p for p in root.iterdir() if (p / "metrics.jsonl").exists()):
        for key in ("train_file", "valid_file"):
            name = json.loads((run / "config.json").read_text())[key]
            if name and name not in seen and Path(name).exists():
                seen.add(name)
                print(f"data: {name} sha256 {sha256(Path(name))}")
    print("\n| run | configuration | epochs | validation | time |\n|---|---|---|---|---|")
    for run in sorted(p for p in root.iterdir() if (p / "metrics.jsonl").exists()):
        print(summarize(run))


if __name__ == "__main__":
    main()
