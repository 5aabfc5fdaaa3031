"""`nlm score`, `nlm perplexity`, `nlm generate` and `nlm evaluate`: a trained language model at work."""

from __future__ import annotations

import secrets
import sys
from enum import Enum
from typing import Annotated

import typer

from nlm.cli.console import err_console
from nlm.cli.options import Device, DeviceOption, Format, ModelPath, format_option

GEN = "Generation"


class LogBase(str, Enum):
    e = "e"
    two = "2"
    ten = "10"


class Protocol(str, Enum):
    stream = "stream"
    sentence = "sentence"


JsonFlag = Annotated[bool, typer.Option("--json", hidden=True, help="The same as --format json.")]
BatchOption = Annotated[int, typer.Option(min=1, help="Sentences per batch, sorted by length (1: one at a time).")]
MaxTokens = Annotated[
    int, typer.Option(min=1, help="New tokens per sample at most; a sample ends earlier at <eos>.", rich_help_panel=GEN)
]
Temperature = Annotated[
    float, typer.Option(min=0.0, help="Divide the logits by this before sampling (0: greedy).", rich_help_panel=GEN)
]
TopK = Annotated[
    int,
    typer.Option(min=0, help="Sample among the k most likely tokens only (0: off; 1: greedy).", rich_help_panel=GEN),
]
TopP = Annotated[
    float,
    typer.Option(
        help="Sample from the smallest set of tokens with this much probability (1: off).", rich_help_panel=GEN
    ),
]
Seed = Annotated[
    int | None,
    typer.Option(
        help="Seed of the sampler, for reproducible samples [default: a random one, printed].", rich_help_panel=GEN
    ),
]


def _load(model: str, device: Device):
    from nlm.lm.loading import load_language_model
    from nlm.runtime import pick_device

    return load_language_model(model, device=pick_device(device.value))


def score(
    files: Annotated[
        list[str] | None,
        typer.Argument(help="Text files, one sentence per line; none or '-' reads stdin.", show_default=False),
    ] = None,
    model: ModelPath = ...,
    format: Annotated[
        Format, format_option(Format.tsv, Format.json, help="One row per line: tab-separated values, or a JSON object.")
    ] = Format.tsv,
    with_text: Annotated[
        bool,
        typer.Option("--with-text", help="Add the sentence to each row (TSV escapes tab, newline, CR and backslash)."),
    ] = False,
    base: Annotated[
        LogBase, typer.Option(help="Base of the log-probs written (perplexity does not depend on it).")
    ] = LogBase.e,
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
    device: DeviceOption = Device.auto,
) -> None:
    """Score each line as a sentence from a fresh state: log P(w1…wn <eos> | start).

    One row per input line, in input order: logprob, tokens (<eos> included), oovs, ppl.
    The start symbol is what the model saw before every sentence in training: <eos> for a
    stream-trained model, <bos> for a sentence-trained one (the signature names it).
    Unknown symbols are scored as <unk> and counted.  The corpus summary on stderr gives
    perplexity with KenLM's definitions, including and excluding OOVs.

    Defined behaviour: an empty line is scored as <eos> alone; an input without a single line
    is exit 65 ("nothing to score").  Exit 66: a missing input file or checkpoint.  Exit 65: an undecodable or binary
    line (the lines before it are written first), or a checkpoint that is not a language model.
    """
    from nlm.io.text import display_name, read_lines
    from nlm.lm.scoring import CorpusSummary, protocol_signature, score_sentences

    lm = _load(model, device)
    rows = _row_maker(lm, base=base.value, with_text=with_text, per_token=per_token, per_word=per_word, bos_eos=bos_eos)
    lines = (line for path in (files or ["-"]) for line in read_lines(path, allow_empty=True))
    summary, writer = CorpusSummary(), _writer(format, unbuffered)
    name = display_name(files[0]) if files and len(files) == 1 else "the input"
    for result in score_sentences(
        lm, lines, batch_size=batch_size, bos_eos=bos_eos, per_token=per_token or per_word, eager=unbuffered, name=name
    ):
        summary.add(result)
        for row in rows(result):
            writer.write(row)
    if not quiet:
        _tell(summary.describe(base=base.value, signature=protocol_signature(lm, bos_eos=bos_eos)))


