"""What every training command (`nlm train`, `nlm vision train`, `nlm autoencoder train`) shares.

The run folder's options, the trainer's options as one group (`TRAINING`, built into a
TrainConfig), what a `--resume` may be given, and the body that starts or resumes the run
and says how it ended.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer

from nlm.api.options import train_config
from nlm.cli.console import err_console
from nlm.cli.option_groups import OptionGroup, given_options, option_spec
from nlm.cli.options import OPTIM, RUN, Anneal, Device, Optimizer, Precision, Schedule

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


TRAINING_OPTIONS: dict[str, tuple] = {
    "optimizer": option_spec(
        Optimizer,
        "sgd",
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
        "lr x --lr-factor after every epoch from --decay-start on; steps: after each of --milestones; budget: "
        "lr falls with the fraction of the budget spent (--max-time, --max-steps or --epochs, whichever ends the "
        "run first), so the run ends annealed; none [default: plateau; none with ntasgd].",
        OPTIM,
    ),
    "anneal": option_spec(
        Anneal | None, None, "budget: how the rate falls: linear or cosine [default: linear].", OPTIM
    ),
    "lr_floor": option_spec(
        float | None, None, "budget: the rate at the end, as a fraction of --lr [default: 0].", OPTIM
    ),
    "warmup": option_spec(
        float | None,
        None,
        "budget: the fraction of the budget over which the rate first rises from 0 to --lr [default: 0].",
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
    "epochs": option_spec(int | None, None, "", RUN),  # help: epochs_help(kind)
    "max_steps": option_spec(
        int | None, None, "Stop after this many optimizer steps in all (a budget: see --epochs).", RUN
    ),
    "max_time": option_spec(
        float | None, None, "Stop after this many seconds of training in all (a budget: see --epochs).", RUN
    ),
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
    "device": option_spec(Device, "auto", "Where to train; auto picks CUDA, then MPS, then the CPU.", RUN),
    "precision": option_spec(
        Precision,
        "fp32",
        "fp32; bf16 (autocast: products and recurrent cells in bfloat16; weights, optimizer state and the loss "
        "in float32); auto: bf16 where the hardware does it natively (CUDA with bf16, a CPU with AMX or "
        "AVX512-BF16), else fp32.  config.json records which.",
        RUN,
    ),
    "bf16": option_spec(bool, False, "The same as --precision bf16 (an old spelling).", RUN, "--bf16", hidden=True),
    "seed": option_spec(int, 1, "Random seed: initialisation, dropout, batch order, the held-out split.", RUN),
}


def epochs_help(kind: str, what: str = "Passes over the training data") -> str:
    """--epochs's help for a kind of model: its default, and the budget rule (nlm.train.config.DEFAULT_EPOCHS)."""
    from nlm.train.config import DEFAULT_EPOCHS

    return (
        f"{what} [default: {DEFAULT_EPOCHS[kind]}; with --max-time or --max-steps, "
        "no limit: the run trains until its budget runs out]."
    )


TRAINING = OptionGroup("training", train_config, TRAINING_OPTIONS, {"epochs": epochs_help("lm")})


def resume_changes(ctx: typer.Context, training, *, run_dir: Path, configs: tuple = ()) -> dict[str, Any]:
    """What a `--resume` was given besides the run: typed values (of the TrainConfig, or of one of `configs`
    built from the same options), and other options as given.

    `-o` naming the run's own folder is no change: the command that started the run, with --resume added,
    continues it (and the library drops the options given with the values the run already has)."""
    from nlm.errors import ConfigError

    names = given_options(ctx) - {"resume", "quiet"}
    if "force" in names:
        raise ConfigError("--force starts a new run; --resume continues the one in its folder")
    if "output" in names:
        if Path(ctx.params["output"]).resolve() != Path(run_dir).resolve():
            raise ConfigError(
                f"--resume continues the run in {run_dir}, in its own folder; -o {ctx.params['output']} names "
                "another (leave -o out, or copy the run folder first)"
            )
        names.discard("output")
    from nlm.api.options import typed_changes

    return typed_changes({name: ctx.params[name] for name in names}, (training, *configs))


def train_or_resume(
    ctx: typer.Context,
    job_type,
    new_job: Callable[[], Any],
    *,
    output: Path | None,
    resume: Path | None,
    force: bool,
    quiet: bool,
    training,
    configs: tuple = (),
) -> None:
    """The body of a training command: resume the run in --resume, or start `new_job()` in -o; then say how it ended.
    `configs`: what the command built from its options besides `training`, for the typed values of a resume."""
    from nlm.errors import ConfigError

    if resume is not None:
        changes = resume_changes(ctx, training, run_dir=resume, configs=configs)
        result = job_type.resume(run_dir=resume, changes=changes, console=err_console, quiet=quiet)
    elif output is None:
        raise ConfigError(f"{job_type.command} needs -o RUN_DIR (or --resume RUN_DIR)")
    else:
        result = new_job().start(output=output, train=training, force=force, console=err_console, quiet=quiet)
    report_ending(result, quiet)


def report_ending(result, quiet: bool) -> None:
    """The line that ends a training command, from its RunResult (or `nlm.train`'s TrainSummary)."""
    if not quiet:
        err_console.print(result.stop_line())
