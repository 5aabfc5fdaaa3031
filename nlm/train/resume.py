"""The run recipe's resume: a run folder continued from its last.pt, or an NT-ASGD run fine-tuned.

    resume   run folder (locked) -> last.pt -> the settings that may change -> inputs found again
             -> task with its weights and state -> metrics.jsonl cut back to last.pt -> fit on
    finetune a resume of an NT-ASGD run that takes best.pt's averaged weights and restarts averaged
             SGD from them (nlm.train.averaging), its limits granted again

The job type's `from_saved_run` rebuilds the job from the folder; everything else is the same
for every application (see nlm/train/run.py for the start of a run).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from rich.console import Console

from nlm.config import option_name
from nlm.errors import ConfigError
from nlm.io.checkpoint import load_checkpoint
from nlm.runtime import pick_precision
from nlm.train.averaging import finetune_changes
from nlm.train.config import RESUMABLE, TrainConfig
from nlm.train.distributed import Ranks, join_processes
from nlm.train.progress import Progress
from nlm.train.rundir import RunFolder
from nlm.train.session import RunResult, TrainingSession, explain_failure, write_run_config
from nlm.train.task import Task


def resume_run(job_type, *, run_dir: Path, changes: dict[str, Any], console: Console, quiet: bool = False) -> RunResult:
    """Continue the run in `run_dir` from its last.pt, with the `changes` a resume allows (the rest is an error).
    `finetune=True` among the changes fine-tunes an NT-ASGD run instead (see the module docstring)."""
    run_dir, changes = Path(run_dir), dict(changes)
    finetune = bool(changes.pop("finetune", False))
    with join_processes() as ranks, ranks.quiet_followers(console):
        quiet = quiet or not ranks.lead
        folder = None
        with ranks.agreed():  # rank 0 takes the folder (and finishes what a killed run left) before anyone reads it
            folder = RunFolder.open(run_dir) if ranks.lead else None
        try:
            with ranks.agreed():
                resumed = _resumed_run(job_type, run_dir, changes, ranks, finetune=finetune)
            if ranks.lead:
                _record_resume(folder, resumed, ranks, console=None if quiet else console)
            session = TrainingSession(
                folder,
                resumed.device,
                console,
                quiet,
                resume_from=resumed.checkpoint,
                lr=resumed.changes.get("lr"),
                finetune=finetune,
                ranks=ranks,
                run_dir=run_dir,
            )
            try:
                return resumed.job.fit(session, resumed.task, resumed.train)
            except BaseException as error:
                raise explain_failure(error, resumed.job.command, folder, run_dir, ranks) from None
        finally:
            if folder is not None:
                folder.close()


@dataclass
class ResumedRun:
    job: Any  # the application's Job, rebuilt from the run folder
    task: Task  # with the saved weights and state
    train: TrainConfig  # the saved one with the changes
    changed: dict[str, str]  # "--lr": "20 -> 5", for the message
    checkpoint: dict
    run_config: dict  # config.json as the run left it
    device: torch.device
    changes: dict[str, Any]  # what was asked for (with a fine-tuning's limits granted again)
    finetune: bool


def _resumed_run(job_type, run_dir: Path, changes: dict[str, Any], ranks: Ranks, *, finetune: bool) -> ResumedRun:
    """The job and the task of a resumed run, from its last.pt (best.pt's weights to fine-tune) and config.json."""
    checkpoint = load_checkpoint(run_dir / "last.pt", kind=job_type.kind)
    check_world_size(checkpoint["config"].get("world_size", 1), ranks.world, run_dir)
    run_config = json.loads((run_dir / "config.json").read_text()) if (run_dir / "config.json").exists() else {}
    job = job_type.from_saved_run(run_config, checkpoint, changes, run_dir=run_dir)  # takes the options it knows
    saved = checkpoint["config"].get("run_train", checkpoint["config"]["train"])  # a phase's run_train
    changes = without_recorded(changes, {**run_config, "train": saved})
    if finetune:
        p = Progress.from_dict(checkpoint["trainer"]["progress"])
        changes = finetune_changes(TrainConfig.from_dict(saved), p, changes, run_dir=run_dir)
        run_config["finetune"] = [
            *run_config.get("finetune", []),
            {"epoch": p.epoch, "step": p.global_step, "best_loss": p.best_loss},
        ]
    train, changed = resumed_train_config(saved, changes)
    device = ranks.device(train.device)
    train = train.replace(precision=pick_precision(train.precision, device))
    job.load(run_dir, train)
    task = job.new_task(device, train, ranks.shard)
    weights = load_checkpoint(run_dir / "best.pt", kind=job_type.kind) if finetune else checkpoint
    task.model.load_state_dict(weights["model"])
    task.load_state_dict(checkpoint["trainer"]["task"])  # before the trainer: what it trains can depend on it (a phase)
    return ResumedRun(job, task, train, changed, checkpoint, run_config, device, changes, finetune)


def _record_resume(folder: RunFolder, resumed: ResumedRun, ranks: Ranks, *, console: Console | None) -> None:
    """Rank 0's part of a resume: metrics.jsonl cut back to last.pt, config.json rewritten, a line saying where."""
    p = Progress.from_dict(resumed.checkpoint["trainer"]["progress"])
    dropped = folder.truncate_metrics(p.global_step)
    record = {**resumed.run_config, **resumed.job.run_config(), "train": resumed.train.to_dict()}
    write_run_config(folder.root, {**record, "world_size": ranks.world})
    if console is None:
        return
    if resumed.finetune:
        what = (
            f"fine-tuning {folder.root} from best.pt (loss {p.best_loss:.4f}, epoch {p.best_epoch + 1}) "
            f"with a fresh averaged SGD at lr {resumed.train.lr:g}, from"
        )
    else:
        what = f"resuming {folder.root} at"
    console.print(
        f"{what} epoch {p.epoch + 1}, batch {p.batch} (step {p.global_step})"
        + "".join(f"; {name} {value}" for name, value in resumed.changed.items())
        + (f"; {dropped} metrics line(s) after last.pt dropped" if dropped else "")
    )


def without_recorded(changes: dict[str, Any], run_config: dict[str, Any]) -> dict[str, Any]:
    """The changes less the options given with the value the run already has (the command that started the run,
    given again with --resume); a setting a resume may change always stays, to apply it now (--lr)."""
    recorded = {k: v for k, v in run_config.items() if not isinstance(v, dict)}
    for section in ("vocab_config", "data", "model", "train"):
        recorded.update(run_config.get(section) or {})
    return {
        name: value
        for name, value in changes.items()
        if name in RESUMABLE or name not in recorded or _as_json(recorded[name]) != _as_json(value)
    }


def _as_json(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str))


