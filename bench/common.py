"""Shared helpers for the benchmarks: locating ../shared/data, checksums, describing the machine, timing steps."""

from __future__ import annotations

import os
import platform
import sys
import time
from pathlib import Path

from nlm.io.text import file_sha256 as sha256  # noqa: F401  (re-exported for the benchmarks)
from nlm.train.hooks import Callback

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"


def data_file(relative: str) -> Path:
    path = SHARED_DATA / relative
    if not path.exists():
        sys.exit(f"benchmark data not found: {path} (this benchmark needs ../shared/data beside the checkout)")
    return path


def machine() -> str:
    import torch

    cpu, amx = platform.processor() or platform.machine(), "AMX unknown"
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        lines = []
    for line in lines:
        if line.startswith("model name") and cpu == (platform.processor() or platform.machine()):
            cpu = line.split(":", 1)[1].strip()
        if line.startswith("flags"):
            amx = "AMX" if "amx_tile" in line.split() else "no AMX"
    return (
        f"{cpu} ({amx}), {os.cpu_count()} cores, torch {torch.__version__} ({torch.get_num_threads()} threads), "
        f"Python {platform.python_version()}"
    )


class StepClock(Callback):
    """A trainer callback timing the steps after `warmup`: tokens (or images) per second."""

    def __init__(self, warmup: int) -> None:
        self.warmup, self.start, self.end, self.units, self.final_units = warmup, 0.0, 0.0, 0, 0

    def on_batch_end(self, trainer) -> None:
        if trainer.progress.global_step == self.warmup:
            self.start, self.units = time.perf_counter(), trainer.progress.units
        self.end, self.final_units = time.perf_counter(), trainer.progress.units

    def rate(self) -> float:
        return (self.final_units - self.units) / (self.end - self.start)
