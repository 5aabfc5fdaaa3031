"""The README's FGSM picture (docs/fgsm-examples.png): a classifier run attacked on its own validation split.

`nlm vision attack --examples` attacks the images it is given; the README's picture is of images the CNN
never trained on, so this draws it from the run's held-out split (the images `nlm vision train` set aside
with --holdout, found again from the run's config.json and seed), as `nlm.classify.pictures` draws it.

    nlm vision train -o runs/mnist-cnn --data ../shared/data/mnist/train-images-idx3-ubyte.gz --holdout 10000 --epochs 3
    python bench/fgsm_picture.py -m runs/mnist-cnn -o docs/fgsm-examples.png [--epsilon 0.25] [--count 8]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from nlm.classify.loading import load_classifier
from nlm.classify.pictures import ROWS, attack_examples, draw_attack_examples
from nlm.images.sources import ImageSources


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-m", "--model", type=Path, required=True, help="a classifier's run folder")
    parser.add_argument("-o", "--output", type=Path, required=True)
    parser.add_argument("--epsilon", type=float, default=0.25)
    parser.add_argument("--count", type=int, default=8)
    args = parser.parse_args()
    config = json.loads((args.model / "config.json").read_text())
    _, valid = ImageSources.resumed(config, {}, run_dir=args.model).load(seed=config["train"]["seed"])
    loaded = load_classifier(args.model)
    drawn = attack_examples(
        loaded.model,
        loaded.classes,
        valid,
        count=args.count,
        epsilon=args.epsilon,
        correct_only=True,
        device=torch.device("cpu"),
    )
    width, height = draw_attack_examples(drawn, args.output)
    for row in drawn.rows():
        print(
            f"{row['label']}: clean {row['clean']} {row['clean_probability']:.0%}, "
            f"adversarial {row['adversarial']} {row['adversarial_probability']:.0%}"
        )
    rows = ", ".join(row.format(epsilon=args.epsilon) for row in ROWS)
    print(f"wrote {len(drawn.clean)} examples of {len(valid):,} held-out images (rows: {rows}; {width}x{height})")


if __name__ == "__main__":
    main()