def check_world_size(saved: int, world: int, run_dir: Path) -> None:
    """A run resumes on as many processes as trained it: its batch position and hidden states are split that way."""
    if saved == world:
        return
    trained = "one process" if saved == 1 else f"{saved} processes"
    if saved == 1:
        how = "without torchrun"
    else:
        how = f"under torchrun with {saved} processes in all (--nnodes x --nproc-per-node)"
    raise ConfigError(f"{run_dir} was trained by {trained}, not {world}; resume it {how}")


def resumed_train_config(saved: dict, changes: dict[str, Any]) -> tuple[TrainConfig, dict[str, str]]:
    """The saved TrainConfig with the changes a resume allows; a ConfigError names any other option given."""
    if "bf16" in changes:  # the old spelling of --precision bf16
        changes = {
            **{k: v for k, v in changes.items() if k != "bf16"},
            **({"precision": "bf16"} if changes["bf16"] else {}),
        }
    refused = sorted(name for name in changes if name not in RESUMABLE)
    if refused:
        names = ", ".join(map(option_name, refused))
        allowed = ", ".join(option_name(n) for n in RESUMABLE if n not in ("save_every_seconds", "log_every"))
        raise ConfigError(
            f"{names} cannot change when resuming (part of the run's model, data or vocabulary); only {allowed} can"
        )
    config = TrainConfig.from_dict(saved)
    changed = {option_name(k): f"{getattr(config, k)} -> {v}" for k, v in changes.items() if getattr(config, k) != v}
    return config.replace(**changes), changed
