"""Options shared by several commands, each declared once.

- A choice is a `Literal` of the library's own tuple of names (`Cell` is `Literal[CELLS]`), so
  Typer lists and checks them, the command receives the plain name, and adding a name to the
  library's tuple adds it to the command line.
- Options that several commands take are Annotated aliases (`ModelPath`, `DeviceOption`, `ImagesOption`...).
- One output vocabulary: `--format text|tsv|json` (json is one JSON object per line), each
  command taking the subset that fits it; `jsonl` and `table`, earlier spellings, still work.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

import typer

from nlm.config import DEVICES, PRECISIONS
from nlm.io.curves import X_AXES, Y_METRICS
from nlm.io.tables import FORMATS, OLD_FORMAT_NAMES
from nlm.lm.config import LOG_BASES, MODES
from nlm.models.choices import (
    ACTIVATIONS,
    ARCHITECTURES,
    AUTOENCODER_KINDS,
    CELLS,
    CORRUPTIONS,
    POOLS,
    RNN_INITS,
    SOFTMAXES,
)
from nlm.text.symbols import LEVELS
from nlm.train.config import ANNEALS, OPTIMIZERS, SCHEDULES

DATA, MODEL, OPTIM, RUN = "Data", "Model", "Optimization", "Run"

Level = Literal[LEVELS]
Mode = Literal[MODES]
LogBase = Literal[tuple(LOG_BASES)]
Cell = Literal[CELLS]
RnnInit = Literal[RNN_INITS]
Softmax = Literal[SOFTMAXES]
Architecture = Literal[ARCHITECTURES]
Pool = Literal[POOLS]
Activation = Literal[ACTIVATIONS]
AutoencoderKind = Literal[AUTOENCODER_KINDS]
Corruption = Literal[CORRUPTIONS]
Optimizer = Literal[OPTIMIZERS]
Schedule = Literal[SCHEDULES]
Anneal = Literal[ANNEALS]
Device = Literal[DEVICES]
Precision = Literal[PRECISIONS]
XAxis = Literal[tuple(X_AXES)]
YMetric = Literal[tuple(Y_METRICS)]


def repeated_choice(names: tuple[str, ...], *decls: str, **options: Any) -> Any:
    """An option that takes one of `names` each time it is given (Typer takes no list of a Literal)."""

    def parse(value: str) -> str:
        if value not in names:
            raise typer.BadParameter(f"choose one of {'|'.join(names)}, not {value!r}")
        return value

    return typer.Option(*decls, parser=parse, metavar="|".join(names), **options)


def format_option(*allowed: str, help: str) -> Any:
    """A `--format` option taking `allowed`, some of FORMATS (and the old spellings of them)."""
    assert set(allowed) <= set(FORMATS), allowed
    names = "|".join(allowed)

    def parse(value: str) -> str:
        chosen = OLD_FORMAT_NAMES.get(value, value)
        if chosen not in allowed:
            raise typer.BadParameter(f"choose one of {names}, not {value!r}")
        return chosen

    return typer.Option("--format", parser=parse, metavar=names, help=help)


JsonFlag = Annotated[bool, typer.Option("--json", hidden=True, help="The same as --format json (an old spelling).")]


def wants_json(output_format: str, json_flag: bool) -> bool:
    """Whether `--format json`, or the old `--json`, was asked for."""
    return json_flag or output_format == "json"


# -- options of the commands that use a trained model -----------------------------------------
ModelPath = Annotated[
    str,
    typer.Option(
        "-m", "--model", help="Checkpoint file, or a run folder (its best.pt, else last.pt).", show_default=False
    ),
]
DeviceOption = Annotated[Device, typer.Option(help="Where to run; auto picks CUDA, then MPS, then the CPU.")]
PRECISION_HELP = (
    "fp32; bf16 (autocast: products and recurrent cells in bfloat16, log-softmax and every sum in float32); "
    "auto: bf16 where the hardware does it natively (CUDA with bf16, a CPU with AMX or AVX512-BF16), else fp32."
)
PrecisionOption = Annotated[Precision, typer.Option(help=PRECISION_HELP)]

# -- options of the commands on images ----------------------------------------------------------
DataSpec = Annotated[
    str | None,
    typer.Option(
        "--data",
        help="Training images: generated:N[:SEED], a folder with one sub-folder per class, "
        "a .npz (x, y) or an MNIST IDX file [default: generated:6000].",
        rich_help_panel=DATA,
    ),
]
ValidSpec = Annotated[
    str | None,
    typer.Option(
        "--valid",
        help="Validation images (same forms as --data): pick best.pt, drive the LR schedule and early stopping.",
        rich_help_panel=DATA,
    ),
]
Holdout = Annotated[
    float,
    typer.Option(
        help="Without --valid: hold out this fraction (< 1) or count (>= 1) of --data for validation; 0: none.",
        rich_help_panel=DATA,
    ),
]
ImageBatch = Annotated[int, typer.Option("--batch-size", help="Images per training step.", rich_help_panel=DATA)]
ImagesOption = Annotated[
    str,
    typer.Option(
        "--data", help="Images: generated:N[:SEED], a folder, a .npz or an MNIST IDX file.", show_default=False
    ),
]
EvalBatch = Annotated[int, typer.Option("--batch-size", min=1, help="Images per forward pass.")]
PngOutput = Annotated[Path, typer.Option("-o", "--output", help="The PNG file to write.", show_default=False)]
Scale = Annotated[int, typer.Option(min=1, help="Draw each pixel as scale x scale pixels.")]


def sizes(text: str | None, option: str = "--hidden") -> tuple[int, ...] | None:
    """`"120,84"` -> (120, 84); None stays None."""
    from nlm.api.options import sizes as parse

    return parse(text, option)
