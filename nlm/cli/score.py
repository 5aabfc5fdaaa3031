"""`nlm score` and `nlm perplexity`: how likely a trained language model finds each line, and a whole text."""

from __future__ import annotations

from typing import Annotated

import typer

from nlm.cli.adapt_options import tuned, with_adaptation
from nlm.cli.console import err_console
from nlm.cli.options import (
    Device,
    DeviceOption,
    JsonFlag,
    LogBase,
    Mode,
    ModelPath,
    Precision,
    PrecisionOption,
    format_option,
    wants_json,
)
from nlm.io.tables import RowWriter, jsonl_line

BatchOption = Annotated[int, typer.Option(min=1, help="Sentences per batch, sorted by length (1: one at a time).")]
RowsOption = Annotated[
    int | None,
    typer.Option(
        min=1,
        help="--protocol stream: the parallel rows the text is cut into [default: the model's validation rows; "
        "1 with --dynamic-eval].",
        show_default=False,
    ),
]


ResultOutput = Annotated[
    str | None,
    typer.Option(
        "-o",
        "--output",
        help="Write the output to this file (through a temporary file, so it appears whole) instead of stdout; "
        "needed under torchrun, where each process scores its share of the lines.",
        show_default=False,
    ),
]


def load_lm(model: str, device: Device | str, precision: Precision = "fp32"):
    """The language model of `-m/--model` (an `nlm.LanguageModel`), on the device of `--device`, computing in
    `--precision`."""
    from nlm.api import load

    return load(model, device=device, precision=precision)


def threads_given(ctx: typer.Context) -> int | None:
    """`nlm --threads N`, when it was given (under torchrun each process otherwise runs one thread)."""
    return ctx.find_root().params.get("threads")


@with_adaptation
def score(
    ctx: typer.Context,
    files: Annotated[
        list[str] | None,
        typer.Argument(help="Text files, one sentence per line; none or '-' reads stdin.", show_default=False),
    ] = None,
    model: ModelPath = ...,
    output_format: Annotated[
        str, format_option("tsv", "json", help="One row per line: tab-separated values, or a JSON object.")
    ] = "tsv",
    with_text: Annotated[
        bool,
        typer.Option("--with-text", help="Add the sentence to each row (TSV escapes tab, newline, CR and backslash)."),
    ] = False,
    base: Annotated[
        LogBase, typer.Option(help="Base of the log-probs written (perplexity does not depend on it).")
    ] = "e",
    per_token: Annotated[
        bool, typer.Option("--per-token", help="One row per scored token: sentence, position, token, log-prob.")
    ] = False,
    per_word: Annotated[
        bool, typer.Option("--per-word", help="One row per word, its char or subword pieces' log-probs summed.")
    ] = False,
    bos_eos: Annotated[
        bool,
        typer.Option(
            "--bos-eos/--no-bos-eos",
            help="Condition the first token on the start symbol and score <eos>; off: the first token is context only.",
        ),
    ] = True,
    batch_size: BatchOption = 64,
    unbuffered: Annotated[
        bool,
        typer.Option(
            "--unbuffered",
            "-u",
            help="Write and flush each row as soon as its line is scored; never wait for more input.",
        ),
    ] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No corpus summary on stderr.")] = False,
    output: ResultOutput = None,
    device: DeviceOption = "auto",
    precision: PrecisionOption = "fp32",
    adaptation: dict | None = None,
) -> None:
    """Score each line: log-prob, tokens, OOVs, perplexity.

    Each line is a sentence scored from a fresh state: log P(w1…wn <eos> | start).

    One row per input line, in input order: logprob, tokens (<eos> included), oovs, ppl.
    The start symbol is what the model saw before every sentence in training: <eos> for a
    stream-trained model, <bos> for a sentence-trained one (the signature names it).
    Unknown symbols are scored as <unk> and counted.  The corpus summary on stderr gives
    perplexity with KenLM's definitions, including and excluding OOVs.

    Defined behaviour: an empty line is scored as <eos> alone; an input without a single line
    is exit 65 ("nothing to score").  Exit 66: a missing input file or checkpoint.  Exit 65: an undecodable or binary
    line (the lines before it are written first), or a checkpoint that is not a language model.

    With --cache or --dynamic-eval each line is its own document (its cache and what dynamic
    evaluation learns start afresh), unless --dyn-carry; dynamic evaluation scores the lines one
    at a time, in input order.
    """
    from nlm.api.shares import scoring_share
    from nlm.io.text import display_name
    from nlm.lm.scoring import CorpusSummary

    name = display_name(files[0]) if files and len(files) == 1 else "the input"
    with scoring_share(
        files or [], output=output, totals=CorpusSummary, threads=threads_given(ctx), line_buffered=unbuffered,
        console=err_console,
    ) as share:  # fmt: skip
        lm = load_lm(model, share.device(device), precision)
        adaptation = tuned(lm, adaptation or {}, share, protocol="sentence", batch_size=batch_size)
        rows = _row_maker(lm, base=base, with_text=with_text, per_token=per_token, per_word=per_word, bos_eos=bos_eos)
        share.result, writer = CorpusSummary(), RowWriter(share.stream, fmt=output_format, flush=unbuffered)
        for result in share.scores(
            lm.iter_scores, batch_size=batch_size, bos_eos=bos_eos, per_token=per_token or per_word,
            eager=unbuffered, name=name, **adaptation,
        ):  # fmt: skip
            share.result.add(result)
            for row in rows(result):
                writer.write(row)
    if not quiet and share.lead:
        _tell(share.total.describe(base=base, signature=lm.score_signature(bos_eos=bos_eos, **adaptation)))


