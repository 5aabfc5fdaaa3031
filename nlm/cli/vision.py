"""`nlm vision train | eval | predict | attack`: image classifiers on the shared trainer."""

from __future__ import annotations

import sys
from enum import Enum
from pathlib import Path
from typing import Annotated

import typer

from nlm.cli.console import err_console
from nlm.cli.options import (
    MODEL,
    TRAINING,
    Activation,
    DataSpec,
    Device,
    DeviceOption,
    Force,
    Format,
    Holdout,
    ImageBatch,
    ModelPath,
    Optimizer,
    Output,
    PngOutput,
    Quiet,
    Resume,
    ValidSpec,
    epochs_help,
    format_option,
    report_run,
    resume_changes,
    sizes,
)

ADV = "Adversarial training"
app = typer.Typer(help="Image classifiers: train, eval, predict, attack, filters.", no_args_is_help=True)
IMAGE_TRAINING = TRAINING.with_defaults(
    optimizer=Optimizer.adam,
    clip=0.0,
    lr_factor=0.5,
    helps={"lr": "Learning rate [default: Adam 1e-3; SGD 0.05 (use --momentum 0.9)].", "epochs": epochs_help("vision")},
)
EvalBatch = Annotated[int, typer.Option("--batch-size", min=1, help="Images per forward pass.")]
ImagesOption = Annotated[
    str,
    typer.Option(
        "--data", help="Images: generated:N[:SEED], a folder, a .npz or an MNIST IDX file.", show_default=False
    ),
]


class Arch(str, Enum):
    cnn = "cnn"
    mlp = "mlp"


class Pool(str, Enum):
    max = "max"
    avg = "avg"


@app.command()
@IMAGE_TRAINING
def train(
    ctx: typer.Context,
    data: DataSpec = None,
    valid: ValidSpec = None,
    holdout: Holdout = 0.1,
    batch_size: ImageBatch = 64,
    arch: Annotated[
        Arch, typer.Option(help="Classifier: a CNN (LeNet-style by default) or an MLP.", rich_help_panel=MODEL)
    ] = Arch.cnn,
    conv: Annotated[
        str | None,
        typer.Option(
            help="CNN conv layers out:kernel:stride:padding, comma-separated [default: LeNet 6:5:1:2,16:5:1:0].",
            rich_help_panel=MODEL,
        ),
    ] = None,
    pool: Annotated[Pool, typer.Option(help="CNN pooling after each conv layer.", rich_help_panel=MODEL)] = Pool.max,
    pool_size: Annotated[int, typer.Option(help="CNN pooling window and stride (1: none).", rich_help_panel=MODEL)] = 2,
    hidden: Annotated[
        str | None,
        typer.Option(
            help="Dense hidden sizes, comma-separated [default: cnn 120,84; mlp 256; the encoder's with --init-from].",
            rich_help_panel=MODEL,
        ),
    ] = None,
    activation: Annotated[
        Activation | None,
        typer.Option(
            help="MLP hidden activation [default: relu; the encoder's with --init-from].", rich_help_panel=MODEL
        ),
    ] = None,
    dropout: Annotated[float, typer.Option(help="Dropout after each dense hidden layer.", rich_help_panel=MODEL)] = 0.0,
    init_from: Annotated[
        str | None,
        typer.Option(
            help="Initialise the MLP's hidden layers from this autoencoder checkpoint's encoder.", rich_help_panel=MODEL
        ),
    ] = None,
    adversarial: Annotated[
        bool, typer.Option(help="Train on a mix of clean and FGSM examples.", rich_help_panel=ADV)
    ] = False,
    epsilon: Annotated[
        float, typer.Option(help="FGSM step of --adversarial, in pixel units of [0, 1].", rich_help_panel=ADV)
    ] = 0.1,
    adversarial_weight: Annotated[
        float, typer.Option(help="Share of the loss from FGSM examples.", rich_help_panel=ADV)
    ] = 0.5,
    output: Output = None,
    resume: Resume = None,
    force: Force = False,
    quiet: Quiet = False,
    training=None,
) -> None:
    """Train an image classifier, or resume one.

    Trains into the run folder -o; with --resume RUN, continues that run where its last.pt stopped."""
    from nlm.classify.task import ClassifyConfig
    from nlm.classify.training import ClassifierJob, classifier_config, resume_classifier, train_classifier
    from nlm.errors import ConfigError
    from nlm.images.sources import DEFAULT_DATA, ImageSources

    if resume is not None:
        result = resume_classifier(
            run_dir=resume, changes=resume_changes(ctx, training), console=err_console, quiet=quiet
        )
        return report_run(err_console, result, quiet)
    if output is None:
        raise ConfigError("nlm vision train needs -o RUN_DIR (or --resume RUN_DIR)")
    shape = (
        {"conv": conv, "pool": pool.value, "pool_size": pool_size}
        if arch is Arch.cnn
        else {"activation": activation and activation.value}
    )
    job = ClassifierJob(
        arch=arch.value,
        init_from=init_from,
        sources=ImageSources(data=data or DEFAULT_DATA, valid=valid, holdout=holdout),
        model=classifier_config(arch.value, init_from=init_from, hidden=sizes(hidden), dropout=dropout, **shape),
        data=ClassifyConfig(
            batch_size=batch_size, epsilon=epsilon if adversarial else 0.0, adversarial_weight=adversarial_weight
        ),
    )
    report_run(
        err_console,
        train_classifier(job=job, output=output, train=training, force=force, console=err_console, quiet=quiet),
        quiet,
    )


