"""`nlm corpus copy | recall | markov`: write synthetic corpora whose right answer is known."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from nlm.cli.console import err_console

app = typer.Typer(help="Synthetic corpora with known answers: copy, recall, markov.", no_args_is_help=True)

OutputDir = Annotated[
    Path, typer.Option("-o", "--output", help="Folder for train.txt, valid.txt and the rest.", show_default=False)
]
Force = Annotated[bool, typer.Option(help="Replace a corpus already in the folder.")]
Lag = Annotated[int, typer.Option(help="Steps between reading the symbol and reading the mark `?` that asks for it.")]
Symbols = Annotated[int, typer.Option(help="Distinct symbols to remember (chance is 1/symbols).")]
Lines = Annotated[int, typer.Option(help="Training lines.")]
EvalLines = Annotated[int | None, typer.Option(help="Lines of valid.txt and of test.txt [default: --lines / 10].")]
Seed = Annotated[int, typer.Option(help="Seed of the sampled lines.")]


def _memory(task, output: Path, *, force: bool) -> None:
    from nlm.corpora.memory import write_memory_corpus

    info = write_memory_corpus(task, output, overwrite=force)
    counts = ", ".join(f"{split} {n:,}" for split, n in info["split_lines"].items())
    err_console.print(
        f"{output}: {task.kind} task, lag {task.lag}, {task.symbols} symbols ({counts} lines); "
        f"chance on the marked tokens {task.chance:.4f}"
    )
    err_console.print(f"train on it: {info['train_command']}")
    err_console.print(f"  ({info['train_reason']})")
    err_console.print(f"then measure it: {info['evaluate_command']}")


@app.command()
def copy(
    output: OutputDir,
    lag: Lag = 30,
    symbols: Symbols = 8,
    lines: Lines = 2000,
    eval_lines: EvalLines = None,
    seed: Seed = 0,
    force: Force = False,
) -> None:
    """Copy task: repeat a symbol after --lag steps of filler.

    Lines `a7 x x ... x ? a7`: after `?`, repeat the symbol read --lag steps before."""
    from nlm.corpora.memory import MemoryTask

    task = MemoryTask(kind="copy", lag=lag, symbols=symbols, lines=lines, eval_lines=eval_lines, seed=seed)
    _memory(task, output, force=force)


@app.command()
def recall(
    output: OutputDir,
    lag: Lag = 30,
    symbols: Symbols = 8,
    lines: Lines = 2000,
    eval_lines: EvalLines = None,
    seed: Seed = 0,
    force: Force = False,
) -> None:
    """Recall task: a line's first symbol, past distractors.

    Lines `a7 a2 a5 ... a3 ? a7`: after `?`, recall the line's first symbol through --lag - 1 random
    distractors."""
    from nlm.corpora.memory import MemoryTask

    task = MemoryTask(kind="recall", lag=lag, symbols=symbols, lines=lines, eval_lines=eval_lines, seed=seed)
    _memory(task, output, force=force)


@app.command()
def markov(
    output: OutputDir,
    num_words: Annotated[int, typer.Option(help="Word types of the source.")] = 20,
    concentration: Annotated[float, typer.Option(help="Dirichlet concentration of each row; small = peaked.")] = 0.3,
    mean_length: Annotated[float, typer.Option(help="Mean words per sentence.")] = 8.0,
    source_seed: Annotated[int, typer.Option(help="Seed of the random source.")] = 0,
    sample_seed: Annotated[int, typer.Option(help="Seed of the sampled sentences.")] = 0,
    train_lines: Annotated[int, typer.Option(help="Training sentences.")] = 5000,
    valid_lines: Annotated[int, typer.Option(help="Validation sentences.")] = 1000,
    force: Force = False,
) -> None:
    """Sentences from a Markov source of known entropy.

    A random first-order Markov source whose entropy rate is known exactly (in source.json)."""
    from nlm.corpora.markov import MarkovSource

    source = MarkovSource.random(
        num_words=num_words, concentration=concentration, mean_length=mean_length, seed=source_seed
    )
    info = source.write_corpus(
        output, train_lines=train_lines, valid_lines=valid_lines, seed=sample_seed, overwrite=force
    )
    err_console.print(
        f"{output}: entropy rate {info['entropy_rate_nats']:.6f} nats = {info['entropy_rate_bits']:.6f} bits "
        f"per token; ideal perplexity {info['ideal_perplexity']:.4f}"
    )


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="corpus")
