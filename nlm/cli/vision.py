"""`nlm vision train | eval | predict | attack`: image classifiers on the shared trainer.

The training options common to `nlm vision train` and `nlm autoencoder train` (data,
optimization, run) are declared here once and imported by `nlm.cli.autoencoder`.
"""

from __future__ import annotations

import json
import sys
from enum import Enum
from pathlib import Path
from typing import Annotated

import typer

from nlm.cli.console import err_console
from nlm.cli.options import Device, Optimizer, Schedule

DATA, MODEL, ADV, OPTIM, RUN = "Data", "Model", "Adversarial training", "Optimization", "Run"
app = typer.Typer(help="Image classifiers (MLP, CNN): train, evaluate, predict, attack.", no_args_is_help=True)


class Arch(str, Enum):
    cnn = "cnn"
    mlp = "mlp"


class Pool(str, Enum):
    max = "max"
    avg = "avg"


class Activation(str, Enum):
    relu = "relu"
    sigmoid = "sigmoid"
    tanh = "tanh"
    linear = "linear"


class ReportFormat(str, Enum):
    table = "table"
    json = "json"


class RowFormat(str, Enum):
    tsv = "tsv"
    json = "json"


# -- options shared with `nlm autoencoder train` ---------------------------------------------
DataSpec = Annotated[str | None, typer.Option("--data", help="Training images: generated:N[:SEED], a folder with one sub-folder per class, a .npz (x, y) or an MNIST IDX file [default: generated:6000].", rich_help_panel=DATA)]
ValidSpec = Annotated[str | None, typer.Option(help="Validation images (same forms as --data): pick best.pt, drive the LR schedule and early stopping.", rich_help_panel=DATA)]
Holdout = Annotated[float, typer.Option(help="Without --valid: hold out this fraction (< 1) or count (>= 1) of --data for validation; 0: none.", rich_help_panel=DATA)]
BatchSize = Annotated[int, typer.Option(help="Images per training step.", rich_help_panel=DATA)]
OptimizerOption = Annotated[Optimizer, typer.Option(help="Optimizer.", rich_help_panel=OPTIM)]
Lr = Annotated[float | None, typer.Option(help="Learning rate [default: Adam 1e-3; SGD 0.05 (classifiers) or 0.1 (autoencoders)].", rich_help_panel=OPTIM)]
Momentum = Annotated[float, typer.Option(help="SGD momentum.", rich_help_panel=OPTIM)]
WeightDecay = Annotated[float, typer.Option(help="Weight decay.", rich_help_panel=OPTIM)]
Clip = Annotated[float, typer.Option(help="Clip the gradient norm to this (0: off).", rich_help_panel=OPTIM)]
ScheduleOption = Annotated[Schedule, typer.Option(help="plateau: lr x factor when validation stalls; decay: every epoch after --decay-start.", rich_help_panel=OPTIM)]
LrFactor = Annotated[float, typer.Option(help="LR multiplier of the schedule.", rich_help_panel=OPTIM)]
Epochs = Annotated[int | None, typer.Option(help="Epochs [default: 5 classifiers, 10 autoencoders (their fine-tuning, when stacked)].", rich_help_panel=RUN)]
MaxSteps = Annotated[int | None, typer.Option(help="Stop after this many optimizer steps.", rich_help_panel=RUN)]
MaxTime = Annotated[float | None, typer.Option(help="Stop after this many seconds of training.", rich_help_panel=RUN)]
Patience = Annotated[int | None, typer.Option(help="Stop after this many epochs without a better validation loss.", rich_help_panel=RUN)]
Output = Annotated[Path | None, typer.Option("-o", "--output", help="Run folder: best.pt, last.pt, metrics.jsonl, meta.json, config.json.", rich_help_panel=RUN)]
Resume = Annotated[Path | None, typer.Option(help="Continue the run in this folder exactly where it stopped.", rich_help_panel=RUN)]
Force = Annotated[bool, typer.Option(help="Replace a run already in --output.", rich_help_panel=RUN)]
DeviceOption = Annotated[Device, typer.Option(help="Where to run; auto picks CUDA, then MPS, then the CPU.", rich_help_panel=RUN)]
Bf16 = Annotated[bool, typer.Option(help="bf16 autocast (CUDA).", rich_help_panel=RUN)]
Seed = Annotated[int, typer.Option(help="Random seed: initialisation, shuffling, the held-out split.", rich_help_panel=RUN)]
Quiet = Annotated[bool, typer.Option("--quiet", "-q", help="No progress output.", rich_help_panel=RUN)]
# -- options of the commands that use a trained model ------------------------------------------
ModelOption = Annotated[str, typer.Option("-m", "--model", help="Checkpoint file, or a run folder (its best.pt, else last.pt).", show_default=False)]
ImagesOption = Annotated[str, typer.Option("--data", help="Images: generated:N[:SEED], a folder, a .npz or an MNIST IDX file.", show_default=False)]
EvalBatch = Annotated[int, typer.Option("--batch-size", min=1, help="Images per forward pass.")]
RunDevice = Annotated[Device, typer.Option(help="Where to run; auto picks CUDA, then MPS, then the CPU.")]


