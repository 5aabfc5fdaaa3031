"""`nlm neighbours`: the nearest words of a language model's input embeddings, and analogies."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from nlm.cli.console import err_console


def neighbours(
    words: Annotated[
        list[str] | None,
        typer.Argument(help="Words to look up; none reads them from stdin (whitespace-separated).", show_default=False),
    ] = None,
    model: Annotated[
        str,
        typer.Option(
            "-m", "--model", help="Checkpoint file, or a run folder (its best.pt, else last.pt).", show_default=False
        ),
    ] = ...,
    top: Annotated[int, typer.Option(min=1, help="Neighbours per word.")] = 10,
    analogy: Annotated[
        tuple[str, str, str] | None,
        typer.Option(help="A B C: the words nearest to B - A + C (A is to B as C is to ...).", show_default=False),
    ] = None,
) -> None:
    """The nearest words by cosine of the input embeddings.

    Nearest first.  Stdout: rows of `word<TAB>neighbour<TAB>cosine`, in input order; an unknown word is
    a warning on stderr.  Subword and char models use the mean of a word's pieces."""
    from nlm.errors import ConfigError
    from nlm.io.tables import RowWriter
    from nlm.lm.loading import load_language_model
    from nlm.lm.neighbours import analogy as solve_analogy
    from nlm.lm.neighbours import nearest_words

    if analogy and words:
        raise ConfigError("give words or --analogy A B C, not both")
    lm = load_language_model(model, device="cpu")
    results = [solve_analogy(lm, *analogy, top=top)] if analogy else nearest_words(lm, words or _stdin_words(), top=top)
    writer = RowWriter(sys.stdout)
    for result in results:
        for word in result.unknown:
            err_console.print(f"warning: {word!r} is not in the vocabulary of {lm.path}; skipped")
        for neighbour, cosine in result.found:
            writer.write({"word": result.query, "neighbour": neighbour, "cosine": cosine})


def _stdin_words():
    from nlm.errors import ConfigError

    if sys.stdin.isatty():
        raise ConfigError("give words to look up, or pipe them in: echo 'king queen' | nlm neighbours -m RUN")
    for line in sys.stdin:
        yield from line.split()


def register(app: typer.Typer) -> None:
    app.command()(neighbours)
