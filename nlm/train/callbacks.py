"""Callbacks that record training: checkpoints with their metrics log, and progress on stderr."""

from __future__ import annotations

import json
import math
import time
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from nlm.io.checkpoint import save_checkpoint, write_meta
from nlm.runtime import rng_state
from nlm.train.hooks import Callback
from nlm.train.rundir import RunFolder


def checkpoint_payload(trainer, *, extra_config: dict | None = None) -> dict:
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
    """last.pt after every evaluation, on a signal and every `save_every` steps or seconds (mid-epoch
    included, with the exact position, said on `console`); best.pt when the evaluation improves; one
    metrics.jsonl line per evaluation, the last one naming what stopped the run; meta.json.  The first
    checkpoint makes a staged run the folder's run."""

    def __init__(
        self,
        folder: RunFolder,
        *,
        extra_config: dict | None = None,
        every_steps: int | None = None,
        every_seconds: float | None = None,
        console: Console | None = None,
    ) -> None:
        self.folder, self.extra_config, self.console = folder, extra_config, console
        self.every_steps, self.every_seconds = every_steps, every_seconds
        self._last_save = time.monotonic()

    def save(self, trainer, name: str) -> None:
        save_checkpoint(self.folder.path / f"{name}.pt", checkpoint_payload(trainer, extra_config=self.extra_config))
        p = trainer.progress
        write_meta(
            self.folder.path,
            name,
            {
                "kind": trainer.task.kind,
                "epoch": p.epoch,
                "batch": p.batch,
                "global_step": p.global_step,
                "metrics": trainer.last_metrics,
                "saved_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            },
        )
        self.folder.publish()
        self._last_save = time.monotonic()

    def on_fit_start(self, trainer) -> None:
        self._last_save = time.monotonic()

    def on_batch_end(self, trainer) -> None:
        step = trainer.progress.global_step
        if (self.every_steps and step % self.every_steps == 0) or (
            self.every_seconds and time.monotonic() - self._last_save >= self.every_seconds
        ):
            self.save(trainer, "last")
            if self.console is not None:  # --save-every: say where a kill -9 would now resume from
                p = trainer.progress
                self.console.print(
                    f"step {step:,}: saved last.pt (epoch {p.epoch + 1}, batch {p.batch} of "
                    f"{trainer.task.batches_per_epoch():,})"
                )

    def on_eval_end(self, trainer, metrics: dict[str, Any], improved: bool) -> None:
        if trainer.stop_reason:  # the run's last evaluation says what ended it (the callbacks before this one agreed)
            metrics["stop"] = trainer.stop_reason
        with (self.folder.path / "metrics.jsonl").open("a", encoding="utf-8") as f:
            f.write(json.dumps({k: _json_number(v) for k, v in metrics.items()}) + "\n")
        if improved:
            self.save(trainer, "best")
        self.save(trainer, "last")

    def on_interrupt(self, trainer) -> None:
        self.save(trainer, "last")


def _json_number(value):
    return None if isinstance(value, float) and not math.isfinite(value) else value


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    return (
        f"{seconds // 3600}h{seconds % 3600 // 60:02d}m" if seconds >= 3600 else f"{seconds // 60}m{seconds % 60:02d}s"
    )


class ProgressCallback(Callback):
    """A rich progress bar on a terminal; plain periodic lines otherwise (logs, CI, pipes).  Nothing is
    formatted or read back from the device between two updates, so a step costs the same with it."""

    def __init__(self, console: Console, *, describe, refresh: float = 0.5) -> None:
        self.console, self.describe, self.refresh = console, describe, refresh
        self.bar: Progress | None = None
        self.task_id = None
        self._next_update = 0.0
        self._session = (0, 0, 0.0)  # units, steps and clock at the start of this session

    def on_fit_start(self, trainer) -> None:
        p, now = trainer.progress, time.monotonic()
        self._session = (p.units, p.global_step, now)
        self._next_update = now + (self.refresh if self.console.is_terminal else trainer.config.log_every)
        if self.console.is_terminal:
            self.bar = Progress(
                TextColumn("[bold]epoch {task.fields[epoch]}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[status]}"),
                TimeRemainingColumn(),
                console=self.console,
                transient=True,
            )
            self.bar.start()
            self.task_id = self.bar.add_task("train", total=trainer.task.batches_per_epoch(), epoch="", status="")

    def _status(self, trainer, now: float) -> str:
        p = trainer.progress
        loss = p.epoch_loss / p.epoch_count if p.epoch_count else math.nan
        speed = (p.units - self._session[0]) / max(now - self._session[2], 1e-9)
        return f"{self.describe({'loss': loss})} | {speed:,.0f} {trainer.task.unit}/s | lr {trainer.lr:.3g}"

    def on_batch_end(self, trainer) -> None:
        now = time.monotonic()
        if now < self._next_update:
            return
        trainer.sync_loss()
        p, total = trainer.progress, trainer.task.batches_per_epoch()
        limit = trainer.config.epoch_limit
        epoch = f"{p.epoch + 1}" if limit is None else f"{p.epoch + 1}/{limit}"
        if self.bar is not None:
            self.bar.update(self.task_id, completed=p.batch, epoch=epoch, status=self._status(trainer, now))
            self._next_update = now + self.refresh
            return
        steps_per_second = (p.global_step - self._session[1]) / max(now - self._session[2], 1e-9)
        eta = (total - p.batch) / max(steps_per_second, 1e-9)
        self.console.print(
            f"epoch {epoch} {p.batch / total:4.0%} | step {p.global_step} | {self._status(trainer, now)} | "
            f"epoch eta {_duration(eta)}"
        )
        self._next_update = now + trainer.config.log_every

    def on_eval_end(self, trainer, metrics: dict[str, Any], improved: bool) -> None:
        best = " (best)" if improved else ""
        if metrics["split"] == "train":  # no validation data: the training loss is all there is
            scores = f"train {self.describe(metrics)}{best}"
        else:
            scores = f"train loss {metrics['train_loss']:.4f} | valid {self.describe(metrics)}{best}"
        self.console.print(
            f"epoch {metrics['epoch']} | step {metrics['step']} | {scores} | lr {metrics['lr']:.3g} | "
            f"{_duration(metrics['elapsed'])}"
        )
        if self.bar is not None:
            self.bar.reset(self.task_id, total=trainer.task.batches_per_epoch())

    def on_fit_end(self, trainer) -> None:
        self._close()

    def on_exception(self, trainer, error: BaseException) -> None:
        self._close()

    def _close(self) -> None:
        if self.bar is not None:
            self.bar.stop()
            self.bar = None
