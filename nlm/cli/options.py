"""Options shared by several commands, each declared once.

- Choices are Enums, so Typer lists and checks them.
- Options that several commands take are Annotated aliases (`Output`, `ModelPath`, `DeviceOption`...).
- The training options are one group: a command that declares `training: TrainConfig` and is
  decorated with `@TRAINING` (or `@TRAINING.with_defaults(...)`) gets every training option,
  and receives them as one TrainConfig.
- One output vocabulary: `--format text|tsv|json` (json is one JSON object per line), each
  command taking the subset that fits it; `jsonl` and `table`, earlier spellings, still work.
"""

from __future__ import annotations

import copy
import functools
import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Annotated, Any

import typer

from nlm.config import PRECISIONS

DATA, MODEL, OPTIM, RUN = "Data", "Model", "Optimization", "Run"


class Level(str, Enum):
    word = "word"
    char = "char"
    bpe = "bpe"
    unigram = "unigram"


class Cell(str, Enum):
    rnn_tanh = "rnn-tanh"
    rnn_relu = "rnn-relu"
    lstm = "lstm"
    gru = "gru"


class Mode(str, Enum):
    stream = "stream"
    sentence = "sentence"


class Optimizer(str, Enum):
    sgd = "sgd"
    adam = "adam"
    adamw = "adamw"
    ntasgd = "ntasgd"


class Schedule(str, Enum):
    plateau = "plateau"
    decay = "decay"
    steps = "steps"
    none = "none"


class Device(str, Enum):
    auto = "auto"
    cpu = "cpu"
    cuda = "cuda"
    mps = "mps"


Precision = Enum("Precision", [(name, name) for name in PRECISIONS], type=str)  # auto, fp32, bf16 (nlm.config)


class Activation(str, Enum):
    relu = "relu"
    sigmoid = "sigmoid"
    tanh = "tanh"
    linear = "linear"


class Format(str, Enum):
    text = "text"  # lines for people and simple tools
    tsv = "tsv"  # one tab-separated row per record
    json = "json"  # one JSON object per line


FORMAT_ALIASES = {"jsonl": Format.json, "table": Format.text}


def format_option(*allowed: Format, help: str) -> Any:
    """A `--format` option taking `allowed` (and the old spellings of them)."""
    names = "|".join(f.value for f in allowed)

    def parse(value: str | Format) -> Format:
        chosen = FORMAT_ALIASES.get(value) or next((f for f in Format if f.value == value), None)
        if chosen not in allowed:
            raise typer.BadParameter(f"choose one of {names}, not {value!r}")
        return chosen

    return typer.Option("--format", parser=parse, metavar=names, help=help)


JsonFlag = Annotated[bool, typer.Option("--json", hidden=True, help="The same as --format json (an old spelling).")]


def wants_json(output_format: Format, json_flag: bool) -> bool:
    """Whether `--format json`, or the old `--json`, was asked for."""
    return json_flag or output_format is Format.json


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

# -- options of the commands that train ---------------------------------------------------------
Output = Annotated[
    Path | None,
    typer.Option(
        "-o",
        "--output",
        help="Run folder: best.pt, last.pt, metrics.jsonl, meta.json, config.json.",
        rich_help_panel=RUN,
    ),
]
Resume = Annotated[
    Path | None,
    typer.Option(
        help="Continue the run in this folder where its last.pt stopped; only the stopping rules, "
        "--lr, --save-every, --device and --precision may change.",
        rich_help_panel=RUN,
    ),
]
Force = Annotated[
    bool,
    typer.Option(
        help="Replace a run already in --output, once the new one has written its first checkpoint.",
        rich_help_panel=RUN,
    ),
]
Quiet = Annotated[bool, typer.Option("--quiet", "-q", help="No progress output.", rich_help_panel=RUN)]
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
PngOutput = Annotated[Path, typer.Option("-o", "--output", help="The PNG file to write.", show_default=False)]
Scale = Annotated[int, typer.Option(min=1, help="Draw each pixel as scale x scale pixels.")]
ImageBatch = Annotated[int, typer.Option("--batch-size", help="Images per training step.", rich_help_panel=DATA)]


def option_spec(annotation, default, help: str, panel: str, *decls: str, **checks: Any) -> tuple:
    """One member of an OptionGroup: (type, default, the typer.Option); `checks` such as min=0 go to the Option."""
    return annotation, default, typer.Option(*decls, help=help, rich_help_panel=panel, **checks)


