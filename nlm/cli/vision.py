"""`nlm vision train | eval | predict | attack`: image classifiers on the shared trainer."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from nlm.cli.console import err_console
from nlm.cli.options import (
    MODEL,
    Activation,
    Architecture,
    DataSpec,
    Device,
    DeviceOption,
    EvalBatch,
    Holdout,
    ImageBatch,
    ImagesOption,
    ModelPath,
    PngOutput,
    Pool,
    ValidSpec,
    format_option,
    sizes,
)
from nlm.cli.training import TRAINING, Force, Output, Quiet, Resume, epochs_help, train_or_resume

ADV = "Adversarial training"
app = typer.Typer(help="Image classifiers: train, eval, predict, attack, filters.", no_args_is_help=True)
IMAGE_TRAINING = TRAINING.with_defaults(
    optimizer="adam",
    clip=0.0,
    lr_factor=0.5,
    helps={"lr": "Learning rate [default: Adam 1e-3; SGD 0.05 (use --momentum 0.9)].", "epochs": epochs_help("vision")},
)


@app.command()
@IMAGE_TRAINING
def train(
    ctx: typer.Context,
    data: DataSpec = None,
    valid: ValidSpec = None,
    holdout: Holdout = 0.1,
    batch_size: ImageBatch = 64,
    arch: Annotated[
        Architecture,
        typer.Option(help="Classifier: a CNN (LeNet-style by default) or an MLP.", rich_help_panel=MODEL),
    ] = "cnn",
    conv: Annotated[
        str | None,
        typer.Option(
            help="CNN conv layers out:kernel:stride:padding, comma-separated [default: LeNet 6:5:1:2,16:5:1:0].",
            rich_help_panel=MODEL,
        ),
    ] = None,
    pool: Annotated[Pool, typer.Option(help="CNN pooling after each conv layer.", rich_help_panel=MODEL)] = "max",
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
    from nlm.classify.training import ClassifierJob, classifier_config
    from nlm.images.sources import DEFAULT_DATA, ImageSources

    def new_job() -> ClassifierJob:
        shape = {"conv": conv, "pool": pool, "pool_size": pool_size} if arch == "cnn" else {"activation": activation}
        return ClassifierJob(
            arch=arch,
            init_from=init_from,
            sources=ImageSources(data=data or DEFAULT_DATA, valid=valid, holdout=holdout),
            model=classifier_config(arch, init_from=init_from, hidden=sizes(hidden), dropout=dropout, **shape),
            data=ClassifyConfig(
                batch_size=batch_size, epsilon=epsilon if adversarial else 0.0, adversarial_weight=adversarial_weight
            ),
        )

    train_or_resume(
        ctx, ClassifierJob, new_job, output=output, resume=resume, force=force, quiet=quiet, training=training
    )


def _load(model: str, data: str, device: Device):
    from nlm.classify.loading import load_classifier
    from nlm.images.data import load_images
    from nlm.runtime import pick_device

    loaded = load_classifier(model, device=pick_device(device))
    return loaded, load_images(data, channels=loaded.input_shape[0])


@app.command("eval")
def evaluate(
    model: ModelPath,
    data: ImagesOption,
    batch_size: EvalBatch = 500,
    device: DeviceOption = "auto",
    output_format: Annotated[
        str,
        format_option(
            "text",
            "json",
            help="text: a report with the per-class accuracy and the confusion matrix; json: one object.",
        ),
    ] = "text",
) -> None:
    """Accuracy, per class too, and the confusion matrix.

    Of a classifier on labelled images, on stdout."""
    from nlm.classify.evaluation import evaluate_images, evaluation_report
    from nlm.io.tables import jsonl_line

    loaded, images = _load(model, data, device)
    result = evaluate_images(loaded.model, loaded.classes, images, device=loaded.device, batch_size=batch_size)
    if output_format == "json":
        typer.echo(jsonl_line({"model": str(loaded.path), "data": images.source, **result.to_dict()}))
    else:
        typer.echo("\n".join(evaluation_report(result, f"{loaded.path} on {images.source}")))


@app.command()
def predict(
    model: ModelPath,
    data: ImagesOption,
    batch_size: EvalBatch = 500,
    device: DeviceOption = "auto",
    output_format: Annotated[str, format_option("tsv", "json", help="tsv or json: one row per image.")] = "tsv",
) -> None:
    """One row per image: index, predicted label, probability.

    On stdout, in input order."""
    from nlm.classify.evaluation import predict_images
    from nlm.io.tables import RowWriter

    loaded, images = _load(model, data, device)
    writer = RowWriter(sys.stdout, fmt=output_format)
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
    device: DeviceOption = "auto",
    output_format: Annotated[str, format_option("tsv", "json", help="tsv or json: one row per epsilon.")] = "tsv",
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
    writer = RowWriter(sys.stdout, fmt=output_format, header=True)
    for result in attack_images(
        loaded.model, loaded.classes, images, steps, device=loaded.device, batch_size=batch_size
    ):
        writer.write(result.to_dict())
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
