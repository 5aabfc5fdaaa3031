"""`nlm plot`: training and validation curves of one or more run folders, as a PNG."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from nlm.cli.console import err_console
from nlm.cli.options import XAxis, YMetric


def plot(
    runs: Annotated[
        list[str],
        typer.Argument(
            help="Run folders of `nlm train`, `nlm vision train` or `nlm autoencoder train`.", show_default=False
        ),
    ],
    output: Annotated[
        Path, typer.Option("-o", "--output", help="The PNG to write ('-' for stdout).", show_default=False)
    ],
    x: Annotated[
        XAxis, typer.Option("--x", help="Horizontal axis: optimizer steps, seconds of training, or epochs.")
    ] = "step",
    y: Annotated[
        YMetric,
        typer.Option(
            "--y",
            help="What to draw: loss for any run; ppl and bpc (bits per character, or per token for word and "
            "subword models) for language models; accuracy (classifiers) and mse (autoencoders), validation only.",
        ),
    ] = "loss",
    log: Annotated[bool, typer.Option("--log", help="Logarithmic vertical axis.")] = False,
) -> None:
    """Draw the training and validation curves of runs.

    Training dashed, validation solid, one colour per run, labelled by its folder's name."""
    from nlm.io.curves import plot_training_curves

    width, height, label = plot_training_curves(runs, output, x=x, y=y, log_y=log)
    err_console.print(f"wrote the {label} curves of {len(runs)} run(s) against {x} ({width}x{height}) to {output}")


def register(app: typer.Typer) -> None:
    app.command()(plot)
