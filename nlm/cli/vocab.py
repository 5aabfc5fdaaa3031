"""`nlm vocab build` and `nlm vocab show`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from nlm.cli.console import err_console
from nlm.cli.options import Level

app = typer.Typer(help="Build and inspect vocabularies.", no_args_is_help=True)


@app.command()
def build(
    files: Annotated[list[str] | None, typer.Argument(help="Training text files; '-' or nothing reads stdin.")] = None,
    output: Annotated[Path, typer.Option("-o", "--output", help="Vocabulary file to write (a .model for bpe/unigram).")] = ...,
    level: Annotated[Level, typer.Option(help="Symbols: whitespace words, characters, or sentencepiece subwords.")] = Level.word,
    vocab_size: Annotated[int | None, typer.Option("--vocab-size", "--size", help="Keep the K most frequent symbols besides the 4 specials (required for bpe/unigram).")] = None,
    min_count: Annotated[int, typer.Option(help="Drop word/char symbols seen fewer times.")] = 1,
    lowercase: Annotated[bool, typer.Option(help="Fold case before counting (and when encoding).")] = False,
    character_coverage: Annotated[float, typer.Option(help="bpe/unigram: share of characters the alphabet must cover (1.0 for small alphabets); rarer ones become <unk>.")] = 0.9995,
    check: Annotated[list[str] | None, typer.Option(help="Also report the OOV rate of this file (e.g. the validation split).")] = None,
) -> None:
    """Build a vocabulary from training text only, and report its coverage."""
    from nlm.text.build import VocabConfig
    from nlm.text.commands import build_vocabulary

    config = VocabConfig(level=level.value, size=vocab_size, min_count=min_count, lowercase=lowercase,
                         character_coverage=character_coverage)
    for line in build_vocabulary(files=files or ["-"], output=output, config=config, check=check or []):
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