def perplexity(
    file: Annotated[str, typer.Argument(help="Text, one sentence per line ('-' for stdin).", show_default=False)],
    model: ModelPath = ...,
    protocol: Annotated[
        Protocol,
        typer.Option(
            help="stream: the training-validation protocol (one stream, state carried); sentence: each line from a fresh state, as `nlm score`."
        ),
    ] = Protocol.stream,
    format: Annotated[
        Format, format_option(Format.text, Format.json, help="A text line, or one JSON object.")
    ] = Format.text,
    json: JsonFlag = False,
    batch_size: BatchOption = 64,
    device: DeviceOption = Device.auto,
) -> None:
    """Corpus perplexity, printed with the protocol that produced it.

    Exit 66: a missing file or checkpoint; exit 65: an empty, undecodable or binary file,
    or a checkpoint that is not a language model.
    """
    from nlm.lm.perplexity import corpus_perplexity

    lm = _load(model, device)
    result = corpus_perplexity(lm, file, protocol=protocol.value, batch_size=batch_size)
    signature = f"protocol:{result.protocol}|{lm.signature}"
    record = {
        "name": "PPL",
        "score": round(result.ppl, 4),
        "loss": round(result.loss, 6),
        "tokens": result.tokens,
        "text_tokens": result.text_tokens,
        "oovs": result.oovs,
        "protocol": result.protocol,
        "description": result.description,
        "signature": signature,
    }
    typer.echo(
        _json_line(record)
        if json or format is Format.json
        else f"PPL|{signature} = {result.ppl:.4f} (loss {result.loss:.4f} nats/token, "
        f"{result.tokens:,} predicted tokens, {result.oovs:,} OOVs; {result.description})"
    )


def generate(
    model: ModelPath = ...,
    prompt: Annotated[str | None, typer.Option(help="Text to continue.")] = None,
    prompts: Annotated[str | None, typer.Option(help="File of prompts, one per line ('-' for stdin).")] = None,
    greedy: Annotated[
        bool, typer.Option("--greedy", help="Always take the most likely token.", rich_help_panel=GEN)
    ] = False,
    temperature: Temperature = 1.0,
    top_k: TopK = 0,
    top_p: TopP = 1.0,
    max_tokens: MaxTokens = 50,
    num: Annotated[
        int, typer.Option(min=1, help="Samples per prompt, generated as one batch.", rich_help_panel=GEN)
    ] = 1,
    seed: Seed = None,
    format: Annotated[
        Format,
        format_option(Format.text, Format.json, help="text: the prompt and its continuation; json: with the details."),
    ] = Format.text,
    device: DeviceOption = Device.auto,
) -> None:
    """Continue prompts: one output line per sample, in prompt order, the prompt followed by its continuation.

    Without --prompt or --prompts, generates from the start symbol alone.  Each sample
    stops at <eos> or after --max-tokens.  A prompt symbol outside the vocabulary is read
    as <unk>, with a warning.  Exit 2: both --prompt and --prompts; exit 66: a missing file.
    """
    from nlm.lm.generation import generate as generate_samples

    texts = _prompts(prompt, prompts)
    config = _sampling(
        greedy=greedy, temperature=temperature, top_k=top_k, top_p=top_p, max_tokens=max_tokens, num=num, seed=seed
    )
    lm = _load(model, device)
    writer = _writer(Format.json, flush=True) if format is Format.json else None
    for sample in generate_samples(lm, texts, config=config):
        _warn_oovs(sample)
        if writer is None:
            typer.echo(sample.text)
        else:
            writer.write(
                {
                    "prompt": sample.prompt_index + 1,
                    "sample": sample.sample_index + 1,
                    "text": sample.text,
                    "continuation": sample.continuation,
                    "tokens": len(sample.ids),
                    "ended": sample.ended,
                }
            )


def evaluate(
    model: ModelPath = ...,
    prompts: Annotated[str | None, typer.Option(help="Prompts, one per line.", show_default=False)] = None,
    refs: Annotated[
        str | None,
        typer.Option(
            help="References, one per prompt: the whole sentence or just its continuation.", show_default=False
        ),
    ] = None,
    task: Annotated[
        str | None,
        typer.Option(
            help="Instead: the accuracy on the marked tokens of a memory task (`nlm corpus copy|recall` folder, its test.txt).",
            show_default=False,
        ),
    ] = None,
    metrics: Annotated[str, typer.Option(help="Comma-separated: bleu, chrf, chrf++, ter.")] = "bleu,chrf",
    tokenize: Annotated[str | None, typer.Option(help="sacrebleu's BLEU tokenizer [default: 13a].")] = None,
    sample: Annotated[
        bool,
        typer.Option(
            "--sample/--greedy", help="Sample the continuations instead of greedy decoding.", rich_help_panel=GEN
        ),
    ] = False,
    temperature: Temperature = 1.0,
    top_k: TopK = 0,
    top_p: TopP = 1.0,
    max_tokens: MaxTokens = 50,
    seed: Seed = None,
    hyps: Annotated[
        str | None, typer.Option(help="Also write the generated lines (prompt + continuation) to this file.")
    ] = None,
    format: Annotated[
        Format, format_option(Format.text, Format.json, help="Text lines, or one JSON object per metric.")
    ] = Format.text,
    json: JsonFlag = False,
    device: DeviceOption = Device.auto,
) -> None:
    """How good is this model's output?  Continue each prompt, score the continuations with BLEU
    and chrF against the references, and give the references' perplexity under the model; or,
    with --task DIR, the accuracy on the marked tokens of a memory task.

    A reference that starts with its prompt is compared without it, so words copied from the
    prompt never count.  Exit 65: prompts and references of different lengths.
    """
    from nlm.errors import ConfigError
    from nlm.io.text import read_lines
    from nlm.lm.generation import evaluate_generation

    json = json or format is Format.json
    if task is not None:
        return _task_accuracy(model, task, device, json=json)
    if prompts is None or refs is None:
        raise ConfigError("nlm evaluate needs --prompts FILE and --refs FILE, or --task DIR")
    config = _sampling(
        greedy=not sample, temperature=temperature, top_k=top_k, top_p=top_p, max_tokens=max_tokens, num=1, seed=seed
    )
    lm, texts, references = _load(model, device), list(read_lines(prompts)), list(read_lines(refs))
    result = evaluate_generation(
        lm,
        texts,
        references,
        config=config,
        metrics=metrics.split(","),
        tokenize=tokenize,
        names=(prompts, refs),
        hyps=hyps,
    )
    for line in _evaluation_lines(result, json=json):
        typer.echo(line)


