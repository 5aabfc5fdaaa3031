"""Shared helpers for the benchmarks: locating ../shared/data, checksums, describing the machine, timing steps."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
import time
from pathlib import Path

from nlm.io.text import file_sha256 as sha256  # noqa: F401  (re-exported for the benchmarks)
from nlm.train.hooks import Callback

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("NLM_SHARED_DATA") or REPO.parent / "shared" / "data")  # a worktree elsewhere: set it


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
            flags = line.split()
            amx = ("AMX" if "amx_tile" in flags else "no AMX") + (", AVX512-BF16" if "avx512_bf16" in flags else "")
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


def measure(command: list[str], *, cpu: int | None, env: dict[str, str], log: Path) -> tuple[float, float, float]:
    """Run `command` (pinned to core `cpu`, unless None), its output to `log`; (peak RSS in MiB, wall seconds, CPU
    seconds).  The peak is the largest of the process and the children it waited for (torchrun's workers)."""
    start = time.perf_counter()
    with log.open("w") as out:
        child = subprocess.Popen(
            command,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            preexec_fn=None if cpu is None else lambda: os.sched_setaffinity(0, {cpu}),
        )
        _, status, usage = os.wait4(child.pid, 0)  # the child's own peak, which Popen.wait() would not give
    child.returncode = os.waitstatus_to_exitcode(status)
    wall = time.perf_counter() - start
    if child.returncode:
        sys.exit(f"failed ({child.returncode}): {' '.join(command)}\n{log.read_text()[-2000:]}")
    return usage.ru_maxrss / 1024, wall, usage.ru_utime + usage.ru_stime


def parse_size(text: str) -> int:
    scale = {"K": 1_000, "M": 1_000_000}.get(text[-1].upper(), 1)
    return int(float(text[:-1] if scale > 1 else text) * scale)