def train_config(o: dict, *, epochs: int):
    """The TrainConfig of a `train` command's options (`o` is its locals())."""
    from nlm.train.config import TrainConfig

    return TrainConfig(lr=o["lr"], optimizer=o["optimizer"].value, momentum=o["momentum"], weight_decay=o["weight_decay"],
                       clip=o["clip"], epochs=o["epochs"] or epochs, max_steps=o["max_steps"], max_time=o["max_time"],
                       schedule=o["schedule"].value, lr_factor=o["lr_factor"], patience=o["patience"],
                       device=o["device"].value, bf16=o["bf16"], seed=o["seed"])


def image_run(o: dict, command: str):
    from nlm.errors import ConfigError
    from nlm.images.sources import DEFAULT_DATA, ImageRun

    if o["output"] is None:
        raise ConfigError(f"{command} needs -o RUN_DIR (or --resume RUN_DIR)")
    return ImageRun(output=o["output"], data=o["data"] or DEFAULT_DATA, valid=o["valid"], holdout=o["holdout"], force=o["force"])


def resume_options(o: dict) -> dict:
    overrides = {k: o[k] for k in ("epochs", "max_steps", "max_time", "patience")}
    return {"run_dir": o["resume"], "overrides": overrides, "console": err_console, "quiet": o["quiet"],
            "data": o["data"], "valid": o["valid"]}


def report_run(result, quiet: bool) -> None:
    if not quiet:
        err_console.print(f"stopped ({result.stop_reason}) after {result.progress.global_step:,} steps; "
                          f"best valid loss {result.progress.best_loss:.4f}; run in {result.run_dir}")


def sizes(text: str | None) -> tuple[int, ...] | None:
    """`"120,84"` -> (120, 84); None stays None."""
    from nlm.errors import ConfigError

    if text is None:
        return None
    try:
        return tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise ConfigError(f"--hidden takes sizes separated by commas, e.g. 120,84, not {text!r}") from None


# -- nlm vision train ------------------------------------------------------------------------
@app.command()
def train(
    data: DataSpec = None, valid: ValidSpec = None, holdout: Holdout = 0.1, batch_size: BatchSize = 64,
    arch: Annotated[Arch, typer.Option(help="Classifier: a CNN (LeNet-style by default) or an MLP.", rich_help_panel=MODEL)] = Arch.cnn,
    conv: Annotated[str | None, typer.Option(help="CNN conv layers out:kernel:stride:padding, comma-separated [default: LeNet 6:5:1:2,16:5:1:0].", rich_help_panel=MODEL)] = None,
    pool: Annotated[Pool, typer.Option(help="CNN pooling after each conv layer.", rich_help_panel=MODEL)] = Pool.max,
    pool_size: Annotated[int, typer.Option(help="CNN pooling window and stride (1: none).", rich_help_panel=MODEL)] = 2,
    hidden: Annotated[str | None, typer.Option(help="Dense hidden sizes, comma-separated [default: cnn 120,84; mlp 256; the encoder's with --init-from].", rich_help_panel=MODEL)] = None,
    activation: Annotated[Activation | None, typer.Option(help="MLP hidden activation [default: relu; the encoder's with --init-from].", rich_help_panel=MODEL)] = None,
    dropout: Annotated[float, typer.Option(help="Dropout after each dense hidden layer.", rich_help_panel=MODEL)] = 0.0,
    init_from: Annotated[str | None, typer.Option(help="Initialise the MLP's hidden layers from this autoencoder checkpoint's encoder.", rich_help_panel=MODEL)] = None,
    adversarial: Annotated[bool, typer.Option(help="Train on a mix of clean and FGSM examples.", rich_help_panel=ADV)] = False,
    epsilon: Annotated[float, typer.Option(help="FGSM step of --adversarial, in pixel units of [0, 1].", rich_help_panel=ADV)] = 0.1,
    adversarial_weight: Annotated[float, typer.Option(help="Share of the loss from FGSM examples.", rich_help_panel=ADV)] = 0.5,
    optimizer: OptimizerOption = Optimizer.adam, lr: Lr = None, momentum: Momentum = 0.0, weight_decay: WeightDecay = 0.0,
    clip: Clip = 0.0, schedule: ScheduleOption = Schedule.plateau, lr_factor: LrFactor = 0.5,
    epochs: Epochs = None, max_steps: MaxSteps = None, max_time: MaxTime = None, patience: Patience = None,
    output: Output = None, resume: Resume = None, force: Force = False, device: DeviceOption = Device.auto,
    bf16: Bf16 = False, seed: Seed = 1, quiet: Quiet = False,
) -> None:
    """Train an image classifier into a run folder; with --resume, continue one."""
    from nlm.classify.training import resume_classifier, train_classifier

    options = dict(locals())
    result = resume_classifier(**resume_options(options)) if resume else train_classifier(**_classifier_job(options))
    report_run(result, quiet)


