"""A training run on disk: its folder, config.json, the trainer with its callbacks, and resuming.

Shared by every task, so language models, classifiers and autoencoders get the same
run folder (best.pt, last.pt, metrics.jsonl, meta.json, config.json), the same
Ctrl-C behaviour and the same exact resume.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from rich.console import Console

from nlm import __version__
from nlm.errors import ConfigError, InputMissingError, OutputExistsError
from nlm.io.atomic import write_text_atomic
from nlm.io.checkpoint import load_checkpoint
from nlm.runtime import set_rng_state
from nlm.train.callbacks import CheckpointCallback, ProgressCallback
from nlm.train.config import TrainConfig
from nlm.train.trainer import Progress, Task, Trainer

RUN_FILES = ("best.pt", "last.pt", "metrics.jsonl", "meta.json", "config.json")


@dataclass(frozen=True)
class RunResult:
    run_dir: Path
    progress: Progress
    stop_reason: str
    metrics: dict[str, float]  # the last evaluation


def prepare_run_dir(output: Path, *, force: bool) -> Path:
    """Create the run folder; refuse to mix two runs in one folder unless forced."""
    if output.exists() and not output.is_dir():
        raise OutputExistsError(f"{output} exists and is not a folder")
    existing = [name for name in RUN_FILES if (output / name).exists()]
    if existing and not force:
        raise OutputExistsError(
            f"{output} already holds a run ({', '.join(existing)}); pass --resume {output} to continue it "
            "or --force to replace it"
        )
    output.mkdir(parents=True, exist_ok=True)
    for name in existing:
        (output / name).unlink()
    return output


def load_resume_point(run_dir: Path, *, kind: str) -> tuple[dict, dict]:
    """The run's config.json and its last.pt, for `--resume RUN_DIR`."""
    if not (run_dir / "last.pt").exists():
        raise InputMissingError(f"{run_dir} holds no last.pt to resume from")
    config_path = run_dir / "config.json"
    run_config = json.loads(config_path.read_text()) if config_path.exists() else {}
    return run_config, load_checkpoint(run_dir / "last.pt", kind=kind)


def resumed_train_config(saved: dict, overrides: dict[str, Any]) -> TrainConfig:
    """The saved trainer config, with the stopping rules a user may change when resuming."""
    allowed = {"epochs", "max_steps", "max_time", "patience", "log_every"}
    refused = {k for k, v in overrides.items() if v is not None and k not in allowed}
    if refused:
        raise ConfigError(f"--resume continues the saved run; it cannot change {', '.join(sorted(refused))}")
    return TrainConfig.from_dict(saved).replace(**{k: v for k, v in overrides.items() if v is not None})


def write_run_config(run_dir: Path, config: dict[str, Any]) -> None:
    write_text_atomic(run_dir / "config.json", json.dumps({"nlm_version": __version__, **config}, indent=2) + "\n")


def run_training(task: Task, config: TrainConfig, *, run_dir: Path, device: torch.device, console: Console,
                 quiet: bool, resume_from: dict | None = None, extra_config: dict | None = None) -> RunResult:
    """Fit `task` with the shared trainer and callbacks, resuming from a checkpoint if given."""
    callbacks = [CheckpointCallback(run_dir, extra_config=extra_config)]
    if not quiet:
        callbacks.append(ProgressCallback(console, describe=task.describe))
    trainer = Trainer(task, config, device=device, callbacks=callbacks)
    if resume_from is not None:
        trainer.load_state_dict(resume_from["trainer"])
        trainer.last_metrics = dict(resume_from.get("metrics") or {})
        set_rng_state(resume_from["rng"])
    progress = trainer.fit()
    return RunResult(run_dir=run_dir, progress=progress, stop_reason=trainer.stop_reason or "finished",
                     metrics=trainer.last_metrics)