def _task_accuracy(model: str, task: str, device: Device, *, json: bool) -> None:
    from nlm.lm.memory import marked_accuracy

    result = marked_accuracy(_load(model, device), task)
    typer.echo(_json_line(result.to_dict()) if json else "\n".join(result.lines()))


# -- helpers: presentation only ----------------------------------------------------------------


def _tell(lines: list[str]) -> None:
    for line in lines:
        err_console.print(line, markup=False)


def _writer(fmt: Format, flush: bool):
    from nlm.io.tables import RowWriter

    return RowWriter(sys.stdout, fmt=fmt.value, flush=flush)


def _json_line(record: dict) -> str:
    from nlm.io.tables import jsonl_line

    return jsonl_line(record)


def _row_maker(lm, *, base: str, with_text: bool, per_token: bool, per_word: bool, bos_eos: bool):
    """A function from one SentenceScore to its output rows."""
    from nlm.errors import ConfigError
    from nlm.lm.scoring import LOG_BASES, token_rows

    if per_token and per_word:
        raise ConfigError("choose one of --per-token and --per-word")
    scale = LOG_BASES[base]
    if per_token or per_word:
        return lambda s: [
            {"sentence": s.index + 1, "position": t.position, "token": t.token, "logprob": t.logprob / scale}
            for t in token_rows(s, lm.vocab, bos_eos=bos_eos, words=per_word)
        ]
    text = (lambda s: {"text": s.text}) if with_text else (lambda s: {})
    return lambda s: [{"logprob": s.logprob / scale, "tokens": s.tokens, "oovs": s.oovs, "ppl": s.ppl, **text(s)}]


def _sampling(*, seed: int | None, **options):
    from nlm.lm.generation import SamplingConfig

    config = SamplingConfig(seed=seed, **options)
    if not config.is_greedy and seed is None:
        config = config.replace(seed=secrets.randbits(31))
        err_console.print(f"sampling with seed {config.seed} (pass --seed {config.seed} to repeat)")
    return config


def _prompts(prompt: str | None, prompts: str | None) -> list[str]:
    from nlm.errors import ConfigError
    from nlm.io.text import read_lines

    if prompt is not None and prompts is not None:
        raise ConfigError("give --prompt TEXT or --prompts FILE, not both")
    if prompts is not None:
        return list(read_lines(prompts))
    return [prompt or ""]


def _warn_oovs(sample) -> None:
    if sample.prompt_oovs and sample.sample_index == 0:
        err_console.print(
            f"warning: prompt {sample.prompt_index + 1} has {sample.prompt_oovs} "
            "symbol(s) outside the vocabulary; they were read as <unk>"
        )


def _evaluation_lines(result, *, json: bool) -> list[str]:
    refs = result.references
    ppl = {
        "name": "PPL",
        "score": round(refs.ppl, 4),
        "tokens": refs.tokens,
        "oovs": refs.oovs,
        "signature": f"refs|{result.references_signature}",
    }
    if json:
        return [_json_line(m.to_dict()) for m in result.metrics] + [_json_line(ppl)]
    return [m.line() for m in result.metrics] + [
        f"PPL|{ppl['signature']} = {refs.ppl:.4f} ({refs.tokens:,} tokens, {refs.oovs:,} OOVs, excluding OOVs {refs.ppl_without_oovs:.4f})"
    ]


def register(app: typer.Typer) -> None:
    for command in (score, perplexity, generate, evaluate):
        app.command()(command)
