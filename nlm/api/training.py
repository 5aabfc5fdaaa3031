"""`nlm.train(...)`: `nlm train` from Python, the same run folder, lock, checkpoints, messages and errors.

`train` takes the command's options by name (`max_time=60` is `--max-time 60`) and returns the
run's summary.  `start_training` and `resume_training` are what both it and the command call,
with the options already built into configs (nlm/api/options.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from os import PathLike
from pathlib import Path
from typing import Any

from rich.console import Console

from nlm.api.options import option_names, parse_every, train_configs
from nlm.errors import ConfigError
from nlm.lm.recipes import RECIPES
from nlm.lm.training import LMJob, resume_language_model, train_language_model
from nlm.train.run import RunResult


@dataclass(frozen=True)
class TrainSummary:
    """How a training run ended."""

    run_dir: Path  # the run folder: best.pt, last.pt, metrics.jsonl, config.json
    stop_reason: str  # finished | max-steps | max-time | early-stopping | non-monotone
    best_loss: float | None  # the best validation loss (nats per token); None without an evaluation
    best_epoch: int | None  # the 1-based epoch it was reached in
    steps: int  # optimizer steps in all, earlier sessions of a resumed run included
    metrics: dict[str, Any]  # the last evaluation: loss, ppl, ...

    @classmethod
    def of(cls, result: RunResult) -> TrainSummary:
        p = result.progress
        evaluated = p.best_epoch >= 0
        return cls(
            run_dir=Path(result.run_dir),
            stop_reason=result.stop_reason,
            best_loss=p.best_loss if evaluated else None,
            best_epoch=p.best_epoch + 1 if evaluated else None,
            steps=p.global_step,
            metrics=dict(result.metrics),
        )

    def line(self) -> str:
        """The line that ends a training command."""
        best = (
            f"best loss {self.best_loss:.4f} (epoch {self.best_epoch})"
            if self.best_loss is not None
            else "no evaluation"
        )
        return f"stopped ({self.stop_reason}) after {self.steps:,} steps; {best}; run in {self.run_dir}"


def stderr_console() -> Console:
    """Progress and messages for people, on stderr, as the command prints them."""
    return Console(stderr=True, highlight=False, soft_wrap=True, markup=False)


def train(
    *,
    train: str | PathLike | None = None,
    output: str | PathLike | None = None,
    valid: str | PathLike | None = None,
    vocab: str | PathLike | None = None,
    resume: str | PathLike | None = None,
    finetune: bool = False,
    recipe: str | None = None,
    force: bool = False,
    quiet: bool = False,
    cache_dir: str | PathLike | None = None,
    **options: Any,
) -> TrainSummary:
    """Train a language model into the run folder `output`, or continue the run in `resume`, as `nlm train` does.

    The keyword options are those of `nlm train`, spelled with underscores and taking the values a command
    line gives (`hidden=256`, `level="bpe"`, `vocab_size=800`, `max_time=300`, `save_every="10m"`); one left
    out takes the command's default.  `recipe` fills the options not given from a published configuration.
    Progress goes to stderr unless `quiet`.  The run folder is locked while training, written atomically, and
    left as the command leaves it on every error; errors raise `nlm.NlmError` with the command's message and
    exit code (2 for a nonsense option, 73 for a run folder in use...).  A resume takes only the options a
    resumed run may change (epochs, max_steps, max_time, patience, lr, save_every, device, bf16)."""
    if resume is not None:
        if output is not None or force or recipe is not None:
            raise ConfigError("a resume continues a run in its own folder; output, force and recipe start a new run")
        moved = {"train": train, "valid": valid, "cache_dir": cache_dir}
        changes = {**{k: str(v) for k, v in moved.items() if v is not None and k != "cache_dir"}, **options}
        if cache_dir is not None:
            changes["cache_dir"] = Path(cache_dir)
        if "save_every" in changes:
            changes["save_every"], changes["save_every_seconds"] = parse_every(changes["save_every"])
        return resume_training(resume, changes=changes, finetune=finetune, quiet=quiet)
    recipe_options = recipe_values(recipe) if recipe is not None else {}
    configs = train_configs({**recipe_options, **options})
    return start_training(
        train=train,
        output=output,
        valid=valid,
        vocab=vocab,
        cache_dir=cache_dir,
        force=force,
        quiet=quiet,
        finetune=finetune,
        building=sorted(set(options) & set(option_names()["vocab_config"])),
        **{**configs, "training": configs["training"].replace(recipe=recipe)},
    )


def recipe_values(name: str) -> dict[str, Any]:
    """The option values of a published configuration (`nlm train --recipe list` names them)."""
    if name not in RECIPES:
        raise ConfigError(f"--recipe {name!r} is not a recipe; choose one of {', '.join(RECIPES)} (or list)")
    return dict(RECIPES[name].options)


def start_training(
    *,
    train: str | PathLike | None,
    output: str | PathLike | None,
    valid: str | PathLike | None,
    vocab: str | PathLike | None,
    cache_dir: str | PathLike | None,
    force: bool,
    quiet: bool,
    vocab_config,
    data,
    model,
    training,
    finetune: bool = False,
    building: list[str] | tuple[str, ...] = (),
    console: Console | None = None,
) -> TrainSummary:
    """A new run, from built configs: the checks `nlm train` makes, then the library's run recipe.
    `building` names the vocabulary-building options that were given (an error beside `vocab`)."""
    if finetune:
        raise ConfigError("--finetune continues a finished NT-ASGD run: give it with --resume RUN_DIR")
    if train is None or output is None:
        raise ConfigError("nlm train needs --train FILE and -o RUN_DIR (or --resume RUN_DIR)")
    if vocab is not None and building:
        raise ConfigError(
            f"{', '.join('--' + n.replace('_', '-') for n in building)} build a vocabulary, "
            f"but --vocab {vocab} gives one; leave one of them out"
        )
    job = LMJob(
        train=str(train),
        valid=None if valid is None else str(valid),
        vocab=None if vocab is None else str(vocab),
        cache_dir=None if cache_dir is None else Path(cache_dir),
        vocab_config=vocab_config,
        model=model,
        data=data,
    )
    result = train_language_model(
        job=job, output=Path(output), train=training, force=force, console=console or stderr_console(), quiet=quiet
    )
    return TrainSummary.of(result)


def resume_training(
    run_dir: str | PathLike,
    *,
    changes: dict[str, Any],
    finetune: bool = False,
    quiet: bool = False,
    console: Console | None = None,
) -> TrainSummary:
    """Continue the run in `run_dir` where its last.pt stopped, with the `changes` a resume allows (typed values)."""
    changes = {**changes, "finetune": True} if finetune else dict(changes)
    result = resume_language_model(
        run_dir=Path(run_dir), changes=changes, console=console or stderr_console(), quiet=quiet
    )
    return TrainSummary.of(result)
