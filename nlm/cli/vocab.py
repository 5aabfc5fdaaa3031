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
    """Build a vocabulary from training text; report coverage."""
    from nlm.text.commands import build_vocabulary

    for line in build_vocabulary(files=files or ["-"], output=output, config=vocab_config, check=check or []):
        err_console.print(line)


@app.command()
def show(
    vocab: Annotated[Path, typer.Argument(help="A vocabulary file or sentencepiece .model.")],
    top: Annotated[
        int, typer.Option(help="How many symbols to list after the special ones (whose counts the summary gives).")
    ] = 20,
) -> None:
    """Summarise a vocabulary and list its first symbols.

    Level, size, settings, fingerprint.
    The special symbols (ids 0-3) are named in the summary, and <unk> and <eos>'s counts given there, so the
    list starts at id 4: the --top most frequent symbols of a word or char vocabulary."""
    from nlm.text.commands import describe_vocabulary

    for line in describe_vocabulary(vocab, top=top):
        typer.echo(line)
