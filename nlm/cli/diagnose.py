"""`nlm diagnose gradients | clipping`: how far back a model's gradients reach, and how clipping rescales them."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from nlm.cli.console import err_console
from nlm.cli.options import repeated_choice
from nlm.models.choices import CELLS

app = typer.Typer(
    help="Gradient flow by lag, gradient norms by layer.",
    no_args_is_help=True,
)
FRESH = "Fresh models"

Text = Annotated[
    str,
    typer.Argument(
        help="Text, one sentence per line: windows are read from it, and fresh models trained on it.",
        show_default=False,
    ),
]
Models = Annotated[
    list[str] | None,
    typer.Option("-m", "--model", help="Checkpoint or run folder to look at; repeat for several.", show_default=False),
]
Cells = Annotated[
    list[str] | None,
    repeated_choice(
        CELLS,
        "--cell",
        help="A fresh model with this cell; repeat for several.",
        rich_help_panel=FRESH,
        show_default=False,
    ),
]
Hidden = Annotated[int, typer.Option(min=1, help="Hidden state size.", rich_help_panel=FRESH)]
Layers = Annotated[int, typer.Option(min=1, help="Recurrent layers.", rich_help_panel=FRESH)]
Emb = Annotated[int | None, typer.Option(min=1, help="Embedding size [default: --hidden].", rich_help_panel=FRESH)]
InitRange = Annotated[float, typer.Option(help="Weights start uniform in [-r, r].", rich_help_panel=FRESH)]
ForgetBias = Annotated[
    float | None,
    typer.Option(help="An LSTM's forget-gate bias at the start [default: the uniform draw].", rich_help_panel=FRESH),
]
Steps = Annotated[
    int,
    typer.Option(
        min=0, help="Train fresh models this many Adam steps on the text first (0: untrained).", rich_help_panel=FRESH
    ),
]
Lr = Annotated[float, typer.Option(help="Adam learning rate of --steps.", rich_help_panel=FRESH)]
Windows = Annotated[int, typer.Option(min=1, help="Windows of the text to average over.")]
Seed = Annotated[int, typer.Option(help="Seed of the window positions and of fresh models.")]


def _subjects(
    text: str,
    *,
    model: list[str] | None,
    cell: list[str] | None,
    hidden: int,
    layers: int,
    emb: int | None,
    init_range: float,
    forget_bias: float | None,
    steps: int,
    lr: float,
    seed: int,
):
    """The checkpoints given with -m and the fresh models given with --cell, ready to diagnose."""
    from nlm.lm.diagnose import FreshModels, diagnose_subjects

    fresh = FreshModels(
        cells=tuple(cell or ()),
        hidden=hidden,
        layers=layers,
        emb=emb,
        init_range=init_range,
        forget_bias=forget_bias,
        steps=steps,
        lr=lr,
        seed=seed,
    )
    return diagnose_subjects(text, checkpoints=model or [], fresh=fresh)


@app.command()
def gradients(
    text: Text,
    model: Models = None,
    cell: Cells = None,
    hidden: Hidden = 64,
    layers: Layers = 1,
    emb: Emb = None,
    init_range: InitRange = 0.1,
    forget_bias: ForgetBias = None,
    steps: Steps = 0,
    lr: Lr = 1e-3,
    lags: Annotated[int, typer.Option(min=0, help="Largest lag K: the norm of dL_t/ds_{t-k} for k = 0 .. K.")] = 50,
    windows: Windows = 32,
    seed: Seed = 1,
    plot: Annotated[
        Path | None, typer.Option(help="Also draw norm against lag, log scale, one line per model, as a PNG.")
    ] = None,
) -> None:
    """How far back the gradient reaches, lag by lag.

    The mean norm of dL_t/ds_{t-k} (the loss at step t with respect to the recurrent state k steps
    earlier) for k = 0..K.  Stdout: a header `lag<TAB>norm` (one model) or
    `lag<TAB>MODEL...` (several), then one row per lag."""
    from nlm.lm.diagnose import gradient_flow, plot_gradient_flow

    subjects = _subjects(
        text,
        model=model,
        cell=cell,
        hidden=hidden,
        layers=layers,
        emb=emb,
        init_range=init_range,
        forget_bias=forget_bias,
        steps=steps,
        lr=lr,
        seed=seed,
    )
    flows = gradient_flow(subjects, lags=lags, windows=windows, seed=seed)
    labels = list(flows)
    typer.echo("\t".join(["lag", *(labels if len(labels) > 1 else ["norm"])]))
    for k in range(lags + 1):
        typer.echo("\t".join([str(k), *(f"{flows[label][k]:.6e}" for label in labels)]))
    if plot is not None:
        width, height = plot_gradient_flow(flows, plot)
        err_console.print(f"wrote the gradient flow of {', '.join(labels)} ({width}x{height}) to {plot}")


@app.command()
def clipping(
    text: Text,
    model: Models = None,
    cell: Cells = None,
    hidden: Hidden = 64,
    layers: Layers = 1,
    emb: Emb = None,
    init_range: InitRange = 0.1,
    forget_bias: ForgetBias = None,
    steps: Steps = 0,
    lr: Lr = 1e-3,
    clip: Annotated[
        float, typer.Option(help="Clip the gradient's global norm to this, as `nlm train --clip` does (0: off).")
    ] = 0.25,
    bptt: Annotated[int, typer.Option(min=1, help="Steps per window.")] = 35,
    windows: Windows = 32,
    seed: Seed = 1,
) -> None:
    """Gradient norms of each layer before and after clipping.

    The embedding, each recurrent layer, the decoder and the total, on windows of the text.  Stdout: a header
    `model<TAB>layer<TAB>before<TAB>after<TAB>clipped`, then one row per layer; clipped is yes when the total
    norm was over --clip, which scales every layer by the same factor."""
    from nlm.lm.diagnose import clipping_report

    subjects = _subjects(
        text,
        model=model,
        cell=cell,
        hidden=hidden,
        layers=layers,
        emb=emb,
        init_range=init_range,
        forget_bias=forget_bias,
        steps=steps,
        lr=lr,
        seed=seed,
    )
    report = clipping_report(subjects, clip=clip, bptt=bptt, windows=windows, seed=seed)
    typer.echo("model\tlayer\tbefore\tafter\tclipped")
    for label, rows in report.items():
        for row in rows:
            typer.echo(f"{label}\t{row.layer}\t{row.before:.6e}\t{row.after:.6e}\t{'yes' if row.clipped else 'no'}")


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="diagnose")
