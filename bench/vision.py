"""Benchmark: LeNet on MNIST (validation accuracy, seconds per epoch) and a 32-unit autoencoder beside exact PCA.

    python bench/vision.py [--epochs 2] [--ae-epochs 10] [--threads 2] [--device cpu]

MNIST's training split comes from <repo>/../shared/data/mnist (IDX, gzipped); its last
5,000 images are held out for validation, the first 55,000 train.  Both models run on
nlm's library and shared trainer, exactly as `nlm vision train` and `nlm autoencoder
train` do; PCA is exact (an eigendecomposition of the float64 covariance of the 55,000
training images), and every reconstruction error is the mean squared error per pixel
on the 5,000 held-out images, pixels in [0, 1].  Progress goes to stderr, the figures
to stdout.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import torch
from rich.console import Console

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from nlm.autoencode.inference import load_autoencoder, reconstruct  # noqa: E402
from nlm.autoencode.task import ReconstructConfig  # noqa: E402
from nlm.autoencode.training import AutoencoderJob, autoencoder_config  # noqa: E402
from nlm.classify.task import ClassifyConfig  # noqa: E402
from nlm.classify.training import ClassifierJob, classifier_config  # noqa: E402
from nlm.images.data import ImageSet, load_idx  # noqa: E402
from nlm.train.config import TrainConfig  # noqa: E402

MNIST = REPO.parent / "shared" / "data" / "mnist"
HOLDOUT = 5000
console = Console(stderr=True, highlight=False, soft_wrap=True)


def cpu_name() -> str:
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
        return next(line.split(":", 1)[1].strip() for line in lines if line.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor() or platform.machine()


def mnist_split(folder: Path) -> tuple[ImageSet, ImageSet]:
    """(first 55,000, last 5,000) of MNIST's training split; exits with a message if it is not there."""
    images = folder / "train-images-idx3-ubyte.gz"
    if not images.is_file() or not (folder / "train-labels-idx1-ubyte.gz").is_file():
        sys.exit(
            f"bench/vision.py: MNIST is not in {folder} (train-images-idx3-ubyte.gz and train-labels-idx1-ubyte.gz); "
            "pass --mnist FOLDER"
        )
    data = load_idx(images)
    n = len(data)
    return data.subset(torch.arange(n - HOLDOUT)), data.subset(torch.arange(n - HOLDOUT, n))


def epoch_seconds(run_dir: Path) -> list[float]:
    """Seconds of each epoch (training and validation) from the run's metrics.jsonl."""
    elapsed = [json.loads(line)["elapsed"] for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return [b - a for a, b in zip([0.0, *elapsed], elapsed)]


def bench_cnn(train: ImageSet, valid: ImageSet, args, out: Path) -> dict:
    config = TrainConfig(
        optimizer="adam", lr=args.lr, clip=0.0, epochs=args.epochs, schedule="none", device=args.device, seed=1
    )
    job = ClassifierJob(
        arch="cnn",
        model=classifier_config("cnn"),
        data=ClassifyConfig(batch_size=args.batch_size),
        images=(train, valid),
    )
    result = job.start(output=out / "lenet", force=True, train=config, console=console)
    seconds = epoch_seconds(result.run_dir)
    return {
        "valid_accuracy": result.metrics["accuracy"],
        "seconds_per_epoch": sum(seconds) / len(seconds),
        "epochs": len(seconds),
    }


def pca_error(train: ImageSet, valid: ImageSet, k: int) -> float:
    """Exact PCA with k components, fitted on `train`: per-pixel MSE of mean + projection on `valid`."""
    x = train.floats().flatten(1).double()
    mean = x.mean(0)
    covariance = (x - mean).T @ (x - mean) / len(x)
    _, vectors = torch.linalg.eigh(covariance)  # ascending eigenvalues
    top = vectors[:, -k:]
    v = valid.floats().flatten(1).double() - mean
    return float((v @ top @ top.T - v).pow(2).mean())


def bench_autoencoder(train: ImageSet, valid: ImageSet, args, out: Path) -> dict:
    model = autoencoder_config(
        "undercomplete", hidden=(args.code,), code_activation=args.activation, output_activation="sigmoid"
    )
    config = TrainConfig(
        optimizer="adam",
        lr=args.ae_lr,
        clip=0.0,
        epochs=args.ae_epochs,
        schedule="plateau",
        lr_factor=0.5,
        device=args.device,
        seed=1,
    )
    job = AutoencoderJob(model=model, data=ReconstructConfig(batch_size=args.batch_size), images=(train, valid))
    result = job.start(output=out / "autoencoder", force=True, train=config, console=console)
    _, _, error = reconstruct(load_autoencoder(result.run_dir / "best.pt"), valid)
    seconds = epoch_seconds(result.run_dir)
    return {"valid_mse": error, "seconds_per_epoch": sum(seconds) / len(seconds), "epochs": len(seconds)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mnist", type=Path, default=MNIST, help="folder with MNIST's training IDX files")
    parser.add_argument("--epochs", type=int, default=2, help="LeNet epochs")
    parser.add_argument("--lr", type=float, default=1e-3, help="LeNet Adam learning rate")
    parser.add_argument("--ae-epochs", type=int, default=10, help="autoencoder epochs")
    parser.add_argument("--ae-lr", type=float, default=1e-3, help="autoencoder Adam learning rate")
    parser.add_argument("--code", type=int, default=32, help="autoencoder code units, and PCA components")
    parser.add_argument("--activation", default="relu", help="autoencoder code activation")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads [default: torch's choice]")
    parser.add_argument("--device", default="cpu")
    parser.add_argument(
        "--out", type=Path, default=None, help="where the two run folders go [default: a temporary folder]"
    )
    parser.add_argument("--skip-cnn", action="store_true", help="only the autoencoder and PCA")
    parser.add_argument("--skip-ae", action="store_true", help="only the CNN")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    out = args.out or Path(tempfile.mkdtemp(prefix="nlm-bench-vision-"))
    started = time.monotonic()
    train, valid = mnist_split(args.mnist)
    console.print(f"MNIST: {len(train):,} training and {len(valid):,} held-out images; runs in {out}")
    print(
        f"hardware: {cpu_name()}, {os.cpu_count()} cores, {torch.get_num_threads()} torch threads, "
        f"device {args.device}, "
        f"torch {torch.__version__}"
    )
    if not args.skip_cnn:
        cnn = bench_cnn(train, valid, args, out)
        print(
            f"LeNet CNN: valid accuracy {cnn['valid_accuracy']:.4f} after {cnn['epochs']} epoch(s), "
            f"{cnn['seconds_per_epoch']:.1f} s per epoch (train + validate)"
        )
    if not args.skip_ae:
        ae = bench_autoencoder(train, valid, args, out)
        pca = pca_error(train, valid, args.code)
        print(
            f"autoencoder 784-{args.code}-784 ({args.activation} code, sigmoid output): "
            f"valid MSE {ae['valid_mse']:.5f} "
            f"per pixel after {ae['epochs']} epochs, {ae['seconds_per_epoch']:.1f} s per epoch"
        )
        print(
            f"PCA, {args.code} components (exact): valid MSE {pca:.5f} per pixel; "
            f"autoencoder / PCA = {ae['valid_mse'] / pca:.3f}"
        )
    print(f"wall time {time.monotonic() - started:.0f} s")


if __name__ == "__main__":
    main()
