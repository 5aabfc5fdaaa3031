"""`nlm generate` and `nlm evaluate`: a trained language model continues prompts, and is judged on them."""

from __future__ import annotations

import secrets
from typing import Annotated, Any

import typer

from nlm.cli.console import err_console
from nlm.cli.option_groups import OptionGroup, option_spec
from nlm.cli.options import (
    Device,
    DeviceOption,
    JsonFlag,
    ModelPath,
    PrecisionOption,
    format_option,
    wants_json,
)
from nlm.cli.score import load_lm
from nlm.io.tables import jsonl_line

GEN = "Generation"


def sampling_config(**values: Any):
    """The SamplingConfig of the sampling options; a sampler without --seed gets a random one, printed."""
    from nlm.lm.generation import SamplingConfig

    config = SamplingConfig(**values)
    if not config.is_deterministic and config.seed is None:
        config = config.replace(seed=secrets.randbits(31))
        err_console.print(f"sampling with seed {config.seed} (pass --seed {config.seed} to repeat)")
    return config


SAMPLING = OptionGroup(
    "sampling",
    sampling_config,
    {
        "greedy": option_spec(
            bool,
            True,
            "Take the most likely token (greedy decoding), or --sample with --temperature, --top-k and --top-p.",
            GEN,
            "--greedy/--sample",
        ),
        "temperature": option_spec(float, 1.0, "Divide the logits by this before sampling (0: greedy).", GEN, min=0.0),
        "top_k": option_spec(int, 0, "Sample among the k most likely tokens only (0: off; 1: greedy).", GEN, min=0),
        "top_p": option_spec(
            float, 1.0, "Sample from the smallest set of tokens with this much probability (1: off).", GEN
        ),
        "max_tokens": option_spec(
            int, 50, "New tokens per sample at most; a sample ends earlier at <eos>.", GEN, min=1
        ),
        "num": option_spec(
            int,
            1,
            "Samples per prompt, generated as one batch (with --beam: the best hypotheses, at most N).",
            GEN,
            min=1,
        ),
        "beam": option_spec(
            int,
            0,
            "Beam search keeping N hypotheses per prompt, the prompts' beams advanced as one batch (0: off; "
            "1 is greedy decoding).",
            GEN,
            min=0,
        ),
        "length_penalty": option_spec(
            float,
            0.6,
            "With --beam: rank finished hypotheses by logprob / ((5 + length) / 6) ** ALPHA (GNMT's; 0: by log-prob).",
            GEN,
            min=0.0,
        ),
        "seed": option_spec(
            int | None, None, "Seed of the sampler, for reproducible samples [default: a random one, printed].", GEN
        ),
    },
)


@SAMPLING
def generate(
    model: ModelPath = ...,
    prompt: Annotated[str | None, typer.Option(help="Text to continue.")] = None,
    prompts: Annotated[str | None, typer.Option(help="File of prompts, one per line ('-' for stdin).")] = None,
    continuation_only: Annotated[
        bool,
        typer.Option(
            "--continuation-only",
            help="text: write the continuation without its prompt (what `nlm bleu` should compare with references).",
        ),
    ] = False,
    output_format: Annotated[
        str,
        format_option("text", "json", help="text: the prompt and its continuation; json: with the details."),
    ] = "text",
    device: DeviceOption = "auto",
    precision: PrecisionOption = "fp32",
    sampling=None,
) -> None:
    """Continue prompts, one line per sample, in prompt order.

    Each line is the prompt followed by its continuation (--continuation-only: the continuation alone).
    Greedy unless --sample or --beam, with the defaults of `nlm evaluate`, so the same options give the
    same continuations; --beam N keeps N hypotheses per prompt and writes the --num best, best first.
    With --format json each line also gives the continuation's log-prob (natural log, <eos> included
    when it ended), for every way of decoding.  Without --prompt or --prompts, generates from the
    start symbol alone.  Each sample stops at <eos> or after --max-tokens.  A prompt symbol outside
    the vocabulary is read as <unk>, with a warning.  Exit 2: both --prompt and --prompts, or a
    sampling option without --sample; exit 66: a missing file.
    """
    texts = _prompts(prompt, prompts)
    lm = load_lm(model, device, precision)
    for sample in lm.iter_generations(texts, config=sampling):
        _warn_oovs(sample)
        if output_format == "json":
            typer.echo(jsonl_line(_sample_record(sample)))
        else:
            typer.echo(sample.hypothesis if continuation_only else sample.text)