def _load(model: str, data: str, device: Device):
    from nlm.classify.loading import load_classifier
    from nlm.images.data import load_images
    from nlm.runtime import pick_device

    loaded = load_classifier(model, device=pick_device(device.value))
    return loaded, load_images(data, channels=loaded.input_shape[0])


@app.command("eval")
def evaluate(
    model: ModelPath,
    data: ImagesOption,
    batch_size: EvalBatch = 500,
    device: DeviceOption = Device.auto,
    format: Annotated[
        Format,
        format_option(
            Format.text,
            Format.json,
            help="text: a report with the per-class accuracy and the confusion matrix; json: one object.",
        ),
    ] = Format.text,
) -> None:
    """Accuracy, per class too, and the confusion matrix.

    Of a classifier on labelled images, on stdout."""
    from nlm.classify.evaluation import evaluate_images, evaluation_report
    from nlm.io.tables import jsonl_line

    loaded, images = _load(model, data, device)
    result = evaluate_images(loaded.model, loaded.classes, images, device=loaded.device, batch_size=batch_size)
    if format is Format.json:
        typer.echo(jsonl_line({"model": str(loaded.path), "data": images.source, **result.to_dict()}))
    else:
        typer.echo("\n".join(evaluation_report(result, f"{loaded.path} on {images.source}")))


@app.command()
def predict(
    model: ModelPath,
    data: ImagesOption,
    batch_size: EvalBatch = 500,
    device: DeviceOption = Device.auto,
    format: Annotated[
        Format, format_option(Format.tsv, Format.json, help="tsv or json: one row per image.")
    ] = Format.tsv,
) -> None:
    """One row per image: index, predicted label, probability.

    On stdout, in input order."""
    from nlm.classify.evaluation import predict_images
    from nlm.io.tables import RowWriter

    loaded, images = _load(model, data, device)
    writer = RowWriter(sys.stdout, fmt=format.value)
    for index, (label, probability) in enumerate(
        predict_images(loaded.model, images, device=loaded.device, batch_size=batch_size)
    ):
        writer.write({"index": index, "label": loaded.classes[label], "probability": probability})


@app.command()
def attack(
    model: ModelPath,
    data: ImagesOption,
    epsilons: Annotated[
        str, typer.Option(help="FGSM steps in pixel units of [0, 1], comma-separated.")
    ] = "0,0.05,0.1,0.2,0.3",
    batch_size: EvalBatch = 500,
    device: DeviceOption = Device.auto,
    format: Annotated[
        Format, format_option(Format.tsv, Format.json, help="tsv or json: one row per epsilon.")
    ] = Format.tsv,
    examples: Annotated[
        Path | None,
        typer.Option(
            help="Also draw the classic FGSM picture to this PNG: clean images with their "
            "prediction, the signed-gradient perturbation, the adversarial images."
        ),
    ] = None,
    count: Annotated[int, typer.Option(min=1, help="--examples: images to draw.")] = 8,
    example_epsilon: Annotated[
        float | None, typer.Option(help="--examples: the step drawn [default: the largest of --epsilons].")
    ] = None,
    correct_only: Annotated[
        bool,
        typer.Option(
            "--correct-only/--any", help="--examples: draw only images the model gets right before the attack."
        ),
    ] = True,
) -> None:
    """Accuracy under FGSM attacks, one row per epsilon.

    Stdout: a header `epsilon<TAB>accuracy<TAB>images`, then one row per epsilon (the step in pixel
    units of [0, 1], the accuracy on the attacked images, how many there were)."""
    from nlm.classify.attack import attack_images, parse_epsilons
    from nlm.classify.pictures import ROWS, attack_examples, draw_attack_examples
    from nlm.io.tables import RowWriter

    steps = parse_epsilons(epsilons)
    loaded, images = _load(model, data, device)
    writer = RowWriter(sys.stdout, fmt=format.value, header=True)
    for r in attack_images(loaded.model, loaded.classes, images, steps, device=loaded.device, batch_size=batch_size):
        writer.write({"epsilon": r.epsilon, "accuracy": r.accuracy, "images": r.count})
    if examples is not None:
        epsilon = max(steps) if example_epsilon is None else example_epsilon
        drawn = attack_examples(
            loaded.model,
            loaded.classes,
            images,
            count=count,
            epsilon=epsilon,
            correct_only=correct_only,
            device=loaded.device,
        )
        width, height = draw_attack_examples(drawn, examples)
        rows = ", ".join(row.format(epsilon=epsilon) for row in ROWS)
        err_console.print(
            f"wrote {len(drawn.clean)} FGSM examples at epsilon {epsilon} (rows: {rows}; {width}x{height}) "
            f"to {examples}"
        )


@app.command()
def filters(
    model: ModelPath,
    output: PngOutput,
    count: Annotated[int | None, typer.Option(min=1, help="Units to draw [default: all].")] = None,
    scale: Annotated[
        int | None,
        typer.Option(min=1, help="Draw each weight as scale x scale pixels [default: about 60 pixels a filter]."),
    ] = None,
) -> None:
    """Draw the first layer's weights as a PNG grid.

    A CNN's first conv kernels, or an MLP's first units as images."""
    from nlm.classify.loading import load_classifier
    from nlm.classify.pictures import save_classifier_filters

    units, width, height = save_classifier_filters(load_classifier(model).model, output, count=count, scale=scale)
    err_console.print(f"wrote the filters of {units} first-layer units ({width}x{height}) to {output}")


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="vision")
