"""`nlm export`: a language model as a small, self-contained checkpoint for scoring and generation."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

import typer

from nlm.cli.console import err_console
from nlm.cli.options import ModelPath
from nlm.config import EXPORT_PRECISIONS

ExportPrecision = Literal[EXPORT_PRECISIONS]


def export(
    model: ModelPath = ...,
    output: Annotated[
        Path, typer.Option("-o", "--output", help="The checkpoint file to write.", show_default=False)
    ] = ...,
    precision: Annotated[
        ExportPrecision,
        typer.Option(
            help="The weights' type: bf16 (half the bytes), fp32, or int8: the recurrent layers quantized for "
            "ONNX Runtime (pip install 'nlm[int8]'; fused LSTM/GRU/RNN layers, CPU), the rest in bf16."
        ),
    ] = "bf16",
) -> None:
    """A small checkpoint for scoring and generation, in a precision.

    Writes the model, its configs and vocabulary, without the training state, for every command that takes -m.

    The file loads with torch.load(weights_only=True) and cannot be resumed.  It computes in whatever
    --precision a command asks for; with bf16 weights, --precision fp32 computes in float32 on them.
    An int8 export's recurrent layers run on ONNX Runtime, the rest in --precision."""
    from nlm.api.export import export_language_model

    done = export_language_model(model, output=output, precision=precision)
    weights = (
        f"the recurrent layers in int8 (ONNX Runtime), {done.parameters:,} other weights in bf16"
        if done.precision == "int8"
        else f"{done.parameters:,} weights in {done.precision}"
    )
    err_console.print(
        f"wrote {done.output}: {weights}, {done.output_bytes:,} bytes "
        f"({done.output_bytes / done.source_bytes:.0%} of {done.source.name}'s {done.source_bytes:,})",
        markup=False,
    )


def register(app: typer.Typer) -> None:
    app.command()(export)
