"""`nlm train`: train an RNN, LSTM or GRU language model into a run folder, or resume one."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from nlm.cli.console import err_console
from nlm.cli.lm_options import LM_DATA, RNN_MODEL, VOCAB_BUILD
from nlm.cli.option_groups import given_options
from nlm.cli.options import DATA, RUN
from nlm.cli.recipes import RecipeName, with_recipe
from nlm.cli.training import TRAINING, Force, Output, Quiet, Resume, report_ending, resume_changes

Finetune = Annotated[
    bool,
    typer.Option(
        "--finetune",
        help="With --resume and an NT-ASGD run: restart averaged SGD from best.pt's weights "
        "(AWD-LSTM's fine-tuning) until validation stalls (--nonmono) or the run's limits, "
        "granted again, run out.",
        rich_help_panel=RUN,
    ),
]


@with_recipe
@TRAINING.with_defaults(
    helps={"lr": "Learning rate [default: SGD 20 lstm, 10 gru, 2 rnn-tanh, 1 rnn-relu; Adam 2e-3]."}
)
@RNN_MODEL
@LM_DATA
@VOCAB_BUILD
def train(
    ctx: typer.Context,
    train: Annotated[
        str | None,
        typer.Option("--train", help="Training text, one sentence per line ('-' for stdin).", rich_help_panel=DATA),
    ] = None,
    valid: Annotated[
        str | None,
        typer.Option(
            "--valid",
            help="Validation text: picks best.pt, drives the LR schedule and early stopping.",
            rich_help_panel=DATA,
        ),
    ] = None,
    vocab: Annotated[
        str | None,
        typer.Option(
            help="Vocabulary from `nlm vocab build`; without it one is built from --train.", rich_help_panel=DATA
        ),
    ] = None,
    output: Output = None,
    resume: Resume = None,
    finetune: Finetune = False,
    recipe: RecipeName = None,
    force: Force = False,
    quiet: Quiet = False,
    cache_dir: Annotated[
        Path | None,
        typer.Option(help="Encoded-corpus cache [default: $NLM_CACHE_DIR or ~/.cache/nlm].", rich_help_panel=RUN),
    ] = None,
    vocab_config=None,
    data=None,
    model=None,
    training=None,
) -> None:
    """Train a language model, or resume one.

    Trains into the run folder -o; with --resume RUN, continues that run where its last.pt stopped."""
    from nlm.api.training import resume_training, start_training

    if resume is not None:
        changes = resume_changes(ctx, training, run_dir=resume, configs=(vocab_config, data, model))
        summary = resume_training(resume, changes=changes, quiet=quiet, console=err_console)
    else:
        summary = start_training(
            train=train,
            output=output,
            valid=valid,
            vocab=vocab,
            cache_dir=cache_dir,
            force=force,
            quiet=quiet,
            finetune=finetune,
            building=sorted(given_options(ctx) & set(VOCAB_BUILD.options)),
            vocab_config=vocab_config,
            data=data,
            model=model,
            training=training.replace(recipe=recipe),
            console=err_console,
        )
    report_ending(summary, quiet)


def register(app: typer.Typer) -> None:
    app.command()(train)
