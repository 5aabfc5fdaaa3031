"""`nlm vocab build` and `nlm vocab show`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from nlm.cli.console import err_console
from nlm.cli.lm_options import VOCAB_BUILD

app = typer.Typer(help="Build and inspect vocabularies.", no_args_is_help=True)


@app.command()
@VOCAB_BUILD
def build(
    files: Annotated[list[str] | None, typer.Argument(help="Training text files; '-' or nothing reads stdin.")] = None,
    output: Annotated[
        Path, typer.Option("-o", "--output", help="Vocabulary file to write (a .model for bpe/unigram).")
    ] = ...,
    check: Annotated[
        list[str] | None, typer.Option(help="Also report the OOV rate of this file (e.g. the validation split).")
    ] = None,
    vocab_config=None,
) -> None:
    """Build a vocabulary from training text only, and report its coverage."""
    from nlm.text.commands import build_vocabulary

    for line in build_vocabulary(files=files or ["-"], output=output, config=vocab_config, check=check or []):
        err_console.print(line)


@app.command()
def show(
    vocab: Annotated[Path, typer.Argument(help="A vocabulary file or sentencepiece .model.")],
    top: Annotated[int, typer.Option(help="How many symbols to list.")] = 20,
) -> None:
    """Summarise a vocabulary: level, size, settings, fingerprint and its first symbols."""
    from nlm.text.commands import describe_vocabulary

    for line in describe_vocabulary(vocab, top=top):
        typer.echo(line)
