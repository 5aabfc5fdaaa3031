"""`nlm bleu`: corpus or sentence BLEU and chrF through sacrebleu, with its signatures."""

from __future__ import annotations

from typing import Annotated

import typer

from nlm.cli.console import err_console
from nlm.cli.options import JsonFlag, format_option, wants_json
from nlm.io.tables import jsonl_line


def bleu(
    hypothesis: Annotated[
        str, typer.Argument(help="System output, one sentence per line ('-' for stdin).", show_default=False)
    ],
    references: Annotated[
        list[str], typer.Argument(help="One or more reference files, parallel to HYPOTHESIS.", show_default=False)
    ],
    metrics: Annotated[str, typer.Option(help="Comma-separated: bleu, chrf, chrf++, ter.")] = "bleu",
    tokenize: Annotated[
        str | None, typer.Option(help="sacrebleu's BLEU tokenizer: 13a, intl, zh, char, none, ... [default: 13a].")
    ] = None,
    lowercase: Annotated[bool, typer.Option("--lowercase", "-lc", help="Case-insensitive scores.")] = False,
    sentence: Annotated[
        bool,
        typer.Option(
            "--sentence", help="One line of scores per hypothesis (BLEU with effective order, as sacrebleu does)."
        ),
    ] = False,
    output_format: Annotated[
        str,
        format_option(
            "text",
            "json",
            help="text: sacrebleu's lines (tab-separated scores with --sentence); "
            "json: one object per metric, or per sentence.",
        ),
    ] = "text",
    old_json: JsonFlag = False,
) -> None:
    """BLEU, chrF or TER of HYPOTHESIS through sacrebleu.

    The same numbers as the `sacrebleu` command, with its signatures.

    Corpus mode writes one line per metric in sacrebleu's text format,
    `BLEU|nrefs:1|case:mixed|eff:no|tok:13a|smooth:exp|version:... = 22.3 ...`.
    With --sentence, one tab-separated line of scores per hypothesis (the signatures go to stderr).
    Exit 65: files of different lengths, an empty hypothesis file, or undecodable text;
    exit 66: a missing file; exit 2: an unknown metric or tokenizer.
    """
    from nlm.eval.bleu import (
        corpus_scores,
        parse_metrics,
        read_parallel,
        sentence_scores,
    )

    as_json = wants_json(output_format, old_json)
    hyps, refs = read_parallel(hypothesis, references)
    options = dict(metrics=parse_metrics(metrics), tokenize=tokenize, lowercase=lowercase)
    if not sentence:
        for score in corpus_scores(hyps, refs, **options):
            typer.echo(jsonl_line(score.to_dict()) if as_json else score.line())
        return
    for i, scores in enumerate(sentence_scores(hyps, refs, **options)):
        typer.echo(
            jsonl_line({s.metric: round(s.score, 4) for s in scores})
            if as_json
            else "\t".join(f"{s.score:.4f}" for s in scores)
        )
        if i == len(hyps) - 1:
            err_console.print("\n".join(f"{s.name}|{s.signature}" for s in scores), markup=False)


def register(app: typer.Typer) -> None:
    app.command()(bleu)