def _classifier_job(o: dict) -> dict:
    from nlm.classify.task import ClassifyConfig
    from nlm.classify.training import classifier_config

    cnn = {"conv": o["conv"], "pool": o["pool"].value, "pool_size": o["pool_size"]} if o["arch"] is Arch.cnn else {}
    mlp = {"activation": o["activation"] and o["activation"].value} if o["arch"] is Arch.mlp else {}
    model = classifier_config(o["arch"].value, init_from=o["init_from"], hidden=sizes(o["hidden"]), dropout=o["dropout"], **cnn, **mlp)
    data = ClassifyConfig(batch_size=o["batch_size"], epsilon=o["epsilon"] if o["adversarial"] else 0.0,
                          adversarial_weight=o["adversarial_weight"])
    return {"run": image_run(o, "nlm vision train"), "arch": o["arch"].value, "model": model, "data": data,
            "train": train_config(o, epochs=5), "console": err_console, "quiet": o["quiet"], "init_from": o["init_from"]}


# -- using a trained classifier ----------------------------------------------------------------
def _load(model: str, data: str, device: Device):
    from nlm.classify.training import load_classifier
    from nlm.images.data import load_images
    from nlm.runtime import pick_device

    loaded = load_classifier(model, device=pick_device(device.value))
    return loaded, load_images(data, channels=loaded.input_shape[0])


@app.command("eval")
def evaluate(model: ModelOption, data: ImagesOption, batch_size: EvalBatch = 500, device: RunDevice = Device.auto,
             format: Annotated[ReportFormat, typer.Option("--format", help="table: for people, on stderr; json: on stdout.")] = ReportFormat.table) -> None:
    """Accuracy, per-class accuracy and the confusion matrix of a classifier on labelled images."""
    from nlm.classify.evaluation import evaluate_images

    loaded, images = _load(model, data, device)
    result = evaluate_images(loaded.model, loaded.classes, images, device=loaded.device, batch_size=batch_size)
    if format is ReportFormat.json:
        print(json.dumps({"model": str(loaded.path), "data": images.source, **result.to_dict()}))
    else:
        _print_evaluation(result, f"{loaded.path} on {images.source}")


def _print_evaluation(result, title: str) -> None:
    from rich.table import Table
    from rich.text import Text

    err_console.print(f"{title}: accuracy {result.accuracy:.2%} ({result.count:,} images), loss {result.loss:.4f}")
    table = Table("class", "images", "accuracy", title="per class", title_justify="left")
    for name, total, accuracy in zip(result.classes, result.confusion.sum(1).tolist(), result.per_class):
        table.add_row(name, f"{total:,}", "-" if accuracy is None else f"{accuracy:.2%}")
    err_console.print(table)
    matrix = Table("true \\ predicted", *result.classes, title="confusion matrix", title_justify="left")
    for i, (name, row) in enumerate(zip(result.classes, result.confusion.tolist())):
        matrix.add_row(name, *(Text(str(n), style="bold" if i == j else "dim" if not n else "") for j, n in enumerate(row)))
    err_console.print(matrix)


@app.command()
def predict(model: ModelOption, data: ImagesOption, batch_size: EvalBatch = 500, device: RunDevice = Device.auto) -> None:
    """One line per image on stdout: index, predicted label and its probability, tab-separated, in input order."""
    from nlm.classify.evaluation import predict_images
    from nlm.io.tables import RowWriter

    loaded, images = _load(model, data, device)
    writer = RowWriter(sys.stdout)
    for index, (label, probability) in enumerate(predict_images(loaded.model, images, device=loaded.device, batch_size=batch_size)):
        writer.write({"index": index, "label": loaded.classes[label], "probability": probability})


@app.command()
def attack(model: ModelOption, data: ImagesOption,
           epsilons: Annotated[str, typer.Option(help="FGSM steps in pixel units of [0, 1], comma-separated.")] = "0,0.05,0.1,0.2,0.3",
           batch_size: EvalBatch = 500, device: RunDevice = Device.auto,
           format: Annotated[RowFormat, typer.Option("--format", help="tsv: epsilon and accuracy per line; json: one object.")] = RowFormat.tsv) -> None:
    """Accuracy under the fast gradient sign method at each epsilon, on stdout."""
    from nlm.classify.attack import attack_images, parse_epsilons
    from nlm.io.tables import RowWriter

    steps = parse_epsilons(epsilons)
    loaded, images = _load(model, data, device)
    results = attack_images(loaded.model, loaded.classes, images, steps, device=loaded.device, batch_size=batch_size)
    if format is RowFormat.json:
        print(json.dumps({"model": str(loaded.path), "data": images.source, "attack": "fgsm", "results": [r.to_dict() for r in results]}))
    else:
        for r in results:
            RowWriter(sys.stdout).write({"epsilon": r.epsilon, "accuracy": r.accuracy})


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="vision")
