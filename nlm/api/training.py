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

from nlm.api.options import option_names, recipe_options, train_configs, typed_changes
from nlm.config import option_name
from nlm.errors import ConfigError
from nlm.lm.training import LMJob
from nlm.train.progress import Progress
from nlm.train.run import RunResult


@dataclass(frozen=True)
class TrainSummary:
    """How a training run ended."""

    run_dir: Path  # the run folder: best.pt, last.pt, metrics.jsonl, config.json
    stop_reason: str  # epochs | max-steps | max-time | early-stopping | non-monotone | ...
    best_loss: float | None  # the best validation loss (nats per token); None without an evaluation
    best_epoch: int | None  # the 1-based epoch it was reached in
    steps: int  # optimizer steps in all, earlier sessions of a resumed run included
    metrics: dict[str, Any]  # the last evaluation: loss, ppl, ...
    progress: Progress  # where training stands: epoch, batch, step, units, seconds, best loss
    message: str  # the line `nlm train` ends with: what stopped the run, where, and its best loss

    def stop_line(self) -> str:
        return self.message

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
            progress=p,
            message=result.stop_line(),
        )


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
    resumed run may change (epochs, max_steps, max_time, patience, lr, save_every, device, precision), and the
    run's own values of the others."""
    if resume is not None:
        if force or recipe is not None:
            raise ConfigError("--force and --recipe start a new run; --resume continues the one in its folder")
        if output is not None and Path(output).resolve() != Path(resume).resolve():
            raise ConfigError(f"--resume continues the run in {resume}, in its own folder; -o {output} names another")
        moved = {name: str(value) for name, value in (("train", train), ("valid", valid), ("vocab", vocab)) if value}
        given = {**moved, **options, **({"cache_dir": Path(cache_dir)} if cache_dir is not None else {})}
        configs = train_configs(options)  # the typed values of the options given, as the command has them
        changes = typed_changes(
            given, (configs["training"], configs["vocab_config"], configs["data"], configs["model"])
        )
        return resume_training(resume, changes=changes, finetune=finetune, quiet=quiet)
    configs = train_configs(recipe_options(recipe, options) if recipe is not None else options)
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
    if output is None:
        raise ConfigError(f"{LMJob.command} needs -o RUN_DIR (or --resume RUN_DIR)")
    if finetune:
        raise ConfigError("--finetune continues a finished NT-ASGD run: give it with --resume RUN_DIR")
    if train is None:
        raise ConfigError("nlm train needs --train FILE and -o RUN_DIR (or --resume RUN_DIR)")
    if vocab is not None and building:
        raise ConfigError(
            f"{', '.join(map(option_name, building))} build a vocabulary, "
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
    console = console or stderr_console()
    return TrainSummary.of(job.start(output=Path(output), train=training, force=force, console=console, quiet=quiet))


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
    result = LMJob.resume(run_dir=Path(run_dir), changes=changes, console=console or stderr_console(), quiet=quiet)
    return TrainSummary.of(result)