TRAINING_OPTIONS: dict[str, tuple] = {
    "optimizer": option_spec(
        Optimizer,
        Optimizer.sgd,
        "Optimizer; ntasgd: SGD that switches to averaged SGD when validation "
        "stalls, evaluating and saving best.pt with the averages (AWD-LSTM's NT-ASGD).",
        OPTIM,
    ),
    "lr": option_spec(
        float | None, None, "Learning rate [default: the command's, for its model and optimizer].", OPTIM
    ),
    "momentum": option_spec(float, 0.0, "SGD momentum.", OPTIM),
    "weight_decay": option_spec(float, 0.0, "Weight decay (L2 for sgd and adam, decoupled for adamw).", OPTIM),
    "clip": option_spec(float, 0.25, "Clip the gradient norm to this (0: off).", OPTIM),
    "schedule": option_spec(
        Schedule | None,
        None,
        "plateau: lr x --lr-factor when an epoch does not improve; decay: "
        "lr x --lr-factor after every epoch from --decay-start on; steps: after each of --milestones; none "
        "[default: plateau; none with ntasgd].",
        OPTIM,
    ),
    "lr_factor": option_spec(float, 0.25, "LR multiplier of the schedule.", OPTIM),
    "decay_start": option_spec(int, 4, "decay: epochs at the full learning rate.", OPTIM),
    "milestones": option_spec(
        str | None, None, "steps: the epochs after which the rate is multiplied, e.g. 300,400.", OPTIM
    ),
    "nonmono": option_spec(
        int,
        5,
        "ntasgd: average once the validation loss is worse than the best before the last N "
        "evaluations; a fine-tuning stops then.",
        OPTIM,
    ),
    "epochs": option_spec(int, 6, "Passes over the training data.", RUN),
    "max_steps": option_spec(int | None, None, "Stop after this many optimizer steps in all.", RUN),
    "max_time": option_spec(float | None, None, "Stop after this many seconds of training in all.", RUN),
    "patience": option_spec(
        int | None, None, "Stop after this many evaluations without a better validation loss.", RUN
    ),
    "save_every": option_spec(
        str | None,
        None,
        "Also write last.pt every N optimizer steps (500) or every so long (10m), "
        "mid-epoch included; a resume continues from there exactly.",
        RUN,
    ),
    "device": option_spec(Device, Device.auto, "Where to train; auto picks CUDA, then MPS, then the CPU.", RUN),
    "precision": option_spec(Precision, Precision.fp32, PRECISION_HELP.replace("every sum", "the loss, weights"), RUN),
    "bf16": option_spec(bool, False, "The same as --precision bf16 (an old spelling).", RUN, "--bf16", hidden=True),
    "seed": option_spec(int, 1, "Random seed: initialisation, dropout, batch order, the held-out split.", RUN),
}


def train_config(**values: Any):
    """The TrainConfig of the training options' values."""
    from nlm.api.options import train_config as build

    return build(**{k: v.value if isinstance(v, Enum) else v for k, v in values.items()})


@dataclass(frozen=True)
class OptionGroup:
    """Options declared once and handed to a command as one typed value.

    Decorating a command whose signature has `<name>: SomeConfig` replaces that parameter with
    the group's options and calls the command with `<name>=build(**their values)`."""

    name: str
    build: Callable[..., Any]
    options: dict[str, tuple]
    helps: dict[str, str] = field(default_factory=dict)

    def with_defaults(self, *, helps: dict[str, str] | None = None, **defaults: Any) -> OptionGroup:
        options = {k: (a, defaults.get(k, d), o) for k, (a, d, o) in self.options.items()}
        return OptionGroup(self.name, self.build, options, {**self.helps, **(helps or {})})

    def without(self, *names: str) -> OptionGroup:
        """The group less some options: the command does not offer them, and `build` gets their defaults."""
        options = {k: v for k, v in self.options.items() if k not in names}
        return OptionGroup(self.name, self.build, options, self.helps)

    def _parameters(self) -> list[inspect.Parameter]:
        parameters = []
        for name, (annotation, default, option) in self.options.items():
            if name in self.helps:
                option = copy.copy(option)
                option.help = self.helps[name]
            parameters.append(
                inspect.Parameter(
                    name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=Annotated[annotation, option]
                )
            )
        return parameters

    def __call__(self, command: Callable) -> Callable:
        signature = inspect.signature(command, eval_str=True)
        own = [
            p.replace(kind=inspect.Parameter.KEYWORD_ONLY) for p in signature.parameters.values() if p.name != self.name
        ]
        parameters = own + self._parameters()

        @functools.wraps(command)
        def wrapper(**values: Any) -> Any:
            grouped = {name: values.pop(name) for name in self.options}
            return command(**values, **{self.name: self.build(**grouped)})

        del wrapper.__wrapped__  # Typer reads the signature below, not the command's
        wrapper.__signature__ = signature.replace(parameters=parameters)
        wrapper.__annotations__ = {p.name: p.annotation for p in parameters}
        return wrapper


TRAINING = OptionGroup("training", train_config, TRAINING_OPTIONS)


def given_options(ctx: typer.Context) -> set[str]:
    """The parameters set on the command line (or through their environment variable), not by default."""
    sources = {"COMMANDLINE", "ENVIRONMENT"}
    return {
        name for name in ctx.params if (source := ctx.get_parameter_source(name)) is not None and source.name in sources
    }


def resume_changes(ctx: typer.Context, training, *, runtime: tuple[str, ...] = ("resume", "quiet")) -> dict[str, Any]:
    """What a `--resume` was given besides the run: typed TrainConfig values, and other options as given."""
    from nlm.errors import ConfigError

    names = given_options(ctx) - set(runtime)
    if names & {"output", "force"}:
        raise ConfigError("--resume continues a run in its own folder; -o and --force start a new run")
    changes: dict[str, Any] = {}
    for name in names:
        if name == "save_every":
            changes.update(save_every=training.save_every, save_every_seconds=training.save_every_seconds)
        elif name in TRAINING_OPTIONS:
            name = "precision" if name == "bf16" else name  # the old spelling
            changes[name] = getattr(training, name)
        else:
            value = ctx.params[name]
            changes[name] = value.value if isinstance(value, Enum) else value
    return changes


def report_run(console, result, quiet: bool) -> None:
    """The line that ends a training command."""
    from nlm.api.training import TrainSummary

    if not quiet:
        console.print(TrainSummary.of(result).line())


def sizes(text: str | None, option: str = "--hidden") -> tuple[int, ...] | None:
    """`"120,84"` -> (120, 84); None stays None."""
    from nlm.api.options import sizes as parse

    return parse(text, option)