@with_adaptation
def perplexity(
    ctx: typer.Context,
    file: Annotated[str, typer.Argument(help="Text, one sentence per line ('-' for stdin).", show_default=False)],
    model: ModelPath = ...,
    protocol: Annotated[
        Mode,
        typer.Option(
            help="stream: the training-validation protocol (one stream, state carried); "
            "sentence: each line from a fresh state, as `nlm score`."
        ),
    ] = "stream",
    output_format: Annotated[str, format_option("text", "json", help="A text line, or one JSON object.")] = "text",
    old_json: JsonFlag = False,
    batch_size: BatchOption = 64,
    rows: RowsOption = None,
    output: ResultOutput = None,
    device: DeviceOption = "auto",
    precision: PrecisionOption = "fp32",
    adaptation: dict | None = None,
) -> None:
    """Corpus perplexity, bits per byte and word perplexity of a text.

    Printed with the protocol that produced them.  Bits per byte and word perplexity compare models
    whatever their vocabularies (word, subword or char).

    Bits per byte: the total -log2 P over the text's UTF-8 bytes (a newline per line end).  Word
    perplexity: exp(total -ln P / words), the words being whitespace-separated plus one end per
    line.  Both cover the predicted tokens (the stream protocol's context-only tokens left out),
    OOVs counted at P(<unk>) as in the perplexity.

    Exit 66: a missing file or checkpoint; exit 65: an empty, undecodable or binary file,
    or a checkpoint that is not a language model.

    --cache and --dynamic-eval adapt the model to the text as it is read (the stream protocol: one
    document; --protocol sentence: each line its own, unless --dyn-carry).
    """
    from nlm.api import Perplexity
    from nlm.api.shares import scoring_share

    with scoring_share(
        [file], output=output, rows=False, totals=Perplexity, threads=threads_given(ctx), console=err_console
    ) as share:
        lm = load_lm(model, share.device(device), precision)
        adaptation = tuned(lm, adaptation or {}, share, protocol=protocol, rows=rows, batch_size=batch_size)
        share.result = share.perplexity(
            lm.perplexity, file, protocol=protocol, batch_size=batch_size, rows=rows, **adaptation
        )
    share.publish(_perplexity_line(share.total, as_json=wants_json(output_format, old_json)))


def _perplexity_line(result, *, as_json: bool) -> str:
    record = {
        "name": "PPL",
        "score": round(result.ppl, 4),
        "loss": round(result.loss, 6),
        "tokens": result.tokens,
        "text_tokens": result.text_tokens,
        "oovs": result.oovs,
        "bits_per_byte": result.bits_per_byte,
        "bytes": result.bytes,
        "word_ppl": result.word_ppl,
        "words": result.words,
        "protocol": result.protocol,
        "description": result.description,
        "signature": result.signature,
    }
    return (
        jsonl_line(record)
        if as_json
        else f"PPL|{result.signature} = {result.ppl:.4f} (loss {result.loss:.4f} nats/token, "
        f"{result.tokens:,} predicted tokens, {result.oovs:,} OOVs; {result.description}); "
        f"bits per byte {result.bits_per_byte:.4f} ({result.bytes:,} bytes), "
        f"word perplexity {result.word_ppl:.4f} ({result.words:,} words)"
    ) + "\n"


# -- helpers: presentation only ----------------------------------------------------------------


def _tell(lines: list[str]) -> None:
    for line in lines:
        err_console.print(line, markup=False)


def _row_maker(lm, *, base: str, with_text: bool, per_token: bool, per_word: bool, bos_eos: bool):
    """A function from one SentenceScore to its output rows."""
    from nlm.errors import ConfigError
    from nlm.lm.config import LOG_BASES

    if per_token and per_word:
        raise ConfigError("choose one of --per-token and --per-word")
    scale = LOG_BASES[base]
    if per_token or per_word:
        return lambda s: [
            {"sentence": s.index + 1, "position": t.position, "token": t.token, "logprob": t.logprob / scale}
            for t in lm.tokens_of(s, bos_eos=bos_eos, words=per_word)
        ]
    text = (lambda s: {"text": s.text}) if with_text else (lambda s: {})
    return lambda s: [{"logprob": s.logprob / scale, "tokens": s.tokens, "oovs": s.oovs, "ppl": s.ppl, **text(s)}]


def register(app: typer.Typer) -> None:
    for command in (score, perplexity):
        app.command()(command)
