"""`nlm next`: the K most likely next tokens after each context line, with their log-probabilities."""

from __future__ import annotations

import math
import sys
from typing import Annotated

import typer

from nlm.cli.console import err_console
from nlm.cli.options import DeviceOption, ModelPath, PrecisionOption, format_option
from nlm.cli.score import load_lm
from nlm.io.tables import RowWriter


def next_command(
    contexts: Annotated[
        list[str] | None,
        typer.Argument(
            help="Contexts to continue; none or '-' reads them from stdin, one per line.", show_default=False
        ),
    ] = None,
    model: ModelPath = ...,
    top: Annotated[int, typer.Option("--top", min=1, help="How many of the most likely next tokens to list.")] = 10,
    start: Annotated[
        bool,
        typer.Option(
            "--start/--no-start",
            help="Put the start symbol `nlm score` puts before a sentence before the context; off: the context alone.",
        ),
    ] = True,
    output_format: Annotated[
        str, format_option("tsv", "json", help="Tab-separated rows under a header, or JSON objects.")
    ] = "tsv",
    batch_size: Annotated[int, typer.Option(min=1, help="Contexts per forward pass.")] = 64,
    device: DeviceOption = "auto",
    precision: PrecisionOption = "fp32",
) -> None:
    """The most likely next tokens after each context.

    The --top most likely tokens of the next-token distribution, most likely first.

    One row per token: context_index (1-based), rank, token, logprob (natural log), prob.  The
    probabilities are the model's softmax over its whole vocabulary, full or adaptive head alike.
    For char and subword models the tokens are pieces, and the header says so (`piece` for
    `token`).  A context symbol outside the vocabulary is read as <unk>, with one warning.
    Exit 65: no context at all, or an empty one with --no-start (nothing to condition on).
    """
    from nlm.io.text import read_lines

    lines = read_lines("-", allow_empty=True) if contexts in (None, ["-"]) else contexts
    lm = load_lm(model, device, precision)
    unit = "token" if lm.vocab.level == "word" else "piece"
    writer = RowWriter(sys.stdout, fmt=output_format)
    warned = False
    for result in lm.iter_next_tokens(lines, k=top, start=start, batch_size=batch_size):
        if result.index == 0 and output_format == "tsv":
            sys.stdout.write("\t".join(("context_index", "rank", unit, "logprob", "prob")) + "\n")
        if result.oovs and not warned:
            err_console.print(
                f"warning: context {result.index + 1} has symbols outside the vocabulary, read as <unk> "
                "(later contexts with them are not named)"
            )
            warned = True
        for rank, (token, logprob) in enumerate(result.tokens, start=1):
            writer.write(
                {
                    "context_index": result.index + 1,
                    "rank": rank,
                    unit: token,
                    "logprob": logprob,
                    "prob": math.exp(logprob),
                }
            )


def register(app: typer.Typer) -> None:
    app.command("next")(next_command)
