"""Callbacks for the trainer: checkpoints with their metrics log, and progress on stderr."""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import TYPE_CHECKING

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
)

from nlm.io.checkpoint import save_checkpoint, write_meta
from nlm.runtime import rng_state
from nlm.train.trainer import Callback

if TYPE_CHECKING:
    from nlm.train.trainer import Trainer


def checkpoint_payload(trainer: Trainer, *, extra_config: dict | None = None) -> dict:
    """Everything needed to use the model, or to resume training exactly where it stands."""
    extras = trainer.task.checkpoint_extras()
    config = {**extras.pop("config"), **(extra_config or {}), "train": trainer.config.to_dict()}
    return {
        "kind": trainer.task.kind,
        "config": config,
        **extras,
        "model": trainer.task.model.state_dict(),
        "trainer": trainer.state_dict(),
        "rng": rng_state(),
        "metrics": dict(trainer.last_metrics),
    }


class CheckpointCallback(Callback):
    """Writes last.pt after every evaluation (and on Ctrl-C), best.pt when validation improves,
    one line of metrics.jsonl per evaluation, and meta.json."""

    def __init__(self, run_dir: Path, *, extra_config: dict | None = None) -> None:
        self.run_dir = run_dir
        self.extra_config = extra_config

    def _save(self, trainer: Trainer, name: str) -> None:
        save_checkpoint(self.run_dir / f"{name}.pt", checkpoint_payload(trainer, extra_config=self.extra_config))
        p = trainer.progress
        write_meta(self.run_dir, name, {
            "kind": trainer.task.kind, "epoch": p.epoch, "batch": p.batch, "global_step": p.global_step,
            "metrics": trainer.last_metrics, "saved_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        })

    def on_eval_end(self, trainer: Trainer, metrics: dict[str, float], improved: bool) -> None:
        if metrics and not trainer.interrupted:
            with (self.run_dir / "metrics.jsonl").open("a", encoding="utf-8") as f:
                f.write(json.dumps({k: _json_number(v) for k, v in metrics.items()}) + "\n")
        if improved:
            self._save(trainer, "best")
        self._save(trainer, "last")

    def on_exception(self, trainer: Trainer, error: BaseException) -> None:
        # Ctrl-C that could not wait for the step to finish: save what there is.  After a
        # NaN loss, keep the last good checkpoint rather than overwrite it.
        if isinstance(error, KeyboardInterrupt):
            self._save(trainer, "last")


def _json_number(value):
    return None if isinstance(value, float) and not math.isfinite(value) else value


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m" if seconds >= 3600 else f"{seconds // 60}m{seconds % 60:02d}s"


class ProgressCallback(Callback):
    """A rich progress bar on a terminal; plain periodic lines otherwise (logs, CI, pipes)."""

    def __init__(self, console: Console, *, describe) -> None:
        self.console = console
        self.describe = describe  # metrics dict -> short text ("loss 4.61 ppl 100.3")
        self.bar: Progress | None = None
        self.task_id = None
        self._last_log = 0.0
        self._session_units = 0
        self._session_step = 0
        self._session_start = 0.0

    def on_fit_start(self, trainer: Trainer) -> None:
        self._session_start = time.monotonic()
        self._last_log = self._session_start
        self._session_units = trainer.progress.units
        self._session_step = trainer.progress.global_step
        if self.console.is_terminal:
            self.bar = Progress(
                TextColumn("[bold]epoch {task.fields[epoch]}"), BarColumn(), MofNCompleteColumn(),
                TextColumn("{task.fields[status]}"), TimeRemainingColumn(), console=self.console, transient=True,
            )
            self.bar.start()
            self.task_id = self.bar.add_task("train", total=trainer.task.batches_per_epoch(), epoch="", status="")

    def _status(self, trainer: Trainer) -> str:
        p = trainer.progress
        loss = p.epoch_loss / p.epoch_count if p.epoch_count else math.nan
        speed = (p.units - self._session_units) / max(time.monotonic() - self._session_start, 1e-9)
        return f"{self.describe({'loss': loss})} | {speed:,.0f} {trainer.task.unit}/s | lr {trainer.lr:.3g}"

    def on_batch_end(self, trainer: Trainer) -> None:
        now = time.monotonic()
        p, total = trainer.progress, trainer.task.batches_per_epoch()
        epoch = f"{p.epoch + 1}/{trainer.config.epochs}"
        if self.bar is not None:
            if now - self._last_log >= 0.5:
                trainer.sync_loss()
                self.bar.update(self.task_id, completed=p.batch, epoch=epoch, status=self._status(trainer))
                self._last_log = now
        elif now - self._last_log >= trainer.config.log_every:
            trainer.sync_loss()
            steps_per_second = (p.global_step - self._session_step) / max(now - self._session_start, 1e-9)
            eta = (total - p.batch) / max(steps_per_second, 1e-9)
            self.console.print(f"epoch {epoch} {p.batch / total:4.0%} | step {p.global_step} | {self._status(trainer)} | "
                               f"epoch eta {_duration(eta)}")
            self._last_log = now

    def on_eval_end(self, trainer: Trainer, metrics: dict[str, float], improved: bool) -> None:
        if trainer.interrupted:
            self.console.print(f"interrupted at epoch {trainer.progress.epoch + 1}, step {trainer.progress.global_step}: saved last.pt")
            return
        train = metrics.get("train_loss", math.nan)
        line = (f"epoch {metrics['epoch']} | train loss {train:.4f} | valid {self.describe(metrics)}"
                f"{' (best)' if improved else ''} | lr {metrics['lr']:.3g} | {_duration(metrics['elapsed'])}")
        self.console.print(line)
        if self.bar is not None:
            self.bar.reset(self.task_id, total=trainer.task.batches_per_epoch())

    def on_fit_end(self, trainer: Trainer) -> None:
        self._close()

    def on_exception(self, trainer: Trainer, error: BaseException) -> None:
        self._close()

    def _close(self) -> None:
        if self.bar is not None:
            self.bar.stop()
            self.bar = None