@SAMPLING.without("num")
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
            help="Instead: the accuracy on the marked tokens of a memory task "
            "(`nlm corpus copy|recall` folder, its test.txt).",
            show_default=False,
        ),
    ] = None,
    metrics: Annotated[str, typer.Option(help="Comma-separated: bleu, chrf, chrf++, ter.")] = "bleu,chrf",
    tokenize: Annotated[str | None, typer.Option(help="sacrebleu's BLEU tokenizer [default: 13a].")] = None,
    hyps: Annotated[
        str | None, typer.Option(help="Also write the generated lines (prompt + continuation) to this file.")
    ] = None,
    output_format: Annotated[
        str, format_option("text", "json", help="Text lines, or one JSON object per metric.")
    ] = "text",
    old_json: JsonFlag = False,
    device: DeviceOption = "auto",
    sampling=None,
) -> None:
    """Judge a model's continuations: BLEU, chrF, perplexity.

    Continue each prompt, score the continuations with BLEU and chrF against the references, and
    give the references' perplexity under the model; or, with --task DIR, the accuracy on the
    marked tokens of a memory task.

    A reference that starts with its prompt is compared without it, so words copied from the
    prompt never count.  Exit 65: prompts and references of different lengths.
    """
    from nlm.errors import ConfigError
    from nlm.io.text import read_lines
    from nlm.lm.generation import evaluate_generation

    as_json = wants_json(output_format, old_json)
    if task is not None:
        return _task_accuracy(model, task, device, as_json=as_json)
    if prompts is None or refs is None:
        raise ConfigError("nlm evaluate needs --prompts FILE and --refs FILE, or --task DIR")
    lm, texts, references = load_lm(model, device), list(read_lines(prompts)), list(read_lines(refs))
    result = evaluate_generation(
        lm.loaded,
        texts,
        references,
        config=sampling,
        metrics=metrics.split(","),
        tokenize=tokenize,
        names=(prompts, refs),
        hyps=hyps,
    )
    for line in _evaluation_lines(result, as_json=as_json):
        typer.echo(line)


def _task_accuracy(model: str, task: str, device: Device, *, as_json: bool) -> None:
    from nlm.lm.memory import marked_accuracy

    result = marked_accuracy(load_lm(model, device).loaded, task)
    typer.echo(jsonl_line(result.to_dict()) if as_json else "\n".join(result.lines()))


# -- helpers: presentation only ----------------------------------------------------------------


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


def _sample_record(sample) -> dict[str, Any]:
    return {
        "prompt": sample.prompt_index + 1,
        "sample": sample.sample_index + 1,
        "text": sample.text,
        "continuation": sample.continuation,
        "tokens": sample.tokens,
        "logprob": sample.logprob,
        "ended": sample.ended,
    }


def _evaluation_lines(result, *, as_json: bool) -> list[str]:
    refs = result.references
    ppl = {
        "name": "PPL",
        "score": round(refs.ppl, 4),
        "tokens": refs.tokens,
        "oovs": refs.oovs,
        "signature": f"refs|{result.references_signature}",
    }
    if as_json:
        return [jsonl_line(m.to_dict()) for m in result.metrics] + [jsonl_line(ppl)]
    return [m.line() for m in result.metrics] + [
        f"PPL|{ppl['signature']} = {refs.ppl:.4f} ({refs.tokens:,} tokens, {refs.oovs:,} OOVs, "
        f"excluding OOVs {refs.ppl_without_oovs:.4f})"
    ]


def register(app: typer.Typer) -> None:
    for command in (generate, evaluate):
        app.command()(command)
